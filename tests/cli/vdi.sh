#!/bin/bash
# vdi.sh - VirtualBox VDI in dsc-convert: reading what qemu-img and qemu-io
# make (dynamic, static=on, odd sizes, 1.5 GiB, VM-style out-of-order
# writes, a discarded block (qemu's vdi driver writes zeros for write -z and
# ignores discard, so the test patches a map entry to 0xfffffffe),
# VirtualBox's layout, a 2 TiB sparse disk), each from a file
# and from a pipe, compared byte for byte with `qemu-img convert -O raw`;
# writing dynamic and static to a file and to a pipe, each output checked by
# `qemu-img check`, `qemu-img compare`, `qemu-img info` and dsc reading it
# back, and its size against qemu-img's; and the refusals (differencing
# images, bad headers and maps, out-of-order data into an ordered writer,
# a raw pipe into VDI), each one line, leaving no output.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img qemu-io
set -o pipefail

mkdir "$T/in" "$T/out"
I=$T/in O=$T/out
GiB=$((1024 * MiB))

# read_both IMG DESC: dsc reads IMG from the file and from a pipe into what
# qemu-img reads.
read_both() { read_like_qemu vdi "$@"; }

vsize() { qemu-img info -f vdi --output=json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])'; }

# ---- sources ---------------------------------------------------------------
gen_sparse "$I/odd.raw" $((40 * MiB + 12345))
put_random "$I/odd.raw" 0 70000
put_random "$I/odd.raw" $((3 * MiB + 7)) 300000
put_random "$I/odd.raw" $((17 * MiB)) 65536
put_random "$I/odd.raw" $((40 * MiB)) 12345
gen_random "$I/small.raw" 5000
gen_sparse "$I/big.raw" $((1536 * MiB))
for m in 0 100 700 1200; do put_random "$I/big.raw" $((m * MiB)) $MiB; done

# ---- reading what qemu-img makes -------------------------------------------
for src in odd small big; do
	qemu-img convert -q -f raw -O vdi "$I/$src.raw" "$I/$src-dyn.vdi"
	read_both "$I/$src-dyn.vdi" "qemu dynamic ($src)"
	[ $src = big ] && continue
	qemu-img convert -q -f raw -O vdi -o static=on "$I/$src.raw" "$I/$src-st.vdi"
	read_both "$I/$src-st.vdi" "qemu static ($src)"
done
qemu-img create -q -f vdi "$I/empty.vdi" 10M
read_both "$I/empty.vdi" "qemu empty dynamic"
qemu-img create -q -f vdi -o static=on "$I/empty-st.vdi" 10M
read_both "$I/empty-st.vdi" "qemu empty static"

# A VM's disk: blocks are allocated in the order they are written, so the
# file holds them out of guest order. qemu's vdi driver has no discard and
# writes zeros for write -z: the block at 60 MiB is then marked discarded
# (0xfffffffe) by hand, as VirtualBox's compact does.
qemu-img create -q -f vdi "$I/vm.vdi" 64M
qemu-io -f vdi -c "write -P 0xa1 40M 1M" -c "write -P 0xb2 3M 4k" -c "write -P 0xc3 60M 512k" \
	-c "write -P 0xd4 0 8k" -c "write -P 0xe5 20M 3M" -c "write -P 0xf6 3M 1k" \
	-c "write -z 20M 1M" -c "discard 60M 1M" -c "write -P 0x17 63M 1M" "$I/vm.vdi" >/dev/null
python3 - "$I/vm.vdi" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
h = f.read(512)
bmap = struct.unpack_from('<I', h, 0x154)[0]
f.seek(bmap + 4 * 60)
assert struct.unpack('<I', f.read(4))[0] < 0xfffffffe, 'block 60 should be allocated'
f.seek(bmap + 4 * 60)
f.write(struct.pack('<I', 0xfffffffe))
PY
check "vm.vdi: block 60 is marked discarded" \
	python3 -c "import struct,sys; f=open('$I/vm.vdi','rb'); h=f.read(512); m=struct.unpack_from('<I',h,0x154)[0]; f.seek(m+240); sys.exit(0 if struct.unpack('<I',f.read(4))[0]==0xfffffffe else 1)"
