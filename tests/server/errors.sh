#!/bin/bash
# errors.sh - the error statuses that need a situation rather than a bad
# parameter: 403 (paths outside the export roots, symlinks), 413
# (-max-capacity), 422 (malformed and truncated images; SHA-256 mismatch, code INTEGRITY),
# 507 (a full disk: a small tmpfs as outdir, root only), 499 (the client
# went away mid-upload), and an export that breaks off after its headers
# (the client must see a failed transfer). No failure may leave a file.
. "$(dirname "$0")/lib.sh"
srv_init

SMALL=false
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=24m,mode=0755 tmpfs "$T/out" 2>/dev/null; then
	SMALL=true
	MOUNTED=$T/out
	trap 'umount "$MOUNTED" 2>/dev/null; srv_cleanup' EXIT
else
	echo "# not root or no tmpfs mount: the 507 checks are skipped"
fi
nginx_start
server_start -max-capacity 64M

R=$T/reply
H=$T/headers
OCT=(-H 'Content-Type: application/octet-stream')
make_raw "$T/data/disk.raw" 4
make_vmdk "$T/data/disk.raw" "$T/data/disk.vmdk"

no_leftovers() {
	test -z "$(ls -A "$T/out" | grep -v '^lost+found$' | grep -v -x -F -f "$T/keep" 2>/dev/null)"
}
: >"$T/keep"

# ---- 403
echo secret >"$T/outside"
ln -s "$T/outside" "$T/export/link-out"
ln -s "$T/data/disk.vmdk" "$T/export/link-data"
cp "$T/data/disk.vmdk" "$T/export/in.vmdk"
ln -s "$T/export/in.vmdk" "$T/export/link-in"
expect_status 403 "$R" "$BASE/export?path=/etc/passwd"
check "403 code PERM" test "$(json_get "$R" code)" = PERM
expect_status 403 "$R" "$BASE/export?path=../outside"
expect_status 403 "$R" "$BASE/export?path=link-out"
expect_status 403 "$R" "$BASE/export?path=link-data"
expect_status 403 "$R" "$BASE/export?path=/nonexistent/dir/x.vmdk"
expect_status 200 "$R" "$BASE/export?path=link-in"
check "symlink inside the roots is served" same_image "$R" raw "$T/data/disk.raw" raw

# ---- client bytes that are not UTF-8 in error messages: still the right
# status with a JSON error (jansson refuses invalid UTF-8: this was 503)
expect_status 404 "$R" "$BASE/export?path=%ff%fe"
check "invalid UTF-8 path: escaped in the message" grep -qF '\\xff\\xfe: no such file' "$R"
expect_status 400 "$R" -X POST --data-binary x "$BASE/upload?x%ff=1"
check "invalid UTF-8 parameter name: escaped" grep -qF "unknown parameter 'x\\\\xff'" "$R"
expect_status 404 "$R" "$BASE/no%c0%afroute%ed%a0%80"
# a parameter value quoted in at most 64 bytes: never cut inside a character
e2=$(printf '%%C3%%A9%.0s' $(seq 40))
expect_status 415 "$R" "$BASE/export?path=in.vmdk&dst=x$e2"
check "64-byte quote keeps whole characters" python3 -c '
import json, sys
m = json.load(open(sys.argv[1], encoding="utf-8"))["error"]
sys.exit(0 if "\u00e9..." in m and "\\x" not in m else 1)' "$R"
expect_status 400 "$R" -X POST -H 'Content-Type: application/json' \
	--data-binary "{\"url\": \"http://x/\", \"x$(python3 -c 'print("\u00e9" * 40)')\": 1}" \
	"$BASE/import"

