# common.sh - what the test libraries share: the tally, skipping, and the CI rule.
#
# Sourced (bash) by tests/cli/lib.sh and tests/server/lib.sh (and through it
# tests/deploy/lib.sh), and by the few scripts that use neither. The
# sourcing library keeps its own pass/fail/check (the CLI's capture the
# command's output, the server's let it through); they count in CHECKS and
# FAILS, which `finish` reports.
#
# Exit 77 means skipped. Three helpers decide between skipping and failing:
#  - `skip WHY`: the test does not apply here (valgrind in a sanitizer
#    build, a tmpfs TMPDIR); skipped under CI too.
#  - `missing WHAT [HOW]`, and `need TOOL...` for commands: a prerequisite
#    is absent (a tool, a library dsc was built without, the corpus). A
#    developer's run skips; under CI (CI=true, as .ci/run exports) it fails,
#    naming what is missing, since CI installs everything the tests use
#    (contrib/quickstart check) and a skip there would hide a lost test.
#  - `lacking WHAT PART` (and `have TOOL PART`): the same for one part of a
#    test: a failed check under CI, a note otherwise; the rest goes on.

set -u
export LC_ALL=C

CHECKS=0
FAILS=0

# in_ci: this run is CI's (CI=true).
in_ci() { [ "${CI:-}" = true ]; }

skip() {
	echo "SKIP: $*"
	exit 77
}

# missing WHAT [HOW]: WHAT is required and absent; HOW says how to get it.
missing() {
	if in_ci; then
		echo "FAIL: under CI (CI=true) nothing may be skipped: $1 is missing${2:+ ($2)}"
		exit 1
	fi
	skip "$1 is missing${2:+ ($2)}"
}

# need TOOL...: each TOOL is a command on PATH.
need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 ||
			missing "$t" "not installed; contrib/quickstart check installs it"
	done
}

# lacking WHAT PART: WHAT is absent, so PART of this test cannot run. Uses
# the sourcing library's fail.
lacking() {
	if in_ci; then
		fail "under CI (CI=true) nothing may be skipped: $1 is missing, needed for $2"
	else
		echo "# $1 is missing: $2 skipped"
	fi
}

# have TOOL PART: TOOL is a command on PATH; if not, `lacking TOOL PART` and
# false, so that `if have qemu-img "the comparison"; then ...` runs a part.
have() {
	command -v "$1" >/dev/null 2>&1 && return 0
	lacking "$1" "$2"
	return 1
}

# finish: print the tally and exit 1 if a check failed, else 0. A library
# may define finish_failed to print its logs before that exit 1.
finish() {
	echo "# $(basename "$0"): $CHECKS checks, $FAILS failed"
	if [ "$FAILS" -gt 0 ]; then
		if declare -F finish_failed >/dev/null; then
			finish_failed
		fi
		exit 1
	fi
	exit 0
}
