#!/usr/bin/env bash
# srvocsp watch feeding real nginx (ssl_stapling_file) and real HAProxy
# (crt cert.pem + runtime API), and srvocsp check's exit codes.  127.0.0.1 only.
set -u
CLI=$1 MKPKI=$2 LOBIND=$3
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../../scripts/peers.sh"
for t in openssl nginx haproxy curl; do
    command -v $t >/dev/null || [ -x /usr/sbin/$t ] || { echo "SKIP: $t not installed"; exit 77; }
done
export PATH=$PATH:/usr/sbin

DIR=$(mktemp -d "${TMPDIR:-/tmp}/srvocsp-watch-XXXXXX")
chmod 755 "$DIR"
RESPONDER_PID= PIDS=()
cleanup() {
    stop_pid "$RESPONDER_PID"
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    [ -f "$DIR/nginx/nginx.pid" ] && kill "$(cat "$DIR/nginx/nginx.pid")" 2>/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT

. "$HERE/../support/checks.sh"
wait_for() { # SECONDS COMMAND...: until the command succeeds
    local n=$(( $1 * 20 )); shift
    for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
    return 1
}
set_status() { # SERIAL V|R: what the responder will say after its restart
    awk -F'\t' -v OFS='\t' -v s="$1" -v st="$2" \
        '$4 == s { $1 = st; $3 = (st == "R" ? "251231000000Z,keyCompromise" : "") } { print }' \
        "$P/index.txt" >"$P/index.tmp" && mv "$P/index.tmp" "$P/index.txt"
}
staple() { echo | timeout 10 openssl s_client -connect "127.0.0.1:$1" -status -CAfile "$P/root.pem" 2>&1; }
has_status() { staple "$1" | grep -q "Cert Status: $2"; }

P=$DIR/pki
mkdir -p "$P"
RPORT=$("$MKPKI" --free-port)
"$MKPKI" "$P" "http://127.0.0.1:$RPORT/" --responses || exit 1
start_responder "$P" "$RPORT" ca 60 || exit 1

# --- check: exit codes on files ---
code() { "$CLI" check "$@" >/dev/null 2>&1; echo $?; }
[ "$(code --file "$P/resp-good.der" --cert "$P/good.pem")" = 0 ] && ok "check: good file -> 0" || bad "check: good file"
[ "$(code --file "$P/resp-near.der" --cert "$P/good.pem" --warn 3600 --crit 60)" = 1 ] && ok "check: near expiry -> 1 WARNING" || bad "check: near expiry"
[ "$(code --file "$P/resp-near.der" --cert "$P/good.pem" --warn 7200 --crit 3600)" = 2 ] && ok "check: below --crit -> 2" || bad "check: below crit"
[ "$(code --file "$P/resp-expired.der" --cert "$P/good.pem")" = 2 ] && ok "check: expired -> 2" || bad "check: expired"
[ "$(code --file "$P/resp-revoked.der" --cert "$P/good.pem")" = 2 ] && ok "check: revoked -> 2" || bad "check: revoked"
[ "$(code --file "$P/resp-good.der" --cert "$P/revoked.pem")" = 2 ] && ok "check: response of another certificate -> 2" || bad "check: other cert"
[ "$(code --file "$DIR/missing.der" --cert "$P/good.pem")" = 2 ] && ok "check: missing file -> 2" || bad "check: missing"
[ "$(code --frobnicate)" = 2 ] && ok "check: usage error -> 2" || bad "check: usage"
expect "check: one-line plugin output with perfdata" '^OCSP OK - good, .* \| seconds_left=[0-9]+;86400;3600$' \
    "$("$CLI" check --file "$P/resp-good.der" --cert "$P/good.pem")"

# --- nginx, fed by srvocsp watch ---
N=$DIR/nginx-certs NG=$DIR/nginx
mkdir -p "$N" "$NG/logs"
cp "$P/good.pem" "$N/site.pem"; cp "$P/good.key" "$N/site.key"
NPORT=$("$MKPKI" --free-port) MPORT=$("$MKPKI" --free-port)
cat >"$NG/nginx.conf" <<EOF
user root root;
worker_processes 1;
error_log $NG/logs/error.log;
pid $NG/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $NG/tmp; proxy_temp_path $NG/tmp; fastcgi_temp_path $NG/tmp;
    uwsgi_temp_path $NG/tmp; scgi_temp_path $NG/tmp;
    server {
        listen 127.0.0.1:$NPORT ssl;
        ssl_certificate $N/site.pem;
        ssl_certificate_key $N/site.key;
        ssl_stapling on;
        ssl_stapling_file $N/site.pem.ocsp;
        location / { return 200 "ok\n"; }
    }
}
EOF
mkdir -p "$NG/tmp"
"$CLI" watch --dir "$N" --json --status-file "$DIR/status.json" --metrics "127.0.0.1:$MPORT" \
    --on-update "nginx -p $NG -c $NG/nginx.conf -s reload" >"$DIR/watch-nginx.log" 2>&1 &
