#!/bin/bash
# img.sh - dsc-img info, check, compare, map and convert against qemu-img.
#
# For images of every format and subformat qemu-img writes (made here with
# qemu-img convert from a disk with data, holes and an odd tail, and with
# qemu-io's VM-style random writes, overwrites, zero writes and discards):
#   info --output=json agrees with `qemu-img info` on format, virtual size,
#     cluster size and every format-specific field both report;
#     dsc-stream-ordered says true exactly when `cat IMG | dsc-convert -src -`
#     converts; dsc-data-bytes counts the nonzero 64 KiB units;
#   map's data extents are the nonzero units of `qemu-img convert -O raw`,
#     and qemu-img map's data extents (exactly where the allocation unit is
#     64 KiB, containing them where it is larger);
#   check passes every clean image (qcow2: qemu-img check's counts) and
#     flags damaged ones with qemu-img check's exit codes: a zeroed
#     refcount and a table past the end (2), a leaked cluster (3), a bad
#     VHD checksum and a cut VMDK (2), a missing file (1);
#   compare agrees with `qemu-img compare` on equal and differing pairs
#     (the same first differing offset), across formats, sizes and -s;
# and the same from a pipe and over http (info reads only the header:
# the test server cuts the connection past it, and no second request comes).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img qemu-io timeout
set -o pipefail

: "${DSC_IMG:=$top_builddir/dsc-img}"
[ -x "$DSC_IMG" ] || { echo "FAIL: dsc-img not found at $DSC_IMG"; exit 1; }
CMP="python3 $top_srcdir/tests/cli/img_cmp.py"
I=$T/in
mkdir -p "$I"

# run_img ARGS...: dsc-img with stdout/stderr to $T/stdout, $T/stderr; sets RC.
run_img() {
	timeout 120 "$DSC_IMG" "$@" </dev/null >"$T/stdout" 2>"$T/stderr"
	RC=$?
	LAST_CMD="dsc-img $*"
}

# expect_rc DESC RC: the last run exited RC.
expect_rc() {
	if [ "$RC" -eq "$2" ]; then
		pass "$1"
	else
		fail "$1 (exit $RC, want $2)" "$(last_run)" "stdout: $(head -c 1500 "$T/stdout")"
	fi
}

# ---- the source disk: data, holes, an odd tail (all data 64 KiB aligned) --
SRC=$I/src.raw
gen_sparse "$SRC" $((24 * MiB))
put_random "$SRC" 0 $((192 * 1024))
put_random "$SRC" $((3 * MiB)) $((64 * 1024))
put_random "$SRC" $((5 * MiB + 512 * 1024)) $((2 * MiB))
put_random "$SRC" $((23 * MiB)) $MiB

# The images: NAME QEMU_FORMAT MAP_MODE -O options...
IMAGES=(
	"qcow2-v2 qcow2 exact -o compat=0.10"
	"qcow2-v3 qcow2 exact -o compat=1.1"
	"qcow2-lazy qcow2 exact -o lazy_refcounts=on"
	"qcow2-zstd qcow2 exact -c -o compression_type=zstd"
	"qcow2-zlib-c qcow2 exact -c"
	"qcow2-extl2 qcow2 subset -o extended_l2=on,cluster_size=128k"
	"qcow2-4k qcow2 subset -o cluster_size=4k"
	"qcow2-2m qcow2 subset -o cluster_size=2M"
	"qcow2-rc1 qcow2 exact -o refcount_bits=1"
	"qcow2-rc64 qcow2 exact -o refcount_bits=64"
	"qcow2-prealloc qcow2 subset -o preallocation=metadata"
	"vmdk-stream vmdk exact -o subformat=streamOptimized"
	"vmdk-sparse vmdk exact -o subformat=monolithicSparse"
	"vmdk-flat vmdk subset -o subformat=monolithicFlat"
	"vmdk-2gb vmdk exact -o subformat=twoGbMaxExtentSparse"
	"vmdk-2gbflat vmdk subset -o subformat=twoGbMaxExtentFlat"
	"vpc-dynamic vpc subset -o subformat=dynamic"
	"vpc-fixed vpc subset -o subformat=fixed"
	"vhdx-dynamic vhdx subset -o subformat=dynamic"
	"vhdx-fixed vhdx subset -o subformat=fixed"
	"vdi-dynamic vdi subset"
	"vdi-static vdi subset -o static=on"
	"raw raw exact"
)

