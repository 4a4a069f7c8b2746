#!/usr/bin/env bash
# The demo: build, make a throw-away PKI, run `openssl ocsp` and the example
# HTTPS server on 127.0.0.1, watch real clients receive a verified staple,
# then stop the responder and watch the staple still being served; then the
# GnuTLS example staples the whole chain (leaf and intermediate) in TLS 1.3.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/deps.sh"
BUILD=${BUILD:-$ROOT/build}
echo "building in $BUILD ..."
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
CLI=$BUILD/tools/srvocsp MKPKI=$BUILD/tests/srvocsp-testpki SERVER=$BUILD/examples/https_server
GSERVER=$BUILD/examples/gnutls_server GCLIENT=$BUILD/tests/gnutls/srvocsp_gnutls_client
LOBIND=$(ls "$BUILD"/tests/libsrvocsp_lobind.so)
. "$ROOT/scripts/peers.sh"

DIR=$(mktemp -d "${TMPDIR:-/tmp}/srvocsp-demo-XXXXXX")
RESPONDER_PID= SERVER_PID= ROOT_PID= ICA_PID=
cleanup() {
    stop_pid "$SERVER_PID"; stop_pid "$RESPONDER_PID"; stop_pid "$ROOT_PID"; stop_pid "$ICA_PID"
    rm -rf "$DIR"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@" || echo "(exit code $?)"; }
staple() { # what a TLS client sees
    echo | openssl s_client -connect "127.0.0.1:$1" -status -CAfile "$DIR/root.pem" 2>/dev/null |
        grep -E "OCSP response:|OCSP Response Status|Cert Status|This Update|Next Update|Verify return code" |
        sed 's/^ */    /' | awk '!seen[$0]++'
}

PORT=$("$MKPKI" --free-port) HTTPS=$("$MKPKI" --free-port)
RPORT=$("$MKPKI" --free-port) IPORT=$("$MKPKI" --free-port)
say "A throw-away PKI: root -> issuing CA -> leaves naming http://127.0.0.1:$PORT/ as OCSP responder"
echo "(and root -> intermediate naming http://127.0.0.1:$RPORT/ -> chain.test naming http://127.0.0.1:$IPORT/)"
"$MKPKI" "$DIR" "http://127.0.0.1:$PORT/" --chain "http://127.0.0.1:$RPORT/" "http://127.0.0.1:$IPORT/"
say "openssl ocsp answers on 127.0.0.1:$PORT"
start_responder "$DIR" "$PORT" ca 60

say "srvocsp fetch and show: one retrieval, verified (exit 0 good, 1 revoked, 2 failure)"
run "$CLI" fetch --cert "$DIR/good.pem" --out "$DIR/good.der"
run "$CLI" fetch --cert "$DIR/revoked.pem"
run "$CLI" show "$DIR/good.der" --cert "$DIR/good.pem"

say "The example HTTPS server (examples/https_server.c) on 127.0.0.1:$HTTPS, persisting to $DIR/cache"
"$SERVER" --cert "$DIR/good.pem" --key "$DIR/good.key" --dir "$DIR/cache" --port "$HTTPS" 2>"$DIR/server.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do grep -q "new good response" "$DIR/server.log" 2>/dev/null && break; sleep 0.05; done
cat "$DIR/server.log"

say "openssl s_client -status: the staple, checked by the client"
staple "$HTTPS"
say "curl --cert-status (curl verifies the stapled status itself)"
run curl -sS --cert-status --cacert "$DIR/root.pem" "https://127.0.0.1:$HTTPS/"

say "The responder goes down..."
stop_pid "$RESPONDER_PID"; RESPONDER_PID=
staple "$HTTPS"
say "...and the server restarts while it is down: stapling from the first handshake (from $DIR/cache)"
stop_pid "$SERVER_PID"
"$SERVER" --cert "$DIR/good.pem" --key "$DIR/good.key" --dir "$DIR/cache" --port "$HTTPS" 2>"$DIR/server2.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do grep -q "listening" "$DIR/server2.log" 2>/dev/null && break; sleep 0.05; done
staple "$HTTPS"
run curl -sS --cert-status --cacert "$DIR/root.pem" "https://127.0.0.1:$HTTPS/"

stop_pid "$SERVER_PID"; SERVER_PID=

say "The whole chain on GnuTLS (examples/gnutls_server.c): the intermediate's responder is the root's"
start_ocsp "$DIR" "$RPORT" root 60 root root-index.txt -resp_no_certs; ROOT_PID=$RESPONDER_PID
start_ocsp "$DIR" "$IPORT" ica 60 ica chain-index.txt -resp_no_certs; ICA_PID=$RESPONDER_PID
RESPONDER_PID=
"$GSERVER" --cert "$DIR/chain.pem" --key "$DIR/chain.key" --ca "$DIR/root.pem" --port "$HTTPS" 2>"$DIR/gserver.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do [ "$(grep -c "new good response" "$DIR/gserver.log" 2>/dev/null)" -ge 2 ] && break; sleep 0.05; done
cat "$DIR/gserver.log"
say "A GnuTLS client reads the status of each certificate (gnutls_ocsp_status_request_get2) and verifies it"
run "$GCLIENT" "$HTTPS" "$DIR/root.pem"
say "TLS 1.2 carries one status: the leaf's"
run "$GCLIENT" "$HTTPS" "$DIR/root.pem" --tls1.2
say "gnutls-cli --ocsp checks every status it gets"
timeout 10 gnutls-cli --ocsp --x509cafile "$DIR/root.pem" --save-ocsp-multi="$DIR/multi.pem" -p "$HTTPS" localhost </dev/null 2>&1 |
    grep -E "Got a certificate list|Status:|Handshake was completed" | sed 's/^/    /'
echo "    OCSP responses it saved: $(grep -c 'BEGIN OCSP RESPONSE' "$DIR/multi.pem" 2>/dev/null || echo 0)"
say "openssl s_client (OpenSSL 3.0 reads the leaf's status only)"
staple "$HTTPS"
say "Done; the responders and the servers have been stopped and $DIR removed"
