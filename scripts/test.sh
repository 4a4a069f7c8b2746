#!/usr/bin/env bash
# The whole test suite: a normal build, an ASan+UBSan build, and a TSan
# build for the concurrency tests.  Builds go to build-test/ (or $OUT).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/deps.sh" --test
OUT=${OUT:-$ROOT/build-test}
JOBS=$(nproc)
status=0

run_suite() { # NAME CMAKE_ARGS... -- CTEST_ARGS...
    local name=$1; shift
    local cargs=() targs=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do cargs+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    targs=("$@")
    echo "=== $name"
    cmake -S "$ROOT" -B "$OUT/$name" -DSRVOCSP_BUILD_BENCH=OFF "${cargs[@]}" >/dev/null
    cmake --build "$OUT/$name" -j"$JOBS" >/dev/null
    if ! (cd "$OUT/$name" && ctest --output-on-failure -j"$JOBS" "${targs[@]}"); then
        status=1
    fi
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# die_after_fork=0: the fork test restarts threads in the child on purpose.
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:die_after_fork=0

run_suite plain -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_suite asan -DCMAKE_BUILD_TYPE=Debug -DSRVOCSP_SANITIZE=address,undefined
run_suite tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSRVOCSP_SANITIZE=thread -- -L concurrency
exit $status
