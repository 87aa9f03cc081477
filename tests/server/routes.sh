#!/bin/bash
# routes.sh - every route of dsc-server behind nginx: uploads (octet-stream
# with and without Content-Length, multipart), exports, status, and the
# parameter errors (400, 404, 405, 409, 415). Outputs are judged by
# qemu-img compare against their source.
. "$(dirname "$0")/lib.sh"
srv_init
need vhdiinfo
nginx_start
server_start

R=$T/reply
make_raw "$T/data/disk.raw" 4
make_vmdk "$T/data/disk.raw" "$T/data/disk.vmdk"

if [ "$(id -u)" = 0 ]; then
	check "socket mode 0660, group nogroup" test "$(stat -c %a:%G "$T/dsc.sock")" = 660:nogroup
else
	check "socket mode 0660" test "$(stat -c %a "$T/dsc.sock")" = 660
fi

# ---- /status
expect_status 200 "$R" "$BASE/status"
check "status: poolSize 2" test "$(json_get "$R" poolSize)" = 2
check "status: workers 2" test "$(json_get "$R" workers)" = 2
check "status: has uptimeSeconds" test -n "$(json_get "$R" uptimeSeconds)"
check "status: uptimeSeconds printed with at most 6 decimals" \
	grep -Eq '"uptimeSeconds":([0-9]+(\.[0-9]{1,6})?|[1-9](\.[0-9]{1,5})?e-0[56])[,}]' "$R"
check "status: has requestsServed" test -n "$(json_get "$R" requestsServed)"

# ---- /upload, octet-stream with Content-Length, raw -> raw
expect_status 200 "$R" -X POST -T "$T/data/disk.raw" \
	-H 'Content-Type: application/octet-stream' "$BASE/upload?name=a.img"
check "upload raw: output in outdir" test -f "$T/out/a.img"
check "upload raw: same disk" same_image "$T/out/a.img" raw "$T/data/disk.raw" raw
check "upload raw: output member" test "$(json_get "$R" output)" = "$T/out/a.img"
check "upload raw: capacityBytes" test "$(json_get "$R" capacityBytes)" = $((4 * MiB))
check "upload raw: writtenBytes" test -n "$(json_get "$R" writtenBytes)"
check "upload raw: elapsedSeconds" test -n "$(json_get "$R" elapsedSeconds)"
check "upload raw: elapsedSeconds printed with at most 6 decimals" \
	grep -Eq '"elapsedSeconds":([0-9]+(\.[0-9]{1,6})?|[1-9](\.[0-9]{1,5})?e-0[56])[,}]' "$R"
check "upload raw: format raw" test "$(json_get "$R" format)" = raw
check "upload raw: no sha256 unless asked" \
	python3 -c 'import json,sys; sys.exit("sha256" in json.load(open(sys.argv[1])))' "$R"

# ---- PUT is an upload as POST is: curl -T without -X POST, with and
# without Content-Length, and multipart
expect_status 200 "$R" -T "$T/data/disk.vmdk" "$BASE/upload?name=put.img&digest=true"
check "PUT vmdk->raw: same disk" same_image "$T/out/put.img" raw "$T/data/disk.raw" raw
check "PUT: sha256 of the bytes sent" \
	test "$(json_get "$R" sha256)" = "$(sha256sum <"$T/data/disk.vmdk" | cut -d' ' -f1)"
check "PUT: the log says PUT" grep -q 'PUT /upload 200' "$T/server.log"
expect_status 200 "$R" -T - "$BASE/upload?dst=vmdk&name=put-chunked.vmdk" <"$T/data/disk.raw"
check "PUT chunked raw->vmdk: same disk" same_image "$T/out/put-chunked.vmdk" vmdk "$T/data/disk.raw" raw
expect_status 409 "$R" -T "$T/data/disk.raw" "$BASE/upload?name=put.img"
expect_status 200 "$R" -X PUT -F "file=@$T/data/disk.raw" "$BASE/upload?name=put-form.img"
check "PUT multipart: same disk" same_image "$T/out/put-form.img" raw "$T/data/disk.raw" raw
rm -f "$T/out/put.img" "$T/out/put-chunked.vmdk" "$T/out/put-form.img"

# ---- chunked (no Content-Length), raw -> vmdk
expect_status 200 "$R" -X POST -T - -H 'Transfer-Encoding: chunked' \
	"$BASE/upload?dst=vmdk&name=b.vmdk&digest=true" <"$T/data/disk.raw"
check "chunked raw->vmdk: qemu-img check" qemu-img check -q -f vmdk "$T/out/b.vmdk"
check "chunked raw->vmdk: same disk" same_image "$T/out/b.vmdk" vmdk "$T/data/disk.raw" raw
check "chunked raw->vmdk: format vmdk" test "$(json_get "$R" format)" = vmdk
check "chunked raw->vmdk: writtenBytes = the file's size" test "$(json_get "$R" writtenBytes)" = "$(stat -c %s "$T/out/b.vmdk")"
check "chunked raw->vmdk, digest=true: sha256 of the bytes sent" \
	test "$(json_get "$R" sha256)" = "$(sha256sum <"$T/data/disk.raw" | cut -d' ' -f1)"
check "chunked raw->vmdk: descriptor names the file" \
	grep -aq '"b.vmdk"' "$T/out/b.vmdk"