read_both "$I/vm.vdi" "qemu-io out-of-order writes, write -z, a discarded block (raw output)"
check "vm.vdi: the first block in the file is not guest block 0" \
	python3 -c "import struct,sys; b=open('$I/vm.vdi','rb').read(1024); sys.exit(0 if struct.unpack('<I',b[512:516])[0] != 0 else 1)"
run_pipe "$I/vm.vdi" -src - -dst "$O/vm.qcow2" -dst-fmt qcow2
expect_fail "out-of-order VDI from a pipe into qcow2 refused" "vm.qcow2" "ascending order"
dir_is "refused qcow2: no output" "$O"
run_pipe "$I/vm.vdi" -src - -dst "$O/vm.vdi" -dst-fmt vdi -o static=on
expect_fail "out-of-order VDI from a pipe into static VDI refused" "vm.vdi" "ascending order"
dir_is "refused static VDI: no output" "$O"
run_dsc -src "$I/vm.vdi" -dst "$O/vm.qcow2" -dst-fmt qcow2
expect_ok "out-of-order VDI from the file into qcow2"
check "qcow2 of the VM disk is the VDI" qemu-img compare -q -f vdi -F qcow2 "$I/vm.vdi" "$O/vm.qcow2"
rm -f "$O/vm.qcow2"

# VirtualBox's layout: its text, header_size 0x190, the data area at 1 MiB.
python3 - "$I/vm.vdi" "$I/vbox.vdi" <<'EOF'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
data, = struct.unpack('<I', b[0x158:0x15c])
text = b'<<< Oracle VM VirtualBox Disk Image >>>\n'
b[0:64] = text + bytes(64 - len(text))
struct.pack_into('<I', b, 0x48, 0x190)
struct.pack_into('<I', b, 0x158, 1 << 20)
out = bytes(b[:data]) + bytes((1 << 20) - data) + bytes(b[data:])
open(sys.argv[2], 'wb').write(out)
EOF
read_both "$I/vbox.vdi" "VirtualBox layout (data at 1 MiB, header_size 0x190)"

# 2 TiB sparse (an 8 MiB block map), data near both ends.
qemu-img create -q -f vdi "$I/huge.vdi" 2T
qemu-io -f vdi -c "write -P 0x5a 1M 64k" -c "write -P 0x6b 2047G 2M" "$I/huge.vdi" >/dev/null
read_both "$I/huge.vdi" "2 TiB sparse dynamic"

# ---- writing ---------------------------------------------------------------
# verify SRC OUT DESC: qemu-img check passes, qemu reads OUT as SRC with the
# right virtual size, dsc reads it back from the file and from a pipe.
verify() {
	local src=$1 out=$2 desc=$3 want
	want=$((($(fsize "$src") + 511) / 512 * 512))
	check "$desc: qemu-img check" qemu-img check -q -f vdi "$out"
	check "$desc: qemu-img compare with the source" qemu-img compare -q -f raw -F vdi "$src" "$out"
	check "$desc: virtual size $want" test "$(vsize "$out")" = "$want"
	rm -f "$T/back.raw" "$T/backp.raw"
	if "$DSC_CONVERT" -q -src "$out" -dst "$T/back.raw" 2>"$T/back.err" &&
		cat "$out" | "$DSC_CONVERT" -q -src - -dst "$T/backp.raw" 2>>"$T/back.err"; then
		check "$desc: dsc reads it back (file)" qemu-img compare -q -f vdi -F raw "$out" "$T/back.raw"
		check "$desc: dsc reads it back (pipe)" same_raw "$T/back.raw" "$T/backp.raw"
	else
		check "$desc: dsc reads it back: $(head -c 300 "$T/back.err")" false
	fi
	rm -f "$T/back.raw" "$T/backp.raw"
}

