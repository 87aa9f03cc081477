#!/bin/bash
# valgrind.sh - dsc-convert's main paths under valgrind: no invalid access,
# no use of uninitialised memory, no definite leak.
#
# Each run goes through `libtool --mode=execute valgrind --error-exitcode=99
# --leak-check=full --errors-for-leak-kinds=definite` on small images, and
# must end with dsc-convert's own exit status (0, 1 or 2), never 99:
# raw -> VMDK, VMDK -> raw, a qemu-made stream, stdin and stdout pipes,
# -json (SHA-256 of the output), one thread and two, a truncated input
# (the error path) and a usage error. Skipped in a sanitizer build (ASan
# and valgrind do not mix).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need valgrind
if grep -q '^SAN_CFLAGS = .*-fsanitize' "$top_builddir/Makefile" 2>/dev/null; then
	skip "sanitizer build: valgrind cannot run ASan binaries"
fi
LIBTOOL=$top_builddir/libtool
[ -x "$LIBTOOL" ] || LIBTOOL=

mkdir "$T/in" "$T/out"
I=$T/in O=$T/out
gen_sparse "$I/src.raw" $((3 * MiB + 1000))
put_random "$I/src.raw" 0 $((GRAIN + 5000))
put_fill "$I/src.raw" $((2 * MiB)) 70000 132
put_random "$I/src.raw" $((3 * MiB)) 1000

# vg EXPECTED-EXIT DESC [STDIN-FILE|-] ARGS...: run under valgrind.
vg() {
	local want=$1 desc=$2 stdin=$3
	shift 3
	[ "$stdin" = - ] && stdin=/dev/null
	local cmd=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
		--show-leak-kinds=definite --track-origins=yes --log-file="$T/vg.log" "$DSC_CONVERT" -q "$@")
	[ -n "$LIBTOOL" ] && cmd=("$LIBTOOL" --mode=execute "${cmd[@]}")
	"${cmd[@]}" <"$stdin" >"$T/stdout" 2>"$T/stderr"
	RC=$?
	if [ "$RC" -eq "$want" ] && [ ! -s "$T/vg.log" ]; then
		pass "valgrind: $desc"
	else
		fail "valgrind: $desc: exit $RC, want $want" "command: dsc-convert $*" \
			"stderr: $(head -c 600 "$T/stderr")" "valgrind: $(head -c 3000 "$T/vg.log")"
	fi
}

vg 0 "raw -> vmdk" - -src "$I/src.raw" -dst "$O/a.vmdk" -dst-fmt vmdk
vg 0 "raw -> vmdk, 1 thread" - -src "$I/src.raw" -dst "$O/a1.vmdk" -dst-fmt vmdk -threads 1
vg 0 "vmdk -> raw" - -src "$O/a.vmdk" -dst "$O/a.raw"
check "vmdk -> raw under valgrind: same disk" same_padded "$I/src.raw" "$O/a.raw"
vg 0 "vmdk -> raw, 1 thread" - -src "$O/a1.vmdk" -dst "$O/a1.raw" -threads 1
vg 0 "vmdk -> vmdk, -json" - -src "$O/a.vmdk" -dst "$O/b.vmdk" -dst-fmt vmdk -json
check "-json printed the summary" grep -q '"sha256"' "$T/stdout"
vg 0 "raw -> raw, -prealloc" - -src "$I/src.raw" -dst "$O/c.raw" -prealloc
vg 0 "stdin (vmdk) -> raw file" "$O/a.vmdk" -src - -dst "$O/d.raw"
vg 0 "raw stdin -> vmdk on stdout" "$I/src.raw" -src - -dst - -dst-fmt vmdk
cp "$T/stdout" "$O/e.vmdk"
vg 0 "vmdk file -> raw on stdout" - -src "$O/e.vmdk" -dst -
check "raw stdin -> vmdk stdout -> raw stdout: same disk" same_padded "$I/src.raw" "$T/stdout"
if command -v qemu-img >/dev/null; then
	qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$I/src.raw" "$I/q.vmdk"
	vg 0 "qemu-img stream -> raw" - -src "$I/q.vmdk" -dst "$O/q.raw"
fi
head -c 70000 "$O/a.vmdk" >"$I/cut.vmdk"
vg 1 "error path: truncated VMDK -> raw" - -src "$I/cut.vmdk" -dst "$O/cut.raw"
vg 1 "error path: truncated VMDK -> vmdk" - -src "$I/cut.vmdk" -dst "$O/cut.vmdk" -dst-fmt vmdk
vg 1 "error path: truncated VMDK on stdin" "$I/cut.vmdk" -src - -dst "$O/cut2.raw"
vg 1 "error path: missing source" - -src "$I/none.vmdk" -dst "$O/none.raw"
vg 2 "usage error" - -src "$I/src.raw" -bogus
check "error paths left no output" test ! -e "$O/cut.raw" -a ! -e "$O/cut.vmdk" -a ! -e "$O/none.raw"
finish
