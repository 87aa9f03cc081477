#!/bin/bash
# url.sh - http(s) sources: whole files, resume after cuts, resets and
# stalls, redirects, HTTP errors, TLS, extra headers, integrity checks.
#
# tests/tools/httpd.py serves $T/www on 127.0.0.1 (a port the kernel picks)
# and misbehaves as each URL's query string asks; its request log shows
# that a resume really asked for the next byte with Range + If-Range. Every
# output is compared with its source byte for byte, and every failure must
# exit 1 with one message and leave no file behind.

. "$(dirname "$0")/lib.sh"
dsc_init
need openssl timeout

PIDS=()
stop_servers() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	PIDS=()
}
trap 'stop_servers; cleanup' EXIT

HTTPD="$top_srcdir/tests/tools/httpd.py"
WWW=$T/www
OUT=$T/out
mkdir -p "$WWW" "$OUT"

# start_httpd NAME [--tls CERT KEY]: start a server, set PORT_<NAME>.
start_httpd() {
	local name=$1 i
	shift
	python3 "$HTTPD" --root "$WWW" --port-file "$T/$name.port" --log "$T/$name.log" "$@" \
		>"$T/$name.out" 2>&1 &
	PIDS+=($!)
	for i in $(seq 1 100); do
		[ -s "$T/$name.port" ] && break
		sleep 0.1
	done
	if [ ! -s "$T/$name.port" ]; then
		echo "FAIL: test server $name did not start: $(cat "$T/$name.out")"
		exit 1
	fi
	printf -v "PORT_$name" '%s' "$(cat "$T/$name.port")"
}

# run_url ARGS...: like run_dsc, bounded in time.
run_url() {
	timeout 60 "$DSC_CONVERT" "$@" </dev/null >"$T/stdout" 2>"$T/stderr"
	RC=$?
	LAST_CMD="dsc-convert $*"
}

# no_output DESC: the output directory is empty (no file, no temporary).
no_output() { dir_is "$1: no output left" "$OUT"; }

# log_has NAME ERE: the server log of NAME has a line matching ERE.
log_has() { grep -Eq -- "$2" "$T/$1.log" || { echo "no /$2/ in log:"; cat "$T/$1.log"; return 1; }; }

# A disk with data, a hole and an odd tail, and its VMDK made locally.
gen_random "$T/a" $((1 * MiB)) && gen_zero "$T/b" $((1 * MiB)) && gen_random "$T/c" $((1 * MiB + 1234))
cat "$T/a" "$T/b" "$T/c" >"$WWW/disk.raw"
rm -f "$T/a" "$T/b" "$T/c"
SRC=$WWW/disk.raw
SIZE=$(fsize "$SRC")
SHA=$(sha256sum "$SRC" | cut -d' ' -f1)
"$DSC_CONVERT" -q -src "$SRC" -dst "$WWW/disk.vmdk" -dst-fmt vmdk || { echo "FAIL: making disk.vmdk"; exit 1; }
SHA_VMDK=$(sha256sum "$WWW/disk.vmdk" | cut -d' ' -f1)

start_httpd h
U=http://127.0.0.1:$PORT_h

run_url -src "$U/f/disk.raw" -dst "$OUT/x.raw"
if grep -q "built without libcurl" "$T/stderr"; then
	missing libcurl "dsc-convert was built without it: install libcurl4-openssl-dev, run configure again"
fi
rm -f "$OUT/x.raw"

# ---- whole files -----------------------------------------------------------

run_url -src "$U/f/disk.raw" -dst "$OUT/whole.raw"
expect_ok "raw over http -> raw"
check "raw over http -> raw: identical to the source" cmp "$SRC" "$OUT/whole.raw"

run_url -src "$U/f/disk.vmdk" -dst "$OUT/whole2.raw"
expect_ok "vmdk over http -> raw"
check "vmdk over http -> raw: the source plus its 512-byte pad" same_padded "$SRC" "$OUT/whole2.raw"

