#!/bin/bash
# spawn.sh - the ways dsc-server gets its listening socket: from spawn-fcgi
# on fd 0 (no -listen), and -listen HOST:PORT (TCP); the pool serves through
# nginx and stops on TERM. Without -listen and without a socket on fd 0 it
# refuses to start; a live server's unix socket is never taken over.
. "$(dirname "$0")/lib.sh"
srv_init
need spawn-fcgi
nginx_start

rc=0
"$DSC_SERVER" -outdir "$T/out" </dev/null 2>"$T/err" || rc=$?
check "no socket on fd 0: exit 1 ($rc)" test "$rc" = 1
check "no socket on fd 0: says why" grep -q 'not a listening socket' "$T/err"
rc=0
"$DSC_SERVER" -outdir "$T/out" -workers 0 2>"$T/err" || rc=$?
check "bad option: exit 2 ($rc)" test "$rc" = 2
rc=0
"$DSC_SERVER" -outdir "$T/nonexistent" -listen "unix:$T/x.sock" 2>"$T/err" || rc=$?
check "missing outdir: exit 2 ($rc)" test "$rc" = 2

owner=()
[ "$(id -u)" = 0 ] && owner=(-G nogroup)
# -n: spawn-fcgi binds the socket, then execs dsc-server in its place
spawn-fcgi -n -s "$T/dsc.sock" -M 0660 "${owner[@]}" -- \
	"$DSC_SERVER" -outdir "$T/out" -export-root "$T/out" -workers 2 2>>"$T/server.log" &
SERVER_PID=$!
for i in $(seq 100); do
	[ "$(workers_alive)" = 2 ] && break
	sleep 0.05
done
check "spawn-fcgi: 2 workers" test "$(workers_alive)" = 2

R=$T/reply
make_raw "$T/data/disk.raw" 4
expect_status 200 "$R" "$BASE/status"
expect_status 200 "$R" -H 'Content-Type: application/octet-stream' -X POST -T "$T/data/disk.raw" \
	"$BASE/upload?dst=vmdk&name=s.vmdk"
check "spawn-fcgi: upload converted" same_image "$T/out/s.vmdk" vmdk "$T/data/disk.raw" raw
expect_status 200 "$R" "$BASE/export?path=s.vmdk"
check "spawn-fcgi: export converted" same_image "$R" raw "$T/data/disk.raw" raw
rc=0
server_stop TERM || rc=$?
check "spawn-fcgi: TERM stops it, exit 0 ($rc)" test "$rc" = 0

# ---- -listen unix: refuses a socket a live server listens on
server_start
rc=0
"$DSC_SERVER" -listen "unix:$T/dsc.sock" -outdir "$T/out" 2>"$T/err" || rc=$?
check "live socket: second server refuses (rc=$rc)" test "$rc" = 1
check "live socket: says why" grep -q 'another server is listening' "$T/err"
expect_status 200 "$R" "$BASE/status"
server_stop TERM
check "unix socket removed at stop" test ! -e "$T/dsc.sock"

# ---- -listen 127.0.0.1:PORT
nginx_stop
FPORT=$(free_port)
UPSTREAM=127.0.0.1:$FPORT nginx_start
LISTEN=127.0.0.1:$FPORT server_start
expect_status 200 "$R" -H 'Content-Type: application/octet-stream' -X POST -T "$T/data/disk.raw" \
	"$BASE/upload?name=tcp.img"
check "tcp: upload converted" same_image "$T/out/tcp.img" raw "$T/data/disk.raw" raw
server_stop TERM
finish
