#!/bin/bash
# import.sh - GET and POST /import from a loopback HTTP server
# (tests/tools/httpd.py, allowed with -import-allow-net 127.0.0.0/8): default
# names, JSON body with headers and sha256, resume after a cut (also from a
# server without ETag or Last-Modified when sha256= is given), redirects,
# and the errors: 400 (bad URL, scheme, JSON), 403 (addresses the policy
# refuses), 409, 413 (JSON size), 415, 422 (SHA-256), 502 (upstream
# status, also for a URL saying "timeout"), 504 (idle timeout), 499 (client
# gave up while waiting).
. "$(dirname "$0")/lib.sh"
srv_init
nginx_start
server_start -import-allow-net 127.0.0.0/8 -import-idle-timeout 1 -import-retries 2

mkdir -p "$T/www"
python3 "$top_srcdir/tests/tools/httpd.py" --root "$T/www" --port-file "$T/httpd.port" \
	--log "$T/httpd.log" &
HTTPD_PID=$!
trap 'kill $HTTPD_PID 2>/dev/null; srv_cleanup' EXIT
for i in $(seq 100); do [ -s "$T/httpd.port" ] && break; sleep 0.05; done
UP="http://127.0.0.1:$(cat "$T/httpd.port")"

R=$T/reply
make_raw "$T/data/disk.raw" 4
make_vmdk "$T/data/disk.raw" "$T/www/disk.vmdk"
cp "$T/data/disk.raw" "$T/www/plain.raw"
sum=$(sha256sum <"$T/www/disk.vmdk" | cut -d' ' -f1)

# imp STATUS URL [CURL-ARGS...]: GET /import?url=URL
imp() {
	local want=$1 url=$2
	shift 2
	expect_status "$want" "$R" -G --data-urlencode "url=$url" "$@" "$BASE/import"
}

# ---- GET
imp 200 "$UP/f/disk.vmdk" --data-urlencode digest=true
check "GET: default name disk.img" test -f "$T/out/disk.img"
check "GET: same disk" same_image "$T/out/disk.img" raw "$T/data/disk.raw" raw
check "GET: reply names the output" test "$(json_get "$R" output)" = "$T/out/disk.img"
check "GET, digest=true: reply sha256 is the download's" test "$(json_get "$R" sha256)" = "$sum"
imp 409 "$UP/f/disk.vmdk"
imp 200 "$UP/f/plain.raw?x=1" --data-urlencode dst=vmdk
check "GET raw->vmdk: default name plain.vmdk" same_image "$T/out/plain.vmdk" vmdk "$T/data/disk.raw" raw
check "GET without digest: no sha256 in the reply" \
	python3 -c 'import json,sys; sys.exit("sha256" in json.load(open(sys.argv[1])))' "$R"
imp 200 "$UP/f/disk.vmdk?cut=100000&times=1" --data-urlencode name=resumed.img
check "resumed after a cut: same disk" same_image "$T/out/resumed.img" raw "$T/data/disk.raw" raw
check "resumed with Range" grep -q 'range=bytes=100000-' "$T/httpd.log"
# A source without ETag or Last-Modified: resumed only when sha256= proves
# the bytes (digest=true does not).
imp 502 "$UP/f/disk.vmdk?cut=100000&times=1&novalidator=1" --data-urlencode name=nv.img \
	--data-urlencode digest=true
check "no validator, cut: cannot resume" grep -q 'cannot resume: the server sent no ETag or Last-Modified' "$R"
check "no validator, cut: nothing left" test ! -e "$T/out/nv.img"
imp 200 "$UP/f/disk.vmdk?cut=100000&times=1&novalidator=1&x=2" --data-urlencode name=nv.img \
	--data-urlencode "sha256=$sum"
check "no validator, sha256=: resumed, same disk" same_image "$T/out/nv.img" raw "$T/data/disk.raw" raw
check "no validator, sha256=: Range without If-Range" \
	grep -Eq 'novalidator=1&x=2 range=bytes=100000- -> 206' "$T/httpd.log"
imp 200 "$UP/redirect/3/disk.vmdk" --data-urlencode name=redir.img
check "after 3 redirects: same disk" same_image "$T/out/redir.img" raw "$T/data/disk.raw" raw
imp 200 "$UP/f/disk.vmdk" --data-urlencode name=sum.img --data-urlencode "sha256=$sum"
check "GET, sha256 verified: reply carries it" test "$(json_get "$R" sha256)" = "$sum"

# ---- POST with a JSON body
expect_status 200 "$R" -H 'Content-Type: application/json' \
	--data "{\"url\": \"$UP/f/disk.vmdk?need=X-Token:abc\", \"dst\": \"vmdk\", \"name\": \"post.vmdk\", \"prealloc\": false, \"sha256\": \"$sum\", \"headers\": {\"X-Token\": \"abc\"}}" \
	"$BASE/import"