run_url -src "$U/f/disk.raw" -dst "$OUT/whole.vmdk" -dst-fmt vmdk
expect_ok "raw over http -> vmdk"
need qemu-img
check "raw over http -> vmdk: qemu-img compare with the source" qemu_same "$SRC" "$OUT/whole.vmdk"
rm -f "$OUT"/*

# A reader that does not seek makes one request, though the stream seeks
# (the server serves ranges): detection does not seek to the end of a URL.
# requests Q: how many requests of a URL with query Q the server logged.
requests() { grep -c "^GET [^ ]*?$1 " "$T/h.log"; }
run_url -src "$U/f/disk.raw?one=raw" -dst "$OUT/one.raw"
expect_ok "raw over http (request count)"
check "raw over http: one request" test "$(requests one=raw)" -eq 1
run_url -src "$U/f/disk.vmdk?one=vmdk" -dst "$OUT/one.raw"
expect_ok "vmdk over http (request count)"
check "vmdk over http: one request" test "$(requests one=vmdk)" -eq 1
run_url -src "$U/f/disk.vmdk?one=vmdk2" -dst "$OUT/one.vmdk" -dst-fmt vmdk
expect_ok "vmdk over http -> vmdk (request count)"
check "vmdk over http -> vmdk: one request" test "$(requests one=vmdk2)" -eq 1
rm -f "$OUT"/*
# qcow2 (issue 13): a stream-ordered qcow2 (qemu-img convert's) reads in one
# request; one whose L1 follows its data (qemu-img resize) seeks with ranged
# requests, and converts without a temporary copy; the same with a server
# that does not serve ranges is the not-stream-ordered error.
qemu-img convert -q -f raw -O qcow2 "$SRC" "$WWW/ordered.qcow2" || { echo "FAIL: making ordered.qcow2"; exit 1; }
run_url -src "$U/f/ordered.qcow2?one=q" -dst "$OUT/q.raw"
expect_ok "stream-ordered qcow2 over http"
check "stream-ordered qcow2 over http: the disk" same_padded "$SRC" "$OUT/q.raw"
check "stream-ordered qcow2 over http: one request" test "$(requests one=q)" -eq 1
qemu-img create -q -f qcow2 "$WWW/resized.qcow2" 16M
qemu-io -c 'write -P 0x5a 0 12M' "$WWW/resized.qcow2" >/dev/null
qemu-img resize -q "$WWW/resized.qcow2" 2T
qemu-io -c 'write -P 0xa5 1G 1M' "$WWW/resized.qcow2" >/dev/null
qemu-img convert -q -f qcow2 -O raw "$WWW/resized.qcow2" "$T/resized.raw"
run_url -src "$U/f/resized.qcow2?seek=q" -dst "$OUT/r.raw"
expect_ok "resized qcow2 over http (seeks)"
check "resized qcow2 over http: the disk (2 TiB, sparse)" \
	qemu-img compare -q -f raw -F raw "$T/resized.raw" "$OUT/r.raw"
check "resized qcow2 over http: ranged requests" test "$(grep "^GET [^ ]*?seek=q " "$T/h.log" | grep -c 'bytes=')" -ge 1
check "resized qcow2 over http: few requests" test "$(requests seek=q)" -le 8
rm -f "$OUT"/*
run_url -src "$U/f/resized.qcow2?noaccept=1" -dst "$OUT/r2.raw"
expect_fail "resized qcow2, no Range" "$U/f/resized.qcow2" "not stream-ordered"
no_output "resized qcow2, no Range"
rm -f "$OUT"/* "$T/resized.raw"
# So a fixed VHD (a footer after the data) is refused at the end, as on a
# pipe, still in one request.
qemu-img convert -q -f raw -O vpc -o subformat=fixed "$SRC" "$WWW/fixed.vhd" ||
	{ echo "FAIL: making fixed.vhd"; exit 1; }
run_url -src "$U/f/fixed.vhd?one=vhd" -dst "$OUT/vhd.raw"
expect_fail "fixed VHD over http" "$U/f/fixed.vhd" "ends with a VHD footer: a fixed VHD"
no_output "fixed VHD over http"
check "fixed VHD over http: one request" test "$(requests one=vhd)" -eq 1
rm -f "$OUT"/*
# Named, it is read forward with the footer held back, still in one request.
run_url -src "$U/f/fixed.vhd?two=vhd" -src-fmt vhd -dst "$OUT/vhd.raw"
expect_ok "fixed VHD over http, -src-fmt vhd"
check "fixed VHD over http: what qemu-img reads" \
	qemu-img compare -q -f raw -F vpc "$OUT/vhd.raw" "$WWW/fixed.vhd"
check "fixed VHD over http, named: one request" test "$(requests two=vhd)" -eq 1
rm -f "$OUT"/*
# Compressed images (issue 16) decompress while they download, in one
# request; a cut is resumed under the decompressor, which never notices.
xz -T2 -c "$SRC" >"$WWW/disk.raw.xz"
gzip -c "$WWW/ordered.qcow2" >"$WWW/ordered.qcow2.gz"
run_url -src "$U/f/disk.raw.xz?one=xz" -dst "$OUT/xz.raw"
expect_ok "raw.xz over http"
check "raw.xz over http: the disk" cmp "$SRC" "$OUT/xz.raw"
check "raw.xz over http: one request" test "$(requests one=xz)" -eq 1
run_url -src "$U/f/ordered.qcow2.gz?cut=30000&times=2" -dst "$OUT/gz.raw"
expect_ok "qcow2.gz over http, cut twice"
check "qcow2.gz over http, cut twice: the disk" same_padded "$SRC" "$OUT/gz.raw"
rm -f "$OUT"/*

# (That Content-Length becomes the stream's size is checked by test_curl.)
run_url -p -src "$U/f/disk.raw" -dst "$OUT/p.raw"
check "progress bar with a URL source" grep -q '100.0%' "$T/stderr"
run_url -src "$U/f/disk.raw?chunked=1" -dst "$OUT/p.raw"
expect_ok "chunked (no Content-Length)"
check "chunked: identical" cmp "$SRC" "$OUT/p.raw"
rm -f "$OUT"/*

# Memory stays flat when the network is faster than the output: 48 MiB
# through a pipe whose reader waits 2 s first. The transfer must pause
# instead of buffering what the converter cannot take yet.
if ! grep -q "fsanitize=address" "$top_builddir/config.log" 2>/dev/null; then
	head -c $((48 * MiB)) /dev/urandom >"$WWW/big.raw"
	# Peak RSS of the largest descendant, from python (no /usr/bin/time needed).
	python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[2:])
open(sys.argv[1], "w").write("%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' \
		"$T/rss" timeout 60 "$DSC_CONVERT" -q -src "$U/f/big.raw" -dst - 2>"$T/stderr" |
		(sleep 2; cmp - "$WWW/big.raw") >"$T/cmp.out" 2>&1
	check "48 MiB to a slow pipe: identical" test ! -s "$T/cmp.out"
	check "48 MiB to a slow pipe: peak RSS $(cat "$T/rss") KiB < 40 MiB" \
		test "$(cat "$T/rss")" -lt 40960
	rm -f "$WWW/big.raw"
fi

# ---- resume ------------------------------------------------------------------

run_url -src "$U/f/disk.raw?cut=700000&times=3" -dst "$OUT/cut.vmdk" -dst-fmt vmdk
expect_ok "response cut 3 times (clean close) -> vmdk"
check "cut: resumed with Range + If-Range from the next byte" \
	log_has h "cut=700000&times=3 range=bytes=1400000- if-range=\".*\" -> 206"
run_url -src "$OUT/cut.vmdk" -dst "$OUT/cut.raw"
check "cut: the VMDK converts back to the source byte for byte" same_padded "$SRC" "$OUT/cut.raw"
check "cut: qemu-img compare" qemu_same "$SRC" "$OUT/cut.vmdk"

run_url -src "$U/f/disk.vmdk?cut=1000000&rst=1&times=2" -dst "$OUT/rst.raw"
expect_ok "vmdk source reset by the peer twice -> raw"
check "reset: identical after resume" same_padded "$SRC" "$OUT/rst.raw"
# A reset discards what the client had not read yet: resume where it was.
check "reset: resumed with Range" log_has h "rst=1&times=2 range=bytes=[1-9][0-9]*- if-range=.* -> 206"

run_url -src "$U/f/disk.raw?cut=500000&times=1&noranges=1" -dst "$OUT/norange.raw"
expect_ok "server ignores Range: same ETag, the first bytes are skipped"
check "no ranges: identical" cmp "$SRC" "$OUT/norange.raw"

run_url -src "$U/f/disk.raw?cut=500000&times=1&lmonly=1" -dst "$OUT/lm.raw"
expect_ok "resume validated by Last-Modified (no ETag)"
check "Last-Modified: identical" cmp "$SRC" "$OUT/lm.raw"
check "Last-Modified: sent as If-Range" log_has h "lmonly=1 range=bytes=500000- if-range=[A-Z][a-z][a-z], .* GMT -> 206"

run_url -src "$U/f/disk.raw?cut=500000&times=1&chunked=1" -dst "$OUT/chunk.raw"
expect_ok "chunked response cut and resumed"
check "chunked cut: identical" cmp "$SRC" "$OUT/chunk.raw"
rm -f "$OUT"/*

run_url -src "$U/f/disk.raw?cut=500000&times=1&novalidator=1" -dst "$OUT/nv.raw"
expect_fail "cut without ETag or Last-Modified" "$U/f/disk.raw" "cannot resume: the server sent no ETag or Last-Modified"
no_output "no validator"

# With -sha256 the digest proves the bytes: resumed with Range alone, the
# Content-Range total checked against the first Content-Length.
run_url -src "$U/f/disk.raw?cut=500000&times=2&novalidator=1" -dst "$OUT/nv.raw" -sha256 "$SHA"
expect_ok "cut twice without ETag or Last-Modified, -sha256: resumed"
check "no validator, -sha256: identical" cmp "$SRC" "$OUT/nv.raw"
check "no validator, -sha256: Range without If-Range" \
	log_has h "novalidator=1 range=bytes=1000000- -> 206"
run_url -src "$U/f/disk.vmdk?cut=300000&times=1&novalidator=1" -dst "$OUT/nv2.raw" -sha256 "$SHA_VMDK"
expect_ok "VMDK source without validators, -sha256: resumed"
check "VMDK source without validators: the disk" same_padded "$SRC" "$OUT/nv2.raw"
rm -f "$OUT"/*
# Same length, other bytes: only the digest can tell, and it does.
run_url -src "$U/f/disk.raw?cut=500000&times=1&novalidator=1&change=1" -dst "$OUT/nv.raw" -sha256 "$SHA"
expect_fail "no validator, changed bytes, -sha256: the digest fails it" "$U/f/disk.raw" "SHA-256 mismatch: expected $SHA"
no_output "no validator, changed bytes"
run_url -src "$U/f/disk.raw?cut=500000&times=1&novalidator=1&grow=4096" -dst "$OUT/nv.raw" -sha256 "$SHA"
expect_fail "no validator, longer resource, -sha256" "$U/f/disk.raw" "resource changed during the transfer \(size [0-9]+ became [0-9]+\)"
no_output "no validator, longer resource"
run_url -src "$U/f/disk.raw?cut=500000&times=1&novalidator=1&chunked=1" -dst "$OUT/nv.raw" -sha256 "$SHA"
expect_fail "no validator, no length, -sha256" "$U/f/disk.raw" "no ETag, Last-Modified or Content-Length"
no_output "no validator, no length"

run_url -src "$U/f/disk.raw?change=1&cut=700000&times=1" -dst "$OUT/chg.raw"
expect_fail "resource changed between tries" "$U/f/disk.raw" "resource changed"
no_output "resource changed"

# ---- stalls and the idle timeout ---------------------------------------------

start=$SECONDS
run_url -idle-timeout 2 -src "$U/f/disk.raw?stall=1500000&times=1&hold=40" -dst "$OUT/stall.raw"
expect_ok "stall after 1.5 MB: idle timeout, then resume"
check "stall: identical" cmp "$SRC" "$OUT/stall.raw"
check "stall: resumed at byte 1500000" log_has h "stall=1500000&times=1&hold=40 range=bytes=1500000- .* -> 206"
check "stall: took less than 15 s ($((SECONDS - start)) s)" test $((SECONDS - start)) -lt 15
rm -f "$OUT"/*

start=$SECONDS
run_url -idle-timeout 1 -retries 1 -src "$U/f/disk.raw?stall=0&hold=40" -dst "$OUT/dead.raw"
expect_fail "server never sends a byte" "$U/f/disk.raw" "idle timeout.*too many retries"
no_output "dead server"
check "dead server: gave up in less than 15 s ($((SECONDS - start)) s)" test $((SECONDS - start)) -lt 15

# ---- HTTP errors and retries ---------------------------------------------------

run_url -src "$U/f/missing.raw" -dst "$OUT/404.raw"
expect_fail "404" "$U/f/missing.raw" "HTTP 404 Not Found"
no_output "404"

run_url -retries 1 -src "$U/f/disk.raw?fail=500" -dst "$OUT/500.raw"
expect_fail "500 on every try" "$U/f/disk.raw" "HTTP 500 Internal Server Error.*too many retries"
no_output "500"
check "500: asked twice with -retries 1" test "$(grep -c 'fail=500 .*-> 500' "$T/h.log")" -eq 2

run_url -src "$U/f/disk.raw?fail=503&times=2" -dst "$OUT/503.raw"
expect_ok "503 twice, then served"
check "503 then ok: identical" cmp "$SRC" "$OUT/503.raw"
rm -f "$OUT"/*

# ---- redirects and schemes -------------------------------------------------------

run_url -src "$U/redirect/3/disk.vmdk" -dst "$OUT/redir.raw"
expect_ok "3 redirects"
check "redirects: identical" same_padded "$SRC" "$OUT/redir.raw"
rm -f "$OUT"/*

run_url -src "$U/loop/a" -dst "$OUT/loop.raw"
expect_fail "redirect loop" "$U/loop/a" "redirect loop"
no_output "redirect loop"

run_url -src "$U/redirect/11/disk.raw" -dst "$OUT/many.raw"
expect_fail "11 redirects" "$U/redirect/11/disk.raw" "too many redirects"
no_output "too many redirects"

run_url -src "$U/to?url=file:///etc/passwd" -dst "$OUT/file.raw"
expect_fail "redirect to file://" "$U/to" "only http and https"
run_url -src "$U/to?url=ftp://127.0.0.1/x" -dst "$OUT/ftp.raw"
expect_fail "redirect to ftp://" "$U/to" "only http and https"
run_url -src "file://$SRC" -dst "$OUT/file2.raw"
expect_fail "file:// source" "file://" "unsupported URL scheme 'file'"
run_url -src "ftp://127.0.0.1/disk.raw" -dst "$OUT/ftp2.raw"
expect_fail "ftp:// source" "ftp://127.0.0.1/disk.raw" "unsupported URL scheme 'ftp'"
no_output "refused schemes"

# A port nobody listens on (bound, then released).
DEAD=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run_url -src "http://127.0.0.1:$DEAD/disk.raw" -dst "$OUT/refused.raw"
expect_fail "connection refused" "http://127.0.0.1:$DEAD/disk.raw" "connection refused"
no_output "connection refused"

# ---- headers ------------------------------------------------------------------

run_url -src "$U/f/disk.raw?need=X-Token:s3cret,X-Other:1" -dst "$OUT/h.raw" -header 'X-Token: s3cret'
expect_fail "a required header missing" "$U/f/disk.raw" "HTTP 403"
run_url -src "$U/f/disk.raw?need=X-Token:s3cret,X-Other:1" -dst "$OUT/h.raw" \
	-header 'X-Token: s3cret' --header='X-Other: 1'
expect_ok "-header (twice) sent"
check "-header: identical" cmp "$SRC" "$OUT/h.raw"
run_url -src "$U/f/disk.raw?need=X-Token:s3cret&cut=600000&times=1" -dst "$OUT/h2.raw" -header 'X-Token: s3cret'
expect_ok "-header sent again when resuming"
check "-header on resume" log_has h "times=1 range=bytes=600000- if-range=.* x-token=s3cret -> 206"
run_url -src "$U/f/disk.raw" -dst "$OUT/h3.raw" -header 'no colon'
expect_usage "-header without a colon"
rm -f "$OUT"/*

# ---- SHA-256 --------------------------------------------------------------------

BAD=$(printf '%s' "$SHA" | tr '0-9a-f' '1-9a-f0')
run_url -src "$U/f/disk.raw?cut=800000&times=2" -dst "$OUT/s.raw" -sha256 "$SHA"
expect_ok "-sha256 matches across resumes"
check "-sha256 match: identical" cmp "$SRC" "$OUT/s.raw"
run_url -src "$U/f/disk.vmdk" -dst "$OUT/s2.raw" -sha256 "$(printf '%s' "$SHA_VMDK" | tr a-f A-F)"
expect_ok "-sha256 of a VMDK source (upper-case hex) covers the whole file"
rm -f "$OUT"/*
run_url -src "$U/f/disk.raw" -dst "$OUT/bad.raw" -sha256 "$BAD"
expect_fail "-sha256 mismatch (URL)" "$U/f/disk.raw" "SHA-256 mismatch: expected $BAD, got $SHA"
no_output "-sha256 mismatch"
run_url -src "$SRC" -dst "$OUT/bad.vmdk" -dst-fmt vmdk -sha256 "$BAD"
expect_fail "-sha256 mismatch (file)" "disk.raw" "SHA-256 mismatch"
no_output "-sha256 mismatch (file)"
echo keep >"$OUT/keep.raw"
STDIN=$SRC run_dsc -src - -dst "$OUT/keep.raw" -sha256 "$BAD"
expect_fail "-sha256 mismatch (stdin)" "stdin" "SHA-256 mismatch"
check "-sha256 mismatch: an existing destination is untouched" grep -qx keep "$OUT/keep.raw"
STDIN=$SRC run_dsc -src - -dst "$OUT/keep.raw" -sha256 "$SHA"
expect_ok "-sha256 match (stdin)"
check "-sha256 match (stdin): identical" cmp "$SRC" "$OUT/keep.raw"
run_url -src "$SRC" -dst "$OUT/x.raw" -sha256 "abc"
expect_usage "-sha256 with a bad digest"
rm -f "$OUT"/*

# json_sha FILE: the "sha256" of the last -json reply equals FILE's.
json_sha() {
	local want got
	want=$(sha256sum "$1" | cut -d' ' -f1)
	got=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])' <"$T/stdout") || return 1
	[ "$got" = "$want" ] || { echo "json sha256 $got, file $want"; return 1; }
}
run_url -json -src "$U/f/disk.raw" -dst "$OUT/j.raw"
expect_ok "-json, raw output with a hole"
check "-json sha256 is the output file's" json_sha "$OUT/j.raw"
run_url -json -src "$U/f/disk.raw" -dst "$OUT/j.vmdk" -dst-fmt vmdk
check "-json sha256 of a VMDK output" json_sha "$OUT/j.vmdk"
run_url -json -src "$U/f/disk.raw?chunked=1" -dst "$OUT/j2.vmdk" -dst-fmt vmdk
expect_ok "-json, VMDK of unknown size (header rewritten at the end)"
check "-json sha256 after a rewrite" json_sha "$OUT/j2.vmdk"
check "the VMDK of unknown size is right" qemu_same "$SRC" "$OUT/j2.vmdk"
rm -f "$OUT"/*

# ---- https ------------------------------------------------------------------------

if openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=localhost -addext 'subjectAltName=IP:127.0.0.1,DNS:localhost' \
	-keyout "$T/key.pem" -out "$T/cert.pem" >"$T/openssl.out" 2>&1; then
	start_httpd s --tls "$T/cert.pem" "$T/key.pem"
	S=https://127.0.0.1:$PORT_s
	run_url -src "$S/f/disk.vmdk" -dst "$OUT/tls.raw" -cacert "$T/cert.pem"
	expect_ok "https with -cacert"
	check "https: identical" same_padded "$SRC" "$OUT/tls.raw"
	run_url -src "$S/f/disk.raw?cut=900000&times=1" -dst "$OUT/tls2.raw" -cacert "$T/cert.pem"
	expect_ok "https cut and resumed"
	check "https resume: identical" cmp "$SRC" "$OUT/tls2.raw"
	rm -f "$OUT"/*
	run_url -src "$S/f/disk.raw" -dst "$OUT/tls3.raw"
	expect_fail "https without the CA" "$S/f/disk.raw" "TLS certificate verification failed"
	no_output "https without the CA"
	run_url -src "$S/f/disk.raw" -dst "$OUT/tls4.raw" -insecure
	expect_ok "https -insecure"
	check "https -insecure: identical" cmp "$SRC" "$OUT/tls4.raw"
	run_url -src "$S/f/disk.raw" -dst "$OUT/tls5.raw" -cacert "$T/nope.pem"
	expect_fail "https with a missing CA file" "$S/f/disk.raw" "nope.pem"
else
	fail "openssl could not make a test certificate" "$(cat "$T/openssl.out")"
fi

finish
