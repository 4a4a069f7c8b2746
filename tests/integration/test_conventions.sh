#!/usr/bin/env bash
# What an operator relies on before anything runs: one version everywhere
# (CMake's project, the headers, the library, `srvocsp --version`,
# debian/changelog); help on stdout with exit 0 and usage errors on stderr
# with exit 2 for every command;
# manual pages that man renders without a warning; systemd units that
# `systemd-analyze verify` accepts (it needs no running systemd).
set -u
CLI=$1 SRC=$2 VERSION=$3 UNITS=$4 MAN=$5
. "$SRC/tests/support/checks.sh"
DIR=$(mktemp -d "${TMPDIR:-/tmp}/srvocsp-conventions-XXXXXX")
trap 'rm -rf "$DIR"' EXIT

# --- one version ---
out=$("$CLI" --version 2>"$DIR/err"); rc=$?
[ "$rc" = 0 ] && [ "$out" = "srvocsp $VERSION" ] && [ ! -s "$DIR/err" ] \
    && ok "srvocsp --version: 'srvocsp $VERSION' on stdout, exit 0" || bad "--version: rc $rc '$out'" "$(cat "$DIR/err")"
h=$(sed -n 's/^#define SRVOCSP_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' "$SRC/include/srvocsp.h" | paste -sd.)
[ "$h" = "$VERSION" ] && ok "include/srvocsp.h says $h" || bad "include/srvocsp.h says '$h', project $VERSION"
if [ -f "$SRC/debian/changelog" ]; then
    # The upstream part of the newest entry: no epoch, no Debian revision.
    d=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$SRC/debian/changelog")
    u=${d#*:}; u=${u%-*}
    [ "$u" = "$VERSION" ] && ok "debian/changelog's $d is upstream $u" \
        || bad "debian/changelog's $d (upstream '$u') is not project($VERSION): bump both (docs in README, Install)"
else
    bad "no debian/changelog"
fi

# --- help and usage, every command ---
usage_check() { # NAME WANT_RC WANT_STREAM(stdout|stderr) ARGS...
    local name=$1 want=$2 stream=$3 rc; shift 3
    "$CLI" "$@" >"$DIR/o" 2>"$DIR/e"; rc=$?
    if [ "$stream" = stdout ]; then
        [ "$rc" = "$want" ] && grep -q usage "$DIR/o" && [ ! -s "$DIR/e" ] \
            && ok "$name: usage on stdout, exit $want" || bad "$name: rc $rc" "$(cat "$DIR/o" "$DIR/e")"
    else
        [ "$rc" = "$want" ] && grep -q usage "$DIR/e" && [ ! -s "$DIR/o" ] \
            && ok "$name: usage on stderr, exit $want" || bad "$name: rc $rc" "$(cat "$DIR/o" "$DIR/e")"
    fi
}
usage_check "srvocsp --help" 0 stdout --help
usage_check "srvocsp (no command)" 2 stderr
usage_check "srvocsp bogus" 2 stderr bogus
for c in fetch show check watch; do
    usage_check "srvocsp $c --help" 0 stdout "$c" --help
    usage_check "srvocsp $c --no-such-option" 2 stderr "$c" --no-such-option
done
usage_check "srvocsp fetch (no --cert)" 2 stderr fetch
usage_check "srvocsp show (no file)" 2 stderr show
usage_check "srvocsp check (nothing to check)" 2 stderr check

# --- manual pages ---
if [ -n "$MAN" ] && [ -d "$MAN" ]; then
    if command -v man >/dev/null; then
        n=0
        for p in srvocsp.1 srvocsp-fetch.1 srvocsp-show.1 srvocsp-check.1 srvocsp-watch.1 \
                 srvocsp-watch.conf.5 srvocsp.3 libsrvocsp-wincrypt.3; do
            if [ ! -s "$MAN/$p" ]; then bad "man page $p not built"; continue; fi
            w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$MAN/$p" 2>&1 >/dev/null)
            [ -z "$w" ] && n=$((n+1)) || bad "man --warnings $p" "$w"
        done
        [ "$n" = 8 ] && ok "8 manual pages render without a warning (man --warnings)"
    else
        echo "(no man command: pages built, not rendered)"
    fi
else
    echo "(manual pages not built: SRVOCSP_MAN is OFF, no scdoc)"
fi

# --- systemd units, pointed at this build's srvocsp ---
if command -v systemd-analyze >/dev/null; then
    for u in srvocsp-watch@.service srvocsp-watch-once@.service; do
        sed "s|^\(Exec[A-Za-z]*=\)[^ ]*/srvocsp |\1$CLI |" "$UNITS/$u" >"$DIR/$u"
    done
    out=$(cd "$DIR" && systemd-analyze verify --man=no "$DIR/srvocsp-watch@test.service" \
        "$DIR/srvocsp-watch-once@test.service" 2>&1); rc=$?
    [ "$rc" = 0 ] && [ -z "$out" ] && ok "systemd-analyze verify: both units clean" || bad "systemd-analyze verify: rc $rc" "$out"
    for key in Type=notify ExecReload= NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes \
               PrivateTmp=yes 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' \
               'CapabilityBoundingSet=$' SystemCallFilter=@system-service LockPersonality=yes \
               MemoryDenyWriteExecute=yes ReadWritePaths=; do
        grep -q "^$key" "$UNITS/srvocsp-watch@.service" || bad "srvocsp-watch@.service lacks $key"
    done
    ok "srvocsp-watch@.service: notify, reload and the sandbox's keys are there"
else
    echo "(no systemd-analyze: units not verified)"
fi

finish
