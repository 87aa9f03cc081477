# lib.sh - helpers shared by the dsc-convert integration tests (sourced, bash).
#
# Each test script sources this file, calls dsc_init, runs checks with `check`
# (or the expect_* helpers), and ends with `finish`. Checks keep going after a
# failure so one run shows every problem; `finish` exits 1 if any failed.
# Everything a test creates lives in $T, a mktemp -d directory removed on exit.
# skip, need, missing and finish come from tests/lib/common.sh: exit 77
# means skipped, and under CI (CI=true) a missing prerequisite is a failure,
# since CI installs every tool the tests use.
#
# Environment (from AM_TESTS_ENVIRONMENT, or guessed when run by hand):
# top_srcdir, top_builddir, DSC_CONVERT.

. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${DSC_CONVERT:=$top_builddir/dsc-convert}"

GRAIN=65536
MiB=1048576
GiB=1073741824

T=

cleanup() {
	[ -n "$T" ] && rm -rf "$T"
}

# dsc_init: make the temp dir and check the binary and python3 are there.
dsc_init() {
	T=$(mktemp -d "${TMPDIR:-/tmp}/dsc-cli.XXXXXX") || { echo "mktemp failed"; exit 99; }
	trap cleanup EXIT
	if [ ! -x "$DSC_CONVERT" ]; then
		echo "FAIL: dsc-convert not found at $DSC_CONVERT"
		exit 1
	fi
	need python3
	echo "# $(basename "$0"): dsc-convert=$DSC_CONVERT tmp=$T"
}

pass() {
	CHECKS=$((CHECKS + 1))
	echo "ok $CHECKS - $1"
}

fail() {
	CHECKS=$((CHECKS + 1))
	FAILS=$((FAILS + 1))
	echo "not ok $CHECKS - $1"
	shift
	local line
	for line in "$@"; do
		printf '#   %s\n' "$line"
	done
}

# check DESC CMD...: pass when CMD succeeds; on failure show its output.
check() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then
		pass "$desc"
	else
		fail "$desc" "command: $*" "$(printf '%s' "$out" | head -c 2000)"
	fi
}

# ---- running dsc-convert ---------------------------------------------------

# run_dsc ARGS...: run dsc-convert with stdin from /dev/null (unless STDIN is
# set to a file), stdout to $T/stdout, stderr to $T/stderr; sets RC.
run_dsc() {
	"$DSC_CONVERT" "$@" <"${STDIN:-/dev/null}" >"$T/stdout" 2>"$T/stderr"
	RC=$?
	LAST_CMD="dsc-convert $*"
}

# run_pipe FILE ARGS...: the same, reading FILE through a real pipe
# (`cat FILE | dsc-convert ARGS...`, so -src - sees no seekable input).
run_pipe() {
	local f=$1
	shift
	cat "$f" | "$DSC_CONVERT" "$@" >"$T/stdout" 2>"$T/stderr"
	RC=${PIPESTATUS[1]}
	LAST_CMD="cat $f | dsc-convert $*"
}

# Show what the last run printed, for failure reports.
last_run() {
	echo "command: $LAST_CMD"
	echo "exit: $RC"
	echo "stderr: $(head -c 1500 "$T/stderr")"
}

# expect_ok DESC: the last run exited 0 with nothing on stderr.
expect_ok() {
	if [ "$RC" -eq 0 ] && [ ! -s "$T/stderr" ]; then
		pass "$1"
	else
		fail "$1" "$(last_run)"
	fi
}

# expect_usage DESC: exit 2 and something on stderr.
expect_usage() {
	if [ "$RC" -eq 2 ] && [ -s "$T/stderr" ]; then
		pass "$1"
	else
		fail "$1 (want exit 2 + a message)" "$(last_run)"
	fi
}