for src in odd small big; do
	for o in static=off static=on; do
		[ $src = big ] && [ $o = static=on ] && continue
		qemu-img convert -q -f raw -O vdi -o "$o" "$I/$src.raw" "$T/q.vdi"
		run_dsc -src "$I/$src.raw" -dst "$O/w.vdi" -dst-fmt vdi -o "$o"
		expect_ok "write $src -o $o to a file"
		verify "$I/$src.raw" "$O/w.vdi" "$src -o $o (file)"
		check "$src -o $o: same size as qemu-img's ($(fsize "$T/q.vdi"))" \
			test "$(fsize "$O/w.vdi")" = "$(fsize "$T/q.vdi")"
		# To a real pipe: static streams; dynamic takes two passes.
		"$DSC_CONVERT" -q -src "$I/$src.raw" -dst - -dst-fmt vdi -o "$o" 2>"$T/stderr" | cat >"$T/p.vdi"
		check "write $src -o $o to a pipe" test ! -s "$T/stderr"
		verify "$I/$src.raw" "$T/p.vdi" "$src -o $o (pipe)"
		check "$src -o $o: pipe output is the file's size" \
			test "$(fsize "$T/p.vdi")" = "$(fsize "$O/w.vdi")"
		rm -f "$O/w.vdi" "$T/p.vdi" "$T/q.vdi"
	done
done
# VDI to VDI from the out-of-order file.
for o in static=off static=on; do
	run_dsc -src "$I/vm.vdi" -dst "$O/vm2.vdi" -dst-fmt vdi -o $o
	expect_ok "VM disk VDI to VDI -o $o"
	check "VM disk VDI to VDI -o $o: same content" qemu-img compare -q -f vdi -F vdi "$I/vm.vdi" "$O/vm2.vdi"
	check "VM disk VDI to VDI -o $o: qemu-img check" qemu-img check -q -f vdi "$O/vm2.vdi"
	rm -f "$O/vm2.vdi"
done
# A raw pipe (size unknown until its end) is refused before anything is
# written; a dynamic VDI to a pipe from a pipe cannot take two passes.
run_pipe "$I/odd.raw" -src - -dst "$O/d.vdi" -dst-fmt vdi
expect_fail "raw pipe to VDI refused" "d.vdi" "needs the disk size before the data"
dir_is "raw pipe to VDI: no output" "$O"
cat "$I/odd-dyn.vdi" | "$DSC_CONVERT" -src - -dst - -dst-fmt vdi 2>"$T/stderr" | cat >"$T/p.vdi"
check "dynamic VDI to a pipe from a pipe refused (needs a seekable source)" \
	grep -q "needs a seekable source" "$T/stderr"
check "... and nothing written" test ! -s "$T/p.vdi"
rm -f "$T/p.vdi"
# Over dsc's limit of 8 Mi blocks (8 TiB): refused before a byte.
gen_sparse "$I/over.raw" $((8 * 1024 * GiB + 512))
run_dsc -src "$I/over.raw" -dst "$O/h.vdi" -dst-fmt vdi
expect_fail "over 8 TiB to VDI refused" "h.vdi" "exceeds dsc's VDI limit"
dir_is "over 8 TiB: no output" "$O"
rm -f "$I/over.raw"

