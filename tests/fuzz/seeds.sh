#!/bin/bash
# seeds.sh - generate the fuzzers' seed corpora into OUTDIR (tests/fuzz/run.sh).
#
#   seeds.sh OUTDIR      (DSC_CONVERT: the dsc-convert to use, optional)
#
# OUTDIR/qcow2: small qemu-img qcow2 images and the hostile qcow2 bases.
# OUTDIR/vhdx: small VHDX images in fuzz_vhdx_read's compact form.
# OUTDIR/compressed: small raw and qcow2 seeds under gzip, xz, zstd and bzip2.
# OUTDIR/ova: small OVAs (tests/cli/gen_ova.py).
# OUTDIR/vmdk, OUTDIR/descriptor, OUTDIR/raw come from seeds.py (compact,
# hand-laid streams of every producer layout); added to OUTDIR/vmdk when the
# tools are there: our own writer's output and qemu-img's streamOptimized
# output of a few small disks, and the interoperability corpus
# (../shared/corpus, files up to 1 MiB). The descriptors of all VMDK seeds
# are also cut out into OUTDIR/descriptor. Nothing here is committed.
set -eu
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
out=${1:?usage: seeds.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
python3 "$here/seeds.py" "$out"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dsc-seeds.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Small raw disks: one sector, odd size, 3 grains with a hole, text.
head -c 512 /dev/urandom >"$tmp/one.raw"
head -c 70000 /dev/zero >"$tmp/odd.raw"
printf 'hello, disk' | dd of="$tmp/odd.raw" bs=1 seek=66000 conv=notrunc status=none
truncate -s 196608 "$tmp/holes.raw"
seq 1 3000 | head -c 9000 | dd of="$tmp/holes.raw" bs=1 seek=131072 conv=notrunc status=none
for r in "$tmp"/*.raw; do
	b=$(basename "$r" .raw)
	if [ -n "${DSC_CONVERT:-}" ] && [ -x "$DSC_CONVERT" ]; then
		"$DSC_CONVERT" -q -src "$r" -dst "$out/vmdk/dsc-$b.vmdk" -dst-fmt vmdk
	fi
	if command -v qemu-img >/dev/null; then
		qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$r" "$out/vmdk/qemu-$b.vmdk"
	fi
done
corpus=${DSC_CORPUS:-$top/../shared/corpus}
if [ -d "$corpus" ]; then
	find "$corpus" -type f -size -1025k ! -name '*.md' | while read -r f; do
		cat "$f" >"$out/vmdk/corpus-$(basename "$f")"
	done
fi
# qcow2: small qemu-img images of each layout (4 KiB or smaller clusters, so
# they stay under the fuzzers' input size), and the hostile base images.
mkdir -p "$out/qcow2"
if command -v qemu-img >/dev/null; then
	for r in "$tmp"/*.raw; do
		b=$(basename "$r" .raw)
		for o in cluster_size=4k cluster_size=512 cluster_size=4k,compat=0.10 \
			cluster_size=16k,extended_l2=on; do
			qemu-img convert -q -f raw -O qcow2 -o "$o" "$r" "$out/qcow2/$b-${o//[=,]/-}.qcow2"
		done
		qemu-img convert -q -f raw -O qcow2 -c -o cluster_size=4k "$r" "$out/qcow2/$b-zlib.qcow2"
		qemu-img convert -q -f raw -O qcow2 -c -o cluster_size=4k,compression_type=zstd "$r" \
			"$out/qcow2/$b-zstd.qcow2"
	done
fi
python3 "$here/../hostile/gen.py" -o "$out/qcow2" q-base q-base-v2 q-base-extl2 q-comp-at-end \
	q-extl2-half >/dev/null
# vhd: the small valid VHDs of the hostile generator (4 KiB blocks) and
# fixed VHDs of the small raw disks.
mkdir -p "$out/vhd"
python3 "$here/../hostile/gen_vhd.py" -o "$out/vhd" v-small-4k v-small-4k-swapped v-small-fixed
if command -v qemu-img >/dev/null; then
	for r in "$tmp"/*.raw; do
		qemu-img convert -q -f raw -O vpc -o subformat=fixed "$r" "$out/vhd/$(basename "$r" .raw)-fixed.vhd"
	done
fi
# compressed: the small raw disks and qcow2 seeds under each compressor,
# and two gzip members (fuzz_convert decompresses them).
mkdir -p "$out/compressed"
for f in "$tmp"/*.raw "$out"/qcow2/holes-cluster_size-4k.qcow2; do
	[ -f "$f" ] || continue
	b=$(basename "$f")
	command -v gzip >/dev/null && gzip -c "$f" >"$out/compressed/$b.gz"
	command -v xz >/dev/null && xz -c "$f" >"$out/compressed/$b.xz"
	command -v zstd >/dev/null && zstd -q -c "$f" >"$out/compressed/$b.zst"
	command -v bzip2 >/dev/null && bzip2 -c "$f" >"$out/compressed/$b.bz2"
done
if command -v gzip >/dev/null; then
	cat "$out/compressed/one.raw.gz" "$out/compressed/odd.raw.gz" >"$out/compressed/two-members.gz"
fi
# ova: small OVAs of tests/cli/gen_ova.py (manifest first and last, two
# disks, chunked and gzip members, pax and GNU tars).
mkdir -p "$out/ova"
if command -v qemu-img >/dev/null; then
	qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$tmp/holes.raw" "$tmp/d1.vmdk"
	qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$tmp/one.raw" "$tmp/d2.vmdk"
	g="python3 $here/../cli/gen_ova.py"
	$g "$out/ova/first.ova" "$tmp/d1.vmdk"
	$g "$out/ova/last.ova" "$tmp/d1.vmdk" "$tmp/d2.vmdk" --mf last --format pax
	$g "$out/ova/chunk.ova" "$tmp/d1.vmdk" --chunk 4096 --alg sha1 --format gnu
	$g "$out/ova/gzip.ova" "$tmp/d2.vmdk" --gzip --mf none
fi
python3 "$here/../cli/gen_ova.py" "$out/ova/raw.ova" "$tmp/odd.raw" --mf last
# vdi: the small valid VDIs of the hostile generator (4 KiB and 64 KiB
# blocks, guest blocks stored out of order) and an empty one by qemu-img.
mkdir -p "$out/vdi"
python3 "$here/../hostile/gen_vdi.py" -o "$out/vdi" i-small-4k i-small-64k
if command -v qemu-img >/dev/null; then
	qemu-img create -q -f vdi "$out/vdi/qemu-empty.vdi" 10M
fi
# vmdk_sparse: the hostile generator's monolithicSparse and COWD cases and
# qemu-img's monolithicSparse images of the small raw disks.
mkdir -p "$out/vmdk_sparse"
python3 "$here/../hostile/gen_vmdk_sparse.py" -o "$out/vmdk_sparse"
if command -v qemu-img >/dev/null; then
	for r in "$tmp"/*.raw; do
		qemu-img convert -q -f raw -O vmdk -o subformat=monolithicSparse "$r" \
			"$out/vmdk_sparse/qemu-$(basename "$r" .raw).vmdk"
	done
fi
# vhdx: small images by dsc, qemu-img and the hostile generator, in the
# compact form fuzz_vhdx_read.c lays out (flags, file identifier, headers,
# region table, then 16 KiB from each MiB of the file after the first).
mkdir -p "$out/vhdx" "$tmp/vhdx"
python3 "$here/../hostile/gen_vhdx.py" -o "$tmp/vhdx" vx-base vx-4k vx-bat-guest-order \
	vx-bat-unmapped vx-md-unknown-optional vx-log-replay >/dev/null
for r in "$tmp"/*.raw; do
	b=$(basename "$r" .raw)
	if [ -n "${DSC_CONVERT:-}" ] && [ -x "$DSC_CONVERT" ]; then
		"$DSC_CONVERT" -q -src "$r" -dst "$tmp/vhdx/dsc-$b.vhdx" -dst-fmt vhdx -o block_size=1M
		"$DSC_CONVERT" -q -src "$r" -dst "$tmp/vhdx/dscf-$b.vhdx" -dst-fmt vhdx \
			-o subformat=fixed,block_size=1M
	fi
	if command -v qemu-img >/dev/null; then
		qemu-img convert -q -f raw -O vhdx -o block_size=1M "$r" "$tmp/vhdx/qemu-$b.vhdx"
	fi
done
python3 - "$tmp/vhdx" "$out/vhdx" <<'PY'
import os, sys
src, dst = sys.argv[1:3]
MiB, CHUNK = 1 << 20, 16 << 10
for n in sorted(os.listdir(src)):
    b = open(os.path.join(src, n), 'rb').read()
    out = bytearray([7]) + b[:512] + b[0x10000:0x11000] + b[0x20000:0x21000] + b[0x30000:0x31000]
    chunks = [b[k * MiB:k * MiB + CHUNK].ljust(CHUNK, b'\0') for k in range(1, min(8, -(-len(b) // MiB)))]
    while chunks and not any(chunks[-1]):
        chunks.pop()
    out += b''.join(chunks)
    open(os.path.join(dst, n), 'wb').write(bytes(out[:131072]))
PY
# The descriptor of each VMDK seed (header fields at 28 and 36: sectors).
python3 - "$out/vmdk" "$out/descriptor" <<'PY'
import os, struct, sys
src, dst = sys.argv[1:3]
for n in sorted(os.listdir(src)):
    b = open(os.path.join(src, n), 'rb').read()
    if len(b) < 512 or b[:4] != b'KDMV':
        continue
    off, size = struct.unpack_from('<QQ', b, 28)
    text = b[off * 512:(off + size) * 512].rstrip(b'\0')
    if text:
        open(os.path.join(dst, n + '.txt'), 'wb').write(text)
PY