# ---- FIFOs and other non-regular files are judged before being opened:
# opening a FIFO for reading would release a writer blocked on it (a side
# effect outside the roots, or an export that hangs inside them).
# fifo_probe NAME FIFO STATUS URL-PATH: a writer waits on FIFO; the request
# gets STATUS and the writer is still waiting (nobody opened the FIFO).
fifo_probe() {
	local what=$1 fifo=$2 want=$3 url=$4 wpid
	mkfifo "$fifo"
	(exec 3>"$fifo" && echo opened >"$fifo.opened") &
	wpid=$!
	sleep 0.2
	expect_status "$want" "$R" --max-time 10 "$BASE/export?path=$url"
	sleep 0.3
	check "$what: the FIFO was not opened" test ! -e "$fifo.opened"
	check "$what: the writer is still blocked" kill -0 "$wpid"
	kill -KILL "$wpid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	rm -f "$fifo" "$fifo.opened"
}
fifo_probe "FIFO outside the roots" "$T/outside-fifo" 403 "$T/outside-fifo"
ln -s "$T/outside-fifo" "$T/export/link-fifo"
fifo_probe "symlink to a FIFO outside the roots" "$T/outside-fifo" 403 link-fifo
rm -f "$T/export/link-fifo"
fifo_probe "FIFO inside the roots" "$T/export/fifo.vmdk" 415 fifo.vmdk
check "FIFO inside the roots: code UNSUPPORTED" test "$(json_get "$R" code)" = UNSUPPORTED
mkdir "$T/export/dir.vmdk"
expect_status 415 "$R" "$BASE/export?path=dir.vmdk"
rmdir "$T/export/dir.vmdk"

# ---- 413
truncate -s 128M "$T/data/big.raw"
make_vmdk "$T/data/big.raw" "$T/data/big.vmdk"
expect_status 413 "$R" "${OCT[@]}" -X POST -T "$T/data/big.vmdk" "$BASE/upload?name=big.img"
check "413 code LIMIT" test "$(json_get "$R" code)" = LIMIT
expect_status 413 "$R" "${OCT[@]}" -X POST -T "$T/data/big.raw" "$BASE/upload?name=big.img&src=raw"
cp "$T/data/big.vmdk" "$T/export/big.vmdk"
expect_status 413 "$R" "$BASE/export?path=big.vmdk"
check "413 left nothing" no_leftovers

# ---- 422
head -c 200000 "$T/data/disk.vmdk" >"$T/data/trunc.vmdk"
# version 99: valid magic, unsupported variant (415); a grain marker whose
# compressed size is absurd: malformed (422)
python3 - "$T/data/disk.vmdk" "$T/data/v99.vmdk" "$T/data/garbage.vmdk" <<'PY'
import struct, sys
src = bytearray(open(sys.argv[1], "rb").read())
v99 = bytearray(src); v99[4:8] = struct.pack("<I", 99)
open(sys.argv[2], "wb").write(v99)
over = struct.unpack_from("<Q", src, 64)[0]  # overHead, in sectors
struct.pack_into("<I", src, over * 512 + 8, 0xFFFFFFF0)
open(sys.argv[3], "wb").write(src)
PY
expect_status 422 "$R" "${OCT[@]}" -X POST -T "$T/data/trunc.vmdk" "$BASE/upload?name=t.img"
check "422 truncated: code" test "$(json_get "$R" code)" = TRUNCATED -o "$(json_get "$R" code)" = FORMAT
expect_status 422 "$R" "${OCT[@]}" -X POST -T "$T/data/garbage.vmdk" "$BASE/upload?name=g.img"
check "422 bad grain marker: code FORMAT" test "$(json_get "$R" code)" = FORMAT
expect_status 415 "$R" "${OCT[@]}" -X POST -T "$T/data/v99.vmdk" "$BASE/upload?name=g.img"
check "415 VMDK version 99: code UNSUPPORTED" test "$(json_get "$R" code)" = UNSUPPORTED
expect_status 422 "$R" -F "file=@$T/data/trunc.vmdk" "$BASE/upload?name=t.img"
expect_status 422 "$R" "${OCT[@]}" -X POST -T "$T/data/disk.raw" "$BASE/upload?name=r.img&src=vmdk"
sum=$(sha256sum <"$T/data/disk.vmdk" | cut -d' ' -f1)
wrong=$(printf '%s' "$sum" | tr 0-9a-f 1-9a-f0)
expect_status 422 "$R" "${OCT[@]}" -X POST -T "$T/data/disk.vmdk" "$BASE/upload?name=s.img&sha256=$wrong"
check "sha256 mismatch names both digests" grep -q "$wrong.*$sum" "$R"
check "sha256 mismatch: code INTEGRITY" test "$(json_get "$R" code)" = INTEGRITY
expect_status 422 "$R" -F "file=@$T/data/disk.vmdk" "$BASE/upload?name=s.img&sha256=$wrong"
check "multipart sha256 mismatch: code INTEGRITY" test "$(json_get "$R" code)" = INTEGRITY
expect_status 422 "$R" "${OCT[@]}" -X POST --data-binary '' "$BASE/upload?name=empty.img"
check "empty body: message" grep -q 'empty, not a disk image' "$R"
expect_status 422 "$R" -H 'Transfer-Encoding: chunked' "${OCT[@]}" -X POST -T /dev/null "$BASE/upload?name=empty.img"
: >"$T/data/empty"
expect_status 422 "$R" -F "file=@$T/data/empty" "$BASE/upload?name=empty.img"
check "422s left nothing" no_leftovers
expect_status 200 "$R" "${OCT[@]}" -X POST -T "$T/data/disk.vmdk" "$BASE/upload?name=s.img&sha256=$sum"
echo s.img >>"$T/keep"
expect_status 200 "$R" -F "file=@$T/data/disk.vmdk" "$BASE/upload?name=s2.img&sha256=${sum^^}"
echo s2.img >>"$T/keep"
check "sha256 match: same disk" same_image "$T/out/s2.img" raw "$T/data/disk.raw" raw

