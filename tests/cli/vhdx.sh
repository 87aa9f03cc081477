#!/bin/bash
# vhdx.sh - VHDX read and write against qemu-img, qemu-io and libvhdi.
#
# Reading: images made by qemu-img convert (dynamic and fixed; block sizes
# 1, 8, 32 and 256 MiB; a 4 MiB log; block_state_zero=off), by qemu-img
# create + qemu-io (VM-style out-of-order writes with write -z and discard,
# odd sizes, 1.5 GiB with data in a few places, a 2 TiB sparse disk) and a
# 4096-byte-sector disk dsc writes itself; each converts from the file and
# from a real pipe (qemu's layout is forward-readable) to the bytes of
# `qemu-img convert -O raw`. A log left by a crash (crafted here: qemu
# closes cleanly) is replayed in memory from a file, to the bytes qemu's
# own replay gives, and refused on a pipe. Refusals (a log GUID without a
# log, a differencing disk, both headers broken, a cut file or pipe) give
# one named line, exit 1 and no output.
#
# Writing: -dst-fmt vhdx, dynamic (default 32 MiB blocks, 1 MiB and 256
# MiB) and fixed, to a file and to a real pipe (dynamic: two passes over a
# seekable source; fixed: one pass), from raw, qcow2 and VHDX sources
# (files and pipes). Every output passes `qemu-img check`, `qemu-img
# compare` with its source and vhdiinfo, and dsc reads it back from the
# file and from a pipe.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img qemu-io vhdiinfo

mkdir "$T/in" "$T/out"
I=$T/in O=$T/out

# to_pipe OUT ARGS...: dsc-convert ARGS -dst - writing into a real pipe,
# whose bytes land in OUT; with PIPE_IN=FILE it also reads FILE from one.
to_pipe() {
	local out=$1
	shift
	if [ -n "${PIPE_IN:-}" ]; then
		cat "$PIPE_IN" | "$DSC_CONVERT" -src - "$@" -dst - 2>"$T/stderr" | cat >"$out"
		RC=${PIPESTATUS[1]}
		LAST_CMD="cat $PIPE_IN | dsc-convert -src - $* -dst - | cat"
	else
		"$DSC_CONVERT" "$@" -dst - </dev/null 2>"$T/stderr" | cat >"$out"
		RC=${PIPESTATUS[0]}
		LAST_CMD="dsc-convert $* -dst - | cat"
	fi
}

# same REF OUT: byte for byte; qemu-img compare past 1 GiB (sparse disks).
same() {
	if [ "$(fsize "$1")" -gt "$GiB" ]; then
		qemu-img compare -q -f raw -F raw "$1" "$2"
	else
		cmp "$1" "$2"
	fi
}

# convert_all NAME: NAME.vhdx from the file (-src-fmt vhdx and detected)
# and from a pipe (both ways) gives qemu-img's raw bytes.
convert_all() {
	local n=$1 f=$I/$1.vhdx r=$T/$1.ref how
	qemu-img convert -q -f vhdx -O raw "$f" "$r" || { fail "$n: qemu-img convert -O raw"; return; }
	for how in "-src-fmt vhdx" ""; do
		# shellcheck disable=SC2086 # $how is a word list
		run_dsc -src "$f" $how -dst "$O/$n.raw"
		expect_ok "$n: file ${how:-detected} -> raw"
		check "$n: file ${how:-detected} -> raw: same bytes as qemu-img" same "$r" "$O/$n.raw"
		rm -f "$O/$n.raw"
		# shellcheck disable=SC2086
		run_pipe "$f" -src - $how -dst "$O/$n.raw"
		expect_ok "$n: pipe ${how:-detected} -> raw"
		check "$n: pipe ${how:-detected} -> raw: same bytes as qemu-img" same "$r" "$O/$n.raw"
		rm -f "$O/$n.raw"
	done
	rm -f "$r"
}

