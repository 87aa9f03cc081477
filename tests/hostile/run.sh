#!/bin/bash
# run.sh - hostile VMDK, qcow2, VHD, VHDX and VDI inputs against the library and dsc-convert.
#
# gen.py writes each input (a small valid stream or image with one thing
# wrong, NAME.vmdk or NAME.qcow2), gen_vhd.py the VHD ones (NAME.vhd),
# gen_vhdx.py the VHDX ones (NAME.vhdx), gen_vdi.py the VDI ones (NAME.vdi),
# gen_vmdk_sparse.py the monolithicSparse VMDK ones (ms-*.vmdk);
# `expected` names the outcome of each.
# For every case:
#  - the probe program reads it with the format's reader (1 thread and 2;
#    a qcow2, VHD or VHDX also through a pipe, the forward-only path) and must meet the
#    expected error name (FORMAT, TRUNCATED, LIMIT...);
#  - dsc-convert -src-fmt FORMAT converts it to a raw file, a VMDK file and a
#    pipe (a qcow2, VHD or VHDX also from a pipe to a raw file), each within `timeout 20`
#    and `ulimit -v` 512 MiB: exit 1 with one line naming the input and
#    matching the case's phrase, and no file left behind; or exit 0 where
#    the case is valid (a valid qcow2's, VHD's or VHDX's raw output must
#    also be what qemu-img reads in it).
# Then a seeded run of random bit flips on both VMDK base layouts and the qcow2 base: each must end
# in exit 0 or a clean exit 1, never a crash, a hang or a leftover file
# (HOSTILE_FLIPS runs per layout, default 100; HOSTILE_SEED, default fixed).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/cli/lib.sh"
dsc_init
H=$top_srcdir/tests/hostile
PROBE=${DSC_PROBE:-$top_builddir/tests/hostile/probe}
[ -x "$PROBE" ] || { echo "FAIL: $PROBE not built (make check builds it)"; exit 1; }
TODO=0

mkdir "$T/in" "$T/out"
python3 "$H/gen.py" -o "$T/in" || { echo "FAIL: gen.py"; exit 1; }
python3 "$H/gen_vhd.py" -o "$T/in" || { echo "FAIL: gen_vhd.py"; exit 1; }
python3 "$H/gen_vhdx.py" -o "$T/in" || { echo "FAIL: gen_vhdx.py"; exit 1; }
python3 "$H/gen_vdi.py" -o "$T/in" || { echo "FAIL: gen_vdi.py"; exit 1; }
python3 "$H/gen_vmdk_sparse.py" -o "$T/in" || { echo "FAIL: gen_vmdk_sparse.py"; exit 1; }

# Bound every run's memory, unless the binary cannot start under the bound
# (ASan reserves terabytes of address space for its shadow memory).
MEM_KB=524288
if (ulimit -v $MEM_KB && "$DSC_CONVERT" -version) >/dev/null 2>&1; then
	LIMIT="ulimit -v $MEM_KB"
else
	LIMIT=:
	echo "# dsc-convert does not start under ulimit -v $MEM_KB (sanitizer build?): time limit only"
fi

# dsc ARGS...: run dsc-convert bounded; sets RC, LAST_CMD; stderr in $T/stderr.
dsc() {
	(eval "$LIMIT" && exec timeout -k 5 20 "$DSC_CONVERT" -q "$@") </dev/null >"$T/stdout" 2>"$T/stderr"
	RC=$?
	LAST_CMD="dsc-convert -q $*"
}
# dsc_stdin FILE ARGS...: the same reading FILE through a pipe (-src -).
dsc_stdin() {
	local f=$1
	shift
	cat "$f" | (eval "$LIMIT" && exec timeout -k 5 20 "$DSC_CONVERT" -q -src - "$@") >"$T/stdout" 2>"$T/stderr"
	RC=${PIPESTATUS[1]}
	LAST_CMD="cat $f | dsc-convert -q -src - $*"
}
# dsc_pipe ARGS...: the same with -dst - into a pipe.
dsc_pipe() {
	(eval "$LIMIT" && exec timeout -k 5 20 "$DSC_CONVERT" -q "$@" -dst -) </dev/null 2>"$T/stderr" | cat >/dev/null
	RC=${PIPESTATUS[0]}
	LAST_CMD="dsc-convert -q $* -dst - | cat"
}

