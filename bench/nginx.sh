#!/usr/bin/env bash
# nginx with the srvocsp module, with its own ssl_stapling, and without
# stapling, side by side in one run (bench/bench_nginx.c).  Builds in
# release mode in build-bench/ (or $BUILD); a few minutes on 2 cores.
#   bench/nginx.sh [--rounds N] [--seconds S] [--trials N] [--json]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/deps.sh" --test
BUILD=${BUILD:-$ROOT/build-bench}
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSRVOCSP_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target srvocsp_nginx_module bench_nginx >/dev/null
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "nginx $(/usr/sbin/nginx -v 2>&1 | sed 's/.*nginx\///'), $machine, $(date -u +%Y-%m-%d)" >&2
"$BUILD/bench/bench_nginx" "$BUILD/modules/nginx/ngx/objs/ngx_http_srvocsp_module.so" "$@"
