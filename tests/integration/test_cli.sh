#!/usr/bin/env bash
# srvocsp fetch / show against a real openssl ocsp responder on 127.0.0.1.
set -u
CLI=$1 MKPKI=$2 LOBIND=$3
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../../scripts/peers.sh"
command -v openssl >/dev/null || { echo "SKIP: no openssl command"; exit 77; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/srvocsp-cli-XXXXXX")
RESPONDER_PID=
cleanup() { stop_pid "$RESPONDER_PID"; rm -rf "$DIR"; }
trap cleanup EXIT

# SRVOCSP_TEST_WRAPPER (e.g. "valgrind -q --error-exitcode=99 ..."): every
# srvocsp command below runs under it; an error it reports fails the check.
if [ -n "${SRVOCSP_TEST_WRAPPER:-}" ]; then
    printf '#!/bin/sh\nexec %s %s "$@"\n' "$SRVOCSP_TEST_WRAPPER" "$CLI" >"$DIR/srvocsp"
    chmod +x "$DIR/srvocsp"
    CLI=$DIR/srvocsp
fi

PORT=$("$MKPKI" --free-port)
DEAD=$("$MKPKI" --free-port)
"$MKPKI" "$DIR" "http://127.0.0.1:$PORT/" "http://127.0.0.1:$DEAD/" || exit 1
start_responder "$DIR" "$PORT" ca 60 || exit 1

pass=0 fail=0
check() { # check NAME WANT_RC [grep-pattern-on-stdout+stderr] -- command...
    local name=$1 want=$2 pat=$3; shift 4
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" = "$want" ] && { [ -z "$pat" ] || grep -qE -- "$pat" <<<"$out"; }; then
        pass=$((pass+1)); echo "ok   $name"
    else
        fail=$((fail+1)); echo "FAIL $name (rc $rc, want $want)"; echo "$out" | sed 's/^/     /'
    fi
}

check "fetch good"            0 '^good thisUpdate=.* nextUpdate=.* url=http://127.0.0.1:'"$PORT" -- "$CLI" fetch --cert "$DIR/good.pem" --out "$DIR/good.der"
check "fetch revoked"         1 '^revoked ' -- "$CLI" fetch --cert "$DIR/revoked.pem" --out "$DIR/revoked.der"
check "fetch unknown"         2 'unknown' -- "$CLI" fetch --cert "$DIR/unknown.pem"
check "fetch separate issuer" 0 '^good ' -- "$CLI" fetch --cert "$DIR/good.pem" --issuer "$DIR/ca.pem"
check "fetch sha256 certid"   0 '^good ' -- "$CLI" fetch --cert "$DIR/good.pem" --sha256
check "fetch json"            0 '"status":"good"' -- "$CLI" fetch --cert "$DIR/good.pem" --json
check "fetch dead first url"  0 '^good ' -- "$CLI" fetch --cert "$DIR/twourls.pem"
check "fetch no aia"          2 'no http\(s\) OCSP URL' -- "$CLI" fetch --cert "$DIR/noaia.pem"
check "fetch url override"    0 '^good ' -- "$CLI" fetch --cert "$DIR/noaia.pem" --url "http://127.0.0.1:$PORT/"
check "fetch refused"         2 'E_TRANSPORT' -- "$CLI" fetch --cert "$DIR/good.pem" --url "http://127.0.0.1:$DEAD/"
check "fetch missing file"    2 'cannot open' -- "$CLI" fetch --cert "$DIR/nope.pem"
check "fetch usage"           2 'usage' -- "$CLI" fetch
check "fetch help"            0 'usage' -- "$CLI" fetch --help
check "show decodes"          0 'status good' -- "$CLI" show "$DIR/good.der"
check "show verifies good"    0 'verification: OK, certificate status good' -- "$CLI" show "$DIR/good.der" --cert "$DIR/good.pem"
check "show verifies revoked" 1 'certificate status revoked' -- "$CLI" show "$DIR/revoked.der" --cert "$DIR/revoked.pem"
check "show other cert"       2 'E_NO_MATCH' -- "$CLI" show "$DIR/good.der" --cert "$DIR/revoked.pem"
check "show --at future"      2 'has passed' -- "$CLI" show "$DIR/good.der" --cert "$DIR/good.pem" --at 2099-01-01T00:00:00Z
check "show --at unix"        0 'status good' -- "$CLI" show "$DIR/good.der" --cert "$DIR/good.pem" --at "$(date +%s)"
check "show bad --at"         2 'neither RFC 3339' -- "$CLI" show "$DIR/good.der" --at yesterday
check "show json"             0 '"verified":true' -- "$CLI" show "$DIR/good.der" --cert "$DIR/good.pem" --json
check "show not a response"   2 'not a DER or PEM OCSP response' -- "$CLI" show "$DIR/good.pem"
check "show help"             0 'usage' -- "$CLI" show --help
check "unknown command"       2 'unknown command' -- "$CLI" frobnicate
# srvocsp watch --store: the URL is checked when the options are read and a
# bad one refused by name (exit 2, nothing fetched); the Sentinel form with a
# master name starts even with no Sentinel answering (the responder serves).
W=$DIR/watch
mkdir -p "$W"; cp "$DIR/good.pem" "$W/site.pem"
check "watch help: Sentinel form" 0 'redis-sentinel://\[user:password@\]host\[:port\].*#MASTER' -- "$CLI" watch --help
check "watch --store without #MASTER" 2 'store URL: no master name' -- "$CLI" watch --dir "$W" --once --store "redis-sentinel://127.0.0.1:1"
if [ ! -e "$W/site.pem.ocsp" ]; then pass=$((pass+1)); echo "ok   watch refused: nothing fetched"
else fail=$((fail+1)); echo "FAIL watch refused: nothing fetched ($W/site.pem.ocsp written)"; fi
# An unescaped '/' in a password: what follows it is not echoed as a database.
out=$("$CLI" watch --dir "$W" --once --store "redis://u:12/hunter2@127.0.0.1:1" 2>&1); rc=$?
if [ "$rc" = 2 ] && grep -q "store URL: database is not a number" <<<"$out" && ! grep -q hunter2 <<<"$out"; then
    pass=$((pass+1)); echo "ok   watch --store: a bad URL refused without its password"
else
    fail=$((fail+1)); echo "FAIL watch --store password echoed or not refused (rc $rc)"; echo "$out" | sed 's/^/     /'
fi
check "watch --store Sentinel#MASTER" 0 'updated cert=.*status=good' -- "$CLI" watch --dir "$W" --once --store "redis-sentinel://127.0.0.1:1?connect_timeout=200ms#mymaster"
check "watch wrote the .ocsp file" 0 'status good' -- "$CLI" show "$W/site.pem.ocsp" --cert "$DIR/good.pem"
# The responder saw GET requests (short request: RFC 5019 GET).
check "GET was used"          0 'GET /' -- grep -m1 'Received request' "$DIR/responder-$PORT.log"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
