#!/usr/bin/env bash
# srvocsp watch's metrics endpoint cannot be frozen: a client that sends
# nothing, one that sends its request a byte at a time and one that never
# reads its answer leave a second client answered at once and a SIGUSR1
# refresh unaffected; /healthz says whether every certificate is served;
# only loopback unless asked.  127.0.0.1 only.
set -u
CLI=$1 MKPKI=$2 LOBIND=$3
NAME=watch-metrics
. "$(dirname "$0")/watch_common.sh"
need openssl curl python3
if "$CLI" watch --dir "$DIR" --metrics 0 2>&1 | grep -q "built without libmicrohttpd"; then
    echo "SKIP: srvocsp was built without libmicrohttpd (install libmicrohttpd-dev)"; exit 77
fi

S=$DIR/certs
mkdir -p "$S"
cp "$P/good.pem" "$S/site.pem"
responder ca 60

# --- bad --metrics values are refused by name ---
refused() { # SPEC PATTERN
    local out rc
    out=$("$CLI" watch --dir "$S" --metrics "$1" 2>&1); rc=$?
    [ "$rc" = 2 ] && grep -q -- "$2" <<<"$out" && ok "--metrics $1 refused: $2" || bad "--metrics $1 (rc $rc)" "$out"
}
refused "0.0.0.0:9750" "not a loopback address; add --metrics-any-address"
refused "127.0.0.1:99999" "the port must be 1 to 65535, not '99999'"
refused "127.0.0.1:97x" "the port must be 1 to 65535"
refused "localhost.example:9750" "is not a numeric IPv4 or IPv6 address"

MPORT=$("$MKPKI" --free-port)
"$CLI" watch --dir "$S" --metrics "$MPORT" >"$DIR/watch.log" 2>&1 &
W=$!; PIDS+=($W)
wait_for 15 test -s "$S/site.pem.ocsp" || bad "watch wrote the file" "$(cat "$DIR/watch.log")"
healthz() { curl -s -m 5 -o "$DIR/healthz.txt" -w '%{http_code}' "http://127.0.0.1:$MPORT/healthz"; }
wait_for 5 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$MPORT/healthz)\" = 200 ]"
code=$(healthz)
[ "$code" = 200 ] && grep -q "^ok: 1 of 1 certificates have a servable response" "$DIR/healthz.txt" \
    && ok "GET /healthz: 200 when every certificate is served" || bad "healthz $code" "$(cat "$DIR/healthz.txt")"
expect "GET /metrics (port alone binds loopback)" 'srvocsp_served\{cert="[^"]*site.pem"\} 1' "$(metrics "$MPORT")"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/other")
[ "$code" = 404 ] && ok "another path: 404" || bad "other path: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$MPORT/metrics")
[ "$code" = 405 ] && ok "POST: 405" || bad "POST: $code"
tr_listens() { ss -ltnH "sport = :$MPORT" | awk '{print $4}'; }
expect "it listens on 127.0.0.1 only" "^127\\.0\\.0\\.1:$MPORT\$" "$(tr_listens)"

# --- hostile clients, held open in the background ---
python3 - "$MPORT" >"$DIR/hostile.log" 2>&1 <<'EOF' &
import socket, sys, time
port = int(sys.argv[1])
def conn():
    s = socket.socket(); s.connect(("127.0.0.1", port)); return s
silent = conn()                                  # connects, sends nothing
trickle = conn()                                 # a request, one byte a second
request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
slow = conn()                                    # asks, never reads
slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 50)
print("hostile clients connected", flush=True)
start = time.time()
closed = None
for i in range(len(request)):
    try:
        trickle.send(request[i:i + 1])
    except OSError:
        break
    silent.settimeout(1.0)
    try:
        if silent.recv(1) == b"" and closed is None:
            closed = time.time() - start
            print("silent client closed by the server after %.1f s" % closed, flush=True)
    except socket.timeout:
        pass
    if closed is not None and closed > 0 and time.time() - start > 12:
        break