# qio FILE SEED N: N writes of random sizes at random offsets (zero writes
# and discards among them), as a guest would: blocks are allocated in the
# order they are first written, not in guest order.
qio() {
	local f=$1 seed=$2 n=$3 size args
	size=$(qemu-img info --output=json "$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
	mapfile -t args < <(python3 - "$seed" "$n" "$size" <<'EOF'
import random, sys
rnd = random.Random(int(sys.argv[1]))
n, size = int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    ln = rnd.choice((512, 4096, 65536, 100000 // 512 * 512, 1 << 20, rnd.randrange(1, 4096) * 512))
    ln = min(ln, size)
    off = rnd.randrange(0, max(1, (size - ln) // 512 + 1)) * 512
    k = rnd.random()
    print('-c')
    if k < 0.08:
        print('write -z %d %d' % (off, ln))
    elif k < 0.15:
        print('discard %d %d' % (off, ln))
    else:
        print('write -P 0x%02x %d %d' % (rnd.randrange(1, 256), off, ln))
EOF
)
	qemu-io -f vhdx "${args[@]}" "$f" >/dev/null || fail "qemu-io writes on $f"
}

# vhdx_edit FILE WHAT [LOG-POSITION]: rewrite part of a qemu-made VHDX and fix
# the checksums, as a crash or another tool would leave it.
vhdx_edit() { # FILE WHAT [LOG-POSITION]
	python3 - "$@" <<'EOF'
import struct, sys
T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82f63b78 if c & 1 else c >> 1
    T.append(c)
def crc32c(b):
    c = 0xffffffff
    for x in b:
        c = T[(c ^ x) & 0xff] ^ (c >> 8)
    return c ^ 0xffffffff
MiB = 1 << 20
path, what = sys.argv[1:3]
d = bytearray(open(path, 'rb').read())
def fix_header(off):
    d[off + 4:off + 8] = b'\0' * 4
    d[off + 4:off + 8] = struct.pack('<I', crc32c(bytes(d[off:off + 4096])))
s1, s2 = (struct.unpack_from('<Q', d, o + 8)[0] for o in (65536, 131072))
cur = 65536 if s1 > s2 else 131072
GUID = bytes(range(1, 17))
if what == 'dirty-log':      # a log GUID in the current header, no log entry
    d[cur + 48:cur + 64] = GUID
    fix_header(cur)
elif what == 'log-bat':      # a crash before the BAT reached its place
    # The first BAT page is zeroed in the file; a log entry at the given
    # log offset (wrapping at the log's end) holds it as a data descriptor,
    # and a zero descriptor over 4 KiB of block 0.
    at = int(sys.argv[3])
    rt = 196608
    bat_off = [struct.unpack_from('<Q', d, rt + 32 + 32 * i)[0]
               for i in range(struct.unpack_from('<I', d, rt + 8)[0])
               if d[rt + 16 + 32 * i:rt + 32 + 32 * i] == bytes.fromhex('6677c22d23f600429d64115e9bfd4a08')][0]
    log_len, log_off = struct.unpack_from('<IQ', d, cur + 68)
    page = bytes(d[bat_off:bat_off + 4096])
    host0 = struct.unpack_from('<Q', page, 0)[0]
    assert host0 & 7 == 6, 'block 0 must be present'
    host0 &= ~0xfffff
    d[bat_off:bat_off + 4096] = bytes(4096)
    seq = 0x100000007
    ent = bytearray(8192)
    struct.pack_into('<4sIIIQII16sQQ', ent, 0, b'loge', 0, 8192, at, seq, 2, 0, GUID,
                     len(d) // MiB * MiB, -(-len(d) // MiB) * MiB)
    struct.pack_into('<4s4s8sQQ', ent, 64, b'desc', page[4092:], page[:8], bat_off, seq)
    struct.pack_into('<4sIQQQ', ent, 96, b'zero', 0, 4096, host0 + 8192, seq)
    struct.pack_into('<4sI', ent, 4096, b'data', seq >> 32)
    ent[4104:8188] = page[8:4092]
    struct.pack_into('<I', ent, 8188, seq & 0xffffffff)
    struct.pack_into('<I', ent, 4, crc32c(bytes(ent)))
    for k in range(8192):
        d[log_off + (at + k) % log_len] = ent[k]
    d[cur + 48:cur + 64] = GUID
    fix_header(cur)
elif what == 'both-headers': # both header checksums wrong
    d[65536 + 4] ^= 1
    d[131072 + 4] ^= 1
elif what == 'old-header':   # the older header broken: the newer one is used
    d[(196608 - cur) + 4] ^= 0xff
elif what == 'parent':       # HasParent in the file parameters
    md = struct.unpack_from('<Q', d, 196608 + 16 + 32 + 16)[0]
    for i in range(struct.unpack_from('<H', d, md + 10)[0]):
        e = md + 32 + 32 * i
        if d[e:e + 4] == bytes.fromhex('3767a1ca'):
            off = md + struct.unpack_from('<I', d, e + 16)[0]
            d[off + 4] |= 2
open(path, 'wb').write(d)
EOF
}

# ---- a source disk: random, text, zeros, holes; 70 MiB + 1000 bytes -------
S=$I/src.raw
gen_sparse "$S" $((70 * MiB + 1000))
put_random "$S" 0 300000
gen_text "$T/text" $((3 * MiB))
dd if="$T/text" of="$S" bs=1M seek=5 conv=notrunc status=none
put_random "$S" $((33 * MiB + 4096)) 70000
put_random "$S" $((70 * MiB - 100)) 1100
rm -f "$T/text"
R=$I/src.pad # the source padded to whole sectors, as a VHDX holds it
cp "$S" "$R" && truncate -s "$(round512 "$(fsize "$S")")" "$R"

mkx() { # NAME [qemu-img convert options...]
	local n=$1
	shift
	qemu-img convert -q -f raw -O vhdx "$@" "$S" "$I/$n.vhdx" || fail "$n: qemu-img convert $*"
}
mkx dyn
mkx dyn-1m -o block_size=1M
mkx dyn-32m -o block_size=32M
mkx dyn-256m -o block_size=256M
mkx dyn-log4m -o log_size=4M
mkx dyn-nozero -o block_state_zero=off
mkx fixed -o subformat=fixed
mkx fixed-1m -o subformat=fixed,block_size=1M
for n in dyn dyn-1m dyn-32m dyn-256m dyn-log4m dyn-nozero fixed fixed-1m; do
	convert_all "$n"
done

# ---- VM-style writes: blocks in the order the guest touched them ----------
qemu-img create -q -f vhdx -o block_size=1M "$I/vm.vhdx" 200M
qio "$I/vm.vhdx" 1 300
convert_all vm
qemu-img create -q -f vhdx "$I/vm-8m.vhdx" 300M
qio "$I/vm-8m.vhdx" 2 150
convert_all vm-8m
# Writes, then zero writes and discards over whole blocks (ZERO and
# UNMAPPED states where qemu sets them), then writes again.
cp "$I/dyn-1m.vhdx" "$I/vm-zero.vhdx"
qemu-io -f vhdx -c 'write -z 0 4M' -c 'discard 8M 8M' -c 'write -P 0x5a 9M 4k' \
	-c 'write -z -u 33M 2M' "$I/vm-zero.vhdx" >/dev/null || fail "qemu-io zero writes"
convert_all vm-zero

# ---- odd sizes, tiny and empty disks ---------------------------------------
for sz in 512 $((1000 * 512 + 512)) $((3 * MiB + 512 * 3)) $((33 * MiB - 512)); do
	gen_random "$T/odd.raw" "$sz"
	qemu-img convert -q -f raw -O vhdx "$T/odd.raw" "$I/odd-$sz.vhdx"
	qemu-img convert -q -f raw -O vhdx -o subformat=fixed,block_size=8M "$T/odd.raw" \
		"$I/oddf-$sz.vhdx"
	convert_all "odd-$sz"
	convert_all "oddf-$sz"
done
rm -f "$T/odd.raw"
qemu-img create -q -f vhdx "$I/blank.vhdx" 1G
convert_all blank

# ---- 1.5 GiB with data in a few places ------------------------------------
qemu-img create -q -f vhdx "$I/mid.vhdx" 1536M
qemu-io -f vhdx -c 'write -P 0x11 0 1M' -c 'write -P 0x22 700M 3M' \
	-c 'write -P 0x33 1535M 1M' -c 'write -P 0x44 100M 4k' "$I/mid.vhdx" >/dev/null
convert_all mid

# ---- 2 TiB sparse ----------------------------------------------------------
# qemu's VHDX driver reports no block status, so qemu-img would read all of
# 2 TiB to compare: qemu-io checks the three writes in the source instead,
# and layout_is checks every byte of dsc's sparse output against them.
BIG_WRITES="0:65536:0x11 1099511627776:100000:0x22 2199023190016:65536:0x33"
# layout_is RAW SIZE WRITES: RAW is SIZE bytes of zeros but for WRITES
# (offset:length:byte); only its allocated parts (SEEK_DATA) are read.
layout_is() {
	python3 - "$@" <<'EOF'
import os, sys
path, size, writes = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
w = [tuple(int(x, 0) for x in t.split(':')) for t in writes]
st = os.stat(path)
if st.st_size != size:
    sys.exit('size %d, want %d' % (st.st_size, size))
fd = os.open(path, os.O_RDONLY)
pos = 0
while pos < size:
    try:
        d = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE)
    while d < h:
        n = min(h - d, 1 << 20)
        got = os.pread(fd, n, d)
        want = bytearray(n)
        for off, ln, byte in w:
            a, b = max(off, d), min(off + ln, d + n)
            if a < b:
                want[a - d:b - d] = bytes([byte]) * (b - a)
        if got != bytes(want):
            sys.exit('bytes differ in [%d, %d)' % (d, d + n))
        d += n
    pos = h
for off, ln, byte in w:   # a write must not have become a hole
    if os.pread(fd, 1, off) != bytes([byte]):
        sys.exit('byte %d is not 0x%02x' % (off, byte))
EOF
}
qemu_sees() { # VHDX: qemu-io reads the three writes and zeros around them
	local out
	out=$(qemu-io -f vhdx -c 'read -P 0x11 0 65536' -c 'read -P 0 65536 1M' \
		-c 'read -P 0x22 1T 100000' -c 'read -P 0 1099511727776 1M' \
		-c 'read -P 0x33 2199023190016 65536' -c 'read -P 0 2199022141440 1M' "$1" 2>&1) ||
		return 1
	! grep -q 'Pattern verification failed' <<<"$out"
}
qemu-img create -q -f vhdx "$I/big.vhdx" 2T
qemu-io -f vhdx -c 'write -P 0x11 0 65536' -c 'write -P 0x22 1T 100000' \
	-c 'write -P 0x33 2199023190016 65536' "$I/big.vhdx" >/dev/null
check "2 TiB: qemu-io reads the writes back" qemu_sees "$I/big.vhdx"
t0=$(date +%s%N)
run_dsc -src "$I/big.vhdx" -dst "$O/big.raw"
t1=$(date +%s%N)
expect_ok "2 TiB sparse -> raw"
echo "# 2 TiB sparse vhdx -> raw: $(((t1 - t0) / 1000000)) ms"
check "2 TiB: sparse" alloc_below "$O/big.raw" $((8 * MiB))
check "2 TiB: every byte as written" layout_is "$O/big.raw" $((2 * 1024 * GiB)) "$BIG_WRITES"
rm -f "$O/big.raw"
run_pipe "$I/big.vhdx" -src - -dst "$O/big.raw"
expect_ok "2 TiB sparse on a pipe -> raw"
check "2 TiB on a pipe: every byte as written" layout_is "$O/big.raw" $((2 * 1024 * GiB)) "$BIG_WRITES"
rm -f "$O"/*
run_pipe "$I/big.vhdx" -src - -dst - -max-capacity 1T
expect_fail "2 TiB vhdx over -max-capacity 1T" "stdin" "exceeds the limit of 1099511627776 bytes"
check "2 TiB over -max-capacity: nothing written" test ! -s "$T/stdout"

# ---- refusals: one line, exit 1, nothing written ---------------------------
refused() { # FILE CODE-ERE: from the file and from a pipe
	local f=$1 ere=$2
	run_dsc -src "$I/$f" -dst "$O/out.raw"
	expect_fail "$f refused" "$f" "$ere"
	dir_is "$f: no output" "$O"
	run_pipe "$I/$f" -src - -dst "$O/out.raw"
	expect_fail "$f on a pipe refused" stdin "$ere"
	dir_is "$f on a pipe: no output" "$O"
}
# A log GUID without a log entry: corrupt (MS-VHDX 2.3.3); on a pipe the
# log cannot be replayed at all.
cp "$I/vm.vhdx" "$I/dirty.vhdx"
vhdx_edit "$I/dirty.vhdx" dirty-log
run_dsc -src "$I/dirty.vhdx" -dst "$O/out.raw"
expect_fail "log GUID, no log entry: refused" dirty.vhdx 'VHDX log at byte 1048576 \(GUID 04030201-0605-0807-090a-0b0c0d0e0f10\): the log GUID is set but the log holds no valid sequence'
dir_is "log GUID, no log entry: no output" "$O"
run_pipe "$I/dirty.vhdx" -src - -dst "$O/out.raw"
expect_fail "log to replay on a pipe: refused" stdin 'the VHDX log is not empty \(log GUID 04030201-0605-0807-090a-0b0c0d0e0f10: the disk was not shut down cleanly\); replaying it needs a seekable input'
dir_is "log to replay on a pipe: no output" "$O"
# A real replay: the BAT page and a zeroed range are only in the log; qemu
# replays a copy (qemu-img check -r all), dsc replays in memory and leaves
# its input alone. At the log's start, in its middle, and wrapping at its end.
for at in 0 12288 1044480; do
	cp "$I/dyn-1m.vhdx" "$I/replay.vhdx"
	vhdx_edit "$I/replay.vhdx" log-bat "$at"
	cp "$I/replay.vhdx" "$T/replayed.vhdx"
	check "log at $at: qemu-img check -r all replays it" qemu-img check -q -r all "$T/replayed.vhdx"
	qemu-img convert -q -f vhdx -O raw "$T/replayed.vhdx" "$T/replayed.raw"
	check "log at $at: the replay changes the disk" bash -c "! cmp -s '$T/replayed.raw' '$R'"
	sum0=$(md5sum <"$I/replay.vhdx")
	run_dsc -src "$I/replay.vhdx" -dst "$O/replay.raw"
	expect_ok "log at $at: dsc replays it (file)"
	check "log at $at: the bytes of qemu's replay" cmp "$T/replayed.raw" "$O/replay.raw"
	check "log at $at: the input is unchanged" test "$(md5sum <"$I/replay.vhdx")" = "$sum0"
	run_dsc -src "$I/replay.vhdx" -dst "$O/replay.vhdx" -dst-fmt vhdx
	expect_ok "log at $at: replayed into a new vhdx"
	check "log at $at: the new vhdx has qemu's replayed disk" qemu-img compare -q -f raw -F vhdx "$T/replayed.raw" "$O/replay.vhdx"
	rm -f "$O"/* "$T/replayed.vhdx" "$T/replayed.raw"
done
cp "$I/dyn.vhdx" "$I/parent.vhdx"
vhdx_edit "$I/parent.vhdx" parent
refused parent.vhdx 'a differencing VHDX \(it has a parent disk\)'
cp "$I/dyn.vhdx" "$I/noheader.vhdx"
vhdx_edit "$I/noheader.vhdx" both-headers
refused noheader.vhdx 'no valid VHDX header: header 1 at byte 65536: checksum 0x[0-9a-f]{8} does not match 0x[0-9a-f]{8}; header 2 at byte 131072: checksum'
head -c $((5 * MiB)) "$I/dyn.vhdx" >"$I/cut.vhdx"
refused cut.vhdx 'truncated'
head -c 300000 "$I/dyn.vhdx" >"$I/cut-header.vhdx"
refused cut-header.vhdx 'truncated: the VHDX file ends at byte 300000, inside the VHDX header section'
# One broken header: the other is used.
cp "$I/vm.vhdx" "$I/oldhdr.vhdx"
vhdx_edit "$I/oldhdr.vhdx" old-header
convert_all oldhdr

# ---- writing ---------------------------------------------------------------
# verify SRC-RAW OUT DESC: a sound VHDX with the source's content, that
# libvhdi opens and dsc reads back from the file and from a pipe.
verify() {
	local src=$1 out=$2 desc=$3
	check "$desc: qemu-img check" qemu-img check -q -f vhdx "$out"
	check "$desc: qemu-img compare with the source" qemu-img compare -q -f raw -F vhdx "$src" "$out"
	check "$desc: vhdiinfo opens it" vhdiinfo "$out"
	if "$DSC_CONVERT" -q -src "$out" -dst "$T/back.raw" 2>"$T/back.err" &&
		cat "$out" | "$DSC_CONVERT" -q -src - -dst "$T/back2.raw" 2>>"$T/back.err"; then
		check "$desc: dsc reads it back from the file" qemu-img compare -q -f raw -F vhdx "$T/back.raw" "$out"
		check "$desc: dsc reads it back from a pipe" qemu-img compare -q -f raw -F vhdx "$T/back2.raw" "$out"
	else
		fail "$desc: dsc reads it back" "$(head -c 300 "$T/back.err")"
	fi
	rm -f "$T/back.raw" "$T/back2.raw"
}
# grep_cmd ERE CMD...: CMD succeeds and prints a line matching ERE.
grep_cmd() {
	local ere=$1 out
	shift
	out=$("$@" 2>&1) && grep -Eq -- "$ere" <<<"$out"
}
# info_has OUT KEY VALUE: qemu-img info --output=json says so.
info_has() {
	qemu-img info --output=json "$1" | python3 -c '
import json, sys
i = json.load(sys.stdin)
k, v = sys.argv[1], sys.argv[2]
got = str(i.get(k, i.get("format-specific", {}).get("data", {}).get(k)))
sys.exit(0 if got == v else "%s is %s, want %s" % (k, got, v))' "$2" "$3"
}

qemu-img convert -q -f raw -O qcow2 "$S" "$I/src.qcow2"
for opts in "" "-o block_size=1M" "-o block_size=256M" "-o subformat=fixed" \
	"-o subformat=fixed,block_size=1M" "-o log_size=3M"; do
	d="raw -> vhdx ${opts:-(defaults)}"
	# shellcheck disable=SC2086 # $opts is a word list
	run_dsc -src "$S" -dst "$O/w.vhdx" -dst-fmt vhdx $opts
	expect_ok "$d: to a file"
	verify "$R" "$O/w.vhdx" "$d: file"
	rm -f "$O/w.vhdx"
	# shellcheck disable=SC2086
	to_pipe "$O/p.vhdx" -src "$I/src.qcow2" -dst-fmt vhdx $opts
	expect_ok "$d: qcow2 file -> a pipe"
	verify "$R" "$O/p.vhdx" "$d: to a pipe"
	rm -f "$O/p.vhdx"
done
run_dsc -src "$S" -dst "$O/w.vhdx" -dst-fmt vhdx
check "default block size is 32 MiB" info_has "$O/w.vhdx" cluster-size $((32 * MiB))
check "virtual size: the source rounded up to 512" info_has "$O/w.vhdx" virtual-size "$(fsize "$R")"
check "dynamic: only the blocks with data are stored (3 of 3 x 32 MiB here)" \
	alloc_below "$O/w.vhdx" $((80 * MiB))
rm -f "$O/w.vhdx"
run_dsc -src "$I/vm.vhdx" -dst "$O/empty-blocks.vhdx" -dst-fmt vhdx -o block_size=1M
expect_ok "vm.vhdx -> vhdx (1 MiB blocks)"
qemu-img convert -q -f vhdx -O raw "$I/vm.vhdx" "$T/vm.raw"
verify "$T/vm.raw" "$O/empty-blocks.vhdx" "vm.vhdx -> vhdx"
rm -f "$O"/*

# From a pipe: qemu's out-of-order VM image (extents come in file order)
# into a file; into a pipe fixed takes one pass, dynamic needs two.
run_pipe "$I/vm.vhdx" -src - -dst "$O/vm.vhdx" -dst-fmt vhdx
expect_ok "vm.vhdx on a pipe -> dynamic vhdx file (out-of-order extents)"
verify "$T/vm.raw" "$O/vm.vhdx" "vm.vhdx on a pipe -> vhdx file"
rm -f "$O"/*
PIPE_IN=$I/dyn.vhdx to_pipe "$O/pf.vhdx" -dst-fmt vhdx -o subformat=fixed
expect_ok "dyn.vhdx on a pipe -> fixed vhdx on a pipe"
verify "$R" "$O/pf.vhdx" "pipe -> fixed on a pipe"
check "pipe -> fixed on a pipe: vhdiinfo says Fixed" grep_cmd 'Disk type[[:space:]]*: Fixed' vhdiinfo "$O/pf.vhdx"
rm -f "$O"/*
PIPE_IN=$I/dyn.vhdx to_pipe "$T/p.out" -dst-fmt vhdx
expect_fail "pipe -> dynamic vhdx on a pipe refused" "stdout" 'vhdx to a pipe needs a seekable source \(two passes\) or a regular file as output'
check "pipe -> dynamic vhdx on a pipe: nothing written" test ! -s "$T/p.out"
# A raw pipe has no size up front: the BAT goes after the data, so the
# output is for seekable readers only (a pipe is refused by name).
run_pipe "$S" -src - -src-fmt raw -dst "$O/rawpipe.vhdx" -dst-fmt vhdx
expect_ok "raw on a pipe (capacity unknown) -> dynamic vhdx file (BAT at the end)"
check "raw pipe -> vhdx: qemu-img check" qemu-img check -q -f vhdx "$O/rawpipe.vhdx"
check "raw pipe -> vhdx: qemu-img compare with the source" qemu-img compare -q -f raw -F vhdx "$R" "$O/rawpipe.vhdx"
check "raw pipe -> vhdx: vhdiinfo opens it" vhdiinfo "$O/rawpipe.vhdx"
run_dsc -src "$O/rawpipe.vhdx" -dst "$T/rp.raw"
expect_ok "raw pipe -> vhdx: dsc reads it back from the file"
check "raw pipe -> vhdx: read back: same bytes" cmp "$R" "$T/rp.raw"
rm -f "$T/rp.raw"
mv "$O/rawpipe.vhdx" "$T/rawpipe.vhdx"
run_pipe "$T/rawpipe.vhdx" -src - -dst "$O/rp.raw"
expect_fail "BAT after the data: a pipe is refused" stdin 'the VHDX layout is not stream-ordered \(byte [0-9]+ is needed after byte [0-9]+\); read it from a seekable input'
dir_is "BAT after the data on a pipe: no output" "$O"
rm -f "$T/rawpipe.vhdx"
run_pipe "$S" -src - -src-fmt raw -dst "$O/rawpipe.vhdx" -dst-fmt vhdx -o subformat=fixed
expect_fail "raw on a pipe -> fixed vhdx refused" "rawpipe.vhdx" 'a fixed VHDX needs the capacity up front'
dir_is "raw on a pipe -> fixed: no output" "$O"

# Options checked before anything is written.
run_dsc -src "$S" -dst "$O/bad.vhdx" -dst-fmt vhdx -o block_size=3M
expect_fail "block_size=3M refused" "bad.vhdx" 'block_size: 3145728 is not a power of two from 1M to 256M'
run_dsc -src "$S" -dst "$O/bad.vhdx" -dst-fmt vhdx -o log_size=1536K
expect_fail "log_size=1536K refused" "bad.vhdx" 'log_size: 1572864 is not a multiple of 1M'
dir_is "refused options: no output" "$O"

# 4096-byte logical sectors (qemu 7.2 opens only 512-byte ones): libvhdi
# reads the geometry, dsc reads the content back from the file and a pipe.
run_dsc -src "$S" -dst "$O/s4k.vhdx" -dst-fmt vhdx -o logical_sector_size=4096,block_size=8M
expect_ok "raw -> vhdx with 4096-byte sectors"
check "4096-byte sectors: vhdiinfo says so" grep_cmd 'Bytes per sector[[:space:]]*: 4096 bytes' vhdiinfo "$O/s4k.vhdx"
check "4096-byte sectors: size rounded up to 4096" grep_cmd "Media size.*\\($(( ($(fsize "$S") + 4095) / 4096 * 4096 )) bytes\\)" vhdiinfo "$O/s4k.vhdx"
cp "$S" "$T/s4k.ref" && truncate -s $(( ($(fsize "$S") + 4095) / 4096 * 4096 )) "$T/s4k.ref"
run_dsc -src "$O/s4k.vhdx" -dst "$O/s4k.raw"
expect_ok "4096-byte sectors: file -> raw"
check "4096-byte sectors: file -> raw: the source's bytes" cmp "$T/s4k.ref" "$O/s4k.raw"
rm -f "$O/s4k.raw"
run_pipe "$O/s4k.vhdx" -src - -dst "$O/s4k.raw"
expect_ok "4096-byte sectors: pipe -> raw"
check "4096-byte sectors: pipe -> raw: the source's bytes" cmp "$T/s4k.ref" "$O/s4k.raw"
rm -f "$O"/* "$T/s4k.ref"

# 2 TiB sparse: the dynamic output stays small; qemu-io and dsc read it.
run_dsc -src "$I/big.vhdx" -dst "$O/big.vhdx" -dst-fmt vhdx
expect_ok "2 TiB vhdx -> vhdx"
check "2 TiB -> vhdx: qemu-img check" qemu-img check -q -f vhdx "$O/big.vhdx"
check "2 TiB -> vhdx: qemu-io reads the writes back" qemu_sees "$O/big.vhdx"
check "2 TiB -> vhdx: vhdiinfo" vhdiinfo "$O/big.vhdx"
check "2 TiB -> vhdx: 3 blocks stored" alloc_below "$O/big.vhdx" $((120 * MiB))
run_dsc -src "$O/big.vhdx" -dst "$O/big.raw"
expect_ok "2 TiB dsc-written vhdx -> raw"
check "2 TiB dsc-written: every byte as written" layout_is "$O/big.raw" $((2 * 1024 * GiB)) "$BIG_WRITES"
rm -f "$O"/*

finish
