#!/usr/bin/env bash
# srvocsp watch at first start and at restart, with the responder down, hung
# or bad: `watch --once` / `--wait` and their exit codes, nginx started on the
# snippet watch maintains, and a restart that adopts the .ocsp files the
# servers already staple (status, metrics and check agree).  127.0.0.1 only.
set -u
CLI=$1 MKPKI=$2 LOBIND=$3 NAME=watch-start
. "$(cd "$(dirname "$0")" && pwd)/watch_common.sh"
need openssl nginx haproxy curl

# ---------------------------------------------------------------------------
# --once with the responder down: a distinct exit code, one clear line, no
# .ocsp file, and the nginx snippet says "ssl_stapling off" so nginx starts.
S=$DIR/start NG=$DIR/nginx
mkdir -p "$S"
cp "$P/good.pem" "$S/site.pem"; cp "$P/good.key" "$S/site.key"
NPORT=$("$MKPKI" --free-port)
nginx_conf "$NG" "$NPORT" "$S" snippet
t0=$(date +%s)
out=$("$CLI" watch --dir "$S" --once --nginx-snippets --status-file "$DIR/once.json" 2>&1); rc=$?
[ "$rc" = 1 ] && ok "--once, responder down: exit 1" || bad "--once down: rc $rc" "$out"
expect "--once, responder down: one not-ready line with the reason" \
    "not-ready cert=$S/site.pem status=none .*reason=\"E_OFFLINE: .*last retrieval: .*127.0.0.1:$RPORT.*(refused|connect)" "$out"
[ ! -e "$S/site.pem.ocsp" ] && ok "--once, responder down: no .ocsp file" || bad "--once wrote a file"
expect "--once: the snippet turns stapling off" "^ssl_stapling off;" "$(cat "$S/site.pem.stapling.conf" 2>&1)"
expect "--once: the status file says why" '"served":false,"status":"none","reason":"E_OFFLINE"' "$(cat "$DIR/once.json")"
nginx_start "$NG" && ok "nginx starts on the snippet while nothing can be stapled" \
    || bad "nginx start (snippet off)" "$(cat "$NG/logs/start.log" "$NG/logs/error.log" 2>/dev/null)"
wait_for 5 no_staple "$NPORT" && ok "nginx serves, without a staple" || bad "nginx no staple" "$(staple "$NPORT")"
# For comparison: plain ssl_stapling_file without the file refuses to start.
NG0=$DIR/nginx-plain
nginx_conf "$NG0" "$("$MKPKI" --free-port)" "$S" file
if nginx -t -p "$NG0" -c "$NG0/nginx.conf" >/dev/null 2>&1; then
    bad "nginx with a missing ssl_stapling_file was expected to refuse its configuration"
else
    ok "(nginx with ssl_stapling_file and no file refuses to start: why the snippet)"
fi

# --- a hung responder: bounded by --url-timeout ---
responder ca 60
kill -STOP "$RESPONDER_PID"
t0=$(date +%s)
out=$("$CLI" watch --dir "$S" --once --url-timeout 2 2>&1); rc=$?
t1=$(date +%s)
[ "$rc" = 1 ] && [ $((t1 - t0)) -le 10 ] && ok "--once, hung responder: exit 1 after $((t1 - t0)) s (--url-timeout 2)" \
    || bad "--once hung: rc $rc after $((t1 - t0)) s" "$out"
expect "--once, hung responder: the reason is the timeout" "not-ready .*E_OFFLINE.*last retrieval: .*(timed out|did not answer|Timeout)" "$out"
kill -CONT "$RESPONDER_PID"

# --- a bad responder (signs with a key the issuer never authorized) ---
responder good 60
out=$("$CLI" watch --dir "$S" --once 2>&1); rc=$?
[ "$rc" = 1 ] && ok "--once, bad responder: exit 1" || bad "--once bad: rc $rc" "$out"
expect "--once, bad responder: the verification failure is named" "not-ready .*last retrieval: .*(not an authorized responder|lacks extended key usage|signer)" "$out"
[ ! -e "$S/site.pem.ocsp" ] && ok "--once, bad responder: nothing written" || bad "bad response written"