EOF
HOSTILE=$!; PIDS+=($HOSTILE)
wait_for 5 grep -q "hostile clients connected" "$DIR/hostile.log" || bad "hostile clients" "$(cat "$DIR/hostile.log")"
sleep 0.5
t0=$(date +%s%N)
m=$(curl -s -m 10 "http://127.0.0.1:$MPORT/metrics")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect "a second client is answered beside them" 'srvocsp_responses_total\{status="good"\} [1-9]' "$m"
[ "$ms" -lt 2000 ] && ok "... promptly ($ms ms; the old endpoint made it wait 10 s)" || bad "second client took $ms ms"
code=$(healthz)
[ "$code" = 200 ] && ok "GET /healthz beside them" || bad "healthz beside hostile clients: $code"

# A refresh is not held up: the responder now says revoked.
set_status 1001 R
responder ca 60
sleep 1.1   # a new thisUpdate (whole seconds) so the new answer is newer
t0=$(date +%s%N)
kill -USR1 "$W"
wait_for 10 grep -q "revoked cert=$S/site.pem" "$DIR/watch.log" || bad "refresh held up" "$(cat "$DIR/watch.log")"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# The old endpoint held the loop, and so this refresh, for 10 s.
[ "$ms" -lt 3000 ] && ok "SIGUSR1 beside hostile clients: refreshed in $ms ms" \
    || bad "refresh beside hostile clients took $ms ms"
expect "... and the metrics say so at once" 'srvocsp_responses_total\{status="revoked"\} 1' "$(metrics "$MPORT")"
wait_for 15 grep -q "silent client closed by the server" "$DIR/hostile.log" \
    && ok "the silent client is closed after the idle timeout ($(grep -o 'after [0-9.]* s' "$DIR/hostile.log"))" \
    || bad "silent client never closed" "$(cat "$DIR/hostile.log")"

# --- every connection held by clients that each send a byte every 2 s ---
# The idle timeout never fires for them; the whole-life deadline (10 s)
# must free the endpoint for a real client.
python3 - "$MPORT" >"$DIR/trickle.log" 2>&1 <<'EOF' &
import socket, sys, time
port = int(sys.argv[1])
held = []
for i in range(40):                      # more than the 32 the server takes
    s = socket.socket(); s.setblocking(False)
    try: s.connect(("127.0.0.1", port))
    except BlockingIOError: pass
    held.append(s)
print("trickling clients connected", flush=True)
request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100
start = time.time()
alive = len(held)
for i in range(len(request)):
    alive = 0
    for s in held:
        try:
            s.send(request[i:i + 1]); alive += 1
        except OSError:
            pass
    if time.time() - start > 40:
        break
    time.sleep(2)
print("trickling clients still connected after %.0f s: %d" % (time.time() - start, alive), flush=True)
EOF
TRICKLE=$!; PIDS+=($TRICKLE)
wait_for 5 grep -q "trickling clients connected" "$DIR/trickle.log" || bad "trickling clients" "$(cat "$DIR/trickle.log")"
sleep 1
t0=$(date +%s%N)
m=$(curl -s -m 30 "http://127.0.0.1:$MPORT/metrics")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect "a client is answered while trickling clients hold every connection" 'srvocsp_responses_total' "$m"
[ "$ms" -lt 15000 ] && ok "... within the 10 s whole-life deadline ($ms ms)" || bad "answered after $ms ms"
kill "$TRICKLE" 2>/dev/null; wait "$TRICKLE" 2>/dev/null

# --- unhealthy: the responder says unknown, nothing is served ---
set_status 1001 -
responder ca 60
sleep 1.1
kill -USR1 "$W"
wait_for 10 grep -q "withdrawn cert=$S/site.pem" "$DIR/watch.log"
unhealthy() { [ "$(healthz)" = 503 ]; }
wait_for 5 unhealthy && grep -q "^unhealthy: 0 of 1 certificates" "$DIR/healthz.txt" \
    && grep -q "not served: $S/site.pem: E_STATUS_UNKNOWN" "$DIR/healthz.txt" \
    && ok "GET /healthz: 503 naming the certificate and the reason" || bad "healthz unhealthy" "$(cat "$DIR/healthz.txt")"

kill -TERM "$W"; wait "$W"; rc=$?
[ "$rc" = 0 ] && ok "watch stops on SIGTERM with clients still connected" || bad "watch exit $rc"
finish