# ---- compression level (issue 6): fast and best give valid, equal disks;
# the fast one is not smaller than the best one; a bad level is 400
expect_status 200 "$R" -X POST -T "$T/data/disk.raw" "$BASE/upload?dst=vmdk&name=lf.vmdk&level=fast"
check "level=fast: qemu-img check" qemu-img check -q -f vmdk "$T/out/lf.vmdk"
check "level=fast: same disk" same_image "$T/out/lf.vmdk" vmdk "$T/data/disk.raw" raw
expect_status 200 "$R" -X POST -T "$T/data/disk.raw" "$BASE/upload?dst=vmdk&name=lb.vmdk&level=9"
check "level=9: same disk" same_image "$T/out/lb.vmdk" vmdk "$T/data/disk.raw" raw
check "level=fast output >= level=9 output" \
	test "$(stat -c %s "$T/out/lf.vmdk")" -ge "$(stat -c %s "$T/out/lb.vmdk")"
expect_status 400 "$R" -X POST -T "$T/data/disk.raw" "$BASE/upload?dst=vmdk&name=lx.vmdk&level=13"
check "level=13: nothing written" test ! -e "$T/out/lx.vmdk"
expect_status 200 "$R" "$BASE/export?path=$T/out/lf.vmdk&dst=vmdk&level=fast"
check "export level=fast: same disk" same_image "$R" vmdk "$T/data/disk.raw" raw
rm -f "$T/out/lf.vmdk" "$T/out/lb.vmdk"

# ---- multipart, vmdk -> raw, with another field before the file
expect_status 200 "$R" -F note=hello -F "file=@$T/data/disk.vmdk;type=application/octet-stream" \
	"$BASE/upload?src=vmdk&dst=raw&name=c.img&digest=1"
check "multipart vmdk->raw: same disk" same_image "$T/out/c.img" raw "$T/data/disk.raw" raw
check "multipart vmdk->raw, digest=1: sha256 of the file field" \
	test "$(json_get "$R" sha256)" = "$(sha256sum <"$T/data/disk.vmdk" | cut -d' ' -f1)"

# multipart, chunked, boundary search across window edges: raw -> raw
expect_status 200 "$R" -H 'Transfer-Encoding: chunked' -F "file=@$T/data/disk.raw" \
	"$BASE/upload?name=d.img"
check "multipart chunked raw: same disk" same_image "$T/out/d.img" raw "$T/data/disk.raw" raw
check "sparse output stays sparse" \
	test "$(( $(stat -c %b "$T/out/d.img") * 512 ))" -lt $((2 * MiB))
# prealloc needs the capacity up front: a VMDK source has it in its header
expect_status 200 "$R" -F "file=@$T/data/disk.vmdk" "$BASE/upload?name=e.img&prealloc=true"
check "prealloc: same disk" same_image "$T/out/e.img" raw "$T/data/disk.raw" raw
check "prealloc: blocks allocated" \
	test "$(( $(stat -c %b "$T/out/e.img") * 512 ))" -ge $((4 * MiB))

# ---- hand-made multipart bodies: quoted boundary, preamble, other parts
# around the file, near-delimiters inside the data, and broken bodies
python3 - "$T/data" <<'PY'
import os, sys
d = sys.argv[1]
B = b"b-1"
img = bytearray(os.urandom(300000))
img += b"\r\n--b-" + b"\r\n--b" + b"\r\n-" + b"\r\n" + b"--b-1"[:4]  # prefixes only
img += bytes(1 << 20)                                    # a hole
img += b"tail\r\n--b-\r"
open(d + "/mp-content.raw", "wb").write(img)
def part(hdrs, body):
    return b"\r\n--" + B + b"\r\n" + hdrs + b"\r\n\r\n" + body
good = (b"preamble, ignored" + part(b'Content-Disposition: form-data; name="comment"', b"--b- not yet")
        + part(b"Content-Disposition: form-data; name=file; filename=\"x.raw\"\r\nContent-Type: application/octet-stream", bytes(img))
        + part(b'Content-Disposition: form-data; name="after"', b"x")
        + b"\r\n--" + B + b"--\r\nepilogue")
open(d + "/mp-good", "wb").write(good)
open(d + "/mp-cut", "wb").write(good[:200000])
open(d + "/mp-noclose", "wb").write(good[:good.rindex(b"\r\n--" + B + b"--")])
open(d + "/mp-bighdr", "wb").write(part(b"Content-Disposition: form-data; name=file\r\nX-Pad: " + b"a" * 20000, b"x") + b"\r\n--b-1--\r\n")
open(d + "/mp-filename", "wb").write(part(b'Content-Disposition: form-data; filename="file"; name="other"', b"x") + b"\r\n--b-1--\r\n")
PY
MP=(-H 'Content-Type: multipart/form-data; boundary="b-1"')
expect_status 200 "$R" "${MP[@]}" --data-binary @"$T/data/mp-good" "$BASE/upload?name=mp.img&src=raw"
check "multipart by hand: exact content" cmp -s "$T/out/mp.img" "$T/data/mp-content.raw"
expect_status 200 "$R" "${MP[@]}" -H 'Transfer-Encoding: chunked' --data-binary @"$T/data/mp-good" \
	"$BASE/upload?name=mp2.img&src=raw"
