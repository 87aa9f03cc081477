#!/bin/bash
# run.sh - build the libFuzzer harnesses and run each for a bounded time
# (`make fuzz`, which passes the environment below).
#
#   FUZZ_SECONDS      seconds per harness (default 60)
#   FUZZ_CC           a clang with libFuzzer (default clang; Debian: clang,
#                     libclang-rt-14-dev)
#   FUZZ_LIB_SOURCES  libdsc's sources (from Makefile.am; headers are dropped)
#   FUZZ_CFLAGS, FUZZ_LIBS  dependency flags found by configure
#   top_srcdir, top_builddir, DSC_CONVERT
#   FUZZ_TARGETS      harness names (arguments override)
#
# The library is compiled once with -fsanitize=fuzzer,address,undefined into
# $top_builddir/tests/fuzz/obj and linked into each harness. Seed corpora are
# regenerated every run (tests/fuzz/seeds.sh) and kept apart from the working
# corpora the fuzzers grow (tests/fuzz/corpus/NAME in the build tree, kept
# between runs so later runs start further on). Before fuzzing, each harness
# replays the regression inputs of tests/hostile (the hostile cases' inputs,
# as generated). A crash, a leak, a sanitizer report or a hang (-timeout)
# stops the run: the input is saved as tests/fuzz/artifacts/NAME-crash-*
# and the exit status is 1. Turn it into a case under tests/hostile (gen.py's
# REGRESSIONS table plus a line in tests/hostile/expected).
set -u
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$PWD}"
: "${FUZZ_SECONDS:=60}"
: "${FUZZ_CC:=clang}"
: "${FUZZ_CFLAGS:=}"
: "${FUZZ_LIBS:=-lz}"
: "${FUZZ_LIB_SOURCES:=}"
: "${DSC_CONVERT:=$top_builddir/dsc-convert}"
: "${FUZZ_MAX_LEN:=131072}"
JOBS=${FUZZ_JOBS:-2}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || read -r -a targets <<<"${FUZZ_TARGETS:-fuzz_vmdk_read fuzz_qcow2_read fuzz_vhd_read fuzz_vhdx_read fuzz_vdi_read fuzz_vmdk_sparse_read fuzz_descriptor fuzz_convert fuzz_multipart fuzz_params fuzz_netpolicy fuzz_import_body fuzz_ova_read}"

F=$top_builddir/tests/fuzz
say() { printf 'fuzz: %s\n' "$*"; }
die() { printf 'fuzz: %s\n' "$*" >&2; exit 1; }

command -v "$FUZZ_CC" >/dev/null || die "$FUZZ_CC not found (Debian: apt-get install clang libclang-rt-14-dev)"
mkdir -p "$F/obj" "$F/bin" "$F/corpus" "$F/artifacts"
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' >"$F/probe.c"
if ! "$FUZZ_CC" -fsanitize=fuzzer,address,undefined "$F/probe.c" -o "$F/probe" 2>"$F/probe.log"; then
	cat "$F/probe.log" >&2
	die "$FUZZ_CC cannot build libFuzzer programs (Debian: apt-get install libclang-rt-14-dev)"
fi
rm -f "$F/probe.c" "$F/probe" "$F/probe.log"

