#!/bin/bash
# man.sh - the manual pages: groff formats them without a warning, and
# every option the programs' -help lists is documented in its page (and
# every route of dsc-server).
. "$(dirname "$0")/../lib/common.sh"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${DSC_CONVERT:=$top_builddir/dsc-convert}"
: "${DSC_SERVER:=$top_builddir/dsc-server}"
: "${DSC_IMG:=$top_builddir/dsc-img}"
export LC_ALL=C.UTF-8
fails=0
ok() { echo "ok - $*"; }
bad() { echo "not ok - $*"; fails=$((fails + 1)); }

need groff

# check_page PAGE PROGRAM: no groff warnings; each -flag of PROGRAM -help
# appears in the formatted page.
check_page() {
	local page=$1 prog=$2 warn text flag
	warn=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
	if [ -z "$warn" ]; then ok "$(basename "$page"): no groff warnings"; else bad "$page: $warn"; fi
	# Formatted without hyphenation or adjustment, so that flags stay whole.
	text=$( (echo '.nh'; echo '.ad l'; cat "$page") | groff -man -Tutf8 -rLL=200n 2>/dev/null |
		sed 's/\x1b\[[0-9;]*m//g; s/.\x08//g')
	for flag in $("$prog" -help | grep -oE '(^|[ ,])-[a-z][a-z0-9-]*' | tr -d ' ,' | sort -u); do
		if grep -qe "$flag\b" <<<"$text"; then
			ok "$(basename "$page") documents $flag"
		else
			bad "$(basename "$page") lacks $flag (listed by $(basename "$prog") -help)"
		fi
	done
	printf '%s\n' "$text" >"${TMPDIR:-/tmp}/man.$$.$(basename "$page")"
}

check_page "$top_srcdir/doc/dsc-convert.1" "$DSC_CONVERT"
check_page "$top_srcdir/doc/dsc-img.1" "$DSC_IMG"
for c in info check compare map convert '--output' '--header-only' '--disk'; do
	if grep -qe "$c" "${TMPDIR:-/tmp}/man.$$.dsc-img.1"; then
		ok "dsc-img.1 documents $c"
	else
		bad "dsc-img.1 lacks $c"
	fi
done
if [ -x "$DSC_SERVER" ]; then
	check_page "$top_srcdir/doc/dsc-server.8" "$DSC_SERVER"
	for r in 'POST /upload' 'GET /import' 'POST /import' 'GET /export' 'GET /status' 'GET /info' 'POST /info' SIGTERM SIGHUP; do
		if grep -q "$r" "${TMPDIR:-/tmp}/man.$$.dsc-server.8"; then
			ok "dsc-server.8 documents $r"
		else
			bad "dsc-server.8 lacks $r"
		fi
	done
fi
rm -f "${TMPDIR:-/tmp}/man.$$."*
echo "# $fails failed"
[ "$fails" = 0 ]