# stream_ok IMG FMT: dsc-convert converts IMG from a pipe (-src-fmt FMT).
stream_ok() { cat "$1" | "$DSC_CONVERT" -q -src - -src-fmt "$2" -dst "$T/piped.raw" 2>/dev/null; local rc=$?; rm -f "$T/piped.raw"; return $rc; }

# one_image NAME FMT MODE FILE [SOURCE]: every command on FILE, against
# qemu-img (and compare with the raw SOURCE it was made from).
one_image() {
	local n=$1 qf=$2 mode=$3 f=$4 ref=$T/$1.ref want_ordered
	qemu-img convert -f "$qf" -O raw "$f" "$ref" || { fail "$n: qemu-img convert -O raw"; return; }
	# info
	qemu-img info -f "$qf" --output=json "$f" >"$T/q.json"
	run_img info --output=json "$f"
	expect_rc "$n: info" 0
	cp "$T/stdout" "$T/d.json"
	check "$n: info agrees with qemu-img info" $CMP info "$T/d.json" "$T/q.json"
	if stream_ok "$f" "$qf"; then want_ordered=true; else want_ordered=false; fi
	check "$n: dsc-stream-ordered is $want_ordered (a pipe converts or not)" \
		grep -q "\"dsc-stream-ordered\": $want_ordered" "$T/d.json"
	local units
	units=$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import img_cmp; print(len(img_cmp.nonzero_units(sys.argv[2])) * 65536)' "$top_srcdir/tests/cli" "$ref")
	local got
	got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dsc-data-bytes"])' "$T/d.json")
	# The data bytes: the nonzero units, less the part of the last unit
	# past the end of the disk.
	check "$n: dsc-data-bytes ($got) covers the nonzero units ($units)" \
		test "$got" -le "$units" -a "$got" -gt $((units - 65536))
	# -f with qemu's name
	run_img info -f "$qf" --output=json "$f"
	expect_rc "$n: info -f $qf" 0
	# map
	qemu-img map -f "$qf" --output=json "$f" >"$T/qm.json"
	run_img map --output=json "$f"
	expect_rc "$n: map" 0
	check "$n: map data = the nonzero units, $mode of qemu-img map's" \
		$CMP map "$T/stdout" "$T/qm.json" "$ref" "$mode"
	# check
	run_img check "$f"
	expect_rc "$n: check: clean" 0
	if [ "$qf" = qcow2 ]; then
		qemu-img check --output=json "$f" >"$T/qc.json"
		run_img check --output=json "$f"
		cp "$T/stdout" "$T/dc.json"
		check "$n: check counts agree with qemu-img check" $CMP check "$T/dc.json" "$T/qc.json"
	fi
	# compare: with its raw, with the source, and a changed copy
	run_img compare "$f" "$ref"
	expect_rc "$n: compare with qemu-img's raw: identical" 0
	if [ "${5:-}" ]; then
		run_img compare -F raw "$f" "$5"
		expect_rc "$n: compare with the source: identical" 0
	fi
	rm -f "$ref"
}

for spec in "${IMAGES[@]}"; do
	read -r n qf mode opts <<<"$spec"
	# shellcheck disable=SC2086 # $opts is a word list
	qemu-img convert -f raw -O "$qf" $opts "$SRC" "$I/$n.img" ||
		{ fail "$n: qemu-img convert -O $qf $opts"; continue; }
	one_image "$n" "$qf" "$mode" "$I/$n.img" "$SRC"
done

