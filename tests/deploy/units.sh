#!/bin/bash
# units.sh - contrib/ as built: the systemd unit (paths filled in, accepted
# by systemd-analyze verify, exposure rated by systemd-analyze security),
# and the spawn-fcgi run script actually running dsc-server behind the
# shipped nginx config: upload, export, status, then TERM to the process
# the supervisor would watch stops the whole pool.
. "$(dirname "$0")/lib.sh"
UNIT=$top_builddir/contrib/systemd/dsc-server.service
RUN=$top_builddir/contrib/spawn-fcgi/run
DSC_NOSTART=1 deploy_init nginx spawn-fcgi

# ---- systemd unit
check "unit built" test -f "$UNIT"
check "unit: no @placeholders@ left" sh -c "! grep -n '@[a-z]*@' '$UNIT'"
sbindir=$(sed -n 's|^ExecStart=\(/[^ ]*\)/dsc-server .*|\1|p' "$UNIT")
check "unit: ExecStart is under an absolute sbindir ($sbindir)" test -n "$sbindir"
check "unit: the socket is the one the configs name" grep -q 'unix:/run/dsc/dsc.sock' "$UNIT"
if command -v systemd-analyze >/dev/null; then
	# Verify a copy pointing at the built binary (the unit's own path is
	# where make install puts it).
	sed "s|$sbindir/dsc-server|$DSC_SERVER|" "$UNIT" >"$T/dsc-server.service"
	check "systemd-analyze verify" systemd-analyze verify --man=no "$T/dsc-server.service"
	score=$(systemd-analyze security --offline=yes "$T/dsc-server.service" 2>/dev/null |
		sed -n 's/.*Overall exposure level for dsc-server.service: \([0-9.]*\).*/\1/p')
	check "systemd-analyze security: exposure $score <= 2.0" \
		awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'
else
	lacking "systemd-analyze (package systemd)" "the unit checks"
fi

# ---- spawn-fcgi run script, as a supervisor would start it
check "run script built and executable" test -x "$RUN"
check "run script: no @placeholders@ left" sh -c "! grep -n '@[a-z]*@' '$RUN'"
front_nginx
DSC_SOCKET=$T/dsc.sock DSC_OUTDIR=$T/out DSC_USER=nobody DSC_SOCKET_GROUP=nogroup \
	DSC_SERVER=$DSC_SERVER DSC_OPTIONS="-workers 2" "$RUN" >>"$T/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
	[ "$(workers_alive)" -ge 2 ] && break
	sleep 0.05
done
check "run script: spawn-fcgi execs dsc-server (the supervised pid is the master)" \
	grep -q dsc-server "/proc/$SERVER_PID/cmdline"
check "run script: 2 workers" test "$(workers_alive)" = 2
if [ "$(id -u)" = 0 ]; then
	check "socket: group nogroup, mode 0660" test "$(stat -c '%G %a' "$T/dsc.sock")" = "nogroup 660"
	check "workers run as nobody" test "$(ps -o user= -p "$(workers | head -n 1)")" = nobody
fi
R=$T/reply
expect_status 200 "$R" -T "$T/data/disk.vmdk" -X POST "$BASE/upload?name=disk.img"
check "upload through the run script's server" same_image "$T/out/disk.img" raw "$T/data/disk.raw" raw
expect_status 200 "$R" "$BASE/export?path=disk.img&dst=vmdk"
check "export through it" same_image "$R" vmdk "$T/data/disk.raw" raw
expect_status 200 "$R" "$BASE/status"
w=$(workers)
kill -TERM "$SERVER_PID"
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=
check "TERM stops the master (status $rc)" test "$rc" = 0
sleep 0.2
check "... and its workers" sh -c "! kill -0 $(echo $w) 2>/dev/null"

deploy_finish
