#!/usr/bin/env bash
# srvocsp watch over many certificates against a real `openssl ocsp`
# responder on loopback: the time until every <cert>.ocsp is written with
# no hook, with a 20 ms hook per file, with a batch hook, and the time to
# push every response to a real HAProxy; how many hook runs each took.
# Builds in release mode in build-bench/ (or $BUILD).
#   bench/watch.sh [N ...]          (default: 1000 10000)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/deps.sh" --test >&2
BUILD=${BUILD:-$ROOT/build-bench}
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSRVOCSP_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target srvocsp_cli srvocsp-testpki srvocsp_lobind >/dev/null
CLI=$BUILD/tools/srvocsp MKPKI=$BUILD/tests/srvocsp-testpki
LOBIND=$(find "$BUILD/tests" -name 'libsrvocsp_lobind.so' | head -1)
export PATH=$PATH:/usr/sbin
. "$ROOT/scripts/peers.sh"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 10000)

DIR=$(mktemp -d "${TMPDIR:-/tmp}/srvocsp-bench-watch-XXXXXX")
RESPONDER_PID= PIDS=()
cleanup() {
    stop_pid "$RESPONDER_PID"
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    rm -rf "$DIR"
}
trap cleanup EXIT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
count() { grep -cE "$2" "$1" 2>/dev/null || true; }
# until FILE PATTERN N TIMEOUT_S: waits until N lines match; prints ms waited
until_lines() {
    local t0 end
    t0=$(now_ms) end=$(( $(now_ms) + $4 * 1000 ))
    while [ "$(count "$1" "$2")" -lt "$3" ]; do
        [ "$(now_ms)" -lt "$end" ] || { echo "timeout"; return; }
        sleep 0.2
    done
    echo $(( $(now_ms) - t0 ))
}
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

printf '| certificates | hook | every file written | hook runs | retrievals failed |\n'
printf '|---|---|---|---|---|\n'
for N in "${SIZES[@]}"; do
    M=$DIR/pki-$N C=$DIR/certs-$N
    mkdir -p "$M" "$C"
    RPORT=$("$MKPKI" --free-port)
    "$MKPKI" "$M" "http://127.0.0.1:$RPORT/" --many "$N" "$C" >/dev/null
    stop_pid "$RESPONDER_PID"
    start_ocsp "$M" "$RPORT" ca 60 ca index.txt

    run() { # LABEL WATCH-OPTIONS...: one watch from no files to all written
        local label=$1 log=$DIR/watch.log ms runs failed
        shift
        find "$C" -name '*.ocsp' -delete
        rm -f "$DIR/hook.log" "$DIR/batch.log"
        "$CLI" watch --dir "$C" "$@" >"$log" 2>&1 &
        local w=$!
        ms=$(until_lines "$log" " (updated|revoked) cert=" "$N" 600)
        case $label in
            none) runs=0 ;;
            per-file*) until_lines "$DIR/hook.log" . "$N" 900 >/dev/null; runs=$(lines "$DIR/hook.log") ;;
            batch*) sleep 3; runs=$(lines "$DIR/batch.log") ;;
        esac
        failed=$(count "$log" " failed cert=")
        kill -TERM "$w"; wait "$w" || true
        printf '| %s | %s | %s ms | %s | %s |\n' "$N" "$label" "$ms" "$runs" "$failed"
    }
    run none
    run "per-file, 20 ms, 4 at once" --on-update "sleep 0.02; echo x >>$DIR/hook.log"
    run "batch, 1 s settle" --on-batch "cat >/dev/null; echo x >>$DIR/batch.log"

    if command -v haproxy >/dev/null; then
        # HAProxy 2.6 takes a pushed response only for a certificate it
        # loaded one for: --once first, then HAProxy, then watch, then a
        # refresh of everything (every response new, every one pushed).
        find "$C" -name '*.ocsp' -delete
        "$CLI" watch --dir "$C" --once >/dev/null 2>&1 || true
        HPORT=$("$MKPKI" --free-port) SOCK=$DIR/haproxy-$N.sock
        cat >"$DIR/haproxy.cfg" <<EOF
global
    stats socket $SOCK level admin
    tune.ssl.cachesize 0
defaults
    mode http
    timeout connect 5s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:$HPORT ssl crt $C
    http-request return status 200 content-type text/plain string ok
EOF
        haproxy -f "$DIR/haproxy.cfg" -db >"$DIR/haproxy.log" 2>&1 &
        hp=$!; PIDS+=($hp)
        for _ in $(seq 1 600); do [ -S "$SOCK" ] && break; sleep 0.1; done
        log=$DIR/watch-haproxy.log
        "$CLI" watch --dir "$C" --haproxy-socket "$SOCK" >"$log" 2>&1 &
        w=$!
        # Each file is adopted, then the library's first retrieval at open
        # brings a newer response, pushed too: wait for all of those.
        until_lines "$log" " updated cert=" "$N" 600 >/dev/null
        until_lines "$log" "haproxy-(updated|failed) cert=" "$N" 600 >/dev/null
        before=$(count "$log" "haproxy-updated cert=")
        ubefore=$(count "$log" " updated cert=")
        sleep 1.1 # a new thisUpdate
        kill -USR1 "$w"
        # The files first (retrievals and writes), then what the pushes
        # still needed after the last file: pushes run beside the writes.
        ums=$(until_lines "$log" " updated cert=" $((ubefore + N)) 600)
        pms=$(until_lines "$log" "haproxy-updated cert=" $((before + N)) 600)
        failed=$(count "$log" "haproxy-failed cert=")
        kill -TERM "$w"; wait "$w" || true
        stop_pid "$hp"
        printf '| %s | HAProxy runtime API: refresh all, push all | %s ms to every file, then %s ms until the last push was confirmed by HAProxy | %s pushes failed | |\n' \
            "$N" "$ums" "$pms" "$failed"
    fi
done