check "multipart by hand, chunked: exact content" cmp -s "$T/out/mp2.img" "$T/data/mp-content.raw"
expect_status 422 "$R" "${MP[@]}" --data-binary @"$T/data/mp-cut" "$BASE/upload?name=mpcut.img&src=raw"
check "multipart cut in the file: TRUNCATED" test "$(json_get "$R" code)" = TRUNCATED
expect_status 422 "$R" "${MP[@]}" --data-binary @"$T/data/mp-noclose" "$BASE/upload?name=mpnc.img&src=raw"
check "multipart without close delimiter: no file" test ! -e "$T/out/mpnc.img"
expect_status 413 "$R" "${MP[@]}" --data-binary @"$T/data/mp-bighdr" "$BASE/upload?name=mph.img"
expect_status 400 "$R" "${MP[@]}" --data-binary @"$T/data/mp-filename" "$BASE/upload?name=mpf.img"

# ---- default name, 409, overwrite
expect_status 200 "$R" -X POST --data-binary @"$T/data/disk.vmdk" \
	-H 'Content-Type: application/octet-stream' "$BASE/upload"
check "default name upload.img" test -f "$T/out/upload.img"
check "auto-detected vmdk" same_image "$T/out/upload.img" raw "$T/data/disk.raw" raw
before=$(stat -c %Y.%i "$T/out/upload.img")
expect_status 409 "$R" -X POST --data-binary @"$T/data/disk.vmdk" -H "Content-Type: application/octet-stream" "$BASE/upload"
check "409 code EXISTS" test "$(json_get "$R" code)" = EXISTS
check "409 leaves the file" test "$(stat -c %Y.%i "$T/out/upload.img")" = "$before"
expect_status 200 "$R" -X POST --data-binary @"$T/data/disk.vmdk" -H "Content-Type: application/octet-stream" "$BASE/upload?overwrite=true&src=raw"
check "overwrite replaced it" test "$(stat -c %s "$T/out/upload.img")" = "$(stat -c %s "$T/data/disk.vmdk")"
expect_status 200 "$R" -X POST --data-binary @"$T/data/disk.raw" -H "Content-Type: application/octet-stream" "$BASE/upload?dst=vmdk"
check "default name of a VMDK upload.vmdk" same_image "$T/out/upload.vmdk" vmdk "$T/data/disk.raw" raw

# ---- 400: names and parameters
for bad in '../x' '.hidden' 'a/b' 'a%20b' 'caf%C3%A9' "$(printf 'x%.0s' $(seq 256))" ''; do
	expect_status 400 "$R" -X POST --data-binary @"$T/data/disk.vmdk" -H "Content-Type: application/octet-stream" "$BASE/upload?name=$bad"
done
expect_status 400 "$R" -X POST --data-binary x "$BASE/upload?nmae=x.img"
expect_status 400 "$R" -X POST --data-binary x "$BASE/upload?prealloc=maybe"
expect_status 400 "$R" -X POST --data-binary x "$BASE/upload?name=%zz"
expect_status 400 "$R" -X POST --data-binary x "$BASE/upload?name=a.img&name=b.img"
expect_status 400 "$R" -X POST --data-binary x "$BASE/upload?sha256=abc"
expect_status 400 "$R" -X POST --data-binary x "$BASE/upload?digest=maybe"
check "digest=maybe: the message names digest" grep -q "digest must be true or false" "$R"
expect_status 400 "$R" -H 'Content-Type: multipart/form-data' --data-binary x "$BASE/upload?name=m.img"
expect_status 400 "$R" -F other=@"$T/data/disk.vmdk" "$BASE/upload?name=m.img"

# ---- 415
expect_status 415 "$R" -X POST -H 'Content-Type: text/plain' --data-binary x "$BASE/upload?name=t.img"
expect_status 415 "$R" -X POST --data-binary x "$BASE/upload?src=qed&name=t.img"
expect_status 415 "$R" -X POST --data-binary x "$BASE/upload?dst=parallels&name=t.img"

# ---- 404, 405
expect_status 404 "$R" "$BASE/nothing-here"
check "404 code NOTFOUND" test "$(json_get "$R" code)" = NOTFOUND
expect_status 405 "$R" "$BASE/upload"
check "405 Allow: POST, PUT" grep -qi '^Allow: POST, PUT' <(curl -s -D - -o /dev/null "$BASE/upload")
expect_status 405 "$R" -X DELETE "$BASE/upload"
expect_status 405 "$R" -X DELETE "$BASE/status"
check "405 Allow for /import" grep -qi '^Allow: GET, POST' <(curl -s -D - -o /dev/null -X PUT "$BASE/import")

# ---- /export
cp "$T/data/disk.vmdk" "$T/export/disk.vmdk"
H=$T/headers
expect_status 200 "$R" -D "$H" "$BASE/export?path=disk.vmdk&dst=raw"
check "export vmdk->raw: same disk" same_image "$R" raw "$T/data/disk.raw" raw
check "export raw: Content-Length" grep -qi "^Content-Length: $((4 * MiB))" "$H"
check "export: Content-Disposition" \
	grep -qi "^Content-Disposition: attachment; filename=\"disk.img\"; filename\*=UTF-8''disk.img" "$H"
