#!/bin/bash
# roundtrip.sh - raw -> VMDK -> raw on generated images of awkward sizes and
# contents. Every VMDK must pass qemu-img check, equal its source under
# qemu-img compare, open in vmdkinfo and follow the stream layout; every
# conversion back must give the source padded with zeros to 512 bytes.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img vmdkinfo

mkdir "$T/in" "$T/out"
I=$T/in

gen_random "$I/one-sector.raw" 512
gen_random "$I/odd-1000.raw" 1000
gen_random "$I/odd-70001.raw" 70001
gen_random "$I/sectors-67072.raw" 67072          # a multiple of 512, not of 64 KiB
gen_random "$I/three-grains.raw" $((3 * GRAIN))
# A multiple of 64 KiB but not of 32 MiB: data in both 32 MiB ranges, in the
# last grain, and a grain whose only non-zero byte is its last.
gen_sparse "$I/ranges.raw" $((33 * MiB + 3 * GRAIN))
put_random "$I/ranges.raw" 0 $((GRAIN + 7))
put_random "$I/ranges.raw" $((32 * MiB - 4096)) 8192
put_fill "$I/ranges.raw" $((10 * GRAIN - 1)) 1 001
put_random "$I/ranges.raw" $((33 * MiB + 3 * GRAIN - 512)) 512
# Exactly 32 MiB, data in the last sector only.
gen_sparse "$I/exact-32m.raw" $((32 * MiB))
put_random "$I/exact-32m.raw" $((32 * MiB - 512)) 512
# Not a multiple of 32 MiB nor 512, data on both sides of the range border.
gen_sparse "$I/border.raw" $((32 * MiB + 1234))
put_random "$I/border.raw" $((32 * MiB - 100)) 1334
gen_zero "$I/zero.raw" $((5 * MiB))                 # real zero blocks, not holes
gen_random "$I/random.raw" $((8 * MiB))
gen_text "$I/text.raw" $((16 * MiB))
# Data grains and zero grains alternating, zero runs inside data grains.
gen_zero "$I/mixed.raw" $((6 * MiB))
for i in $(seq 0 3 95); do put_random "$I/mixed.raw" $((i * GRAIN + 1024)) 30000; done

for src in "$I"/*.raw; do
	n=$(basename "$src" .raw)
	size=$(fsize "$src")
	cap=$(round512 "$size")

	run_dsc -src "$src" -dst "$T/out/$n.vmdk" -dst-fmt vmdk
	expect_ok "$n: raw -> vmdk"
	vmdk_all_ok "$n" "$src" "$T/out/$n.vmdk"

	run_dsc -src "$T/out/$n.vmdk" -dst "$T/out/$n.back.raw"
	expect_ok "$n: vmdk -> raw"
	check "$n: vmdk -> raw has the capacity $cap as size" size_is "$T/out/$n.back.raw" "$cap"
	check "$n: vmdk -> raw is the source, then zeros" same_padded "$src" "$T/out/$n.back.raw"

	run_dsc -src "$T/out/$n.vmdk" -dst "$T/out/$n.again.vmdk" -dst-fmt vmdk
	expect_ok "$n: vmdk -> vmdk"
	vmdk_all_ok "$n (vmdk -> vmdk)" "$src" "$T/out/$n.again.vmdk"

	run_dsc -src "$src" -dst "$T/out/$n.copy.raw" -dst-fmt raw
	expect_ok "$n: raw -> raw"
	check "$n: raw -> raw is byte-exact, same size" cmp "$src" "$T/out/$n.copy.raw"
	rm -f "$T/out/$n".*
done

# Sizes tell that zero grains were skipped and data compressed.
run_dsc -src "$I/zero.raw" -dst "$T/out/zero.vmdk" -dst-fmt vmdk
check "all-zero 5 MiB -> VMDK under 80 KiB (no grains)" \
	test "$(fsize "$T/out/zero.vmdk")" -lt 81920
no_grains() { ! vmdk_marker 0 "$1" >/dev/null 2>&1; }
check "all-zero VMDK has no grain markers" no_grains "$T/out/zero.vmdk"
run_dsc -src "$I/text.raw" -dst "$T/out/text.vmdk" -dst-fmt vmdk
check "compressible 16 MiB -> VMDK under a third of it ($(fsize "$T/out/text.vmdk") bytes)" \
	test "$(fsize "$T/out/text.vmdk")" -lt $((16 * MiB / 3))
run_dsc -src "$I/random.raw" -dst "$T/out/random.vmdk" -dst-fmt vmdk
check "random 8 MiB -> VMDK at most 1% + 256 KiB larger ($(fsize "$T/out/random.vmdk") bytes)" \
	test "$(fsize "$T/out/random.vmdk")" -le $((8 * MiB + 8 * MiB / 100 + 262144))
# Compression levels and thread counts change the bytes, never the disk.
for opt in "-level fast" "-level best" "-level 1" "-level 12" "-threads 1" "-threads 3 -level 9"; do
	run_dsc -src "$I/text.raw" -dst "$T/out/lv.vmdk" -dst-fmt vmdk $opt
	expect_ok "$opt: text -> vmdk"
	vmdk_all_ok "$opt" "$I/text.raw" "$T/out/lv.vmdk"
	eval "size_${opt//[^a-z0-9]/_}=$(fsize "$T/out/lv.vmdk")"
	rm -f "$T/out/lv.vmdk"
done
check "-level best ($size__level_best) is no larger than -level fast ($size__level_fast)" \
	test "$size__level_best" -le "$size__level_fast"
run_dsc -src "$I/mixed.raw" -dst "$T/out/t1.vmdk" -dst-fmt vmdk -threads 1
run_dsc -src "$I/mixed.raw" -dst "$T/out/t2.vmdk" -dst-fmt vmdk -threads 2
check "-threads 1 and -threads 2 write the same grains and tables" \
	cmp -i 65536 "$T/out/t1.vmdk" "$T/out/t2.vmdk"
rm -f "$T/out"/*

# The descriptor names the output's own basename, also with odd names.
cp "$I/odd-1000.raw" "$I/name with space.raw"
run_dsc -src "$I/name with space.raw" -dst "$T/out/disk 1.vmdk" -dst-fmt vmdk
expect_ok "a destination name with a space"
check "the descriptor names 'disk 1.vmdk'" vmdk_lint "$T/out/disk 1.vmdk" 1024
# A relative destination path: the descriptor holds only the basename.
(cd "$T" && "$DSC_CONVERT" -src in/odd-1000.raw -dst out/rel.vmdk -dst-fmt vmdk) 2>"$T/stderr"
RC=$? LAST_CMD="dsc-convert -src in/odd-1000.raw -dst out/rel.vmdk -dst-fmt vmdk"
expect_ok "a relative destination"
check "a relative destination: descriptor holds rel.vmdk" vmdk_lint "$T/out/rel.vmdk" 1024
check "a relative destination: vmdkinfo" vmdkinfo_ok "$T/out/rel.vmdk" 1024

finish
