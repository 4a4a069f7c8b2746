#!/usr/bin/env bash
# The Debian packages, end to end: built from a clean copy of the tree with
# dpkg-buildpackage, checked by lintian (no error, no warning that
# debian/*.lintian-overrides does not explain), installed on this machine,
# used as an operator and a developer would, then removed and purged, and
# nothing of them left outside /etc and /var.  Needs root (it installs).
#
#   bash scripts/test_packages.sh            (scripts/test.sh runs it last)
#
# Removes what it installed on every exit, and refuses to start when any of
# the packages is already installed (it would remove someone's install).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PKGS=(libsrvocsp0 libsrvocsp-wincrypt0 libsrvocsp-gnutls0 libsrvocsp-dev srvocsp
      libnginx-mod-http-srvocsp libapache2-mod-srvocsp)
export DEBIAN_FRONTEND=noninteractive
export PATH=$PATH:/usr/sbin:/sbin
. "$ROOT/tests/support/checks.sh"
t_start=$(date +%s)

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
for p in "${PKGS[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        echo "FAIL $p is already installed: not touching it (apt-get purge ${PKGS[*]} first)"
        exit 1
    fi
done
# a2enmod srvocsp enables ssl (and what ssl needs) too: what is enabled
# now is what stays enabled afterwards.
mods_before=$(ls /etc/apache2/mods-enabled/ 2>/dev/null | sed -n 's/\.load$//p')

W=$(mktemp -d "${TMPDIR:-/tmp}/srvocsp-packages-XXXXXX")
installed=no
cleanup() {
    local m
    if command -v a2dismod >/dev/null; then
        for m in $(ls /etc/apache2/mods-enabled/ 2>/dev/null | sed -n 's/\.load$//p'); do
            grep -qx "$m" <<<"$mods_before" || $SUDO a2dismod -q -f "$m" >/dev/null 2>&1
        done
    fi
    if [ "$installed" = yes ]; then
        $SUDO dpkg --purge "${PKGS[@]}" >"$W/purge.log" 2>&1 || cat "$W/purge.log"
    fi
    [ -n "${SRVOCSP_KEEP_TMP:-}" ] && { echo "kept $W"; return; }
    rm -rf "$W"
}
trap cleanup EXIT

# --- build, from the files git knows (what a fresh clone has) ---
mkdir -p "$W/src"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$W/src")
else # an unpacked tarball: everything but build trees
    tar -C "$ROOT" --exclude='./build*' --exclude='./obj-*' --exclude='./debian/tmp' -cf - . | tar -C "$W/src" -xf -
fi || { bad "copying the tree"; finish; exit; }
t0=$(date +%s)
if (cd "$W/src" && DEB_BUILD_OPTIONS="nocheck parallel=${JOBS:-2}" \
        dpkg-buildpackage -us -uc -b >"$W/build.log" 2>&1); then
    ok "dpkg-buildpackage -us -uc -b: $(ls "$W"/*.deb | wc -l) packages in $(( $(date +%s) - t0 )) s"
else
    bad "dpkg-buildpackage" "$(tail -40 "$W/build.log")"; finish; exit
fi
for p in "${PKGS[@]}"; do
    [ -f "$W/${p}_"*.deb ] || bad "package $p not built"
done
version=$(dpkg-parsechangelog -l "$W/src/debian/changelog" -S Version)

# --- lintian: errors and unexplained warnings fail ---
t0=$(date +%s)
lintian --fail-on error,warning --info --pedantic "$W"/*.changes >"$W/lintian.log" 2>&1; rc=$?
[ "$rc" = 0 ] && ok "lintian (all packages, --pedantic): $(grep -c '^[EWIP]:' "$W/lintian.log") remarks, no error or warning ($(( $(date +%s) - t0 )) s)" \
    || bad "lintian: rc $rc" "$(grep -E '^[EW]:' "$W/lintian.log")"
grep -E '^[EWIPO]:' "$W/lintian.log" | sed 's/^/     lintian /'

echo "     package                        .deb  installed"
for p in "${PKGS[@]}"; do
    f=$(ls "$W/${p}_"*.deb)
    printf '     %-28s %5s KiB %5s KiB\n' "$p" "$(( $(stat -c %s "$f") / 1024 ))" \
        "$(dpkg-deb -f "$f" Installed-Size)"
done

# --- install ---
debs=()
for p in "${PKGS[@]}"; do debs+=("$(ls "$W/${p}_"*.deb)"); done
installed=yes
if $SUDO apt-get install -y -q --no-install-recommends "${debs[@]}" >"$W/install.log" 2>&1; then
    ok "apt-get install ./*.deb"
else
    bad "apt-get install" "$(tail -30 "$W/install.log")"; finish; exit
fi
for p in "${PKGS[@]}"; do dpkg -L "$p"; done | sort -u >"$W/files"

# --- the operator's commands ---
out=$(srvocsp --version 2>&1)
[ "$out" = "srvocsp $version" ] && ok "srvocsp --version: $out (the package's $version)" || bad "srvocsp --version: '$out', package $version"
out=$(man -w srvocsp-watch 2>&1) && ok "man -w srvocsp-watch: $out" || bad "man -w srvocsp-watch" "$out"
for pg in srvocsp srvocsp-fetch srvocsp-show srvocsp-check srvocsp-watch 5/srvocsp-watch.conf 3/srvocsp \
          3/libsrvocsp-wincrypt; do
    sec=; name=$pg
    [ "${pg#*/}" != "$pg" ] && { sec=${pg%%/*}; name=${pg#*/}; }
    w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 $sec "$name" 2>&1 >/dev/null) && [ -z "$w" ] \
        || bad "man --warnings $pg" "$w"