expect_status 200 "$R" -D "$H" "$BASE/export?path=$T/out/a.img&dst=vmdk"
check "export raw->vmdk: qemu-img check" qemu-img check -q -f vmdk "$R"
check "export raw->vmdk: same disk" same_image "$R" vmdk "$T/data/disk.raw" raw
check "export vmdk: .vmdk name" grep -qi 'filename="a.vmdk"' "$H"
check "export vmdk: no Content-Length" bash -c "! grep -qi '^Content-Length' '$H'"
check "export vmdk: descriptor names the download" grep -aq '"a.vmdk"' "$R"
expect_status 404 "$R" "$BASE/export?path=missing.vmdk"
cp "$T/data/disk.vmdk" "$T/export/.partial.vmdk"
expect_status 404 "$R" "$BASE/export?path=.partial.vmdk"
curl -s -o /dev/null "$BASE/a%20b%0Aforged%20line"
check "log: client path escaped" log_has 'GET /a\\x20b\\x0aforged\\x20line 404'
check "log: no forged line" bash -c "! grep -q '^forged' '$T/server.log'"
expect_status 400 "$R" "$BASE/export"
expect_status 415 "$R" "$BASE/export?path=disk.vmdk&dst=qed"

# ---- /export of a long non-ASCII name (percent-encoded filename* used to
# overflow the header buffer, dropping Content-Length and the blank line, so
# the image's first bytes were parsed as headers)
long=$(python3 -c 'print("\u4e2d" * 83 + ".img")')
printf 'Set-Cookie: injected=1\r\nX-Evil: yes\r\n\r\nrest-of-image' >"$T/export/$long"
truncate -s 1M "$T/export/$long"
enc=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$long")
expect_status 200 "$R" -D "$H" "$BASE/export?path=$enc"
check "long UTF-8 name: no header from the file's content" \
	bash -c "! grep -qiE '^(Set-Cookie|X-Evil):' '$H'"
check "long UTF-8 name: Content-Length" grep -qi "^Content-Length: $MiB" "$H"
check "long UTF-8 name: whole file" cmp -s "$R" "$T/export/$long"
check "long UTF-8 name: filename* is UTF-8, at most 512 bytes, keeps .img" python3 -c '
import re, sys, urllib.parse
h = open(sys.argv[1], encoding="latin-1").read()
m = re.search(r"filename\*=UTF-8\x27\x27([^\r\n;]*)", h)
enc = m.group(1)
name = urllib.parse.unquote(enc, errors="strict")
sys.exit(0 if len(enc) <= 512 and name.endswith(".img") and set(name[:-4]) == {"\u4e2d"} else 1)' "$H"
check "long UTF-8 name: ASCII fallback has one _ per character" \
	grep -qi "filename=\"$(printf '_%.0s' $(seq 83)).img\"" "$H"
expect_status 200 "$R" -D "$H" "$BASE/export?path=$enc&dst=vmdk"
check "long UTF-8 name, dst=vmdk: no header from the file's content" \
	bash -c "! grep -qiE '^(Set-Cookie|X-Evil):' '$H'"
check "long UTF-8 name, dst=vmdk: a VMDK" qemu-img check -q -f vmdk "$R"

# ---- formats from the table: refused by name, options (issue 11)
# ---- qcow2 (issue 13): a qemu-img qcow2 upload streams (detected, no spool);
# dst=qcow2 with compress; /export of a qcow2, and to qcow2 (two passes over
# the file, with Content-Length); an upload that is not stream-ordered is 422
qemu-img convert -q -f raw -O qcow2 "$T/data/disk.raw" "$T/data/disk.qcow2"
expect_status 200 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.qcow2" "$BASE/upload?name=q.img"
check "qcow2 upload: detected, converted" cmp -s "$T/out/q.img" "$T/data/disk.raw"
expect_status 200 "$R" -X POST -H "Content-Type: application/octet-stream" -T "$T/data/disk.qcow2" "$BASE/upload?name=q2.img&src=qcow2"
check "qcow2 upload, src=qcow2, chunked: converted" cmp -s "$T/out/q2.img" "$T/data/disk.raw"
expect_status 200 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.raw" "$BASE/upload?name=c.qcow2&dst=qcow2&compress=true&o=compat%3D0.10"
check "dst=qcow2 compress=true: qemu-img check" qemu-img check -q -f qcow2 "$T/out/c.qcow2"
check "dst=qcow2 compress=true: the disk" same_image "$T/out/c.qcow2" qcow2 "$T/data/disk.raw" raw
check "dst=qcow2 o=compat=0.10: version 2" bash -c "qemu-img info '$T/out/c.qcow2' | grep -q 'compat: 0.10'"
expect_status 400 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.raw" "$BASE/upload?name=c.img&compress=true"
check "compress=true with raw: 400 names it" grep -q "compress: raw output cannot be compressed" "$R"
expect_status 200 "$R" -D "$H" "$BASE/export?path=$T/out/a.img&dst=qcow2"
check "export dst=qcow2: Content-Length is the body" \
	bash -c "grep -qi \"^Content-Length: \$(stat -c %s '$R')\"\$'\\r' '$H'"
