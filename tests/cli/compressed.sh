#!/bin/bash
# compressed.sh - compressed images (issue 16): gzip (also pigz and several
# members), xz (several streams, multi-block as xz -T writes), zstd (several
# frames) and bzip2 (several streams) over raw, qcow2, VMDK, VHD, VHDX and
# VDI images made by qemu-img, read from the file and from a pipe, each
# compared byte for byte with `qemu-img convert -O raw` of the uncompressed
# image; -src-fmt naming the image or the compression; outputs that need
# the size first (a VMDK to a pipe, a dynamic VHD, a VDI) from a compressed
# raw file; and the refusals: truncated, corrupt, trailing bytes, a second
# layer, a bomb over -max-capacity, the xz and zstd memory limits, each one
# line naming the file, with no output left behind.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img qemu-io vmdkinfo vhdiinfo gzip pigz xz zstd bzip2
set -o pipefail

mkdir "$T/in" "$T/out"
I=$T/in O=$T/out

# ---- sources ---------------------------------------------------------------
# A 24 MiB disk of random runs, text runs and zero runs (odd offsets).
gen_sparse "$I/disk.raw" $((24 * MiB))
put_random "$I/disk.raw" 0 70000
put_random "$I/disk.raw" $((3 * MiB + 7)) 300000
gen_text "$T/text" $((2 * MiB))
dd if="$T/text" of="$I/disk.raw" bs=1M seek=9 conv=notrunc status=none
put_random "$I/disk.raw" $((17 * MiB)) 65536
put_random "$I/disk.raw" $((24 * MiB - 4096)) 4096
rm -f "$T/text"
qemu-img convert -f raw -O qcow2 "$I/disk.raw" "$I/disk.qcow2"
qemu-img convert -f raw -O qcow2 -c "$I/disk.raw" "$I/disk-c.qcow2"
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$I/disk.raw" "$I/disk.vmdk"
qemu-img convert -f raw -O vpc "$I/disk.raw" "$I/disk.vhd"
qemu-img convert -f raw -O vhdx "$I/disk.raw" "$I/disk.vhdx"
qemu-img convert -f raw -O vdi "$I/disk.raw" "$I/disk.vdi"
# A VM-style qcow2: random writes in no order, a discard, then a copy in
# file order (as an image is shipped: qemu-img convert writes the tables
# first).
qemu-img create -q -f qcow2 "$T/vm.qcow2" 32M
qemu-io -f qcow2 -c 'write -P 0x61 20M 1M' -c 'write -P 0x62 1M 64k' -c 'write -P 0x63 30M 3000' \
	-c 'write -P 0x64 7M 2M' -c 'discard 7M 1M' "$T/vm.qcow2" >/dev/null
qemu-img convert -f qcow2 -O qcow2 "$T/vm.qcow2" "$I/vm.qcow2"
rm -f "$T/vm.qcow2"

# compress TOOL IN OUT: OUT is IN compressed by TOOL (a name of the table
# below: several tools are run with options).
compress() {
	case $1 in
	gzip) gzip -c "$2" >"$3" ;;
	pigz) pigz -p 2 -c "$2" >"$3" ;;
	xz) xz -T2 --block-size=1MiB -c "$2" >"$3" ;;
	zstd) zstd -q -c "$2" >"$3" ;;
	bzip2) bzip2 -c "$2" >"$3" ;;
	esac
}
qfmt() { case $1 in raw) echo raw ;; vhd) echo vpc ;; *) echo "${1%%-*}" ;; esac; }

