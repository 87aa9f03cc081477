# lib.sh - start a real nginx in front of dsc-server, for the server tests.
#
# Sourced by tests/server/*.sh (bash). srv_init makes $T (removed on exit),
# nginx_start renders nginx.conf.in into $T/nginx on a free loopback port and
# runs nginx in the foreground as a background job; server_start runs
# dsc-server on the unix socket $T/dsc.sock with outdir $T/out and export
# roots $T/export and $T/out. Everything started is stopped by the EXIT trap.
# Checks keep going after a failure; `finish` exits 1 if any failed, with
# the logs. skip, need, missing and finish come from tests/lib/common.sh: a
# missing tool skips (77), except under CI (CI=true), where it fails.
#
# Environment: top_srcdir, top_builddir, DSC_SERVER (AM_TESTS_ENVIRONMENT).

. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${DSC_SERVER:=$top_builddir/dsc-server}"
PATH=$PATH:/usr/sbin:/sbin

MiB=1048576
T=
NGINX_PID=
SERVER_PID=
PORT=
BASE=

srv_cleanup() {
	local w
	if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
		w=$(pgrep -P "$SERVER_PID")
		kill -KILL "$SERVER_PID" $w 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
	fi
	if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
		kill -QUIT "$NGINX_PID" 2>/dev/null
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$NGINX_PID" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$NGINX_PID" 2>/dev/null
		wait "$NGINX_PID" 2>/dev/null
	fi
	if [ -n "$T" ]; then
		if [ "${KEEP_TMP:-}" = 1 ]; then
			echo "# kept $T"
		else
			rm -rf "$T"
		fi
	fi
}

