#!/bin/bash
# detect.sh - format detection never guesses raw, and -o / -c.
#
# Real files of every format qemu-img writes that dsc does not read (qcow,
# qed, parallels, luks) and a tar that is not an OVA are refused by name: exit 1, one line naming
# the file and the format, no output left; qcow2, vhdx and vdi, and gzip,
# xz, zstd and bzip2 files (compressed.sh has the rest), are detected and
# converted. A raw
# disk whose first sector is text or an MBR stays raw; -src-fmt raw forces
# raw. VHD (vpc) dynamic and fixed files are detected and converted; a
# fixed VHD on a pipe (its footer cannot be probed) fails at its end,
# asking for -src-fmt vhd. -o options reach the VMDK descriptor and pass
# qemu-img check and vmdkinfo; bad -o and -c are usage errors (exit 2).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img gzip xz zstd bzip2 tar

mkdir "$T/in" "$T/out"
I=$T/in O=$T/out
gen_sparse "$I/d.raw" $((3 * MiB))
put_random "$I/d.raw" 0 100000
put_random "$I/d.raw" $((2 * MiB)) 70000

mk() { # FORMAT FILE [qemu-img options...]: from d.raw (or $FROM)
	local fmt=$1 file=$2
	shift 2
	qemu-img convert -q -f raw -O "$fmt" "$@" "$I/${FROM:-d.raw}" "$I/$file" ||
		fail "qemu-img convert -O $fmt $*" ""
}

mk qcow2 d.qcow2
mk qcow2 d-v2.qcow2 -o compat=0.10
mk qcow d.qcow
mk qed d.qed
mk vdi d.vdi
mk vhdx d.vhdx
mk vpc dyn.vhd
mk vpc fixed.vhd -o subformat=fixed
mk parallels d.parallels
# qemu-img times its key derivation with getrusage and gives up ("Unable to
# get accurate CPU usage") now and then on a loaded machine: try again.
for try in 1 2 3; do
	qemu-img create -q -f luks --object secret,id=s0,data=pw -o key-secret=s0,iter-time=250 \
		"$I/d.luks" 4M 2>"$T/luks.err" && break
done
[ -s "$I/d.luks" ] || fail "qemu-img create -f luks" "$(cat "$T/luks.err")"
gzip -c "$I/d.raw" >"$I/d.raw.gz"
xz -T1 -c "$I/d.raw" >"$I/d.raw.xz"
zstd -q -c "$I/d.raw" >"$I/d.raw.zst"
bzip2 -c "$I/d.raw" >"$I/d.raw.bz2"
(cd "$I" && tar cf d.tar d.raw)