check "export dst=qcow2: qemu-img check" qemu-img check -q -f qcow2 "$R"
check "export dst=qcow2: the disk" same_image "$R" qcow2 "$T/out/a.img" raw
expect_status 422 "$R" "$BASE/export?path=$T/out/a.img&dst=qcow2&compress=true"
check "export compressed qcow2: needs a seekable output" grep -q "needs a seekable output" "$R"
# VHD: a fixed VHD streams with its Content-Length known from the capacity;
# a dynamic VHD uploads (detected), a fixed one uploads when named src=vhd.
expect_status 200 "$R" -D "$H" "$BASE/export?path=$T/out/a.img&dst=vhd&o=subformat=fixed"
check "export dst=vhd fixed: Content-Length is the body" \
	bash -c "grep -qi \"^Content-Length: \$(stat -c %s '$R')\"\$'\\r' '$H'"
check "export dst=vhd fixed: the disk" same_image "$R" vpc "$T/out/a.img" raw
check "export dst=vhd fixed: vhdiinfo opens it" vhdiinfo "$R"
check "export dst=vhd: .vhd name" grep -qi 'filename="a.vhd"' "$H"
expect_status 200 "$R" -D "$H" "$BASE/export?path=$T/out/a.img&dst=vhd"
check "export dst=vhd dynamic (two passes): Content-Length is the body" \
	bash -c "grep -qi \"^Content-Length: \$(stat -c %s '$R')\"\$'\\r' '$H'"
check "export dst=vhd dynamic: the disk" same_image "$R" vpc "$T/out/a.img" raw
check "export dst=vhd dynamic: vhdiinfo opens it" vhdiinfo "$R"
qemu-img convert -q -f raw -O vpc "$T/out/a.img" "$T/dyn.vhd"
qemu-img convert -q -f raw -O vpc -o subformat=fixed "$T/out/a.img" "$T/fix.vhd"
expect_status 200 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/dyn.vhd" "$BASE/upload?name=dv.img"
check "upload dynamic VHD: the disk" same_image "$T/out/dv.img" raw "$T/dyn.vhd" vpc
expect_status 200 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/fix.vhd" "$BASE/upload?src=vhd&name=fv.img"
check "upload fixed VHD, src=vhd: the disk" same_image "$T/out/fv.img" raw "$T/fix.vhd" vpc
rm -f "$T/out/dv.img" "$T/out/fv.img" "$T/dyn.vhd" "$T/fix.vhd"
# VDI (issue 15): a qemu-img dynamic VDI uploads (detected, streamed);
# /export to a dynamic VDI takes two passes over the file, so the exact
# Content-Length comes first; static=on streams with it known from the
# capacity.
qemu-img convert -q -f raw -O vdi "$T/out/a.img" "$T/out/dyn.vdi"
expect_status 200 "$R" -X POST -H "Content-Type: application/octet-stream" -T "$T/out/dyn.vdi" "$BASE/upload?name=di.img"
check "upload dynamic VDI (chunked): the disk" same_image "$T/out/di.img" raw "$T/out/dyn.vdi" vdi
expect_status 200 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/out/a.img" "$BASE/upload?name=u.vdi&dst=vdi"
check "upload dst=vdi: qemu-img check" qemu-img check -q -f vdi "$T/out/u.vdi"
check "upload dst=vdi: the disk" same_image "$T/out/u.vdi" vdi "$T/out/a.img" raw
for o in "" "&o=static%3Don"; do
	expect_status 200 "$R" -D "$H" "$BASE/export?path=$T/out/a.img&dst=vdi$o"
	check "export dst=vdi$o: Content-Length is the body" \
		bash -c "grep -qi \"^Content-Length: \$(stat -c %s '$R')\"\$'\\r' '$H'"
	check "export dst=vdi$o: qemu-img check" qemu-img check -q -f vdi "$R"
	check "export dst=vdi$o: the disk" same_image "$R" vdi "$T/out/a.img" raw
	check "export dst=vdi$o: .vdi name" grep -qi 'filename="a.vdi"' "$H"
