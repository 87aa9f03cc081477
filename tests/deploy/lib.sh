# lib.sh - run the shipped web-server configs (conf/) in front of dsc-server.
#
# Sourced by tests/deploy/*.sh (bash), on top of tests/server/lib.sh (srv_init,
# server_start, check, expect_status, json_get, make_raw, same_image, ...).
# Each test renders one file of conf/ into $T/front with sed: the socket
# /run/dsc/dsc.sock becomes $T/dsc.sock, the loopback listener
# 127.0.0.1:8080 a free port, the HTTPS listener another free port with a
# certificate made here (openssl), and the system paths (pid, logs, temp
# dirs) are given by a small wrapper config around it. Then the README's
# curl examples (the block between "<!-- examples" and "<!-- end of
# examples -->") run through it, and their outputs are judged with qemu-img
# compare. Everything started is stopped by the EXIT trap.

. "$(dirname "${BASH_SOURCE[0]}")/../server/lib.sh"

FRONT_PID=
HTTPD_PID=
TLS_PORT=
TLS_BASE=
FRONT_LOG=
UP=

deploy_cleanup() {
	if [ -n "$FRONT_PID" ] && kill -0 "$FRONT_PID" 2>/dev/null; then
		kill -TERM "$FRONT_PID" 2>/dev/null
		for _ in $(seq 50); do
			kill -0 "$FRONT_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$FRONT_PID" 2>/dev/null
		wait "$FRONT_PID" 2>/dev/null
	fi
	if [ -n "$HTTPD_PID" ]; then
		kill "$HTTPD_PID" 2>/dev/null
		wait "$HTTPD_PID" 2>/dev/null
	fi
	srv_cleanup
}

# deploy_init TOOL...: the common start (temp dir, dsc-server on $T/dsc.sock
# allowing loopback imports, the loopback HTTP server with the image to
# import, the test images, two free ports).
deploy_init() {
	need "$@" openssl gzip
	srv_init
	trap deploy_cleanup EXIT
	mkdir -p "$T/front/logs" "$T/front/tmp" "$T/www" "$T/work"
	if [ "$(id -u)" = 0 ]; then
		# The web servers' workers run as nobody:nogroup here: they need
		# the socket (group nogroup, from server_start) and their dirs.
		chmod 0755 "$T"
		chown -R nobody:nogroup "$T/front"
	fi
	PORT=$(free_port)
	TLS_PORT=$(free_port)
	while [ "$TLS_PORT" = "$PORT" ]; do TLS_PORT=$(free_port); done
	BASE="http://127.0.0.1:$PORT"
	TLS_BASE="https://127.0.0.1:$TLS_PORT"
	make_cert
	[ "${DSC_NOSTART:-}" = 1 ] || dsc_start

	# The images the examples use: one disk, as raw, gzip'd raw and VMDK.
	make_raw "$T/data/disk.raw" 4
	make_vmdk "$T/data/disk.raw" "$T/data/disk.vmdk"
	python3 "$top_srcdir/tests/tools/httpd.py" --root "$T/www" --port-file "$T/httpd.port" \
		--log "$T/httpd.log" 2>>"$T/httpd.err" &
	HTTPD_PID=$!
	cp "$T/data/disk.vmdk" "$T/www/appliance.vmdk"
	for _ in $(seq 100); do [ -s "$T/httpd.port" ] && break; sleep 0.05; done
	UP="http://127.0.0.1:$(cat "$T/httpd.port")"
}

# dsc_start: dsc-server as a deployment runs it: outdir $T/out, which is
# also the export root; loopback imports allowed (the test's source).
dsc_start() {
	local group=()
	[ "$(id -u)" = 0 ] && group=(-socket-group nogroup)
	"$DSC_SERVER" -listen "unix:$T/dsc.sock" "${group[@]}" -outdir "$T/out" \
		-workers "${WORKERS:-2}" -import-allow-net 127.0.0.0/8 2>>"$T/server.log" &
	SERVER_PID=$!
	for _ in $(seq 100); do
		if [ -S "$T/dsc.sock" ] && [ "$(workers_alive)" -ge "${WORKERS:-2}" ]; then
			return 0
		fi
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	echo "FAIL: dsc-server did not start"
	cat "$T/server.log"
	exit 1
}

