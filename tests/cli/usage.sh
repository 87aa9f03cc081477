#!/bin/bash
# usage.sh - dsc-convert's command line: help, usage errors (exit 2), one- and
# two-dash flags, format detection and names, -json, -q and -p.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init

mkdir "$T/in" "$T/out"
gen_random "$T/in/a.raw" 100000
cap=$(round512 100000)

# ---- help ----
for h in -h --help; do
	run_dsc $h
	if [ "$RC" -eq 0 ] && grep -qi usage "$T/stdout" && grep -q -- 'src' "$T/stdout" &&
		grep -q -- 'dst' "$T/stdout" && grep -q -- 'prealloc' "$T/stdout" && [ ! -s "$T/stderr" ]; then
		pass "$h prints usage (with -src, -dst, -prealloc) on stdout, exit 0"
	else
		fail "$h prints usage on stdout, exit 0" "$(last_run)" "stdout: $(head -c 500 "$T/stdout")"
	fi
done

# ---- usage errors: exit 2, a message, no output file ----
usage_case() {
	local desc=$1
	shift
	run_dsc "$@"
	expect_usage "$desc"
	dir_is "$desc: no output" "$T/out"
}
usage_case "no arguments"
usage_case "unknown flag" -src "$T/in/a.raw" -dst "$T/out/x.raw" -bogus
usage_case "unknown long flag" --src "$T/in/a.raw" --dst "$T/out/x.raw" --no-such-flag
usage_case "missing -dst" -src "$T/in/a.raw"
usage_case "missing -src" -dst "$T/out/x.raw"
usage_case "-src without its value" -dst "$T/out/x.raw" -src
usage_case "-dst without its value" -src "$T/in/a.raw" -dst
usage_case "bad -src-fmt" -src "$T/in/a.raw" -dst "$T/out/x.raw" -src-fmt qed
usage_case "bad -dst-fmt" -src "$T/in/a.raw" -dst "$T/out/x.raw" -dst-fmt qed
usage_case "empty -dst-fmt" -src "$T/in/a.raw" -dst "$T/out/x.raw" -dst-fmt ''
usage_case "stray positional argument" -src "$T/in/a.raw" -dst "$T/out/x.raw" extra
usage_case "bad -level" -src "$T/in/a.raw" -dst "$T/out/x.vmdk" -dst-fmt vmdk -level 13
usage_case "bad -level name" -src "$T/in/a.raw" -dst "$T/out/x.vmdk" -dst-fmt vmdk -level fastest
usage_case "bad -threads" -src "$T/in/a.raw" -dst "$T/out/x.vmdk" -dst-fmt vmdk -threads two
usage_case "bad -max-capacity" -src "$T/in/a.raw" -dst "$T/out/x.raw" -max-capacity 4X
usage_case "negative -max-capacity" -src "$T/in/a.raw" -dst "$T/out/x.raw" -max-capacity -1
usage_case "empty -max-capacity" -src "$T/in/a.raw" -dst "$T/out/x.raw" -max-capacity ''
usage_case "-max-capacity over 2^64" -src "$T/in/a.raw" -dst "$T/out/x.raw" -max-capacity 16385P

run_dsc -version
if [ "$RC" -eq 0 ] && grep -Eq '^dsc-convert [0-9]+\.[0-9]+' "$T/stdout"; then
	pass "-version prints 'dsc-convert X.Y...'"
else
	fail "-version prints 'dsc-convert X.Y...'" "$(last_run)" "stdout: $(head -c 200 "$T/stdout")"
fi

# ---- one or two dashes ----
run_dsc -src "$T/in/a.raw" -dst "$T/out/one.raw"
expect_ok "-src/-dst"
check "-src/-dst: raw copy is exact" cmp "$T/in/a.raw" "$T/out/one.raw"
run_dsc --src "$T/in/a.raw" --dst "$T/out/two.vmdk" --dst-fmt vmdk --src-fmt raw -q
expect_ok "--src/--dst/--dst-fmt/--src-fmt/-q"
check "--dst-fmt vmdk: a VMDK" qemu_same "$T/in/a.raw" "$T/out/two.vmdk"
run_dsc -src "$T/in/a.raw" -dst "$T/out/three.vmdk" -dst-fmt vmdk -src-fmt raw
expect_ok "-dst-fmt vmdk -src-fmt raw"
check "-dst-fmt vmdk: qemu-img compare" qemu_same "$T/in/a.raw" "$T/out/three.vmdk"
run_dsc --src="$T/in/a.raw" --dst="$T/out/four.vmdk" --dst-fmt=vmdk -q
expect_ok "--flag=value form"
check "--flag=value form: qemu-img compare" qemu_same "$T/in/a.raw" "$T/out/four.vmdk"

