#!/usr/bin/env bash
# srvocsp watch under systemd's Type=notify, with a listener of our own on
# $NOTIFY_SOCKET (what systemd does, without systemd): READY=1 only once
# every certificate has been tried, with the responder up and down;
# SIGHUP (ExecReload) is RELOADING=1, the rescan, READY=1; SIGTERM ends
# with STOPPING=1.  127.0.0.1 only.
set -u
CLI=$1 MKPKI=$2 LOBIND=$3 NAME=watch-notify
. "$(cd "$(dirname "$0")" && pwd)/watch_common.sh"
need openssl python3

# notify_listen SOCKET LOG: one line per datagram received, with the time.
notify_listen() {
    python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        d = s.recv(4096).decode()
        f.write("%.3f %s\n" % (time.time(), d.replace("\n", " ")))
' "$1" "$2" &
    PIDS+=($!)
    wait_for 5 test -S "$1"
}
# run_watch NAME ARGS...: watch in the background with $NOTIFY_SOCKET set
run_watch() {
    local name=$1; shift
    notify_listen "$DIR/$name.sock" "$DIR/$name.notify" || { bad "$name: listener"; return 1; }
    NOTIFY_SOCKET=$DIR/$name.sock "$CLI" watch "$@" >"$DIR/$name.log" 2>&1 &
    WPID=$!; PIDS+=($WPID)
}

# --- responder up: READY=1 after both certificates were fetched ---
W=$DIR/up
mkdir -p "$W"
cp "$P/good.pem" "$W/a.pem"; cp "$P/revoked.pem" "$W/b.pem"
responder ca 60
run_watch up --dir "$W" --status-file "$DIR/up.json"
wait_for 20 grep -q READY=1 "$DIR/up.notify" && ok "responder up: READY=1 sent" \
    || bad "no READY=1" "$(cat "$DIR/up.notify" "$DIR/up.log")"
expect "... with both certificates served in its STATUS" "READY=1 STATUS=2 certificates, 2 served$" "$(cat "$DIR/up.notify")"
# Both responses are in their files once READY=1 was sent.
[ -s "$W/a.pem.ocsp" ] && [ -s "$W/b.pem.ocsp" ] && ok "... and both .ocsp files written" \
    || bad ".ocsp files missing after READY" "$(ls -l "$W")"
expect "... the log has both updates" "updated cert=$W/a.pem.*|revoked cert=$W/b.pem" "$(cat "$DIR/up.log")"

# --- reload: RELOADING=1, the rescan (a new certificate), READY=1 ---
cp "$P/good.pem" "$W/c.pem"
kill -HUP "$WPID"
wait_for 10 grep -q "RELOADING=1" "$DIR/up.notify" && ok "SIGHUP: RELOADING=1" \
    || bad "no RELOADING=1" "$(cat "$DIR/up.notify")"
wait_for 10 bash -c "awk '/RELOADING=1/ { r = 1; next } r && /READY=1/ { f = 1 } END { exit !f }' '$DIR/up.notify'" \
    && ok "... then READY=1 again" || bad "no READY after RELOADING" "$(cat "$DIR/up.notify")"
wait_for 10 test -s "$W/c.pem.ocsp" && ok "... and the rescan found the new certificate" \
    || bad "c.pem not picked up" "$(cat "$DIR/up.log")"
kill -TERM "$WPID"
wait_for 10 grep -q "STOPPING=1" "$DIR/up.notify" && ok "SIGTERM: STOPPING=1" \
    || bad "no STOPPING=1" "$(cat "$DIR/up.notify")"

# --- responder down: READY=1 still, once each first retrieval failed ---
stop_pid "$RESPONDER_PID"; RESPONDER_PID=
D=$DIR/down
mkdir -p "$D"
cp "$P/good.pem" "$D/a.pem"
run_watch down --dir "$D" --url-timeout 3
wait_for 15 grep -q READY=1 "$DIR/down.notify" && ok "responder down: READY=1 sent anyway" \
    || bad "no READY=1 with the responder down" "$(cat "$DIR/down.notify" "$DIR/down.log")"
expect "... saying nothing is served" "READY=1 STATUS=1 certificate, 0 served" "$(cat "$DIR/down.notify")"
expect "... after the failed retrieval was logged" "E_TRANSPORT|refused|connect" "$(cat "$DIR/down.log")"
kill -TERM "$WPID"

# --- no NOTIFY_SOCKET (not under systemd): nothing breaks ---
out=$("$CLI" watch --dir "$D" --once --url-timeout 2 2>&1); rc=$?
[ "$rc" = 1 ] && ok "without NOTIFY_SOCKET: --once as before (exit 1, responder down)" || bad "--once rc $rc" "$out"

finish
