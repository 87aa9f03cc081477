#!/bin/bash
# vhd.sh - VHD ("vpc") in dsc-convert: reading every kind qemu-img and
# qemu-io make (dynamic, fixed, force_size, odd sizes that CHS rounds up,
# 1.5 GiB, VM-style out-of-order writes, the 2040 GiB maximum), each from a
# file and from a pipe, compared byte for byte with `qemu-img convert -O
# raw`; writing dynamic, fixed, force_size and azure to a file and to a
# pipe, each output checked by `qemu-img compare` (qemu reading it as vpc),
# libvhdi's vhdiinfo, a footer/header checksum lint, and its size against
# qemu-img's for the same options; and the refusals (differencing disks,
# bad checksums, sizes over 2040 GiB, -max-capacity, a dynamic VHD from a
# raw pipe), each one line, leaving no output.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img qemu-io vhdiinfo
set -o pipefail

mkdir "$T/in" "$T/out"
I=$T/in O=$T/out
GiB=$((1024 * MiB))

# read_both IMG DESC [ARGS]: dsc reads IMG from the file and from a pipe
# (ARGS added on the pipe, e.g. -src-fmt vhd) into what qemu-img reads.
read_both() { read_like_qemu vpc "$@"; }

# vhd_lint FILE: footer checksum, the copy at 0 of a dynamic disk, the
# dynamic header's checksum and every BAT entry inside the file.
vhd_lint() {
	python3 - "$1" <<'EOF'
import struct, sys
b = open(sys.argv[1], 'rb').read()
def err(m): print('%s: %s' % (sys.argv[1], m)); sys.exit(1)
def ck(x, at):
    return (~sum(x[:at] + b'\0\0\0\0' + x[at + 4:])) & 0xffffffff
f = b[-512:]
if f[:8] != b'conectix': err('no footer cookie')
if ck(f, 64) != struct.unpack('>I', f[64:68])[0]: err('footer checksum')
typ = struct.unpack('>I', f[60:64])[0]
size = struct.unpack('>Q', f[48:56])[0]
if typ == 2:
    if len(b) - 512 != size: err('fixed: %d data bytes, current_size %d' % (len(b) - 512, size))
elif typ == 3:
    if b[:512] != f: err('footer copy at 0 differs')
    h = b[512:1536]
    if h[:8] != b'cxsparse' or ck(h, 36) != struct.unpack('>I', h[36:40])[0]: err('dynamic header')
    toff, = struct.unpack('>Q', h[16:24])
    n, bs = struct.unpack('>II', h[28:36])
    if n * bs < size or n != (size + bs - 1) // bs: err('%d entries of %d for %d bytes' % (n, bs, size))
    for i in range(n):
        e, = struct.unpack('>I', b[toff + 4 * i:toff + 4 * i + 4])
        if e != 0xffffffff and e * 512 + 512 + bs > len(b) - 512: err('BAT entry %d outside' % i)
else:
    err('type %d' % typ)
EOF
}

# ---- sources ---------------------------------------------------------------
# An odd size (not a CHS product, not a multiple of 512), data in a few
# places, zero runs between them.
gen_sparse "$I/odd.raw" $((40 * MiB + 12345))
put_random "$I/odd.raw" 0 70000
put_random "$I/odd.raw" $((3 * MiB + 7)) 300000
put_random "$I/odd.raw" $((17 * MiB)) 65536
put_random "$I/odd.raw" $((40 * MiB)) 12345
gen_random "$I/small.raw" 5000
# 1.5 GiB with 1 MiB of data at 0, 100, 700 and 1200 MiB (facts §1 EXP).
gen_sparse "$I/big.raw" $((1536 * MiB))
for m in 0 100 700 1200; do put_random "$I/big.raw" $((m * MiB)) $MiB; done