# why_fail NAME ERE [OUT]: "" when the last run failed cleanly (exit 1,
# exactly one line "dsc-convert: ...NAME...: ..." matching ERE), else the
# reason. With OUT, a message naming the output instead is fine too (a
# problem met on the output side, e.g. a file too large for the disk).
why_fail() {
	local name=$1 ere=$2 out=${3:-} first
	first=$(head -n 1 "$T/stderr")
	if [ "$RC" -ne 1 ]; then
		echo "exit $RC, want 1"
	elif [ "$(wc -l <"$T/stderr")" -ne 1 ] || [ -n "$(tail -c 1 "$T/stderr")" ]; then
		echo "stderr is not exactly one line"
	elif [[ "$first" != "dsc-convert: "*"$name"* ]] &&
		{ [ -z "$out" ] || [[ "$first" != "dsc-convert: $out"* ]]; }; then
		echo "message does not start with 'dsc-convert: ' and name $name${out:+ or $out}"
	elif [ -n "$ere" ] && ! grep -Eqi -- "$ere" "$T/stderr"; then
		echo "message does not match /$ere/"
	fi
}
# why_outcome NAME WANT OUT: check the last run against ok|any|ERE.
why_outcome() {
	local name=$1 want=$2 out=$3
	case $want in
	ok) [ "$RC" -eq 0 ] && [ ! -s "$T/stderr" ] || echo "exit $RC, want 0" ;;
	any) [ "$RC" -eq 0 ] && [ ! -s "$T/stderr" ] || why_fail "$name" "" "$out" ;;
	*) why_fail "$name" "$want" "$out" ;;
	esac
}
out_empty() {
	[ -z "$(ls -A "$T/out")" ] || echo "left behind: $(ls -A "$T/out" | tr '\n' ' ')"
}

# Read the table: [bug] CASE CODE DSC-CONVERT...
pats=() codes=() wants=() bugs=()
# code_is NAME: NAME is the case's error name, or one of its names
# ("FORMAT|TRUNCATED": a file and a pipe see a block past the end apart).
code_is() { [[ "|$code|" == *"|$1|"* ]]; }
while read -r a b c d; do
	case $a in '' | '#'*) continue ;; esac
	if [ "$a" = bug ]; then
		pats+=("$b") codes+=("$c") wants+=("$d") bugs+=(1)
	else
		pats+=("$a") codes+=("$b") wants+=("$c${d:+ $d}") bugs+=(0)
	fi
done <"$H/expected"

# Every literal name in the table must be a generated case.
for p in "${pats[@]}"; do
	[[ "$p" == *'*'* ]] && continue
	[ -f "$T/in/$p.vmdk" ] || [ -f "$T/in/$p.qcow2" ] || [ -f "$T/in/$p.vhd" ] || [ -f "$T/in/$p.vhdx" ] ||
		[ -f "$T/in/$p.vdi" ] ||
		fail "expected: '$p' is not a case the generators make"
done

