#!/usr/bin/env bash
# Builds the dynamic module against the nginx source Debian ships for module
# builds (nginx-dev), in BUILD_DIR, never writing into the source tree.
# Called by CMake (modules/nginx/CMakeLists.txt):
#   build.sh NGINX_SRC BUILD_DIR MODULE_DIR INCS LIBS CC_OPT LD_OPT
set -euo pipefail
SRC=$1 BUILD=$2 MOD=$3 INCS=$4 LIBS=$5 CC_OPT=${6:-} LD_OPT=${7:-}
mkdir -p "$BUILD"
cd "$BUILD"
# configure reads auto/ and src/ relative to the current directory and writes
# objs/ and Makefile there: link the read-only source in, keep output here.
for f in auto src configure; do
    [ -e "$f" ] || ln -s "$SRC/$f" "$f"
done
# The same configure flags as Debian's nginx (its conf_flags), so the module's
# signature matches the installed binary; --with-compat makes it loadable.
FLAGS=()
if [ -f "$SRC/conf_flags" ]; then
    # shellcheck disable=SC1091
    . "$SRC/conf_flags"
    FLAGS=("${NGX_CONF_FLAGS[@]}")
fi
STAMP="$SRC|${FLAGS[*]}|$INCS|$LIBS|$CC_OPT|$LD_OPT|$(cat "$MOD/config")"
if [ ! -f Makefile ] || [ "$(cat .srvocsp-configured 2>/dev/null)" != "$STAMP" ]; then
    SRVOCSP_NGX_INCS="$INCS" SRVOCSP_NGX_LIBS="$LIBS" ./configure "${FLAGS[@]}" --with-compat \
        --with-cc-opt="-g -O2 -fPIC $CC_OPT" --with-ld-opt="$LD_OPT" \
        --add-dynamic-module="$MOD" >configure.log 2>&1 || { tail -30 configure.log; exit 1; }
    printf '%s' "$STAMP" >.srvocsp-configured
fi
make -f objs/Makefile modules >make.log 2>&1 || { grep -E "error|warning" make.log | head -40; tail -20 make.log; exit 1; }
test -f objs/ngx_http_srvocsp_module.so
