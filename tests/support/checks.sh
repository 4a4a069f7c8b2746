# The shell tests' checks (sourced): counters, ok/bad/expect/refuse, the
# summary line and exit status, and the example server on a free port.

pass=0 fail=0
ok()  { pass=$((pass+1)); echo "ok   $1"; }
# bad NAME [DETAIL]: a failed check; the detail's last lines are shown
bad() { fail=$((fail+1)); echo "FAIL $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/     /' | tail -40; }
expect() { # NAME PATTERN OUTPUT
    if grep -qE -- "$2" <<<"$3"; then ok "$1"; else bad "$1 (wanted /$2/)" "$3"; fi
}
refuse() { # NAME PATTERN OUTPUT
    if grep -qE -- "$2" <<<"$3"; then bad "$1 (did not want /$2/)" "$3"; else ok "$1"; fi
}
# The last command of a test: the summary, and its status.
# A part that could not run says so; with nothing failed, the test then
# ends as skipped (77) instead of passing without it.
skipped=""
skip_part() { skipped="$skipped; $1"; echo "SKIP $1"; }
finish() {
    echo "$pass passed, $fail failed${skipped:+, skipped: ${skipped#; }}"
    [ "$fail" = 0 ] || return 1
    [ -z "$skipped" ] || exit 77
}

# start_server NAME ARGS...: $SERVER (an example server) on a free port from
# $MKPKI, logging to $DIR/NAME.log, its pid added to PIDS; sets PORT.
start_server() {
    local name=$1; shift
    PORT=$("$MKPKI" --free-port)
    "$SERVER" --port "$PORT" "$@" >"$DIR/$name.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do
        grep -q "listening on 127.0.0.1:$PORT" "$DIR/$name.log" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "server $name did not start"; cat "$DIR/$name.log"; return 1
}
