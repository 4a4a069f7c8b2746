#!/usr/bin/env bash
# When the library stops serving a certificate's response (too close to its
# nextUpdate, the responder now says unknown, the wall clock jumped), srvocsp
# watch notices on time, says so in its log, status file and metrics, and
# makes the servers stop stapling where they allow it: nginx through the
# snippet and a reload, HAProxy through an emptied .ocsp file.  A newer
# response the library refuses to serve (5 minutes of validity) never
# replaces a servable file.  Real nginx, HAProxy, openssl ocsp, libfaketime;
# 127.0.0.1 only.
set -u
CLI=$1 MKPKI=$2 LOBIND=$3 NAME=watch-withdraw
. "$(cd "$(dirname "$0")" && pwd)/watch_common.sh"
need openssl nginx haproxy curl gnutls-cli

# ---------------------------------------------------------------------------
# 10-minute responses and --min-validity 580: each can be served 20 s.  The
# responder answers once, then is down.
responder ca 10
S=$DIR/nginx-certs H=$DIR/haproxy-certs NG1=$DIR/nginx-snippet NG2=$DIR/nginx-file
mkdir -p "$S" "$H"
cp "$P/good.pem" "$S/site.pem"; cp "$P/good.key" "$S/site.key"
cat "$P/good-rsa.pem" "$P/good-rsa.key" >"$H/site.pem"
NPORT1=$("$MKPKI" --free-port) NPORT2=$("$MKPKI" --free-port) MPORT=$("$MKPKI" --free-port)
HPORT=$("$MKPKI" --free-port) SOCK=$DIR/haproxy.sock
nginx_conf "$NG1" "$NPORT1" "$S" snippet
nginx_conf "$NG2" "$NPORT2" "$S" file
haproxy_conf "$DIR/haproxy.cfg" "$HPORT" "$SOCK" "$H/site.pem"

"$CLI" watch --dir "$S" --nginx-snippets --min-validity 580 --status-file "$DIR/status.json" \
    --metrics "127.0.0.1:$MPORT" \
    --on-update "echo \"\$SRVOCSP_EVENT \$SRVOCSP_REASON\" >>$DIR/hook.log; $(nginx_reload_cmd "$NG1")" \
    >"$DIR/watch-nginx.log" 2>&1 &
WATCH_N=$!; PIDS+=($WATCH_N)
"$CLI" watch --dir "$H" --min-validity 580 --haproxy-socket "$SOCK" --status-file "$DIR/status-h.json" \
    >"$DIR/watch-haproxy.log" 2>&1 &
WATCH_H=$!; PIDS+=($WATCH_H)
wait_for 10 grep -q "updated cert=$S/site.pem" "$DIR/watch-nginx.log" || bad "watch (nginx) got a response" "$(cat "$DIR/watch-nginx.log")"
wait_for 10 grep -q "updated cert=$H/site.pem" "$DIR/watch-haproxy.log" || bad "watch (HAProxy) got a response" "$(cat "$DIR/watch-haproxy.log")"
stop_pid "$RESPONDER_PID"; RESPONDER_PID=
nginx_start "$NG1" || bad "nginx (snippet) starts" "$(cat "$NG1/logs/start.log")"
nginx_start "$NG2" || bad "nginx (file) starts" "$(cat "$NG2/logs/start.log")"
haproxy -f "$DIR/haproxy.cfg" -db >"$DIR/haproxy.log" 2>&1 &
HAP=$!; PIDS+=($HAP)
wait_for 10 has_status "$NPORT1" good && ok "nginx (snippet) staples while servable" || bad "nginx1 staple" "$(staple "$NPORT1")"
wait_for 10 has_status "$HPORT" good && ok "HAProxy staples while servable" || bad "HAProxy staple" "$(staple "$HPORT"; cat "$DIR/haproxy.log")"
nu=$(json_field "$DIR/status.json" next_update)

# Withdrawn at nextUpdate - 580 s, not at the next event (there is none).
wait_for 40 grep -q "withdrawn cert=$S/site.pem" "$DIR/watch-nginx.log"
line=$(grep "withdrawn cert=$S/site.pem" "$DIR/watch-nginx.log")
expect "nginx side: 'withdrawn' logged with the reason, the file kept" \
    "withdrawn cert=$S/site.pem status=none .*reason=\"E_STALE: .*site.pem.ocsp kept\"" "$line"
when=$(date -u -d "$(cut -d' ' -f1 <<<"$line")" +%s)
# A few seconds late at most (log times are whole seconds, the machine
# may be busy); the next event would be minutes away.
[ -n "$nu" ] && [ "$when" -ge $((nu - 580)) ] && [ "$when" -le $((nu - 580 + 10)) ] \
    && ok "withdrawn on time (nextUpdate - 580 s, +$((when - nu + 580)) s)" \
    || bad "withdrawn at $when, nextUpdate $nu" "$line"
