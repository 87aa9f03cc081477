#!/bin/bash
# corpus.sh - VMDK files made by other tools (../shared/corpus, see its
# README): each gives its documented outcome. The corpus is looked for at
# ../shared/corpus beside the source tree (top_srcdir), where CI puts it
# beside its fresh clone, or at DSC_CORPUS. Skipped when it is absent (a
# user's fresh clone), except under CI (CI=true), where that fails.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

C=${DSC_CORPUS:-$top_srcdir/../shared/corpus}
if [ ! -f "$C/iotest-version3.vmdk" ]; then
	missing "the corpus at $C" "CI has it at ../shared/corpus beside the clone; DSC_CORPUS names another place"
fi
dsc_init
need qemu-img
C=$(cd "$C" && pwd)
O=$T/out
mkdir "$O"

# iotest-version3.vmdk (VMware, 16 GiB): for i = 0..99 the 512 bytes at
# i*655360 + i*512 are each 0x30 + i % 10 (the corpus README). qemu-img reads
# 51 more sectors the README leaves out: for k = 1..51 the 512 bytes at
# k*(320 MiB + 256 KiB) are each 0x30 + k % 10. Everything else is zero.
# Checked through SEEK_DATA so the 16 GiB sparse output costs no reading.
iotest_ok() {
	python3 - "$1" <<'PY'
import os, sys
path = sys.argv[1]
size = os.path.getsize(path)
if size != 16 << 30: sys.exit('%s: size %d, want 16 GiB' % (path, size))
want = {i * 655360 + i * 512: bytes([0x30 + i % 10]) * 512 for i in range(100)}
want.update({k * (320 << 20 | 256 << 10): bytes([0x30 + k % 10]) * 512 for k in range(1, 52)})
fd = os.open(path, os.O_RDONLY)
seen, pos, data_bytes = set(), 0, 0
while pos < size:
    try:
        start = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError:
        break
    end = os.lseek(fd, start, os.SEEK_HOLE)
    data_bytes += end - start
    if data_bytes > 64 << 20: sys.exit('more than 64 MiB allocated: not sparse')
    os.lseek(fd, start, os.SEEK_SET)
    buf = os.read(fd, end - start)
    while len(buf) < end - start:
        more = os.read(fd, end - start - len(buf))
        if not more: break
        buf += more
    for off in range(start - start % 512, end, 512):
        lo = max(off, start)
        chunk = buf[lo - start:min(off + 512, end) - start]
        if off in want:
            exp = want[off][lo - off:lo - off + len(chunk)]
            if chunk != exp: sys.exit('sector at %d: wrong bytes %r...' % (off, chunk[:8]))
            seen.add(off)
        elif any(chunk):
            sys.exit('non-zero bytes in sector at %d' % off)
    pos = end
missing = sorted(set(want) - seen)
if missing: sys.exit('%d expected sectors read as holes, first at %d' % (len(missing), missing[0]))
print('151 sectors right, %d bytes of data extents' % data_bytes)
PY
}

run_dsc -src "$C/iotest-version3.vmdk" -dst "$O/iotest.raw"
expect_ok "iotest-version3.vmdk (VMware stream) -> raw"
check "iotest-version3.vmdk: 16 GiB, 100 + 51 sectors of 0x30 + i % 10, zeros elsewhere" iotest_ok "$O/iotest.raw"
if have qemu-img "the comparison with qemu-img"; then
	check "iotest-version3.vmdk: equal to qemu-img's reading" \
		qemu-img compare -q -f vmdk -F raw "$C/iotest-version3.vmdk" "$O/iotest.raw"
fi
rm -f "$O/iotest.raw"
run_dsc -src "$C/iotest-version3.vmdk" -dst "$O/iotest.vmdk" -dst-fmt vmdk
expect_ok "iotest-version3.vmdk -> dsc VMDK"
check "iotest-version3.vmdk -> dsc VMDK: layout" vmdk_lint "$O/iotest.vmdk" $((16 * GiB))
if have vmdkinfo "the check with vmdkinfo"; then
	check "iotest-version3.vmdk -> dsc VMDK: vmdkinfo" vmdkinfo_ok "$O/iotest.vmdk" $((16 * GiB))
fi
if have qemu-img "the comparison with qemu-img"; then
	check "iotest-version3.vmdk -> dsc VMDK: qemu-img compare" \
		qemu-img compare -q -f vmdk -F vmdk "$C/iotest-version3.vmdk" "$O/iotest.vmdk"
fi
rm -f "$O"/*

# The ttylinux stream cut after 35 grains: truncated, nothing written.
tty=$C/govmomi/ttylinux-pc_i486-16.1-disk1.vmdk
run_dsc -src "$tty" -dst "$O/tty.raw"
expect_fail "ttylinux (truncated stream) -> raw" ttylinux-pc_i486-16.1-disk1.vmdk truncat
dir_is "ttylinux: no output, no temporary" "$O"
"$DSC_CONVERT" -src - -dst "$O/tty.raw" <"$tty" >/dev/null 2>"$T/stderr"
RC=$? LAST_CMD="dsc-convert -src - -dst tty.raw <ttylinux"
expect_fail "ttylinux on stdin -> raw" "" truncat
dir_is "ttylinux on stdin: no output" "$O"

# qemu's 64 KiB stream with no grains.
run_dsc -src "$C/go-vmdk-parser/vmdk-streamoptimized.img" -dst "$O/so.raw"
expect_ok "vmdk-streamoptimized.img -> raw"
check "vmdk-streamoptimized.img: 64 KiB of zeros" cmp "$O/so.raw" <(head -c 65536 /dev/zero)
check "vmdk-streamoptimized.img: exactly 64 KiB" size_is "$O/so.raw" 65536
rm -f "$O"/*

# Blanked descriptor, cut file: a clear error.
run_dsc -src "$C/go-vmdk-parser/vmdk-invalid.img" -dst "$O/inv.raw"
expect_fail "vmdk-invalid.img" vmdk-invalid.img ''
dir_is "vmdk-invalid.img: no output" "$O"

# monolithicSparse: from the file and from a pipe, what qemu-img reads.
for f in dfvfs/ext2.vmdk go-vmdk-parser/vmdk-monolith.img; do
	qemu-img convert -f vmdk -O raw "$C/$f" "$O/q.raw"
	run_dsc -src "$C/$f" -dst "$O/m.raw"
	expect_ok "$f (monolithicSparse) -> raw"
	check "$f: the file reads as qemu-img reads it" cmp "$O/q.raw" "$O/m.raw"
	run_pipe "$C/$f" -src - -dst "$O/p.raw"
	expect_ok "$f (monolithicSparse) from a pipe -> raw"
	check "$f: the pipe reads as qemu-img reads it" cmp "$O/q.raw" "$O/p.raw"
	rm -f "$O"/*
done

finish
