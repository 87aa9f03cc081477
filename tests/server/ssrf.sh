#!/bin/bash
# ssrf.sh - /import never reaches an address it must not, however the URL
# spells it (issue 7, "SSRF in full").
#
# A trap HTTP server listens on 127.0.0.1 and logs every request; dsc-server
# runs with the default policy (loopback, private, link-local, CGNAT,
# multicast, reserved refused) plus one allowed host, 127.0.0.2, where a
# small redirector sends clients wherever its query says. Every spelling of
# loopback (decimal, hex, octal, short forms, user@host, IPv6, v4-mapped,
# NAT64, 6to4, DNS names), every other special range, every non-http(s)
# scheme, and redirects from the allowed host to all of those must be
# refused with a JSON error (403 PERM for addresses, 400 for schemes and bad
# URLs), quickly, without a single request reaching the trap, and leaving
# no file in the output directory. The allowed host itself works.
. "$(dirname "$0")/lib.sh"
srv_init
nginx_start
server_start -import-allow-net 127.0.0.2/32 -import-retries 0

R=$T/reply
mkdir -p "$T/www"
make_raw "$T/data/disk.raw" 1
make_vmdk "$T/data/disk.raw" "$T/www/disk.vmdk"

# The trap: every request it sees is a failure of the policy.
python3 "$top_srcdir/tests/tools/httpd.py" --root "$T/www" --port-file "$T/trap.port" \
	--log "$T/trap.log" &
TRAP_PID=$!
# The allowed host: 127.0.0.2, redirecting to ?to=URL, or serving the disk.
python3 - "$T/redir.port" "$T/www/disk.vmdk" <<'PY' &
import http.server, os, sys, urllib.parse
port_file, disk = sys.argv[1:3]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if 'to' in q:
            self.send_response(302)
            self.send_header('Location', q['to'][0])
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        data = open(disk, 'rb').read()
        self.send_response(200)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(('127.0.0.2', 0), H)
open(port_file + '.tmp', 'w').write(str(s.server_address[1]))
os.rename(port_file + '.tmp', port_file)
s.serve_forever()
PY
REDIR_PID=$!
trap 'kill $TRAP_PID $REDIR_PID 2>/dev/null; srv_cleanup' EXIT
for _ in $(seq 100); do [ -s "$T/trap.port" ] && [ -s "$T/redir.port" ] && break; sleep 0.05; done
P=$(cat "$T/trap.port")
OK="http://127.0.0.2:$(cat "$T/redir.port")"

n=0
# refused WANT URL: GET /import?url=URL is refused with status WANT within
# 10 s (a connection attempt to an unroutable address would hang longer).
refused() {
	local want=$1 url=$2 t0 t1
	n=$((n + 1))
	t0=$(date +%s)
	expect_status "$want" "$R" --max-time 15 -G --data-urlencode "url=$url" \
		--data-urlencode "name=s$n.img" "$BASE/import" || echo "#   url: $url"
	t1=$(date +%s)
	[ $((t1 - t0)) -le 10 ] || fail "$url: refused only after $((t1 - t0)) s"
}

# ---- the allowed host works (the setup is sound)
expect_status 200 "$R" -G --data-urlencode "url=$OK/disk.vmdk" --data-urlencode name=ok.img "$BASE/import"
check "allowed host: same disk" same_image "$T/out/ok.img" raw "$T/data/disk.raw" raw
rm -f "$T/out/ok.img"

# ---- loopback, every way it can be written
for host in 127.0.0.1 127.1 127.0.1 2130706433 0x7f000001 0x7f.0.0.1 0177.0.0.1 017700000001 \
	127.255.255.254 'user@127.0.0.1' 'user:pw@127.0.0.1' '127.0.0.2@127.0.0.1' \
	'[::1]' '[0:0:0:0:0:0:0:1]' '[::ffff:127.0.0.1]' '[::ffff:7f00:1]' \
	'[0:0:0:0:0:ffff:127.0.0.1]' '[::127.0.0.1]' '[64:ff9b::7f00:1]' '[2002:7f00:1::1]' \
	0.0.0.0 0 '[::]'; do
	refused 403 "http://$host:$P/f/disk.vmdk"