# --- --wait: the responder comes back while watch waits ---
stop_pid "$RESPONDER_PID"; RESPONDER_PID=
"$CLI" watch --dir "$S" --wait 40 --nginx-snippets >"$DIR/wait.log" 2>&1 &
WAIT_PID=$!; PIDS+=($WAIT_PID)
sleep 3
responder ca 60
wait "$WAIT_PID"; rc=$?
[ "$rc" = 0 ] && ok "--wait: exit 0 once the responder answers" || bad "--wait rc $rc" "$(cat "$DIR/wait.log")"
expect "--wait: a ready line" "ready cert=$S/site.pem status=good" "$(cat "$DIR/wait.log")"
test -s "$S/site.pem.ocsp" && ok "--wait: the response is written" || bad "--wait wrote nothing"
expect "--wait: the snippet turns stapling on" "^ssl_stapling on;" "$(cat "$S/site.pem.stapling.conf")"

# --- --once, responder up: exit 0 ---
out=$("$CLI" watch --dir "$S" --once 2>&1); rc=$?
[ "$rc" = 0 ] && ok "--once, responder up: exit 0" || bad "--once up: rc $rc" "$out"
out=$("$CLI" watch --dir "$S" --once --wait 5 2>&1); rc=$?
[ "$rc" = 2 ] && ok "--once with --wait is a usage error (2)" || bad "--once --wait rc $rc" "$out"
out=$("$CLI" watch --dir "$S" --withdrawn-file maybe 2>&1); rc=$?
[ "$rc" = 2 ] && grep -q "withdrawn-file must be keep or empty, not 'maybe'" <<<"$out" \
    && ok "a bad --withdrawn-file is refused by name" || bad "--withdrawn-file maybe: rc $rc" "$out"
out=$("$CLI" watch --dir "$S" --min-validity 0 2>&1); rc=$?
[ "$rc" = 2 ] && grep -q "min-validity must be 1 to 86400 seconds" <<<"$out" \
    && ok "a bad --min-validity is refused by name" || bad "--min-validity 0: rc $rc" "$out"
# The example configuration parses (only the missing status file is reported).
out=$("$CLI" watch --config "$HERE/../../docs/examples/watch.conf" --status 2>&1)
expect "docs/examples/watch.conf is a valid configuration" "no status file at /run/srvocsp/status.json" "$out"
E=$DIR/empty-dir; mkdir -p "$E"
out=$("$CLI" watch --dir "$E" --once 2>&1); rc=$?
[ "$rc" = 2 ] && grep -q "no certificate" <<<"$out" && ok "--once without certificates: exit 2, said so" \
    || bad "--once empty: rc $rc" "$out"

# The running nginx picks the staple up at the reload the hook does.
nginx -p "$NG" -c "$NG/nginx.conf" -s reload
wait_for 10 has_status "$NPORT" good && ok "after the reload nginx staples it" || bad "nginx staple after reload" "$(staple "$NPORT")"

# ---------------------------------------------------------------------------
# Restart during an outage: the .ocsp files are adopted (verified), nothing
# is rewritten or reloaded, and status, metrics and check agree with what
# nginx and HAProxy staple.
H=$DIR/haproxy-certs
mkdir -p "$H"
cat "$P/good-rsa.pem" "$P/good-rsa.key" >"$H/site.pem"
out=$("$CLI" watch --dir "$H" --once --nginx-snippets 2>&1) || bad "--once for HAProxy's file" "$out"
HPORT=$("$MKPKI" --free-port) SOCK=$DIR/haproxy.sock
haproxy_conf "$DIR/haproxy.cfg" "$HPORT" "$SOCK" "$H/site.pem"
haproxy -f "$DIR/haproxy.cfg" -db >"$DIR/haproxy.log" 2>&1 &
PIDS+=($!)
wait_for 10 has_status "$HPORT" good && ok "HAProxy loads the file --once wrote" || bad "HAProxy staple" "$(staple "$HPORT"; cat "$DIR/haproxy.log")"

