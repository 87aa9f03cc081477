#!/bin/bash
# errors.sh - truncated and damaged inputs, bad paths, and the atomic output
# rules: exit 1, exactly one line "dsc-convert: <file>: <what>", no output
# and no leftover temporary, an existing destination untouched on failure
# and replaced on success.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need qemu-img

mkdir "$T/in" "$T/out"
I=$T/in O=$T/out

# A 40 MiB disk with grains in both 32 MiB ranges -> good.vmdk.
gen_sparse "$I/src.raw" $((40 * MiB))
put_random "$I/src.raw" 0 $((3 * GRAIN))
put_random "$I/src.raw" $((20 * MiB)) 10000
put_random "$I/src.raw" $((36 * MiB)) $((2 * GRAIN))
run_dsc -src "$I/src.raw" -dst "$I/good.vmdk" -dst-fmt vmdk
expect_ok "make good.vmdk"
check "good.vmdk is valid for qemu-img" qemu_same "$I/src.raw" "$I/good.vmdk"
[ -s "$I/good.vmdk" ] || finish

# Where things are in good.vmdk: "kind byte-offset [size]" per marker.
python3 - "$I/good.vmdk" >"$T/layout" <<'PY'
import struct, sys
b = open(sys.argv[1], 'rb').read()
print('overhead', struct.unpack_from('<Q', b, 64)[0] * 512)
pos = struct.unpack_from('<Q', b, 64)[0] * 512
names = {0: 'eos', 1: 'gt', 2: 'gd', 3: 'footer'}
while pos + 512 <= len(b):
    val, size, typ = struct.unpack_from('<QII', b, pos)
    if size:
        print('grain', pos, size)
        pos = (pos + 12 + size + 511) // 512 * 512
    else:
        print(names.get(typ, 'meta%d' % typ), pos, val)
        if typ == 0: break
        pos += 512 + val * 512
print('size', len(b))
PY
at() { awk -v k="$1" -v n="${2:-1}" '$1 == k && ++i == n { print $2 }' "$T/layout"; }
gsize() { awk '$1 == "grain" { print $3; exit }' "$T/layout"; }
size=$(at size)
g0=$(at grain 1)

# ---- truncated inputs ----
# cut NAME BYTES: good.vmdk cut to BYTES must fail, name the file, say
# "truncated" (ERE), and leave nothing.
cut_case() {
	local name=$1 bytes=$2 ere=${3:-truncat}
	head -c "$bytes" "$I/good.vmdk" >"$I/cut-$name.vmdk"
	run_dsc -src "$I/cut-$name.vmdk" -dst "$O/cut-$name.raw"
	expect_fail "cut at $bytes ($name) -> raw" "cut-$name.vmdk" "$ere"
	dir_is "cut at $bytes ($name): no output, no temporary" "$O"
	run_dsc -src "$I/cut-$name.vmdk" -dst "$O/cut-$name.vmdk" -dst-fmt vmdk
	expect_fail "cut at $bytes ($name) -> vmdk" "cut-$name.vmdk" "$ere"
	dir_is "cut at $bytes ($name) -> vmdk: no output, no temporary" "$O"
}
cut_case in-header 100 'truncat|short|header'
cut_case after-header 512
cut_case in-descriptor 1000
cut_case at-overhead "$(at overhead)"
cut_case in-grain-marker $((g0 + 6))
cut_case in-grain-data $((g0 + 12 + $(gsize) / 2))
cut_case at-second-grain "$(at grain 2)"
cut_case before-gt "$(at gt 1)"
cut_case in-gt $(($(at gt 1) + 512 + 100))
cut_case before-second-gt "$(at gt 2)"
cut_case before-gd "$(at gd)"
cut_case before-footer-marker $((size - 1536))
cut_case before-footer $((size - 1024))
cut_case in-footer $((size - 700))
cut_case before-eos $((size - 512))
cut_case in-eos $((size - 100))

# Truncated input through a pipe, to a file and to a pipe.
for cut in in-grain-data before-footer before-eos; do
	cat "$I/cut-$cut.vmdk" | "$DSC_CONVERT" -src - -dst "$O/p.raw" 2>"$T/stderr"
	RC=${PIPESTATUS[1]} LAST_CMD="cat cut-$cut.vmdk | dsc-convert -src - -dst p.raw"
	expect_fail "cut $cut on stdin -> file" "" truncat
	dir_is "cut $cut on stdin: no output" "$O"
	"$DSC_CONVERT" -src "$I/cut-$cut.vmdk" -dst - 2>"$T/stderr" | cat >/dev/null
	RC=${PIPESTATUS[0]} LAST_CMD="dsc-convert -src cut-$cut.vmdk -dst - | cat"
	expect_fail "cut $cut -> stdout" "cut-$cut.vmdk" truncat