# ---- VM-style images: random writes, overwrites, zero writes, discards -----
vm_writes() {
	local f=$1 fmt=$2 i cmds=() off len
	RANDOM=$3
	for i in $(seq 1 60); do
		off=$(((RANDOM % 380) * 65536 + (RANDOM % 16) * 4096))
		len=$(((RANDOM % 8 + 1) * 4096))
		cmds+=(-c "write -P $((i % 250 + 1)) $off $len")
	done
	cmds+=(-c "write -z $((2 * MiB)) $((256 * 1024))" -c "discard $((10 * MiB)) $MiB")
	cmds+=(-c "write -P 9 $((24 * MiB - 4096)) 4096")
	qemu-io -f "$fmt" "${cmds[@]}" "$f" >/dev/null
}
for spec in "qcow2 qcow2" "qcow2-v2 qcow2 -o compat=0.10" "vmdk vmdk -o subformat=monolithicSparse" \
	"vpc vpc" "vhdx vhdx" "vdi vdi"; do
	read -r n qf opts <<<"$spec"
	# shellcheck disable=SC2086 # $opts is a word list
	qemu-img create -q -f "$qf" $opts "$I/vm-$n.img" $((24 * MiB)) ||
		{ fail "vm-$n: qemu-img create"; continue; }
	vm_writes "$I/vm-$n.img" "$qf" 17 || { fail "vm-$n: qemu-io writes"; continue; }
	mode=subset
	one_image "vm-$n" "$qf" "$mode" "$I/vm-$n.img"
done

# qcow2 with internal snapshots (their L1 tables share L2 tables and data
# with the image's), then one deleted (qemu rewrites the table at the end).
qemu-img create -q -f qcow2 "$I/snap.qcow2" $((24 * MiB))
vm_writes "$I/snap.qcow2" qcow2 5
qemu-img snapshot -c s1 "$I/snap.qcow2"
vm_writes "$I/snap.qcow2" qcow2 6
qemu-img snapshot -c s2 "$I/snap.qcow2"
vm_writes "$I/snap.qcow2" qcow2 7
one_image snap qcow2 subset "$I/snap.qcow2"
qemu-img snapshot -d s1 "$I/snap.qcow2"
one_image snap-deleted qcow2 subset "$I/snap.qcow2"
check "snapshots: info counts them" grep -q '"dsc-snapshots": 1' "$T/d.json"

# ---- info details ----------------------------------------------------------
Q=$I/qcow2-v3.img
run_img info "$Q"
expect_rc "info human" 0
check "info human: format, virtual size, cluster size" \
	grep -Pzq 'file format: qcow2\nvirtual size: 24 MiB \(25165824 bytes\)\n' "$T/stdout"
# Split sets of several extents (5 GiB: three 2 GiB extents each).
for sub in twoGbMaxExtentSparse twoGbMaxExtentFlat; do
	qemu-img create -q -f vmdk -o subformat=$sub "$I/split-$sub.vmdk" 5G
	qemu-img info --output=json "$I/split-$sub.vmdk" >"$T/q.json"
	run_img info --output=json --header-only "$I/split-$sub.vmdk"
	check "$sub, 3 extents: info agrees with qemu-img info (extent by extent)" \
		$CMP info "$T/stdout" "$T/q.json"
	rm -f "$I/split-$sub"*
done
# A backing file is reported and never opened.
qemu-img create -q -f qcow2 -u -b "$T/no-such-base.qcow2" -F qcow2 "$I/overlay.qcow2" 24M
qemu-img info --output=json -U "$I/overlay.qcow2" >"$T/q.json" 2>/dev/null
run_img info --output=json "$I/overlay.qcow2"
expect_rc "overlay: info" 0
cp "$T/stdout" "$T/d.json"
check "overlay: backing-filename as qemu-img says" \
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["backing-filename"]==sys.argv[2] and d["backing-filename-format"]=="qcow2", d' "$T/d.json" "$T/no-such-base.qcow2"
check "overlay: info agrees with qemu-img info" $CMP info "$T/d.json" "$T/q.json"
run_img check "$I/overlay.qcow2"
expect_rc "overlay: check could not check (backing file not followed)" 1
check "overlay: check says why" grep -q 'backing file' "$T/stderr" "$T/stdout"
# A VMDK delta disk names its parent.
qemu-img create -q -f vmdk "$I/parent.vmdk" 24M
qemu-img create -q -f vmdk -b "$I/parent.vmdk" -F vmdk "$I/child.vmdk"
run_img info --output=json "$I/child.vmdk"
expect_rc "vmdk child: info" 0
check "vmdk child: backing-filename is the parentFileNameHint" \
	grep -q "\"backing-filename\": \"$I/parent.vmdk\"" "$T/stdout"
