#!/bin/bash
# writebehind.sh - an output file is written behind: once dsc-convert has
# finished, only its last windows (8 MiB each) are still in the page cache,
# however large the output, and the file is whole and correct. Skipped where
# the page cache cannot be dropped (tmpfs keeps file data in memory).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img fincore

case $(stat -f -c %T "$T") in
tmpfs | ramfs) skip "$T is on $(stat -f -c %T "$T"): its pages are the data" ;;
esac

mkdir "$T/in" "$T/out"
I=$T/in O=$T/out
data=$((96 * MiB))
# At most the window being written, the one on its way to the disk and the
# one being dropped: 3 x 8 MiB.
limit=$((24 * MiB))

# cached FILE: bytes of FILE in the page cache.
cached() {
	fincore --bytes --noheadings --output RES "$1" | tr -d ' '
}
cached_below() {
	local c
	c=$(cached "$1") || return 1
	[ "$c" -le "$2" ] || { echo "$1: $c bytes in the page cache, want <= $2"; return 1; }
}

# 96 MiB of data that deflate cannot shrink much, then a 32 MiB hole.
gen_random "$I/disk.raw" $data
truncate -s $((data + 32 * MiB)) "$I/disk.raw"

run_dsc -src "$I/disk.raw" -dst "$O/disk.vmdk" -dst-fmt vmdk
expect_ok "raw -> vmdk"
check "raw -> vmdk: output over 64 MiB ($(fsize "$O/disk.vmdk") bytes)" \
	test "$(fsize "$O/disk.vmdk")" -gt $((64 * MiB))
check "raw -> vmdk: at most $((limit / MiB)) MiB of the output cached" cached_below "$O/disk.vmdk" $limit

run_dsc -src "$O/disk.vmdk" -dst "$O/disk.raw"
expect_ok "vmdk -> raw"
check "vmdk -> raw: at most $((limit / MiB)) MiB of the output cached" cached_below "$O/disk.raw" $limit

# Now read back: the dropped pages come from the disk, and must be right.
check "vmdk -> raw: equals the source" cmp "$I/disk.raw" "$O/disk.raw"
check "raw -> vmdk: qemu-img compare" qemu_same "$I/disk.raw" "$O/disk.vmdk"
check "raw -> vmdk: qemu-img check" qemu-img check -q -f vmdk "$O/disk.vmdk"

# Grains in descending order: the raw writer seeks back before each one,
# so the windows are counted in bytes written, not by how far the end moved.
vmdk_craft "$I/disk.raw" "$I/reverse.vmdk" reverse
check "reverse-order fixture is valid for qemu-img" qemu_same "$I/disk.raw" "$I/reverse.vmdk"
run_dsc -src "$I/reverse.vmdk" -dst "$O/reverse.raw"
expect_ok "reverse-order vmdk -> raw"
check "reverse-order vmdk -> raw: at most $((limit / MiB)) MiB of the output cached" \
	cached_below "$O/reverse.raw" $limit
check "reverse-order vmdk -> raw: equals the source" cmp "$I/disk.raw" "$O/reverse.raw"

# A sparse output waits for the disk per 8 MiB of data, not per hole: 64
# pieces of 256 KiB, 16 MiB apart (16 MiB of data in 1 GiB) make two
# windows, hence at most 4 sync_file_range calls (a call per hole: 64+).
gen_sparse "$I/spread.raw" $GiB
for i in $(seq 0 63); do
	put_random "$I/spread.raw" $((i * 16 * MiB)) $((256 * 1024))
done
run_dsc -src "$I/spread.raw" -dst "$O/spread.vmdk" -dst-fmt vmdk
expect_ok "spread raw -> vmdk"
if command -v strace >/dev/null 2>&1; then
	strace -f -qq -e trace=sync_file_range -o "$T/strace.txt" \
		"$DSC_CONVERT" -src "$O/spread.vmdk" -dst "$O/spread.raw" 2>"$T/stderr"
	calls=$(grep -c 'sync_file_range(' "$T/strace.txt")
	check "spread vmdk -> raw: $calls sync_file_range calls (<= 4)" test "$calls" -le 4
	check "spread vmdk -> raw: some write-behind happened" test "$calls" -ge 1
else
	run_dsc -src "$O/spread.vmdk" -dst "$O/spread.raw"
	lacking strace "the sync_file_range count"
fi
check "spread vmdk -> raw: equals the source" cmp "$I/spread.raw" "$O/spread.raw"

# Standard output is written as it is (no fsync and no write-behind: the
# caller owns that file); its bytes are right too.
run_dsc -src "$O/disk.vmdk" -dst -
expect_ok "vmdk -> raw on stdout"
check "stdout: the same bytes" cmp "$I/disk.raw" "$T/stdout"

finish