refused() { # FILE PATTERN: refused by name from a file and from a pipe
	local f=$1 ere=$2
	run_dsc -src "$I/$f" -dst "$O/out.raw"
	expect_fail "$f refused" "$f" "$ere"
	dir_is "$f: no output" "$O"
	run_pipe "$I/$f" -src - -dst "$O/out.raw"
	expect_fail "$f on a pipe refused" "stdin" "$ere"
	dir_is "$f on a pipe: no output" "$O"
}
# qcow2 (v3 and v2), vhdx and vdi are detected and convert, from a file and a
# pipe (tests/cli/qcow2_read.sh and vhdx.sh have the rest); qcow version 1
# stays refused.
for f in d.qcow2 d-v2.qcow2 d.vhdx d.vdi d.raw.gz d.raw.xz d.raw.zst d.raw.bz2; do
	run_dsc -src "$I/$f" -dst "$O/out.raw"
	expect_ok "$f detected and converted"
	check "$f: the disk's bytes" cmp "$I/d.raw" "$O/out.raw"
	rm -f "$O/out.raw"
	run_pipe "$I/$f" -src - -dst "$O/out.raw"
	expect_ok "$f on a pipe detected and converted"
	check "$f on a pipe: the disk's bytes" cmp "$I/d.raw" "$O/out.raw"
	rm -f "$O"/*
done
refused d.qcow ': a qcow \(version 1\) image; qcow is not supported yet$'
refused d.qed ': a QED image; qed is not supported yet$'
refused d.parallels ': a Parallels image; parallels is not supported yet$'
refused d.luks ': a LUKS-encrypted image; encrypted images are not supported$'
refused d.tar ': not an OVA: the first member of the tar is "d.raw", not an .ovf descriptor'

# A dynamic VHD starts with a footer copy: detected from a file and a pipe.
for f in dyn.vhd fixed.vhd; do
	run_dsc -src "$I/$f" -dst "$O/out.raw"
	expect_ok "$f detected and converted"
	check "$f: the disk's bytes" same_padded "$I/d.raw" "$O/out.raw"
	rm -f "$O/out.raw"
done
run_pipe "$I/dyn.vhd" -src - -dst "$O/out.raw"
expect_ok "dyn.vhd on a pipe detected and converted"
check "dyn.vhd on a pipe: the disk's bytes" same_padded "$I/d.raw" "$O/out.raw"
rm -f "$O"/*
# A fixed VHD is only a footer after the data: found at the end of a file
# (above)...
# ... and at the end of a pipe, before the output is finished.
run_pipe "$I/fixed.vhd" -src - -dst "$O/out.raw"
expect_fail "fixed VHD on a pipe refused at its end" stdin 'ends with a VHD footer: a fixed VHD.*-src-fmt vhd'
dir_is "fixed VHD on a pipe: no output" "$O"
# Also when the input is a whole number of the reader's 1 MiB chunks, so
# that the last read is empty and the footer ends the previous chunk.
gen_sparse "$I/odd.raw" $((2 * MiB - 512))
put_random "$I/odd.raw" 0 1000
FROM=odd.raw mk vpc odd.vhd -o subformat=fixed,force_size=on
check "odd.vhd is 2 MiB" test "$(fsize "$I/odd.vhd")" = $((2 * MiB))
run_pipe "$I/odd.vhd" -src - -dst "$O/out.raw"
expect_fail "VHD footer at a chunk's end on a pipe refused" stdin 'ends with a VHD footer'
dir_is "no output" "$O"
# -src-fmt raw forces raw (as qemu-img -f raw): the bytes as they are.
run_dsc -src "$I/fixed.vhd" -src-fmt raw -dst "$O/forced.raw"
expect_ok "-src-fmt raw forces raw"
check "forced raw is the file itself" cmp "$I/fixed.vhd" "$O/forced.raw"
run_dsc -src "$I/d.qcow2" -src-fmt raw -dst "$O/forced.raw"
expect_ok "-src-fmt raw on a qcow2 file"
check "qcow2 read as raw bytes" cmp "$I/d.qcow2" "$O/forced.raw"
rm -f "$O"/*

# Raw disks that must stay raw: a text first sector, an MBR, all zeros.
{ printf '# Disk DescriptorFile\nthis is not a descriptor, createType is just a word\n'; head -c 70000 /dev/urandom; } >"$I/text.raw"
printf 'createType="monolithicFlat"\nno extent, no version\n' >"$I/text2.raw"
head -c 1048576 /dev/zero >"$I/mbr.raw"
printf '\xeb\x63\x90' | dd of="$I/mbr.raw" conv=notrunc status=none
printf '\x55\xaa' | dd of="$I/mbr.raw" bs=1 seek=510 conv=notrunc status=none
head -c 4096 /dev/urandom | dd of="$I/mbr.raw" bs=1 seek=512 conv=notrunc status=none
for f in text.raw text2.raw mbr.raw; do
	run_dsc -src "$I/$f" -dst "$O/$f"
	expect_ok "$f converts as raw"
	check "$f: same bytes" cmp "$I/$f" "$O/$f"
	run_pipe "$I/$f" -src - -dst "$O/p-$f"
	expect_ok "$f on a pipe converts as raw"
	check "$f on a pipe: same bytes" cmp "$I/$f" "$O/p-$f"
done
rm -f "$O"/*

# A VMDK text descriptor (qemu-img's monolithicFlat) is recognised: read
# with its extent beside it, refused on a pipe (no directory to look in).
mk vmdk flat.vmdk -o subformat=monolithicFlat
run_dsc -src "$I/flat.vmdk" -dst "$O/out.raw"
expect_ok "descriptor with its extent converts"
check "descriptor = source" cmp "$I/d.raw" "$O/out.raw"
rm -f "$O"/*
run_pipe "$I/flat.vmdk" -src - -dst "$O/out.raw"
expect_fail "descriptor on a pipe refused" stdin 'a VMDK descriptor file references extent files'
dir_is "descriptor: no output" "$O"
# ... and its flat extent is a raw disk.
run_dsc -src "$I/flat-flat.vmdk" -dst "$O/flat.raw"
expect_ok "the flat extent converts as raw"
check "flat extent = source" cmp "$I/d.raw" "$O/flat.raw"
rm -f "$O"/*

# ---- -o and -c
run_dsc -src "$I/d.raw" -dst "$O/o.vmdk" -dst-fmt vmdk -o adapter_type=ide,hwversion=6
expect_ok "-o adapter_type=ide,hwversion=6"
check "qemu-img check passes" qemu-img check -q -f vmdk "$O/o.vmdk"
check "qemu-img compare: same disk" qemu_same "$I/d.raw" "$O/o.vmdk"
check "vmdkinfo opens it" vmdkinfo_ok "$O/o.vmdk" $((3 * MiB))
check "descriptor says ide" grep -aq 'ddb.adapterType = "ide"' "$O/o.vmdk"
check "descriptor says 16 heads" grep -aq 'ddb.geometry.heads = "16"' "$O/o.vmdk"
check "descriptor says hardware version 6" grep -aq 'ddb.virtualHWVersion = "6"' "$O/o.vmdk"
run_dsc -src "$I/d.raw" -dst "$O/c.vmdk" -dst-fmt vmdk -c -o subformat=streamOptimized -o adapter_type=buslogic
expect_ok "-c, two -o"
check "buslogic" grep -aq 'ddb.adapterType = "buslogic"' "$O/c.vmdk"
run_dsc -src "$I/d.raw" -dst "$O/p.raw" -o preallocation=falloc
expect_ok "-o preallocation=falloc"
check "preallocated raw = source" cmp "$I/d.raw" "$O/p.raw"
check "preallocated: every block allocated" alloc_atleast "$O/p.raw" $((3 * MiB))
rm -f "$O"/*
for bad in "foo=1" "subformat=monolithicFlat" "hwversion=3" "adapter_type" "=x"; do
	run_dsc -src "$I/d.raw" -dst "$O/x.vmdk" -dst-fmt vmdk -o "$bad"
	expect_usage "-o $bad: exit 2"
	dir_is "-o $bad: no output" "$O"
done
run_dsc -src "$I/d.raw" -dst "$O/x.vmdk" -dst-fmt vmdk -o foo=1
check "unknown key named with the format's keys" grep -q "unknown option 'foo' (vmdk options: subformat, adapter_type, hwversion, zeroed_grain)" "$T/stderr"
run_dsc -src "$I/d.raw" -dst "$O/x.raw" -c
expect_usage "-c with raw output"
check "-c message" grep -q -- "-c: raw output cannot be compressed" "$T/stderr"
run_dsc -src "$I/d.raw" -dst "$O/x.qed" -dst-fmt qed
expect_usage "-dst-fmt qed"
check "-dst-fmt qed says not supported yet" grep -q "writing qed is not supported yet (writable: raw, vmdk, qcow2, vdi, vhdx, vhd, ova)" "$T/stderr"
run_dsc -src "$I/d.raw" -dst "$O/x.qcow2" -dst-fmt qcow2
expect_ok "-dst-fmt qcow2 writes (tests/cli/qcow2_write.sh has the rest)"
rm -f "$O/x.qcow2"
run_dsc -src "$I/d.raw" -dst "$O/x.raw" -src-fmt nosuch
expect_usage "-src-fmt nosuch"
run_dsc -src x -dst y -dst-fmt vmdk -o help
check "-o help exits 0" test "$RC" = 0
check "-o help lists adapter_type" grep -q "adapter_type" "$T/stdout"
dir_is "usage errors: no output" "$O"
finish