# ---- build ---------------------------------------------------------------
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
CFLAGS_ALL="-g -O1 -fno-omit-frame-pointer $SAN -DDSC_FUZZING -I$top_builddir \
-I$top_srcdir/include -I$top_srcdir/src/lib $FUZZ_CFLAGS"
srcs=()
for s in ${FUZZ_LIB_SOURCES:-$(cd "$top_srcdir" && ls src/lib/*.c)}; do
	case $s in *.c) srcs+=("$s") ;; esac
done
[ ${#srcs[@]} -gt 0 ] || die "no library sources"
say "compiling libdsc (${#srcs[@]} files) with $FUZZ_CC $SAN"
# One object per source; recompiled only when a source or any header is newer.
newest_h=$(ls -t "$top_srcdir"/include/*.h "$top_srcdir"/src/lib/*.h "$top_builddir/config.h" | head -1)
printf '%s\n' "${srcs[@]}" | xargs -P "$JOBS" -I{} sh -c '
	s=$1; o=$2/obj/$(echo "$s" | tr / _).o
	if [ ! -e "$o" ] || [ "$3/$s" -nt "$o" ] || [ "$4" -nt "$o" ]; then
		$5 $6 -c "$3/$s" -o "$o" || exit 255
	fi' _ {} "$F" "$top_srcdir" "$newest_h" "$FUZZ_CC" "$CFLAGS_ALL" || die "compiling libdsc failed"
objs=()
for s in "${srcs[@]}"; do objs+=("$F/obj/$(echo "$s" | tr / _).o"); done
# Harnesses of dsc-server's parsers compile the server file they test
# (server.h needs libfcgi's fcgiapp.h, which they never call).
server_src() {
	case $1 in
	fuzz_multipart) echo src/server/multipart.c ;;
	fuzz_params) echo src/server/params.c ;;
	fuzz_import_body) echo src/server/import_body.c ;;
	esac
}
have_fcgi=yes
printf '#include <fcgiapp.h>\n' | $FUZZ_CC -E -x c - >/dev/null 2>&1 || have_fcgi=no
built=()
for t in "${targets[@]}"; do
	[ -f "$top_srcdir/tests/fuzz/$t.c" ] || die "no harness tests/fuzz/$t.c"
	extra=()
	if [ -n "$(server_src "$t")" ]; then
		if [ $have_fcgi = no ]; then
			say "$t: skipped (no fcgiapp.h: Debian libfcgi-dev)"
			continue
		fi
		extra=(-I"$top_srcdir/src/server" "$top_srcdir/$(server_src "$t")")
	fi
	say "linking $t"
	# shellcheck disable=SC2086 # flag lists are word lists
	$FUZZ_CC $CFLAGS_ALL "${extra[@]}" "$top_srcdir/tests/fuzz/$t.c" "${objs[@]}" -o "$F/bin/$t" \
		$FUZZ_LIBS -lpthread || die "building $t failed"
	built+=("$t")
done
targets=("${built[@]}")
[ "$FUZZ_SECONDS" = 0 ] && { say "built (FUZZ_SECONDS=0: not running)"; exit 0; }

# ---- seeds and regression inputs ------------------------------------------
rm -rf "$F/seeds"
DSC_CONVERT=$DSC_CONVERT bash "$top_srcdir/tests/fuzz/seeds.sh" "$F/seeds" || die "seed generation failed"
rm -rf "$F/regress"
mkdir -p "$F/regress"
if [ -f "$top_srcdir/tests/hostile/gen.py" ]; then
	python3 "$top_srcdir/tests/hostile/gen.py" -o "$F/regress" --small >/dev/null ||
		die "tests/hostile/gen.py failed"
fi

corpus_of() {
	case $1 in
	fuzz_descriptor) echo descriptor ;;
	fuzz_multipart) echo multipart ;;
	fuzz_params) echo params ;;
	fuzz_netpolicy) echo netpolicy ;;
	fuzz_import_body) echo import_body ;;
	fuzz_convert) echo "vmdk raw qcow2 compressed" ;;
	fuzz_qcow2_read) echo qcow2 ;;
	fuzz_vhd_read) echo vhd ;;
	fuzz_vmdk_sparse_read) echo vmdk_sparse ;;
	fuzz_vhdx_read) echo vhdx ;;
	fuzz_vdi_read) echo vdi ;;
	fuzz_ova_read) echo ova ;;
	*) echo vmdk ;;
	esac
}

rc=0
for t in "${targets[@]}"; do
	bin=$F/bin/$t
	seeds=()
	for c in $(corpus_of "$t"); do seeds+=("$F/seeds/$c"); done
	mkdir -p "$F/corpus/$t"
	common=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -artifact_prefix="$F/artifacts/$t-")
	dict=()
	case $t in fuzz_vmdk_read | fuzz_convert | fuzz_descriptor) dict=(-dict="$top_srcdir/tests/fuzz/vmdk.dict") ;; esac
	common+=("${dict[@]}")
	if { [ "$t" = fuzz_vmdk_read ] || [ "$t" = fuzz_convert ] || [ "$t" = fuzz_qcow2_read ]; } &&
		[ -n "$(ls -A "$F/regress" 2>/dev/null)" ]; then
		say "$t: replaying $(ls "$F/regress" | wc -l) hostile inputs"
		if ! "$bin" "${common[@]}" -runs=1 "$F"/regress/* >"$F/$t.replay.log" 2>&1; then
			tail -n 40 "$F/$t.replay.log" >&2
			say "$t: FAILED on a hostile input (log: $F/$t.replay.log)"
			rc=1
			continue
		fi
	fi
	say "$t: fuzzing for $FUZZ_SECONDS s (corpus $F/corpus/$t, seeds ${seeds[*]#$F/})"
	if ! "$bin" "${common[@]}" -max_len="$FUZZ_MAX_LEN" -max_total_time="$FUZZ_SECONDS" \
		"$F/corpus/$t" "${seeds[@]}" >"$F/$t.log" 2>&1; then
		grep -E 'ERROR|SUMMARY|Test unit written|==[0-9]+==' "$F/$t.log" | head -n 20 >&2
		tail -n 60 "$F/$t.log" >&2
		say "$t: FAILED (log: $F/$t.log; reproduce: $bin ARTIFACT; add it to REGRESSIONS in tests/hostile/gen.py)"
		rc=1
	else
		say "$t: ok, $(grep -Eo '#[0-9]+' "$F/$t.log" | tail -1 | tr -d '#') runs, $(ls "$F/corpus/$t" | wc -l) corpus files"
	fi
done
exit $rc