WATCH_N=$!; PIDS+=($WATCH_N)
wait_for 10 test -s "$N/site.pem.ocsp" || bad "watch wrote site.pem.ocsp" "$(cat "$DIR/watch-nginx.log")"
nginx -p "$NG" -c "$NG/nginx.conf" -g "daemon on;" || bad "nginx starts" "$(cat "$NG/logs/error.log")"
wait_for 10 has_status "$NPORT" good && ok "nginx staples the response srvocsp watch wrote" || bad "nginx staple" "$(staple "$NPORT")"
# The responder signs 60-minute responses: thresholds below that.
expect "check --connect on nginx -> OK" "^OCSP OK - good" \
    "$("$CLI" check --connect "127.0.0.1:$NPORT" --servername good.test --warn 600 --crit 60)"
expect "watch logs JSON lines" '"event":"updated","cert":"[^"]*site.pem","status":"good"' "$(cat "$DIR/watch-nginx.log")"
expect "watch --status shows the certificate" '"status":"good"' "$("$CLI" watch --status --status-file "$DIR/status.json")"
expect "metrics on loopback" 'srvocsp_responses_total\{status="good"\} [1-9]' "$(curl -s "http://127.0.0.1:$MPORT/metrics")"
expect "metrics: seconds until expiry" 'srvocsp_seconds_until_expiry\{cert="[^"]*site.pem"\} [1-9]' "$(curl -s "http://127.0.0.1:$MPORT/metrics")"

# --- a hook that never returns is stopped at --hook-timeout ---
K=$DIR/hook-certs
mkdir -p "$K"; cp "$P/good.pem" "$K/site.pem"
out=$("$CLI" watch --dir "$K" --hook-timeout 0 2>&1); rc=$?
[ "$rc" = 2 ] && grep -q "hook-timeout must be 1 to 86400 seconds" <<<"$out" \
    && ok "watch: a bad --hook-timeout is refused by name" || bad "watch --hook-timeout 0 (rc $rc)" "$out"
"$CLI" watch --dir "$K" --hook-timeout 1 --on-update 'echo started >"$SRVOCSP_OCSP_FILE.hook"; exec sleep 4242' \
    >"$DIR/watch-hook.log" 2>&1 &
WATCH_K=$!; PIDS+=($WATCH_K)
wait_for 15 grep -q "hook-failed.*still running after 1 s, stopped" "$DIR/watch-hook.log" \
    && ok "watch: a hung hook is stopped after --hook-timeout and reported" \
    || bad "watch hook timeout" "$(cat "$DIR/watch-hook.log")"
test -s "$K/site.pem.ocsp" && test -s "$K/site.pem.ocsp.hook" && ok "watch: the response was written and the hook ran" \
    || bad "watch hook run" "$(ls -la "$K")"
wait_for 5 bash -c '! pgrep -fx "sleep 4242"' && ok "watch: the hook's process group is gone" \
    || bad "hook still running" "$(pgrep -afx "sleep 4242")"
kill -TERM "$WATCH_K"; wait "$WATCH_K"; rc=$?
[ "$rc" = 0 ] && ok "watch with a hung hook still stops on SIGTERM" || bad "watch (hook) SIGTERM exit $rc"

# --- HAProxy, loading cert.pem.ocsp at start and updated through its socket ---
H=$DIR/haproxy-certs
mkdir -p "$H"
cat "$P/revoked.pem" "$P/revoked.key" >"$H/site.pem"   # HAProxy wants the key in the same file
HPORT=$("$MKPKI" --free-port) SOCK=$DIR/haproxy.sock
cat >"$DIR/haproxy.cfg" <<EOF
global
    stats socket $SOCK level admin
defaults
    mode http
    timeout connect 5s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:$HPORT ssl crt $H/site.pem
    http-request return status 200 content-type text/plain string ok
