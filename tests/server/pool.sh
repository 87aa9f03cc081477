#!/bin/bash
# pool.sh - the pre-fork pool under nginx: more parallel requests than
# workers, a worker SIGKILLed mid-request (replaced, its temporary file
# removed, the pool keeps serving), SIGHUP replacing every worker without
# failing a request, -max-requests recycling, crash-loop backoff, and the
# workers leaving when the master dies.
. "$(dirname "$0")/lib.sh"
srv_init
nginx_start
WORKERS=2
server_start

R=$T/reply
OCT=(-H 'Content-Type: application/octet-stream')
make_raw "$T/data/disk.raw" 4
make_vmdk "$T/data/disk.raw" "$T/data/disk.vmdk"
head -c $((6 * MiB)) /dev/urandom >"$T/data/rand.raw"

# wait_temp: until an upload has its temporary file in outdir
wait_temp() {
	local i
	for i in $(seq 100); do
		ls -A "$T/out" | grep -q '^\.' && return 0
		sleep 0.05
	done
	return 1
}

# worker_writing: the worker that holds a file open in outdir
worker_writing() {
	local w
	for w in $(workers); do
		if ls -l "/proc/$w/fd" 2>/dev/null | grep -q -- "$T/out/\."; then
			echo "$w"
			return 0
		fi
	done
	return 1
}

