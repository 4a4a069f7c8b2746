#!/usr/bin/env bash
# CloudFlare's `cfssl ocspserve` as a CA deploys it: responses signed ahead
# with `cfssl ocspsign` (96 h, thisUpdate on the hour), the same bytes
# handed out until the next signing run, and a GET it refuses with HTTP 400
# (it decodes the path twice).  Checked: srvocsp fetch's exit codes, srvocsp
# watch's files, log line and metrics, a refresh that reaches cfssl and is
# handed the same bytes, srvocsp check on OCSP error answers (unauthorized,
# tryLater), and the example server's staple as a real client (openssl
# s_client) sees it.  All on 127.0.0.1.
set -u
CLI=$1 MKPKI=$2 LOBIND=$3 SERVER=$4
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../../scripts/peers.sh"
for t in cfssl openssl curl; do
    command -v $t >/dev/null || { echo "SKIP: $t not installed (cfssl: Debian package golang-cfssl)"; exit 77; }
done

DIR=$(mktemp -d "${TMPDIR:-/tmp}/srvocsp-cfssl-XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do stop_pid "$p"; done; [ -n "${SRVOCSP_KEEP_TMP:-}" ] && { echo "kept $DIR"; return; }; rm -rf "$DIR"; }
trap cleanup EXIT
. "$HERE/../support/checks.sh"

P=$DIR/pki
mkdir -p "$P" "$DIR/watched"
RPORT=$("$MKPKI" --free-port)
"$MKPKI" "$P" "http://127.0.0.1:$RPORT/" || exit 1

# sign LEAF [FLAGS...]: one pre-signed response, base64 on a line of responses.txt
sign() {
    local leaf=$1; shift
    openssl x509 -in "$P/$leaf.pem" -out "$P/$leaf-only.pem" # cfssl reads one certificate
    cfssl ocspsign -ca "$P/ca.pem" -responder "$P/ca.pem" -responder-key "$P/ca.key" \
        -cert "$P/$leaf-only.pem" "$@" 2>>"$DIR/sign.log" |
        sed -n 's/.*"ocspResponse":"\([^"]*\)".*/\1/p' >>"$DIR/responses.txt"
}
sign good
sign revoked -status revoked -reason 1
# unknown.pem is left out: the responder answers unauthorized for it
[ "$(wc -l <"$DIR/responses.txt")" = 2 ] || { bad "cfssl ocspsign signed two responses" "$(cat "$DIR/sign.log")"; finish; exit 1; }

# -loglevel 0: it logs every request it receives ("Received OCSP request: <base64>")
cfssl ocspserve -loglevel 0 -address 127.0.0.1 -port "$RPORT" -responses "$DIR/responses.txt" >"$DIR/serve.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q "Now listening" "$DIR/serve.log" && break; sleep 0.05; done
# It logs that line before it binds the port: wait until it accepts.
for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$RPORT") 2>/dev/null && break; sleep 0.05; done
expect "cfssl ocspserve loaded both responses" "Read 2 OCSP responses" "$(cat "$DIR/serve.log")"

# 1. srvocsp fetch: exit 0 good, 1 revoked, 2 with the reason for unauthorized
out=$("$CLI" fetch --cert "$P/good.pem" --timeout 5000 2>&1); rc=$?
if [ $rc = 0 ]; then ok "fetch good: exit 0"; else bad "fetch good: exit $rc, want 0" "$out"; fi
expect "fetch good: thisUpdate on the hour" "^good thisUpdate=[0-9-]+T[0-9]{2}:00:00Z" "$out"
out=$("$CLI" fetch --cert "$P/revoked.pem" --timeout 5000 2>&1); rc=$?
if [ $rc = 1 ]; then ok "fetch revoked: exit 1"; else bad "fetch revoked: exit $rc, want 1" "$out"; fi
out=$("$CLI" fetch --cert "$P/unknown.pem" --timeout 5000 2>&1); rc=$?
if [ $rc = 2 ]; then ok "fetch of a certificate it does not know: exit 2"; else bad "fetch unknown: exit $rc, want 2" "$out"; fi
expect "fetch names unauthorized and what it means" "unauthorized \(6\): it does not answer for this certificate" "$out"
refuse "no HTTP 400 reaches the user" "HTTP 400" "$out"

# 2. srvocsp watch: files, the fallback logged once, the metrics
for c in good revoked unknown; do cp "$P/$c.pem" "$DIR/watched/"; done
MPORT=$("$MKPKI" --free-port)
"$CLI" watch --dir "$DIR/watched" --metrics "127.0.0.1:$MPORT" --url-timeout 5 >"$DIR/watch.log" 2>&1 &
WATCH=$!
PIDS+=($WATCH)
for _ in $(seq 1 200); do
    [ -s "$DIR/watched/good.pem.ocsp" ] && [ -s "$DIR/watched/revoked.pem.ocsp" ] &&
        grep -q "unauthorized" "$DIR/watch.log" && break
    sleep 0.05
done
out=$("$CLI" check --file "$DIR/watched/good.pem.ocsp" --cert "$P/good.pem" 2>&1)
expect "watch wrote good.pem.ocsp, good" "^OCSP OK - good" "$out"
out=$("$CLI" check --file "$DIR/watched/revoked.pem.ocsp" --cert "$P/revoked.pem" 2>&1)
expect "watch wrote revoked.pem.ocsp, revoked" "certificate REVOKED" "$out"
[ -e "$DIR/watched/unknown.pem.ocsp" ] && bad "watch wrote nothing for the unknown certificate" || ok "watch wrote nothing for the unknown certificate"
log=$(cat "$DIR/watch.log")
expect "watch logs the unauthorized answer in words" "failed cert=[^ ]*unknown.pem .*unauthorized \(6\)" "$log"
expect "watch logs the responder that needed POST" \
    "responder-fallback .*reason=\"http://127.0.0.1:$RPORT/ is asked with POST from now on: GET answered HTTP 400\"" "$log"
n=$(grep -c "responder-fallback" <<<"$log")
if [ "$n" = 1 ]; then ok "the fallback is logged once for the responder"; else bad "fallback logged $n times, want 1" "$log"; fi
metrics=$(curl -s "http://127.0.0.1:$MPORT/metrics")
expect "metrics count GET-to-POST fallbacks" 'srvocsp_method_fallbacks_total\{from="GET",to="POST"\} [1-9]' "$metrics"
expect "metrics count POST-to-GET fallbacks (none)" 'srvocsp_method_fallbacks_total\{from="POST",to="GET"\} 0' "$metrics"

# A refresh is handed the same pre-signed bytes: unchanged, not a failure.
# The request for good.pem as cfssl logs it (srvocsp sends no nonce), so the
# refresh is seen to reach the responder rather than assumed.
openssl ocsp -issuer "$P/ca.pem" -cert "$P/good.pem" -no_nonce -reqout "$DIR/good.req" >/dev/null 2>&1
GOODREQ=$(base64 -w0 "$DIR/good.req")
asked() { grep -cF "Received OCSP request: $GOODREQ" "$DIR/serve.log"; }
cp "$DIR/watched/good.pem.ocsp" "$DIR/good.before"
before=$(grep -c "^.* failed cert=[^ ]*good.pem" "$DIR/watch.log")
asked_before=$(asked)
kill -USR1 "$WATCH"
for _ in $(seq 1 200); do [ "$(asked)" -gt "$asked_before" ] && break; sleep 0.05; done
if [ "$(asked)" -gt "$asked_before" ]; then ok "the refresh reached cfssl for good.pem"; else
    bad "no request for good.pem reached cfssl after SIGUSR1 ($asked_before before)" "$(cat "$DIR/watch.log" "$DIR/serve.log")"; fi
sleep 1 # its answer judged and, were it a failure, logged
after=$(grep -c "^.* failed cert=[^ ]*good.pem" "$DIR/watch.log")
if [ "$before" = "$after" ]; then ok "a refresh handed the same bytes is no failure"; else bad "refresh logged a failure" "$(cat "$DIR/watch.log")"; fi
if cmp -s "$DIR/good.before" "$DIR/watched/good.pem.ocsp"; then ok "the same bytes stay in good.pem.ocsp"; else bad "good.pem.ocsp changed on an unchanged answer"; fi
n=$(grep -c "responder-fallback" "$DIR/watch.log")
if [ "$n" = 1 ]; then ok "no second fallback line after the refresh"; else bad "fallback logged $n times after the refresh"; fi

# srvocsp check on OCSP error answers: the sentence, CRITICAL.  cfssl's own
# unauthorized answer for the certificate it does not know, and tryLater
# (which cfssl never sends), the 5-byte OCSPResponse with no body.
openssl ocsp -issuer "$P/ca.pem" -cert "$P/unknown.pem" -no_nonce -reqout "$DIR/unknown.req" >/dev/null 2>&1
curl -s --max-time 10 -H 'Content-Type: application/ocsp-request' --data-binary "@$DIR/unknown.req" \
    -o "$DIR/unknown.der" "http://127.0.0.1:$RPORT/"
out=$("$CLI" check --file "$DIR/unknown.der" --cert "$P/unknown.pem" 2>&1); rc=$?
if [ $rc = 2 ]; then ok "check of cfssl's unauthorized answer: exit 2"; else bad "check unauthorized: exit $rc, want 2" "$out"; fi
expect "check names unauthorized and what it means" \
    "^OCSP CRITICAL - .*unauthorized \(6\): it does not answer for this certificate" "$out"
printf '\x30\x03\x0a\x01\x03' >"$DIR/trylater.der"
out=$("$CLI" check --file "$DIR/trylater.der" --cert "$P/good.pem" 2>&1); rc=$?
if [ $rc = 2 ]; then ok "check of a tryLater answer: exit 2"; else bad "check tryLater: exit $rc, want 2" "$out"; fi
expect "check names tryLater and what it means" \
    "^OCSP CRITICAL - .*tryLater \(3\): it is busy or not ready and asks to be asked later" "$out"

# 3. The library in a real TLS server (the example), read by openssl s_client
s_client() { echo | timeout 10 openssl s_client -connect "127.0.0.1:$1" -status -CAfile "$P/root.pem" 2>&1; }
wait_staple() {
    for _ in $(seq 1 100); do
        s_client "$1" | grep -q "OCSP Response Status: successful" && return 0
        sleep 0.1
    done
    return 1
}
start_server good --cert "$P/good.pem" --key "$P/good.key" || exit 1
GOOD=$PORT
wait_staple "$GOOD" || bad "the example server never stapled from cfssl" "$(cat "$DIR/good.log" "$DIR/serve.log")"
out=$(s_client "$GOOD")
expect "s_client: the staple says good" "Cert Status: good" "$out"
expect "s_client: the chain verifies" "Verify return code: 0 \(ok\)" "$out"
start_server revoked --cert "$P/revoked.pem" --key "$P/revoked.key" || exit 1
wait_staple "$PORT" || bad "the example server never stapled the revoked response" "$(cat "$DIR/revoked.log" "$DIR/serve.log")"
out=$(s_client "$PORT")
expect "s_client: the staple says revoked (keyCompromise)" "Revocation Reason: keyCompromise" "$out"
finish