done
ok "man --warnings: the 8 installed pages render cleanly"

# --- the developer's ---
out=$(pkg-config --modversion srvocsp srvocsp-wincrypt srvocsp-gnutls 2>&1 | sort -u)
[ "$out" = "$version" ] && ok "pkg-config --modversion srvocsp, -wincrypt, -gnutls: $out" || bad "pkg-config: '$out'" 
cat >"$W/prog.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <srvocsp.h>
#include <srvocsp/wincrypt.h>
int main(void)
{
    int n = 0;
    const char *v = srvocsp_version(&n);
    /* a wincrypt call with no chain: NULL and ERROR_INVALID_PARAMETER */
    HCERT_SERVER_OCSP_RESPONSE h = CertOpenServerOcspResponse(NULL, 0, NULL);
    printf("%s %d %s\n", v, n == SRVOCSP_VERSION_NUMBER, h == NULL ? "refused" : "opened");
    return 0;
}
C
if cc -o "$W/prog" "$W/prog.c" $(pkg-config --cflags --libs srvocsp-wincrypt) 2>"$W/cc.log"; then
    out=$("$W/prog" 2>&1)
    [ "$out" = "$version 1 refused" ] && ok "a program built with pkg-config against libsrvocsp-dev runs: $out" \
        || bad "program output '$out'"
    # Into a file first: under pipefail, grep -q leaving at its first match
    # can kill ldd with SIGPIPE while it still writes, failing the check.
    ldd "$W/prog" >"$W/ldd.txt" 2>&1
    grep -qE "libsrvocsp.so.0 => /(usr/)?lib/" "$W/ldd.txt" && ok "... linked to the installed libsrvocsp.so.0" \
        || bad "program not linked to the installed library" "$(cat "$W/ldd.txt")"
else
    bad "cc against the -dev package" "$(cat "$W/cc.log")"
fi
mkdir -p "$W/cm"
cat >"$W/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(uses_srvocsp C)
find_package(srvocsp REQUIRED)
add_executable(prog ../prog.c)
target_link_libraries(prog PRIVATE srvocsp::srvocsp-wincrypt)
CM
if (cmake -S "$W/cm" -B "$W/cm/b" && cmake --build "$W/cm/b") >"$W/cmake.log" 2>&1 &&
        [ "$("$W/cm/b/prog")" = "$version 1 refused" ]; then
    ok "... and with CMake, find_package(srvocsp) and srvocsp::srvocsp-wincrypt"
else
    bad "CMake find_package(srvocsp)" "$(tail -20 "$W/cmake.log")"
fi
# Only the public API is exported: srvocsp_ names (never srvocsp__), the
# Windows names from the wincrypt library, srvocsp_gnutls_ from GnuTLS's.
exports() { nm -D --defined-only "$1" | awk '{ print $3 }'; }
lib=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)
out=$(exports "$lib/libsrvocsp.so.0" | grep -v '^srvocsp_[a-z0-9]')
[ -z "$out" ] && ok "nm -D libsrvocsp.so.0: $(exports "$lib/libsrvocsp.so.0" | wc -l) symbols, all srvocsp_*, no srvocsp__*" \
    || bad "libsrvocsp.so.0 exports more" "$out"
out=$(exports "$lib/libsrvocsp-wincrypt.so.0" | grep -vE '^(Cert[A-Za-z]+|GetLastError|SetLastError|Sleep|SrvOcsp[A-Za-z]+)$')
[ -z "$out" ] && ok "nm -D libsrvocsp-wincrypt.so.0: $(exports "$lib/libsrvocsp-wincrypt.so.0" | wc -l) symbols, the Windows API's names" \
    || bad "libsrvocsp-wincrypt.so.0 exports more" "$out"