# ---- reading what qemu-img makes -------------------------------------------
for src in odd small big; do
	qemu-img convert -q -f raw -O vpc "$I/$src.raw" "$I/$src-dyn.vhd"
	read_both "$I/$src-dyn.vhd" "qemu dynamic ($src)"
	qemu-img convert -q -f raw -O vpc -o force_size=on "$I/$src.raw" "$I/$src-dynf.vhd"
	read_both "$I/$src-dynf.vhd" "qemu dynamic force_size ($src)"
	[ $src = big ] && continue
	qemu-img convert -q -f raw -O vpc -o subformat=fixed "$I/$src.raw" "$I/$src-fix.vhd"
	read_both "$I/$src-fix.vhd" "qemu fixed ($src)" -src-fmt vhd
	qemu-img convert -q -f raw -O vpc -o subformat=fixed,force_size=on "$I/$src.raw" "$I/$src-fixf.vhd"
	read_both "$I/$src-fixf.vhd" "qemu fixed force_size ($src)" -src-fmt vhd
done
check "CHS rounding: qemu's fixed odd.vhd is larger than odd.raw" \
	test "$(fsize "$I/odd-fix.vhd")" -gt $((40 * MiB + 12345 + 512))

# Empty and zero disks: no extents at all.
qemu-img create -q -f vpc "$I/empty.vhd" 10M
read_both "$I/empty.vhd" "qemu empty dynamic"
qemu-img create -q -f vpc -o subformat=fixed "$I/empty-fix.vhd" 10M
read_both "$I/empty-fix.vhd" "qemu empty fixed" -src-fmt vhd

# A VM's disk: writes out of order, so blocks are in the file in the order
# they were written, not in guest order.
qemu-img create -q -f vpc "$I/vm.vhd" 64M
qemu-io -f vpc -c "write -P 0xa1 40M 1M" -c "write -P 0xb2 3M 4k" -c "write -P 0xc3 60M 512k" \
	-c "write -P 0xd4 0 8k" -c "write -P 0xe5 20M 3M" -c "write -P 0xf6 3M 1k" "$I/vm.vhd" >/dev/null
read_both "$I/vm.vhd" "qemu-io out-of-order writes (raw output)"
# From a pipe the blocks come in file order: a raw file takes them, a
# writer that needs ascending order says so.
run_pipe "$I/vm.vhd" -src - -dst "$O/vm.qcow2" -dst-fmt qcow2
expect_fail "out-of-order VHD from a pipe into qcow2 refused" "vm.qcow2" "ascending order"
dir_is "refused qcow2: no output" "$O"
# From the file (guest order) any writer takes it.
run_dsc -src "$I/vm.vhd" -dst "$O/vm.qcow2" -dst-fmt qcow2
expect_ok "out-of-order VHD from the file into qcow2"
check "qcow2 of the VM disk is the VHD" qemu-img compare -q -f vpc -F qcow2 "$I/vm.vhd" "$O/vm.qcow2"
rm -f "$O/vm.qcow2"

# The largest disk VHD holds (2040 GiB; a "2 TiB" disk is over it), sparse,
# with data near both ends.
qemu-img create -q -f vpc "$I/max.vhd" 2040G
qemu-io -f vpc -c "write -P 0x5a 1M 64k" -c "write -P 0x6b 2039G 2M" "$I/max.vhd" >/dev/null
read_both "$I/max.vhd" "2040 GiB sparse dynamic"
check "2040 GiB: qemu refuses 2041G" bash -c "! qemu-img create -q -f vpc '$T/x.vhd' 2041G"
rm -f "$T/x.vhd"

# ---- writing ---------------------------------------------------------------
# verify SRC OUT DESC: qemu reads OUT as SRC; libvhdi opens it; it lints;
# dsc reads it back.
verify() {
	local src=$1 out=$2 desc=$3
	check "$desc: qemu-img compare with the source" qemu-img compare -q -f raw -F vpc "$src" "$out"
	check "$desc: vhdiinfo opens it" vhdiinfo "$out"
	check "$desc: footer, header, BAT lint" vhd_lint "$out"
	if "$DSC_CONVERT" -q -src "$out" -dst "$T/back.raw" 2>"$T/back.err"; then
		check "$desc: dsc reads it back" qemu-img compare -q -f vpc -F raw "$out" "$T/back.raw"
	else
		check "$desc: dsc reads it back: $(head -c 300 "$T/back.err")" false
	fi
	rm -f "$T/back.raw"
}