wait_for 5 grep -q '"served":false' "$DIR/status.json"
st=$(cat "$DIR/status.json")
expect "status file: served false, the reason, the file kept" \
    '"served":false,"status":"none","reason":"E_STALE","reason_text":"[^"]+","file":"kept"' "$st"
m=$(metrics "$MPORT")
expect "metrics: served 0" "srvocsp_served\\{cert=\"$S/site.pem\"\\} 0" "$m"
expect "metrics: a withdrawal by reason" 'srvocsp_withdrawals_total\{reason="E_STALE"\} 1' "$m"
expect "metrics: no expiry for what is not served" "srvocsp_seconds_until_expiry\\{cert=\"$S/site.pem\"\\} 0" "$m"
expect "the hook heard 'withdrawn' with the reason" "^withdrawn E_STALE" "$(cat "$DIR/hook.log")"
expect "the snippet turns stapling off" "^ssl_stapling off;" "$(cat "$S/site.pem.stapling.conf")"
wait_for 10 no_staple "$NPORT1" && ok "nginx (snippet + reload) stops stapling" || bad "nginx1 still staples" "$(staple "$NPORT1")"
test -s "$S/site.pem.ocsp" && nginx -t -p "$NG2" -c "$NG2/nginx.conf" >/dev/null 2>&1 \
    && ok "the kept file still loads in nginx (an empty one would stop its reloads and restarts)" \
    || bad "kept file" "$(ls -la "$S"; nginx -t -p "$NG2" -c "$NG2/nginx.conf" 2>&1)"
has_status "$NPORT2" good && ok "(nginx with ssl_stapling_file keeps stapling it until a reload: the documented limit)" \
    || bad "nginx2 staple" "$(staple "$NPORT2")"

# HAProxy: the file is emptied, the runtime cannot be cleared (logged), and
# a restart loads the empty file: no staple, no failure.
wait_for 10 grep -q "withdrawn cert=$H/site.pem" "$DIR/watch-haproxy.log"
expect "HAProxy side: withdrawn, file emptied" "withdrawn cert=$H/site.pem .*reason=\"E_STALE: .*site.pem.ocsp emptied\"" \
    "$(cat "$DIR/watch-haproxy.log")"
expect "HAProxy side: the runtime limit is logged" "haproxy-unchanged cert=$H/site.pem" "$(cat "$DIR/watch-haproxy.log")"
[ -e "$H/site.pem.ocsp" ] && [ ! -s "$H/site.pem.ocsp" ] && ok "HAProxy's .ocsp file is empty" || bad "haproxy file" "$(ls -la "$H")"
expect "HAProxy side status: file empty" '"served":false,"status":"none","reason":"E_STALE"[^}]*"file":"empty"' "$(cat "$DIR/status-h.json")"
has_status "$HPORT" good && ok "(the running HAProxy keeps the old response until 300 s before its nextUpdate: its runtime API cannot remove it)" \
    || bad "HAProxy staple before its restart" "$(staple "$HPORT")"
stop_pid "$HAP"
haproxy -f "$DIR/haproxy.cfg" -db >"$DIR/haproxy2.log" 2>&1 &
HAP=$!; PIDS+=($HAP)
wait_for 10 no_staple "$HPORT" && ok "HAProxy restarted on the empty file: up, no staple" \
    || bad "HAProxy after restart" "$(staple "$HPORT"; cat "$DIR/haproxy2.log")"
kill -TERM "$WATCH_H"; wait "$WATCH_H"

# The responder is back: served again, snippet on, nginx staples after the hook's reload.
responder ca 60
kill -USR1 "$WATCH_N"
wait_for 15 has_status "$NPORT1" good && ok "served again: nginx (snippet) staples again" \
    || bad "nginx1 back" "$(staple "$NPORT1"; cat "$DIR/watch-nginx.log")"
expect "status: served again" '"served":true,"status":"good","reason":""' "$(cat "$DIR/status.json")"