check "POST: same disk" same_image "$T/out/post.vmdk" vmdk "$T/data/disk.raw" raw
check "POST, sha256 verified: reply carries it" test "$(json_get "$R" sha256)" = "$sum"
check "POST: the header reached the source" grep -q 'x-token=abc' "$T/httpd.log"
expect_status 200 "$R" -H 'Content-Type: application/json' \
	--data "{\"url\": \"$UP/f/disk.vmdk?need=X-Token:xyz\", \"name\": \"post2.img\", \"digest\": true, \"headers\": [\"X-Token: xyz\"]}" \
	"$BASE/import"
check "POST, \"digest\": true: reply sha256 is the download's" test "$(json_get "$R" sha256)" = "$sum"
cp "$T/data/disk.raw" "$T/www/opt.raw"
expect_status 200 "$R" -H 'Content-Type: application/json' \
	--data "{\"url\": \"$UP/f/opt.raw\", \"src\": \"raw\", \"dst\": \"vmdk\", \"name\": \"opt.vmdk\", \"options\": {\"adapter_type\": \"ide\", \"hwversion\": 7}}" "$BASE/import"
check "JSON options reach the descriptor" grep -aq 'ddb.virtualHWVersion = "7"' "$T/out/opt.vmdk"

# ---- qcow2 whose L1 follows its data (qemu-img resize): not stream-ordered,
# so the import seeks the URL with ranged requests, without a temporary
# copy; into a compressed qcow2 (issue 13)
qemu-img create -q -f qcow2 "$T/www/resized.qcow2" 16M
qemu-io -c 'write -P 0x5a 0 12M' "$T/www/resized.qcow2" >/dev/null
qemu-img resize -q "$T/www/resized.qcow2" 2T
qemu-io -c 'write -P 0xa5 1G 64k' "$T/www/resized.qcow2" >/dev/null
expect_status 200 "$R" -H 'Content-Type: application/json' \
	--data "{\"url\": \"$UP/f/resized.qcow2?imp=q\", \"dst\": \"qcow2\", \"compress\": true, \"name\": \"resized.qcow2\"}" "$BASE/import"
check "resized qcow2 import: the same disk" \
	qemu-img compare -q -f qcow2 -F qcow2 "$T/www/resized.qcow2" "$T/out/resized.qcow2"
check "resized qcow2 import: qemu-img check" qemu-img check -q "$T/out/resized.qcow2"
check "resized qcow2 import: compressed clusters" \
	test "$(stat -c %s "$T/out/resized.qcow2")" -lt $((2 * 1024 * 1024))
check "resized qcow2 import: ranged requests" grep -Eq 'imp=q range=bytes=' "$T/httpd.log"
check "JSON options: ide" grep -aq 'ddb.adapterType = "ide"' "$T/out/opt.vmdk"
expect_status 400 "$R" -H 'Content-Type: application/json' \
	--data "{\"url\": \"$UP/f/opt.raw\", \"dst\": \"vmdk\", \"name\": \"opt2.vmdk\", \"options\": {\"bogus\": true}}" "$BASE/import"
check "JSON options: unknown key named" bash -c "grep -q \"unknown option 'bogus'\" '$R'"
expect_status 400 "$R" -H 'Content-Type: application/json' \
	--data "{\"url\": \"$UP/plain.raw\", \"options\": [1]}" "$BASE/import"
expect_status 400 "$R" -H 'Content-Type: application/json' \
	--data "{\"url\": \"$UP/plain.raw\", \"options\": {\"x\": [1]}}" "$BASE/import"
expect_status 400 "$R" -H 'Content-Type: application/json' \
	--data "{\"url\": \"$UP/f/disk.vmdk\", \"name\": \"post3.img\", \"digest\": 1}" "$BASE/import"
check "POST, \"digest\": 1 is 400 and writes nothing" test ! -e "$T/out/post3.img"
expect_status 502 "$R" -H 'Content-Type: application/json' \
	--data "{\"url\": \"$UP/f/disk.vmdk?need=X-Token:abc\", \"name\": \"noauth.img\"}" "$BASE/import"
check "upstream 403 is 502 REMOTE" test "$(json_get "$R" code)" = REMOTE