EOF
# Start with a good staple of the revoked.pem certificate that the responder
# will, after a restart with a changed index, no longer give.
set_status 1002 V
stop_pid "$RESPONDER_PID"; start_responder "$P" "$RPORT" ca 60 || exit 1
"$CLI" watch --dir "$H" --haproxy-socket "$SOCK" >"$DIR/watch-haproxy.log" 2>&1 &
WATCH_H=$!; PIDS+=($WATCH_H)
wait_for 10 test -s "$H/site.pem.ocsp" || bad "watch wrote HAProxy's site.pem.ocsp" "$(cat "$DIR/watch-haproxy.log")"
haproxy -f "$DIR/haproxy.cfg" -db >"$DIR/haproxy.log" 2>&1 &
PIDS+=($!)
wait_for 10 has_status "$HPORT" good && ok "HAProxy loads site.pem.ocsp at start" || bad "HAProxy staple at start" "$(staple "$HPORT"; cat "$DIR/haproxy.log")"

# --- the responder's answer changes: revoked ---
set_status 1002 R
set_status 1001 R
stop_pid "$RESPONDER_PID"; start_responder "$P" "$RPORT" ca 60 || exit 1
sleep 1.1   # a new thisUpdate (whole seconds) so the new answer is newer
kill -USR1 "$WATCH_N" "$WATCH_H"
wait_for 15 has_status "$NPORT" revoked && ok "nginx: after refresh + hook reload, the new (revoked) staple" \
    || bad "nginx revoked" "$(staple "$NPORT"; cat "$DIR/watch-nginx.log")"
wait_for 15 has_status "$HPORT" revoked && ok "HAProxy: pushed over the runtime API, no restart" \
    || bad "HAProxy revoked" "$(staple "$HPORT"; cat "$DIR/watch-haproxy.log")"
expect "watch confirms HAProxy's answer" "haproxy-updated .*OCSP Response updated" "$(cat "$DIR/watch-haproxy.log")"
# nginx reloads gracefully: an old worker may answer for a moment.
revoked_check() { "$CLI" check --connect "127.0.0.1:$NPORT" --warn 600 --crit 60 | grep -q "^OCSP CRITICAL - certificate REVOKED"; }
wait_for 10 revoked_check && ok "check --connect on a revoked staple -> CRITICAL" \
    || bad "check revoked" "$("$CLI" check --connect "127.0.0.1:$NPORT")"

# --- a bad responder: nothing reaches the .ocsp files or HAProxy ---
cp "$N/site.pem.ocsp" "$DIR/nginx-before.ocsp"; cp "$H/site.pem.ocsp" "$DIR/haproxy-before.ocsp"
pushes=$(grep -c "haproxy-updated" "$DIR/watch-haproxy.log")
stop_pid "$RESPONDER_PID"
start_responder "$P" "$RPORT" good 60 || exit 1   # signs with a leaf key: not authorized
sleep 1.1
kill -USR1 "$WATCH_N" "$WATCH_H"
wait_for 15 grep -q '"event":"failed".*not an authorized responder\|"event":"failed".*lacks extended key usage' "$DIR/watch-nginx.log" \
    && ok "watch reports the unauthorized signer" || bad "watch failure logged" "$(cat "$DIR/watch-nginx.log")"
# HAProxy's watcher must have asked and refused too: otherwise the checks
# below would pass without any bad response ever reaching it.
wait_for 15 grep -q 'failed cert=.*reason=.*\(not an authorized responder\|lacks extended key usage\)' "$DIR/watch-haproxy.log" \
    && ok "HAProxy's watcher reports the unauthorized signer" || bad "HAProxy's watcher failure logged" "$(cat "$DIR/watch-haproxy.log")"
cmp -s "$N/site.pem.ocsp" "$DIR/nginx-before.ocsp" && ok "bad response never reaches nginx's .ocsp file" || bad "nginx .ocsp changed"
cmp -s "$H/site.pem.ocsp" "$DIR/haproxy-before.ocsp" && ok "bad response never reaches HAProxy's .ocsp file" || bad "haproxy .ocsp changed"
[ "$(grep -c "haproxy-updated" "$DIR/watch-haproxy.log")" = "$pushes" ] && ok "bad response never pushed to HAProxy" || bad "haproxy pushed"
has_status "$HPORT" revoked && ok "HAProxy keeps serving the last good staple" || bad "HAProxy staple after bad response"

