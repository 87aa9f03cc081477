#!/bin/bash
# apache.sh - conf/apache/dsc.conf, as shipped, in front of dsc-server
# (mod_proxy_fcgi over the unix socket): the README's curl examples over
# plain HTTP and over TLS, chunked uploads streamed, and /status for
# loopback only. Apache runs in the foreground from a temporary directory,
# with a minimal main config that loads the modules the file needs.
. "$(dirname "$0")/lib.sh"
deploy_init apache2
F=$T/front
M=/usr/lib/apache2/modules

# The file is a site, as in Debian's sites-enabled/; this wrapper holds
# what apache2.conf, ports.conf and mods-enabled/ would.
render "$top_srcdir/conf/apache/dsc.conf" "$F/dsc.conf" \
	-e "s|<VirtualHost \*:443>|<VirtualHost 127.0.0.1:$TLS_PORT>|"
user=
[ "$(id -u)" = 0 ] && user="User nobody
Group nogroup"
{
	for m in mpm_event authz_core authz_host proxy proxy_fcgi reqtimeout ssl socache_shmcb; do
		echo "LoadModule ${m}_module $M/mod_$m.so"
	done
	cat <<EOF
ServerName 127.0.0.1
ServerRoot $F
DefaultRuntimeDir $F
PidFile $F/apache2.pid
ErrorLog $F/logs/error.log
LogLevel warn
Listen 127.0.0.1:$TLS_PORT
$user
Include $F/dsc.conf
EOF
} >"$F/httpd.conf"
check "apache2 -t accepts the config" apache2 -t -f "$F/httpd.conf"
front_start apache2 apache2 -f "$F/httpd.conf" -DFOREGROUND

run_examples "$BASE" apache
run_examples "$TLS_BASE" apache-tls

# An upload is converted while it arrives, chunked from a pipe.
head -c $((4 * MiB)) /dev/urandom >"$T/data/dense.raw"
mkfifo "$T/slow"
(
	exec 3>"$T/slow"
	head -c $((3 * MiB)) "$T/data/dense.raw" >&3
	sleep 2
	tail -c +$((3 * MiB + 1)) "$T/data/dense.raw" >&3
) &
writer=$!
curl -sS -o "$T/slow.reply" -T - -X POST "$BASE/upload?name=slow.img" <"$T/slow" &
client=$!
# (polled for up to 1.8 s: the rest follows after 2 s)
streamed_early 18
check "3 MiB into a chunked upload, its output already holds 2 MiB (streamed, not staged)" \
	test "$EARLY" -ge $((2 * MiB))
wait "$writer" "$client"
check "the streamed upload completes" same_image "$T/out/slow.img" raw "$T/data/dense.raw" raw

check "/status from another address: 403" \
	test "$(curl -s -o /dev/null --interface 127.0.0.2 -w '%{http_code}' "$BASE/status")" = 403
check "other routes from that address: served (405 from dsc-server)" \
	test "$(curl -s -o /dev/null --interface 127.0.0.2 -w '%{http_code}' "$BASE/upload")" = 405
check "405 carries dsc-server's Allow header through Apache" \
	grep -qi '^Allow: POST' <(curl -s -D - -o /dev/null "$BASE/upload")

deploy_finish
