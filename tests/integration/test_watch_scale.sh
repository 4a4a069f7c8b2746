#!/usr/bin/env bash
# srvocsp watch over 1,000 certificates against a real `openssl ocsp`
# responder: a 20 ms hook per file costs no transfer, a hook that hangs
# holds up no file, and a batch hook covers many files per run.  127.0.0.1 only.
set -u
CLI=$1 MKPKI=$2 LOBIND=$3
NAME=watch-scale
. "$(dirname "$0")/watch_common.sh"
need openssl curl

N=1000
M=$DIR/many C=$DIR/certs
mkdir -p "$M" "$C"
MRPORT=$("$MKPKI" --free-port)
"$MKPKI" "$M" "http://127.0.0.1:$MRPORT/" --many $N "$C" || exit 1
start_ocsp "$M" "$MRPORT" ca 60 ca index.txt || exit 1

written() { find "$C" -name '*.pem.ocsp' -size +0 | wc -l; }
all_written() { [ "$(written)" -ge $N ]; }
fresh() { find "$C" -name '*.pem.ocsp' -delete; }
stop_watch() { kill -TERM "$1"; wait "$1"; }
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

# --- a 20 ms hook per file (a reload script): every file, no transfer lost ---
HOOKLOG=$DIR/hook.log
start=$(date +%s%N)
"$CLI" watch --dir "$C" --status-file "$DIR/status.json" \
    --on-update 'sleep 0.02; echo "$SRVOCSP_EVENT $SRVOCSP_CERT_FILE" >>'"$HOOKLOG" >"$DIR/watch1.log" 2>&1 &
W=$!; PIDS+=($W)
wait_for 120 all_written && ok "20 ms hook: all $N files written ($(( ($(date +%s%N) - start) / 1000000 )) ms)" \
    || bad "20 ms hook: $(written) of $N files" "$(tail -5 "$DIR/watch1.log")"
hooks_then=$(lines "$HOOKLOG")
[ "$(grep -c " failed cert=" "$DIR/watch1.log")" = 0 ] && ! grep -q E_TIMEOUT "$DIR/watch1.log" \
    && ok "20 ms hook: no retrieval failed, no transfer timed out" \
    || bad "20 ms hook: failures logged" "$(grep " failed cert=" "$DIR/watch1.log" | head -3)"
all_hooked() { [ "$(lines "$HOOKLOG")" -ge $N ]; }
wait_for 120 all_hooked && ok "20 ms hook: ran for every file (at most 4 at once; $hooks_then of $N had run when the last file was written)" \
    || bad "20 ms hook: $(lines "$HOOKLOG") runs" "$(tail -3 "$DIR/watch1.log")"
[ "$(cut -d' ' -f2 "$HOOKLOG" | sort -u | wc -l)" = $N ] && ! grep -qv '^updated ' "$HOOKLOG" \
    && ok "20 ms hook: once per certificate, each told 'updated'" \
    || bad "20 ms hook: hook log" "$(sort "$HOOKLOG" | uniq -c | sort -rn | head -3)"
expect "status file lists every certificate served" "^$N\$" "$(grep -c '"served":true' "$DIR/status.json")"
stop_watch "$W"

# --- a hook that hangs: the files are still written, one hook runs ---
fresh
MPORT=$("$MKPKI" --free-port)
"$CLI" watch --dir "$C" --hook-jobs 1 --hook-timeout 300 --on-update 'exec sleep 4243' \
    --metrics "127.0.0.1:$MPORT" >"$DIR/watch2.log" 2>&1 &
W=$!; PIDS+=($W)
wait_for 120 all_written && ok "hung hook: all $N files written all the same" \
    || bad "hung hook: $(written) of $N files" "$(tail -5 "$DIR/watch2.log")"
m=$(metrics "$MPORT")
expect "hung hook: one hook started (--hook-jobs 1), the others wait" 'srvocsp_watch_hook_runs_total\{kind="update"\} 1$' "$m"
expect "hung hook: the metrics still answer and count every response" "srvocsp_responses_total\\{status=\"good\"\\} $N\$" "$m"
[ "$(grep -c " failed cert=" "$DIR/watch2.log")" = 0 ] && ok "hung hook: no retrieval failed" \
    || bad "hung hook: failures" "$(grep " failed cert=" "$DIR/watch2.log" | head -3)"
t0=$(date +%s)
stop_watch "$W"; rc=$?
[ "$rc" = 0 ] && [ $(( $(date +%s) - t0 )) -le 15 ] && ok "hung hook: SIGTERM still stops watch (exit 0)" || bad "hung hook: stop rc $rc"
wait_for 5 bash -c '! pgrep -fx "sleep 4243"' && ok "hung hook: its process group is gone" \
    || bad "hung hook still running" "$(pgrep -afx "sleep 4243")"

# --- a batch hook: one run covers many files ---
fresh
BATCHLOG=$DIR/batch.log
mkdir -p "$DIR/tmp"
# The list arrives on the hook's input and in SRVOCSP_BATCH_FILE.
TMPDIR=$DIR/tmp "$CLI" watch --dir "$C" --batch-delay 500 \
    --on-batch 'n=$(wc -l); head -1 "$SRVOCSP_BATCH_FILE" >"'"$DIR"'/batch-line"; echo "$n $SRVOCSP_BATCH_COUNT $SRVOCSP_EVENT" >>'"$BATCHLOG" \
    >"$DIR/watch3.log" 2>&1 &
W=$!; PIDS+=($W)
wait_for 120 all_written && ok "batch hook: all $N files written" \
    || bad "batch hook: $(written) of $N files" "$(tail -5 "$DIR/watch3.log")"
