#!/usr/bin/env bash
# Stapling in a real TLS server (the example), checked by real clients:
# openssl s_client, curl --cert-status, gnutls-cli --ocsp.  All on 127.0.0.1.
set -u
CLI=$1 MKPKI=$2 LOBIND=$3 SERVER=$4
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../../scripts/peers.sh"
for t in openssl curl gnutls-cli; do
    command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done

DIR=$(mktemp -d "${TMPDIR:-/tmp}/srvocsp-tls-XXXXXX")
RESPONDER_PID= PIDS=()
cleanup() { stop_pid "$RESPONDER_PID"; for p in "${PIDS[@]}"; do stop_pid "$p"; done; rm -rf "$DIR"; }
trap cleanup EXIT

. "$HERE/../support/checks.sh"

# wait_staple PORT: until the server staples (its first retrieval is asynchronous)
wait_staple() {
    for _ in $(seq 1 100); do
        echo | openssl s_client -connect "127.0.0.1:$1" -status 2>/dev/null |
            grep -q "OCSP Response Status: successful" && return 0
        sleep 0.05
    done
    return 1
}
s_client() { # PORT ARGS...
    local port=$1; shift
    echo | timeout 10 openssl s_client -connect "127.0.0.1:$port" -status -CAfile "$DIR/pki/root.pem" "$@" 2>&1
}

mkdir -p "$DIR/pki" "$DIR/deadpki"
RPORT=$("$MKPKI" --free-port) DEAD=$("$MKPKI" --free-port)
"$MKPKI" "$DIR/pki" "http://127.0.0.1:$RPORT/" || exit 1
"$MKPKI" "$DIR/deadpki" "http://127.0.0.1:$DEAD/" || exit 1
start_responder "$DIR/pki" "$RPORT" ca 60 || exit 1
P="$DIR/pki"

# 1. TLS 1.2 and 1.3 with openssl s_client
start_server good --cert "$P/good.pem" --key "$P/good.key" --cert "$P/good-rsa.pem" --key "$P/good-rsa.key" --dir "$DIR/cache" || exit 1
GOOD=$PORT
wait_staple "$GOOD" || bad "server never stapled"
for v in -tls1_2 -tls1_3; do
    out=$(s_client "$GOOD" $v)
    expect "s_client $v: response successful" "OCSP Response Status: successful" "$out"
    expect "s_client $v: cert status good" "Cert Status: good" "$out"
    expect "s_client $v: chain verifies" "Verify return code: 0 \(ok\)" "$out"
done

# 2. Dual RSA + ECDSA on one context: each client gets its certificate's staple
out=$(s_client "$GOOD" -tls1_3 -sigalgs ECDSA+SHA256)
expect "ECDSA client gets the ECDSA certificate's staple (serial 1001)" "Serial Number: 1001" "$out"
out=$(s_client "$GOOD" -tls1_3 -sigalgs RSA-PSS+SHA256)
expect "RSA client gets the RSA certificate's staple (serial 1006)" "Serial Number: 1006" "$out"
out=$(s_client "$GOOD" -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256)
expect "TLS 1.2 RSA cipher gets the RSA staple" "Serial Number: 1006" "$out"

# 3. curl checks the stapled status itself
if curl -s --cert-status --cacert "$P/root.pem" "https://127.0.0.1:$GOOD/" -o "$DIR/page.txt"; then
    ok "curl --cert-status accepts the good staple"
else
    bad "curl --cert-status accepts the good staple (rc $?)"
fi
expect "the page shows the staple" "staple good, thisUpdate" "$(cat "$DIR/page.txt" 2>/dev/null)"
expect "the page shows the counters" "handshakes stapled [1-9]" "$(cat "$DIR/page.txt" 2>/dev/null)"
start_server revoked --cert "$P/revoked.pem" --key "$P/revoked.key" || exit 1
REVOKED=$PORT
wait_staple "$REVOKED" || bad "revoked server never stapled"
curl -s --cert-status --cacert "$P/root.pem" "https://127.0.0.1:$REVOKED/" -o /dev/null
rc=$?
if [ "$rc" = 91 ]; then ok "curl --cert-status refuses the revoked staple (rc 91)"; else bad "curl on revoked: rc $rc, want 91"; fi

# 4. gnutls-cli verifies the staple
out=$(timeout 10 gnutls-cli --ocsp --x509cafile "$P/root.pem" --save-ocsp="$DIR/gnutls.der" -p "$GOOD" 127.0.0.1 </dev/null 2>&1)
rc=$?
if [ "$rc" = 0 ] && [ -s "$DIR/gnutls.der" ]; then ok "gnutls-cli --ocsp accepts the staple"; else bad "gnutls-cli --ocsp (rc $rc)" "$out"; fi
expect "the staple gnutls saved verifies as good" "verification: OK, certificate status good" \
    "$("$CLI" show "$DIR/gnutls.der" --cert "$P/good-rsa.pem" 2>&1; "$CLI" show "$DIR/gnutls.der" --cert "$P/good.pem" 2>&1)"
out=$(timeout 10 gnutls-cli --ocsp --x509cafile "$P/root.pem" -p "$REVOKED" 127.0.0.1 </dev/null 2>&1)
expect "gnutls-cli --ocsp refuses the revoked staple" "revoked" "$out"

# 5. No responder reachable: handshakes complete at once, without a staple
D="$DIR/deadpki"
start_server dead --cert "$D/good.pem" --key "$D/good.key" --cert "$D/muststaple.pem" --key "$D/muststaple.key" || exit 1
start=$(date +%s%N)
for i in $(seq 1 10); do
    out=$(s_client "$PORT" -tls1_3 -CAfile "$D/root.pem")
    grep -q "Verify return code: 0 (ok)" <<<"$out" || { bad "handshake $i without responder" "$out"; break; }
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
expect "no responder: no staple sent" "OCSP response: no response sent" "$out"
if [ "$ms" -lt 8000 ]; then ok "no responder: 10 handshakes in $ms ms"; else bad "no responder: 10 handshakes took $ms ms"; fi
out=$(curl -s --cacert "$D/root.pem" "https://127.0.0.1:$PORT/")
expect "no responder: counters say why" "none yet [1-9]" "$out"

# 6. Must-staple served without a staple is reported
start_server must --cert "$D/muststaple.pem" --key "$D/muststaple.key" || exit 1
s_client "$PORT" -tls1_3 -CAfile "$D/root.pem" >/dev/null
expect "must-staple without staple is reported" "must-staple certificate served without a staple" "$(cat "$DIR/must.log")"

# 7. Restart with the responder down: the first handshake is stapled (from --dir)
stop_pid "${PIDS[0]}"
stop_pid "$RESPONDER_PID"; RESPONDER_PID=
start_server again --cert "$P/good.pem" --key "$P/good.key" --dir "$DIR/cache" || exit 1
out=$(s_client "$PORT" -tls1_3)
expect "after a restart with the responder down, the first handshake is stapled" "Cert Status: good" "$out"

finish