# ---- errors
imp 400 "file:///etc/passwd" --data-urlencode name=f.img
imp 400 "ftp://127.0.0.1/x" --data-urlencode name=f.img
imp 400 "not a url" --data-urlencode name=f.img
expect_status 400 "$R" "$BASE/import"
imp 403 "http://[::1]:$(cat "$T/httpd.port")/f/disk.vmdk" --data-urlencode name=v6.img
check "403 code PERM" test "$(json_get "$R" code)" = PERM
imp 403 "http://169.254.169.254/latest/meta-data" --data-urlencode name=meta.img
imp 403 "$UP/to?url=http://10.1.2.3/x" --data-urlencode name=hop.img
imp 502 "$UP/f/disk.vmdk?fail=404" --data-urlencode name=nf.img
check "upstream 404: message names the status" grep -q '404' "$R"
imp 502 "$UP/f/disk.vmdk?fail=500" --data-urlencode name=e500.img
# The status comes from the error, not its wording: a 404 for a URL that
# happens to say "timeout" is still the upstream's failure (502), not 504.
imp 502 "$UP/f/timeout.vmdk?fail=404" --data-urlencode name=nft.img
check "upstream 404 of a .../timeout... URL: 502 REMOTE" test "$(json_get "$R" code)" = REMOTE
imp 422 "$UP/f/disk.vmdk" --data-urlencode name=bad.img --data-urlencode "sha256=$(printf %064d 0)"
check "sha256 mismatch: code INTEGRITY" test "$(json_get "$R" code)" = INTEGRITY
check "sha256 mismatch: message" grep -q "SHA-256 mismatch: expected $(printf %064d 0), got $sum" "$R"
imp 504 "$UP/f/disk.vmdk?stall=0&hold=30" --data-urlencode name=stall.img
check "504 code REMOTE" test "$(json_get "$R" code)" = REMOTE
expect_status 400 "$R" -H 'Content-Type: application/json' --data '{"url": ' "$BASE/import"
expect_status 400 "$R" -H 'Content-Type: application/json' --data '[1, 2]' "$BASE/import"
expect_status 400 "$R" -H 'Content-Type: application/json' --data "{\"url\": \"$UP/f/disk.vmdk\", \"bogus\": 1}" "$BASE/import"
expect_status 400 "$R" -H 'Content-Type: application/json' --data "{\"url\": \"$UP/f/disk.vmdk\", \"name\": \"../x\"}" "$BASE/import"
expect_status 400 "$R" -H 'Content-Type: application/json' --data "{\"url\": \"$UP/f/disk.vmdk\", \"headers\": {\"X\": \"a\\r\\nEvil: 1\"}}" "$BASE/import"
expect_status 400 "$R" -H 'Content-Type: application/json' --data "{\"url\": \"$UP/f/disk.vmdk\"}" "$BASE/import?name=x.img"
expect_status 415 "$R" -H 'Content-Type: text/plain' --data "{\"url\": \"$UP/f/disk.vmdk\"}" "$BASE/import"
python3 -c 'import json; print(json.dumps({"url": "http://127.0.0.1/", "name": "x" * 70000}))' >"$T/big.json"
expect_status 413 "$R" -H 'Content-Type: application/json' --data-binary @"$T/big.json" "$BASE/import"

# ---- the client gives up while the server waits on a stalled source
curl -s -o /dev/null --max-time 1 -G --data-urlencode "url=$UP/f/disk.vmdk?stall=0&hold=30&k=2" \
	--data-urlencode name=gaveup.img "$BASE/import"
for i in $(seq 100); do log_has 'GET /import 499' && break; sleep 0.05; done
check "client gave up: cancelled, logged 499 before the idle timeout" log_has 'GET /import 499'
check "no leftovers" test -z "$(ls -A "$T/out" | grep -E '^\.|stall|gaveup|bad|e500|nf')"
# ---- compressed and OVA sources (issue 16): decompressed and unpacked
# while they download; an OVA whose manifest at the end does not match is a
# 422 with nothing written.
xz -c "$T/data/disk.raw" >"$T/www/disk.raw.xz"
python3 "$top_srcdir/tests/cli/gen_ova.py" "$T/www/app.ova" "$T/www/disk.vmdk" --mf last
python3 "$top_srcdir/tests/cli/gen_ova.py" "$T/www/bad.ova" "$T/www/disk.vmdk" --mf last --bad-digest disk.vmdk
imp 200 "$UP/f/disk.raw.xz" --data-urlencode name=xz.qcow2 --data-urlencode dst=qcow2
check "import raw.xz -> qcow2: same disk" same_image "$T/out/xz.qcow2" qcow2 "$T/data/disk.raw" raw
check "import raw.xz: sourceCompression xz" test "$(json_get "$R" sourceCompression)" = xz
imp 200 "$UP/f/app.ova" --data-urlencode name=app.img
check "import OVA: the disk" same_image "$T/out/app.img" raw "$T/data/disk.raw" raw
imp 422 "$UP/f/bad.ova" --data-urlencode name=bad.img
check "import OVA with a wrong digest: 422 names the manifest" grep -q 'OVA manifest: the SHA256 of disk.vmdk' "$R"
check "import OVA with a wrong digest: nothing written" test ! -e "$T/out/bad.img"

server_stop TERM
finish
