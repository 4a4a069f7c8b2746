# Shell helpers to run `openssl ocsp` on 127.0.0.1 (sourced by the demo and
# shell tests).  Needs LOBIND (the loopback-bind shim) to be set.

# start_responder DIR PORT SIGNER NMIN: starts it, waits for readiness.
start_responder() {
    start_ocsp "$1" "$2" "$3" "${4:-60}" ca index.txt
}

# start_ocsp DIR PORT SIGNER NMIN CA INDEX [OPTION...]: a responder for the
# CA DIR/CA.pem answering from DIR/INDEX, signed by DIR/SIGNER.pem (e.g. the
# root's, or an intermediate's, for chains); OPTIONs go to openssl ocsp.
start_ocsp() {
    local dir=$1 port=$2 signer=$3 nmin=$4 ca=$5 index=$6
    shift 6
    LD_PRELOAD="$LOBIND" openssl ocsp -index "$dir/$index" -port "$port" \
        -rsigner "$dir/$signer.pem" -rkey "$dir/$signer.key" -CA "$dir/$ca.pem" \
        -nmin "$nmin" -ignore_err "$@" >"$dir/responder-$port.log" 2>&1 &
    RESPONDER_PID=$!
    # A probe connection without a request would make this responder spin:
    # wait for its log line instead.
    for _ in $(seq 1 100); do
        if grep -q "waiting for OCSP client connections" "$dir/responder-$port.log" 2>/dev/null; then
            return 0
        fi
        kill -0 "$RESPONDER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "responder on port $port did not start:" >&2
    cat "$dir/responder-$port.log" >&2
    return 1
}

stop_pid() {
    [ -n "${1:-}" ] || return 0
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
