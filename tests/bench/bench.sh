#!/bin/bash
# bench.sh - dsc-convert against `qemu-img convert` on the same data, same run.
#
# Builds a realistic raw disk in a temporary directory: real files from the
# system (a tar of /usr/lib, then one of /usr/share), blocks of written
# zeros and holes. Then, run after run, alternating the tools, it times
#   raw -> VMDK streamOptimized: qemu-img, dsc-convert (default level), dsc (-level fast)
#   VMDK -> raw (qemu-img's VMDK as input): qemu-img, dsc-convert
#   raw -> qcow2 (-c and not), qcow2 (qemu-img's, -c and not) -> raw, and a
#   4 TiB sparse disk both ways (BENCH_QCOW2=0 skips them)
#   raw -> fixed and dynamic VHD, and dd of the same bytes as the disk's
#   sequential write speed (BENCH_VHD=0 skips them)
#   VHDX (qemu-img's, dynamic) -> raw (BENCH_VHDX=0 skips it)
#   raw -> dynamic VDI and VDI (qemu-img's, dynamic) -> raw (BENCH_VDI=0 skips them)
#   VMDK monolithicSparse (qemu-img's) -> raw (BENCH_VMDKSPARSE=0 skips it)
#   raw.xz and raw.gz -> qcow2 and raw against unpacking with xz/pigz then
#   qemu-img convert or cp --sparse, and an OVA -> raw against tar -xOf |
#   dsc-convert (BENCH_COMPRESSED=0 skips them)
#   dsc-img compare, check and map of a qcow2 against qemu-img's
#   (BENCH_IMG=0 skips them)
# and prints medians as a Markdown table (paste it into README.md), with the
# speed ratio qemu/dsc, the output size ratio dsc/qemu and the peak RSS.
# A 20 GiB sparse disk with some data shows that memory does not grow with
# the capacity. When dsc-server is built and nginx is installed, uploads
# through nginx are timed against the CLI on the same files.
#
# Fairness: every output is a file in the same directory (same file system).
# dsc-convert fsyncs its output before renaming it into place; qemu-img
# convert does not (its default cache mode for the output is "unsafe", and
# with -t writeback its VMDK driver calls fdatasync after every grain, so
# that is not a fair alternative either). So the main times stop after
# `sync FILE` (one fsync of the output) for both tools: each time is "until
# the output is on disk". The last column gives the ratio without any final
# sync for qemu-img and dsc-convert writing to standard output redirected to
# the file (no fsync, no atomic rename): both leave dirty pages behind.
# Inputs are in the page cache for both (read once before timing). The
# image starts with a tar, so dsc is told it is raw (-src-fmt raw), as
# qemu-img is (-f raw).
#
# Environment: BENCH_SIZE_MB (MiB of real file data, default 512),
# BENCH_RUNS (default 3), BENCH_THREADS (dsc -threads, default: dsc's own
# default, one per CPU), BENCH_TMPDIR (default $TMPDIR or /tmp),
# BENCH_KEEP=1 keeps the directory, BENCH_SERVER=0 skips the upload part,
# DSC_CONVERT, DSC_SERVER, DSC_IMG, top_srcdir (set by `make bench`).

if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -u -o pipefail
export LC_ALL=C
PATH=$PATH:/usr/sbin:/sbin

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${top_srcdir:=$(cd "$here/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${DSC_CONVERT:=$top_builddir/dsc-convert}"
: "${DSC_SERVER:=$top_builddir/dsc-server}"
: "${DSC_IMG:=$top_builddir/dsc-img}"
SIZE_MB=${BENCH_SIZE_MB:-512}
RUNS=${BENCH_RUNS:-3}
THREADS=${BENCH_THREADS:-}
MiB=1048576
GNU_TIME=/usr/bin/time

die() {
	echo "bench: $*" >&2
	exit 1
}

for t in qemu-img tar sync awk; do
	command -v "$t" >/dev/null 2>&1 || die "$t is required (Debian: qemu-utils, tar, coreutils, gawk/mawk)"
done
[ -x "$GNU_TIME" ] || die "$GNU_TIME is required for peak RSS (Debian package: time)"
[ -x "$DSC_CONVERT" ] || die "dsc-convert not found at $DSC_CONVERT (run make first)"
# A libtool wrapper script costs ~25 ms a run: use the real binary.
lt_dir=$(dirname "$DSC_CONVERT")/.libs
if [ "$(head -c 2 "$DSC_CONVERT")" = '#!' ] && [ -x "$lt_dir/dsc-convert" ]; then
	DSC_CONVERT=$lt_dir/dsc-convert
	export LD_LIBRARY_PATH=$lt_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
case $SIZE_MB in '' | *[!0-9]*) die "BENCH_SIZE_MB must be a number of MiB" ;; esac
case $RUNS in '' | *[!0-9]* | 0) die "BENCH_RUNS must be a positive number" ;; esac
[ "$SIZE_MB" -ge 16 ] || die "BENCH_SIZE_MB must be at least 16"

# The server part reuses the test harness that starts nginx + dsc-server.
SERVER=no
if [ "${BENCH_SERVER:-1}" != 0 ] && [ -x "$DSC_SERVER" ] && command -v nginx >/dev/null 2>&1 &&
	command -v curl >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1 &&
	[ -f "$top_srcdir/tests/server/lib.sh" ]; then
	# shellcheck source=../server/lib.sh
	. "$top_srcdir/tests/server/lib.sh"
	SERVER=yes
fi

