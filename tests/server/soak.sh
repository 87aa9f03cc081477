#!/bin/bash
# soak.sh - a bounded soak through nginx (issue 7, "Load"): SOAK_CLIENTS
# concurrent clients (default 6) for SOAK_SECONDS (default 10; `make soak`
# runs 60 s with 16) against SOAK_WORKERS workers (default 4), each client
# looping over the four kinds of request: a VMDK upload to raw, a multipart
# raw upload to VMDK, an /import from a loopback HTTP server and an /export.
# Every request must succeed with a valid output (compared with the source
# disk) or get a clean 503 with a JSON error; no worker may die; each
# worker's resident memory at the end must stay within SOAK_RSS_SLACK_KB
# (default 4096) of what it was after the warm-up (the first quarter);
# not in a sanitizer build, where ASan keeps freed memory on purpose.
. "$(dirname "$0")/lib.sh"
srv_init
nginx_start
SECS=${SOAK_SECONDS:-10}
CLIENTS=${SOAK_CLIENTS:-6}
WORKERS=${SOAK_WORKERS:-4}
SLACK=${SOAK_RSS_SLACK_KB:-4096}
server_start -import-allow-net 127.0.0.0/8

mkdir -p "$T/www" "$T/res"
make_raw "$T/data/disk.raw" 2
make_vmdk "$T/data/disk.raw" "$T/data/disk.vmdk"
cp "$T/data/disk.vmdk" "$T/www/disk.vmdk"
cp "$T/data/disk.vmdk" "$T/export/disk.vmdk"
python3 "$top_srcdir/tests/tools/httpd.py" --root "$T/www" --port-file "$T/httpd.port" &
HTTPD_PID=$!
trap 'kill $HTTPD_PID 2>/dev/null; srv_cleanup' EXIT
for _ in $(seq 100); do [ -s "$T/httpd.port" ] && break; sleep 0.05; done
UP="http://127.0.0.1:$(cat "$T/httpd.port")"

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# client C: loop until the deadline; one line per request in res/C.
client() {
	local c=$1 i=0 op name st out why
	local res=$T/res/$c
	while [ "$(date +%s)" -lt "$END" ]; do
		i=$((i + 1))
		op=$(((c + i) % 4))
		name=c${c}i$i
		out=$T/res/$name.body
		why=
		case $op in
		0) st=$(curl -s -o "$out" -w '%{http_code}' -H 'Content-Type: application/octet-stream' \
			-X POST -T "$T/data/disk.vmdk" "$BASE/upload?name=$name.img")
		   [ "$st" = 200 ] && { cmp -s "$T/out/$name.img" "$T/data/disk.raw" || why="output differs"; } ;;
		1) st=$(curl -s -o "$out" -w '%{http_code}' -F "file=@$T/data/disk.raw" \
			"$BASE/upload?name=$name.vmdk&dst=vmdk&src=raw")
		   [ "$st" = 200 ] && { same_image "$T/out/$name.vmdk" vmdk "$T/data/disk.raw" raw || why="output differs"; } ;;
		2) st=$(curl -s -o "$out" -w '%{http_code}' -G --data-urlencode "url=$UP/f/disk.vmdk" \
			--data-urlencode "name=$name.img" "$BASE/import")
		   [ "$st" = 200 ] && { cmp -s "$T/out/$name.img" "$T/data/disk.raw" || why="output differs"; } ;;
		3) st=$(curl -s -o "$out" -w '%{http_code}' "$BASE/export?path=disk.vmdk&dst=raw")
		   [ "$st" = 200 ] && { cmp -s "$out" "$T/data/disk.raw" || why="export differs"; } ;;
		esac
		if [ "$st" = 503 ]; then
			json_has "$out" error code || why="503 without a JSON error"
		elif [ "$st" != 200 ]; then
			why="status $st: $(head -c 200 "$out")"
		fi
		echo "$op $st ${why:-ok}" >>"$res"
		rm -f "$out" "$T/out/$name.img" "$T/out/$name.vmdk"
	done
}

START=$(date +%s)
END=$((START + SECS))
pids0=$(workers | tr '\n' ' ')
for c in $(seq "$CLIENTS"); do client "$c" & done
sleep $(((SECS + 3) / 4))
declare -A base
for w in $pids0; do base[$w]=$(rss "$w"); done
wait_clients() { local j; for j in $(jobs -p); do [ "$j" = "$HTTPD_PID" ] || [ "$j" = "$NGINX_PID" ] || [ "$j" = "$SERVER_PID" ] || wait "$j"; done; }
wait_clients
total=$(cat "$T"/res/[0-9]* | wc -l)
bad=$(cat "$T"/res/[0-9]* | grep -vc ' ok$')
busy=$(cat "$T"/res/[0-9]* | grep -c ' 503 ok$')
echo "# $total requests in ${SECS}s from $CLIENTS clients on $WORKERS workers: $busy clean 503s, $bad bad"
for op in 0 1 2 3; do
	echo "#   kind $op: $(cat "$T"/res/[0-9]* | grep -c "^$op 200 ok") ok"
done
check "requests were made" test "$total" -gt "$CLIENTS"
check "every request succeeded with a valid output or got a clean 503" test "$bad" -eq 0
[ "$bad" -eq 0 ] || cat "$T"/res/[0-9]* | grep -v ' ok$' | sort | uniq -c | head -n 10
check "every kind of request succeeded at least once" \
	test "$(cat "$T"/res/[0-9]* | grep ' 200 ok$' | cut -c1 | sort -u | wc -l)" -eq 4
check "no worker died (same pids)" test "$(workers | tr '\n' ' ')" = "$pids0"
if grep -q '^SAN_CFLAGS = .*-fsanitize' "$top_builddir/Makefile" 2>/dev/null; then
	# ASan's quarantine keeps freed memory resident on purpose.
	echo "# sanitizer build: worker RSS not compared (ASan quarantine)"
else
	for w in $pids0; do
		now=$(rss "$w")
		check "worker $w: RSS ${base[$w]} kB after warm-up, $now kB at the end (slack $SLACK)" \
			test "$now" -le $((${base[$w]} + SLACK))
	done
fi
check "nothing left in outdir" test -z "$(ls -A "$T/out")"
server_stop TERM
finish