# expect_fail DESC NAME [ERE]: exit 1, stderr exactly one line of the form
# "dsc-convert: ...NAME...: ...", matching ERE (case-insensitive) if given.
expect_fail() {
	local desc=$1 name=$2 ere=${3:-} lines first why=
	lines=$(wc -l <"$T/stderr")
	first=$(head -n 1 "$T/stderr")
	if [ "$RC" -ne 1 ]; then
		why="exit $RC, want 1"
	elif [ "$lines" -ne 1 ] || [ "$(tail -c 1 "$T/stderr" | od -An -c | tr -d ' ')" != '\n' ]; then
		why="stderr has $lines lines, want exactly one"
	elif [[ "$first" != "dsc-convert: "* ]]; then
		why="message does not start with 'dsc-convert: '"
	elif [[ "$first" != *"$name"* ]]; then
		why="message does not name '$name'"
	elif [ -n "$ere" ] && ! grep -Eqi -- "$ere" "$T/stderr"; then
		why="message does not match /$ere/"
	fi
	if [ -z "$why" ]; then
		pass "$desc [$first]"
	else
		fail "$desc: $why" "$(last_run)"
	fi
}

# dir_is DESC DIR NAME...: DIR holds exactly the NAMEs (dot files included),
# e.g. no output and no leftover ".name.XXXXXX" temporary after a failure.
dir_is() {
	local desc=$1 dir=$2 have want
	shift 2
	have=$(ls -A "$dir" | sort | tr '\n' ' ')
	want=$(printf '%s\n' "$@" | sed '/^$/d' | sort | tr '\n' ' ')
	if [ "$have" = "$want" ]; then
		pass "$desc"
	else
		fail "$desc" "directory $dir holds: [$have]" "expected: [$want]"
	fi
}

# ---- file facts ----------------------------------------------------------

fsize() { stat -c %s "$1"; }
# Bytes of disk actually allocated to a file.
falloc() { echo $(($(stat -c %b "$1") * $(stat -c %B "$1"))); }
round512() { echo $((($1 + 511) / 512 * 512)); }

# padded SRC OUT: a copy of SRC with zeros up to the next 512 bytes (what a
# VMDK of SRC holds), made sparse-cheap with truncate.
padded() {
	cp --sparse=always "$1" "$2" && truncate -s "$(round512 "$(fsize "$1")")" "$2"
}

# same_raw A B: two raw files of the same size and bytes (usable with `check`).
same_raw() {
	[ "$(fsize "$1")" = "$(fsize "$2")" ] || { echo "sizes $(fsize "$1") and $(fsize "$2")"; return 1; }
	qemu-img compare -q -f raw -F raw "$1" "$2"
}

# read_like_qemu FMT IMG DESC [ARGS...]: dsc reads IMG from the file and
# from a pipe (ARGS added on the pipe, e.g. -src-fmt vhd) into what
# `qemu-img convert -f FMT -O raw` reads (scratch files in $T and $O).
read_like_qemu() {
	local fmt=$1 img=$2 desc=$3
	shift 3
	rm -f "$T/ref.raw" "$O/file.raw" "$O/pipe.raw"
	qemu-img convert -f "$fmt" -O raw "$img" "$T/ref.raw" || { fail "$desc: qemu-img convert"; return; }
	run_dsc -src "$img" -dst "$O/file.raw"
	expect_ok "$desc: read from the file"
	check "$desc: the file reads as qemu-img reads it" same_raw "$T/ref.raw" "$O/file.raw"
	run_pipe "$img" -src - "$@" -dst "$O/pipe.raw"
	expect_ok "$desc: read from a pipe"
	check "$desc: the pipe reads as qemu-img reads it" same_raw "$T/ref.raw" "$O/pipe.raw"
	rm -f "$T/ref.raw" "$O/file.raw" "$O/pipe.raw"
}

# size_is FILE N: exact size check usable with `check`.
size_is() {
	local s
	s=$(fsize "$1") || return 1
	[ "$s" -eq "$2" ] || { echo "$1: size $s, want $2"; return 1; }
}

# alloc_below FILE N: at most N bytes allocated (the file stayed sparse).
alloc_below() {
	local a
	a=$(falloc "$1") || return 1
	[ "$a" -le "$2" ] || { echo "$1: $a bytes allocated, want <= $2"; return 1; }
}