done
rm -f "$I"/cut-*

# ---- damaged inputs ----
# damage NAME OFFSET HEX [ERE [-src-fmt vmdk]]: good.vmdk with bytes replaced.
damage() {
	local name=$1 off=$2 hex=$3 ere=${4:-}
	shift 4
	cp "$I/good.vmdk" "$I/bad-$name.vmdk"
	patch "$I/bad-$name.vmdk" "$off" "$hex"
	run_dsc -src "$I/bad-$name.vmdk" -dst "$O/bad-$name.raw" "$@"
	expect_fail "damaged: $name" "bad-$name.vmdk" "$ere"
	dir_is "damaged: $name: no output, no temporary" "$O"
	rm -f "$I/bad-$name.vmdk"
}
damage magic 0 4b444d58 'magic|vmdk|header' -src-fmt vmdk
damage version-4 4 04000000 version
damage version-0 4 00000000 version
damage unknown-incompatible-flag 8 01001300 flag
damage compress-algorithm-2 77 0200 compress
damage grain-size-3 20 0300000000000000 grain
damage grain-size-2^40 20 0000000000010000 grain
damage capacity-huge 12 ffffffffffffffff capacity
damage capacity-zero 12 0000000000000000 ''
damage descriptor-size-huge 36 0000000000010000 descriptor
damage overhead-past-eof 64 00000000ffff0000 ''
damage grain-lba-unaligned "$g0" 0100000000000000 'lba|align|grain'
damage grain-lba-past-capacity "$g0" 0050010000000000 'lba|capacity|grain'
damage compressed-size-huge $((g0 + 8)) f0ffffff 'size|exceed'
damage compressed-size-one $((g0 + 8)) 01000000 ''
damage zlib-header $((g0 + 12)) 0000 ''
damage zlib-data $((g0 + 40)) ffffffffffffffffffffffffffffffff ''
damage zlib-adler32 $((g0 + 12 + $(gsize) - 4)) 00000000 ''

# Random damage: never a crash or a hang, and a failure is one clean line and
# no output. (Some flips go unnoticed by design, e.g. in the descriptor text
# or the tables a forward reader does not need, so success is allowed.)
seed=${DSC_FUZZ_SEED:-$RANDOM}
echo "# random damage: DSC_FUZZ_SEED=$seed"
python3 - "$I/good.vmdk" "$I/fuzz" "$seed" <<'PY'
import os, random, sys
src, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
b = open(src, 'rb').read()
rnd = random.Random(seed)
os.mkdir(out)
for i in range(120):
    m = bytearray(b)
    for _ in range(rnd.choice((1, 1, 2, 4, 16))):
        # Aim at the header, the first grain and the trailer, where it matters.
        zone = rnd.choice(((0, 512), (65536, 65536 + 600), (len(b) - 2048, len(b)), (0, len(b))))
        m[rnd.randrange(*zone)] = rnd.randrange(256)
    if rnd.random() < 0.2:
        m = m[:rnd.randrange(len(m))]
    open('%s/%03d.vmdk' % (out, i), 'wb').write(m)
