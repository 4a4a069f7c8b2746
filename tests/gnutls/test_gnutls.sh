#!/usr/bin/env bash
# Stapling the whole chain from a GnuTLS server (examples/gnutls_server.c),
# checked by real clients: gnutls-cli --ocsp, a GnuTLS client that verifies
# the status of each certificate (gnutls_client.c), openssl s_client -status
# and curl --cert-status.  Two `openssl ocsp` responders on 127.0.0.1: the
# intermediate's (for the leaf) and the root's (for the intermediates).
set -u
MKPKI=$1 LOBIND=$2 SERVER=$3 CLIENT=$4
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../../scripts/peers.sh"
for t in openssl curl gnutls-cli; do
    command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done

DIR=$(mktemp -d "${TMPDIR:-/tmp}/srvocsp-gnutls-XXXXXX")
RPIDS=() PIDS=()
cleanup() {
    for p in "${PIDS[@]}" "${RPIDS[@]}"; do stop_pid "$p"; done
    [ -n "${SRVOCSP_KEEP_TMP:-}" ] || rm -rf "$DIR"
}
trap cleanup EXIT

. "$HERE/../support/checks.sh"

client() { timeout 10 "$CLIENT" "$@" 2>&1; }
# wait_for PORT PATTERN [CLIENT OPTION]: until the GnuTLS client sees
# PATTERN (first retrievals are asynchronous)
wait_for() {
    for _ in $(seq 1 100); do
        client "$1" "$P/root.pem" ${3:-} | grep -qE "$2" && return 0
        sleep 0.05
    done
    return 1
}
gcli() { # PORT ARGS...
    local port=$1; shift
    timeout 10 gnutls-cli --ocsp --x509cafile "$P/root.pem" -p "$port" "$@" localhost </dev/null 2>&1
}
s_client() { # PORT ARGS...
    local port=$1; shift
    echo | timeout 10 openssl s_client -connect "127.0.0.1:$port" -status -CAfile "$P/root.pem" "$@" 2>&1
}

P="$DIR/pki"
mkdir -p "$P"
LPORT=$("$MKPKI" --free-port) RPORT=$("$MKPKI" --free-port) IPORT=$("$MKPKI" --free-port)
"$MKPKI" "$P" "http://127.0.0.1:$LPORT/" --chain "http://127.0.0.1:$RPORT/" "http://127.0.0.1:$IPORT/" || exit 1
# -resp_no_certs: the intermediates share one key and subject, so a
# response naming its signer by name verifies under each of them for
# clients too (an embedded signer certificate would be a different one).
start_ocsp "$P" "$RPORT" root 60 root root-index.txt -resp_no_certs || exit 1
RPIDS+=("$RESPONDER_PID")
start_ocsp "$P" "$IPORT" ica 60 ica chain-index.txt -resp_no_certs || exit 1
RPIDS+=("$RESPONDER_PID")

# 1. Leaf and intermediate good
start_server good --cert "$P/chain.pem" --key "$P/chain.key" --ca "$P/root.pem" --dir "$DIR/cache" || exit 1
GOOD=$PORT
wait_for "$GOOD" "status 1: good" || bad "the intermediate's staple never came"
out=$(client "$GOOD" "$P/root.pem")
expect "GnuTLS client, TLS 1.3: the leaf's response verifies, good" "status 0: good \(signature ok" "$out"
expect "GnuTLS client, TLS 1.3: the intermediate's response verifies (against the root), good" \
    "status 1: good \(signature ok" "$out"
expect "GnuTLS client, TLS 1.3: exit 0" "protocol TLS1.3" "$out"
out=$(client "$GOOD" "$P/root.pem" --tls1.2)
expect "GnuTLS client, TLS 1.2: the leaf's response" "status 0: good \(signature ok" "$out"
expect "GnuTLS client, TLS 1.2: no intermediate status (TLS 1.2 has one staple)" "status 1: none" "$out"
out=$(gcli "$GOOD" --save-ocsp-multi="$DIR/multi.pem")
rc=$?
expect "gnutls-cli --ocsp trusts the chain with both staples" "The certificate is trusted" "$out"
if [ "$rc" = 0 ]; then ok "gnutls-cli --ocsp: exit 0"; else bad "gnutls-cli --ocsp exit $rc" "$out"; fi
n=$(grep -c "BEGIN OCSP RESPONSE" "$DIR/multi.pem" 2>/dev/null)
if [ "$n" = 2 ]; then ok "gnutls-cli saved 2 OCSP responses (leaf and intermediate)"; else bad "gnutls-cli saved $n responses, want 2"; fi
for v in -tls1_3 -tls1_2; do
    out=$(s_client "$GOOD" $v)
    expect "s_client $v: the leaf's staple, good" "Cert Status: good" "$out"
    expect "s_client $v: chain verifies" "Verify return code: 0 \(ok\)" "$out"