for src in odd small; do
	for o in subformat=dynamic subformat=fixed force_size=on subformat=fixed,force_size=on; do
		qemu-img convert -q -f raw -O vpc -o "$o" "$I/$src.raw" "$T/q.vhd"
		run_dsc -src "$I/$src.raw" -dst "$O/w.vhd" -dst-fmt vhd -o "$o"
		expect_ok "write $src -o $o to a file"
		verify "$I/$src.raw" "$O/w.vhd" "$src -o $o (file)"
		check "$src -o $o: same size as qemu-img's" test "$(fsize "$O/w.vhd")" = "$(fsize "$T/q.vhd")"
		# To a real pipe: fixed streams; dynamic takes two passes.
		"$DSC_CONVERT" -q -src "$I/$src.raw" -dst - -dst-fmt vhd -o "$o" 2>"$T/stderr" | cat >"$T/p.vhd"
		check "write $src -o $o to a pipe" test ! -s "$T/stderr"
		verify "$I/$src.raw" "$T/p.vhd" "$src -o $o (pipe)"
		check "$src -o $o: pipe output is the file's size" \
			test "$(fsize "$T/p.vhd")" = "$(fsize "$O/w.vhd")"
		rm -f "$O/w.vhd" "$T/p.vhd" "$T/q.vhd"
	done
done
# The dynamic writer leaves zero blocks out and keeps qemu's layout.
run_dsc -src "$I/big.raw" -dst "$O/big.vhd" -dst-fmt vhd
expect_ok "1.5 GiB raw to dynamic VHD"
verify "$I/big.raw" "$O/big.vhd" "1.5 GiB dynamic"
check "1.5 GiB dynamic: 4 blocks of data" test "$(fsize "$O/big.vhd")" -lt $((10 * MiB))
rm -f "$O/big.vhd"
# VHD to VHD, out-of-order source from its file.
run_dsc -src "$I/vm.vhd" -dst "$O/vm2.vhd" -dst-fmt vhd
expect_ok "VM disk VHD to dynamic VHD"
check "VM disk VHD to VHD: same content" qemu-img compare -q -f vpc -F vpc "$I/vm.vhd" "$O/vm2.vhd"
rm -f "$O/vm2.vhd"

# A raw pipe (size unknown until its end) into a fixed VHD streams; into a
# dynamic one it is refused before anything is written.
cat "$I/odd.raw" | "$DSC_CONVERT" -q -src - -dst - -dst-fmt vhd -o subformat=fixed 2>"$T/stderr" >"$T/p.vhd"
check "raw pipe to fixed VHD on a pipe" test ! -s "$T/stderr"
verify "$I/odd.raw" "$T/p.vhd" "raw pipe to fixed"
rm -f "$T/p.vhd"
run_pipe "$I/odd.raw" -src - -dst "$O/d.vhd" -dst-fmt vhd
expect_fail "raw pipe to dynamic VHD refused" "d.vhd" "needs the disk size before the data"
dir_is "raw pipe to dynamic: no output" "$O"
# Dynamic to a pipe from a pipe: no second pass possible.
cat "$I/odd-dyn.vhd" | "$DSC_CONVERT" -src - -dst - -dst-fmt vhd 2>"$T/stderr" | cat >"$T/p.vhd"
check "dynamic VHD to a pipe from a pipe refused (needs a seekable source)" \
	grep -q "needs a seekable source" "$T/stderr"
check "... and nothing written" test ! -s "$T/p.vhd"
rm -f "$T/p.vhd"

