#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# run-local.sh - install, build and run relaymilter in the foreground with the
# sample config (postfix-example/relaymilter.conf) against the local Redis at
# 127.0.0.1:6379, starting a private redis-server there if none answers.
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
redis_pid=""
trap 'exit 130' INT TERM  # Ctrl-C: the EXIT trap below cleans up
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    dir=$(mktemp -d /tmp/relaymilter-redis.XXXXXX)
    redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --dir "$dir" \
        --logfile "$dir/redis.log" &
    redis_pid=$!
    # set -e is off here: the server may be gone already (Ctrl-C reaches it
    # too). A signal interrupts wait: loop until it is gone, or its last log
    # lines would land in $dir after rm -rf.
    trap 'set +e; kill "$redis_pid" 2>/dev/null
          while kill -0 "$redis_pid" 2>/dev/null; do wait "$redis_pid" 2>/dev/null || :; done
          rm -rf "$dir"' EXIT
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
        sleep 0.2
    done
    echo "run-local.sh: started a private redis-server (pid $redis_pid)"
fi
echo "run-local.sh: relaymilter on inet:8890@127.0.0.1, Ctrl-C stops it"
RELAYMILTER_LOG_STDERR=1 build/relaymilter -c postfix-example/relaymilter.conf