done
# DNS names that resolve to loopback here (/etc/hosts differs between hosts).
for name in localhost LOCALHOST localhost. ip6-localhost ip6-loopback; do
	if getent hosts "$name" >/dev/null; then
		refused 403 "http://$name:$P/f/disk.vmdk"
	else
		echo "# $name does not resolve here: not tried"
	fi
done
refused 403 "HTTP://127.0.0.1:$P/f/disk.vmdk"
refused 403 "https://127.0.0.1:$P/f/disk.vmdk"
refused 403 "http://127.0.0.2:$P@127.0.0.1:$P/f/disk.vmdk"

# ---- private, link-local, CGNAT, multicast, reserved, documentation
for host in 10.0.0.1 10.255.255.255 172.16.0.1 172.31.255.254 192.168.0.1 169.254.169.254 \
	100.64.0.1 100.127.255.254 198.18.0.1 192.0.0.8 192.0.2.1 198.51.100.1 203.0.113.1 \
	224.0.0.1 239.255.255.250 240.0.0.1 255.255.255.255 '[fe80::1]' '[fc00::1]' '[fd00::1]' \
	'[ff02::1]' '[fec0::1]' '[::ffff:10.0.0.1]' '[::ffff:169.254.169.254]' \
	'[64:ff9b::a9fe:a9fe]' '[2002:a9fe:a9fe::]' '[2001:db8::1]' 0xa9fea9fe 2852039166; do
	refused 403 "http://$host/latest/meta-data/"
done

# ---- not http(s)
for url in "file:///etc/passwd" "file://localhost/etc/passwd" "ftp://127.0.0.1:$P/x" \
	"gopher://127.0.0.1:$P/_x" "dict://127.0.0.1:$P/x" "ldap://127.0.0.1/x" "tftp://127.0.0.1/x" \
	"telnet://127.0.0.1:$P" "scp://127.0.0.1/x" "smb://127.0.0.1/x" "//127.0.0.1:$P/x" \
	"127.0.0.1:$P/f/disk.vmdk" "http://" ""; do
	refused 400 "$url"
done
# libcurl reads "http:/host" as "http://host": refused by the policy then.
refused 403 "http:/127.0.0.1:$P/x"

# ---- redirects from the allowed host to everything above
for to in "http://127.0.0.1:$P/f/disk.vmdk" "http://2130706433:$P/f/disk.vmdk" \
	"http://0x7f000001:$P/f/disk.vmdk" "http://localhost:$P/f/disk.vmdk" \
	"http://[::ffff:127.0.0.1]:$P/f/disk.vmdk" "http://[::1]:$P/f/disk.vmdk" \
	"http://0.0.0.0:$P/f/disk.vmdk" "http://user@127.0.0.1:$P/f/disk.vmdk" \
	"http://169.254.169.254/latest/meta-data/" "http://10.0.0.1/x" "http://[fd00::1]/x" \
	"$OK/?to=http://127.0.0.1:$P/f/disk.vmdk"; do
	refused 403 "$OK/?to=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$to")"
done
for to in "file:///etc/passwd" "gopher://127.0.0.1:$P/_x" "ftp://127.0.0.1:$P/x"; do
	n=$((n + 1))
	got=$(req "$R" --max-time 15 -G --data-urlencode "url=$OK/?to=$to" \
		--data-urlencode "name=s$n.img" "$BASE/import")
	CHECKS=$((CHECKS + 1))
	case $got in
	400 | 403 | 502) echo "ok - redirect to $to refused: $got $(head -c 150 "$R")" ;;
	*) FAILS=$((FAILS + 1)) && echo "not ok - redirect to $to: $got, want 400, 403 or 502" ;;
	esac
done

# ---- the trap saw nothing; nothing was left behind
check "no request reached 127.0.0.1 ($(grep -c . "$T/trap.log" 2>/dev/null || echo 0) seen)" \
	test ! -s "$T/trap.log"
# ... and the trap does log what reaches it (so the check above can fail).
curl -s -o /dev/null "http://127.0.0.1:$P/f/disk.vmdk"
check "the trap logs a direct request" test -s "$T/trap.log"
check "no file left in the output directory" test -z "$(ls -A "$T/out")"
check "workers all alive" test "$(workers_alive)" -ge "${WORKERS:-2}"
server_stop TERM
finish
