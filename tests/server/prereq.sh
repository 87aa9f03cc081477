#!/bin/bash
# prereq.sh - the server and deploy tests are in make check: configure found
# libfcgi, so dsc-server is built.
#
# Those tests are in TESTS only when configure found libfcgi (HAVE_FCGI in
# Makefile.am); without it they would drop out of make check without a word.
# This test is always in TESTS, so that their absence shows: a skip (77) for
# a developer without libfcgi, a failure under CI (CI=true), which installs
# everything the tests use. The tools each of those tests needs (nginx,
# curl, spawn-fcgi, ...) are checked by that test itself, with the same rule.
#
# Environment: DSC_HAVE_FCGI (yes or no, from configure through
# AM_TESTS_ENVIRONMENT; by hand: whether dsc-server is built), DSC_SERVER.
. "$(dirname "$0")/../lib/common.sh"

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${DSC_SERVER:=$top_builddir/dsc-server}"
if [ -z "${DSC_HAVE_FCGI:-}" ]; then
	DSC_HAVE_FCGI=no
	[ -x "$DSC_SERVER" ] && DSC_HAVE_FCGI=yes
fi

if [ "$DSC_HAVE_FCGI" != yes ]; then
	missing libfcgi "configure found no fcgiapp.h and -lfcgi, so dsc-server is not built and the server and deploy tests are not run: install libfcgi-dev, run configure again"
fi
if [ ! -x "$DSC_SERVER" ]; then
	echo "FAIL: configure found libfcgi, but $DSC_SERVER is not built"
	exit 1
fi
echo "# dsc-server is built ($DSC_SERVER): the server and deploy tests are in make check"
exit 0