used=()
for f in "$T"/in/*.vmdk "$T"/in/*.qcow2 "$T"/in/*.vhd "$T"/in/*.vhdx "$T"/in/*.vdi; do
	fmt=${f##*.}
	name=$(basename "$f" ".$fmt")
	i=-1
	for k in "${!pats[@]}"; do
		# shellcheck disable=SC2053 # the table's names are globs
		if [[ "$name" == ${pats[$k]} ]]; then i=$k; break; fi
	done
	if [ "$i" -lt 0 ]; then
		fail "$name: no line in tests/hostile/expected"
		continue
	fi
	code=${codes[$i]} want=${wants[$i]} bug=${bugs[$i]} nopipe=0
	if [[ "$want" == '[nopipe] '* ]]; then
		nopipe=1 want=${want#'[nopipe] '}
	fi
	whys=()
	for th in 1 2; do
		got=$(timeout -k 5 20 "$PROBE" "$f" "$th" "$fmt" 2>&1)
		prc=$?
		[ $prc -eq 0 ] && code_is "${got%% *}" ||
			whys+=("reader ($th threads): exit $prc, got [$got], want $code")
	done
	# (A VHDX log is replayed from a file only: vhdx.sh checks the pipe.)
	if [ "$fmt" != vmdk ] && [[ $name != vx-log-* ]]; then
		got=$(cat "$f" | timeout -k 5 20 "$PROBE" - 2 "$fmt" 2>&1)
		prc=$?
		[ $prc -eq 0 ] && code_is "${got%% *}" ||
			whys+=("reader (from a pipe): exit $prc, got [$got], want $code")
	fi
	dsts="raw vmdk"
	# Through a pipe as well where it changes things: truncation, order.
	case $name in base* | cut-* | qemu-cut-* | lba-*) dsts="raw vmdk pipe" ;; esac
	[ "$nopipe" = 1 ] && dsts="raw vmdk"
	[ "$fmt" != vmdk ] && [[ $name != vx-log-* ]] && dsts="$dsts stdin"
	for dst in $dsts; do
		src=$name.$fmt
		case $dst in
		raw) out=$T/out/$name.raw; dsc -src-fmt "$fmt" -src "$f" -dst "$out" ;;
		vmdk) out=$T/out/$name.out.vmdk; dsc -src-fmt "$fmt" -src "$f" -dst "$out" -dst-fmt vmdk ;;
		pipe) out=stdout; dsc_pipe -src-fmt "$fmt" -src "$f" ;;
		stdin) out=$T/out/$name.stdin.raw src=stdin; dsc_stdin "$f" -src-fmt "$fmt" -dst "$out" ;;
		esac
		why=$(why_outcome "$src" "$want" "$out")
		[ -n "$why" ] && whys+=("-> $dst: $why" "$(last_run)")
		if [ "$RC" -ne 0 ]; then
			why=$(out_empty)
			[ -n "$why" ] && whys+=("-> $dst: $why")
		fi
		[ "$dst" = raw ] && [ "$RC" -eq 0 ] && mv "$T/out/$name.raw" "$T/$name.raw"
		[ "$dst" = vmdk ] && [ "$RC" -eq 0 ] && mv "$out" "$T/$name.out.vmdk"
		if [ "$dst" = stdin ] && [ "$RC" -eq 0 ] && [ -f "$T/$name.raw" ] &&
			! cmp -s "$out" "$T/$name.raw"; then
			whys+=("the raw outputs from the file and from a pipe differ")
		fi
	done
	# A valid qcow2 or VHD: the raw output holds what qemu-img reads in it.
	# (A VDI only with qemu's 1 MiB blocks: qemu reads no other size.)
	if { [ "$fmt" = qcow2 ] || [ "$fmt" = vhd ] || { [ "$fmt" = vdi ] && [[ $name != i-small-* ]]; }; } &&
		[ "$want" = ok ] && [ -f "$T/$name.raw" ] &&
		command -v qemu-img >/dev/null &&
		! qemu-img compare -q -f raw -F "${fmt/vhd/vpc}" "$T/$name.raw" "$f" 2>/dev/null; then
		whys+=("the raw output differs from qemu-img's reading (qemu-img compare)")
	fi
	# A valid VHDX that qemu opens (not 4096-byte sectors, an empty BAT or
	# a broken first region table): qemu-img reads the same disk; one with a
	# log, once qemu-img check -r all has replayed a copy.
	if [ "$fmt" = vhdx ] && [ "$want" = ok ] && [ -f "$T/$name.raw" ] &&
		[[ " vx-4k vx-empty vx-rt1-crc " != *" $name "* ]] && command -v qemu-img >/dev/null; then
		cp "$f" "$T/qemu.vhdx"
		[[ $name != vx-log-* ]] || qemu-img check -q -r all "$T/qemu.vhdx" >/dev/null 2>&1
		qemu-img compare -q -f raw -F vhdx "$T/$name.raw" "$T/qemu.vhdx" 2>/dev/null ||
			whys+=("the raw output differs from qemu-img's reading (qemu-img compare)")
		rm -f "$T/qemu.vhdx"
	fi
	# A valid case: the raw and VMDK outputs hold the same disk.
	if [ "$want" = ok ] && [ -f "$T/$name.raw" ] && [ -f "$T/$name.out.vmdk" ] &&
		command -v qemu-img >/dev/null &&
		! qemu-img compare -q -f raw -F vmdk "$T/$name.raw" "$T/$name.out.vmdk" 2>/dev/null; then
		whys+=("raw and VMDK outputs differ (qemu-img compare)")
	fi
	rm -f "$T/$name.raw" "$T/$name.out.vmdk" "$T"/out/* "$T"/out/.[!.]*
	msg=$(head -c 120 "$T/stderr")
	if [ "$bug" = 1 ]; then
		if [ ${#whys[@]} -gt 0 ]; then
			CHECKS=$((CHECKS + 1)) TODO=$((TODO + 1))
			echo "ok $CHECKS - $name # TODO known library bug: ${whys[0]}"
		else
			fail "$name: the known bug is fixed: drop 'bug' from its line in tests/hostile/expected"
		fi
	elif [ ${#whys[@]} -eq 0 ]; then
		pass "$name: $code${msg:+ [$msg]}"
	else
		fail "$name (want $code, $want)" "${whys[@]}"
	fi
	rm -f "$f"
done

# ---- bit flips ---------------------------------------------------------
FLIPS=${HOSTILE_FLIPS:-100}
SEED=${HOSTILE_SEED:-20261125}
python3 - "$T/flips" "$FLIPS" "$SEED" "$H/gen.py" <<'PY' || fail "bit flip generation"
import importlib.util, os, random, sys
out, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
spec = importlib.util.spec_from_file_location('gen', sys.argv[4])
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)
os.makedirs(out)
rnd = random.Random(seed)
q = gen.Qcow2()
qb = q.bytes()
tables = [q.l1_off + k for k in range(16)] + [q.l2_0 + k for k in range(48)] + \
    [q.l2_1 + k for k in range(16)]
for i in range(n):
    x = bytearray(qb)
    for _ in range(rnd.choice((1, 1, 2, 3, 8))):
        # A third in the header, a third in the L1 and L2 tables, the rest anywhere.
        r = rnd.random()
        pos = rnd.randrange(128) if r < 1 / 3 else rnd.choice(tables) if r < 2 / 3 else \
            rnd.randrange(len(x))
        x[pos] ^= 1 << rnd.randrange(8)
    open(os.path.join(out, 'flip-qcow2-%03d.qcow2' % i), 'wb').write(x)
for layout in ('vmware', 'qemu'):
    im = gen.base(layout)
    b = im.end()
    marks = [o for _, o in im.marks]
    for i in range(n):
        x = bytearray(b)
        for _ in range(rnd.choice((1, 1, 2, 3, 8))):
            # A third of the flips in the header + descriptor, a third in
            # marker sectors, the rest anywhere.
            r = rnd.random()
            if r < 1 / 3:
                pos = rnd.randrange(1024)
            elif r < 2 / 3:
                pos = rnd.choice(marks) + rnd.randrange(16)
            else:
                pos = rnd.randrange(len(x))
            x[pos] ^= 1 << rnd.randrange(8)
        open(os.path.join(out, 'flip-%s-%03d.vmdk' % (layout, i)), 'wb').write(x)
# VHDX flips last, from a generator of their own: the cases above stay the same.
spec = importlib.util.spec_from_file_location('gen_vhdx', sys.argv[4].replace('gen.py', 'gen_vhdx.py'))
gv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gv)
rnd = random.Random(seed + 1)
for i in range(n):
    gv.write_pieces(os.path.join(out, 'flip-vhdx-%03d.vhdx' % i), gv.flipped(rnd))
PY
nflip=0 nok=0 nbad=0
for f in "$T"/flips/*.vmdk "$T"/flips/*.qcow2 "$T"/flips/*.vhdx; do
	name=$(basename "$f") who=$(basename "$f")
	fmt=${f##*.}
	nflip=$((nflip + 1))
	if [ $((nflip % 4)) -eq 0 ]; then
		dsc -src-fmt "$fmt" -src "$f" -dst "$T/out/x.vmdk" -dst-fmt vmdk
	elif [ "$fmt" != vmdk ] && [ $((nflip % 4)) -eq 1 ]; then
		dsc_stdin "$f" -src-fmt "$fmt" -dst "$T/out/x.raw"
		who=stdin
	else
		dsc -src-fmt "$fmt" -src "$f" -dst "$T/out/x.raw"
	fi
	if [ "$RC" -eq 0 ] && [ ! -s "$T/stderr" ]; then
		nok=$((nok + 1))
		rm -f "$T"/out/*
		continue
	fi
	why=$(why_fail "$who" "")
	[ -z "$why" ] && why=$(out_empty)
	if [ -n "$why" ]; then
		nbad=$((nbad + 1))
		fail "bit flips: $name: $why (kept as $T/$name for a repro)" "$(last_run)"
		rm -rf "${T:?}"/out/* "$T"/out/.[!.]*
	fi
done
[ "$nbad" -eq 0 ] && pass "bit flips (seed $SEED): $nflip runs, $nok converted, $((nflip - nok)) clean errors"

[ "$TODO" -gt 0 ] && echo "# $TODO case(s) marked as known library bugs (TODO)"
finish
