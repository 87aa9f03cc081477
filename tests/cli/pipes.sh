#!/bin/bash
# pipes.sh - conversions through real pipes: stdin and stdout, chained
# dsc-convert runs, zeros written to a pipe, grains out of order refused on
# a pipe, and write errors (EPIPE, ENOSPC) reported without hanging.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img

mkdir "$T/in" "$T/out"
I=$T/in O=$T/out
D=$DSC_CONVERT

# pipe_ok DESC: every command of the last pipeline exited 0 (PS=PIPESTATUS).
pipe_ok() {
	local desc=$1 st
	for st in "${PS[@]}"; do
		[ "$st" -eq 0 ] || { fail "$desc: a pipeline stage exited $st (${PS[*]})" "stderr: $(head -c 1000 "$T/stderr")"; return; }
	done
	if [ -s "$T/stderr" ]; then
		fail "$desc: stderr not empty" "stderr: $(head -c 1000 "$T/stderr")"
	else
		pass "$desc"
	fi
}

gen_random "$I/odd.raw" $((3 * MiB + 1000))
padded "$I/odd.raw" "$T/odd.padded"
gen_sparse "$I/sparse.raw" $((40 * MiB))
put_random "$I/sparse.raw" 1000 5000
put_random "$I/sparse.raw" $((35 * MiB)) 70000
gen_text "$I/text.raw" $((4 * MiB))