# Why the snippet and not the file: what real clients do with an expired
# staple (all nginx can be given once a response is past its nextUpdate)
# and with none (stapling off), the responder answering.
{
    X=$DIR/expired-certs NG3=$DIR/nginx-expired NG4=$DIR/nginx-off
    mkdir -p "$X"; cp "$S/site.pem" "$S/site.key" "$X/"; cp "$P/resp-expired.der" "$X/site.pem.ocsp"
    echo "ssl_stapling off;" >"$X/site.pem.stapling.conf"
    NPORT3=$("$MKPKI" --free-port) NPORT4=$("$MKPKI" --free-port)
    nginx_conf "$NG3" "$NPORT3" "$X" file
    nginx_conf "$NG4" "$NPORT4" "$X" snippet
    nginx_start "$NG3" || bad "nginx (expired file) starts" "$(cat "$NG3/logs/start.log")"
    nginx_start "$NG4" || bad "nginx (stapling off) starts" "$(cat "$NG4/logs/start.log")"
    gnutls() { timeout 10 gnutls-cli --ocsp --x509cafile "$P/root.pem" -p "$1" localhost </dev/null 2>&1; }
    curl_status() { curl -sS --cert-status --cacert "$P/root.pem" "https://localhost:$1/" 2>&1; }
    expect "(expired staple: gnutls-cli --ocsp refuses the connection)" "OCSP data are old|superseded" "$(gnutls "$NPORT3")"
    expect "(no staple: gnutls-cli --ocsp asks the responder itself and connects)" "Handshake was completed" "$(gnutls "$NPORT4")"
    expect "(expired staple: curl --cert-status refuses it)" "OCSP response has expired" "$(curl_status "$NPORT3")"
    expect "(no staple: curl --cert-status demands one)" "No OCSP response received" "$(curl_status "$NPORT4")"
}

# ---------------------------------------------------------------------------
# unknown after good: withdrawn at once, the reason says so.
cp "$P/index.txt" "$DIR/index.saved"
set_status 1001 -
responder ca 60
sleep 1.1
kill -USR1 "$WATCH_N"
wait_for 15 grep -q "withdrawn cert=$S/site.pem.*E_STATUS_UNKNOWN" "$DIR/watch-nginx.log" \
    && ok "unknown after good: withdrawn, reason E_STATUS_UNKNOWN" || bad "unknown withdrawal" "$(cat "$DIR/watch-nginx.log")"
expect "unknown: the status file" '"served":false,"status":"none","reason":"E_STATUS_UNKNOWN"' "$(cat "$DIR/status.json")"
wait_for 10 no_staple "$NPORT1" && ok "unknown: nginx (snippet) stops stapling the old good response" \
    || bad "nginx1 after unknown" "$(staple "$NPORT1")"
kill -TERM "$WATCH_N"; wait "$WATCH_N"
cp "$DIR/index.saved" "$P/index.txt"
responder ca 60

# ---------------------------------------------------------------------------
# The wall clock jumps 2 hours ahead (libfaketime, in watch only): the
# 60-minute response is past its nextUpdate and withdrawn within seconds.
FAKETIME_LIB=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -1)
# Under a sanitizer its runtime must come first in LD_PRELOAD.
ASAN_LIB=$(ldd "$CLI" 2>/dev/null | awk '/libasan|libtsan/ { print $3 }')
if [ -n "$FAKETIME_LIB" ]; then
    J=$DIR/jump; mkdir -p "$J"; cp "$P/good.pem" "$J/site.pem"
    echo "+0" >"$DIR/faketime"
    LD_PRELOAD="${ASAN_LIB:+$ASAN_LIB }$FAKETIME_LIB" FAKETIME_TIMESTAMP_FILE=$DIR/faketime FAKETIME_NO_CACHE=1 \
        FAKETIME_DONT_FAKE_MONOTONIC=1 \
        "$CLI" watch --dir "$J" --status-file "$DIR/status-j.json" >"$DIR/watch-jump.log" 2>&1 &
    WATCH_J=$!; PIDS+=($WATCH_J)
    wait_for 10 grep -q "updated cert=$J/site.pem" "$DIR/watch-jump.log" || bad "watch (jump) got a response" "$(cat "$DIR/watch-jump.log")"
    echo "+2h" >"$DIR/faketime"
    t0=$(date +%s)
    wait_for 15 grep -q "withdrawn cert=$J/site.pem" "$DIR/watch-jump.log" \
        && ok "clock 2 h ahead: withdrawn $(( $(date +%s) - t0 )) s later" || bad "no withdrawal after the jump" "$(cat "$DIR/watch-jump.log")"
    expect "clock jump: the status file says not served" '"served":false' "$(cat "$DIR/status-j.json")"
    # Back to the true time: served again.  Then 2 hours back: the response
    # now starts in the future, which strict clients refuse.
    echo "+0" >"$DIR/faketime"
    wait_for 15 grep -q '"served":true' "$DIR/status-j.json" \
        && ok "clock back to the true time: served again" || bad "not served again" "$(cat "$DIR/watch-jump.log")"
    echo "-2h" >"$DIR/faketime"
    wait_for 15 grep -q "withdrawn cert=$J/site.pem.*E_NOT_YET_VALID" "$DIR/watch-jump.log" \
        && ok "clock 2 h back: withdrawn, reason E_NOT_YET_VALID" || bad "no withdrawal after the jump back" "$(cat "$DIR/watch-jump.log")"
    kill -TERM "$WATCH_J"; wait "$WATCH_J"