wait_workers() {
	local i
	for i in $(seq 100); do
		[ "$(workers_alive)" = "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# ---- 6 parallel uploads on 2 workers (vmdk -> raw and raw -> vmdk)
pids=()
for i in 1 2 3 4 5 6; do
	if [ $((i % 2)) = 0 ]; then
		curl -s -o "$T/r$i" -w '%{http_code}' "${OCT[@]}" -X POST -T "$T/data/disk.vmdk" \
			"$BASE/upload?name=p$i.img" >"$T/s$i" &
	else
		curl -s -o "$T/r$i" -w '%{http_code}' -F "file=@$T/data/disk.raw" \
			"$BASE/upload?name=p$i.vmdk&dst=vmdk" >"$T/s$i" &
	fi
	pids+=($!)
done
wait "${pids[@]}"
for i in 1 2 3 4 5 6; do
	check "parallel upload $i: 200" test "$(cat "$T/s$i")" = 200
	if [ $((i % 2)) = 0 ]; then
		check "parallel upload $i: same disk" same_image "$T/out/p$i.img" raw "$T/data/disk.raw" raw
	else
		check "parallel upload $i: same disk" same_image "$T/out/p$i.vmdk" vmdk "$T/data/disk.raw" raw
	fi
done
pids=()
for i in 1 2 3 4 5 6 7; do
	curl -s -o "$T/e$i" -w '%{http_code}' "$BASE/export?path=$T/out/p2.img&dst=vmdk" >"$T/es$i" &
	pids+=($!)
done
wait "${pids[@]}"
ok=0
for i in 1 2 3 4 5 6 7; do
	[ "$(cat "$T/es$i")" = 200 ] && same_image "$T/e$i" vmdk "$T/data/disk.raw" raw && ok=$((ok + 1))
done
check "7 parallel exports, all complete and equal ($ok)" test "$ok" = 7

# ---- SIGKILL a worker in the middle of an upload
before=$(workers | tr '\n' ' ')
curl -s -o "$R" -w '%{http_code}' --limit-rate 1M "${OCT[@]}" -X POST -T "$T/data/rand.raw" \
	"$BASE/upload?name=killed.img" >"$T/killed.status" &
cpid=$!
wait_temp
victim=$(worker_writing)
check "found the busy worker ($victim)" test -n "$victim"
[ -n "$victim" ] && kill -KILL "$victim"
wait $cpid
check "killed request failed (status $(cat "$T/killed.status"))" test "$(cat "$T/killed.status")" != 200
check "killed worker replaced" wait_workers 2
after=$(workers | tr '\n' ' ')
check "a new worker pid ($before -> $after)" test "$before" != "$after"
check "master logged the kill" log_has "worker $victim killed by signal 9"
check "master removed the temporary file" log_has "removed $T/out/\.killed\.img\."
check "nothing left of the killed upload" test -z "$(ls -A "$T/out" | grep killed)"
expect_status 200 "$R" "${OCT[@]}" -X POST -T "$T/data/disk.vmdk" "$BASE/upload?name=after-kill.img"
check "pool serves after the kill" same_image "$T/out/after-kill.img" raw "$T/data/disk.raw" raw

# ---- SIGHUP: replace every worker; no request fails meanwhile
before=$(workers | tr '\n' ' ')
curl -s -o "$R" -w '%{http_code}' --limit-rate 2M "${OCT[@]}" -X POST -T "$T/data/rand.raw" \
	"$BASE/upload?name=hup.img" >"$T/hup.status" &
cpid=$!
wait_temp
(
	for i in $(seq 40); do
		curl -s -o /dev/null -w '%{http_code}\n' "$BASE/status"
		sleep 0.05
	done
) >"$T/hup.statuses" &
lpid=$!
kill -HUP "$SERVER_PID"
wait $cpid $lpid
check "upload across SIGHUP: 200" test "$(cat "$T/hup.status")" = 200
check "upload across SIGHUP: same data" cmp -s "$T/out/hup.img" "$T/data/rand.raw"
check "40 requests during SIGHUP, all 200" test "$(grep -c '^200$' "$T/hup.statuses")" = 40
wait_workers 2
after=$(workers | tr '\n' ' ')
common=$(comm -12 <(tr ' ' '\n' <<<"$before" | sort) <(tr ' ' '\n' <<<"$after" | sort) | grep -c .)
check "every worker replaced ($before -> $after)" test "$common" = 0
check "master logged the replacement" log_has 'master: replacing 2 workers'

# ---- crash loop: 5 kills in a row make the master back off
for i in 1 2 3 4 5; do
	wait_workers 2
	kill -KILL "$(workers | head -n 1)"
	sleep 0.1
done
for i in $(seq 40); do log_has 'keep crashing' && break; sleep 0.05; done
check "crash loop: backoff logged" log_has 'workers keep crashing; next start in 1 s'
check "crash loop: no respawn during the backoff" test "$(workers_alive)" = 1
sleep 1
check "crash loop: pool back after the backoff" wait_workers 2
expect_status 200 "$R" "$BASE/status"

server_stop TERM

# ---- -max-requests: one worker, recycled every 3 requests
WORKERS=1
server_start -max-requests 3
for i in $(seq 7); do
	curl -s -o /dev/null "$BASE/status"
done
wait_workers 1
n=$(grep 'GET /status 200' "$T/server.log" | tail -n 7 | sed 's/.*dsc-server\[\([0-9]*\)\].*/\1/' | sort -u | wc -l)
check "-max-requests 3: 7 requests served by 3 workers ($n)" test "$n" = 3

# ---- codec threads: one conversion per worker, no thread pool by default
# (workers already run in parallel); -codec-threads N gives N.
# codec_threads NAME: threads of the worker running a slow raw->VMDK upload
codec_threads() {
	local cpid w n=0
	curl -s -o /dev/null --limit-rate 2M "${OCT[@]}" -X POST -T "$T/data/rand.raw" \
		"$BASE/upload?name=$1&dst=vmdk" &
	cpid=$!
	if wait_temp && sleep 0.3 && w=$(worker_writing); then
		n=$(awk '/^Threads:/ {print $2}' "/proc/$w/status")
	fi
	wait "$cpid"
	echo "${n:-0}"
}
rm -f "$T/out/"*
n=$(codec_threads ct1.vmdk)
check "default -codec-threads 1: the converting worker has 1 thread (has $n)" test "$n" = 1
check "default -codec-threads: output is right" \
	same_image "$T/out/ct1.vmdk" vmdk "$T/data/rand.raw" raw

# ---- the workers die with the master
ws=$(workers)
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=
gone=false
for i in $(seq 60); do
	alive=0
	for w in $ws; do kill -0 "$w" 2>/dev/null && alive=1; done
	[ $alive = 0 ] && { gone=true; break; }
	sleep 0.05
done
check "workers exit when the master is killed" $gone

server_start -codec-threads 2
# The killed master's socket may still be in the way for a moment: wait
# until the new pool answers through nginx.
for i in $(seq 100); do
	[ "$(req /dev/null "$BASE/status")" = 200 ] && break
	sleep 0.1
done
n=$(codec_threads ct2.vmdk)
check "-codec-threads 2: the converting worker has 3 threads (has $n)" test "$n" = 3
check "-codec-threads 2: output is right" same_image "$T/out/ct2.vmdk" vmdk "$T/data/rand.raw" raw
for bad in -1 x 257; do
	check "-codec-threads $bad is refused" bash -c "! timeout 5 '$DSC_SERVER' -outdir '$T/out' -codec-threads $bad -listen unix:$T/bad.sock 2>/dev/null"
done
finish