# azure=on: fixed, exact size in the footer, rounded up to a whole MiB.
for src in odd small; do
	run_dsc -src "$I/$src.raw" -dst "$O/az.vhd" -dst-fmt vhd -o azure=on
	expect_ok "azure=on ($src)"
	verify "$I/$src.raw" "$O/az.vhd" "azure=on ($src)"
	vs=$(qemu-img info -f vpc --output=json "$O/az.vhd" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
	check "azure=on ($src): virtual size $vs is a whole MiB" test $((vs % MiB)) -eq 0
	check "azure=on ($src): file is the size + 512" test "$(fsize "$O/az.vhd")" -eq $((vs + 512))
	check "azure=on ($src): fixed" bash -c "vhdiinfo '$O/az.vhd' | grep -qi 'fixed'"
	rm -f "$O/az.vhd"
done

# azure=on with options that contradict it: refused, no output.
for o in azure=on,subformat=dynamic azure=on,force_size=off; do
	run_dsc -src "$I/small.raw" -dst "$O/az.vhd" -dst-fmt vhd -o "$o"
	expect_fail "-o $o refused" "az.vhd" "azure=on makes a fixed VHD of the exact size"
	dir_is "-o $o: no output" "$O"
done
run_dsc -src "$I/small.raw" -dst "$O/az.vhd" -dst-fmt vhd -o azure=on,subformat=FIXED,force_size=on
expect_ok "-o azure=on,subformat=FIXED,force_size=on (what it implies)"
rm -f "$O/az.vhd"

# Over 2040 GiB: refused by the writer before a byte.
gen_sparse "$I/huge.raw" $((2041 * GiB))
run_dsc -src "$I/huge.raw" -dst "$O/h.vhd" -dst-fmt vhd
expect_fail "2041 GiB to VHD refused" "h.vhd" "exceeds VHD's maximum"
dir_is "2041 GiB: no output" "$O"
rm -f "$I/huge.raw"

# ---- refusals when reading ---------------------------------------------------
# mutate IN OUT PYTHON: a copy of IN changed by PYTHON (b: bytearray; fix(o)
# recomputes the footer checksum at o, hfix(o) the dynamic header's).
mutate() {
	python3 - "$1" "$2" "$3" <<'EOF'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
def ck(o, n, at):
    b[o + at:o + at + 4] = b'\0' * 4
    b[o + at:o + at + 4] = struct.pack('>I', (~sum(b[o:o + n])) & 0xffffffff)
def fix(o): ck(o, 512, 64)
def hfix(o): ck(o, 1024, 36)
exec(sys.argv[3])
open(sys.argv[2], 'wb').write(b)
EOF
}
refuse() { # IMG DESC ERE [ARGS]: refused from the file, nothing written
	local img=$1 desc=$2 ere=$3
	shift 3
	run_dsc -src "$img" "$@" -dst "$O/x.raw"
	expect_fail "$desc" "$(basename "$img")" "$ere"
	dir_is "$desc: no output" "$O"
}
D=$I/small-dyn.vhd
mutate "$D" "$I/diff.vhd" 'b[60:64]=struct.pack(">I",4); fix(0); b[-512:]=b[:512]'
refuse "$I/diff.vhd" "differencing VHD" "differencing VHD .*parent.* not supported"
mutate "$D" "$I/badsum.vhd" 'b[-512+40]^=1'
refuse "$I/badsum.vhd" "bad footer checksum" "VHD footer at byte [0-9]+: checksum 0x[0-9a-f]+ does not match 0x"
mutate "$D" "$I/badcopy.vhd" 'b[40]^=1; fix(0)'
refuse "$I/badcopy.vhd" "footer copy differs" "copy at byte 0 does not match"
mutate "$D" "$I/badhdr.vhd" 'b[512+32]^=1'
refuse "$I/badhdr.vhd" "bad dynamic header checksum" "dynamic header at byte 512: checksum"
mutate "$D" "$I/bs.vhd" 'b[512+32:512+36]=struct.pack(">I",3<<20); hfix(512)'
refuse "$I/bs.vhd" "block size not a power of two" "block size 3145728 is not a power of two"
mutate "$D" "$I/bat.vhd" 'b[1536:1540]=struct.pack(">I",0x7fffff00)'
refuse "$I/bat.vhd" "BAT entry outside the file" "BAT entry 0: block at byte"
mutate "$D" "$I/ent.vhd" 'b[512+28:512+32]=struct.pack(">I",0xffffff); hfix(512)'
refuse "$I/ent.vhd" "huge max_table_entries" "BAT of 16777215 entries exceeds the limit"
mutate "$D" "$I/type.vhd" 'b[60:64]=struct.pack(">I",7); fix(0); b[-512:]=b[:512]'
refuse "$I/type.vhd" "unknown disk type" "unknown disk type 7"
mutate "$I/small-fix.vhd" "$I/over.vhd" 'o=len(b)-512; b[o+48:o+56]=struct.pack(">Q",2041<<30); b[o+28:o+32]=b"win "; fix(o)'
refuse "$I/over.vhd" "virtual size over 2040 GiB" "exceeds the format's maximum"
refuse "$I/max.vhd" "-max-capacity below the footer's size" "exceeds the limit of 1099511627776" -max-capacity 1T
run_pipe "$I/diff.vhd" -src - -dst "$O/x.raw"
expect_fail "differencing VHD on a pipe" stdin "differencing VHD"
dir_is "differencing VHD on a pipe: no output" "$O"
# A fixed VHD from a pipe is found only when named; its footer is checked.
run_pipe "$I/small-fix.vhd" -src - -dst "$O/x.raw"
expect_fail "fixed VHD on a pipe, not named" stdin "name the format with -src-fmt vhd"
mutate "$I/small-fix.vhd" "$I/fixbad.vhd" 'b[-512+40]^=1'
run_pipe "$I/fixbad.vhd" -src - -src-fmt vhd -dst "$O/x.raw"
expect_fail "fixed VHD on a pipe with a bad footer" stdin "checksum"
dir_is "fixed VHD with a bad footer: no output" "$O"
head -c 3000 "$I/small-fix.vhd" >"$I/trunc.vhd"
run_pipe "$I/trunc.vhd" -src - -src-fmt vhd -dst "$O/x.raw"
expect_fail "truncated fixed VHD on a pipe" stdin "no VHD footer|checksum"
dir_is "truncated fixed VHD: no output" "$O"

# A Virtual PC style fixed disk: creator "vpc ", the exact size in the
# footer and its data, and the spec's geometry, which rounds it down: qemu
# (and dsc) read the geometry's size, from a file and from a pipe (the
# extra sectors are still held back when the footer arrives).
mutate "$I/odd-fixf.vhd" "$I/vpc.vhd" '
o = len(b) - 512
ts = struct.unpack(">Q", b[o + 48:o + 56])[0] // 512
spt, cth = 17, ts // 17
heads = max(4, (cth + 1023) // 1024)
if cth >= heads * 1024 or heads > 16: spt, heads, cth = 31, 16, ts // 31
if cth >= heads * 1024: spt, heads, cth = 63, 16, ts // 63
b[o + 28:o + 32] = b"vpc "
b[o + 56:o + 60] = struct.pack(">HBB", cth // heads, heads, spt)
fix(o)'
check "vpc.vhd: the geometry is below the data" \
	test "$(qemu-img info -f vpc --output=json "$I/vpc.vhd" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" -lt $(($(fsize "$I/vpc.vhd") - 512))
read_both "$I/vpc.vhd" "Virtual PC style fixed (geometry below the data)" -src-fmt vhd

# Block bitmaps: a clear bit reads as zeros (the spec's rule; qemu sets
# every bit and does not look at them).
mutate "$D" "$I/bitmap.vhd" '
e, = struct.unpack(">I", b[1536:1540]); o = e * 512
b[o] = 0x7f      # sector 0 absent
b[o + 1] = 0x00  # sectors 8-15 absent'
python3 - "$I/small.raw" "$T/bitmap.ref" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], 'rb').read()); b += bytes(-len(b) % 512)
b[0:512] = bytes(512); b[8 * 512:16 * 512] = bytes(min(8 * 512, max(0, len(b) - 8 * 512)))
open(sys.argv[2], 'wb').write(b[:len(b)])
EOF
run_dsc -src "$I/bitmap.vhd" -dst "$O/bm.raw"
expect_ok "VHD with cleared bitmap bits"
python3 -c "
import sys; a=open('$O/bm.raw','rb').read(); r=open('$T/bitmap.ref','rb').read()
n=len(r); sys.exit(0 if a[:n]==r and not any(a[n:]) else 1)"
check "cleared bitmap bits read as zeros" test $? -eq 0
rm -f "$O/bm.raw"

finish
