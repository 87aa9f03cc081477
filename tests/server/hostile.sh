#!/bin/bash
# hostile.sh - the hostile VMDK inputs of tests/hostile, uploaded to
# dsc-server through nginx: each gets the HTTP status of its expected error
# (tests/hostile/expected: FORMAT and TRUNCATED 422, UNSUPPORTED 415, LIMIT
# 413, OK 200) with a JSON body naming that code, leaves nothing in outdir,
# and no worker dies. The server runs with -max-capacity 1G, so the valid
# 64 TiB header is refused (413) before anything is allocated or written.
. "$(dirname "$0")/lib.sh"
srv_init
nginx_start
server_start -max-capacity 1G

H=$top_srcdir/tests/hostile
R=$T/reply
mkdir -p "$T/in"
python3 "$H/gen.py" -o "$T/in" || { echo "FAIL: gen.py"; exit 1; }
pids0=$(workers | tr '\n' ' ')

pats=() codes=() bugs=()
while read -r a b c _; do
	case $a in '' | '#'*) continue ;; esac
	if [ "$a" = bug ]; then pats+=("$b") codes+=("$c") bugs+=(1); else pats+=("$a") codes+=("$b") bugs+=(0); fi
done <"$H/expected"

status_of() {
	case $1 in
	OK) echo 200 ;; FORMAT | TRUNCATED) echo 422 ;; UNSUPPORTED) echo 415 ;; LIMIT) echo 413 ;;
	*) echo "?" ;;
	esac
}

todo=0
for f in "$T"/in/*.vmdk; do
	name=$(basename "$f" .vmdk)
	i=-1
	for k in "${!pats[@]}"; do
		# shellcheck disable=SC2053 # the table's names are globs
		if [[ "$name" == ${pats[$k]} ]]; then i=$k; break; fi
	done
	[ "$i" -ge 0 ] || { fail "$name: no line in tests/hostile/expected"; continue; }
	code=${codes[$i]}
	[[ "$name" == capacity-at-cap* ]] && code=LIMIT
	want=$(status_of "$code")
	got=$(req "$R" -H 'Content-Type: application/octet-stream' -X POST -T "$f" \
		"$BASE/upload?src=vmdk&name=$name.img")
	why=
	if [ "$got" != "$want" ]; then
		why="status $got, want $want: $(head -c 200 "$R")"
	elif [ "$want" != 200 ] && [ "$(json_get "$R" code)" != "$code" ]; then
		why="JSON code '$(json_get "$R" code)', want $code"
	elif [ "$want" = 200 ] && [ ! -f "$T/out/$name.img" ]; then
		why="200 without an output"
	fi
	rm -f "$T/out/$name.img"
	[ -z "$(ls -A "$T/out")" ] || why="${why:+$why; }left in outdir: $(ls -A "$T/out" | tr '\n' ' ')"
	rm -rf "${T:?}"/out/* "$T"/out/.[!.]*
	if [ "${bugs[$i]}" = 1 ]; then
		if [ -n "$why" ]; then
			todo=$((todo + 1))
			CHECKS=$((CHECKS + 1))
			echo "ok - $name # TODO known library bug: $why"
		else
			fail "$name: the known bug is fixed: drop 'bug' from its line in tests/hostile/expected"
		fi
	elif [ -z "$why" ]; then
		pass "$name: $got $code"
	else
		fail "$name: $why"
	fi
done
check "no worker died" test "$(workers | tr '\n' ' ')" = "$pids0"
[ "$todo" -gt 0 ] && echo "# $todo case(s) marked as known library bugs (TODO)"
server_stop TERM
finish