# alloc_atleast FILE N
alloc_atleast() {
	local a
	a=$(falloc "$1") || return 1
	[ "$a" -ge "$2" ] || { echo "$1: $a bytes allocated, want >= $2"; return 1; }
}

# same_prefix A B: B starts with all of A and the rest of B is zeros.
same_padded() {
	local a=$1 b=$2 sa sb
	sa=$(fsize "$a") sb=$(fsize "$b")
	[ "$sb" -ge "$sa" ] || { echo "$b is shorter ($sb) than $a ($sa)"; return 1; }
	cmp -n "$sa" "$a" "$b" || return 1
	if [ "$sb" -gt "$sa" ]; then
		cmp -n $((sb - sa)) <(tail -c $((sb - sa)) "$b") /dev/zero || return 1
	fi
}

# ---- generated images ------------------------------------------------------

gen_random() { head -c "$2" /dev/urandom >"$1"; }
gen_zero() { head -c "$2" /dev/zero >"$1"; }
# Text that deflate squeezes several-fold, unlike random data.
gen_text() { seq -f 'line %09g of a compressible disk image' 1 100000000 2>/dev/null | head -c "$2" >"$1"; }
gen_sparse() { rm -f "$1" && truncate -s "$2" "$1"; }
# put_random FILE OFFSET LEN: random bytes at OFFSET, keeping the size.
put_random() {
	head -c "$3" /dev/urandom | dd of="$1" bs=512 seek="$2" oflag=seek_bytes conv=notrunc status=none
}
# put_byte FILE OFFSET LEN BYTE(octal): LEN copies of one byte at OFFSET.
put_fill() {
	head -c "$3" /dev/zero | tr '\0' "\\$4" |
		dd of="$1" bs=512 seek="$2" oflag=seek_bytes conv=notrunc status=none
}

# ---- oracles ---------------------------------------------------------------

# qemu_same RAW VMDK: qemu-img compare (the image's extra pad must be zero).
qemu_same() { qemu-img compare -q -f raw -F vmdk "$1" "$2"; }

# vmdkinfo_ok VMDK CAPACITY: libvmdk opens it and reports that media size and
# the file's own name as the extent.
vmdkinfo_ok() {
	local out
	out=$(vmdkinfo "$1" 2>&1) || { echo "vmdkinfo exit $?: $out"; return 1; }
	grep -q "Media size:.*($2 bytes)" <<<"$out" || { echo "media size is not $2: $out"; return 1; }
	grep -Eq "Filename:[[:space:]]+$(basename "$1")\$" <<<"$out" || { echo "extent name is not $(basename "$1"): $out"; return 1; }
	grep -q "Disk type:.*Stream optimized" <<<"$out" || { echo "not stream optimized: $out"; return 1; }
}

