#!/usr/bin/env bash
# The demo: build, make a throw-away PKI, run `openssl ocsp` on 127.0.0.1,
# and show srvocsp fetching, verifying and decoding responses.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/deps.sh"
BUILD=${BUILD:-$ROOT/build}
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
CLI=$BUILD/tools/srvocsp MKPKI=$BUILD/tests/srvocsp-testpki
LOBIND=$(ls "$BUILD"/tests/libsrvocsp_lobind.so)
. "$ROOT/scripts/peers.sh"

DIR=$(mktemp -d "${TMPDIR:-/tmp}/srvocsp-demo-XXXXXX")
RESPONDER_PID=
cleanup() { stop_pid "$RESPONDER_PID"; rm -rf "$DIR"; }
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@" || echo "(exit code $?)"; }

PORT=$("$MKPKI" --free-port)
say "A throw-away PKI in $DIR (leaves name http://127.0.0.1:$PORT/ as their OCSP responder)"
"$MKPKI" "$DIR" "http://127.0.0.1:$PORT/" "http://127.0.0.1:$("$MKPKI" --free-port)/"
ls "$DIR"
say "openssl ocsp answers on 127.0.0.1:$PORT"
start_responder "$DIR" "$PORT" ca 60

say "srvocsp fetch: retrieve and verify (exit 0 good, 1 revoked, 2 failure)"
run "$CLI" fetch --cert "$DIR/good.pem" --out "$DIR/good.der"
run "$CLI" fetch --cert "$DIR/revoked.pem" --out "$DIR/revoked.der"
run "$CLI" fetch --cert "$DIR/unknown.pem"
say "The first OCSP URL of this certificate is dead; the second one answers"
run "$CLI" fetch --cert "$DIR/twourls.pem"

say "srvocsp show: decode, then verify for the certificate"
run "$CLI" show "$DIR/good.der" --cert "$DIR/good.pem"
run "$CLI" show "$DIR/revoked.der" --cert "$DIR/revoked.pem" --json
say "A response checked against the wrong certificate is refused"
run "$CLI" show "$DIR/good.der" --cert "$DIR/revoked.pem"
say "The same response, verified as of tomorrow, has expired"
run "$CLI" show "$DIR/good.der" --cert "$DIR/good.pem" --at "$(( $(date +%s) + 86400 ))"

say "What the responder saw"
grep 'Received request' "$DIR/responder-$PORT.log" | cut -c1-110
say "Done; everything started here has been stopped"