covered() { [ -f "$BATCHLOG" ] && [ "$(awk '{s += $1} END {print s}' "$BATCHLOG")" -ge $N ]; }
wait_for 60 covered && ok "batch hook: every file listed in some run" \
    || bad "batch hook: $(awk '{s += $1} END {print s}' "$BATCHLOG" 2>/dev/null) listed" "$(cat "$BATCHLOG" 2>/dev/null)"
runs=$(lines "$BATCHLOG") most=$(sort -n "$BATCHLOG" | tail -1 | cut -d' ' -f1)
[ "$runs" -ge 1 ] && [ "$runs" -le 20 ] && [ "${most:-0}" -ge 100 ] \
    && ok "batch hook: $runs runs for $N files, the largest covering $most" \
    || bad "batch hook: $runs runs, largest $most" "$(cat "$BATCHLOG")"
[ "$(awk '{s += $1} END {print s}' "$BATCHLOG")" = $N ] && ok "batch hook: each file listed once" \
    || bad "batch hook: listed $(awk '{s += $1} END {print s}' "$BATCHLOG")"
[ -z "$(awk '$1 != $2 || $3 != "batch"' "$BATCHLOG")" ] \
    && ok "batch hook: SRVOCSP_EVENT=batch, SRVOCSP_BATCH_COUNT and its input agree" || bad "batch hook env" "$(cat "$BATCHLOG")"
expect "batch hook: the list says event, certificate, .ocsp file" "^updated	$C/site-[0-9]+\\.pem	$C/site-[0-9]+\\.pem\\.ocsp\$" \
    "$(cat "$DIR/batch-line")"
sleep 1
[ "$(lines "$BATCHLOG")" = "$runs" ] && ok "batch hook: nothing changed, no further run" || bad "batch hook ran again" "$(cat "$BATCHLOG")"
stop_watch "$W"
[ -z "$(ls "$DIR/tmp")" ] && ok "batch hook: its list files are removed" || bad "batch lists left" "$(ls "$DIR/tmp")"

# --- HAProxy's runtime API: every response pushed, pipelined ---
# HAProxy 2.6 takes a pushed response only for a certificate it loaded one
# for at start: --once first, as the service units do.
if command -v haproxy >/dev/null; then
    fresh
    "$CLI" watch --dir "$C" --once >"$DIR/once.log" 2>&1 && all_written \
        || bad "--once before HAProxy: $(written) files" "$(tail -3 "$DIR/once.log")"
    HPORT=$("$MKPKI" --free-port) SOCK=$DIR/haproxy.sock
    haproxy_conf "$DIR/haproxy.cfg" "$HPORT" "$SOCK" "$C"   # a folder: every site-*.pem
    haproxy -f "$DIR/haproxy.cfg" -db >"$DIR/haproxy.log" 2>&1 &
    PIDS+=($!)
    staple_of() { echo | timeout 10 openssl s_client -connect "127.0.0.1:$HPORT" -servername "$1" -status 2>&1; }
    wait_for 30 bash -c "echo | openssl s_client -connect 127.0.0.1:$HPORT -servername site-00500.test -status 2>&1 | grep -q 'Cert Status: good'" \
        && ok "HAProxy loads $N certificates and their files" || bad "HAProxy start" "$(tail -5 "$DIR/haproxy.log")"
    "$CLI" watch --dir "$C" --haproxy-socket "$SOCK" >"$DIR/watch4.log" 2>&1 &
    W=$!; PIDS+=($W)
    # At start each file is adopted, and the first retrieval (which the
    # library makes at once) may bring a newer one, pushed: let that settle.
    npush() { grep -c "haproxy-updated cert=.*OCSP Response updated" "$DIR/watch4.log"; }
    settled() {
        [ "$(grep -cE "(adopted|updated) cert=" "$DIR/watch4.log")" -ge $N ] &&
        [ "$(npush)" = "$(grep -c " updated cert=" "$DIR/watch4.log")" ]
    }
    wait_for 60 settled || bad "watch adopts HAProxy's files" "$(tail -3 "$DIR/watch4.log")"
    sleep 1
    # The responder now says one of them is revoked; every response is new.
    awk -F'\t' -v OFS='\t' '$4 == "1001F4" { $1 = "R"; $3 = "251231000000Z,keyCompromise" } { print }' \
        "$M/index.txt" >"$M/index.tmp" && mv "$M/index.tmp" "$M/index.txt"
    stop_pid "$RESPONDER_PID"; start_ocsp "$M" "$MRPORT" ca 60 ca index.txt || exit 1
    sleep 1.1
    before=$(npush)
    t0=$(date +%s%N)
    kill -USR1 "$W"
    pushed() { [ "$(npush)" -ge $((before + N)) ]; }
    wait_for 120 pushed && ok "HAProxy: $N new responses pushed and confirmed ($(( ($(date +%s%N) - t0) / 1000000 )) ms after SIGUSR1)" \
        || bad "HAProxy: $(( $(npush) - before )) pushed" "$(grep haproxy-failed "$DIR/watch4.log" | head -3)"
    [ "$(grep -c "haproxy-failed" "$DIR/watch4.log")" = 0 ] && ok "HAProxy: no push failed" \
        || bad "HAProxy: failed pushes" "$(grep haproxy-failed "$DIR/watch4.log" | head -3)"
    staple_of site-00500.test | grep -q "Cert Status: revoked" && ok "HAProxy staples the pushed (revoked) response, no restart" \
        || bad "HAProxy staple" "$(staple_of site-00500.test | grep -i -A3 "ocsp response")"
    stop_watch "$W"
else
    skip_part "haproxy is not installed: the runtime API pushes were not tried"
fi

finish
