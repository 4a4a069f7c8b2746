#!/usr/bin/env bash
# Apache with mod_srvocsp, with mod_ssl's own stapling (SSLUseStapling),
# and without stapling, side by side in one run (bench/bench_apache.c).
# Builds in release mode in build-bench/ (or $BUILD); a few minutes on 2
# cores (mod_ssl's first handshake with a hung responder alone waits 10 s).
#   bench/apache.sh [--rounds N] [--seconds S] [--trials N]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/deps.sh" --test
BUILD=${BUILD:-$ROOT/build-bench}
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSRVOCSP_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target srvocsp_apache_module bench_apache >/dev/null
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "$(/usr/sbin/apache2 -v | head -1 | sed 's/Server version: //'), event MPM, $machine, $(date -u +%Y-%m-%d)" >&2
"$BUILD/bench/bench_apache" "$BUILD/modules/apache/mod_srvocsp.so" "$@"