# The dirty bit (lazy refcounts, a writer that did not close).
cp "$I/qcow2-lazy.img" "$I/dirty.qcow2"
printf '\001' | dd of="$I/dirty.qcow2" bs=1 seek=79 conv=notrunc status=none
qemu-img info --output=json "$I/dirty.qcow2" >"$T/q.json"
run_img info --output=json "$I/dirty.qcow2"
check "dirty qcow2: dirty-flag true, as qemu-img says" \
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); q=json.load(open(sys.argv[2])); assert d["dirty-flag"] is True and q["dirty-flag"]==d["dirty-flag"], (d,q)' "$T/stdout" "$T/q.json"
# Compressed and archived sources name their layers.
gzip -c "$I/vmdk-stream.img" >"$I/disk.vmdk.gz"
run_img info --output=json "$I/disk.vmdk.gz"
check "vmdk.gz: format vmdk, dsc-compression gzip" \
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["format"]=="vmdk" and d["dsc-compression"]=="gzip" and d["virtual-size"]==25165824, d' "$T/stdout"
"$DSC_CONVERT" -q -src "$SRC" -dst "$I/disk.ova" -dst-fmt ova
run_img info --output=json "$I/disk.ova"
check "ova: format vmdk inside, dsc-archive ova" \
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["format"]=="vmdk" and d["dsc-archive"]=="ova" and d["virtual-size"]==25165824, d' "$T/stdout"
run_img compare "$I/disk.ova" "$SRC"
expect_rc "ova: compare with the source: identical" 0
# --header-only reads no further than the header.
run_img info --header-only --output=json "$Q"
check "info --header-only: no data fields" \
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "dsc-data-bytes" not in d and d["virtual-size"]==25165824, d' "$T/stdout"