done
check "export dst=vdi static=on: image type 2 (static)" python3 -c "import struct, sys; sys.exit(struct.unpack('<I', open(sys.argv[1], 'rb').read(512)[0x4c:0x50])[0] != 2)" "$R"
expect_status 200 "$R" "$BASE/export?path=$T/out/dyn.vdi"
check "export of a VDI (to raw): the disk" same_image "$R" raw "$T/out/dyn.vdi" vdi
rm -f "$T/out/di.img" "$T/out/u.vdi" "$T/out/dyn.vdi"
# 12 MiB of data, then the L1 moved to the end (past the hold-back window)
qemu-img create -q -f qcow2 "$T/data/resized.qcow2" 16M
qemu-io -c 'write -P 0x5a 0 12M' "$T/data/resized.qcow2" >/dev/null
qemu-img resize -q "$T/data/resized.qcow2" 2T
qemu-io -c 'write -P 0xa5 1G 64k' "$T/data/resized.qcow2" >/dev/null
expect_status 422 "$R" -X POST -H "Content-Type: application/octet-stream" -T "$T/data/resized.qcow2" "$BASE/upload?name=r.img"
check "qcow2 upload not stream-ordered: the message says why" grep -q "not stream-ordered.*read it from a seekable input" "$R"
check "qcow2 upload not stream-ordered: code SEEK" test "$(json_get "$R" code)" = SEEK
check "qcow2 upload not stream-ordered: no file" test ! -e "$T/out/r.img"
rm -f "$T/out/q.img"
expect_status 422 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.raw" "$BASE/upload?name=q.img&src=qcow2"
check "src=qcow2 on a raw disk: FORMAT" test "$(json_get "$R" code)" = FORMAT
check "src=qcow2 on a raw disk: named" bash -c "grep -q 'not a qcow2 image (bad magic)' '$R'"
check "src=qcow2 on a raw disk: no file" test ! -e "$T/out/q.img"
# ---- VHDX (issue 14): a qemu-img VHDX upload streams (detected); dst=vhdx
# dynamic and fixed; /export of a VHDX, and to VHDX (two passes over the
# file: the exact Content-Length comes first).
qemu-img convert -q -f raw -O vhdx -o block_size=1M "$T/data/disk.raw" "$T/data/disk.vhdx"
expect_status 200 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.vhdx" "$BASE/upload?name=x.img"
check "vhdx upload: detected, converted" same_image "$T/out/x.img" raw "$T/data/disk.vhdx" vhdx
expect_status 200 "$R" -X POST -H "Content-Type: application/octet-stream" -T "$T/data/disk.vhdx" "$BASE/upload?name=x2.img&src=vhdx"
check "vhdx upload, src=vhdx, chunked: converted" same_image "$T/out/x2.img" raw "$T/data/disk.vhdx" vhdx
expect_status 200 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.raw" "$BASE/upload?name=d.vhdx&dst=vhdx"
check "dst=vhdx: qemu-img check" qemu-img check -q -f vhdx "$T/out/d.vhdx"
check "dst=vhdx: the disk" same_image "$T/out/d.vhdx" vhdx "$T/data/disk.raw" raw
expect_status 200 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.raw" "$BASE/upload?dst=vhdx"
check "dst=vhdx without a name: upload.vhdx" same_image "$T/out/upload.vhdx" vhdx "$T/data/disk.raw" raw
expect_status 200 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.vhdx" "$BASE/upload?name=f.vhdx&dst=vhdx&o=subformat%3Dfixed%2Cblock_size%3D1M"
check "dst=vhdx o=subformat=fixed: qemu-img check" qemu-img check -q -f vhdx "$T/out/f.vhdx"
check "dst=vhdx o=subformat=fixed: the disk" same_image "$T/out/f.vhdx" vhdx "$T/data/disk.raw" raw
cp "$T/data/disk.vhdx" "$T/out/e.vhdx"
expect_status 200 "$R" "$BASE/export?path=$T/out/e.vhdx"
check "export of a vhdx: the raw disk" same_image "$R" raw "$T/data/disk.raw" raw
expect_status 200 "$R" -D "$H" "$BASE/export?path=$T/out/a.img&dst=vhdx"
check "export dst=vhdx: Content-Length is the body" \
	test "$(tr -d '\r' <"$H" | sed -n 's/^[Cc]ontent-[Ll]ength: //p')" = "$(stat -c %s "$R")"
check "export dst=vhdx: qemu-img check" qemu-img check -q -f vhdx "$R"
check "export dst=vhdx: the disk" same_image "$R" vhdx "$T/out/a.img" raw
cp "$T/data/disk.vhdx" "$T/data/dirty.vhdx"
python3 - "$T/data/dirty.vhdx" <<'PY'
import struct, sys
def crc32c(b):
    c = 0xffffffff
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ 0x82f63b78 if c & 1 else c >> 1
    return c ^ 0xffffffff
d = bytearray(open(sys.argv[1], 'rb').read())
for off in (65536, 131072):   # a log GUID in both headers
    d[off + 48:off + 64] = bytes(range(1, 17))
    d[off + 4:off + 8] = bytes(4)
    d[off + 4:off + 8] = struct.pack('<I', crc32c(bytes(d[off:off + 4096])))
open(sys.argv[1], 'wb').write(d)
PY
expect_status 422 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/dirty.vhdx" "$BASE/upload?name=dirty.img"
check "vhdx upload with a log to replay: SEEK" test "$(json_get "$R" code)" = SEEK
check "vhdx upload with a log to replay: named" grep -q "the VHDX log is not empty.*replaying it needs a seekable input" "$R"
check "vhdx with a log to replay: no file" test ! -e "$T/out/dirty.img"
qemu-img convert -q -f raw -O qed "$T/data/disk.raw" "$T/data/disk.qed"
expect_status 415 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.qed" "$BASE/upload?name=q.img"
check "qed upload: UNSUPPORTED" test "$(json_get "$R" code)" = UNSUPPORTED
check "qed upload: named" bash -c "grep -q 'a QED image; qed is not supported yet' '$R'"
check "qed upload: no file" test ! -e "$T/out/q.img"
expect_status 415 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.raw" "$BASE/upload?name=q.img&src=qed"
check "src=qed: not supported yet, readable listed" bash -c "grep -q \"reading qed is not supported yet (raw, vmdk, qcow2, vdi, vhdx, vhd, gzip, xz, zstd, bzip2, ova, auto)\" '$R'"
expect_status 415 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.raw" "$BASE/upload?name=q.img&dst=parallels"
expect_status 200 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.raw" "$BASE/upload?name=q.vhd&dst=vpc"
check "dst=vpc (the alias): a VHD of the disk" same_image "$T/out/q.vhd" vpc "$T/data/disk.raw" raw
rm -f "$T/out/q.vhd"
expect_status 415 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.raw" "$BASE/upload?name=q.img&src=nosuch"
expect_status 200 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.raw" \
	"$BASE/upload?name=ide.vmdk&src=raw&dst=vmdk&o=adapter_type%3Dide%2Chwversion%3D6"
