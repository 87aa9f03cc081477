#!/bin/bash
# faults.sh - failures in the middle of a request (issue 7, "Faults"): an
# upstream that breaks off for good (no bytes, no Range support, a resource
# that changes under a resume, a chunked body without its end) is answered
# 502 with nothing left in outdir, while one that can be resumed (a stall,
# a reset, a missing last chunk) gives exactly the source disk; a client that goes away mid-export or
# mid-multipart-upload frees its worker (busyWorkers back to 1: the /status
# request itself) within seconds, leaves nothing, and the next request works.
. "$(dirname "$0")/lib.sh"
srv_init
nginx_start
WORKERS=2
server_start -import-allow-net 127.0.0.0/8 -import-retries 2 -import-idle-timeout 2

R=$T/reply
mkdir -p "$T/www"
make_raw "$T/data/disk.raw" 4
make_vmdk "$T/data/disk.raw" "$T/www/disk.vmdk"
head -c $((48 * MiB)) /dev/urandom >"$T/export/big.raw"
python3 "$top_srcdir/tests/tools/httpd.py" --root "$T/www" --port-file "$T/httpd.port" \
	--log "$T/httpd.log" &
HTTPD_PID=$!
trap 'kill $HTTPD_PID 2>/dev/null; srv_cleanup' EXIT
for _ in $(seq 100); do [ -s "$T/httpd.port" ] && break; sleep 0.05; done
UP="http://127.0.0.1:$(cat "$T/httpd.port")"

nothing_left() { test -z "$(ls -A "$T/out")"; }
# idle: within 10 s, /status says only its own worker is busy.
idle() {
	local i
	for i in $(seq 100); do
		req "$R" "$BASE/status" >/dev/null
		[ "$(json_get "$R" busyWorkers)" = 1 ] && return 0
		sleep 0.1
	done
	return 1
}

# ---- upstreams that break off for good: 502, nothing left
n=0
for q in "cut=0" "cut=300000&noranges=1" "cut=300000&times=1&change=1" "fail=503"; do
	n=$((n + 1))
	expect_status 502 "$R" --max-time 60 -G --data-urlencode "url=$UP/f/disk.vmdk?$q" \
		--data-urlencode "name=up$n.img" "$BASE/import"
	check "upstream '$q': code REMOTE" test "$(json_get "$R" code)" = REMOTE
	check "upstream '$q': nothing left" nothing_left
	rm -rf "${T:?}"/out/* "$T"/out/.[!.]*
done
check "the resource change was caught by If-Range, not mixed in" grep -q 'if-range=' "$T/httpd.log"
# ... and ones that break off but can be resumed: the same disk, exactly.
for q in "chunked=1&noend=1" "stall=300000&hold=30" "cut=100000&rst=1&times=2"; do
	n=$((n + 1))
	expect_status 200 "$R" --max-time 60 -G --data-urlencode "url=$UP/f/disk.vmdk?$q" \
		--data-urlencode "name=up$n.img" "$BASE/import"
	check "upstream '$q': resumed into the same disk" \
		same_image "$T/out/up$n.img" raw "$T/data/disk.raw" raw
	rm -rf "${T:?}"/out/* "$T"/out/.[!.]*
done

# ---- the client goes away mid-export
curl -s -o /dev/null --limit-rate 500K --max-time 2 "$BASE/export?path=big.raw&dst=vmdk"
check "client gone mid-export (vmdk): worker freed" idle
curl -s -o /dev/null --limit-rate 500K --max-time 2 "$BASE/export?path=big.raw&dst=raw"
check "client gone mid-export (raw): worker freed" idle
for i in $(seq 50); do log_has 'GET /export 499' && break; sleep 0.1; done
check "mid-export departures logged as 499" log_has 'GET /export 499'
check "export departures left nothing" nothing_left

# ---- the client goes away mid-multipart-upload
curl -s -o /dev/null --limit-rate 1M --max-time 2 -F "file=@$T/export/big.raw" \
	"$BASE/upload?name=mp.vmdk&dst=vmdk&src=raw"
check "client gone mid-multipart-upload: worker freed" idle
check "mid-upload departure left nothing (no temporary)" nothing_left

# ---- and the pool serves on
expect_status 200 "$R" -G --data-urlencode "url=$UP/f/disk.vmdk" --data-urlencode name=after.img "$BASE/import"
check "after the faults: a good import converts" same_image "$T/out/after.img" raw "$T/data/disk.raw" raw
check "no worker died" test "$(workers_alive)" -eq "$WORKERS"
server_stop TERM
finish