# make_cert: a self-signed certificate for 127.0.0.1 in $T/front.
make_cert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
		-keyout "$T/front/key.pem" -out "$T/front/cert.pem" >/dev/null 2>&1 ||
		{ echo "FAIL: openssl could not make a certificate"; exit 1; }
	chmod 0644 "$T/front/key.pem"
}

# render SRC DST [SED-ARGS...]: the shipped config with the test's socket,
# port and certificate.
render() {
	local src=$1 dst=$2
	shift 2
	sed -e "s|/run/dsc/dsc\.sock|$T/dsc.sock|g" \
		-e "s|127\.0\.0\.1:8080|127.0.0.1:$PORT|g" \
		-e "s|/etc/ssl/dsc/fullchain\.pem|$T/front/cert.pem|g" \
		-e "s|/etc/ssl/dsc/privkey\.pem|$T/front/key.pem|g" \
		"$@" "$src" >"$dst"
	if grep -n -e /run/dsc -e /etc/ssl/dsc -e ':8080' "$dst"; then
		echo "FAIL: $dst: paths left unrendered (above)"
		exit 1
	fi
}

# front_start NAME CMD...: start a web server in the foreground as a
# background job; wait until both of its ports accept connections.
front_start() {
	local name=$1
	shift
	"$@" >>"$T/front/logs/stdout.log" 2>&1 &
	FRONT_PID=$!
	for _ in $(seq 100); do
		if port_open "$PORT" && port_open "$TLS_PORT"; then
			pass "$name started"
			return 0
		fi
		kill -0 "$FRONT_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "FAIL: $name did not start"
	tail -n 30 "$T/front/logs/"*.log
	exit 1
}

# port_open PORT: something accepts on 127.0.0.1:PORT (no HTTP request, so
# that waiting does not count against the configured rate limits).
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# examples: the README's example lines, one command per line.
examples() {
	sed -n '/^<!-- examples/,/^<!-- end of examples/p' "$top_srcdir/README.md" |
		grep -E '^[a-z]' | grep -v '^<!--'
}