check "o=: adapter in the descriptor" grep -aq 'ddb.adapterType = "ide"' "$T/out/ide.vmdk"
check "o=: hwversion in the descriptor" grep -aq 'ddb.virtualHWVersion = "6"' "$T/out/ide.vmdk"
check "o=: the VMDK is the disk" same_image "$T/out/ide.vmdk" vmdk "$T/data/disk.raw" raw
expect_status 400 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.raw" "$BASE/upload?name=bad.vmdk&dst=vmdk&o=foo%3D1"
check "o=foo: 400 names the key and the format's keys" bash -c "grep -q \"unknown option 'foo' (vmdk options: subformat, adapter_type, hwversion, zeroed_grain)\" '$R'"
expect_status 400 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.raw" "$BASE/upload?name=bad.vmdk&dst=vmdk&o=hwversion%3D1"
expect_status 400 "$R" -X POST -H "Content-Type: application/octet-stream" --data-binary @"$T/data/disk.raw" "$BASE/upload?name=bad.img&o=preallocation%3Dfull"
check "bad options: no file" test ! -e "$T/out/bad.vmdk" -a ! -e "$T/out/bad.img"
expect_status 200 "$R" -D "$H" "$BASE/export?path=$T/out/a.img&dst=vmdk&o=adapter_type%3Dbuslogic"
check "export o=: buslogic" grep -aq 'ddb.adapterType = "buslogic"' "$R"
expect_status 400 "$R" "$BASE/export?path=$T/out/a.img&dst=vmdk&o=nope%3D1"
cp "$T/data/disk.qcow2" "$T/export/disk.qcow2"
expect_status 200 "$R" "$BASE/export?path=$T/export/disk.qcow2"
check "export of a qcow2: the raw disk" cmp -s "$R" "$T/data/disk.raw"
expect_status 200 "$R" "$BASE/export?path=$T/export/disk.qcow2&dst=vmdk"
check "export of a qcow2: the disk" same_image "$R" vmdk "$T/data/disk.raw" raw
cp "$T/data/disk.qed" "$T/export/disk.qed"
expect_status 415 "$R" "$BASE/export?path=$T/export/disk.qed"
check "export of a qed: named" bash -c "grep -q 'a QED image' '$R'"

# ---- VMDK family (issue 15): monolithicSparse up and out, descriptors
qemu-img convert -q -f raw -O vmdk -o subformat=monolithicSparse "$T/data/disk.raw" "$T/data/ms.vmdk"
expect_status 200 "$R" -X POST -T "$T/data/ms.vmdk" "$BASE/upload?name=ms.img"
check "monolithicSparse upload: same disk" same_image "$T/out/ms.img" raw "$T/data/disk.raw" raw
expect_status 200 "$R" "$BASE/export?path=$T/out/ms.img&dst=vmdk&o=subformat=monolithicSparse"
check "export o=subformat=monolithicSparse: qemu-img check" qemu-img check -q -f vmdk "$R"
check "export o=subformat=monolithicSparse: same disk" same_image "$R" vmdk "$T/data/disk.raw" raw
qemu-img create -q -f vmdk -o subformat=monolithicFlat "$T/out/fl.vmdk" 4M
qemu-io -f vmdk -c 'write -P 0x5a 1M 64k' "$T/out/fl.vmdk" >/dev/null
expect_status 200 "$R" "$BASE/export?path=$T/out/fl.vmdk&dst=raw"
check "export of a descriptor: extents beside it" same_image "$R" raw "$T/out/fl.vmdk" vmdk
expect_status 415 "$R" -X POST -T "$T/out/fl.vmdk" "$BASE/upload?name=desc.img"
check "descriptor upload: the message says what to send" grep -q 'send the extent file' "$R"
check "descriptor upload: nothing written" test ! -e "$T/out/desc.img"
# Through a symlink to the descriptor: the extents of the file it resolves
# to; an extent that is a symlink (to a file outside the roots) is refused.
ln -s fl.vmdk "$T/out/fl-link.vmdk"
expect_status 200 "$R" "$BASE/export?path=$T/out/fl-link.vmdk&dst=raw"
check "export through a symlinked descriptor: same disk" same_image "$R" raw "$T/out/fl.vmdk" vmdk
sed 's/fl-flat.vmdk/esc-flat.vmdk/' "$T/out/fl.vmdk" >"$T/out/esc.vmdk"
ln -s "$T/data/disk.raw" "$T/out/esc-flat.vmdk"
expect_status 415 "$R" "$BASE/export?path=$T/out/esc.vmdk&dst=raw"
check "export: a symlinked extent is refused by name" grep -q 'extent \\"esc-flat.vmdk\\" is a symbolic link' "$R"
rm -f "$T/out/ms.img" "$T/out/fl.vmdk" "$T/out/fl-flat.vmdk" "$T/out/fl-link.vmdk" "$T/out/esc.vmdk" \
	"$T/out/esc-flat.vmdk"