# ---- refusals when reading ---------------------------------------------------
# mutate IN OUT PYTHON: a copy of IN changed by PYTHON (b: a bytearray;
# p32(o, v) puts a little-endian u32 at o).
mutate() {
	python3 - "$1" "$2" "$3" <<'EOF'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
def p32(o, v): b[o:o + 4] = struct.pack('<I', v)
exec(sys.argv[3])
open(sys.argv[2], 'wb').write(b)
EOF
}
refuse() { # IMG DESC ERE [ARGS]: refused from the file and a pipe, nothing written
	local img=$1 desc=$2 ere=$3
	shift 3
	run_dsc -src "$img" "$@" -dst "$O/x.raw"
	expect_fail "$desc" "$(basename "$img")" "$ere"
	dir_is "$desc: no output" "$O"
	run_pipe "$img" -src - -src-fmt vdi "$@" -dst "$O/x.raw"
	expect_fail "$desc (pipe)" "stdin" "$ere"
	dir_is "$desc (pipe): no output" "$O"
}
D=$I/odd-dyn.vdi
mutate "$D" "$I/diff.vdi" 'p32(0x4c, 4); b[0x1b8:0x1c8] = bytes(range(1, 17))'
refuse "$I/diff.vdi" "differencing VDI" "differencing .*not supported"
mutate "$D" "$I/parent.vdi" 'b[0x1b8:0x1c8] = bytes(range(1, 17))'
refuse "$I/parent.vdi" "normal VDI with a parent UUID" "parent UUID.*differencing"
mutate "$D" "$I/undo.vdi" 'p32(0x4c, 3)'
refuse "$I/undo.vdi" "undo VDI" "undo image"
mutate "$D" "$I/type.vdi" 'p32(0x4c, 9)'
refuse "$I/type.vdi" "unknown image type" "unknown VDI image type 9"
mutate "$D" "$I/ver.vdi" 'p32(0x44, 0x00010002)'
refuse "$I/ver.vdi" "version 1.2" "VDI version 1.2 is not supported"
mutate "$D" "$I/bs.vdi" 'p32(0x178, 3 << 20)'
refuse "$I/bs.vdi" "block size not a power of two" "block size 3145728 is not a power of two"
mutate "$D" "$I/bsbig.vdi" 'p32(0x178, 1 << 30); p32(0x180, 1)'
refuse "$I/bsbig.vdi" "1 GiB blocks" "block size 1073741824 exceeds the limit"
mutate "$D" "$I/size.vdi" 'b[0x170:0x178] = struct.pack("<Q", 1 << 50)'
refuse "$I/size.vdi" "disk size over the map" "disk size 1125899906842624 exceeds its"
mutate "$D" "$I/nblk.vdi" 'p32(0x180, 0x3fffffff)'
refuse "$I/nblk.vdi" "huge blocks_in_image" "exceeds the limit of 8388608 blocks"
mutate "$D" "$I/ent.vdi" 'p32(0x200, 41)'
refuse "$I/ent.vdi" "map entry past blocks_in_image" "entry 0: block index 41 is not below"
mutate "$D" "$I/dup.vdi" 'p32(0x204, struct.unpack("<I", b[0x200:0x204])[0])'
refuse "$I/dup.vdi" "map entry used twice" "entry 1: block index 0 is used by an earlier entry"
mutate "$D" "$I/ovl.vdi" 'p32(0x158, 0x200)'
refuse "$I/ovl.vdi" "map overlapping the data" "runs into the data area"
mutate "$D" "$I/extra.vdi" 'p32(0x17c, 16)'
refuse "$I/extra.vdi" "block_extra" "extra data are not supported"
head -c $((3 * MiB)) "$D" >"$I/trunc.vdi"
run_dsc -src "$I/trunc.vdi" -dst "$O/x.raw"
expect_fail "truncated VDI (file)" "trunc.vdi" "truncated"
dir_is "truncated VDI: no output" "$O"
run_pipe "$I/trunc.vdi" -src - -dst "$O/x.raw"
expect_fail "truncated VDI (pipe)" "stdin" "truncated"
dir_is "truncated VDI (pipe): no output" "$O"
run_dsc -src "$I/huge.vdi" -max-capacity 1T -dst "$O/x.raw"
expect_fail "-max-capacity below the disk size" "huge.vdi" "exceeds the limit of 1099511627776"
dir_is "-max-capacity: no output" "$O"

finish
