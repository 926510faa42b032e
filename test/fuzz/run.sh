#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# run.sh [SECONDS] [TARGET...] - build the libFuzzer targets with clang and
# fuzz each for SECONDS (default 60), starting from the committed corpus.
#
#   test/fuzz/run.sh            every target, 60 s each
#   test/fuzz/run.sh 10         every target, 10 s each (CI)
#   test/fuzz/run.sh 300 fuzz_reply
#
# Environment: RM_FUZZ_BUILD build directory (default /tmp/build-fuzz),
# RM_FUZZ_OUT where new inputs and crashes go (default a fresh temp dir; it is
# kept when something was found). The committed corpus is only read: new
# coverage goes to RM_FUZZ_OUT/TARGET/corpus, crashes to RM_FUZZ_OUT/TARGET/.
# A crash, leak, timeout or sanitizer report makes the exit status 1; copy the
# reproducer into test/fuzz/corpus/TARGET/regress-NAME so that every build
# replays it (ctest -L fuzz). Reproduce one with
#   $RM_FUZZ_BUILD/test/fuzz/TARGET FILE
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-fuzz_addr fuzz_config fuzz_reply fuzz_slots}
build=${RM_FUZZ_BUILD:-/tmp/build-fuzz}

case $secs in
'' | *[!0-9]*)
    echo "usage: run.sh [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac
command -v clang >/dev/null || {
    echo "run.sh: clang is not installed (apt-get install clang libclang-rt-14-dev)" >&2
    exit 2
}

CC=clang cmake -S "$src" -B "$build" -DRM_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    >"$build.cmake.log" 2>&1 || {
    cat "$build.cmake.log" >&2
    exit 1
}
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" --target $targets >"$build.build.log" 2>&1 || {
    tail -50 "$build.build.log" >&2
    exit 1
}

out=${RM_FUZZ_OUT:-$(mktemp -d /tmp/rm-fuzz.XXXXXX)}
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$here/lsan.supp}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
for t in $targets; do
    bin=$build/test/fuzz/$t
    seeds=$here/corpus/$t
    if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
        echo "run.sh: unknown target $t" >&2
        exit 2
    fi
    mkdir -p "$out/$t/corpus"
    dict=""
    [ -f "$here/$t.dict" ] && dict="-dict=$here/$t.dict"
    echo "== $t: ${secs}s (log $out/$t/log)"
    start=$(date +%s)
    # shellcheck disable=SC2086
    if "$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 -artifact_prefix="$out/$t/" $dict \
        "$out/$t/corpus" "$seeds" >"$out/$t/log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$out/$t/log" |
            tr '\n' ' '
        echo "($(($(date +%s) - start))s) ok"
    else
        status=1
        echo "$t: FAILED after $(($(date +%s) - start))s; reproducers:"
        for f in "$out/$t"/crash-* "$out/$t"/leak-* "$out/$t"/timeout-* "$out/$t"/oom-* \
            "$out/$t"/slow-unit-*; do
            [ -e "$f" ] && echo "  $f"
        done
        grep -E 'ERROR|runtime error|fuzz_[a-z]+: ' "$out/$t/log" | head -5 | sed 's/^/  /'
    fi
done
if [ "$status" -eq 0 ] && [ -z "${RM_FUZZ_OUT:-}" ]; then
    rm -rf "$out"
else
    echo "results kept in $out"
fi
exit $status
