#!/bin/bash
# qcow2_write.sh - dsc-convert -dst-fmt qcow2: every option (compat,
# cluster_size, refcount_bits, -c with zlib and zstd), from a file and from a
# pipe, to a file and to a real pipe (two passes), from raw and VMDK. Every
# output passes `qemu-img check` (exit 0: no errors, no leaks), `qemu-img
# compare` with the source, libqcow's qcowinfo, and shows the expected
# header in `qemu-img info`, and dsc reads it back from the file and from a
# pipe (the output is stream-ordered). The refused cases give their message and leave
# nothing; -c is no larger than 1.01x `qemu-img convert -c`.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img qcowinfo
set -o pipefail

mkdir "$T/in" "$T/out"
I=$T/in O=$T/out

# verify SRC OUT DESC [compat cluster_size ctype]: the output is a sound
# qcow2 with the source's content and the expected header.
verify() {
	local src=$1 out=$2 desc=$3 compat=${4:-1.1} cs=${5:-65536} ctype=${6:-zlib} info
	check "$desc: qemu-img check (no errors, no leaks)" qemu-img check -q -f qcow2 "$out"
	check "$desc: qemu-img compare with the source" \
		qemu-img compare -q -f raw -F qcow2 "$src" "$out"
	# libqcow refuses zstd images and empty ones (no L1), qemu-img's too.
	if [ "$ctype" = zlib ] && [ -s "$src" ]; then
		check "$desc: qcowinfo reads it" qcowinfo "$out"
	fi
	# dsc's own reader takes it back, from the file (guest order) and
	# from a pipe (file order: the output is stream-ordered).
	if "$DSC_CONVERT" -q -src "$out" -dst "$T/back.raw" 2>"$T/back.err" &&
		cat "$out" | "$DSC_CONVERT" -q -src - -dst "$T/back2.raw" 2>>"$T/back.err"; then
		check "$desc: dsc reads it back from the file" \
			qemu-img compare -q -f raw -F qcow2 "$T/back.raw" "$out"
		check "$desc: dsc reads it back from a pipe (stream-ordered)" \
			qemu-img compare -q -f raw -F qcow2 "$T/back2.raw" "$out"
	else
		check "$desc: dsc reads it back: $(head -c 300 "$T/back.err")" false
	fi
	rm -f "$T/back.raw" "$T/back2.raw"
	info=$(qemu-img info -f qcow2 "$out" 2>&1)
	check "$desc: qemu-img info: compat $compat, clusters of $cs, $ctype" \
		grep -q "compat: $compat" <<<"$info"
	check "$desc: qemu-img info: cluster_size $cs" grep -q "cluster_size: $cs\$" <<<"$info"
	if [ "$compat" = 1.1 ]; then
		check "$desc: qemu-img info: compression type $ctype" \
			grep -q "compression type: $ctype" <<<"$info"
	fi
}

# Sources: scattered random data, zero runs, sizes not a multiple of the
# cluster (nor of 512), an empty and a one-sector image.
gen_sparse "$I/scattered.raw" $((40 * MiB + 12345))
put_random "$I/scattered.raw" 0 70000
put_random "$I/scattered.raw" $((3 * MiB + 7)) 300000
put_random "$I/scattered.raw" $((17 * MiB)) 65536
put_random "$I/scattered.raw" $((40 * MiB)) 12345
gen_text "$I/text.part" $((2 * MiB))
dd if="$I/text.part" of="$I/scattered.raw" bs=1M seek=25 conv=notrunc status=none
gen_zero "$I/zeros.raw" $((3 * MiB))
put_random "$I/zeros.raw" $((MiB + 100)) 1000
: >"$I/empty.raw"
gen_random "$I/sector.raw" 512