# vmdk_lint VMDK CAPACITY [NAME]: walk the file the way a forward reader does and
# check every rule of the facts doc sections 1-4 for what dsc writes:
# header fields, descriptor, ascending grain markers that each inflate to
# one full non-zero grain, a GT after each non-empty 32 MiB range matching
# the grains, the GD, footer marker + footer, and EOS as the last sector.
# The extent line must name NAME, by default the file's basename; '*': any.
vmdk_lint() {
	python3 - "$1" "$2" "${3:-}" <<'EOF'
import os, re, struct, sys, zlib
path, want_cap = sys.argv[1], int(sys.argv[2])
name = sys.argv[3] or os.path.basename(path)
b = open(path, 'rb').read()
HDR = '<4sIIQQQQIQQQB4sH'
GR = 65536
def err(msg):
    print('%s: %s' % (path, msg)); sys.exit(1)
def hdr(off):
    return struct.unpack_from(HDR, b, off)
if len(b) % 512: err('size %d not a multiple of 512' % len(b))
(magic, ver, flags, cap, gsz, doff, dsz, ngte, rgd, gd, ovh, unclean, nl, comp) = hdr(0)
if magic != b'KDMV': err('magic %r' % magic)
if ver != 3: err('version %d' % ver)
if flags != 0x30001: err('flags 0x%x' % flags)
if cap * 512 != want_cap: err('capacity %d sectors, want %d bytes' % (cap, want_cap))
if gsz != 128 or ngte != 512: err('grain size %d, GTEs %d' % (gsz, ngte))
if doff != 1 or dsz < 1: err('descriptor at %d size %d' % (doff, dsz))
if rgd != 0 or gd != 0xFFFFFFFFFFFFFFFF: err('rgd %d gd 0x%x: want 0 and GD_AT_END' % (rgd, gd))
if unclean != 0 or nl != b'\n \r\n' or comp != 1: err('unclean/newline/compress %r %r %r' % (unclean, nl, comp))
if any(b[79:512]): err('header padding is not zero')
if ovh < doff + dsz or ovh * 512 > len(b): err('overHead %d' % ovh)
desc = b[512:512 + dsz * 512].rstrip(b'\0').decode()
lines = desc.split('\n')
if lines[0] != '# Disk DescriptorFile': err('descriptor starts %r' % lines[0])
if 'createType="streamOptimized"' not in lines: err('no createType="streamOptimized"')
if '# Extent description' not in lines: err('no "# Extent description" line')
ext = 'RW %d SPARSE "%s"' % (cap, name)
if name == '*':
    if not any(re.fullmatch(r'RW %d SPARSE "[^"/]+"' % cap, l) for l in lines): err('no extent line in %r' % desc)
elif ext not in lines: err('no extent line %r in %r' % (ext, desc))
if any(b[512 + len(desc.encode()):ovh * 512]): err('descriptor area not NUL-padded')
pos = ovh * 512
last_lba = -1
grains = {}            # grain index -> marker sector
gts = {}               # GT data sector -> its range
gd_sector = footer_at = None
eos = False
ranges = (cap + 128 * 512 - 1) // (128 * 512)
while pos + 512 <= len(b):
    val, size, typ = struct.unpack_from('<QII', b, pos)
    if size:
        lba = val
        if lba % 128 or lba >= cap: err('grain marker at byte %d: LBA %d' % (pos, lba))
        if lba <= last_lba: err('grain marker at byte %d: LBA %d after %d (not ascending)' % (pos, lba, last_lba))
        if size > 2 * GR: err('grain at byte %d: size %d' % (pos, size))
        d = zlib.decompressobj()
        out = d.decompress(b[pos + 12:pos + 12 + size])
        if not d.eof or d.unused_data or len(out) != GR: err('grain at byte %d: inflates to %d bytes, eof %s' % (pos, len(out), d.eof))
        if not any(out): err('grain at byte %d (LBA %d) is all zero: should be a hole' % (pos, lba))
        end = pos + 12 + size
        if any(b[end:(end + 511) // 512 * 512]): err('grain at byte %d: pad not zero' % pos)
        grains[lba // 128] = pos // 512
        last_lba = lba
        pos = (end + 511) // 512 * 512
        continue
    if any(b[pos + 16:pos + 512]): err('metadata marker at byte %d: tail not zero' % pos)
    if typ == 0:
        if val != 0: err('EOS with val %d' % val)
        eos = True
        if pos + 512 != len(b): err('EOS at byte %d is not the last sector (size %d)' % (pos, len(b)))
        break
    elif typ == 1:
        if val != 4: err('GT marker at byte %d: val %d' % (pos, val))
        gt = struct.unpack_from('<512I', b, pos + 512)
        r = last_lba // (128 * 512)
        for i, e in enumerate(gt):
            want = grains.get(r * 512 + i, 0)
            if e != want: err('GT at byte %d entry %d: %d, want %d' % (pos, i, e, want))
        gts[pos // 512 + 1] = r
    elif typ == 2:
        gd_sector = pos // 512 + 1
        n = val * 128
        if n < ranges: err('GD too small: %d sectors for %d ranges' % (val, ranges))
        gdv = struct.unpack_from('<%dI' % n, b, pos + 512)
        for r in range(ranges):
            want = [s for s, rr in gts.items() if rr == r]
            if gdv[r] != (want[0] if want else 0): err('GD entry %d: %d, want %s' % (r, gdv[r], want))
            if not want and any(g // 512 == r for g in grains): err('range %d has grains but no GT' % r)
        if any(gdv[ranges:]): err('GD padding not zero')
    elif typ == 3:
        if val != 1: err('footer marker val %d' % val)
        footer_at = pos
        f = hdr(pos + 512)
        h = hdr(0)
        if f[:9] != h[:9] or f[10:] != h[10:] or f[9] != gd_sector:
            err('footer %r differs from header %r other than gdOffset=%r' % (f, h, gd_sector))
        if b[pos + 512 + 79:pos + 1024] != b[79:512]: err('footer padding differs')
    else:
        err('metadata marker type %d at byte %d' % (typ, pos))
    pos += 512 + val * 512
if not eos: err('no EOS marker')
if gd_sector is None or footer_at is None: err('no GD or no footer')
if footer_at != len(b) - 1536: err('footer marker not at size-1536')
print('%s: ok, %d grains, %d tables, %d bytes' % (name, len(grains), len(gts), len(b)))
EOF
}

# vmdk_all_ok DESC SRC VMDK: every oracle on a raw->VMDK output.
vmdk_all_ok() {
	local desc=$1 src=$2 vmdk=$3 cap
	cap=$(round512 "$(fsize "$src")")
	check "$desc: qemu-img check" qemu-img check -q -f vmdk "$vmdk"
	check "$desc: qemu-img compare with the source" qemu_same "$src" "$vmdk"
	check "$desc: vmdkinfo reads it, media size $cap" vmdkinfo_ok "$vmdk" "$cap"
	check "$desc: stream layout" vmdk_lint "$vmdk" "$cap"
}

# vmdk_craft RAW OUT LAYOUT: write a streamOptimized VMDK of RAW (size a
# multiple of 512) the way other producers do, or with a planted defect.
# LAYOUT: vmware   - facts doc section 3 (what VMware and VirtualBox write)
#         openvmdk - real gdOffset, GD and GTs after the descriptor, no table
#                    markers, no footer, an EOS (open-vmdk's layout)
#         reverse  - vmware, but grains in descending LBA order
#         type4    - vmware plus a type 4 metadata marker after the first grain
#         biggrain - vmware, but the first grain inflates to two grains (its
#                    data, then a grain of zeros)
#         shortgrain - vmware, but the first grain inflates to half a grain
#         shortlast - vmware, but the last grain stops at the capacity
#                    instead of being padded to a full grain (allowed)
#         v1, v2   - vmware with header version 1 or 2 (readers accept 1-3)
#         crlf     - vmware with a CRLF descriptor, unquoted values
# Tests check every crafted file that should be valid with qemu-img first.
vmdk_craft() {
	python3 - "$1" "$2" "$3" <<'EOF'
import os, struct, sys, zlib
src, dst, layout = sys.argv[1:4]
GR, GRS = 65536, 128
raw = open(src, 'rb').read()
assert len(raw) % 512 == 0
cap = len(raw) // 512
ngr = (cap + GRS - 1) // GRS
nranges = (ngr + 511) // 512
gd_sectors = (nranges * 4 + 511) // 512
name = os.path.basename(dst)
desc = ('# Disk DescriptorFile\nversion=1\nencoding="UTF-8"\nCID=12345678\nparentCID=ffffffff\n'
        'createType="streamOptimized"\n\n# Extent description\nRW %d SPARSE "%s"\n\n'
        '# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = "4"\nddb.adapterType = "lsilogic"\n'
        % (cap, name)).encode()
if layout == 'crlf':
    desc = desc.replace(b'"streamOptimized"', b'streamOptimized').replace(b'\n', b'\r\n')
version = {'v1': 1, 'v2': 2}.get(layout, 3)
def header(gd, ovh, rgd=0):
    h = struct.pack('<4sIIQQQQIQQQB4sH', b'KDMV', version, 0x30001, cap, GRS, 1, 1, 512, rgd, gd, ovh, 0, b'\n \r\n', 1)
    return h + bytes(512 - len(h))
def marker(val, typ):
    return struct.pack('<QII', val, 0, typ) + bytes(496)
def pad(x):
    return x + bytes(-len(x) % 512)
grains = []
for g in range(ngr):
    chunk = raw[g * GR:(g + 1) * GR]
    if any(chunk):
        grains.append((g, chunk if layout == 'shortlast' else chunk.ljust(GR, b'\0')))
if layout == 'reverse':
    grains.reverse()
def grain_bytes(g, data, first):
    if layout == 'biggrain' and first:
        data = data + bytes(GR)
    if layout == 'shortgrain' and first:
        data = data[:GR // 2]
    z = zlib.compress(data, 6)
    return pad(struct.pack('<QI', g * GRS, len(z)) + z)
out = bytearray()
if layout == 'openvmdk':
    gd_at = 2
    gt_at = gd_at + gd_sectors
    ovh = gt_at + 4 * nranges
    ovh = (ovh + GRS - 1) // GRS * GRS
    gte = [0] * (nranges * 512)
    pos = ovh
    body = bytearray()
    for g, data in grains:
        gte[g] = pos
        gb = grain_bytes(g, data, False)
        body += gb
        pos += len(gb) // 512
    out += header(gd_at, ovh)
    out += pad(desc)
    out += pad(struct.pack('<%dI' % nranges, *[gt_at + 4 * r for r in range(nranges)]))
    out += struct.pack('<%dI' % len(gte), *gte)
    out += bytes(ovh * 512 - len(out))
    out += body
    out += marker(0, 0)
    open(dst, 'wb').write(out)
    sys.exit(0)
ovh = GRS
out += header(0xFFFFFFFFFFFFFFFF, ovh)
out += pad(desc)
out += bytes(ovh * 512 - len(out))
gte = [0] * (nranges * 512)
gtpos = [0] * nranges
def emit_gt(r):
    out.extend(marker(4, 1))
    gtpos[r] = len(out) // 512
    out.extend(struct.pack('<512I', *gte[r * 512:(r + 1) * 512]))
for i, (g, data) in enumerate(grains):
    gte[g] = len(out) // 512
    out += grain_bytes(g, data, i == 0)
    if layout == 'type4' and i == 0:
        out += marker(0, 4)
    if layout != 'reverse' and (i + 1 == len(grains) or grains[i + 1][0] // 512 != g // 512):
        emit_gt(g // 512)
if layout == 'reverse':
    for r in sorted({g // 512 for g, _ in grains}):
        emit_gt(r)
out += marker(gd_sectors, 2)
gd = len(out) // 512
out += pad(struct.pack('<%dI' % nranges, *gtpos))
out += marker(1, 3)
out += header(gd, ovh)
out += marker(0, 0)
open(dst, 'wb').write(out)
EOF
}

# patch FILE OFFSET HEXBYTES: overwrite bytes in place (e.g. "ffffffff").
patch() {
	python3 - "$1" "$2" "$3" <<'EOF'
import sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(int(sys.argv[2], 0))
    f.write(bytes.fromhex(sys.argv[3]))
EOF
}

# vmdk_marker N VMDK: byte offset of the N-th (0-based) grain marker.
vmdk_marker() {
	python3 - "$1" "$2" <<'EOF'
import struct, sys
n, b = int(sys.argv[1]), open(sys.argv[2], 'rb').read()
pos = struct.unpack_from('<Q', b, 64)[0] * 512
i = 0
while pos + 512 <= len(b):
    val, size, typ = struct.unpack_from('<QII', b, pos)
    if size:
        if i == n:
            print(pos); sys.exit(0)
        i += 1
        pos = (pos + 12 + size + 511) // 512 * 512
    else:
        if typ == 0: break
        pos += 512 + val * 512
sys.exit('no grain marker %d' % n)
EOF
}
