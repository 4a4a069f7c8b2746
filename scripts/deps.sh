#!/usr/bin/env bash
# Installs what building, the demo and the tests need (Debian 12, as root).
# Only touches apt when something is missing.
set -euo pipefail
PKGS=(gcc g++ make cmake pkg-config libssl-dev libcurl4-openssl-dev libcmocka-dev libhiredis-dev
      openssl curl iproute2 ca-certificates)
# libsrvocsp-gnutls, its example and tests; gnutls-cli for the demo
PKGS+=(libgnutls28-dev gnutls-bin)
# the nginx module: nginx's source for module builds and what its configure needs
PKGS+=(nginx-dev libpcre3-dev zlib1g-dev)
# the Apache module: apxs and httpd's headers (http_ssl.h, the OCSP hooks)
PKGS+=(apache2-dev)
# srvocsp watch's metrics endpoint (GET /metrics, /healthz)
PKGS+=(libmicrohttpd-dev)
# srvocsp watch's readiness under systemd (sd_notify), the manual pages
PKGS+=(libsystemd-dev scdoc)
if [ "${1:-}" = "--test" ]; then
    PKGS+=(clang libclang-rt-14-dev gnutls-bin valgrind nginx haproxy)
    # Debian's apache2 for test_apache and bench/apache.sh; gdb reads a
    # crashed child's core there (Apache's own race at a stop is not counted)
    PKGS+=(apache2 gdb)
    # libfaketime: wall-clock jumps in a real process (test_clock_jump)
    PKGS+=(faketime)
    # the fleet's shared store (test_store_redis, test_fleet, bench_fleet)
    PKGS+=(redis-server)
    # responders as deployed (test_methods, test_real_responders): cfssl
    # ocspserve, and Node for the npm ocsp package's server (installed by
    # the test into the build directory); a Node that brings its own npm
    # needs no second one
    PKGS+=(golang-cfssl nodejs)
    command -v npm >/dev/null 2>&1 || PKGS+=(npm)
    # test_watch_metrics: clients that misbehave on purpose
    PKGS+=(python3)
    # the Debian packages (scripts/test_packages.sh): build them, lintian,
    # man --warnings, systemd-analyze verify (no running systemd needed)
    PKGS+=(debhelper dpkg-dev fakeroot lintian man-db systemd git)
fi
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