done
if curl -s --cert-status --cacert "$P/root.pem" "https://127.0.0.1:$GOOD/" -o "$DIR/page.txt"; then
    ok "curl --cert-status accepts the leaf's staple"
else
    bad "curl --cert-status (rc $?)"
fi
page=$(cat "$DIR/page.txt" 2>/dev/null)
expect "the page shows both staples" "\[1\] .*intermediate CA: staple good" "$page"
expect "the counters count the intermediates" "intermediates stapled [1-9]" "$page"

# 2. TLS 1.2 only server: the leaf's status, nothing else
start_server tls12 --cert "$P/chain.pem" --key "$P/chain.key" --ca "$P/root.pem" --dir "$DIR/cache" --tls1.2 || exit 1
wait_for "$PORT" "status 0: good" --tls1.2 || bad "TLS 1.2 server never stapled"
out=$(gcli "$PORT")
expect "gnutls-cli --ocsp, TLS 1.2 server: trusted" "The certificate is trusted" "$out"
out=$(client "$PORT" "$P/root.pem" --tls1.2)
expect "GnuTLS client against a TLS 1.2 server: leaf only" "status 0: good.*status 1: none" "$(tr '\n' ' ' <<<"$out")"

# 3. The intermediate is revoked: the client must refuse
start_server revoked --cert "$P/chain-ica-revoked.pem" --key "$P/chain.key" --ca "$P/root.pem" || exit 1
wait_for "$PORT" "status 1: revoked" || bad "the revoked intermediate's staple never came"
out=$(client "$PORT" "$P/root.pem")
expect "GnuTLS client: the intermediate's response says revoked, and verifies" "status 1: revoked \(signature ok" "$out"
# The root's responder is stopped meanwhile: what gnutls-cli knows of the
# intermediate can only come from the staple.
kill -STOP "${RPIDS[0]}"
out=$(gcli "$PORT")
rc=$?
kill -CONT "${RPIDS[0]}"
if [ "$rc" != 0 ]; then ok "gnutls-cli --ocsp refuses a chain whose intermediate is revoked (exit $rc)"; else bad "gnutls-cli accepted a revoked intermediate" "$out"; fi
expect "gnutls-cli says why, from the staple alone (the root's responder stopped)" "chain is revoked" "$out"
expect "the server reported it" "intermediate CA: REVOKED" "$(cat "$DIR/revoked.log")"

# 4. The intermediate's response is missing (the root's responder does not
#    know it): the leaf's staple alone
start_server missing --cert "$P/chain-ica-unknown.pem" --key "$P/chain.key" --ca "$P/root.pem" || exit 1
wait_for "$PORT" "status 0: good" || bad "missing: the leaf never stapled"
for _ in $(seq 1 100); do grep -q "responder says unknown" "$DIR/missing.log" && break; sleep 0.05; done
out=$(client "$PORT" "$P/root.pem")
expect "GnuTLS client: no status for the intermediate the responder does not know" "status 1: none" "$out"
expect "GnuTLS client: the leaf's status still sent" "status 0: good" "$out"
out=$(gcli "$PORT")
rc=$?
expect "gnutls-cli --ocsp without the intermediate's status: still trusted (it requires none)" \
    "The certificate is trusted" "$out"
out=$(curl -s --cacert "$P/root.pem" "https://127.0.0.1:$PORT/")
expect "the counters count the intermediate without a staple" "intermediates stapled 0, without [1-9]" "$out"

# 5. An intermediate without OCSP URL is not stapled; no error
start_server noaia --cert "$P/chain-ica-noaia.pem" --key "$P/chain.key" --ca "$P/root.pem" || exit 1
wait_for "$PORT" "status 0: good" || bad "noaia: the leaf never stapled"
out=$(curl -s --cacert "$P/root.pem" "https://127.0.0.1:$PORT/")
expect "an intermediate without OCSP URL has no handle" "\[1\] .*: not asked about" "$out"
out=$(gcli "$PORT")
expect "gnutls-cli --ocsp: trusted with the leaf's staple only" "The certificate is trusted" "$out"