# ---- format detection: -dst-fmt defaults to raw, -src-fmt from the magic ----
run_dsc -src "$T/out/two.vmdk" -dst "$T/out/back.raw"
expect_ok "VMDK input detected without -src-fmt"
check "detected VMDK -> raw (default -dst-fmt) is the padded source" same_padded "$T/in/a.raw" "$T/out/back.raw"
check "detected VMDK -> raw has the capacity as size" size_is "$T/out/back.raw" "$cap"
run_dsc -src "$T/out/two.vmdk" -dst "$T/out/asraw.raw" -src-fmt raw
expect_ok "-src-fmt raw forces a VMDK file to be copied as bytes"
check "-src-fmt raw on a VMDK copies the file" cmp "$T/out/two.vmdk" "$T/out/asraw.raw"
run_dsc -src "$T/in/a.raw" -dst "$T/out/forced.raw" -src-fmt vmdk
expect_fail "-src-fmt vmdk on a raw file" a.raw
check "-src-fmt vmdk on a raw file leaves no output" test ! -e "$T/out/forced.raw"
rm -f "$T/out"/*

# ---- -max-capacity: the server's size syntax ----
for v in 100000 98K 1M 1m 1MiB 1mb 1G 0; do
	run_dsc -src "$T/in/a.raw" -dst "$T/out/cap.raw" -max-capacity "$v"
	expect_ok "-max-capacity $v admits a disk of 100000 bytes"
done
for v in 99999 97K 64k; do
	run_dsc -src "$T/in/a.raw" -dst "$T/out/cap.raw" -max-capacity "$v"
	expect_fail "-max-capacity $v refuses a disk of 100000 bytes" a.raw 'exceeds the limit of [0-9]+ bytes'
done
STDIN=$T/in/a.raw run_dsc -src - -dst "$T/out/cap.raw" --max-capacity=64K
expect_fail "--max-capacity=64K: a raw pipe is refused once past the limit" stdin 'exceeds the limit of 65536 bytes'
rm -f "$T/out"/*

# ---- -json ----
run_dsc -src "$T/in/a.raw" -dst "$T/out/j.vmdk" -dst-fmt vmdk -json
expect_ok "-json to a VMDK file"
check "-json: one object with output, writtenBytes, capacityBytes, elapsedSeconds" \
	python3 - "$T/stdout" "$T/out/j.vmdk" "$(fsize "$T/out/j.vmdk")" "$cap" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
o = json.loads(text)
path, size, cap = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
assert isinstance(o, dict), o
assert o['output'] == path, ('output', o['output'], path)
for k in ('writtenBytes', 'capacityBytes'):
    assert type(o[k]) is int, (k, o[k])
assert o['writtenBytes'] == size, ('writtenBytes', o['writtenBytes'], 'file size', size)
assert o['capacityBytes'] == cap, ('capacityBytes', o['capacityBytes'], cap)
assert type(o['elapsedSeconds']) in (int, float) and 0 <= o['elapsedSeconds'] < 60, o['elapsedSeconds']
PY
# The seconds as printed: rounded to the microsecond, no binary noise
# (0.082454, never 0.082454014999939318; %g writes 5e-05 below 0.0001).
check "-json: elapsedSeconds printed with at most 6 decimals" \
	grep -Eq '"elapsedSeconds":([0-9]+(\.[0-9]{1,6})?|[1-9](\.[0-9]{1,5})?e-0[56])[,}]' "$T/stdout"
run_dsc -src "$T/in/a.raw" -dst "$T/out/j.raw" -json
expect_ok "-json to a raw file"
check "-json raw: writtenBytes = capacityBytes = 100000 for random data" \
	python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["output"]==sys.argv[2] and o["writtenBytes"]==100000 and o["capacityBytes"]==100000, o' \
	"$T/stdout" "$T/out/j.raw"
gen_sparse "$T/in/s.raw" $((64 * MiB))
put_random "$T/in/s.raw" $((20 * MiB)) 4096
run_dsc -src "$T/in/s.raw" -dst "$T/out/js.raw" -json
expect_ok "-json to a raw file from a sparse source"
check "-json sparse: capacityBytes = 64 MiB, writtenBytes counts data only" \
	python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["capacityBytes"]==64<<20 and 4096<=o["writtenBytes"]<=1<<20, o' \
	"$T/stdout"
# A raw pipe into a VMDK file: the header is written twice (its size is
# known only at the end), but writtenBytes is the finished file's size.
cat "$T/in/a.raw" | "$DSC_CONVERT" -src - -dst "$T/out/jp.vmdk" -dst-fmt vmdk -q -json >"$T/stdout" 2>"$T/stderr"
check "-json from a pipe into a VMDK: exit 0" test $? = 0
check "-json from a pipe: writtenBytes = the VMDK's file size" \
	python3 -c 'import json,os,sys; o=json.load(open(sys.argv[1])); s=os.path.getsize(sys.argv[2]); assert o["writtenBytes"]==s, (o, s)' \
	"$T/stdout" "$T/out/jp.vmdk"

# -json with stdout as the output must not mix JSON into the image.
run_dsc -src "$T/in/a.raw" -dst - -json
if [ "$RC" -eq 2 ]; then
	pass "-json with -dst - is refused as a usage error"
elif [ "$RC" -eq 0 ] && cmp -s "$T/in/a.raw" "$T/stdout"; then
	pass "-json with -dst -: stdout is only the image"
else
	fail "-json with -dst -: stdout must be the image alone (or exit 2)" "$(last_run)"
fi
rm -f "$T/out"/*

# ---- -q and -p ----
run_dsc -src "$T/in/a.raw" -dst "$T/out/q.raw" -q
expect_ok "-q prints nothing"
check "-q: stdout empty" test ! -s "$T/stdout"
run_dsc -src "$T/in/a.raw" -dst "$T/out/n.raw"
expect_ok "no progress by default when stderr is not a terminal"
run_dsc -src "$T/in/a.raw" -dst - -p
if [ "$RC" -eq 0 ] && cmp -s "$T/in/a.raw" "$T/stdout"; then
	pass "-p with -dst -: progress stays off stdout"
else
	fail "-p with -dst -: progress stays off stdout" "$(last_run)"
fi
# A VMDK arriving through a pipe in two parts a second apart: the run lasts
# long enough for progress to show, and the capacity gives a percentage.
gen_random "$T/in/p.raw" $((2 * MiB))
run_dsc -src "$T/in/p.raw" -dst "$T/in/p.vmdk" -dst-fmt vmdk -q
half=$(($(fsize "$T/in/p.vmdk") / 2))
{ head -c $half "$T/in/p.vmdk"; sleep 1.5; tail -c +$((half + 1)) "$T/in/p.vmdk"; } |
	"$DSC_CONVERT" -src - -dst "$T/out/p.raw" -p >"$T/stdout" 2>"$T/stderr"
RC=$? LAST_CMD="(slow pipe) dsc-convert -src - -dst p.raw -p"
if [ "$RC" -eq 0 ] && grep -q '%' "$T/stderr"; then
	pass "-p shows a percentage on stderr"
else
	fail "-p shows a percentage on stderr" "$(last_run)"
fi
check "-p: the output is right" same_padded "$T/in/p.raw" "$T/out/p.raw"

# With stderr on a terminal (script(1) gives a pty) progress is on by default,
# and -q turns it off; a disk image is never written to a terminal.
if ! script -qec true /dev/null >/dev/null 2>&1; then
	echo "# script(1) cannot open a pseudo-terminal here: terminal checks skipped"
else
	feed="{ head -c $half '$T/in/p.vmdk'; sleep 1.5; tail -c +$((half + 1)) '$T/in/p.vmdk'; }"
	script -qec "$feed | '$DSC_CONVERT' -src - -dst '$T/out/tty.raw'" /dev/null >"$T/tty.out" 2>&1
	RC=$? LAST_CMD="script: (slow pipe) | dsc-convert -src - -dst tty.raw"
	check "progress by default when stderr is a terminal (exit $RC)" grep -q '%.*MB/s' "$T/tty.out"
	check "progress on a terminal: the output is right" same_padded "$T/in/p.raw" "$T/out/tty.raw"
	rm -f "$T/out/tty.raw"
	script -qec "$feed | '$DSC_CONVERT' -src - -dst '$T/out/tty.raw' -q" /dev/null >"$T/tty.out" 2>&1
	check "-q on a terminal: nothing printed" test ! -s "$T/tty.out"
	rm -f "$T/out/tty.raw"
	script -qec "'$DSC_CONVERT' -src '$T/in/a.raw' -dst -" /dev/null >"$T/tty.out" 2>&1
	RC=$?
	if [ "$RC" -ne 0 ] && grep -q 'terminal' "$T/tty.out" && [ "$(wc -c <"$T/tty.out")" -lt 1000 ]; then
		pass "-dst - on a terminal is refused"
	else
		fail "-dst - on a terminal is refused (exit $RC)" "$(head -c 300 "$T/tty.out" | od -c | head -5)"
	fi
fi
check "-p: stdout empty" test ! -s "$T/stdout"
dir_is "successful runs leave only their outputs" "$T/out" q.raw n.raw p.raw

finish