out=$(exports "$lib/libsrvocsp-gnutls.so.0" | grep -v '^srvocsp_gnutls_')
[ -z "$out" ] && ok "nm -D libsrvocsp-gnutls.so.0: srvocsp_gnutls_* only" || bad "libsrvocsp-gnutls.so.0 exports more" "$out"

# --- the servers ---
if command -v nginx >/dev/null; then
    [ -L /etc/nginx/modules-enabled/50-mod-http-srvocsp.conf ] && ok "nginx: mod-http-srvocsp.conf enabled on installation" \
        || bad "nginx snippet not enabled" "$(ls -l /etc/nginx/modules-enabled/)"
    out=$($SUDO nginx -t 2>&1) && ok "nginx -t (Debian's configuration, the module loaded)" || bad "nginx -t" "$out"
    mkdir -p "$W/ng/logs"
    cat >"$W/ng/nginx.conf" <<NG
include /etc/nginx/modules-enabled/50-mod-http-srvocsp.conf;
pid $W/ng/nginx.pid;
error_log $W/ng/logs/error.log;
events {}
http {
    access_log off;
    srvocsp on;
    srvocsp_directory $W/ng/state;
}
NG
    out=$($SUDO nginx -t -p /usr/share/nginx/ -c "$W/ng/nginx.conf" 2>&1) && ok "nginx -t: srvocsp's directives known through the packaged snippet" \
        || bad "nginx -t with srvocsp directives" "$out"
else
    echo "(no nginx: nginx -t not run)"
fi
if command -v apache2ctl >/dev/null; then
    grep -q '^# Depends: ssl' /etc/apache2/mods-available/srvocsp.load && ok "apache2: srvocsp.load says # Depends: ssl" \
        || bad "srvocsp.load" "$(cat /etc/apache2/mods-available/srvocsp.load)"
    out=$($SUDO a2enmod srvocsp 2>&1) && [ -e /etc/apache2/mods-enabled/srvocsp.load ] && [ -e /etc/apache2/mods-enabled/ssl.load ] \
        && ok "a2enmod srvocsp (and ssl with it)" || bad "a2enmod srvocsp" "$out"
    out=$($SUDO apache2ctl -t 2>&1) && ok "apache2ctl -t with the module enabled" || bad "apache2ctl -t" "$out"
    $SUDO a2dismod -q -f srvocsp >/dev/null 2>&1
else
    echo "(no apache2: apache2ctl -t not run)"
fi

# --- systemd units: verify works without a running systemd ---
if command -v systemd-analyze >/dev/null; then
    out=$(systemd-analyze verify /lib/systemd/system/srvocsp-watch@watch.service \
        /lib/systemd/system/srvocsp-watch-once@watch.service 2>&1) && [ -z "$out" ] \
        && ok "systemd-analyze verify: srvocsp-watch@, srvocsp-watch-once@ (with their man pages)" \
        || bad "systemd-analyze verify" "$out"
    # (systemctl start needs systemd as PID 1, which a container lacks:
    # test_watch_notify covers readiness and reload with a listener of its own.)
else
    echo "(no systemd-analyze: units not verified)"
fi

# --- remove, purge, and nothing left ---
# (dpkg --purge: after a remove, apt no longer knows packages that came
# from files rather than a repository.)
$SUDO apt-get remove -y -q "${PKGS[@]}" >"$W/remove.log" 2>&1 || bad "apt-get remove" "$(tail -20 "$W/remove.log")"
left=$(while read -r f; do
    case $f in /etc/*|/var/*) continue ;; esac
    [ -e "$f" ] && [ ! -d "$f" ] && echo "$f"
done <"$W/files")
[ -z "$left" ] && ok "apt-get remove: none of the packages' files left outside /etc and /var" || bad "left after remove" "$left"
$SUDO dpkg --purge "${PKGS[@]}" >"$W/purge.log" 2>&1 || bad "dpkg --purge" "$(tail -20 "$W/purge.log")"
installed=no
left=$(find /usr /lib /etc/srvocsp /etc/apache2 /etc/nginx -path /usr/local -prune -o \
    \( -name '*srvocsp*' -print \) 2>/dev/null)
[ -z "$left" ] && ok "dpkg --purge: nothing named srvocsp under /usr, /lib, /etc/apache2, /etc/nginx; /etc/srvocsp gone" \
    || bad "left after purge" "$left"
echo "     packaging test: $(( $(date +%s) - t_start )) s"
finish