# run_examples URL TAG: run every README example with its base URL changed to
# URL, the import source to the loopback server and the placeholder SHA-256
# to the real one, in $T/work, against an empty output directory; then judge
# every output. On lighttpd (TAG lighttpd, lighttpd-tls) the chunked upload
# must be refused.
run_examples() {
	local url=$1 tag=$2 n=0 line want got sha out
	sha=$(sha256sum <"$T/www/appliance.vmdk" | cut -d' ' -f1)
	rm -rf "$T/work" "$T/out"/*
	mkdir -p "$T/work"
	cp "$T/data/disk.vmdk" "$T/work/appliance-disk1.vmdk"
	cp "$T/data/disk.raw" "$T/work/disk.raw"
	gzip -c "$T/data/disk.raw" >"$T/work/disk.raw.gz"
	[ "$(examples | wc -l)" -ge 7 ] || fail "README: fewer than 7 examples found"
	while IFS= read -r line; do
		n=$((n + 1))
		line=${line//http:\/\/127.0.0.1:8080/$url}
		line=${line//https:\/\/example.com\/images\//$UP\/f\/}
		line=$(printf '%s' "$line" | sed -E "s/\"sha256\": \"[0-9a-f]{64}\"/\"sha256\": \"$sha\"/")
		out=$T/ex.$tag.$n
		got=$(cd "$T/work" && CACERT=$T/front/cert.pem bash -c '
			curl() { command curl -sS --cacert "$CACERT" -w "\n%{http_code}\n" "$@"; }
			'"$line" 2>"$out.err" | tee "$out" | tail -n 1)
		want=200
		# lighttpd refuses bodies without a length: 411 over HTTP/1.1;
		# over HTTPS it speaks HTTP/2 and resets the stream instead.
		[[ $tag == lighttpd && $line == *"-T -"* ]] && want=411
		[[ $tag == lighttpd-tls && $line == *"-T -"* ]] && want=000
		if [ "$got" = "$want" ]; then
			pass "$tag: example $n -> $got"
		else
			fail "$tag: example $n -> $got, want $want: $line: $(head -c 300 "$out") $(cat "$out.err")"
		fi
	done < <(examples)

	check "$tag: upload -T, vmdk -> raw" same_image "$T/out/disk1.img" raw "$T/data/disk.raw" raw
	check "$tag: upload -F, raw -> vmdk" same_image "$T/out/disk.vmdk" vmdk "$T/data/disk.raw" raw
	check "$tag: upload -F output passes qemu-img check" qemu-img check -q -f vmdk "$T/out/disk.vmdk"
	if [[ $tag == lighttpd* ]]; then
		check "$tag: chunked upload refused (411), nothing written" test ! -e "$T/out/disk2.vmdk"
	else
		check "$tag: chunked upload from a pipe" \
			same_image "$T/out/disk2.vmdk" vmdk "$T/data/disk.raw" raw
	fi
	check "$tag: upload PUT (curl -T alone)" same_image "$T/out/disk3.img" raw "$T/data/disk.raw" raw
	check "$tag: a gzip upload, decompressed on the server" \
		same_image "$T/out/disk4.vmdk" vmdk "$T/data/disk.raw" raw
	check "$tag: import GET, default name" same_image "$T/out/appliance.img" raw "$T/data/disk.raw" raw
	check "$tag: import JSON with sha256 and headers" \
		same_image "$T/out/appliance-2.img" raw "$T/data/disk.raw" raw
	check "$tag: the import source saw the header" grep -q 'x-token=s3cret' "$T/httpd.log"
	check "$tag: export saved under its Content-Disposition name" \
		same_image "$T/work/disk1.vmdk" vmdk "$T/data/disk.raw" raw
	check "$tag: status reply" grep -q '"poolSize": *2' "$T/ex.$tag.$n"
	check "$tag: no temporary files left" test -z "$(find "$T/out" -name '.*')"
}

# streamed_early TENTHS [BYTES]: poll for up to TENTHS tenths of a second
# until the temporary output of the upload named slow.img holds BYTES
# (default 2 MiB) on disk; EARLY is what it held last.
streamed_early() {
	local f i
	EARLY=0
	for i in $(seq "$1"); do
		f=$(find "$T/out" -name '.slow.img.*' | head -n 1)
		[ -n "$f" ] && EARLY=$(($(stat -c %b "$f" 2>/dev/null || echo 0) * 512))
		[ "$EARLY" -ge "${2:-$((2 * MiB))}" ] && return 0
		sleep 0.1
	done
	return 0
}

# front_nginx: conf/nginx/dsc.conf, rendered, inside a wrapper holding what
# Debian's /etc/nginx/nginx.conf would (the file is read inside http {}).
# The HTTPS listener moves to the test's port; the IPv6 one is dropped
# (loopback IPv4 only here).
front_nginx() {
	local F=$T/front user=
	render "$top_srcdir/conf/nginx/dsc.conf" "$F/dsc.conf" \
		-e "s|listen 443 ssl;|listen 127.0.0.1:$TLS_PORT ssl;|" \
		-e '/listen \[::\]:443 ssl;/d'
	cp /etc/nginx/fastcgi_params "$F/fastcgi_params"
	[ "$(id -u)" = 0 ] && user="user nobody nogroup;"
	cat >"$F/nginx.conf" <<EOF
daemon off;
worker_processes 1;
$user
pid $F/nginx.pid;
error_log $F/logs/error.log info;
events { worker_connections 256; }
http {
	access_log $F/logs/access.log;
	client_body_temp_path $F/tmp/body;
	fastcgi_temp_path $F/tmp/fastcgi;
	proxy_temp_path $F/tmp/proxy;
	uwsgi_temp_path $F/tmp/uwsgi;
	scgi_temp_path $F/tmp/scgi;
	include $F/dsc.conf;
}
EOF
	check "nginx -t accepts the config" nginx -t -q -c "$F/nginx.conf" -p "$F" -e "$F/logs/error.log"
	front_start nginx nginx -c "$F/nginx.conf" -p "$F" -e "$F/logs/error.log"
}

# deploy_finish: finish, with the web server's logs on failure.
deploy_finish() {
	if [ "$FAILS" -gt 0 ]; then
		echo "# --- web server logs"
		tail -n 20 "$T/front/logs/"*.log 2>/dev/null
	fi
	finish
}
