#!/bin/bash
# quickstart.sh - `contrib/quickstart serve [nginx|lighttpd|apache]` as a
# user runs it: started in the background on a free DSC_PORT, it answers
# /status, converts an upload and a loopback import (allowed, and it says
# so), prints the URL and the examples; SIGTERM, or SIGINT to its process
# group (Ctrl-C), stops everything it started and removes its run directory. DSC_SERVER points it at the built server,
# so it does not build.
. "$(dirname "$0")/lib.sh"
need dpkg-query
DSC_NOSTART=1 deploy_init nginx lighttpd apache2
QS_PID=

qs_cleanup() {
	if [ -n "$QS_PID" ]; then
		kill -TERM "$QS_PID" 2>/dev/null
		wait "$QS_PID" 2>/dev/null
	fi
	deploy_cleanup
}
trap qs_cleanup EXIT

# descendants PID: every process below PID.
descendants() {
	local c
	for c in $(pgrep -P "$1"); do
		echo "$c"
		descendants "$c"
	done
}

for front in nginx lighttpd apache; do
	PORT=$(free_port)
	BASE="http://127.0.0.1:$PORT"
	OUT=$T/out-$front
	LOG=$T/quickstart-$front.log
	# Job control on: the background job is in a process group of its
	# own and keeps SIGINT (a non-interactive shell ignores it in jobs).
	set -m
	DSC_SERVER=$DSC_SERVER DSC_PORT=$PORT DSC_OUTDIR=$OUT \
		"$top_srcdir/contrib/quickstart" serve "$front" >"$LOG" 2>&1 &
	QS_PID=$!
	set +m
	up=
	for _ in $(seq 60); do
		if [ "$(curl -s -o "$T/status" -w '%{http_code}' "$BASE/status")" = 200 ]; then
			up=1
			break
		fi
		kill -0 "$QS_PID" 2>/dev/null || break
		sleep 0.5
	done
	if [ -z "$up" ]; then
		fail "$front: quickstart serve did not answer /status: $(tail -n 20 "$LOG")"
		continue
	fi
	pass "$front: quickstart serve answers /status on $BASE"
	sleep 0.5 # until the examples are printed
	check "$front: it prints the URL" grep -q "on $BASE\$" "$LOG"
	check "$front: it prints the examples with that URL" \
		grep -q "curl -T appliance-disk1.vmdk -X POST '$BASE/upload" "$LOG"
	check "$front: it says loopback imports are allowed" grep -q 'import-allow-net 127.0.0.0/8' "$LOG"
	expect_status 200 "$T/reply" -T "$T/data/disk.vmdk" -X POST "$BASE/upload?name=up.img"
	check "$front: upload converted into DSC_OUTDIR" same_image "$OUT/up.img" raw "$T/data/disk.raw" raw
	expect_status 200 "$T/reply" -G --data-urlencode "url=$UP/f/appliance.vmdk" "$BASE/import"
	check "$front: loopback import converted" same_image "$OUT/appliance.img" raw "$T/data/disk.raw" raw

	procs=$(descendants "$QS_PID" | sort -n)
	run=$(sed -n 's/.*run directory \(.*\)$/\1/p' "$LOG")
	check "$front: it started a web server and dsc-server" \
		test "$(ps -o comm= -p "$(echo $procs | tr ' ' ,)" | grep -cE '^(nginx|lighttpd|apache2|dsc-server)')" -ge 2
	# Apache's turn gets Ctrl-C: SIGINT to the whole process group, as a
	# terminal sends it; the others SIGTERM to quickstart alone. A shell
	# started with SIGINT ignored (a background job of a non-interactive
	# shell, e.g. `.ci/run &`) passes that on, and bash cannot trap a
	# signal ignored at entry: then Apache gets SIGTERM too.
	if [ "$front" = apache ] && [ -z "$(trap -p INT)" ]; then
		sig=INT want=130
		kill -INT -- "-$QS_PID"
	else
		sig=TERM want=143
		kill -TERM "$QS_PID"
	fi
	rc=0
	wait "$QS_PID" || rc=$?
	QS_PID=
	check "$front: SIG$sig ends quickstart (status $rc)" test "$rc" = "$want"
	sleep 0.3
	left=$(for p in $procs; do kill -0 "$p" 2>/dev/null && ps -o pid=,comm= -p "$p"; done)
	check "$front: everything it started has stopped ($left)" test -z "$left"
	check "$front: the port is closed" sh -c "! (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null"
	check "$front: its run directory is removed" test -n "$run" -a ! -e "$run"
	check "$front: the outputs stay" test -f "$OUT/up.img"
done

check "an unknown web server is a usage error" \
	sh -c "! '$top_srcdir/contrib/quickstart' serve caddy >/dev/null 2>&1"
deploy_finish
