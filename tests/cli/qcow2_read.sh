#!/bin/bash
# qcow2_read.sh - qcow2 images made by qemu-img and qemu-io convert to the
# bytes `qemu-img convert -O raw` gives, from a file and from a real pipe.
#
# Layouts: compat 0.10 and 1.1; clusters of 512 B, 4 KiB, 64 KiB, 2 MiB;
# extended L2 (64 KiB and 2 MiB); refcount_bits 1 and 64; lazy refcounts;
# preallocation=metadata; convert -c (zlib, zstd) and -W; VM-style random
# writes with qemu-io, write -z, discard; a snapshot then writes; a resize
# then writes; a 4 TiB sparse disk; virtual sizes that are not a multiple of
# the cluster. Every image is converted from the file (seekable: any
# layout) and through a pipe (forward-only), with -src-fmt qcow2 and
# detected. qemu-img convert's output is stream-ordered and must convert
# from the pipe; the others must either convert to the right bytes (a raw
# output file seeks) or fail saying the image is not stream-ordered, with no
# output left. Refusals (backing file, LUKS, external data file, corrupt
# bit, unknown incompatible bit, cut files and pipes) give their message
# and exit 1 with no output. A couple are converted to VMDK too and checked
# with qemu-img compare.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img qemu-io

mkdir "$T/in" "$T/out"
I=$T/in O=$T/out

# ref QCOW2 RAW: the reference bytes.
ref() { qemu-img convert -q -f qcow2 -O raw "$1" "$2"; }

# same REF OUT: byte for byte (qemu-img compare for huge sparse disks).
same() {
	if [ "$(fsize "$1")" -gt $((8 * GiB)) ]; then
		qemu-img compare -q -f raw -F raw "$1" "$2"
	else
		cmp "$1" "$2"
	fi
}

# convert_all NAME ORDER: NAME.qcow2 from the file (with -src-fmt and
# detected) and from a pipe; ORDER is "ordered" (the pipe must work) or
# "any" (the pipe may refuse as not stream-ordered).
convert_all() {
	local n=$1 order=$2 f=$I/$1.qcow2 r=$T/$1.ref
	ref "$f" "$r" || { fail "$n: qemu-img convert -O raw"; return; }
	run_dsc -src "$f" -dst "$O/$n.raw"
	expect_ok "$n: file -> raw"
	check "$n: file -> raw: same bytes as qemu-img" same "$r" "$O/$n.raw"
	rm -f "$O/$n.raw"
	run_dsc -src "$f" -src-fmt qcow2 -dst "$O/$n.raw"
	expect_ok "$n: file -src-fmt qcow2 -> raw"
	check "$n: file -src-fmt qcow2 -> raw: same bytes" same "$r" "$O/$n.raw"
	rm -f "$O/$n.raw"
	local how
	for how in "-src-fmt qcow2" ""; do
		# shellcheck disable=SC2086 # $how is a word list
		run_pipe "$f" -src - $how -dst "$O/$n.raw"
		if [ "$order" = ordered ] || [ "$RC" -eq 0 ]; then
			expect_ok "$n: pipe ${how:-detected} -> raw"
			check "$n: pipe ${how:-detected} -> raw: same bytes" same "$r" "$O/$n.raw"
		else
			expect_fail "$n: pipe ${how:-detected} -> raw refused" stdin \
				'is not stream-ordered .*read it from a seekable input'
			dir_is "$n: pipe refused: no output" "$O"
		fi
		rm -f "$O/$n.raw"
	done
	rm -f "$r"
}

# ---- a source disk: random, text, zeros, holes; 70 MiB + 1000 bytes ----
S=$I/src.raw
gen_sparse "$S" $((70 * MiB + 1000))
put_random "$S" 0 300000
gen_text "$T/text" $((3 * MiB))
dd if="$T/text" of="$S" bs=1M seek=5 conv=notrunc status=none
put_random "$S" $((33 * MiB + 4096)) 70000
put_fill "$S" $((40 * MiB)) $((2 * MiB)) 0 # allocated zeros once converted -S 0
put_random "$S" $((70 * MiB - 100)) 1100
rm -f "$T/text"

mkq() { # NAME [qemu-img convert options...]
	local n=$1
	shift
	qemu-img convert -q -f raw -O qcow2 "$@" "$S" "$I/$n.qcow2" || fail "$n: qemu-img convert $*"
}
mkq v3-64k
mkq v2 -o compat=0.10
mkq c512 -o cluster_size=512
mkq c4k -o cluster_size=4k
mkq c2m -o cluster_size=2M
mkq extl2-64k -o extended_l2=on
mkq extl2-2m -o extended_l2=on,cluster_size=2M
mkq ref1 -o refcount_bits=1
mkq ref64 -o refcount_bits=64
mkq lazy -o lazy_refcounts=on
mkq prealloc -o preallocation=metadata
mkq zlib -c
mkq zlib-4k -c -o cluster_size=4k
mkq zlib-v2 -c -o compat=0.10
mkq zstd -c -o compression_type=zstd
mkq zstd-2m -c -o compression_type=zstd,cluster_size=2M
mkq allocated-zeros -S 0
mkq W -W
for n in v3-64k v2 c512 c4k c2m extl2-64k extl2-2m ref1 ref64 lazy prealloc zlib zlib-4k \
	zlib-v2 allocated-zeros; do
	convert_all "$n" ordered
