#!/usr/bin/env bash
# Wall-clock jumps in a real process: the example server runs under
# libfaketime with its wall clock stepped both ways while its monotonic clock
# runs on (as after suspend/resume, an NTP step, a VM restored from a
# snapshot).  The real `openssl ocsp` responder keeps the true time.  What
# the server staples is read with real clients (openssl s_client,
# gnutls-cli --ocsp) and its status page.  All on 127.0.0.1.
set -u
MKPKI=$1 LOBIND=$2 SERVER=$3
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../../scripts/peers.sh"
FT=""
for f in /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 /usr/lib/*/faketime/libfaketimeMT.so.1; do
    [ -f "$f" ] && { FT=$f; break; }
done
[ -n "$FT" ] || { echo "SKIP: libfaketime not installed (Debian package faketime)"; exit 77; }
for t in openssl gnutls-cli curl; do
    command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done

DIR=$(mktemp -d "${TMPDIR:-/tmp}/srvocsp-jump-XXXXXX")
RESPONDER_PID= SERVER_PID=
cleanup() { stop_pid "$RESPONDER_PID"; stop_pid "$SERVER_PID"; rm -rf "$DIR"; }
trap cleanup EXIT

. "$HERE/../support/checks.sh"

mkdir -p "$DIR/pki"
RPORT=$("$MKPKI" --free-port) PORT=$("$MKPKI" --free-port)
"$MKPKI" "$DIR/pki" "http://127.0.0.1:$RPORT/" || exit 1
# Responses valid one day.
start_responder "$DIR/pki" "$RPORT" ca 1440 || exit 1
P="$DIR/pki"

# The server's wall clock is read from this file at every call.
echo "+0" >"$DIR/offset"
# A sanitizer runtime must otherwise come first in the library list.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}verify_asan_link_order=0"
LD_PRELOAD="$FT" FAKETIME_TIMESTAMP_FILE="$DIR/offset" FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1 \
    "$SERVER" --port "$PORT" --cert "$P/good.pem" --key "$P/good.key" >"$DIR/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    grep -q "listening on 127.0.0.1:$PORT" "$DIR/server.log" 2>/dev/null && break
    sleep 0.05
done

staple() { echo | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -status 2>&1; }
page() { curl -sk --max-time 10 "https://127.0.0.1:$PORT/"; }
# until_staple WANT SECONDS: waits until a staple is (WANT=yes) or is not
# (WANT=no) sent; prints how long it took.
until_staple() {
    local want=$1 limit=$2 t0 out
    t0=$(date +%s%N)
    while :; do
        out=$(staple)
        if grep -q "Cert Status: good" <<<"$out"; then
            [ "$want" = yes ] && break
        else
            [ "$want" = no ] && break
        fi
        if [ $(( ($(date +%s%N) - t0) / 1000000 )) -gt $((limit * 1000)) ]; then
            echo "timeout"; return 1
        fi
        sleep 0.2
    done
    echo "$(( ($(date +%s%N) - t0) / 1000000 )) ms"
}
jumps() { page | sed -n 's/.*clock jumps \([0-9]*\).*/\1/p'; }
# noticed N: the engine looks at the clocks at least once a second.
noticed() {
    for _ in $(seq 1 30); do [ "$(jumps)" = "$1" ] && return 0; sleep 0.1; done
    return 1
}
next_in() { page | sed -n 's/.*next attempt in \(-\{0,1\}[0-9]*\) s.*/\1/p' | head -1; }

if t=$(until_staple yes 10); then ok "staples at the true time ($t)"; else bad "never stapled" "$(cat "$DIR/server.log")"; fi

# Back two days: the held response's thisUpdate lies two days ahead.
echo "-2d" >"$DIR/offset"
if t=$(until_staple no 5); then ok "clock back 2 days: the response from the future is withheld ($t)"
else bad "clock back: a response from the future is still stapled" "$(page)"; fi
noticed 1 && ok "the jump back was noticed" || bad "jump back not noticed" "$(page)"
for _ in $(seq 1 30); do grep -q "E_NOT_YET_VALID" <<<"$(page)" && break; sleep 0.1; done
grep -q "E_NOT_YET_VALID" <<<"$(page)" && ok "and refetched at once (the answer is from the future too)" ||
    bad "no refetch reported" "$(page)"

# Forward to the true time again: served at once from what is held.
echo "+0" >"$DIR/offset"
if t=$(until_staple yes 5); then ok "clock forward to the true time: stapled again ($t)"
else bad "no staple after the clock came back" "$(page)"; fi
noticed 2 || bad "jump forward not noticed" "$(page)"

# Forward two days: past nextUpdate, nothing may be stapled.
echo "+2d" >"$DIR/offset"
if t=$(until_staple no 5); then ok "clock forward 2 days: the expired response is withheld ($t)"
else bad "an expired response is still stapled" "$(page)"; fi
noticed 3 || bad "second jump forward not noticed" "$(page)"

# And back: the held response serves at once; the answers refused while
# the clock was wrong are asked for once more now, and the next attempt
# comes from the new response's own times (its halfway point, 12 h after
# its thisUpdate, up to 10 % earlier), not days on.
echo "+0" >"$DIR/offset"
if t=$(until_staple yes 5); then ok "clock back to the true time: stapled again ($t)"
else bad "no staple after the jump back" "$(page)"; fi
noticed 4 || bad "last jump back not noticed" "$(page)"
n=$(next_in)
if [ -n "$n" ] && [ "$n" -gt 38000 ] && [ "$n" -le 43200 ]; then ok "next attempt in $n s: the halfway point of the response fetched once the clock was right (up to 10 % earlier)"
else bad "next attempt $n s away" "$(page)"; fi
[ "$(jumps)" = 4 ] && ok "four jumps noticed, each within a second" || bad "jumps counted: $(jumps)" "$(page)"

# A strict client accepts what is stapled now.
out=$(timeout 10 gnutls-cli --ocsp --x509cafile "$P/root.pem" --save-ocsp="$DIR/gnutls.der" \
    -p "$PORT" 127.0.0.1 </dev/null 2>&1)
rc=$?
if [ "$rc" = 0 ] && [ -s "$DIR/gnutls.der" ]; then ok "gnutls-cli --ocsp accepts the staple"
else bad "gnutls-cli --ocsp (rc $rc)" "$out"; fi

finish