T=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/dsc-bench.XXXXXX") || exit 1
cleanup() {
	if [ "$SERVER" = yes ]; then
		[ "${BENCH_KEEP:-}" = 1 ] && KEEP_TMP=1
		srv_cleanup
	elif [ "${BENCH_KEEP:-}" = 1 ]; then
		echo "# kept $T"
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM
mkdir -p "$T/res"

dsc_threads=()
[ -n "$THREADS" ] && dsc_threads=(-threads "$THREADS")

# ---- helpers ---------------------------------------------------------------

usec() { echo "${EPOCHREALTIME/./}"; }

# settle: write back what is dirty on this file system before a timed run,
# so one run does not pay for the previous one's writeback.
settle() {
	sync -f "$T" 2>/dev/null || sync
}

# timed NAME OUTPUT CMD...: run CMD once under GNU time, then fsync OUTPUT.
# Appends to $T/res/NAME.{wall,dur,rss,cpu}: seconds until CMD exits,
# seconds until OUTPUT is on disk, peak RSS in KiB, user+sys CPU seconds.
# With TO_STDOUT=1, CMD's standard output is OUTPUT.
timed() {
	local name=$1 out=$2 t0 t1 t2 stdout
	shift 2
	rm -f "$out"
	stdout=$T/cmd.log
	[ "${TO_STDOUT:-}" = 1 ] && stdout=$out
	settle
	t0=$(usec)
	if ! "$GNU_TIME" -f '%M %U %S' -o "$T/time.txt" "$@" >"$stdout" 2>"$T/cmd.err"; then
		cat "$T/cmd.err" >&2
		die "failed: $*"
	fi
	t1=$(usec)
	sync "$out" || die "sync $out failed"
	t2=$(usec)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", (b - a) / 1e6 }' >>"$T/res/$name.wall"
	awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.6f\n", (b - a) / 1e6 }' >>"$T/res/$name.dur"
	tail -n 1 "$T/time.txt" | awk '{ print $1 }' >>"$T/res/$name.rss"
	tail -n 1 "$T/time.txt" | awk '{ printf "%.2f\n", $2 + $3 }' >>"$T/res/$name.cpu"
}

# median FILE: the median of the numbers in FILE, one a line.
median() {
	sort -g "$1" | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# max FILE
maxof() {
	sort -g "$1" | tail -n 1
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
fmt2() { awk -v a="$1" 'BEGIN { printf "%.2f", a }'; }
kib_to_mib() { awk -v a="$1" 'BEGIN { printf "%.1f", a / 1024 }'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
fsize() { stat -c %s "$1"; }

# ---- the image --------------------------------------------------------------
#
# Layout (D = BENCH_SIZE_MB MiB of real data):
#   D/2 from a tar of /usr/lib | D/8 written zeros | D/4 hole |
#   D/2 from a tar of /usr/share | D/8 written zeros | D/4 hole | 64 KiB data
# The last 64 KiB make the trailing hole part of the disk.

half=$((SIZE_MB / 2))
zeros=$((SIZE_MB / 8))
hole=$((SIZE_MB / 4))
echo "# building a ${SIZE_MB} MiB-of-data image in $T ..." >&2
(cd / && tar -cf - usr/lib 2>/dev/null) | head -c $((half * MiB)) >"$T/part1"
(cd / && tar -cf - usr/share 2>/dev/null) | head -c $((half * MiB)) >"$T/part2"
[ "$(fsize "$T/part1")" -eq $((half * MiB)) ] && [ "$(fsize "$T/part2")" -eq $((half * MiB)) ] ||
	die "not enough files under /usr/lib or /usr/share for BENCH_SIZE_MB=$SIZE_MB"
img=$T/disk.raw
pos=0
dd if="$T/part1" of="$img" bs=1M conv=notrunc status=none
pos=$((pos + half))
dd if=/dev/zero of="$img" bs=1M seek=$pos count=$zeros conv=notrunc status=none
pos=$((pos + zeros + hole))
dd if="$T/part2" of="$img" bs=1M seek=$pos conv=notrunc status=none
pos=$((pos + half))
dd if=/dev/zero of="$img" bs=1M seek=$pos count=$zeros conv=notrunc status=none
pos=$((pos + zeros + hole))
head -c 65536 "$T/part1" | dd of="$img" bs=64k seek=$((pos * 16)) conv=notrunc status=none
rm -f "$T/part1"
cap=$(fsize "$img")
alloc=$(($(stat -c %b "$img") * $(stat -c %B "$img")))
cat "$img" >/dev/null # into the page cache, for every tool alike

load_start=$(loadavg)
echo "# machine: $(nproc) CPUs, $(uname -m), $(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo);" \
	"file system of the outputs: $(stat -f -c %T "$T") ($(df --output=source "$T" | tail -n 1))"
echo "# $("$DSC_CONVERT" -version 2>&1 | head -n 1); $(qemu-img --version | head -n 1)"
echo "# image: $((cap / MiB)) MiB capacity, $((alloc / MiB)) MiB allocated" \
	"(${SIZE_MB} MiB of files from /usr/lib + /usr/share, $((2 * zeros)) MiB of written zeros, $((2 * hole)) MiB of holes)"
echo "# runs: $RUNS each, tools alternating; dsc threads: ${THREADS:-default}; load average at start: $load_start"

# ---- raw -> VMDK -------------------------------------------------------------

q_vmdk=$T/q.vmdk
d_vmdk=$T/d.vmdk
f_vmdk=$T/f.vmdk
for run in $(seq "$RUNS"); do
	echo "# raw->vmdk run $run/$RUNS" >&2
	timed q2v "$q_vmdk" qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$img" "$q_vmdk"
	timed d2v "$d_vmdk" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src-fmt raw -src "$img" -dst "$d_vmdk" -dst-fmt vmdk
	timed f2v "$f_vmdk" "$DSC_CONVERT" -q "${dsc_threads[@]}" -level fast -src-fmt raw -src "$img" -dst "$f_vmdk" -dst-fmt vmdk
	# The same into standard output redirected to a file: no fsync, no rename.
	TO_STDOUT=1 timed d2vu "$T/u.vmdk" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src-fmt raw -src "$img" -dst - -dst-fmt vmdk
	TO_STDOUT=1 timed f2vu "$T/u.vmdk" "$DSC_CONVERT" -q "${dsc_threads[@]}" -level fast -src-fmt raw -src "$img" -dst - -dst-fmt vmdk
done
rm -f "$T/u.vmdk"
q_size=$(fsize "$q_vmdk")
d_size=$(fsize "$d_vmdk")
f_size=$(fsize "$f_vmdk")

# ---- VMDK -> raw (qemu-img's VMDK as the input of both) ----------------------

src_vmdk=$T/src.vmdk
mv "$q_vmdk" "$src_vmdk"
cat "$src_vmdk" >/dev/null
q_raw=$T/q.raw
d_raw=$T/d.raw
for run in $(seq "$RUNS"); do
	echo "# vmdk->raw run $run/$RUNS" >&2
	timed q2r "$q_raw" qemu-img convert -q -f vmdk -O raw "$src_vmdk" "$q_raw"
	timed d2r "$d_raw" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src "$src_vmdk" -dst "$d_raw"
	TO_STDOUT=1 timed d2ru "$T/u.raw" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src "$src_vmdk" -dst -
done
rm -f "$T/u.raw"

# ---- check the outputs (not timed) -------------------------------------------

echo "# checking the outputs with qemu-img compare" >&2
verdict=ok
qemu-img compare -q -f raw -F vmdk "$img" "$d_vmdk" || verdict="FAILED: default-level VMDK differs"
qemu-img compare -q -f raw -F vmdk "$img" "$f_vmdk" || verdict="FAILED: fast-level VMDK differs"
qemu-img compare -q -f raw -F raw "$img" "$d_raw" || verdict="FAILED: raw output differs"
qemu-img check -q -f vmdk "$d_vmdk" || verdict="FAILED: qemu-img check of the VMDK"
rm -f "$q_raw" "$d_raw" "$f_vmdk"

# ---- a 20 GiB sparse disk ----------------------------------------------------
#
# 4 x 16 MiB of real data at 0, 7 GiB, 13 GiB and the end: the converters'
# memory must not depend on the capacity.

echo "# 20 GiB sparse disk" >&2
big=$T/big.raw
truncate -s 20G "$big"
for at in 0 7168 13312 20464; do
	dd if="$T/part2" of="$big" bs=1M count=16 seek=$at conv=notrunc status=none
done
rm -f "$T/part2"
big_cap=$(fsize "$big")
timed bq2v "$T/bq.vmdk" qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$big" "$T/bq.vmdk"
timed bd2v "$T/bd.vmdk" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src-fmt raw -src "$big" -dst "$T/bd.vmdk" -dst-fmt vmdk
timed bq2r "$T/bq.raw" qemu-img convert -q -f vmdk -O raw "$T/bd.vmdk" "$T/bq.raw"
timed bd2r "$T/bd.raw" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src "$T/bd.vmdk" -dst "$T/bd.raw"
qemu-img compare -q -f raw -F raw "$big" "$T/bd.raw" || verdict="FAILED: 20 GiB raw output differs"
big_qsize=$(fsize "$T/bq.vmdk")
big_dsize=$(fsize "$T/bd.vmdk")
rm -f "$T/bq.vmdk" "$T/bq.raw" "$T/bd.raw"

# ---- qcow2 ------------------------------------------------------------------------
#
# raw -> qcow2 compressed (-c) and uncompressed, compressed and uncompressed
# qcow2 (qemu-img's) -> raw. qemu-img's best uncompressed settings are
# timed too: -m 16 (coroutines) -W (out-of-order writes; not with -c). Then
# a 4 TiB sparse disk both ways, for memory and for the cost of metadata.

QCOW2=no
if [ "${BENCH_QCOW2:-1}" != 0 ] && "$DSC_CONVERT" -formats 2>/dev/null | grep -q '^qcow2  *rw'; then
	QCOW2=yes
fi
if [ "$QCOW2" = yes ]; then
	qc_q=$T/qc.qcow2
	qu_q=$T/qu.qcow2
	for run in $(seq "$RUNS"); do
		echo "# qcow2 run $run/$RUNS" >&2
		timed qc2c "$qc_q" qemu-img convert -q -c -f raw -O qcow2 "$img" "$qc_q"
		timed dc2c "$T/dc.qcow2" "$DSC_CONVERT" -q "${dsc_threads[@]}" -c -src-fmt raw -src "$img" -dst "$T/dc.qcow2" -dst-fmt qcow2
		timed qr2q "$qu_q" qemu-img convert -q -f raw -O qcow2 "$img" "$qu_q"
		timed qr2qw "$T/qw.qcow2" qemu-img convert -q -m 16 -W -f raw -O qcow2 "$img" "$T/qw.qcow2"
		timed dr2q "$T/du.qcow2" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src-fmt raw -src "$img" -dst "$T/du.qcow2" -dst-fmt qcow2
	done
	qc_size=$(fsize "$qc_q")
	dc_size=$(fsize "$T/dc.qcow2")
	qemu-img check -q "$T/dc.qcow2" || verdict="FAILED: qemu-img check of dsc's compressed qcow2"
	qemu-img compare -q -f raw -F qcow2 "$img" "$T/dc.qcow2" || verdict="FAILED: dsc's compressed qcow2 differs"
	qemu-img check -q "$T/du.qcow2" || verdict="FAILED: qemu-img check of dsc's qcow2"
	qemu-img compare -q -f raw -F qcow2 "$img" "$T/du.qcow2" || verdict="FAILED: dsc's qcow2 differs"
	rm -f "$T/dc.qcow2" "$T/du.qcow2" "$T/qw.qcow2"
	cat "$qc_q" "$qu_q" >/dev/null
	for run in $(seq "$RUNS"); do
		echo "# qcow2->raw run $run/$RUNS" >&2
		timed qc2r "$T/q.raw" qemu-img convert -q -f qcow2 -O raw "$qc_q" "$T/q.raw"
		timed dc2r "$T/d.raw" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src "$qc_q" -dst "$T/d.raw"
		timed qq2r "$T/q.raw" qemu-img convert -q -f qcow2 -O raw "$qu_q" "$T/q.raw"
		timed qq2rw "$T/q.raw" qemu-img convert -q -m 16 -W -f qcow2 -O raw "$qu_q" "$T/q.raw"
		timed dq2r "$T/d.raw" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src "$qu_q" -dst "$T/d.raw"
	done
	qemu-img compare -q -f raw -F raw "$img" "$T/d.raw" || verdict="FAILED: raw from qcow2 differs"
	rm -f "$T/q.raw" "$T/d.raw" "$qc_q" "$qu_q"
	echo "# 4 TiB sparse qcow2" >&2
	huge=$T/huge.raw
	truncate -s 4T "$huge"
	for at in 0 1048576 2097152 4194288; do
		head -c $((16 * MiB)) "$img" | dd of="$huge" bs=1M seek=$at conv=notrunc status=none
	done
	timed hq2q "$T/hq.qcow2" qemu-img convert -q -f raw -O qcow2 "$huge" "$T/hq.qcow2"
	timed hd2q "$T/hd.qcow2" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src-fmt raw -src "$huge" -dst "$T/hd.qcow2" -dst-fmt qcow2
	timed hq2r "$T/hq.raw" qemu-img convert -q -f qcow2 -O raw "$T/hd.qcow2" "$T/hq.raw"
	timed hd2r "$T/hd.raw" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src "$T/hd.qcow2" -dst "$T/hd.raw"
	qemu-img check -q "$T/hd.qcow2" || verdict="FAILED: qemu-img check of the 4 TiB qcow2"
	qemu-img compare -q -f raw -F raw "$huge" "$T/hd.raw" || verdict="FAILED: 4 TiB raw from qcow2 differs"
	rm -f "$huge" "$T/hq.qcow2" "$T/hd.qcow2" "$T/hq.raw" "$T/hd.raw"
fi

# ---- VHD ----------------------------------------------------------------------
#
# raw -> fixed VHD and raw -> dynamic VHD against qemu-img, and a plain
# sequential write of the same bytes (dd, then sync) as the disk's speed:
# a fixed VHD is a copy plus a footer, so it should run at >= 90% of it.
# BENCH_VHD=0 skips them.
VHD=no
if [ "${BENCH_VHD:-1}" != 0 ] && "$DSC_CONVERT" -formats 2>/dev/null | grep -q '^vhd  *rw'; then
	VHD=yes
fi
if [ "$VHD" = yes ]; then
	for run in $(seq "$RUNS"); do
		echo "# vhd run $run/$RUNS" >&2
		timed ddw "$T/dd.raw" dd if="$img" of="$T/dd.raw" bs=1M status=none
		timed qr2hf "$T/qf.vhd" qemu-img convert -q -f raw -O vpc -o subformat=fixed "$img" "$T/qf.vhd"
		timed dr2hf "$T/df.vhd" "$DSC_CONVERT" -q -src-fmt raw -src "$img" -dst "$T/df.vhd" -dst-fmt vhd -o subformat=fixed
		timed qr2hd "$T/qd.vhd" qemu-img convert -q -f raw -O vpc "$img" "$T/qd.vhd"
		timed dr2hd "$T/dd.vhd" "$DSC_CONVERT" -q -src-fmt raw -src "$img" -dst "$T/dd.vhd" -dst-fmt vhd
	done
	qemu-img compare -q -f raw -F vpc "$img" "$T/df.vhd" || verdict="FAILED: dsc's fixed VHD differs"
	qemu-img compare -q -f raw -F vpc "$img" "$T/dd.vhd" || verdict="FAILED: dsc's dynamic VHD differs"
	vd_size=$(fsize "$T/dd.vhd")
	vq_size=$(fsize "$T/qd.vhd")
	rm -f "$T/dd.raw" "$T/qf.vhd" "$T/df.vhd" "$T/qd.vhd" "$T/dd.vhd"
fi

# ---- VHDX -------------------------------------------------------------------------
VHDX=no
if [ "${BENCH_VHDX:-1}" != 0 ] && "$DSC_CONVERT" -formats 2>/dev/null | grep -q '^vhdx  *rw'; then
	VHDX=yes
	qx=$T/q.vhdx
	qemu-img convert -q -f raw -O vhdx "$img" "$qx"
	cat "$qx" >/dev/null
	for run in $(seq "$RUNS"); do
		echo "# vhdx->raw run $run/$RUNS" >&2
		timed qx2r "$T/q.raw" qemu-img convert -q -f vhdx -O raw "$qx" "$T/q.raw"
		timed dx2r "$T/d.raw" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src "$qx" -dst "$T/d.raw"
	done
	qemu-img compare -q -f raw -F raw "$img" "$T/d.raw" || verdict="FAILED: raw from vhdx differs"
	rm -f "$T/q.raw" "$T/d.raw" "$qx"
fi

# ---- VDI ---------------------------------------------------------------------------
# raw -> dynamic VDI and VDI (qemu-img's) -> raw against qemu-img. BENCH_VDI=0 skips them.
VDI=no
if [ "${BENCH_VDI:-1}" != 0 ] && "$DSC_CONVERT" -formats 2>/dev/null | grep -q '^vdi  *rw'; then
	VDI=yes
	qi=$T/q.vdi
	for run in $(seq "$RUNS"); do
		echo "# vdi run $run/$RUNS" >&2
		timed qr2i "$qi" qemu-img convert -q -f raw -O vdi "$img" "$qi"
		timed dr2i "$T/d.vdi" "$DSC_CONVERT" -q -src-fmt raw -src "$img" -dst "$T/d.vdi" -dst-fmt vdi
		cat "$qi" >/dev/null
		timed qi2r "$T/q.raw" qemu-img convert -q -f vdi -O raw "$qi" "$T/q.raw"
		timed di2r "$T/d.raw" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src "$qi" -dst "$T/d.raw"
	done
	qemu-img compare -q -f raw -F vdi "$img" "$T/d.vdi" || verdict="FAILED: dsc's VDI differs"
	qemu-img check -q -f vdi "$T/d.vdi" || verdict="FAILED: dsc's VDI fails qemu-img check"
	qemu-img compare -q -f raw -F raw "$img" "$T/d.raw" || verdict="FAILED: raw from vdi differs"
	vi_dsize=$(fsize "$T/d.vdi")
	vi_qsize=$(fsize "$qi")
	rm -f "$T/q.raw" "$T/d.raw" "$T/d.vdi" "$qi"
fi

# ---- VMDK monolithicSparse -------------------------------------------------------
# monolithicSparse (qemu-img's) -> raw. BENCH_VMDKSPARSE=0 skips it.
VMDKSPARSE=no
if [ "${BENCH_VMDKSPARSE:-1}" != 0 ]; then
	VMDKSPARSE=yes
	qm=$T/qm.vmdk
	qemu-img convert -q -f raw -O vmdk -o subformat=monolithicSparse "$img" "$qm"
	cat "$qm" >/dev/null
	for run in $(seq "$RUNS"); do
		echo "# monolithicSparse->raw run $run/$RUNS" >&2
		timed qms2r "$T/q.raw" qemu-img convert -q -f vmdk -O raw "$qm" "$T/q.raw"
		timed dms2r "$T/d.raw" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src "$qm" -dst "$T/d.raw"
	done
	qemu-img compare -q -f raw -F raw "$img" "$T/d.raw" || verdict="FAILED: raw from monolithicSparse differs"
	rm -f "$T/q.raw" "$T/d.raw" "$qm"
fi

# ---- compressed images --------------------------------------------------------
# disk.raw.xz (xz -T0 -2: several blocks, as xz -T writes) and disk.raw.gz
# (pigz) -> qcow2 and -> raw: dsc reading the compressed file against the
# fastest tools' way without dsc: unpack with `xz -T0 -dc` or `pigz -dc`
# (the faster of pigz and gzip here) into a file, then `qemu-img convert`
# (the -> qcow2 rows); unpack into a sparse file (`| cp --sparse=always`,
# the -> raw rows). BENCH_COMPRESSED=0 skips them.
COMPRESSED=no
if [ "${BENCH_COMPRESSED:-1}" != 0 ] && command -v xz >/dev/null && command -v pigz >/dev/null &&
	"$DSC_CONVERT" -formats 2>/dev/null | grep -q '^xz  *r'; then
	COMPRESSED=yes
	xz -T0 -2 -c "$img" >"$T/disk.raw.xz"
	pigz -c "$img" >"$T/disk.raw.gz"
	cat "$T/disk.raw.xz" "$T/disk.raw.gz" >/dev/null
	for run in $(seq "$RUNS"); do
		echo "# compressed run $run/$RUNS" >&2
		timed px2q "$T/p.qcow2" bash -c "xz -T0 -dc '$T/disk.raw.xz' >'$T/u.raw' && qemu-img convert -q -f raw -O qcow2 '$T/u.raw' '$T/p.qcow2' && rm -f '$T/u.raw'"
		timed dx2q "$T/d.qcow2" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src-fmt raw -src "$T/disk.raw.xz" -dst "$T/d.qcow2" -dst-fmt qcow2
		timed pg2q "$T/p.qcow2" bash -c "pigz -dc '$T/disk.raw.gz' >'$T/u.raw' && qemu-img convert -q -f raw -O qcow2 '$T/u.raw' '$T/p.qcow2' && rm -f '$T/u.raw'"
		timed dg2q "$T/d.qcow2" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src-fmt raw -src "$T/disk.raw.gz" -dst "$T/d.qcow2" -dst-fmt qcow2
		timed px2r "$T/p.raw" bash -c "xz -T0 -dc '$T/disk.raw.xz' | cp --sparse=always /dev/stdin '$T/p.raw'"
		timed dx2r "$T/d.raw" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src-fmt raw -src "$T/disk.raw.xz" -dst "$T/d.raw"
		timed pg2r "$T/p.raw" bash -c "pigz -dc '$T/disk.raw.gz' | cp --sparse=always /dev/stdin '$T/p.raw'"
		timed dg2r "$T/d.raw" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src-fmt raw -src "$T/disk.raw.gz" -dst "$T/d.raw"
	done
	qemu-img compare -q -f raw -F qcow2 "$img" "$T/d.qcow2" || verdict="FAILED: qcow2 from raw.gz differs"
	cmp -s "$img" "$T/d.raw" || verdict="FAILED: raw from raw.gz differs"
	# OVA read (manifest at the end, SHA-256 checked) against extracting
	# the member with tar and converting it, without and with a sha256sum
	# of the member on the side.
	python3 "$top_srcdir/tests/cli/gen_ova.py" "$T/app.ova" "$src_vmdk" --mf last
	cat "$T/app.ova" >/dev/null
	vm=$(basename "$src_vmdk")
	for run in $(seq "$RUNS"); do
		echo "# ova run $run/$RUNS" >&2
		timed po2r "$T/p.raw" bash -c "tar -xOf '$T/app.ova' '$vm' | '$DSC_CONVERT' -q ${dsc_threads[*]} -src - -dst '$T/p.raw'"
		timed do2r "$T/d.raw" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src "$T/app.ova" -dst "$T/d.raw"
		timed ph2r "$T/p.raw" bash -c "tar -xOf '$T/app.ova' '$vm' | tee >(sha256sum >'$T/sum') | '$DSC_CONVERT' -q ${dsc_threads[*]} -src - -dst '$T/p.raw'"
	done
	cmp -s "$img" "$T/d.raw" || verdict="FAILED: raw from the OVA differs"
	rm -f "$T/app.ova" "$T/p.raw" "$T/d.raw"
	xz_size=$(fsize "$T/disk.raw.xz")
	gz_size=$(fsize "$T/disk.raw.gz")
	rm -f "$T/p.qcow2" "$T/d.qcow2" "$T/p.raw" "$T/d.raw" "$T/disk.raw.xz" "$T/disk.raw.gz"
fi

# ---- dsc-img ---------------------------------------------------------------------
# dsc-img compare, check and map against qemu-img's on qemu-img's qcow2 of
# the disk (and its VMDK): both compare read every byte; qemu-img check and
# map read only the tables, dsc-img check and map read the whole image
# through the reader (every validation, data told from zeros), so those
# rows measure that cost. BENCH_IMG=0 skips them.
IMG=no
if [ "${BENCH_IMG:-1}" != 0 ] && [ -x "$DSC_IMG" ]; then
	IMG=yes
	bq=$T/b.qcow2
	qemu-img convert -q -f raw -O qcow2 "$img" "$bq"
	cat "$bq" "$src_vmdk" >/dev/null
	for run in $(seq "$RUNS"); do
		echo "# dsc-img run $run/$RUNS" >&2
		TO_STDOUT=1 timed qcmpv "$T/x.txt" qemu-img compare -f qcow2 -F vmdk "$bq" "$src_vmdk"
		TO_STDOUT=1 timed dcmpv "$T/x.txt" "$DSC_IMG" compare -f qcow2 -F vmdk "$bq" "$src_vmdk"
		TO_STDOUT=1 timed qcmpr "$T/x.txt" qemu-img compare -f qcow2 -F raw "$bq" "$img"
		TO_STDOUT=1 timed dcmpr "$T/x.txt" "$DSC_IMG" compare -f qcow2 -F raw "$bq" "$img"
		TO_STDOUT=1 timed qchk "$T/x.txt" qemu-img check -f qcow2 "$bq"
		TO_STDOUT=1 timed dchk "$T/x.txt" "$DSC_IMG" check -f qcow2 "$bq"
		TO_STDOUT=1 timed qmap "$T/x.txt" qemu-img map -f qcow2 --output=json "$bq"
		TO_STDOUT=1 timed dmap "$T/x.txt" "$DSC_IMG" map -f qcow2 --output=json "$bq"
	done
	"$DSC_IMG" compare -f qcow2 -F raw "$bq" "$img" >/dev/null || verdict="FAILED: dsc-img compare"
	rm -f "$bq" "$T/x.txt"
fi

# ---- uploads through nginx -----------------------------------------------------

# cpu_ticks PID...: user+system clock ticks used so far by the processes
# (their threads included).
cpu_ticks() {
	local p t=0 s
	for p in "$@"; do
		s=$(cut -d')' -f2 "/proc/$p/stat" 2>/dev/null) || continue
		set -- $s
		t=$((t + ${12} + ${13}))
	done
	echo $t
}

# upload NAME FILE QUERY OUT: POST FILE to /upload?QUERY, timed until the
# reply (dsc-server has fsynced and renamed $T/out/OUT by then). As in
# timed(), the previous output goes right before the run. Also appends the
# CPU seconds of dsc-server's workers and nginx, and curl's, to NAME.cpus.
upload() {
	local name=$1 file=$2 query=$3 out=$4 t0 t1 code pids c0 c1 hz
	rm -f "$T/out/$out"
	settle
	pids=$(pgrep -P "$SERVER_PID"; echo "$NGINX_PID"; pgrep -P "$NGINX_PID")
	c0=$(cpu_ticks $pids)
	t0=$(usec)
	code=$("$GNU_TIME" -f '%U %S' -o "$T/time.txt" curl -s -o "$T/up.json" -w '%{http_code}' \
		-X POST -T "$file" -H 'Content-Type: application/octet-stream' -H 'Expect:' \
		"$BASE/upload?$query")
	t1=$(usec)
	c1=$(cpu_ticks $pids)
	case $code in
	2??) ;;
	*) die "upload of $file failed: HTTP $code: $(head -c 300 "$T/up.json")" ;;
	esac
	hz=$(getconf CLK_TCK)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", (b - a) / 1e6 }' >>"$T/res/$name.dur"
	tail -n 1 "$T/time.txt" | awk -v t=$((c1 - c0)) -v hz="$hz" \
		'{ printf "%.2f %.2f\n", t / hz, $1 + $2 }' >>"$T/res/$name.cpus"
	fsize "$T/out/$out" >"$T/res/$name.size"
}

if [ "$SERVER" = yes ]; then
	echo "# uploads through nginx" >&2
	mkdir -p "$T/out" "$T/export" "$T/nginx/logs" "$T/nginx/tmp"
	nginx_start >&2
	# One request at a time here: give it the CLI's codec threads
	# (-codec-threads 0: one per CPU, as dsc-convert's default), so the
	# comparison is of the transport, not of the thread count.
	WORKERS=2 server_start -codec-threads "${THREADS:-0}" >&2
	for run in $(seq "$RUNS"); do
		echo "# upload run $run/$RUNS" >&2
		upload uv2r "$src_vmdk" "dst=raw&name=up.raw&overwrite=true" up.raw
		timed cv2r "$T/c.raw" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src "$src_vmdk" -dst "$T/c.raw"
		upload ur2v "$img" "src=raw&dst=vmdk&name=up.vmdk&overwrite=true" up.vmdk
		timed cr2v "$T/c.vmdk" "$DSC_CONVERT" -q "${dsc_threads[@]}" -src-fmt raw -src "$img" -dst "$T/c.vmdk" -dst-fmt vmdk
	done
	cli_vmdk_size=$(fsize "$T/c.vmdk")
	rm -f "$T/c.raw" "$T/c.vmdk"
fi
load_end=$(loadavg)

# ---- the report ----------------------------------------------------------------

row() { # LABEL QNAME DNAME SIZE_RATIO [DNAME_UNSYNCED]
	local qd qw dd du="-"
	qd=$(median "$T/res/$2.dur")
	qw=$(median "$T/res/$2.wall")
	dd=$(median "$T/res/$3.dur")
	[ -n "${5:-}" ] && du=$(ratio "$qw" "$(median "$T/res/$5.wall")")
	printf '| %s | %s | %s | **%s** | %s | %s | %s | %s |\n' "$1" "$(fmt2 "$qd")" "$(fmt2 "$dd")" \
		"$(ratio "$qd" "$dd")" "$4" "$(kib_to_mib "$(maxof "$T/res/$3.rss")")" \
		"$(kib_to_mib "$(maxof "$T/res/$2.rss")")" "$du"
}

echo
echo "| conversion | qemu-img s | dsc s | speed qemu/dsc | size dsc/qemu | dsc peak RSS MiB | qemu-img peak RSS MiB | speed qemu/dsc, neither synced |"
echo "|---|---|---|---|---|---|---|---|"
row "raw -> VMDK, dsc default level" q2v d2v "$(ratio "$d_size" "$q_size")" d2vu
row "raw -> VMDK, dsc -level fast" q2v f2v "$(ratio "$f_size" "$q_size")" f2vu
row "VMDK -> raw" q2r d2r "-" d2ru
row "20 GiB sparse raw -> VMDK" bq2v bd2v "$(ratio "$big_dsize" "$big_qsize")"
row "20 GiB sparse VMDK -> raw" bq2r bd2r "-"
if [ "$QCOW2" = yes ]; then
	row "raw -> qcow2 -c" qc2c dc2c "$(ratio "$dc_size" "$qc_size")"
	row "raw -> qcow2 (qemu-img -m 16 -W)" qr2qw dr2q "-"
	row "raw -> qcow2 (qemu-img default)" qr2q dr2q "-"
	row "compressed qcow2 -> raw" qc2r dc2r "-"
	row "qcow2 -> raw (qemu-img -m 16 -W)" qq2rw dq2r "-"
	row "qcow2 -> raw (qemu-img default)" qq2r dq2r "-"
	row "4 TiB sparse raw -> qcow2" hq2q hd2q "-"
	row "4 TiB sparse qcow2 -> raw" hq2r hd2r "-"
fi
if [ "$VHD" = yes ]; then
	row "raw -> fixed VHD" qr2hf dr2hf "-"
	row "raw -> dynamic VHD" qr2hd dr2hd "$(ratio "$vd_size" "$vq_size")"
	row "raw -> fixed VHD vs dd (sequential write, as qemu-img column)" ddw dr2hf "-"
fi
[ "$VHDX" = yes ] && row "VHDX (qemu-img's) -> raw" qx2r dx2r "-"
if [ "$VDI" = yes ]; then
	row "raw -> dynamic VDI" qr2i dr2i "$(ratio "$vi_dsize" "$vi_qsize")"
	row "VDI (qemu-img's) -> raw" qi2r di2r "-"
fi
if [ "$VMDKSPARSE" = yes ]; then
	row "VMDK monolithicSparse (qemu-img's) -> raw" qms2r dms2r "-"
fi
if [ "$COMPRESSED" = yes ]; then
	row "raw.xz -> qcow2 (qemu-img column: xz -T0 -dc >file; qemu-img convert)" px2q dx2q "-"
	row "raw.gz -> qcow2 (qemu-img column: pigz -dc >file; qemu-img convert)" pg2q dg2q "-"
	row "raw.xz -> raw (qemu-img column: xz -T0 -dc | cp --sparse=always)" px2r dx2r "-"
	row "raw.gz -> raw (qemu-img column: pigz -dc | cp --sparse=always)" pg2r dg2r "-"
	row "OVA -> raw (qemu-img column: tar -xOf | dsc-convert -src -)" po2r do2r "-"
	row "OVA -> raw, digest checked (qemu-img column: tar -xOf | tee >(sha256sum) | dsc-convert -src -)" ph2r do2r "-"
fi
if [ "$IMG" = yes ]; then
	row "dsc-img compare qcow2 VMDK (qemu-img compare)" qcmpv dcmpv "-"
	row "dsc-img compare qcow2 raw (qemu-img compare)" qcmpr dcmpr "-"
	row "dsc-img check qcow2 (qemu-img check: tables only; dsc: tables and every byte)" qchk dchk "-"
	row "dsc-img map qcow2 (qemu-img map: tables only; dsc: every byte)" qmap dmap "-"
fi
echo
echo "Medians of $RUNS runs (the 20 GiB rows: one run), seconds until the output is on disk" \
	"(\`sync FILE\` after each tool; dsc fsyncs by itself); the last column: neither synced" \
	"(qemu-img as is, dsc-convert \`-dst - >FILE\`). Image: $((cap / MiB)) MiB," \
	"$((alloc / MiB)) MiB allocated; VMDK sizes: qemu-img $((q_size / MiB)) MiB," \
	"dsc default $((d_size / MiB)) MiB, dsc fast $((f_size / MiB)) MiB." \
	"dsc CPU seconds (user+sys, median): default $(median "$T/res/d2v.cpu"), fast $(median "$T/res/f2v.cpu")," \
	"VMDK->raw $(median "$T/res/d2r.cpu"); qemu-img: $(median "$T/res/q2v.cpu"), $(median "$T/res/q2r.cpu")." \
	"Load average: $load_start at the start, $load_end at the end. Outputs checked: $verdict."
detail() { # LABEL QNAME DNAME DNAME_UNSYNCED
	printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" \
		"$(fmt2 "$(median "$T/res/$2.wall")")" "$(fmt2 "$(median "$T/res/$2.dur")")" "$(median "$T/res/$2.cpu")" \
		"$(fmt2 "$(median "$T/res/$4.wall")")" "$(fmt2 "$(median "$T/res/$3.dur")")" "$(median "$T/res/$3.cpu")"
}
echo
echo "| where the time goes | qemu-img s, unsynced | qemu-img s, synced | qemu-img CPU s | dsc s, unsynced | dsc s, synced | dsc CPU s |"
echo "|---|---|---|---|---|---|---|"
detail "raw -> VMDK, default level" q2v d2v d2vu
detail "raw -> VMDK, -level fast" q2v f2v f2vu
detail "VMDK -> raw" q2r d2r d2ru
if [ "$SERVER" = yes ]; then
	echo
	echo "| upload through nginx (curl -T, one request) | CLI s | upload s | CLI MB/s | upload MB/s | upload/CLI | CLI CPU s | upload CPU s: dsc-server + nginx, curl |"
	echo "|---|---|---|---|---|---|---|---|"
	for pair in "VMDK -> raw ($((($(fsize "$src_vmdk")) / MiB)) MiB VMDK):cv2r:uv2r:$src_vmdk" \
		"raw -> VMDK ($((cap / MiB)) MiB raw, holes sent as zeros):cr2v:ur2v:$img"; do
		IFS=: read -r label c u f <<<"$pair"
		cs=$(median "$T/res/$c.dur")
		us=$(median "$T/res/$u.dur")
		awk '{ print $1 }' "$T/res/$u.cpus" >"$T/res/$u.scpu"
		awk '{ print $2 }' "$T/res/$u.cpus" >"$T/res/$u.ccpu"
		printf '| %s | %s | %s | %s | %s | **%s** | %s | %s, %s |\n' "$label" "$(fmt2 "$cs")" "$(fmt2 "$us")" \
			"$(awk -v n="$(fsize "$f")" -v s="$cs" 'BEGIN { printf "%.0f", n / s / 1e6 }')" \
			"$(awk -v n="$(fsize "$f")" -v s="$us" 'BEGIN { printf "%.0f", n / s / 1e6 }')" \
			"$(awk -v a="$cs" -v b="$us" 'BEGIN { printf "%.0f%%", 100 * a / b }')" \
			"$(median "$T/res/$c.cpu")" "$(median "$T/res/$u.scpu")" "$(median "$T/res/$u.ccpu")"
	done
	echo
	echo "MB/s: bytes of the source file per second (10^6). The CLI reads the raw file" \
		"skipping its holes; the upload sends every byte. dsc-server: 2 workers, -codec-threads as the CLI, outputs fsynced." \
		"CPU s: user+system seconds (medians); the upload's are those of dsc-server's workers and nginx, then curl's:" \
		"on 2 cores, when both runs keep the CPUs busy, upload/CLI is close to CLI CPU / upload CPU." \
		"VMDK sizes: upload $(($(cat "$T/res/ur2v.size") / MiB)) MiB, CLI $((cli_vmdk_size / MiB)) MiB."
else
	echo
	echo "Uploads through nginx: not measured (BENCH_SERVER=0, or one of dsc-server (configure needs" \
		"libfcgi-dev), nginx, curl, python3 is missing)."
fi
case $verdict in ok) exit 0 ;; *) echo "bench: $verdict" >&2; exit 1 ;; esac
