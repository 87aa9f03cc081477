#!/bin/bash
# hostile.sh - dsc-convert in a hostile environment: a full disk (a 2 MiB
# tmpfs as the destination's directory, root only), /dev/full as stdout, a
# reader that goes away, and a capacity bomb on stdin (to VMDK, and to raw
# under -max-capacity). Each must end in
# exit 1 with one line naming the file, leave nothing behind (no output,
# no temporary, no space used), and stay within time and memory bounds.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img

mkdir "$T/in" "$T/full"
I=$T/in F=$T/full
gen_random "$I/rand.raw" $((4 * MiB))
run_dsc -src "$I/rand.raw" -dst "$I/rand.vmdk" -dst-fmt vmdk
expect_ok "setup: rand.vmdk"
gen_sparse "$I/sparse.raw" $((64 * MiB))
put_random "$I/sparse.raw" $((10 * MiB)) 1000

# ---- a full disk ----
mounted=
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=2m,mode=0755 tmpfs "$F" 2>/dev/null; then
	mounted=1
	trap 'umount "$F" 2>/dev/null; cleanup' EXIT
else
	echo "# not root or no tmpfs: the disk-full checks are skipped"
fi
if [ -n "$mounted" ]; then
	used0=$(df --output=used -B1 "$F" | tail -1)
	run_dsc -src "$I/rand.raw" -dst "$F/out.vmdk" -dst-fmt vmdk
	expect_fail "disk full: raw -> vmdk" out.vmdk 'space'
	dir_is "disk full: raw -> vmdk left nothing" "$F"
	run_dsc -src "$I/rand.vmdk" -dst "$F/out.raw"
	expect_fail "disk full: vmdk -> raw" out.raw 'space'
	dir_is "disk full: vmdk -> raw left nothing" "$F"
	STDIN=$I/rand.vmdk run_dsc -src - -dst "$F/out.raw"
	expect_fail "disk full: vmdk on stdin -> raw" out.raw 'space'
	dir_is "disk full: stdin run left nothing" "$F"
	# -prealloc: refused before a byte is written.
	run_dsc -src "$I/sparse.raw" -dst "$F/pre.raw" -prealloc
	expect_fail "disk full: -prealloc of 64 MiB on 2 MiB" pre.raw 'space'
	dir_is "disk full: -prealloc left nothing" "$F"
	check "disk full: all space given back" test "$(df --output=used -B1 "$F" | tail -1)" = "$used0"
	# An existing destination survives a failed replacement.
	head -c 100000 /dev/urandom >"$F/keep.raw"
	cp "$F/keep.raw" "$T/keep.orig"
	run_dsc -src "$I/rand.vmdk" -dst "$F/keep.raw"
	expect_fail "disk full: replacing an existing file" keep.raw 'space'
	check "disk full: the existing file is intact" cmp "$T/keep.orig" "$F/keep.raw"
	dir_is "disk full: only the existing file" "$F" keep.raw
	rm -f "$F/keep.raw"
	# Sparse output fits: holes take no space.
	run_dsc -src "$I/sparse.raw" -dst "$F/sparse.raw"
	expect_ok "disk full: a 64 MiB sparse disk fits in 2 MiB"
	check "disk full: sparse output is the same disk" cmp "$I/sparse.raw" "$F/sparse.raw"
	rm -f "$F/sparse.raw"
fi

# ---- stdout is full or goes away ----
"$DSC_CONVERT" -q -src "$I/rand.vmdk" -dst - >/dev/full 2>"$T/stderr" </dev/null
RC=$? LAST_CMD="dsc-convert -src rand.vmdk -dst - >/dev/full"
expect_fail "stdout is /dev/full" stdout 'space'
"$DSC_CONVERT" -q -src "$I/rand.raw" -dst - -dst-fmt vmdk 2>"$T/stderr" </dev/null | head -c 1000 >/dev/null
RC=${PIPESTATUS[0]} LAST_CMD="dsc-convert -src rand.raw -dst - -dst-fmt vmdk | head -c 1000"
expect_fail "the reader of stdout goes away" stdout 'pipe|closed|write'

# ---- a capacity bomb through a pipe, bounded in memory and time ----
# A valid header announcing 64 TiB, one grain, to VMDK on stdout: the
# output is small (no zeros are written for VMDK holes), memory stays flat.
python3 - "$I/bomb.vmdk" <<'PY'
import struct, sys, zlib
cap = 1 << 37
desc = (b'# Disk DescriptorFile\ncreateType="streamOptimized"\n# Extent description\n'
        b'RW %d SPARSE "bomb.vmdk"\n' % cap).ljust(512, b'\0')
h = struct.pack('<4sIIQQQQIQQQB4sH', b'KDMV', 3, 0x30001, cap, 128, 1, 1, 512, 0, 0, 2, 0,
                b'\n \r\n', 1).ljust(512, b'\0')
z = zlib.compress(b'bomb' * 16384)
g = struct.pack('<QI', (cap - 128), len(z)) + z
g += bytes(-len(g) % 512)
open(sys.argv[1], 'wb').write(h + desc + g + struct.pack('<QII', 0, 0, 0) + bytes(500))
PY
( ulimit -v 524288 2>/dev/null && "$DSC_CONVERT" -version >/dev/null 2>&1 ) && lim="ulimit -v 524288" || lim=:
( eval "$lim"; exec timeout 60 "$DSC_CONVERT" -q -src - -dst - -dst-fmt vmdk ) <"$I/bomb.vmdk" 2>"$T/stderr" |
	wc -c >"$T/bomb.size"
RC=${PIPESTATUS[0]}
check "64 TiB bomb -> VMDK on a pipe: exit 0 within 60 s and ${lim#:}" test "$RC" -eq 0
check "64 TiB bomb -> VMDK: output under 16 MiB ($(cat "$T/bomb.size") bytes)" \
	test "$(cat "$T/bomb.size")" -lt $((16 * MiB))
# The same header to a raw pipe would be 64 TiB of zeros: -max-capacity
# refuses it from the header, before a byte is written.
start=$(date +%s)
timeout 20 "$DSC_CONVERT" -q -src - -dst - -max-capacity 1T <"$I/bomb.vmdk" 2>"$T/stderr" |
	wc -c >"$T/bomb.size"
RC=${PIPESTATUS[0]} LAST_CMD="dsc-convert -src - -dst - -max-capacity 1T <bomb.vmdk | wc -c"
expect_fail "64 TiB bomb -> raw pipe, -max-capacity 1T" stdin \
	'image of 70368744177664 bytes exceeds the limit of 1099511627776 bytes'
check "64 TiB bomb -> raw pipe, -max-capacity 1T: nothing written" test "$(cat "$T/bomb.size")" -eq 0
check "64 TiB bomb -> raw pipe, -max-capacity 1T: refused within 5 s" test $(($(date +%s) - start)) -le 5
finish