stop_pid "$RESPONDER_PID"; RESPONDER_PID=       # the outage
cp "$S/site.pem.ocsp" "$DIR/nginx-before.ocsp"; cp "$H/site.pem.ocsp" "$DIR/haproxy-before.ocsp"
MPORT=$("$MKPKI" --free-port)
"$CLI" watch --dir "$S" --dir "$H" --nginx-snippets --status-file "$DIR/status.json" \
    --metrics "127.0.0.1:$MPORT" --on-update 'echo "$SRVOCSP_EVENT" >>'"$DIR/hook.log" >"$DIR/watch.log" 2>&1 &
WATCH=$!; PIDS+=($WATCH)
wait_for 10 grep -q "adopted cert=$H/site.pem" "$DIR/watch.log"
expect "restart: the nginx file is adopted" "adopted cert=$S/site.pem status=good" "$(cat "$DIR/watch.log")"
expect "restart: the HAProxy file is adopted" "adopted cert=$H/site.pem status=good" "$(cat "$DIR/watch.log")"
# The adopted response sets the schedule (its refresh is minutes away): ask now.
kill -USR1 "$WATCH"
wait_for 10 grep -q "failed cert=$S/site.pem" "$DIR/watch.log" \
    && ok "restart: a refresh fails (the responder is down)" || bad "no failure logged" "$(cat "$DIR/watch.log")"
wait_for 10 grep -q "failed cert=$H/site.pem" "$DIR/watch.log"
st=$("$CLI" watch --status --status-file "$DIR/status.json")
expect "restart: status says served, good (nginx)" "\"cert\":\"$S/site.pem\"[^}]*\"served\":true,\"status\":\"good\"" "$st"
expect "restart: status says served, good (HAProxy)" "\"cert\":\"$H/site.pem\"[^}]*\"served\":true,\"status\":\"good\"" "$st"
expect "restart: status names the outage" "\"cert\":\"$S/site.pem\"[^}]*\"last_error_code\":\"E_(TRANSPORT|TIMEOUT)\"" "$st"
m=$(metrics "$MPORT")
expect "restart: metrics say served" "srvocsp_served\\{cert=\"$S/site.pem\"\\} 1" "$m"
expect "restart: metrics give the adopted response's expiry" "srvocsp_seconds_until_expiry\\{cert=\"$H/site.pem\"\\} [1-9]" "$m"
cmp -s "$S/site.pem.ocsp" "$DIR/nginx-before.ocsp" && cmp -s "$H/site.pem.ocsp" "$DIR/haproxy-before.ocsp" \
    && ok "restart: the files are left as they were" || bad "restart rewrote a file"
[ ! -s "$DIR/hook.log" ] && ok "restart: no reload for what the servers already staple" \
    || bad "restart ran the hook" "$(cat "$DIR/hook.log")"
expect "check --file agrees (nginx's file)" "^OCSP OK - good" "$("$CLI" check --file "$S/site.pem.ocsp" --cert "$S/site.pem" --warn 600 --crit 60)"
expect "check --connect agrees (nginx)" "^OCSP OK - good" "$("$CLI" check --connect "127.0.0.1:$NPORT" --warn 600 --crit 60)"
expect "check --connect agrees (HAProxy)" "^OCSP OK - good" "$("$CLI" check --connect "127.0.0.1:$HPORT" --warn 600 --crit 60)"
kill -TERM "$WATCH"; wait "$WATCH"

# A file that is not a response for its certificate is not adopted, and says why.
W=$DIR/foreign; mkdir -p "$W"
cp "$P/twourls.pem" "$W/site.pem"; cp "$P/resp-good.der" "$W/site.pem.ocsp"   # good.pem's response
out=$("$CLI" watch --dir "$W" --once --url-timeout 2 --status-file "$DIR/foreign.json" 2>&1); rc=$?
expect "a foreign .ocsp file is not adopted, with the reason" "not-adopted cert=$W/site.pem .*reason=\"E_NO_MATCH" "$out"
[ "$rc" = 1 ] && ok "... and --once says not ready (exit 1)" || bad "foreign rc $rc" "$out"
expect "... the status file says the file is kept, not served" '"served":false,"status":"none","reason":"E_OFFLINE"[^}]*"file":"kept"' "$(cat "$DIR/foreign.json")"

finish
