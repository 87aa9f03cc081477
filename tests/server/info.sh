#!/bin/bash
# info.sh - GET /info?path= and POST /info through nginx: the reply is
# `dsc-img info --output=json --header-only`'s object (compared with
# qemu-img info on format, virtual size, cluster size and format-specific
# fields), for files under the export roots and for uploaded bodies (raw
# octet-stream, chunked, multipart); a large POST is answered after its
# header is read, without waiting for the body; nothing is written to the
# output directory; a backing file is reported, not opened; errors are
# JSON: 400 (no path, unknown parameter), 403 (outside the roots), 404,
# 405, 415, 422 (a damaged header).
. "$(dirname "$0")/lib.sh"
srv_init
nginx_start
server_start

R=$T/reply
CMP="python3 $top_srcdir/tests/cli/img_cmp.py"
make_raw "$T/data/disk.raw" 8
qemu-img convert -q -f raw -O qcow2 -o compression_type=zstd "$T/data/disk.raw" "$T/export/disk.qcow2"
make_vmdk "$T/data/disk.raw" "$T/export/disk.vmdk"
qemu-img convert -q -f raw -O vpc -o subformat=fixed "$T/data/disk.raw" "$T/export/fixed.vhd"
qemu-img convert -q -f raw -O vhdx "$T/data/disk.raw" "$T/export/disk.vhdx"

# agrees FILE QFMT [--no-names]: the reply in $R agrees with qemu-img info
# on FILE (--no-names: a body has no file name to compare).
agrees() {
	qemu-img info -f "$2" --output=json "$1" >"$T/q.json" && $CMP info "$R" "$T/q.json" ${3:-}
}

# ---- GET
for f in "disk.qcow2 qcow2" "disk.vmdk vmdk" "fixed.vhd vpc" "disk.vhdx vhdx"; do
	read -r name qf <<<"$f"
	expect_status 200 "$R" -G --data-urlencode "path=$name" "$BASE/info"
	check "GET $name: agrees with qemu-img info" agrees "$T/export/$name" "$qf"
	check "GET $name: filename is the path given" test "$(json_get "$R" filename)" = "$name"
	check "GET $name: actual-size is the file's" \
		test "$(json_get "$R" actual-size)" -eq $(($(stat -c %b "$T/export/$name") * 512))
	check "GET $name: header only (no data walk)" test -z "$(json_get "$R" dsc-data-bytes)"
done
expect_status 200 "$R" -G --data-urlencode "path=disk.qcow2" --data-urlencode src=qcow2 "$BASE/info"
expect_status 422 "$R" -G --data-urlencode "path=disk.vmdk" --data-urlencode src=qcow2 "$BASE/info"
qemu-img create -q -f qcow2 -u -b /etc/passwd -F raw "$T/export/overlay.qcow2" 8M
expect_status 200 "$R" -G --data-urlencode "path=overlay.qcow2" "$BASE/info"
check "GET overlay: backing-filename reported" test "$(json_get "$R" backing-filename)" = /etc/passwd
check "GET overlay: backing-filename-format" test "$(json_get "$R" backing-filename-format)" = raw
expect_status 400 "$R" "$BASE/info"
expect_status 400 "$R" -G --data-urlencode "path=disk.qcow2" --data-urlencode bogus=1 "$BASE/info"
expect_status 403 "$R" -G --data-urlencode "path=/etc/passwd" "$BASE/info"
expect_status 403 "$R" -G --data-urlencode "path=../data/disk.raw" "$BASE/info"
expect_status 404 "$R" -G --data-urlencode "path=nosuch.qcow2" "$BASE/info"
expect_status 405 "$R" -X DELETE "$BASE/info"
head -c 300 "$T/export/disk.qcow2" >"$T/export/cut.qcow2"
expect_status 422 "$R" -G --data-urlencode "path=cut.qcow2" "$BASE/info"
check "GET cut qcow2: the error names the file" grep -q 'cut.qcow2' "$R"

# ---- POST
expect_status 200 "$R" -H 'Content-Type: application/octet-stream' \
	--data-binary "@$T/export/disk.qcow2" "$BASE/info"
check "POST qcow2: agrees with qemu-img info" agrees "$T/export/disk.qcow2" qcow2
check "POST qcow2: no actual-size (not a file)" test -z "$(json_get "$R" actual-size)"
expect_status 200 "$R" -T "$T/export/disk.vmdk" -X POST -H 'Transfer-Encoding: chunked' "$BASE/info"
check "POST vmdk chunked: agrees with qemu-img info" agrees "$T/export/disk.vmdk" vmdk --no-names
expect_status 200 "$R" -F "file=@$T/export/disk.vhdx" "$BASE/info"
check "POST vhdx multipart: agrees with qemu-img info" agrees "$T/export/disk.vhdx" vhdx
gzip -c "$T/export/disk.vmdk" >"$T/data/disk.vmdk.gz"
expect_status 200 "$R" -T "$T/data/disk.vmdk.gz" -X POST "$BASE/info"
check "POST vmdk.gz: vmdk inside gzip" \
	test "$(json_get "$R" format)/$(json_get "$R" dsc-compression)" = vmdk/gzip
expect_status 415 "$R" -H 'Content-Type: text/plain' --data-binary "@$T/export/disk.qcow2" "$BASE/info"
expect_status 422 "$R" -H 'Content-Type: application/octet-stream' \
	--data-binary "@$T/export/cut.qcow2" "$BASE/info"
# A large body (a 1 GiB qcow2 holding 256 MiB of data): the worker replies
# once the header is read; its log line counts the body bytes it read.
qemu-img create -q -f qcow2 "$T/data/big.qcow2" 1G
qemu-io -f qcow2 -c "write -P 7 0 256M" "$T/data/big.qcow2" >/dev/null
expect_status 200 "$R" -m 60 -T "$T/data/big.qcow2" -X POST -H 'X-Test: big' "$BASE/info"
check "POST a large body: the worker read under 4 MiB of it" \
	log_has 'POST /info 200 in=[0-9]{1,6} |POST /info 200 in=[1-3][0-9]{6} '
check "POST a large body: virtual size 1 GiB" test "$(json_get "$R" virtual-size)" = 1073741824
check "nothing written to the output directory" test -z "$(ls -A "$T/out")"
finish
