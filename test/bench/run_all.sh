#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# run_all.sh - every relaymilter benchmark, then one summary table.
#
#   test/bench/run_all.sh [--quick] [--long] [--build DIR]
#                         [--milter PATH] [--milterload PATH] [--only LIST]
#
#   --quick        a few hundred messages / a few seconds per case, one round:
#                  checks that everything runs and prints the tables (CI:
#                  ctest -L bench); the numbers mean little
#   --long         also the slow check that the keys go back to zero
#                  (about 3 minutes)
#   --build DIR    where relaymilter and test/bench/milterload were built
#                  (default: ./build of the repository)
#   --keys PATH    the rm-keys program (test/lib/rm_keys.c: key names as
#                  policy/keys.c builds them; default: test/lib/rm-keys
#                  beside relaymilter)
#   --only LIST    comma-separated sections: milter,postfix,redis,scale,cluster
#   --max-wait S   wait at most S seconds per section for a quiet machine
#                  (default 1200; 0: measure at once; env BENCH_LOAD_WAIT)
#   --load-limit L the 1-minute load average counted as quiet (default 1.5;
#                  env BENCH_LOAD_LIMIT)
#
# Sections (each a script in this directory, usable on its own):
#   milter   milter_bench.py    milterload at 1, 16, 64 connections
#   postfix  postfix_compare.py Postfix with / without the milter (root),
#                               and with two do-nothing reference filters
#                               (noop_libmilter, noop_raw): the floors
#   redis    script_vs_get.py   relay.lua calls vs GET (redis-benchmark)
#   scale    scale.py           1 thousand vs 1 million customers' keys,
#                               memory per sender, daemon RSS, keys to zero
#   cluster  cluster_bench.py   one Redis primary vs a 3-primary Redis
#                               Cluster: throughput, Redis CPU per charge per
#                               shard, the routing layer's CPU
# Without --quick each section waits (up to 20 minutes, see --max-wait) for
# the 1-minute load average to drop to 1.5 before it measures, and says what
# it was; on a shared machine, compare the side-by-side ratios.
# Runs beside a private redis-server (test/lib/with-redis); every process it
# starts is stopped by its PID. Exit status: 0 when every section ran.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

quick="" long="" build="$top/build" milter="" load="" keys=""
only="milter,postfix,redis,scale,cluster"
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=--quick ;;
    --long) long=--long ;;
    --build) build=$2; shift ;;
    --milter) milter=$2; shift ;;
    --milterload) load=$2; shift ;;
    --keys) keys=$2; shift ;;
    --only) only=$2; shift ;;
    --max-wait) export BENCH_LOAD_WAIT=$2; shift ;;
    --load-limit) export BENCH_LOAD_LIMIT=$2; shift ;;
    -h | --help) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//; /^set -u/d'; exit 0 ;;
    *) echo "run_all.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$milter" ] || milter=$build/relaymilter
[ -n "$load" ] || load=$build/test/bench/milterload
[ -n "$keys" ] || keys=$(dirname "$milter")/test/lib/rm-keys
export RM_KEYS=$keys
if [ ! -x "$milter" ]; then
    echo "run_all.sh: no relaymilter at $milter (build first, or --milter PATH)" >&2
    exit 2
fi
if [ ! -x "$load" ]; then
    echo "run_all.sh: no milterload at $load (build first, or --milterload PATH)" >&2
    exit 2
fi

# Beside a private redis-server, once.
if [ -z "${RM_REDIS_PORT:-}" ]; then
    exec "$top/test/lib/with-redis" "$0" $quick $long --milter "$milter" \
        --milterload "$load" --keys "$keys" --only "$only"
fi

results=$(mktemp /tmp/rm-bench-results.XXXXXX)
trap 'rm -f "$results"' EXIT
export BENCH_RESULTS=$results PYTHONDONTWRITEBYTECODE=1
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
failed=""

section() {
    local name=$1
    shift
    case ",$only," in *",$name,"*) ;; *) return 0 ;; esac
    echo
    echo "=== $name: $*"
    if ! /usr/bin/env python3 "$@"; then
        failed="$failed $name"
        printf '%s\tFAILED\tsee the output above\t\n' "$name" >>"$results"
    fi
}

section milter "$here/milter_bench.py" $quick --milter "$milter" --milterload "$load"
# The reference filters are built beside milterload (CMakeLists.txt).
refs=""
benchdir=$(dirname "$load")
[ -x "$benchdir/noop_libmilter" ] && refs="$refs --noop-libmilter $benchdir/noop_libmilter"
[ -x "$benchdir/noop_raw" ] && refs="$refs --noop-raw $benchdir/noop_raw"
section postfix "$here/postfix_compare.py" $quick --milter "$milter" $refs
section redis "$here/script_vs_get.py" $quick
section scale "$here/scale.py" $quick $long --milter "$milter" --milterload "$load"
section cluster "$here/cluster_bench.py" $quick --milter "$milter" --milterload "$load"

echo
/usr/bin/env python3 "$here/summary.py" "$results" "$started" "$load_start" $quick
status=$?
if [ -n "$failed" ]; then
    echo "run_all.sh: failed:$failed" >&2
    exit 1
fi
exit $status
