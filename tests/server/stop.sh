#!/bin/bash
# stop.sh - SIGTERM during a conversion lets it finish (the master exits
# after the last worker, status 0); with -grace 1 a conversion that takes
# longer is killed and leaves nothing; the socket is removed at exit. Also:
# a FastCGI connection that never sends its request frees its worker after
# 10 s.
. "$(dirname "$0")/lib.sh"
srv_init
nginx_start
WORKERS=2
server_start

OCT=(-H 'Content-Type: application/octet-stream')
head -c $((6 * MiB)) /dev/urandom >"$T/data/rand.raw"

wait_temp() {
	local i
	for i in $(seq 100); do
		ls -A "$T/out" | grep -q '^\.' && return 0
		sleep 0.05
	done
	return 1
}

# ---- graceful: a 3-second upload, TERM after it started
curl -s -o "$T/reply" -w '%{http_code}' --limit-rate 2M "${OCT[@]}" -X POST -T "$T/data/rand.raw" \
	"$BASE/upload?name=slow.img&dst=vmdk" >"$T/status" &
cpid=$!
wait_temp
t0=$(date +%s)
kill -TERM "$SERVER_PID"
for i in $(seq 40); do [ "$(workers_alive)" = 1 ] && break; sleep 0.05; done
check "idle worker left at once, busy one stays" test "$(workers_alive)" = 1
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=
wait $cpid
check "upload during SIGTERM: 200" test "$(cat "$T/status")" = 200
check "upload during SIGTERM: same disk" same_image "$T/out/slow.img" vmdk "$T/data/rand.raw" raw
check "master exit status 0 ($rc)" test "$rc" = 0
check "master waited for the conversion" test $(($(date +%s) - t0)) -ge 1
check "socket removed" test ! -e "$T/dsc.sock"
check "log: stopping, then the request, then stopped" \
	bash -c "grep -E 'stopping|POST /upload 200|master: stopped' '$T/server.log' | cut -d' ' -f3- | sed 's/ in=.*//' | tr '\n' '|' | grep -q 'master: stopping.*|POST /upload 200|master: stopped'"

# ---- -grace 1: the slow upload is killed, nothing is left
server_start -grace 1
curl -s -o "$T/reply" -w '%{http_code}' --limit-rate 1M "${OCT[@]}" -X POST -T "$T/data/rand.raw" \
	"$BASE/upload?name=cut.img" >"$T/status" &
cpid=$!
wait_temp
t0=$(date +%s)
server_stop TERM
rc=$?
wait $cpid
check "grace expired: request failed ($(cat "$T/status"))" test "$(cat "$T/status")" != 200
check "grace expired: master exit 0 ($rc)" test "$rc" = 0
check "grace expired: stopped within ~1 s" test $(($(date +%s) - t0)) -le 3
check "grace expired: workers killed" log_has 'master: killing 1 workers'
check "grace expired: nothing left" test -z "$(ls -A "$T/out" | grep -v '^slow.img$')"

# ---- a second TERM kills at once
server_start -grace 30
curl -s -o /dev/null --limit-rate 1M "${OCT[@]}" -X POST -T "$T/data/rand.raw" \
	"$BASE/upload?name=cut2.img" &
cpid=$!
wait_temp
t0=$(date +%s)
kill -TERM "$SERVER_PID"
sleep 0.2
server_stop TERM
wait $cpid
check "second TERM: stopped at once" test $(($(date +%s) - t0)) -le 2
check "second TERM: nothing left" test -z "$(ls -A "$T/out" | grep -v '^slow.img$')"

# ---- a successor's socket survives its predecessor: master A stops (and
# removes its socket) while a conversion keeps it alive; B binds the same
# path; A then exits and must not remove B's socket
WORKERS=1
server_start
a_pid=$SERVER_PID
curl -s -o /dev/null --limit-rate 3M "${OCT[@]}" -X POST -T "$T/data/rand.raw" \
	"$BASE/upload?name=handover.img" &
cpid=$!
wait_temp
kill -TERM "$a_pid"
for i in $(seq 100); do [ -S "$T/dsc.sock" ] || break; sleep 0.02; done
check "stopping master removed its socket" test ! -S "$T/dsc.sock"
SERVER_PID=
server_start
b_pid=$SERVER_PID
for i in $(seq 150); do [ -S "$T/dsc.sock" ] && break; sleep 0.02; done
check "the successor's socket is there" test -S "$T/dsc.sock"
wait "$a_pid"
check "the old master finished (after its upload)" test $? = 0
wait "$cpid"
check "the successor's socket is still there after the old master exited" test -S "$T/dsc.sock"
expect_status 200 "$T/reply" "$BASE/status"
check "the successor answers" test "$(json_get "$T/reply" masterPid)" = "$b_pid"
server_stop TERM
check "the successor removed its own socket" test ! -e "$T/dsc.sock"

# ---- a silent FastCGI connection pins its worker for 10 s at most
WORKERS=1
server_start
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
open(sys.argv[2], "w").close()
t = time.time()
s.settimeout(30)
gone = s.recv(1) == b""
print("%d %.1f" % (gone, time.time() - t))' "$T/dsc.sock" "$T/connected" >"$T/silent" &
spid=$!
for i in $(seq 100); do [ -e "$T/connected" ] && break; sleep 0.05; done
sleep 0.3 # the idle worker accepts it at once
t0=$(date +%s.%N)
expect_status 200 "$T/reply" --max-time 30 "$BASE/status"
t1=$(date +%s.%N)
wait $spid
waited=$(python3 -c "print(round($t1 - $t0))")
check "request behind a silent connection served after ~10 s ($waited s)" test "$waited" -ge 8 -a "$waited" -le 14
check "the silent connection was closed ($(cat "$T/silent"))" test "$(cut -d' ' -f1 "$T/silent")" = 1
server_stop TERM
finish
