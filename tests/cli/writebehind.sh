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

# Standard output redirected to a file is not an atomic output: no fsync
# and no write-behind there (the caller owns that file).
run_dsc -src "$O/disk.vmdk" -dst -
expect_ok "vmdk -> raw on stdout"
check "stdout: the same bytes" cmp "$I/disk.raw" "$T/stdout"

finish