# ---- damaged images: check's exit codes (qemu-img check's where it checks) --
# qcow2_patch FILE WHAT: damage a copy of a qcow2 (python, by its tables).
qcow2_patch() {
	python3 - "$1" "$2" <<'EOF'
import os, struct, sys
path, what = sys.argv[1], sys.argv[2]
f = open(path, "r+b")
h = f.read(104)
cs = 1 << struct.unpack(">I", h[20:24])[0]
l1 = struct.unpack(">Q", h[40:48])[0]
rt = struct.unpack(">Q", h[48:56])[0]
f.seek(l1)
l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
f.seek(l2)
ent = struct.unpack(">Q", f.read(8))[0]
data = ent & 0x00fffffffffffe00
f.seek(rt)
rb = struct.unpack(">Q", f.read(8))[0]
if what == "zero-refcount":      # the first data cluster's refcount to 0
    f.seek(rb + 2 * (data // cs)); f.write(b"\0\0")
elif what == "past-end":         # the first L2 entry points past the end
    end = os.path.getsize(path)
    f.seek(l2); f.write(struct.pack(">Q", (ent & ~0x00fffffffffffe00) | (end + 16 * cs)))
elif what == "l1-past-end":      # the first L1 entry points past the end
    end = os.path.getsize(path)
    f.seek(l1); f.write(struct.pack(">Q", (1 << 63) | ((end + 16 * cs) & ~(cs - 1))))
elif what == "leak":             # a cluster appended with refcount 1, unused
    end = os.path.getsize(path)
    f.seek(end); f.write(b"\0" * cs)
    f.seek(rb + 2 * (end // cs)); f.write(struct.pack(">H", 1))
EOF
}
for what in zero-refcount past-end l1-past-end leak; do
	cp "$I/qcow2-v3.img" "$I/bad-$what.qcow2"
	qcow2_patch "$I/bad-$what.qcow2" "$what"
	qemu-img check "$I/bad-$what.qcow2" >/dev/null 2>&1
	qrc=$?
	run_img check "$I/bad-$what.qcow2"
	expect_rc "qcow2 $what: check exit $qrc, as qemu-img check" "$qrc"
	run_img check --output=json "$I/bad-$what.qcow2"
	expect_rc "qcow2 $what: check --output=json exit $qrc" "$qrc"
	check "qcow2 $what: the JSON counts it" grep -Eq '"(corruptions|leaks)": [1-9]' "$T/stdout"
	qemu-img check --output=json "$I/bad-$what.qcow2" >"$T/qc.json" 2>/dev/null
	check "qcow2 $what: as many corruptions and leaks as qemu-img check counts" \
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); q=json.load(open(sys.argv[2])); assert [d.get(k,0) for k in ("corruptions","leaks")]==[q.get(k,0) for k in ("corruptions","leaks")], (d,q)' "$T/stdout" "$T/qc.json"
done
check "qcow2 leak: qemu-img agrees it is a leak (3)" test "$(qemu-img check "$I/bad-leak.qcow2" >/dev/null 2>&1; echo $?)" -eq 3
# A bad VHD checksum (the footer copy at byte 0, then the footer at the end).
cp "$I/vpc-dynamic.img" "$I/bad-head.vhd"
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(67); b=f.read(1); f.seek(67); f.write(bytes([b[0]^0x5a]))' "$I/bad-head.vhd"
run_img check "$I/bad-head.vhd"
expect_rc "vhd: bad checksum at byte 0: corrupted (2)" 2
check "vhd: bad checksum: the message says so" grep -q 'checksum' "$T/stderr"
cp "$I/vpc-dynamic.img" "$I/bad-tail.vhd"
python3 -c 'import os,sys; p=sys.argv[1]; n=os.path.getsize(p)-512+67; f=open(p,"r+b"); f.seek(n); b=f.read(1); f.seek(n); f.write(bytes([b[0]^0x5a]))' "$I/bad-tail.vhd"
run_img check "$I/bad-tail.vhd"
expect_rc "vhd: bad checksum at the end: corrupted (2)" 2
# A VMDK stream cut in its grains.
head -c $(($(fsize "$I/vmdk-stream.img") / 2)) "$I/vmdk-stream.img" >"$I/cut.vmdk"
run_img check "$I/cut.vmdk"
expect_rc "vmdk cut in half: corrupted (2)" 2
check "vmdk cut: says truncated" grep -qi 'truncated' "$T/stdout" "$T/stderr"
run_img check "$I/no-such-file.qcow2"
expect_rc "missing file: could not check (1)" 1
check "missing file: one line naming it" test "$(grep -c no-such-file "$T/stderr")" -eq 1

# ---- compare: differing pairs, sizes, -s ------------------------------------
cp "$SRC" "$I/diff.raw"
printf 'X' | dd of="$I/diff.raw" bs=1 seek=$((7 * MiB + 1000)) conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$I/diff.raw" "$I/diff.qcow2"
for pair in "qcow2-v3.img diff.qcow2" "vmdk-stream.img diff.qcow2" "diff.raw vpc-dynamic.img" \
	"vdi-dynamic.img diff.raw"; do
	read -r a b <<<"$pair"
	want=$(qemu-img compare "$I/$a" "$I/$b" 2>&1)
	wrc=$?
	run_img compare "$I/$a" "$I/$b"
	expect_rc "compare $a $b: exit $wrc as qemu-img compare" "$wrc"
	check "compare $a $b: '$want'" grep -qF "$want" "$T/stdout"
done
# A zero byte made nonzero at the very end, and one at the start.
cp "$SRC" "$I/last.raw"
printf 'Y' | dd of="$I/last.raw" bs=1 seek=$((24 * MiB - 1)) conv=notrunc status=none
run_img compare "$I/vhdx-dynamic.img" "$I/last.raw"
expect_rc "compare: the last byte differs: 1" 1
check "compare: offset of the last sector" grep -q "Content mismatch at offset $((24 * MiB - 512))!" "$T/stdout"
# Sizes: a longer disk with zeros past the shorter one is identical unless -s.
cp "$SRC" "$I/long.raw" && truncate -s $((25 * MiB)) "$I/long.raw"
run_img compare "$I/qcow2-v3.img" "$I/long.raw"
expect_rc "compare: longer by zeros: identical" 0
check "compare: longer by zeros: warns of the size" grep -q 'Warning: Image size mismatch!' "$T/stdout"
run_img compare -s "$I/qcow2-v3.img" "$I/long.raw"
expect_rc "compare -s: longer by zeros: differ (1)" 1
check "compare -s: strict message" grep -q 'Strict mode: Image size mismatch!' "$T/stdout"
printf 'Z' | dd of="$I/long.raw" bs=1 seek=$((24 * MiB + 4096)) conv=notrunc status=none
want=$(qemu-img compare "$I/qcow2-v3.img" "$I/long.raw" 2>&1 | grep mismatch | tail -1)
run_img compare "$I/qcow2-v3.img" "$I/long.raw"
expect_rc "compare: data past the shorter disk: differ (1)" 1
check "compare: data past the shorter disk: '$want'" grep -qF "$want" "$T/stdout"
run_img compare "$I/qcow2-v3.img" "$I/no-such-file"
expect_rc "compare: missing file: error (2)" 2
run_img compare "$I/qcow2-v3.img"
expect_rc "compare: one image: usage error (2)" 2

# ---- pipes ---------------------------------------------------------------
for n in qcow2-v3 vmdk-stream vpc-dynamic vdi-dynamic raw; do
	"$DSC_IMG" info --output=json "$I/$n.img" >"$T/file.json"
	cat "$I/$n.img" | "$DSC_IMG" info --output=json - >"$T/pipe.json"
	check "$n from a pipe: info's virtual size and data bytes as from the file" \
		python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); assert a["virtual-size"]==b["virtual-size"] and a["dsc-data-bytes"]==b["dsc-data-bytes"] and b["dsc-stream-ordered"] is True, (a,b)' "$T/file.json" "$T/pipe.json"
	"$DSC_IMG" map --output=json "$I/$n.img" >"$T/file.map"
	cat "$I/$n.img" | "$DSC_IMG" map --output=json - >"$T/pipe.map"
	check "$n from a pipe: the same map" cmp "$T/file.map" "$T/pipe.map"
	cat "$I/$n.img" | "$DSC_IMG" compare - "$SRC" >"$T/stdout"
	check "$n from a pipe: compare with the source" test $? -eq 0
done
cat "$I/diff.qcow2" | "$DSC_IMG" compare "$I/qcow2-v3.img" - >"$T/stdout"
check "compare with a pipe: the differing offset" grep -q "Content mismatch at offset $((7 * MiB + 512))!" "$T/stdout"
cat "$I/bad-zero-refcount.qcow2" | "$DSC_IMG" check - >"$T/stdout" 2>&1
check "check from a pipe: a clean walk (refcounts need a seekable file)" test $? -eq 0

# ---- http ----------------------------------------------------------------
HTTPD="$top_srcdir/tests/tools/httpd.py"
WWW=$T/www
mkdir -p "$WWW"
cp "$I/qcow2-v3.img" "$WWW/disk.qcow2"
cp "$I/vmdk-stream.img" "$WWW/disk.vmdk"
cp "$I/vpc-fixed.img" "$WWW/fixed.vhd"
python3 "$HTTPD" --root "$WWW" --port-file "$T/h.port" --log "$T/h.log" >"$T/h.out" 2>&1 &
HPID=$!
trap 'kill $HPID 2>/dev/null; cleanup' EXIT
for i in $(seq 1 100); do [ -s "$T/h.port" ] && break; sleep 0.1; done
U=http://127.0.0.1:$(cat "$T/h.port")
requests() { grep -c "^GET [^ ]*?$1 " "$T/h.log"; }
# The connection is cut at 1 MiB: info must not need more (reading past
# the cut shows as a request resuming there). Detection fetches the last
# 512 bytes with a Range request, then starts again at byte 0.
run_img info --output=json "$U/f/disk.qcow2?q=1&cut=$MiB"
expect_rc "qcow2 over http: info" 0
cp "$T/stdout" "$T/d.json"
qemu-img info --output=json "$I/qcow2-v3.img" >"$T/q.json"
check "qcow2 over http: info agrees with qemu-img info" $CMP info "$T/d.json" "$T/q.json"
check "qcow2 over http: no data fields (header only)" sh -c "! grep -q dsc-data-bytes $T/d.json"
# resumed Q: requests of query Q that resumed at the cut (read past it).
resumed() { grep -c "^GET [^ ]*?$1 range=bytes=$2-" "$T/h.log"; }
check "qcow2 over http: info read no further than the cut (no resume there)" \
	test "$(resumed "q=1\&cut=$MiB" $MiB)" -eq 0
check "qcow2 over http: at most 3 requests (head, tail, head again)" \
	test "$(requests "q=1\&cut=$MiB")" -le 3
run_img info --output=json "$U/f/disk.vmdk?q=2&cut=$((64 * 1024))"
expect_rc "vmdk over http: info" 0
check "vmdk over http: no resume at the cut" test "$(resumed "q=2\&cut=65536" 65536)" -eq 0
# A fixed VHD keeps its footer at the end: the footer is fetched with a
# Range request (named or detected).
run_img info -f vpc --output=json "$U/f/fixed.vhd?q=3"
expect_rc "fixed vhd over http -f vpc: info" 0
check "fixed vhd over http: vhd-type fixed" grep -q '"vhd-type": "fixed"' "$T/stdout"
check "fixed vhd over http: the footer by Range" grep -q "^GET [^ ]*q=3 range=bytes=" "$T/h.log"
run_img info --output=json "$U/f/fixed.vhd?q=4"
check "fixed vhd over http, detected: vhd, its virtual size" \
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["format"]=="vhd" and d["virtual-size"]==int(sys.argv[2]), d' "$T/stdout" \
	"$(qemu-img info -f vpc --output=json "$I/vpc-fixed.img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')"
run_img compare "$U/f/disk.qcow2" "$SRC"
expect_rc "qcow2 over http: compare with the source" 0
run_img map --output=json "$U/f/disk.vmdk"
expect_rc "vmdk over http: map" 0
"$DSC_IMG" map --output=json "$I/vmdk-stream.img" >"$T/file.map"
check "vmdk over http: the same map as the file" cmp "$T/stdout" "$T/file.map"
run_img check "$U/f/disk.qcow2"
expect_rc "qcow2 over http: check (a walk) clean" 0

# ---- usage and convert ---------------------------------------------------
run_img
expect_rc "no command: usage (1)" 1
run_img frobnicate x
expect_rc "unknown command: 1" 1
check "unknown command: named" grep -q "unknown command 'frobnicate'" "$T/stderr"
run_img info -f nosuch "$Q"
expect_rc "unknown -f format: 1" 1
run_img info --output=xml "$Q"
expect_rc "--output=xml: 1" 1
run_img --help
expect_rc "--help: 0" 0
check "--help lists the commands" grep -q 'compare' "$T/stdout"
# -p: a progress line on stderr while a long read goes on (a 4 GiB sparse raw).
gen_sparse "$T/long.raw" $((4 * GiB))
put_random "$T/long.raw" $((3 * GiB)) $MiB
run_img check -p "$T/long.raw"
expect_rc "check -p: clean" 0
check "check -p: a progress line with a percentage on stderr" grep -q '%.*MB/s' "$T/stderr"
check "check -p: the result on stdout" grep -q 'No errors were found' "$T/stdout"
rm -f "$T/long.raw"
run_img convert -src "$Q" -dst "$T/conv.vmdk" -dst-fmt vmdk
expect_rc "convert: dsc-convert's flags" 0
check "convert: qemu-img compare with the source" qemu-img compare -q -F raw "$T/conv.vmdk" "$SRC"
kill $HPID 2>/dev/null
finish