PY
crashes=0 badmsg=0 leftovers=0 ok=0 failed=0
for f in "$I"/fuzz/*.vmdk; do
	timeout 20 "$DSC_CONVERT" -src "$f" -dst "$O/fuzz.raw" -src-fmt vmdk >/dev/null 2>"$T/stderr"
	RC=$?
	case $RC in
	0) ok=$((ok + 1)); rm -f "$O/fuzz.raw" ;;
	1)
		failed=$((failed + 1))
		if [ "$(wc -l <"$T/stderr")" -ne 1 ] || ! grep -q "^dsc-convert: .*$(basename "$f")" "$T/stderr"; then
			badmsg=$((badmsg + 1))
			echo "# $(basename "$f"): message: $(head -c 300 "$T/stderr")"
		fi
		;;
	*)
		crashes=$((crashes + 1))
		echo "# $(basename "$f"): exit $RC: $(head -c 300 "$T/stderr")"
		cp "$f" "${TMPDIR:-/tmp}/dsc-fuzz-crash-$seed-$(basename "$f")"
		;;
	esac
	if [ -n "$(ls -A "$O")" ]; then
		leftovers=$((leftovers + 1))
		echo "# $(basename "$f"): left $(ls -A "$O")"
		rm -f "$O"/* "$O"/.[!.]*
	fi
done
echo "# random damage: $ok converted, $failed refused"
check "random damage: no crash or hang ($crashes; inputs kept in ${TMPDIR:-/tmp}/dsc-fuzz-crash-*)" test "$crashes" -eq 0
check "random damage: every refusal is one line naming the file ($badmsg bad)" test "$badmsg" -eq 0
check "random damage: nothing left behind ($leftovers)" test "$leftovers" -eq 0
rm -rf "$I/fuzz"

# A damaged magic without -src-fmt is simply not a VMDK: copied as raw.
cp "$I/good.vmdk" "$I/notvmdk.img"
patch "$I/notvmdk.img" 0 4b444d58
run_dsc -src "$I/notvmdk.img" -dst "$O/notvmdk.raw"
expect_ok "damaged magic, format detected: raw"
check "damaged magic, detected raw: a byte copy" cmp "$I/notvmdk.img" "$O/notvmdk.raw"
rm -f "$O"/* "$I/notvmdk.img"

# A grain that inflates to more than one grain.
vmdk_craft "$I/src.raw" "$I/biggrain.vmdk" biggrain
run_dsc -src "$I/biggrain.vmdk" -dst "$O/biggrain.raw"
expect_fail "a grain inflating to two grains" biggrain.vmdk ''
dir_is "biggrain: no output" "$O"
vmdk_craft "$I/src.raw" "$I/shortgrain.vmdk" shortgrain
run_dsc -src "$I/shortgrain.vmdk" -dst "$O/shortgrain.raw"
expect_fail "a grain (not the last) inflating to half a grain" shortgrain.vmdk ''
dir_is "shortgrain: no output" "$O"

# ---- paths ----
run_dsc -src "$I/missing.vmdk" -dst "$O/x.raw"
expect_fail "missing source" missing.vmdk 'no such|not found|exist'
dir_is "missing source: no output" "$O"
run_dsc -src "$I" -dst "$O/x.raw"
expect_fail "source is a directory" "$I" ''
dir_is "directory source: no output" "$O"
run_dsc -src "$I/src.raw" -dst "$T/nodir/x.raw"
expect_fail "destination directory missing" "nodir/x.raw" ''
check "destination directory missing: not created" test ! -e "$T/nodir"
long=$(printf 'n%.0s' $(seq 250)).raw
run_dsc -src "$I/src.raw" -dst "$O/$long"
expect_ok "a 254-byte file name (NAME_MAX is 255)"
check "a 254-byte file name: written" cmp "$I/src.raw" "$O/$long"
rm -f "$O/$long"
mkdir "$O/sub"
run_dsc -src "$I/src.raw" -dst "$O/sub"
expect_fail "destination is a directory" "$O/sub" ''
dir_is "destination is a directory: left alone" "$O" sub
dir_is "destination is a directory: nothing inside it" "$O/sub"
rmdir "$O/sub"
if [ "$(id -u)" -ne 0 ]; then
	mkdir "$O/ro" && chmod 555 "$O/ro"
	run_dsc -src "$I/src.raw" -dst "$O/ro/x.raw"
	expect_fail "read-only destination directory" "x.raw" 'permission|denied'
	chmod 755 "$O/ro" && rmdir "$O/ro"
fi

# ---- an existing destination: untouched on failure, replaced on success ----
head -c 1000 "$I/good.vmdk" >"$I/short.vmdk"
gen_random "$O/keep.raw" 300000
cp "$O/keep.raw" "$T/keep.orig"
touch -d '2001-01-01' "$O/keep.raw"
run_dsc -src "$I/short.vmdk" -dst "$O/keep.raw"
expect_fail "failing onto an existing destination" short.vmdk truncat
check "failed run: existing destination has the same bytes" cmp "$T/keep.orig" "$O/keep.raw"
check "failed run: existing destination not rewritten (mtime)" \
	test "$(stat -c %Y "$O/keep.raw")" = "$(date -d 2001-01-01 +%s)"
dir_is "failed run: only the old destination, no temporary" "$O" keep.raw
run_dsc -src "$I/short.vmdk" -dst "$O/keep.raw" -prealloc
expect_fail "failing -prealloc onto an existing destination" short.vmdk truncat
check "failed -prealloc run: destination untouched" cmp "$T/keep.orig" "$O/keep.raw"
dir_is "failed -prealloc run: no temporary" "$O" keep.raw
run_dsc -src "$I/short.vmdk" -dst "$O/keep.raw" -dst-fmt vmdk
expect_fail "failing vmdk onto an existing destination" short.vmdk truncat
check "failed vmdk run: destination untouched" cmp "$T/keep.orig" "$O/keep.raw"
dir_is "failed vmdk run: no temporary" "$O" keep.raw

ino=$(stat -c %i "$O/keep.raw")
gen_random "$I/new.raw" 1000
run_dsc -src "$I/new.raw" -dst "$O/keep.raw"
expect_ok "success onto an existing, larger destination"
check "success: destination replaced by exactly the new image" cmp "$I/new.raw" "$O/keep.raw"
check "success: a new file renamed into place (inode changed)" test "$(stat -c %i "$O/keep.raw")" != "$ino"
dir_is "success: no temporary left" "$O" keep.raw
run_dsc -src "$I/src.raw" -dst "$O/keep.raw" -dst-fmt vmdk
expect_ok "success: replace a raw destination with a VMDK"
check "replaced by a VMDK: qemu-img compare" qemu_same "$I/src.raw" "$O/keep.raw"
rm -f "$O"/*

# Converting a file onto itself: the source is read whole before the rename.
gen_random "$O/self.raw" 300000
cp "$O/self.raw" "$T/self.orig"
run_dsc -src "$O/self.raw" -dst "$O/self.raw"
expect_ok "a raw file converted onto itself"
check "onto itself: same bytes" cmp "$T/self.orig" "$O/self.raw"
dir_is "onto itself: no temporary" "$O" self.raw
rm -f "$O"/*

# An empty source: raw gives an empty file; a VMDK cannot hold 0 sectors.
: >"$I/empty.raw"
run_dsc -src "$I/empty.raw" -dst "$O/empty.vmdk" -dst-fmt vmdk
expect_fail "empty source -> vmdk" empty '' 
dir_is "empty source -> vmdk: no output" "$O"
run_dsc -src "$I/empty.raw" -dst "$O/empty.raw"
expect_ok "empty source -> raw"
check "empty source -> raw: an empty file" size_is "$O/empty.raw" 0
rm -f "$O"/*

# Stopped by a signal in the middle: the temporary is removed. The source is
# a FIFO fed half of good.vmdk by a process that then waits.
sig_case() {
	local sig=$1 pid feeder st i
	rm -f "$T/fifo" && mkfifo "$T/fifo"
	"$DSC_CONVERT" -src "$T/fifo" -dst "$O/sig.raw" 2>"$T/stderr" &
	pid=$!
	python3 -c 'import sys, time
data = open(sys.argv[1], "rb").read()
sys.stdout.buffer.write(data[:len(data) // 2]); sys.stdout.flush(); time.sleep(60)' "$I/good.vmdk" >"$T/fifo" &
	feeder=$!
	for i in $(seq 100); do
		ls -A "$O" | grep -q '^\.sig\.raw\.' && break
		sleep 0.1
	done
	dir_has_temp() { ls -A "$O" | grep -q '^\.sig\.raw\.'; }
	check "SIG$sig: a temporary .sig.raw.XXXXXX exists mid-conversion" dir_has_temp
	kill -"$sig" "$pid"
	{ wait "$pid"; } 2>/dev/null
	st=$?
	kill "$feeder" 2>/dev/null
	wait "$feeder" 2>/dev/null
	check "SIG$sig: dsc-convert ends non-zero (status $st)" test "$st" -ne 0
	dir_is "SIG$sig: temporary removed, no output" "$O"
}
sig_case TERM
sig_case INT
sig_case HUP

# Writing to stdout never leaves files in the working directory.
(cd "$O" && "$DSC_CONVERT" -src "$I/short.vmdk" -dst - >/dev/null 2>"$T/stderr")
RC=$? LAST_CMD="(cd out) dsc-convert -src short.vmdk -dst -"
expect_fail "truncated -> stdout" short.vmdk truncat
dir_is "truncated -> stdout: nothing in the working directory" "$O"

finish