else
    bad "libfaketime not installed (Debian package faketime, installed by scripts/deps.sh --test)"
fi

# ---------------------------------------------------------------------------
# A newer response that cannot be served (5 minutes < MinValidity) never
# replaces a servable file; with --adaptive-min-validity it is served.
F=$DIR/short; A=$DIR/adaptive; mkdir -p "$F" "$A"
cp "$P/good.pem" "$F/site.pem"; cp "$P/good-rsa.pem" "$A/site.pem"
MPORT2=$("$MKPKI" --free-port)
"$CLI" watch --dir "$F" --status-file "$DIR/status-f.json" --metrics "127.0.0.1:$MPORT2" >"$DIR/watch-short.log" 2>&1 &
WATCH_F=$!; PIDS+=($WATCH_F)
"$CLI" watch --dir "$A" --adaptive-min-validity >"$DIR/watch-adaptive.log" 2>&1 &
WATCH_A=$!; PIDS+=($WATCH_A)
wait_for 10 grep -q "updated cert=$F/site.pem" "$DIR/watch-short.log" || bad "watch (short) got a response" "$(cat "$DIR/watch-short.log")"
wait_for 10 grep -q "updated cert=$A/site.pem" "$DIR/watch-adaptive.log" || bad "watch (adaptive) got a response" "$(cat "$DIR/watch-adaptive.log")"
cp "$F/site.pem.ocsp" "$DIR/before-short.ocsp"; cp "$A/site.pem.ocsp" "$DIR/before-adaptive.ocsp"
responder ca 5
sleep 1.1
kill -USR1 "$WATCH_F" "$WATCH_A"
wait_for 15 grep -q "failed cert=$F/site.pem.*" "$DIR/watch-short.log"
expect "5-minute response: refused as E_SHORT_VALIDITY in the log" "failed cert=$F/site.pem status=good .*reason=\"E_SHORT_VALIDITY: " \
    "$(grep "failed cert=$F" "$DIR/watch-short.log")"
expect "5-minute response: the status file names E_SHORT_VALIDITY" '"served":true,"status":"good".*"last_error_code":"E_SHORT_VALIDITY"' \
    "$(cat "$DIR/status-f.json")"
expect "5-minute response: metrics count E_SHORT_VALIDITY" 'srvocsp_failures_total\{reason="E_SHORT_VALIDITY"\} [1-9]' "$(metrics "$MPORT2")"
cmp -s "$F/site.pem.ocsp" "$DIR/before-short.ocsp" && ok "5-minute response: the servable file is untouched" \
    || bad "the servable file was replaced" "$(openssl ocsp -respin "$F/site.pem.ocsp" -resp_text -noverify 2>&1 | grep -i update)"
refuse "5-minute response: nothing withdrawn" "withdrawn" "$(cat "$DIR/watch-short.log")"
# The first two lines are the first update; wait for a later one (read
# anew at each try).
wait_for 15 sh -c "tail -n +3 '$DIR/watch-adaptive.log' | grep -q 'updated cert=$A/site.pem'" \
    || bad "adaptive: no second update" "$(cat "$DIR/watch-adaptive.log")"
nu=$(openssl ocsp -respin "$A/site.pem.ocsp" -resp_text -noverify 2>/dev/null | sed -n 's/.*Next Update: //p')
tu=$(openssl ocsp -respin "$A/site.pem.ocsp" -resp_text -noverify 2>/dev/null | sed -n 's/.*This Update: //p')
[ -n "$nu" ] && [ $(( $(date -d "$nu" +%s) - $(date -d "$tu" +%s) )) = 300 ] \
    && ok "--adaptive-min-validity: the 5-minute response is served and written" \
    || bad "adaptive" "$(cat "$DIR/watch-adaptive.log")"
kill -TERM "$WATCH_F" "$WATCH_A"; wait "$WATCH_F" "$WATCH_A"
S2=$DIR/short-first; mkdir -p "$S2"; cp "$P/good.pem" "$S2/site.pem"
out=$("$CLI" watch --dir "$S2" --once 2>&1); rc=$?
[ "$rc" = 1 ] && grep -q "not-ready cert=$S2/site.pem .*E_SHORT_VALIDITY" <<<"$out" \
    && ok "--once against a 5-minute responder: not ready, E_SHORT_VALIDITY named" || bad "--once short rc $rc" "$out"
[ ! -e "$S2/site.pem.ocsp" ] && ok "... and nothing written" || bad "a 5-minute response was written"

finish