done
# -W writes out of order: ordered or not, the pipe must not give wrong bytes.
convert_all W any

# ---- VM-style writes with qemu-io --------------------------------------
# qio FILE SEED N: N writes of random sizes at random offsets (some zero
# writes and discards among them), as a guest would.
qio() {
	local f=$1 seed=$2 n=$3 size args
	size=$(qemu-img info --output=json "$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
	mapfile -t args < <(python3 - "$seed" "$n" "$size" <<'EOF'
import random, sys
rnd = random.Random(int(sys.argv[1]))
n, size = int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    ln = rnd.choice((512, 4096, 65536, 100000, 1 << 20, rnd.randrange(1, 2048) * 512))
    off = rnd.randrange(0, max(1, (size - ln) // 512)) * 512
    k = rnd.random()
    if k < 0.08:
        print('-c'); print('write -z %d %d' % (off, ln))
    elif k < 0.15:
        print('-c'); print('discard %d %d' % (off, ln))
    else:
        print('-c'); print('write -P 0x%02x %d %d' % (rnd.randrange(1, 256), off, ln))
EOF
)
	qemu-io -f qcow2 "${args[@]}" "$f" >/dev/null || fail "qemu-io writes on $f"
}

qemu-img create -q -f qcow2 "$I/vm.qcow2" 200M
qio "$I/vm.qcow2" 1 200
convert_all vm any

qemu-img create -q -f qcow2 -o cluster_size=4k,compat=0.10 "$I/vm-v2-4k.qcow2" 50M
qio "$I/vm-v2-4k.qcow2" 2 200
convert_all vm-v2-4k any

qemu-img create -q -f qcow2 -o extended_l2=on "$I/vm-extl2.qcow2" 100M
qio "$I/vm-extl2.qcow2" 3 200
convert_all vm-extl2 any

# Writes over a compressed image: compressed and normal clusters mixed.
cp "$I/zlib.qcow2" "$I/vm-on-zlib.qcow2"
qio "$I/vm-on-zlib.qcow2" 4 100
convert_all vm-on-zlib any

# A snapshot, then more writes: the active L2 tables move after the data.
cp "$I/v3-64k.qcow2" "$I/snap.qcow2"
qemu-img snapshot -c s1 "$I/snap.qcow2"
qio "$I/snap.qcow2" 5 50
convert_all snap any

# A resize to a larger size moves the L1 to the end of the file.
cp "$I/v3-64k.qcow2" "$I/resize.qcow2"
qemu-img resize -q "$I/resize.qcow2" 1G
qio "$I/resize.qcow2" 6 30
convert_all resize any
# ... and with more data before it than the pipe reader holds back.
cp "$I/vm.qcow2" "$I/resize-vm.qcow2"
qemu-img resize -q "$I/resize-vm.qcow2" 2T
qio "$I/resize-vm.qcow2" 7 20
convert_all resize-vm any

# ---- odd virtual sizes, tiny and empty images ----------------------------
for sz in 1000 65537 $((3 * MiB + 512 * 3)) $((2 * MiB - 512)); do
	gen_random "$T/odd.raw" "$sz"
	qemu-img convert -q -f raw -O qcow2 "$T/odd.raw" "$I/odd-$sz.qcow2"
	qemu-img convert -q -f raw -O qcow2 -c -o cluster_size=2M "$T/odd.raw" "$I/oddc-$sz.qcow2"
	convert_all "odd-$sz" ordered
	convert_all "oddc-$sz" ordered
done
qemu-img create -q -f qcow2 "$I/empty.qcow2" 0
convert_all empty ordered
qemu-img create -q -f qcow2 "$I/blank.qcow2" 1G
convert_all blank ordered

# ---- 4 TiB sparse: fast, sparse, exact ------------------------------------
qemu-img create -q -f qcow2 "$I/big.qcow2" 4T
qemu-io -f qcow2 -c 'write -P 0x11 0 65536' -c 'write -P 0x22 2T 100000' \
	-c 'write -P 0x33 4398046445568 65536' "$I/big.qcow2" >/dev/null
t0=$(date +%s%N)
run_dsc -src "$I/big.qcow2" -dst "$O/big.raw"
t1=$(date +%s%N)
expect_ok "4 TiB sparse -> raw"
echo "# 4 TiB sparse qcow2 -> raw: $(((t1 - t0) / 1000000)) ms"
check "4 TiB: size" size_is "$O/big.raw" $((4 * 1024 * GiB))
check "4 TiB: sparse" alloc_below "$O/big.raw" $((8 * MiB))
check "4 TiB: qemu-img compare" qemu-img compare -q -f raw -F qcow2 "$O/big.raw" "$I/big.qcow2"
rm -f "$O/big.raw"
run_pipe "$I/big.qcow2" -src - -dst "$O/big.raw"
expect_ok "4 TiB sparse on a pipe -> raw"
check "4 TiB on a pipe: qemu-img compare" qemu-img compare -q -f raw -F qcow2 "$O/big.raw" "$I/big.qcow2"
rm -f "$O"/*
# -max-capacity judges the header's virtual size before a byte is written:
# a 4 TiB qcow2 onto a raw pipe would otherwise be 4 TiB of zeros.
run_pipe "$I/big.qcow2" -src - -dst - -max-capacity 1T
expect_fail "4 TiB qcow2 over -max-capacity 1T" "stdin" "exceeds the limit of 1099511627776 bytes"
check "4 TiB qcow2 over -max-capacity: nothing written" test ! -s "$T/stdout"

# ---- qcow2 -> VMDK ---------------------------------------------------------
for n in zlib vm; do
	run_dsc -src "$I/$n.qcow2" -dst "$O/$n.vmdk" -dst-fmt vmdk
	expect_ok "$n: qcow2 -> vmdk"
	check "$n: qcow2 -> vmdk: qemu-img compare" \
		qemu-img compare -q -f qcow2 -F vmdk "$I/$n.qcow2" "$O/$n.vmdk"
	rm -f "$O"/*
done

# ---- refusals: message, exit 1, nothing written ---------------------------
refused() { # FILE ERE: from the file and from a pipe
	local f=$1 ere=$2
	run_dsc -src "$I/$f" -dst "$O/out.raw"
	expect_fail "$f refused" "$f" "$ere"
	dir_is "$f: no output" "$O"
	run_pipe "$I/$f" -src - -dst "$O/out.raw"
	expect_fail "$f on a pipe refused" stdin "$ere"
	dir_is "$f on a pipe: no output" "$O"
}
(cd "$I" && qemu-img create -q -f qcow2 -b v3-64k.qcow2 -F qcow2 top.qcow2)
refused top.qcow2 "has a backing file 'v3-64k.qcow2'; backing files are not followed \(convert the chain with qemu-img first\)$"
# qemu-img times its key derivation and gives up now and then under load.
for try in 1 2 3; do
	qemu-img create -q -f qcow2 --object secret,id=s0,data=pw \
		-o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=100 \
		"$I/luks.qcow2" 1M 2>"$T/luks.err" && break
done
[ -s "$I/luks.qcow2" ] || fail "qemu-img create an encrypted qcow2" "$(cat "$T/luks.err")"
refused luks.qcow2 'the image is encrypted \(LUKS\); encrypted qcow2 images are not supported$'
qemu-img create -q -f qcow2 -o data_file="$I/x.data" "$I/datafile.qcow2" 1M
refused datafile.qcow2 'uses an external data file'
cp "$I/v3-64k.qcow2" "$I/corrupt.qcow2"
patch "$I/corrupt.qcow2" 79 02
refused corrupt.qcow2 'is marked corrupt \(incompatible feature bit 1\)'
cp "$I/v3-64k.qcow2" "$I/incompat.qcow2"
patch "$I/incompat.qcow2" 76 80
refused incompat.qcow2 'unknown incompatible feature bits 0x80000000;'
cp "$I/v3-64k.qcow2" "$I/v4.qcow2"
patch "$I/v4.qcow2" 4 00000004
refused v4.qcow2 'qcow2 version 4 is not supported'

# zstd clusters: read when dsc has libzstd, else refused by name.
if grep -q '^#define HAVE_ZSTD 1' "$top_builddir/config.h" 2>/dev/null; then
	convert_all zstd ordered
	convert_all zstd-2m ordered
else
	echo "# this dsc is built without libzstd: zstd images must be refused"
	refused zstd.qcow2 'compressed with zstd, and this dsc was built without libzstd$'
fi

# ---- truncation: a cut file and a cut pipe are TRUNCATED -------------------
for n in v3-64k zlib; do
	sz=$(fsize "$I/$n.qcow2")
	for cut in 300 70000 $((sz / 2)) $((sz - 70000)); do
		head -c "$cut" "$I/$n.qcow2" >"$I/cut-$n-$cut.qcow2"
		refused "cut-$n-$cut.qcow2" 'truncated'
		rm -f "$I/cut-$n-$cut.qcow2"
	done
done
finish