srv_init() {
	need nginx curl qemu-img python3
	if [ ! -x "$DSC_SERVER" ]; then
		echo "FAIL: dsc-server not found at $DSC_SERVER"
		exit 1
	fi
	T=$(mktemp -d "${TMPDIR:-/tmp}/dsc-srv.XXXXXX") || exit 99
	trap srv_cleanup EXIT
	trap 'exit 1' INT TERM
	mkdir -p "$T/out" "$T/export" "$T/nginx/logs" "$T/nginx/tmp" "$T/data"
	echo "# $(basename "$0"): dsc-server=$DSC_SERVER tmp=$T"
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# nginx_start: nginx on 127.0.0.1:$PORT -> $UPSTREAM (default unix:$T/dsc.sock)
nginx_start() {
	local user="" i
	if [ "$(id -u)" = 0 ]; then
		# nginx's workers drop to nobody: let them reach the socket (the
		# server gives it to nogroup with -socket-group) and the temp dirs.
		user="user nobody nogroup;"
		chmod 0755 "$T"
		chown -R nobody:nogroup "$T/nginx/tmp"
	fi
	PORT=$(free_port)
	BASE="http://127.0.0.1:$PORT"
	sed -e "s|@PORT@|$PORT|g" -e "s|@DIR@|$T/nginx|g" \
		-e "s|@UPSTREAM@|${UPSTREAM:-unix:$T/dsc.sock}|g" -e "s|@USER@|$user|g" \
		"$top_srcdir/tests/server/nginx.conf.in" >"$T/nginx/nginx.conf"
	nginx -c "$T/nginx/nginx.conf" -p "$T/nginx" -e "$T/nginx/logs/error.log" &
	NGINX_PID=$!
	for i in $(seq 100); do
		curl -s -o /dev/null "$BASE/" && return 0
		kill -0 "$NGINX_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "FAIL: nginx did not start"
	cat "$T/nginx/logs/error.log"
	exit 1
}

nginx_stop() {
	kill -QUIT "$NGINX_PID" 2>/dev/null
	wait "$NGINX_PID" 2>/dev/null
	NGINX_PID=
}

# server_start [ARGS...]: dsc-server on $T/dsc.sock; log in $T/server.log
server_start() {
	local group=() i
	[ "$(id -u)" = 0 ] && group=(-socket-group nogroup)
	"$DSC_SERVER" -listen "${LISTEN:-unix:$T/dsc.sock}" "${group[@]}" -outdir "$T/out" \
		-export-root "$T/export" -export-root "$T/out" \
		-workers "${WORKERS:-2}" "$@" 2>>"$T/server.log" &
	SERVER_PID=$!
	for i in $(seq 100); do
		if [ "$(workers_alive)" -ge "${WORKERS:-2}" ]; then
			return 0
		fi
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	echo "FAIL: dsc-server did not start"
	cat "$T/server.log"
	exit 1
}

# server_stop [SIGNAL]: signal the master and wait for it; prints its status.
server_stop() {
	local rc=0
	kill -"${1:-TERM}" "$SERVER_PID" 2>/dev/null
	wait "$SERVER_PID" 2>/dev/null || rc=$?
	SERVER_PID=
	return $rc
}

workers() {
	pgrep -P "$SERVER_PID" 2>/dev/null | sort -n
}

workers_alive() {
	local n
	n=$(pgrep -c -P "$SERVER_PID" 2>/dev/null)
	echo "${n:-0}"
}

check() {
	local what=$1
	shift
	CHECKS=$((CHECKS + 1))
	if "$@"; then
		echo "ok - $what"
	else
		FAILS=$((FAILS + 1))
		echo "not ok - $what"
	fi
}

fail() {
	CHECKS=$((CHECKS + 1))
	FAILS=$((FAILS + 1))
	echo "not ok - $*"
}

pass() {
	CHECKS=$((CHECKS + 1))
	echo "ok - $*"
}

# finish_failed: the logs, when finish (tests/lib/common.sh) reports a failure.
finish_failed() {
	echo "# --- server log"
	tail -n 40 "$T/server.log" 2>/dev/null
	echo "# --- nginx error log"
	tail -n 20 "$T/nginx/logs/error.log" 2>/dev/null
}

# req OUTFILE CURL-ARGS...: run curl, print the HTTP status ("000" if none).
req() {
	local out=$1
	shift
	curl -s -o "$out" -w '%{http_code}' "$@" 2>/dev/null
}

# expect_status WANT OUTFILE CURL-ARGS...: check the status code, and that an
# error status carries {"error": ..., "code": ...}.
expect_status() {
	local want=$1 out=$2 got
	shift 2
	got=$(req "$out" "$@")
	CHECKS=$((CHECKS + 1))
	if [ "$got" != "$want" ]; then
		FAILS=$((FAILS + 1))
		echo "not ok - $* -> $got, want $want: $(head -c 300 "$out" 2>/dev/null)"
		return 1
	fi
	if [ "$want" -ge 400 ] && ! json_has "$out" error code; then
		FAILS=$((FAILS + 1))
		echo "not ok - $* -> $want without a JSON error body: $(head -c 300 "$out")"
		return 1
	fi
	echo "ok - $want for $*"
}

# json_get FILE KEY: a top-level member of a JSON file ("" if absent).
json_get() {
	python3 -c 'import json,sys
v = json.load(open(sys.argv[1])).get(sys.argv[2])
print("" if v is None else ("true" if v is True else "false" if v is False else v))' "$1" "$2" 2>/dev/null
}

json_has() {
	local f=$1
	shift
	python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if isinstance(d, dict) and all(isinstance(d.get(k), str) and d.get(k) for k in sys.argv[2:]) else 1)' "$f" "$@" 2>/dev/null
}

# make_raw FILE MIB: a raw disk of MIB MiB: random data at the start, in the
# middle and in the last sector, holes elsewhere.
make_raw() {
	local f=$1 mib=$2
	python3 - "$f" "$mib" <<'PY'
import os, sys
f, mib = sys.argv[1], int(sys.argv[2])
size = mib << 20
with open(f, "wb") as o:
    o.truncate(size)
    o.seek(0); o.write(os.urandom(300000))
    o.seek(size // 2 + 12345); o.write(b"dsc" * 50000)
    o.seek(size - 512); o.write(os.urandom(512))
PY
}

# make_vmdk RAW VMDK: qemu-img's streamOptimized VMDK of RAW.
make_vmdk() {
	qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$1" "$2"
}

# same_image A FMT_A B FMT_B: qemu-img compare says the disks are equal.
same_image() {
	qemu-img compare -q -f "$2" -F "$4" "$1" "$3" >/dev/null 2>&1
}

# log_has REGEX: the server log has a matching line.
# A worker writes its line after the reply has gone out, so the client can
# be faster than the log (noticeably under ASan): look for up to 3 s.
log_has() {
	local i
	for i in $(seq 30); do
		grep -Eq -- "$1" "$T/server.log" && return 0
		sleep 0.1
	done
	return 1
}
