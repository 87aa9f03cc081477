#!/bin/bash
# sparse.sh - a 20 GiB mostly-empty disk converts in seconds and stays a few
# MB on disk in both directions; zero blocks become holes; -prealloc
# allocates the whole capacity (and fails cleanly when it cannot).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img vmdkinfo

mkdir "$T/in" "$T/out"
I=$T/in O=$T/out
big=$((20 * GiB))

# 20 GiB: data at the start, in the middle (unaligned, across a grain
# border) and in the last sector.
gen_sparse "$I/big.raw" $big
put_random "$I/big.raw" 0 70000
put_random "$I/big.raw" $((10 * GiB + GRAIN - 1000)) 3000
put_random "$I/big.raw" $((big - 512)) 512

# timed RUN_DESC LIMIT ARGS...: run_dsc and check it took < LIMIT seconds.
timed() {
	local desc=$1 limit=$2 t0 t1 secs
	shift 2
	t0=$(date +%s%N)
	run_dsc "$@"
	t1=$(date +%s%N)
	expect_ok "$desc"
	secs=$(((t1 - t0) / 1000000))
	check "$desc: took $secs ms (< $limit s)" test $secs -lt $((limit * 1000))
}

timed "20 GiB sparse raw -> vmdk" 20 -src "$I/big.raw" -dst "$O/big.vmdk" -dst-fmt vmdk
check "20 GiB sparse -> VMDK is small ($(fsize "$O/big.vmdk") bytes < 1 MiB)" \
	test "$(fsize "$O/big.vmdk")" -lt $MiB
vmdk_all_ok "20 GiB sparse" "$I/big.raw" "$O/big.vmdk"

timed "20 GiB vmdk -> raw" 20 -src "$O/big.vmdk" -dst "$O/big.raw"
check "20 GiB vmdk -> raw: size exactly 20 GiB" size_is "$O/big.raw" $big
check "20 GiB vmdk -> raw: stays sparse (< 8 MiB allocated)" alloc_below "$O/big.raw" $((8 * MiB))
check "20 GiB vmdk -> raw: content (qemu-img compare)" qemu-img compare -q -f raw -F raw "$I/big.raw" "$O/big.raw"
for off in 0 $((10 * GiB + GRAIN - 1000)) $((big - 512)); do
	check "20 GiB vmdk -> raw: bytes at $off" \
		cmp <(dd if="$I/big.raw" bs=512 skip=$off count=3000 iflag=skip_bytes,count_bytes status=none) \
		<(dd if="$O/big.raw" bs=512 skip=$off count=3000 iflag=skip_bytes,count_bytes status=none)
done
rm -f "$O/big.raw"

timed "20 GiB sparse raw -> raw" 20 -src "$I/big.raw" -dst "$O/big.raw"
check "20 GiB raw -> raw: size exactly 20 GiB" size_is "$O/big.raw" $big
check "20 GiB raw -> raw: stays sparse (< 8 MiB allocated)" alloc_below "$O/big.raw" $((8 * MiB))
check "20 GiB raw -> raw: content (qemu-img compare)" qemu-img compare -q -f raw -F raw "$I/big.raw" "$O/big.raw"
rm -f "$O"/*

# Zero blocks written as data become holes in a raw output.
gen_zero "$I/zero.raw" $((8 * MiB))
run_dsc -src "$I/zero.raw" -dst "$O/zero.raw"
expect_ok "8 MiB of written zeros -> raw"
check "written zeros -> raw: size 8 MiB" size_is "$O/zero.raw" $((8 * MiB))
check "written zeros -> raw: nothing allocated (<= 64 KiB)" alloc_below "$O/zero.raw" 65536
check "written zeros -> raw: all zero" cmp "$I/zero.raw" "$O/zero.raw"
gen_zero "$I/mixed.raw" $((8 * MiB))
for i in 5 50 100; do put_random "$I/mixed.raw" $((i * GRAIN + 100)) 1000; done
run_dsc -src "$I/mixed.raw" -dst "$O/mixed.raw"
expect_ok "zeros with three small data runs -> raw"
check "mixed -> raw: exact copy" cmp "$I/mixed.raw" "$O/mixed.raw"
check "mixed -> raw: at most the three data grains allocated" alloc_below "$O/mixed.raw" $((3 * GRAIN + 65536))
rm -f "$O"/*

# -prealloc: every block allocated, content unchanged; without it, sparse.
gen_sparse "$I/s64.raw" $((64 * MiB))
put_random "$I/s64.raw" $((40 * MiB + 3)) 5000
run_dsc -src "$I/s64.raw" -dst "$O/pre.raw" -prealloc
expect_ok "-prealloc raw -> raw"
check "-prealloc: size 64 MiB" size_is "$O/pre.raw" $((64 * MiB))
check "-prealloc: 64 MiB allocated" alloc_atleast "$O/pre.raw" $((64 * MiB))
check "-prealloc: content" cmp "$I/s64.raw" "$O/pre.raw"
run_dsc -src "$I/s64.raw" -dst "$O/sparse.raw"
expect_ok "no -prealloc raw -> raw"
check "no -prealloc: sparse" alloc_below "$O/sparse.raw" $MiB
run_dsc -src "$I/s64.raw" -dst "$O/s64.vmdk" -dst-fmt vmdk -q
run_dsc -src "$O/s64.vmdk" -dst "$O/pre2.raw" -prealloc
expect_ok "-prealloc vmdk -> raw"
check "-prealloc vmdk -> raw: 64 MiB allocated" alloc_atleast "$O/pre2.raw" $((64 * MiB))
check "-prealloc vmdk -> raw: content" cmp "$I/s64.raw" "$O/pre2.raw"
rm -f "$O"/*

# -prealloc on a file system too small for the capacity fails before writing,
# leaves nothing, while the sparse conversion of the same disk fits.
mkdir "$T/small"
if mount -t tmpfs -o size=8m dsc-test "$T/small" 2>/dev/null; then
	trap 'umount "$T/small" 2>/dev/null; cleanup' EXIT
	run_dsc -src "$I/s64.raw" -dst "$T/small/pre.raw" -prealloc
	expect_fail "-prealloc 64 MiB on an 8 MiB file system" pre.raw 'space|full'
	dir_is "-prealloc on a full file system leaves nothing" "$T/small"
	run_dsc -src "$I/s64.raw" -dst "$T/small/sparse.raw"
	expect_ok "the same disk without -prealloc fits on 8 MiB"
	check "sparse on tmpfs: content" cmp "$I/s64.raw" "$T/small/sparse.raw"
	gen_random "$I/r16.raw" $((16 * MiB))
	run_dsc -src "$I/r16.raw" -dst "$T/small/full.raw"
	expect_fail "16 MiB of data on an 8 MiB file system" full.raw 'space|full'
	dir_is "a full file system leaves only the earlier output" "$T/small" sparse.raw
	umount "$T/small"
else
	echo "# cannot mount a tmpfs here: the full-disk checks are skipped"
fi

finish