# 6. The root sent too: never asked about
start_server root --cert "$P/chain-root.pem" --key "$P/chain.key" || exit 1
wait_for "$PORT" "status 1: good" || bad "chain with root: the intermediate never stapled"
out=$(client "$PORT" "$P/root.pem")
expect "three certificates sent" "certificates 3" "$out"
expect "the root gets no status" "status 2: root, not asked about" "$out"
out=$(curl -s --cacert "$P/root.pem" "https://127.0.0.1:$PORT/")
expect "the server holds no handle for the root" "\[2\] .*test root: not asked about" "$out"

# 7. Two chains on one credential (ECDSA and RSA leaves of the standard PKI):
#    each client gets the staple of the certificate it can use
start_responder "$P" "$LPORT" ca 60 || exit 1
RPIDS+=("$RESPONDER_PID")
start_server dual --cert "$P/good.pem" --key "$P/good.key" --cert "$P/good-rsa.pem" --key "$P/good-rsa.key" || exit 1
DUAL=$PORT
for _ in $(seq 1 100); do [ "$(grep -c "new good response" "$DIR/dual.log")" -ge 2 ] && break; sleep 0.05; done
out=$(s_client "$DUAL" -tls1_3 -sigalgs ECDSA+SHA256)
expect "ECDSA client gets the ECDSA leaf's staple (serial 1001)" "Serial Number: 1001" "$out"
out=$(s_client "$DUAL" -tls1_3 -sigalgs RSA-PSS+SHA256)
expect "RSA client gets the RSA leaf's staple (serial 1006)" "Serial Number: 1006" "$out"

# ... and by SNI name: chain.test first, good.test second
start_server sni --cert "$P/chain.pem" --key "$P/chain.key" --cert "$P/good.pem" --key "$P/good.key" \
    --ca "$P/root.pem" || exit 1
for _ in $(seq 1 100); do [ "$(grep -c "new good response" "$DIR/sni.log")" -ge 3 ] && break; sleep 0.05; done
out=$(s_client "$PORT" -tls1_3 -servername good.test)
expect "SNI good.test gets good.test's staple (serial 1001), not the first chain's" "Serial Number: 1001" "$out"
out=$(s_client "$PORT" -tls1_3 -servername chain.test)
expect "SNI chain.test gets chain.test's staple (serial 2001)" "Serial Number: 2001" "$out"

# 8. A must-staple leaf whose responder is unreachable: served without a
#    staple at once, and reported
mkdir -p "$DIR/dead"
"$MKPKI" "$DIR/dead" "http://127.0.0.1:$("$MKPKI" --free-port)/" || exit 1
start_server must --cert "$DIR/dead/muststaple.pem" --key "$DIR/dead/muststaple.key" || exit 1
out=$(timeout 10 gnutls-cli --x509cafile "$DIR/dead/root.pem" -p "$PORT" localhost </dev/null 2>&1)
expect "gnutls-cli refuses a must-staple certificate without its staple" \
    "requires the server to include an OCSP status.*missing" "$out"
expect "must-staple without staple is reported" "must-staple certificate served without a staple" \
    "$(cat "$DIR/must.log")"
out=$(curl -s --cacert "$DIR/dead/root.pem" "https://127.0.0.1:$PORT/")
expect "the counters say why" "none yet [1-9]" "$out"

# 9. Restart with both responders down: both staples from the first handshake (--dir)
stop_pid "${PIDS[0]}"
for p in "${RPIDS[@]}"; do stop_pid "$p"; done
RPIDS=()
start_server again --cert "$P/chain.pem" --key "$P/chain.key" --ca "$P/root.pem" --dir "$DIR/cache" || exit 1
out=$(client "$PORT" "$P/root.pem")
expect "after a restart, responders down: the leaf's staple at once" "status 0: good" "$out"
expect "after a restart, responders down: the intermediate's staple at once" "status 1: good" "$out"

# 10. Every server stops cleanly (sanitizer builds report here)
for p in "${PIDS[@]}"; do stop_pid "$p"; done
PIDS=()
reports=$(grep -lE "Sanitizer|runtime error" "$DIR"/*.log 2>/dev/null)
if [ -z "$reports" ]; then ok "servers stopped without sanitizer reports"; else bad "sanitizer reports" "$(cat $reports)"; fi

finish