for n in odd sparse text; do
	want=$I/$n.raw
	[ $n = odd ] && want=$T/odd.padded
	cap=$(round512 "$(fsize "$I/$n.raw")")

	# A file's size is known up front, so its VMDK can stream to a pipe.
	"$D" -src "$I/$n.raw" -dst - -dst-fmt vmdk 2>"$T/stderr" | cat >"$O/$n.vmdk"
	PS=("${PIPESTATUS[@]}")
	pipe_ok "$n: raw file -> VMDK on a pipe"
	check "$n: piped VMDK passes qemu-img check" qemu-img check -q -f vmdk "$O/$n.vmdk"
	check "$n: piped VMDK equals the source" qemu_same "$I/$n.raw" "$O/$n.vmdk"
	check "$n: piped VMDK layout" vmdk_lint "$O/$n.vmdk" "$cap" '*'

	cat "$O/$n.vmdk" | "$D" -src - -dst - -dst-fmt vmdk 2>>"$T/stderr" |
		"$D" -src - -dst - 2>>"$T/stderr" | cmp - "$want"
	PS=("${PIPESTATUS[@]}")
	pipe_ok "$n: cat vmdk | dsc vmdk->vmdk | dsc vmdk->raw | cmp"
	: >"$T/stderr"

	cat "$I/$n.raw" | "$D" -src - -dst - 2>"$T/stderr" | cmp - "$I/$n.raw"
	PS=("${PIPESTATUS[@]}")
	pipe_ok "$n: cat raw | dsc raw->raw | cmp (exact size)"

	cat "$O/$n.vmdk" | "$D" -src - -dst "$O/$n.raw" 2>"$T/stderr"
	PS=("${PIPESTATUS[@]}")
	pipe_ok "$n: VMDK on stdin -> raw file"
	check "$n: VMDK on stdin -> raw file is exact" cmp "$want" "$O/$n.raw"

	"$D" -src "$O/$n.vmdk" -dst - 2>"$T/stderr" | cmp - "$want"
	PS=("${PIPESTATUS[@]}")
	pipe_ok "$n: VMDK file -> raw on stdout (zeros written), exact"

	cat "$I/$n.raw" | "$D" -src - -dst "$O/$n.copy.raw" 2>"$T/stderr"
	PS=("${PIPESTATUS[@]}")
	pipe_ok "$n: raw on stdin -> raw file"
	check "$n: raw on stdin -> raw file is exact, same size" cmp "$I/$n.raw" "$O/$n.copy.raw"

	cat "$I/$n.raw" | "$D" -src - -dst "$O/$n.v.vmdk" -dst-fmt vmdk 2>"$T/stderr"
	PS=("${PIPESTATUS[@]}")
	pipe_ok "$n: raw on stdin -> VMDK file"
	check "$n: raw on stdin -> VMDK file: qemu-img compare" qemu_same "$I/$n.raw" "$O/$n.v.vmdk"
	check "$n: raw on stdin -> VMDK file: layout" vmdk_lint "$O/$n.v.vmdk" "$(round512 "$(fsize "$I/$n.raw")")"
	rm -f "$O"/*
done

# A raw pipe has no size until it ends, and a VMDK header needs it first: a
# VMDK onto a pipe from a raw pipe is refused, cleanly.
cat "$I/odd.raw" | "$D" -src - -dst - -dst-fmt vmdk 2>"$T/stderr" | cat >/dev/null
RC=${PIPESTATUS[1]} LAST_CMD="cat odd.raw | dsc-convert -src - -dst - -dst-fmt vmdk | cat"
expect_fail "raw pipe -> VMDK pipe: refused" "" 'size'

# A sparse raw file to a pipe: all the zeros are written, size exact.
n=$("$D" -src "$I/sparse.raw" -dst - 2>"$T/stderr" | wc -c)
check "sparse 40 MiB raw -> pipe writes 40 MiB ($n bytes)" test "$n" -eq $((40 * MiB))
"$D" -src "$I/sparse.raw" -dst - 2>"$T/stderr" | cmp - "$I/sparse.raw"
PS=("${PIPESTATUS[@]}")
pipe_ok "sparse raw -> pipe is exact"

# stdout redirected to a regular file.
"$D" -src "$I/sparse.raw" -dst - -dst-fmt vmdk >"$O/redir.vmdk" 2>"$T/stderr"
RC=$? LAST_CMD="dsc-convert -src sparse.raw -dst - -dst-fmt vmdk >file"
expect_ok "VMDK to stdout redirected to a file"
check "VMDK to a redirected stdout: qemu-img compare" qemu_same "$I/sparse.raw" "$O/redir.vmdk"
rm -f "$O"/*

# Grains out of order: fine into a raw file (seekable), refused into a pipe
# and into a VMDK (whose writer never seeks).
vmdk_craft "$I/sparse.raw" "$I/reverse.vmdk" reverse
check "reverse-order fixture is valid for qemu-img" qemu_same "$I/sparse.raw" "$I/reverse.vmdk"
"$D" -src "$I/reverse.vmdk" -dst - 2>"$T/stderr" | cat >/dev/null
RC=${PIPESTATUS[0]} LAST_CMD="dsc-convert -src reverse.vmdk -dst - | cat"
expect_fail "grains out of order into a pipe" "" 'order|ascending|backward|seek'
cat "$I/reverse.vmdk" | "$D" -src - -dst "$O/rev.raw" 2>"$T/stderr"
RC=${PIPESTATUS[1]} LAST_CMD="cat reverse.vmdk | dsc-convert -src - -dst rev.raw"
expect_ok "grains out of order from a pipe into a file"
check "grains out of order into a file: exact" cmp "$I/sparse.raw" "$O/rev.raw"
run_dsc -src "$I/reverse.vmdk" -dst "$O/rev.vmdk" -dst-fmt vmdk
expect_fail "grains out of order into a VMDK (written forward only)" rev 'order|ascending'
dir_is "grains out of order into a VMDK: no output" "$O" rev.raw
rm -f "$O"/*

# The reader of our stdout goes away: dsc-convert stops, non-zero, no hang.
gen_sparse "$I/big.raw" $((2 * GiB))
timeout 60 "$D" -src "$I/big.raw" -dst - 2>"$T/stderr" | head -c 1000 >/dev/null
PS=("${PIPESTATUS[@]}")
if [ "${PS[0]}" -ne 0 ] && [ "${PS[0]}" -ne 124 ]; then
	pass "closed pipe: dsc-convert stops with status ${PS[0]}"
else
	fail "closed pipe: dsc-convert must stop non-zero, promptly (status ${PS[0]})"
fi
if [ "${PS[0]}" -eq 1 ]; then
	check "closed pipe: one line on stderr" test "$(wc -l <"$T/stderr")" -eq 1
fi

# A symlink destination stays a link and its target gets the image (as when
# qemu-img writes through the link); the target's old bytes are replaced.
mkdir -p "$O/real"
printf 'old contents' >"$O/real/target.raw"
ln -s real/target.raw "$O/link.raw"
run_dsc -src "$I/odd.raw" -dst "$O/link.raw"
expect_ok "-dst naming a symlink"
check "the symlink is still a symlink" test -L "$O/link.raw"
check "the link's target holds the image" cmp "$I/odd.raw" "$O/real/target.raw"
dir_is "no temporary beside the target" "$O/real" target.raw
rm -rf "$O/real" "$O/link.raw"

# Special destinations named by path: written in place, never replaced by a
# regular file (a device node stays a device: think -dst /dev/sdb).
if mknod "$O/nulldev" c 1 3 2>/dev/null; then
	run_dsc -src "$I/odd.raw" -dst "$O/nulldev"
	expect_ok "-dst naming a character device (a null device node)"
	check "the device node is still a character device" test -c "$O/nulldev"
	[ -c "$O/nulldev" ] && devices_in_place=yes
	dir_is "no temporary beside the device node" "$O" nulldev
	rm -f "$O/nulldev"
else
	echo "# cannot mknod here (not root?): the device destination check is skipped"
fi
# A block device (a loop device over a file full of 0xAA): written in place,
# the holes written as zeros over the old bytes. Only tried once a device
# node in $T survived: a converter that renames over its destination would
# replace the real /dev/loopN node.
head -c $((40 * MiB)) /dev/zero | tr '\0' '\252' >"$T/back.img"
if [ "${devices_in_place:-}" = yes ] && command -v losetup >/dev/null &&
	loopdev=$(losetup -f --show "$T/back.img" 2>/dev/null); then
	trap 'losetup -d "$loopdev" 2>/dev/null; cleanup' EXIT
	run_dsc -src "$I/sparse.raw" -dst "$loopdev"
	expect_ok "-dst naming a block device ($loopdev)"
	check "the block device node is still a block device" test -b "$loopdev"
	losetup -d "$loopdev"
	trap cleanup EXIT
	check "the block device holds the image, zeros written over old data" cmp "$I/sparse.raw" "$T/back.img"
else
	echo "# cannot attach a loop device here: the block device check is skipped"
fi
rm -f "$T/back.img"
mkfifo "$O/fifo"
timeout 60 cat "$O/fifo" >"$T/fifo.got" &
reader=$!
timeout 60 "$D" -src "$I/sparse.raw" -dst "$O/fifo" 2>"$T/stderr"
RC=$? LAST_CMD="dsc-convert -src sparse.raw -dst FIFO (with a reader)"
if [ ! -p "$O/fifo" ]; then
	# Unblock the reader still waiting on the replaced FIFO's old inode.
	kill "$reader" 2>/dev/null
fi
wait "$reader"
expect_ok "-dst naming a FIFO with a reader"
check "the FIFO is still a FIFO" test -p "$O/fifo"
check "the reader of the FIFO got the image, zeros written" cmp "$I/sparse.raw" "$T/fifo.got"
rm -f "$O"/* "$O"/.fifo.* 2>/dev/null

# Writing to a full device (ENOSPC on stdout).
for fmt in raw vmdk; do
	"$D" -src "$I/odd.raw" -dst - -dst-fmt $fmt >/dev/full 2>"$T/stderr"
	RC=$? LAST_CMD="dsc-convert -src odd.raw -dst - -dst-fmt $fmt >/dev/full"
	expect_fail "$fmt to /dev/full" "" 'space|full'
done

finish