# Every source, every way in and out, default options.
for src in "$I"/*.raw; do
	n=$(basename "$src" .raw)
	run_dsc -src "$src" -dst "$O/$n.qcow2" -dst-fmt qcow2
	expect_ok "$n: file -> qcow2 file"
	verify "$src" "$O/$n.qcow2" "$n: file -> file"

	cat "$src" | "$DSC_CONVERT" -src - -dst "$O/$n.p.qcow2" -dst-fmt qcow2 2>"$T/stderr"
	check "$n: pipe -> qcow2 file" test ! -s "$T/stderr"
	verify "$src" "$O/$n.p.qcow2" "$n: pipe -> file"

	# A real pipe as output: two passes over the source.
	if "$DSC_CONVERT" -src "$src" -dst - -dst-fmt qcow2 2>"$T/stderr" | cat >"$O/$n.s.qcow2" &&
		[ ! -s "$T/stderr" ]; then
		pass "$n: file -> qcow2 on a pipe"
	else
		fail "$n: file -> qcow2 on a pipe" "$(cat "$T/stderr")"
	fi
	verify "$src" "$O/$n.s.qcow2" "$n: file -> pipe"
	check "$n: two passes write the same image as the seekable layout's size" \
		test "$(fsize "$O/$n.s.qcow2")" -eq "$(fsize "$O/$n.qcow2")"

	run_dsc -c -src "$src" -dst "$O/$n.c.qcow2" -dst-fmt qcow2
	expect_ok "$n: -c file -> file"
	verify "$src" "$O/$n.c.qcow2" "$n: -c"
	cat "$src" | "$DSC_CONVERT" -c -src - -dst "$O/$n.cp.qcow2" -dst-fmt qcow2 2>"$T/stderr"
	check "$n: -c pipe -> file" test ! -s "$T/stderr"
	verify "$src" "$O/$n.cp.qcow2" "$n: -c pipe -> file"
	rm -f "$O/$n".*
done

# Every option, plain and compressed, file and pipe output.
src=$I/scattered.raw
while read -r opts compat cs; do
	n=${opts//[=,.]/_}
	run_dsc -src "$src" -dst "$O/$n.qcow2" -dst-fmt qcow2 -o "$opts"
	expect_ok "-o $opts: file"
	verify "$src" "$O/$n.qcow2" "-o $opts" "$compat" "$cs"
	run_dsc -c -src "$src" -dst "$O/$n.c.qcow2" -dst-fmt qcow2 -o "$opts"
	expect_ok "-o $opts -c: file"
	verify "$src" "$O/$n.c.qcow2" "-o $opts -c" "$compat" "$cs"
	cat "$src" | "$DSC_CONVERT" -c -threads 1 -src - -dst "$O/$n.c1.qcow2" -dst-fmt qcow2 \
		-o "$opts" 2>"$T/stderr"
	check "-o $opts -c -threads 1: pipe -> file" test ! -s "$T/stderr"
	verify "$src" "$O/$n.c1.qcow2" "-o $opts -c -threads 1" "$compat" "$cs"
	"$DSC_CONVERT" -src "$src" -dst - -dst-fmt qcow2 -o "$opts" 2>"$T/stderr" | cat >"$O/$n.s.qcow2"
	check "-o $opts: to a pipe" test ! -s "$T/stderr"
	verify "$src" "$O/$n.s.qcow2" "-o $opts: to a pipe" "$compat" "$cs"
	rm -f "$O/$n".*
done <<'EOF'
compat=0.10 0.10 65536
compat=v2,cluster_size=4k 0.10 4096
cluster_size=512 1.1 512
cluster_size=4k 1.1 4096
cluster_size=64k 1.1 65536
cluster_size=2M 1.1 2097152
refcount_bits=1 1.1 65536
refcount_bits=1,cluster_size=512 1.1 512
refcount_bits=8 1.1 65536
refcount_bits=64 1.1 65536
EOF

# zstd, and ISA-L's fast levels.
run_dsc -c -src "$src" -dst "$O/z.qcow2" -dst-fmt qcow2 -o compression_type=zstd
expect_ok "-c zstd"
verify "$src" "$O/z.qcow2" "-c zstd" 1.1 65536 zstd
run_dsc -src "$src" -dst "$O/z0.qcow2" -dst-fmt qcow2 -o compression_type=zstd
expect_ok "zstd without -c"
verify "$src" "$O/z0.qcow2" "zstd without -c" 1.1 65536 zstd
for l in 1 3 9; do
	run_dsc -c -level $l -src "$src" -dst "$O/l$l.qcow2" -dst-fmt qcow2
	expect_ok "-c -level $l"
	verify "$src" "$O/l$l.qcow2" "-c -level $l"
done
rm -f "$O"/*.qcow2

# A 4 TiB sparse disk with a few MiB of data: to a file and to a pipe.
gen_sparse "$I/big.img" $((4096 * GiB))
put_random "$I/big.img" 0 $((2 * MiB))
put_random "$I/big.img" $((1024 * GiB + 12345)) $((MiB))
put_random "$I/big.img" $((4096 * GiB - 4096)) 4096
run_dsc -src "$I/big.img" -dst "$O/big.qcow2" -dst-fmt qcow2
expect_ok "4 TiB sparse -> qcow2 file"
verify "$I/big.img" "$O/big.qcow2" "4 TiB sparse"
check "4 TiB sparse: the file is small" test "$(fsize "$O/big.qcow2")" -lt $((16 * MiB))
"$DSC_CONVERT" -src "$I/big.img" -dst - -dst-fmt qcow2 2>"$T/stderr" | cat >"$O/bigp.qcow2"
check "4 TiB sparse -> qcow2 pipe" test ! -s "$T/stderr"
verify "$I/big.img" "$O/bigp.qcow2" "4 TiB sparse to a pipe"
run_dsc -c -src "$I/big.img" -dst "$O/bigc.qcow2" -dst-fmt qcow2
expect_ok "4 TiB sparse -c"
verify "$I/big.img" "$O/bigc.qcow2" "4 TiB sparse -c"
rm -f "$O"/*.qcow2 "$I/big.img"

# VMDK (streamOptimized, made by dsc and by qemu-img) -> qcow2.
run_dsc -src "$src" -dst "$O/s.vmdk" -dst-fmt vmdk
expect_ok "raw -> vmdk"
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$src" "$O/q.vmdk"
for v in s q; do
	run_dsc -src "$O/$v.vmdk" -dst "$O/$v.qcow2" -dst-fmt qcow2
	expect_ok "vmdk ($v) -> qcow2"
	verify "$src" "$O/$v.qcow2" "vmdk ($v) -> qcow2"
	"$DSC_CONVERT" -src "$O/$v.vmdk" -dst - -dst-fmt qcow2 2>"$T/stderr" | cat >"$O/$v.s.qcow2"
	check "vmdk ($v) -> qcow2 pipe" test ! -s "$T/stderr"
	cat "$O/$v.vmdk" | "$DSC_CONVERT" -src - -dst - -dst-fmt qcow2 2>"$T/stderr" | cat >"$T/stdout"
	check "vmdk ($v) pipe -> qcow2 pipe is refused" grep -q "needs a seekable source" "$T/stderr"
	check "vmdk ($v) pipe -> qcow2 pipe: no output" test ! -s "$T/stdout"
	verify "$src" "$O/$v.s.qcow2" "vmdk ($v) -> qcow2 pipe"
	cat "$O/$v.vmdk" | "$DSC_CONVERT" -c -src - -dst "$O/$v.c.qcow2" -dst-fmt qcow2 2>"$T/stderr"
	check "vmdk ($v) pipe -> qcow2 -c" test ! -s "$T/stderr"
	verify "$src" "$O/$v.c.qcow2" "vmdk ($v) pipe -> qcow2 -c"
done
rm -f "$O"/*

# run_pipe ARGS...: run_dsc with stdout a real pipe (a redirection to a
# file would be seekable).
run_pipe() {
	cat "${STDIN:-/dev/null}" | "$DSC_CONVERT" "$@" 2>"$T/stderr" | cat >"$T/stdout"
	RC=${PIPESTATUS[1]}
	LAST_CMD="cat ${STDIN:-/dev/null} | dsc-convert $* | cat"
}

# Refused: each exits 1 with its message and leaves no output.
refused() { # DESC NAME ERE OUT [dsc-convert args...]
	local desc=$1 name=$2 ere=$3 out=$4
	shift 4
	expect_fail "$desc" "$name" "$ere"
	check "$desc: no output left" test ! -s "$out"
}
STDIN=$src run_pipe -src - -dst - -dst-fmt qcow2
refused "pipe -> qcow2 pipe" stdout "qcow2 to a pipe needs a seekable source \(two passes\) or a regular file as output" "$T/stdout"
run_pipe -c -src "$src" -dst - -dst-fmt qcow2
refused "-c to a pipe" stdout "compressed qcow2 output needs a seekable output \(a regular file\)" "$T/stdout"
while read -r opts name ere; do
	run_dsc -src "$src" -dst "$O/bad.qcow2" -dst-fmt qcow2 -o "$opts"
	refused "-o $opts" "$name" "$ere" "$O/bad.qcow2"
	check "-o $opts: no file" test ! -e "$O/bad.qcow2"
done <<'EOF'
cluster_size=3000 cluster_size not.a.power.of.two
refcount_bits=3 refcount_bits not.a.power.of.two
compat=0.10,refcount_bits=8 refcount_bits 16-bit.refcounts.only
compat=0.10,compression_type=zstd compression_type zstd.needs.compat=1.1
EOF
# Named limits: qemu's 32 MiB of L1, and the two-pass plan's 64 MiB bitmap.
gen_sparse "$I/big.img" $((4096 * GiB))
put_random "$I/big.img" $((3072 * GiB)) 4096
run_dsc -src "$I/big.img" -dst "$O/bad.qcow2" -dst-fmt qcow2 -o cluster_size=512
refused "4 TiB at 512-byte clusters" bad.qcow2 "the L1 table would exceed qemu's 33554432 bytes" "$O/bad.qcow2"
check "4 TiB at 512-byte clusters: no file" test ! -e "$O/bad.qcow2"
"$DSC_CONVERT" -src "$I/big.img" -dst - -dst-fmt qcow2 -o cluster_size=4k 2>"$T/stderr" |
	cat >"$T/stdout"
RC=${PIPESTATUS[0]}
refused "4 TiB at 4k clusters to a pipe" stdout "maps at most 536870912 clusters" "$T/stdout"
rm -f "$I/big.img"
for opts in cluster_size=256 cluster_size=4M refcount_bits=128 compat=0.9 compression_type=lz4; do
	run_dsc -src "$src" -dst "$O/bad.qcow2" -dst-fmt qcow2 -o "$opts"
	expect_usage "-o $opts" "${opts%%=*}"
	check "-o $opts: no file" test ! -e "$O/bad.qcow2"
done

# Size: -c is no larger than 1.01x qemu-img convert -c on compressible data
# (base64 lines; large enough that the cluster-aligned refcount table at the end, up to
# one cluster more than qemu's unaligned end, stays within the 1%).
head -c $((24 * MiB)) /dev/urandom | base64 -w 76 >"$I/text.raw"
qemu-img convert -f raw -O qcow2 -c "$I/text.raw" "$O/q.qcow2"
run_dsc -c -src "$I/text.raw" -dst "$O/d.qcow2" -dst-fmt qcow2
expect_ok "text -c"
verify "$I/text.raw" "$O/d.qcow2" "text -c"
qs=$(fsize "$O/q.qcow2") ds=$(fsize "$O/d.qcow2")
check "-c: $ds bytes <= 1.01 x qemu-img's $qs" test $((ds * 100)) -le $((qs * 101))

# Back-references beyond qemu's 4 KiB deflate window: 8 KiB of random bytes
# repeated through each 64 KiB cluster compresses only with matches 8 KiB
# back. qemu inflates a cluster in one call, so it must read them (zlib at
# window 12, qemu's own compressor, cannot find them: ~64 KiB a cluster).
head -c 8192 /dev/urandom >"$T/r8"
for i in $(seq 64); do cat "$T/r8"; done >"$I/far.raw"
for lv in "" 3 9; do
	run_dsc -c ${lv:+-level $lv} -src "$I/far.raw" -dst "$O/far.qcow2" -dst-fmt qcow2
	expect_ok "far matches -c ${lv:-default}"
	check "far matches -c ${lv:-default}: qemu-img reads the same bytes" \
		qemu-img compare -q -f raw -F qcow2 "$I/far.raw" "$O/far.qcow2"
	check "far matches -c ${lv:-default}: qemu-img check" qemu-img check -q "$O/far.qcow2"
	# Plain, the 8 data clusters and 5 of metadata take 832 KiB. A zlib-only
	# build compresses as qemu does (window 12) and cannot shrink them.
	if grep -q '^#define HAVE_LIBDEFLATE 1' "$top_builddir/config.h" 2>/dev/null; then
		check "far matches -c ${lv:-default}: compressed ($(fsize "$O/far.qcow2") bytes < 512 KiB)" \
			test "$(fsize "$O/far.qcow2")" -lt 524288
	fi
	rm -f "$O/far.qcow2"
done

finish
