#!/bin/bash
# fcgi_records.sh - malformed FastCGI records sent straight to dsc-server's
# socket (issue 7): each kills at most one worker, the pool replaces it,
# and requests through nginx keep succeeding, with nothing left in outdir.
#
# Records (FastCGI 1.0, section 3.3): the CVE-2025-23016 PARAMS lengths
# (nameLen = valueLen = 0x7ffffffe, which Debian's libfcgi still aborts on),
# 0x7fffffff lengths, a name-value pair longer than its record, a bad
# version, an unknown record type and role, a record cut in its header or
# body, a declared 64 KiB body that never comes, STDIN before PARAMS end,
# 20,000 tiny PARAMS, a second BEGIN_REQUEST, random bytes, and a client
# that connects and sends nothing. After each, an upload through nginx must
# convert, and the number of worker pids replaced must be 0 or 1.
. "$(dirname "$0")/lib.sh"
srv_init
nginx_start
WORKERS=2
server_start

R=$T/reply
OCT=(-H 'Content-Type: application/octet-stream')
make_raw "$T/data/disk.raw" 1
make_vmdk "$T/data/disk.raw" "$T/data/disk.vmdk"

# send CASE: one malformed connection; prints what the worker answered.
send() {
	python3 - "$T/dsc.sock" "$1" <<'PY'
import os, random, socket, struct, sys
path, case = sys.argv[1:3]

def rec(typ, content, rid=1, version=1, clen=None, pad=0):
    n = len(content) if clen is None else clen
    return struct.pack('>BBHHBB', version, typ, rid, n, pad, 0) + content + bytes(pad)

def nvlen(n):
    return struct.pack('>B', n) if n < 128 else struct.pack('>I', n | 0x80000000)

def pair(name, value):
    return nvlen(len(name)) + nvlen(len(value)) + name + value

BEGIN = rec(1, struct.pack('>HB5x', 1, 0))
OKP = (pair(b'REQUEST_METHOD', b'GET') + pair(b'REQUEST_URI', b'/status') +
       pair(b'DOCUMENT_URI', b'/status') + pair(b'SCRIPT_NAME', b'/status'))
cases = {
    'cve-2025-23016': BEGIN + rec(4, b'\xff\xff\xff\xfe\xff\xff\xff\xfe' + b'A' * 64) + rec(4, b''),
    'lengths-7fffffff': BEGIN + rec(4, b'\xff\xff\xff\xff\xff\xff\xff\xff' + b'B' * 64) + rec(4, b''),
    'pair-past-record': BEGIN + rec(4, nvlen(200) + nvlen(5) + b'short') + rec(4, b''),
    'bad-version': rec(1, struct.pack('>HB5x', 1, 0), version=7) + rec(4, OKP) + rec(4, b''),
    'unknown-type': BEGIN + rec(99, b'xxxxxxxx') + rec(4, OKP) + rec(4, b'') + rec(5, b''),
    'unknown-role': rec(1, struct.pack('>HB5x', 77, 0)) + rec(4, OKP) + rec(4, b''),
    'cut-header': BEGIN + b'\x01\x04\x00',
    'cut-body': BEGIN + rec(4, OKP)[:20],
    'body-never-comes': BEGIN + rec(4, b'', clen=65535),
    'stdin-before-params-end': BEGIN + rec(5, b'data before params') + rec(4, OKP) + rec(4, b''),
    'many-params': BEGIN + b''.join(rec(4, pair(b'X%05d' % i, b'v')) for i in range(20000)) + rec(4, OKP) + rec(4, b'') + rec(5, b''),
    'two-begins': BEGIN + BEGIN + rec(4, OKP) + rec(4, b'') + rec(5, b''),
    'random-bytes': bytes(random.Random(7).getrandbits(8) for _ in range(5000)),
    'silent': b'',
}
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(path)
try:
    s.sendall(cases[case])
    if case in ('cut-header', 'cut-body', 'random-bytes'):
        s.shutdown(socket.SHUT_WR)
    got = b''
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
except OSError as e:
    got = ('(%s)' % e.__class__.__name__).encode()
print(repr(got[:80]))
PY
}

upload_ok() {
	local n=$1
	expect_status 200 "$R" "${OCT[@]}" -X POST -T "$T/data/disk.vmdk" "$BASE/upload?name=u$n.img" &&
		same_image "$T/out/u$n.img" raw "$T/data/disk.raw" raw
}

wait_pool() {
	local i
	for i in $(seq 100); do
		[ "$(workers_alive)" -ge "$WORKERS" ] && return 0
		sleep 0.05
	done
	return 1
}

n=0
for c in cve-2025-23016 lengths-7fffffff pair-past-record bad-version unknown-type unknown-role \
	cut-header cut-body body-never-comes stdin-before-params-end many-params two-begins \
	random-bytes silent; do
	n=$((n + 1))
	before=$(workers | tr '\n' ' ')
	got=$(timeout 20 bash -c "$(declare -f send); T='$T'; send $c" 2>&1)
	wait_pool
	after=$(workers | tr '\n' ' ')
	gone=0
	for w in $before; do [[ " $after " == *" $w "* ]] || gone=$((gone + 1)); done
	check "$c: at most one worker lost ($gone; answer $got)" test "$gone" -le 1
	check "$c: the pool is back to $WORKERS workers" test "$(workers_alive)" -ge "$WORKERS"
	check "$c: an upload through nginx still converts" upload_ok "$n"
done
check "the master is alive" kill -0 "$SERVER_PID"
check "no temporary left in outdir" test -z "$(ls -A "$T/out" | grep '^\.')"
server_stop TERM
finish