# --- a server without stapling ---
SPORT=$("$MKPKI" --free-port)
openssl s_server -accept "127.0.0.1:$SPORT" -cert "$P/good.pem" -key "$P/good.key" -www -quiet >/dev/null 2>&1 &
PIDS+=($!)
wait_for 10 bash -c "echo | openssl s_client -connect 127.0.0.1:$SPORT" 
out=$("$CLI" check --connect "127.0.0.1:$SPORT"); rc=$?
[ "$rc" = 2 ] && grep -q "no OCSP staple" <<<"$out" && ok "check --connect without stapling -> 2" || bad "check no staple (rc $rc)" "$out"

# --- no staple: only wrong when there was something to staple, or must-staple ---
# tls_server CERT KEY: an openssl s_server without stapling, on $port.  Not
# run in a command substitution: its PID must reach the cleanup's list.
tls_server() {
    port=$("$MKPKI" --free-port)
    openssl s_server -accept "127.0.0.1:$port" -cert "$1" -key "$2" -www -quiet >/dev/null 2>&1 &
    PIDS+=($!)
    wait_for 10 bash -c "echo | openssl s_client -connect 127.0.0.1:$port"
}
tls_server "$P/noaia.pem" "$P/noaia.key"
out=$("$CLI" check --connect "127.0.0.1:$port"); rc=$?
[ "$rc" = 0 ] && grep -q "^OCSP OK - no OCSP responder URL: nothing to staple" <<<"$out" \
    && ok "check --connect: no OCSP URL and no staple -> 0 OK" || bad "check no URL (rc $rc)" "$out"
tls_server "$P/muststaple.pem" "$P/muststaple.key"
out=$("$CLI" check --connect "127.0.0.1:$port"); rc=$?
[ "$rc" = 2 ] && grep -q "^OCSP CRITICAL - must-staple certificate without an OCSP staple" <<<"$out" \
    && ok "check --connect: must-staple without a staple -> 2" || bad "check must-staple (rc $rc)" "$out"
# must-staple and no OCSP URL at all: still critical (clients will refuse it).
openssl req -new -key "$P/good.key" -subj "/CN=muststaple-nourl.test" -out "$DIR/ms.csr" 2>/dev/null
printf 'tlsfeature=status_request\nsubjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$DIR/ms.ext"
openssl x509 -req -in "$DIR/ms.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -set_serial 4242 -days 2 \
    -extfile "$DIR/ms.ext" -out "$DIR/ms.pem" 2>/dev/null && cat "$P/ca.pem" >>"$DIR/ms.pem"
tls_server "$DIR/ms.pem" "$P/good.key"
out=$("$CLI" check --connect "127.0.0.1:$port"); rc=$?
[ "$rc" = 2 ] && grep -q "^OCSP CRITICAL - must-staple certificate without an OCSP staple.*no OCSP responder URL" <<<"$out" \
    && ok "check --connect: must-staple without an OCSP URL -> 2" || bad "check must-staple no URL (rc $rc)" "$out"

# --- SIGHUP rescans: added, renewed, removed ---
cp "$P/twourls.pem" "$N/second.pem"
kill -HUP "$WATCH_N"
wait_for 10 grep -q '"event":"watching","cert":"[^"]*second.pem"' "$DIR/watch-nginx.log" \
    && ok "SIGHUP: an added certificate is watched" \
    || bad "SIGHUP added" "$(cat "$DIR/watch-nginx.log")"
cp "$P/unknown.pem" "$N/second.pem"     # the same file, another certificate
kill -HUP "$WATCH_N"
wait_for 10 grep -q '"event":"renewed","cert":"[^"]*second.pem"' "$DIR/watch-nginx.log" \
    && ok "SIGHUP: a replaced certificate is reopened" || bad "SIGHUP renewed" "$(cat "$DIR/watch-nginx.log")"
rm "$N/second.pem"
kill -HUP "$WATCH_N"
wait_for 10 grep -q '"event":"removed","cert":"[^"]*second.pem"' "$DIR/watch-nginx.log" \
    && ok "SIGHUP: a removed certificate is no longer watched" || bad "SIGHUP removed" "$(cat "$DIR/watch-nginx.log")"
if "$CLI" watch --status --status-file "$DIR/status.json" | grep -q second.pem; then
    bad "the status file still lists the removed certificate"
else
    ok "the status file no longer lists it"
fi

# --- SIGTERM stops cleanly ---
kill -TERM "$WATCH_N"
wait "$WATCH_N"; rc=$?
[ "$rc" = 0 ] && ok "watch stops on SIGTERM (exit 0)" || bad "watch SIGTERM exit $rc"
expect "watch logged stopping" '"event":"stopping"' "$(cat "$DIR/watch-nginx.log")"

finish
