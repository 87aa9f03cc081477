#!/bin/bash
# nginx.sh - conf/nginx/dsc.conf, as shipped, in front of dsc-server: the
# README's curl examples over plain HTTP and over TLS (a certificate made
# here), bodies streamed both ways (no temporary file), 429 from the rate
# and connection limits, /status for loopback only, and no kept upstream
# connections.
. "$(dirname "$0")/lib.sh"
deploy_init nginx
need ss
F=$T/front

front_nginx

run_examples "$BASE" nginx
sleep 1 # the rate limit (2 r/s, burst 20): let the bucket drain
run_examples "$TLS_BASE" nginx-tls
check "TLS: the certificate is the one rendered in" \
	curl -sS -o /dev/null --cacert "$F/cert.pem" "$TLS_BASE/status"

# Streaming: nothing may go through nginx's temporary files, either way.
check "no request or response body was buffered to a file" \
	test -z "$(find "$F/tmp" -type f)"
check "nginx logged no buffering to temporary files" \
	sh -c "! grep -q 'buffered to a temporary file' '$F/logs/error.log'"

# An upload is converted while it arrives: with 3 of its 4 MiB sent, the
# output's temporary file (.slow.img.XXXXXX) already holds data.
head -c $((4 * MiB)) /dev/urandom >"$T/data/dense.raw"
mkfifo "$T/slow"
(
	exec 3>"$T/slow"
	head -c $((3 * MiB)) "$T/data/dense.raw" >&3
	sleep 2
	tail -c +$((3 * MiB + 1)) "$T/data/dense.raw" >&3
) &
writer=$!
curl -sS -o "$T/slow.reply" -T - -X POST "$BASE/upload?name=slow.img" <"$T/slow" &
client=$!
# (polled for up to 1.8 s: the rest follows after 2 s)
streamed_early 18
check "3 MiB into an upload, its output already holds 2 MiB (streamed, not staged)" \
	test "$EARLY" -ge $((2 * MiB))
wait "$writer" "$client"
check "the streamed upload completes" same_image "$T/out/slow.img" raw "$T/data/dense.raw" raw

# Rate limit: 2 r/s with a burst of 20 per address, then 429. Each limit
# test comes from its own loopback address: its own bucket.
codes=$(for _ in $(seq 40); do
	curl -s -o /dev/null --interface 127.0.0.3 -w '%{http_code}\n' "$BASE/upload"
done | sort | uniq -c)
check "rate limit: some requests served ($(echo $codes))" grep -q ' 405$' <<<"$codes"
check "rate limit: the rest 429" grep -q ' 429$' <<<"$codes"

# Connection limit: 8 per address. Hold 8 uploads open (their bodies come
# from pipes that stay open), then a 9th request is 429 at once.
pids=()
for i in 1 2 3 4 5 6 7 8; do
	mkfifo "$T/hold$i"
	sleep 60 >"$T/hold$i" &
	pids+=($!)
	curl -s -o /dev/null --interface 127.0.0.4 -T - -X POST "$BASE/upload?name=hold$i.img" <"$T/hold$i" &
	pids+=($!)
done
# The probe starts once the 8 are connected (and then a second for nginx to
# read their headers): a probe counted before the last of them would push
# that one out with 429 and keep the count at 7 from then on. It is tried
# for up to ~40 s; an admitted try would wait for a worker, hence -m 1.
for _ in $(seq 100); do
	[ "$(ss -Htn state established "( sport = :$PORT )" dst 127.0.0.4 | wc -l)" -ge 8 ] && break
	sleep 0.2
done
sleep 1
code=
for _ in $(seq 30); do
	code=$(curl -s -o /dev/null -m 1 --interface 127.0.0.4 -w '%{http_code}' "$BASE/upload")
	[ "$code" = 429 ] && break
	sleep 0.4
done
check "connection limit: the 9th simultaneous request is 429" test "$code" = 429
kill "${pids[@]}" 2>/dev/null
wait "${pids[@]}" 2>/dev/null
# The held uploads occupied both dsc-server workers; their clients are
# gone, so nginx drops them and the workers are free again.
check "connection limit: released when the clients leave" \
	test "$(curl -s -o /dev/null -m 10 --interface 127.0.0.4 -w '%{http_code}' "$BASE/upload")" = 405

# /status is for this host only (127.0.0.1 and ::1): 127.0.0.2 is refused.
check "/status from another address: 403" \
	test "$(curl -s -o /dev/null --interface 127.0.0.2 -w '%{http_code}' "$BASE/status")" = 403
check "other routes from that address: served (405 from dsc-server)" \
	test "$(curl -s -o /dev/null --interface 127.0.0.2 -w '%{http_code}' "$BASE/upload")" = 405
check "no fastcgi_keep_conn and no upstream keepalive" \
	sh -c "! grep -Eq '^[^#]*(fastcgi_keep_conn|keepalive [0-9])' '$top_srcdir/conf/nginx/dsc.conf'"

deploy_finish