# ---- 499: the client goes away mid-upload
head -c $((8 * MiB)) /dev/urandom >"$T/data/rand.raw"
curl -s -o /dev/null --limit-rate 1M --max-time 2 "${OCT[@]}" -X POST -T "$T/data/rand.raw" \
	"$BASE/upload?name=gone.img"
for _ in $(seq 50); do log_has 'POST /upload 499' && break; sleep 0.1; done
check "client gone: logged as 499" log_has 'POST /upload 499 .*error="request body'
check "client gone: nothing left" no_leftovers

# ---- an export that breaks off after the headers
# (3 MiB of random data, cut at 2.5 MiB: the raw writer has sent bytes by then)
head -c $((3 * MiB)) /dev/urandom >"$T/data/r3.raw"
make_vmdk "$T/data/r3.raw" "$T/data/r3.vmdk"
head -c $((5 * MiB / 2)) "$T/data/r3.vmdk" >"$T/export/trunc.vmdk"
rc=0
curl -s -S -f -o "$R" -D "$H" --max-time 20 "$BASE/export?path=trunc.vmdk&dst=raw" 2>"$T/curl.err" || rc=$?
check "broken raw export: curl fails (rc=$rc)" test "$rc" != 0 -a "$rc" != 28
check "broken raw export: 200 with Content-Length was announced" grep -qi "^Content-Length: $((3 * MiB))" "$H"
check "broken raw export: short body" test "$(stat -c %s "$R")" -lt $((3 * MiB))
rc=0
curl -s -S -o "$R" --max-time 20 "$BASE/export?path=trunc.vmdk&dst=vmdk" 2>"$T/curl.err" || rc=$?
check "broken vmdk export (chunked): curl fails (rc=$rc)" test "$rc" != 0 -a "$rc" != 28
check "broken export: logged as aborted" log_has 'GET /export 422 .* aborted error='
expect_status 200 "$R" "$BASE/status"
check "pool still complete after aborts" test "$(json_get "$R" workers)" = 2

# ---- 507: disk full (tmpfs of 24 MiB)
if $SMALL; then
	head -c $((32 * MiB)) /dev/urandom >"$T/data/huge.raw"
	expect_status 507 "$R" "${OCT[@]}" -X POST -T "$T/data/huge.raw" "$BASE/upload?name=full.img"
	check "507 code NOSPACE" test "$(json_get "$R" code)" = NOSPACE
	truncate -s 48M "$T/data/mid.raw"
	printf 'x' | dd of="$T/data/mid.raw" conv=notrunc status=none
	make_vmdk "$T/data/mid.raw" "$T/data/mid.vmdk"
	expect_status 507 "$R" "${OCT[@]}" -X POST -T "$T/data/mid.vmdk" "$BASE/upload?name=pre.img&prealloc=true"
	check "507s left nothing" no_leftovers
	check "free space is back" test "$(df -k --output=avail "$T/out" | tail -1)" -gt 20000
fi

server_stop TERM
finish