# ---- compressed images (issue 16): an upload of a .raw.xz and of a
# .vmdk.gz converts what is inside; an export of a .qcow2.zst streams it
# decompressed; a truncated upload is a 422 with nothing left.
xz -T2 -c "$T/data/disk.raw" >"$T/data/disk.raw.xz"
gzip -c "$T/data/disk.vmdk" >"$T/data/disk.vmdk.gz"
expect_status 200 "$R" -X POST -T "$T/data/disk.raw.xz" "$BASE/upload?name=xz.qcow2&dst=qcow2"
check "upload raw.xz -> qcow2: qemu-img check" qemu-img check -q -f qcow2 "$T/out/xz.qcow2"
check "upload raw.xz -> qcow2: same disk" same_image "$T/out/xz.qcow2" qcow2 "$T/data/disk.raw" raw
check "upload raw.xz: sourceCompression xz" test "$(json_get "$R" sourceCompression)" = xz
check "upload raw.xz: sourceFormat raw" test "$(json_get "$R" sourceFormat)" = raw
expect_status 200 "$R" -X POST -T - -H 'Transfer-Encoding: chunked' "$BASE/upload?name=gz.img" <"$T/data/disk.vmdk.gz"
check "chunked upload vmdk.gz -> raw: same disk" same_image "$T/out/gz.img" raw "$T/data/disk.raw" raw
qemu-img convert -f raw -O qcow2 "$T/data/disk.raw" "$T/export/disk.qcow2"
zstd -q -c "$T/export/disk.qcow2" >"$T/export/disk.qcow2.zst"
expect_status 200 "$R" -D "$H" "$BASE/export?path=disk.qcow2.zst&dst=vmdk"
check "export qcow2.zst -> vmdk: qemu-img check" qemu-img check -q -f vmdk "$R"
check "export qcow2.zst -> vmdk: same disk" same_image "$R" vmdk "$T/data/disk.raw" raw
head -c 100000 "$T/data/disk.raw.xz" >"$T/data/cut.xz"
expect_status 422 "$R" -X POST -T "$T/data/cut.xz" "$BASE/upload?name=cut.img"
check "truncated xz upload: 422 names the layer" grep -q 'xz: truncated' "$R"
check "truncated xz upload: nothing left" test ! -e "$T/out/cut.img"
rm -f "$T/out/xz.qcow2" "$T/out/gz.img" "$T/export/disk.qcow2" "$T/export/disk.qcow2.zst"
# OVAs (issue 16): an upload converts the first disk; a wrong digest in a
# manifest at the end is a 422 and leaves nothing.
python3 "$top_srcdir/tests/cli/gen_ova.py" "$T/data/app.ova" "$T/data/disk.vmdk" --mf last
python3 "$top_srcdir/tests/cli/gen_ova.py" "$T/data/bad.ova" "$T/data/disk.vmdk" --mf last --bad-digest disk.vmdk
expect_status 200 "$R" -X POST -T "$T/data/app.ova" "$BASE/upload?name=app.qcow2&dst=qcow2"
check "upload OVA -> qcow2: qemu-img check" qemu-img check -q -f qcow2 "$T/out/app.qcow2"
check "upload OVA -> qcow2: same disk" same_image "$T/out/app.qcow2" qcow2 "$T/data/disk.raw" raw
check "upload OVA: sourceArchive ova" test "$(json_get "$R" sourceArchive)" = ova
expect_status 422 "$R" -X POST -T "$T/data/bad.ova" "$BASE/upload?name=bad.img"
check "OVA with a wrong digest: 422 names the manifest" grep -q 'OVA manifest: the SHA256 of disk.vmdk' "$R"
check "OVA with a wrong digest: nothing left" test ! -e "$T/out/bad.img"
# /export dst=ova: streamed, so the VMDK comes in ovf:chunkSize members;
# dsc reads the download back, Python checks its order and manifest.
expect_status 200 "$R" -D "$H" "$BASE/export?path=disk.vmdk&dst=ova"
check "export dst=ova: .ova name" grep -qi 'filename="disk.ova"' "$H"
mkdir -p "$T/ovax"
check "export dst=ova: tar order and manifest" python3 "$top_srcdir/tests/cli/ova_check.py" "$R" disk "$T/ovax"
check "export dst=ova: the VMDK passes qemu-img check" qemu-img check -q -f vmdk "$T/ovax/disk.vmdk"
check "export dst=ova: the disk" same_image "$T/ovax/disk.vmdk" vmdk "$T/data/disk.raw" raw
expect_status 200 "$R" -X POST -T "$T/data/disk.raw" "$BASE/upload?name=up.ova&dst=ova&o=cpus%3D4"
check "upload dst=ova: the OVF has 4 CPUs" bash -c "tar -xOf '$T/out/up.ova' up.ovf | grep -q '<rasd:VirtualQuantity>4</rasd:VirtualQuantity>'"
rm -rf "$T/out/app.qcow2" "$T/out/up.ova" "$T/ovax"

# ---- nothing left behind (no temporaries in outdir)
check "no temporary files in outdir" test -z "$(ls -A "$T/out" | grep '^\.')"

# ---- one log line per request
check "log line per request" log_has 'POST /upload 200 in=[0-9]+ out=[0-9]+ [0-9.]+s'
check "log line with error" log_has 'POST /upload 409 .* error="'
expect_status 200 "$R" "$BASE/status"
check "status: requestsServed counts" test "$(json_get "$R" requestsServed)" -ge 30

server_stop TERM
check "master exits 0 on TERM" test $? = 0
finish