# ---- each image under each compressor, from the file and a pipe -------------
for img in disk.raw disk.qcow2 disk-c.qcow2 disk.vmdk disk.vhd disk.vhdx disk.vdi vm.qcow2; do
	base=${img%.*} ext=${img##*.}
	qf=$(qfmt "$ext")
	qemu-img convert -f "$qf" -O raw "$I/$img" "$T/ref.raw" || fail "$img: qemu-img convert"
	for tool in gzip pigz xz zstd bzip2; do
		c=$I/$img.$tool
		compress "$tool" "$I/$img" "$c"
		rm -f "$O"/*
		run_dsc -src "$c" -dst "$O/file.raw"
		expect_ok "$img under $tool: from the file"
		check "$img under $tool: the file reads as qemu-img reads $img" same_raw "$T/ref.raw" "$O/file.raw"
		run_pipe "$c" -src - -dst "$O/pipe.raw"
		expect_ok "$img under $tool: from a pipe"
		check "$img under $tool: the pipe reads as qemu-img reads $img" same_raw "$T/ref.raw" "$O/pipe.raw"
	done
	rm -f "$I/$img".pigz
done
rm -f "$O"/*

# ---- several members, streams and frames -------------------------------------
# The disk split at an odd offset, each half compressed alone, the two
# concatenated (`cat a.gz b.gz`): one disk.
head -c 5000001 "$I/disk.raw" >"$T/a"
tail -c +5000002 "$I/disk.raw" >"$T/b"
for tool in gzip xz zstd bzip2; do
	compress "$tool" "$T/a" "$T/a.c"
	compress "$tool" "$T/b" "$T/b.c"
	cat "$T/a.c" "$T/b.c" >"$I/two.$tool"
	run_dsc -src "$I/two.$tool" -dst "$O/two.raw"
	expect_ok "two $tool members, concatenated"
	check "two $tool members: one disk" cmp "$I/disk.raw" "$O/two.raw"
	run_pipe "$I/two.$tool" -src - -dst "$O/two2.raw"
	expect_ok "two $tool members from a pipe"
	check "two $tool members from a pipe: one disk" cmp "$I/disk.raw" "$O/two2.raw"
	rm -f "$O"/*
done
rm -f "$T/a" "$T/b" "$T/a.c" "$T/b.c"
# Zero padding after the last gzip or bzip2 member (a tape block), and
# xz's own stream padding, are fine.
for tool in gzip bzip2 xz; do
	cp "$I/disk.raw.$tool" "$T/pad.$tool"
	head -c 4096 /dev/zero >>"$T/pad.$tool"
	run_dsc -src "$T/pad.$tool" -dst "$O/pad.raw"
	expect_ok "$tool followed by zero padding"
	check "$tool followed by zero padding: the disk" cmp "$I/disk.raw" "$O/pad.raw"
	rm -f "$O"/* "$T/pad.$tool"
done

# ---- naming formats ----------------------------------------------------------
run_dsc -src "$I/disk.qcow2.xz" -src-fmt qcow2 -dst "$O/n.raw"
expect_ok "-src-fmt qcow2 names the image inside the xz"
check "-src-fmt qcow2 on a qcow2.xz: the disk" cmp "$I/disk.raw" "$O/n.raw"
run_pipe "$I/disk.vmdk.zstd" -src - -src-fmt zstd -dst "$O/n2.raw"
expect_ok "-src-fmt zstd names the compression (the image inside is detected)"
check "-src-fmt zstd on a vmdk.zst: the disk" cmp "$I/disk.raw" "$O/n2.raw"
rm -f "$O"/*
run_dsc -src "$I/disk.qcow2" -src-fmt gzip -dst "$O/n3.raw"
expect_fail "-src-fmt gzip on a qcow2: refused" disk.qcow2 'not a gzip-compressed file'
run_dsc -src "$I/disk.raw.xz" -src-fmt vmdk -dst "$O/n4.raw"
expect_fail "-src-fmt vmdk on a raw.xz: the image inside is not a VMDK" disk.raw.xz 'VMDK'
dir_is "naming refusals: no output" "$O"
run_dsc -src "$I/disk.raw.gzip" -dst "$O/j.raw" -json
check "-json names the source format and its compression" \
	grep -q '"sourceFormat":"raw","sourceCompression":"gzip"' "$T/stdout"
rm -f "$O"/*

# ---- outputs that need the disk size first -------------------------------------
# A compressed raw file tells its size only at its end: dsc decompresses it
# once to learn it, then again to convert.
run_dsc -src "$I/disk.raw.xz" -dst - -dst-fmt vmdk
mv "$T/stdout" "$O/p.vmdk"
expect_ok "raw.xz -> VMDK on a pipe (a first pass for the size)"
check "raw.xz -> VMDK on a pipe: qemu-img compare" qemu-img compare -q -f raw -F vmdk "$I/disk.raw" "$O/p.vmdk"
check "raw.xz -> VMDK on a pipe: vmdkinfo opens it" vmdkinfo "$O/p.vmdk"
for f in vpc vdi; do
	run_dsc -src "$I/disk.raw.gzip" -dst "$O/s.$f" -dst-fmt "${f/vpc/vhd}"
	expect_ok "raw.gz -> $f (a first pass for the size)"
	if [ $f = vpc ]; then
		check "raw.gz -> $f: vhdiinfo opens it" vhdiinfo "$O/s.$f"
	else
		check "raw.gz -> $f: qemu-img check" qemu-img check -q -f $f "$O/s.$f"
	fi
	check "raw.gz -> $f: qemu-img compare" qemu-img compare -q -f raw -F $f "$I/disk.raw" "$O/s.$f"
done
run_dsc -src "$I/disk.raw.zstd" -dst "$O/q.qcow2" -dst-fmt qcow2 -c
expect_ok "raw.zst -> compressed qcow2"
check "raw.zst -> qcow2: qemu-img check" qemu-img check -q -f qcow2 "$O/q.qcow2"
check "raw.zst -> qcow2: qemu-img compare" qemu-img compare -q -f raw -F qcow2 "$I/disk.raw" "$O/q.qcow2"
rm -f "$O"/*
# From a pipe there is no second pass: the writers' own message.
run_pipe "$I/disk.raw.gzip" -src - -dst "$O/pipe.vdi" -dst-fmt vdi
expect_fail "raw.gz from a pipe -> VDI: refused" pipe.vdi 'needs the disk size before the data'
dir_is "raw.gz from a pipe -> VDI: no output" "$O"

# ---- damaged and hostile inputs ---------------------------------------------------
# cut_at FILE N OUT: the first N bytes of FILE.
cut_at() { head -c "$2" "$1" >"$3"; }
for tool in gzip xz zstd bzip2; do
	c=$I/disk.qcow2.$tool
	n=$(fsize "$c")
	cut_at "$c" $((n - 10)) "$T/cut.$tool"
	run_dsc -src "$T/cut.$tool" -dst "$O/cut.raw"
	expect_fail "$tool cut 10 bytes short: truncated" "cut.$tool" "$tool: truncated: the input ends at compressed byte"
	cut_at "$c" $((n / 2)) "$T/half.$tool"
	run_pipe "$T/half.$tool" -src - -dst "$O/half.raw"
	expect_fail "$tool cut in half, from a pipe: truncated" stdin "$tool: truncated"
	cp "$c" "$T/bad.$tool"
	printf '\x55\xaa\x55\xaa\x55\xaa\x55\xaa' | dd of="$T/bad.$tool" bs=1 seek=$((n / 3)) conv=notrunc status=none
	run_dsc -src "$T/bad.$tool" -dst "$O/bad.raw"
	expect_fail "$tool with 8 bytes overwritten: corrupt" "bad.$tool" "$tool: corrupt data .* at compressed byte [0-9]+"
	cp "$c" "$T/junk.$tool"
	printf 'not a member at all' >>"$T/junk.$tool"
	run_dsc -src "$T/junk.$tool" -dst "$O/junk.raw"
	expect_fail "$tool followed by other bytes: refused" "junk.$tool" "$tool: "
	rm -f "$T/cut.$tool" "$T/half.$tool" "$T/bad.$tool" "$T/junk.$tool"
done
dir_is "damaged compressed inputs: no output" "$O"
# A gzip member's CRC-32 (the bytes are intact, the check is not).
cp "$I/disk.raw.gzip" "$T/crc.gz"
n=$(fsize "$T/crc.gz")
printf '\x00\x00\x00\x00' | dd of="$T/crc.gz" bs=1 seek=$((n - 8)) conv=notrunc status=none
run_dsc -src "$T/crc.gz" -dst "$O/crc.raw"
expect_fail "gzip with a wrong CRC-32: corrupt" crc.gz 'CRC-32 or size mismatch'
# A bomb: 1 GiB of zeros in 1 MiB of gzip, against -max-capacity 64M.
head -c $((1024 * MiB)) /dev/zero | gzip -1 >"$T/bomb.gz"
run_dsc -src "$T/bomb.gz" -dst "$O/bomb.raw" -max-capacity 64M
expect_fail "a gzip bomb over -max-capacity: refused" bomb.gz 'exceeds the limit of 67108864 bytes'
run_pipe "$T/bomb.gz" -src - -dst "$O/bomb.vmdk" -dst-fmt vmdk -max-capacity 64M
expect_fail "a gzip bomb from a pipe into a VMDK: refused" stdin 'exceeds the limit'
rm -f "$T/bomb.gz"
# Two layers (an xz inside a gzip) are refused: one layer is read.
gzip -c "$I/disk.raw.xz" >"$T/double.xz.gz"
run_dsc -src "$T/double.xz.gz" -dst "$O/d.raw"
expect_fail "xz inside gzip: refused" double.xz.gz 'an xz-compressed file inside a gzip-compressed file'
# Memory limits: an xz dictionary over 256 MiB, a zstd window over 128 MiB.
head -c 100000 /dev/urandom >"$T/small"
xz --lzma2=dict=300MiB -c "$T/small" >"$T/dict.xz"
run_dsc -src "$T/dict.xz" -dst "$O/dict.raw"
expect_fail "xz with a 300 MiB dictionary: over the limit" dict.xz 'more memory than the limit of 256 MiB'
zstd -q --long=31 -c <"$T/small" >"$T/window.zst"
run_dsc -src "$T/window.zst" -dst "$O/window.raw"
expect_fail "zstd with a 2 GiB window: over the limit" window.zst 'window is larger than the limit of 128 MiB'
dir_is "hostile compressed inputs: no output" "$O"
# An existing output is not clobbered by a failed run.
echo keep >"$O/keep.raw"
run_dsc -src "$T/crc.gz" -dst "$O/keep.raw"
expect_fail "a failed run over an existing file" crc.gz 'CRC-32'
check "the existing file is untouched" grep -qx keep "$O/keep.raw"

finish
