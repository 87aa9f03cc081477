#!/bin/bash
# lighttpd.sh - conf/lighttpd/dsc.conf, as shipped, in front of dsc-server:
# the README's curl examples (the chunked one must be 411, as the config
# and README say), over TLS too, bodies streamed (no temporary file), and
# /status for loopback only.
. "$(dirname "$0")/lib.sh"
deploy_init lighttpd
F=$T/front
mkdir -p "$F/www"

# The file is an include, as in Debian's conf-enabled/; this wrapper holds
# what /etc/lighttpd/lighttpd.conf would. Its own port 80 listener becomes
# a unix socket; the HTTPS listener moves to the test's port.
render "$top_srcdir/conf/lighttpd/dsc.conf" "$F/dsc.conf" \
	-e "s|\"socket\"\] == \":443\"|\"socket\"] == \"127.0.0.1:$TLS_PORT\"|"
user=
[ "$(id -u)" = 0 ] && user='server.username = "nobody"
server.groupname = "nogroup"'
cat >"$F/lighttpd.conf" <<EOF
server.document-root = "$F/www"
server.bind = "$F/main.sock"
server.pid-file = "$F/lighttpd.pid"
server.errorlog = "$F/logs/error.log"
server.upload-dirs = ( "$F/tmp" )
$user
include "$F/dsc.conf"
EOF
check "lighttpd -tt accepts the config" lighttpd -tt -f "$F/lighttpd.conf"
check "no warnings about the config" test -z "$(lighttpd -tt -f "$F/lighttpd.conf" 2>&1)"
front_start lighttpd lighttpd -D -f "$F/lighttpd.conf"

run_examples "$BASE" lighttpd
run_examples "$TLS_BASE" lighttpd-tls

check "no request or response body was buffered to a file" test -z "$(find "$F/tmp" -type f)"
check "the main listener does not reach dsc-server" \
	test "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$F/main.sock" "http://localhost/upload")" = 404
check "the 411 names the reason: a chunked body" \
	test "$(curl -s -o /dev/null -w '%{http_code}' -T - -X POST "$BASE/upload?name=x.img" </dev/null)" = 411

# An upload is converted while it arrives (Content-Length known here: a
# file of 4 MiB, sent slowly).
head -c $((4 * MiB)) /dev/urandom >"$T/data/dense.raw"
curl -sS -o "$T/slow.reply" --limit-rate 1M -T "$T/data/dense.raw" -X POST "$BASE/upload?name=slow.img" &
client=$!
streamed_early 30 $((1 * MiB))
check "within 3 s of a 4 s upload, its output already holds 1 MiB (streamed, not staged)" \
	test "$EARLY" -ge $((1 * MiB))
wait "$client"
check "the streamed upload completes" same_image "$T/out/slow.img" raw "$T/data/dense.raw" raw

check "/status from another address: 403" \
	test "$(curl -s -o /dev/null --interface 127.0.0.2 -w '%{http_code}' "$BASE/status")" = 403
check "other routes from that address: served (405 from dsc-server)" \
	test "$(curl -s -o /dev/null --interface 127.0.0.2 -w '%{http_code}' "$BASE/upload")" = 405

deploy_finish
