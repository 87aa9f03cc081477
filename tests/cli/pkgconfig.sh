#!/bin/bash
# pkgconfig.sh - a program built against the installed library.
#
# `make install` into a scratch root, then a tiny C program compiled with
# `pkg-config --cflags --libs libdsc` only: it lists the formats through
# the public API (dsc_format_count/dsc_format_at) and compares the header's
# version macros with the library's dsc_version().
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
dsc_init
need pkg-config cc make

ROOT=$T/root
make -s -C "$top_builddir" install DESTDIR="$ROOT" >"$T/install.log" 2>&1
check "make install DESTDIR=..." test $? = 0
pc=$(find "$ROOT" -name libdsc.pc | head -n 1)
check "libdsc.pc installed" test -n "$pc"
[ -n "$pc" ] || finish
export PKG_CONFIG_SYSROOT_DIR=$ROOT PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_LIBDIR=
flags=$(pkg-config --cflags --libs libdsc)
check "pkg-config --cflags --libs libdsc" test $? = 0 -a -n "$flags"
check "pkg-config --modversion is the package's" test "$(pkg-config --modversion libdsc)" = "$("$DSC_CONVERT" -version | awk '{print $2}')"

cat >"$T/prog.c" <<'EOF'
#include <dsc.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	size_t i, n = dsc_format_count();
	const struct dsc_format_info *f;

	if (strcmp(dsc_version(), DSC_VERSION_STRING) != 0) {
		fprintf(stderr, "header %s, library %s\n", DSC_VERSION_STRING, dsc_version());
		return 1;
	}
	for (i = 0; i < n; i++) {
		f = dsc_format_at(i);
		printf("%s %s%s\n", f->name, f->flags & DSC_FMT_READ ? "r" : "-",
		       f->flags & DSC_FMT_WRITE ? "w" : "-");
	}
	return dsc_format_from_name("vpc") == DSC_FORMAT_UNKNOWN;
}
EOF
# shellcheck disable=SC2086 # pkg-config prints several words
cc -Wall -Wextra -Werror -o "$T/prog" "$T/prog.c" $flags 2>"$T/cc.log"
check "compiles and links with pkg-config's flags alone" test $? = 0
[ -s "$T/cc.log" ] && cat "$T/cc.log"
libdir=$(dirname "$(find "$ROOT" -name 'libdsc.so' | head -n 1)")
# In a --enable-sanitizers build the library carries ASan, which the plain
# test program does not: let the runtime load second.
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
	LD_LIBRARY_PATH=$libdir "$T/prog" >"$T/prog.out"
check "runs against the installed library" test $? = 0
check "lists raw as read and written" grep -qx 'raw rw' "$T/prog.out"
check "lists qcow2 as read and written" grep -qx 'qcow2 rw' "$T/prog.out"
check "lists qed as probe-only" grep -qx 'qed --' "$T/prog.out"
check "only dsc_ symbols exported" bash -c "! nm -D --defined-only '$libdir/libdsc.so' | awk '{print \$3}' | grep -v '^dsc_' | grep -v '^_' | grep ."
finish
