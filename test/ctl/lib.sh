# SPDX-License-Identifier: BSD-2-Clause
# lib.sh - what the relaymilter-ctl test scripts share; sourced, after they
# set tmp (a temp dir of their own). TAP-style output, one line a check:
#   check DESCRIPTION TEST-COMMAND...   ok / not ok (with status and output)
#   run CMD...                          OUT, ERR, ST of one run
#   has TEXT PART                       TEXT contains PART
#   R ARGS...                           redis-cli on the private server
#   finish                              the plan line; exit 1 when any failed
# shellcheck shell=bash disable=SC2034
fails=0
count=0
OUT="" ERR="" ST=0
REAL_CLI=$(command -v redis-cli)

pass() { count=$((count + 1)); echo "ok $count - $1"; }
fail() {
    count=$((count + 1))
    fails=$((fails + 1))
    echo "not ok $count - $1"
    echo "#   status: $ST"
    echo "#   stdout: ${OUT//$'\n'/$'\n#           '}"
    echo "#   stderr: ${ERR//$'\n'/$'\n#           '}"
}
check() {
    local d=$1
    shift
    if "$@"; then pass "$d"; else fail "$d"; fi
}
run() {
    OUT=$("$@" 2>"$tmp/stderr")
    ST=$?
    ERR=$(cat "$tmp/stderr")
}
has() { [[ $1 == *"$2"* ]]; }
R() { "$REAL_CLI" -p "$RM_REDIS_PORT" "$@"; }
finish() {
    echo "1..$count"
    if [ "$fails" -ne 0 ]; then
        echo "# $fails of $count checks failed"
        exit 1
    fi
    echo "# all $count checks passed"
    exit 0
}
