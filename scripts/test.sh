#!/usr/bin/env bash
# The whole test suite: a normal build, an ASan+UBSan build, a TSan build
# for the concurrency tests, valgrind over the C integration tests, a
# bounded run of each fuzz target, and the Debian packages built, checked,
# installed and removed (scripts/test_packages.sh).  Builds go to build-test/ (or $OUT).
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

# valgrind memcheck over the C integration tests of the plain build, and
# over every srvocsp command test_cli runs.  Not
# test_fork: a forked child inherits OpenSSL's per-thread state of parent
# threads that no longer exist, which memcheck rightly calls lost (ASan and
# TSan cover fork).
run_valgrind() {
    echo "=== valgrind"
    local t
    local rc
    for t in test_responder test_wincrypt test_hostile test_interop_chromium; do
        rc=0
        (cd "$OUT/plain" && valgrind -q --error-exitcode=99 --leak-check=full \
                --errors-for-leak-kinds=definite --show-leak-kinds=definite \
                "./tests/$t" >"$OUT/valgrind-$t.log" 2>&1) || rc=$?
        if [ "$rc" = 0 ]; then
            echo "valgrind $t: clean"
        elif [ "$rc" = 77 ]; then # the test skipped itself (e.g. no ../shared): say why
            echo "valgrind $t: skipped: $(grep -m1 '^SKIP' "$OUT/valgrind-$t.log")"
        else
            echo "valgrind $t: FAILED"; tail -40 "$OUT/valgrind-$t.log"; status=1
        fi
    done
    # The srvocsp command's fetch and show, each run under memcheck.
    if (cd "$OUT/plain" && SRVOCSP_TEST_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full \
            --errors-for-leak-kinds=definite --show-leak-kinds=definite" \
            ctest -R '^test_cli$' --output-on-failure >"$OUT/valgrind-test_cli.log" 2>&1); then
        echo "valgrind test_cli (every srvocsp command it runs): clean"
    else
        echo "valgrind test_cli: FAILED"; tail -40 "$OUT/valgrind-test_cli.log"; status=1
    fi
}

# libFuzzer: each target runs FUZZ_SECONDS (default 60) from a seed corpus
# made from the test PKI; a crash fails the suite and leaves its input in
# $OUT/fuzz-artifacts (see docs/fuzzing.md).
run_fuzz() {
    echo "=== fuzz (${FUZZ_SECONDS:-60} s per target)"
    local t corpus
    cmake -S "$ROOT" -B "$OUT/fuzz" -DCMAKE_C_COMPILER=clang -DSRVOCSP_FUZZ=ON \
        -DSRVOCSP_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$OUT/fuzz" -j"$JOBS" --target fuzz_verify fuzz_http fuzz_store fuzz_make_corpus >/dev/null
    corpus=$(mktemp -d "${TMPDIR:-/tmp}/srvocsp-fuzz-XXXXXX")
    mkdir -p "$OUT/fuzz-artifacts"
    "$OUT/fuzz/fuzz/fuzz_make_corpus" "$corpus"
    for t in verify http store; do
        if SRVOCSP_FUZZ_PKI="$corpus/pki" "$OUT/fuzz/fuzz/fuzz_$t" -max_total_time="${FUZZ_SECONDS:-60}" \
                -artifact_prefix="$OUT/fuzz-artifacts/$t-" "$corpus/$t" >"$OUT/fuzz-$t.log" 2>&1; then
            echo "fuzz_$t: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$OUT/fuzz-$t.log" | tail -1)"
        else
            echo "fuzz_$t: CRASH"; tail -60 "$OUT/fuzz-$t.log"; status=1
        fi
    done
    rm -rf "$corpus"
}

run_suite plain -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_suite asan -DCMAKE_BUILD_TYPE=Debug -DSRVOCSP_SANITIZE=address,undefined
run_suite tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSRVOCSP_SANITIZE=thread -- -L concurrency
# The integration tests too, on the same build: real transfers on the
# engine thread, the example server's threads.  report_thread_leaks=0: an
# engine thread that ended by itself when idle is joined only by the next
# start or by srvocsp_cleanup, which these programs need not call.
echo "=== tsan, integration"
(cd "$OUT/tsan" && TSAN_OPTIONS="$TSAN_OPTIONS:report_thread_leaks=0" \
    ctest --output-on-failure -j"$JOBS" -L integration -LE concurrency) || status=1
# The Debian packages, last: they are installed on this machine, used,
# then removed and purged (the script cleans up on every exit).  The suites
# above use build-tree binaries and configurations of their own, so the
# order is not what keeps them apart; last keeps a failed cleanup from
# touching them.
run_packages() {
    echo "=== packages"
    if [ "$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; then
        echo "packages: SKIPPED (installs packages: needs root or sudo)"
        return
    fi
    JOBS=$JOBS bash "$ROOT/scripts/test_packages.sh" || status=1
}

run_valgrind
run_fuzz
run_packages
exit $status
