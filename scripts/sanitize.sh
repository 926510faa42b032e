#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# sanitize.sh - the tests under sanitizers.
#
#   1. ASan + UBSan build in build-asan/: ctest -L unit, ctest -L integration
#      -LE slow, and ctest -L fuzz (the fuzz corpus replayed).
#   2. TSan build in build-tsan/: the multi-threaded tests: the store under
#      concurrent callers (integration_concurrency, integration_store_errors,
#      integration_cluster_threads: a Redis Cluster's slot map changing),
#      the fake-server replay (fuzz_replay_fuzz_reply) and the daemon with its
#      libmilter threads under a hostile client (hostile_mta).
#
# Exit status 0 when every test passed and no sanitizer wrote a report, 1
# otherwise. Every report from any process (a test, or a relaymilter a test
# started) is also written to a file under a temp dir, listed at the end, so a
# report in a process whose exit status nobody checks still fails the run.
# Arguments are passed to every ctest run (e.g. -j2, -R PATTERN).
#
# Environment: RM_ASAN_BUILD, RM_TSAN_BUILD (default build-asan, build-tsan in
# the source tree), RM_SANITIZE_ONLY=asan|tsan to run one half.
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
asan=${RM_ASAN_BUILD:-$src/build-asan}
tsan=${RM_TSAN_BUILD:-$src/build-tsan}
only=${RM_SANITIZE_ONLY:-}
jobs=$(nproc)
reports=$(mktemp -d /tmp/rm-sanitize.XXXXXX)
status=0
t_start=$(date +%s)

# Leaks that are not ours: libconfig 1.5 drops the token a syntax error
# interrupts (config tests load broken files on purpose).
cat >"$reports/lsan.supp" <<'EOF'
leak:strbuf_append
leak:libconfig_yylex
EOF

# ThreadSanitizer reports inside libmilter alone (8.17.1, not ours): at
# shutdown its listener tears down mutexes that its never-joined signal and
# worker-pool threads still use. A report none of whose frames is in this
# tree's code is one of those: it is listed, and does not fail the run; any
# report with a frame of ours does. (Suppressions by function name cannot do
# this: libmilter's static functions have no symbols, and matching the
# module would also hide races in our callbacks, which libmilter calls.)
foreign_tsan() { # FILE: 0 when every report in FILE is libmilter's alone
    grep -q "ThreadSanitizer" "$1" &&
        awk -v src="$src/" '
            # The access stacks decide; where a mutex or a thread was made
            # does not (the milter thread is started by main.c), except in a
            # thread leak, where the creation stack is the report.
            /^==================$/ { if (ours) mine++; ours = 0; access = 1; next }
            /WARNING: ThreadSanitizer: thread leak/ { leak = 1 }
            /WARNING: ThreadSanitizer:/ && !/thread leak/ { leak = 0 }
            /^  (Location is|Mutex M[0-9]+ |Thread T[0-9]+ )/ && !leak { access = 0 }
            access && (index($0, src) || /relaymilter\+0x/) { ours = 1 }
            END { if (ours) mine++; exit mine > 0 }' "$1"
}

phase() { # NAME: a timed line per phase
    echo "== $1 ($(($(date +%s) - t_start))s)"
}

build() { # DIR SANITIZERS
    phase "build $1 (-DRM_SANITIZE=$2)"
    if ! cmake -S "$src" -B "$1" -DRM_SANITIZE="$2" -DRM_WERROR=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$1.cmake.log" 2>&1; then
        cat "$1.cmake.log" >&2
        exit 1
    fi
    if ! cmake --build "$1" -j"$jobs" >"$1.build.log" 2>&1; then
        tail -40 "$1.build.log" >&2
        exit 1
    fi
}

run() { # DIR CTEST-ARGS...
    dir=$1
    shift
    phase "ctest $* (in $dir)"
    t0=$(date +%s)
    if (cd "$dir" && ctest --output-on-failure "$@"); then
        echo "-- passed in $(($(date +%s) - t0))s"
    else
        echo "-- FAILED after $(($(date +%s) - t0))s"
        status=1
    fi
}

# Tests that bound a time scale it by this: instrumented code is slower.
export RM_SLOW_FACTOR=3

if [ "$only" != tsan ]; then
    build "$asan" address,undefined
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:log_path=$reports/asan"
    export LSAN_OPTIONS="suppressions=$reports/lsan.supp"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan"
    run "$asan" -L unit "$@"
    run "$asan" -L integration -LE slow "$@"
    run "$asan" -L fuzz "$@"
    unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
fi

if [ "$only" != asan ]; then
    build "$tsan" thread
    # Not halting, exit status untouched: a libmilter-only report must not
    # fail a test; the report files are judged below.
    export TSAN_OPTIONS="halt_on_error=0:exitcode=0:second_deadlock_stack=1:log_path=$reports/tsan"
    run "$tsan" -R '^(integration_concurrency|integration_store_errors|integration_cluster_threads|fuzz_replay_fuzz_reply|hostile_mta)$' "$@"
    unset TSAN_OPTIONS
fi

# The report files (NAME.PID), whatever the exit status of their process.
found=$(find "$reports" -type f ! -name '*.supp' | sort)
for f in $found; do
    if foreign_tsan "$f"; then
        echo "== libmilter-internal ThreadSanitizer report (not failing) $f:"
        grep -E "^(WARNING|SUMMARY)" "$f"
        continue
    fi
    status=1
    echo "== sanitizer report $f"
    head -60 "$f"
done
phase "done: $([ $status -eq 0 ] && echo passed || echo FAILED)"
if [ $status -eq 0 ]; then
    rm -rf "$reports"
else
    echo "reports and suppressions kept in $reports"
fi
exit $status
