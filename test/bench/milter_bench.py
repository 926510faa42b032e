#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""milter_bench - relaymilter under milterload: messages/s and decision
latency at 1, 16 and 64 parallel MTA connections.

    python3 milter_bench.py --milter PATH --milterload PATH [--quick] [--rounds N]

One private redis-server (with-redis's when RM_REDIS_PORT is set) and one
relaymilter with every default quota window in force (customer minute /
hour / day, sender hour; limits far above the load, so each message is
checked and charged against 4 counters and accepted). Each configuration
runs --rounds times, the configurations interleaved; the table shows the
median over rounds. Latencies are from milterload's side of the socket, in
microseconds: "message" is MAIL FROM to the decision (the end-of-message
reply), the stages are single round trips; CPU is the milter's and Redis's
CPU time (utime + stime, /proc/PID/stat) over the run, per message.
"""

import argparse
import sys

import benchlib as bl

SECTION = "milterload"

# (label, connections, recipients per message, socket)
FULL = [("1 conn", 1, 1, "inet"), ("16 conns", 16, 1, "inet"),
        ("64 conns", 64, 1, "inet"), ("16 conns, 10 rcpts", 16, 10, "inet"),
        ("16 conns, unix socket", 16, 1, "unix")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--milter", required=True)
    ap.add_argument("--milterload", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--msgs", type=int, help="messages per run (per connection count)")
    ap.add_argument("--customers", type=int, default=1000)
    a = ap.parse_args()
    rounds = a.rounds or (1 if a.quick else 3)
    duration = 5 if a.quick else 60

    def msgs_for(conns):
        if a.msgs:
            return a.msgs
        if a.quick:
            return 300
        return 5000 if conns == 1 else 20000

    la = bl.wait_for_quiet() if not a.quick else bl.loadavg()
    redis = bl.shared_redis()
    milters = {"inet": bl.Milter(a.milter, redis, "inet").start(),
               "unix": bl.Milter(a.milter, redis, "unix").start()}
    configs = FULL if not a.quick else FULL[:3]
    # warm up: connections, the script cache, the pool
    for m in milters.values():
        bl.milterload(a.milterload, m.spec, conns=4, msgs=200 if not a.quick else 40,
                      customers=a.customers, duration=duration)
    results = {c[0]: [] for c in configs}
    errors = {c[0]: 0 for c in configs}
    for r in range(rounds):
        order = configs if r % 2 == 0 else list(reversed(configs))
        for label, conns, rcpts, kind in order:
            m = milters[kind]
            since = m.log_size()
            res = bl.milterload(a.milterload, m.spec, conns=conns, msgs=msgs_for(conns),
                                rcpts=rcpts, customers=a.customers, duration=duration,
                                pids=[m.pid, redis.pid], label=label.replace(" ", "_"))
            errors[label] += m.count_log("store_error", since)
            results[label].append(res)
    la_end = bl.loadavg()

    rows = []
    for label, conns, rcpts, kind in configs:
        rs = results[label]

        def med(k):
            return bl.median([x.get(k, float("nan")) for x in rs])
        rows.append([label, "%.0f" % med("rate"), "%.0f" % med("msg_p50"),
                     "%.0f" % med("msg_p99"), "%.0f" % med("msg_p999"),
                     "%.0f" % med("mail_p99"), "%.0f" % med("rcpt_p99"),
                     "%.0f" % med("data_p99"), "%.0f" % med("eom_p99"),
                     "%.0f" % med("cpu0_us"), "%.0f" % med("cpu1_us"),
                     "%d" % sum(x["error"] for x in rs), "%d" % errors[label]])
        bl.record("milterload", "%s: messages/s" % label, "%.0f" % med("rate"))
        bl.record("milterload", "%s: decision p50/p99/p99.9 us" % label,
                  "%.0f / %.0f / %.0f" % (med("msg_p50"), med("msg_p99"), med("msg_p999")))
        bl.record("milterload", "%s: CPU us/message milter + redis" % label,
                  "%.0f + %.0f" % (med("cpu0_us"), med("cpu1_us")))
    print(bl.table(
        "relaymilter under milterload (median of %d round(s); %s messages per run at "
        "1 conn / more; %d customers, 1 sender each, 5 messages per connection; "
        "latency in us)" % (rounds, "/".join(str(msgs_for(c)) for c in (1, 16)),
                            a.customers),
        ["config", "msg/s", "msg p50", "msg p99", "msg p99.9", "mail p99", "rcpt p99",
         "data p99", "eom p99", "cpu milter/msg", "cpu redis/msg", "errors",
         "store errors"], rows))
    print("load average: %.2f before, %.2f after" % (la, la_end))
    bl.record_load(SECTION, la, la_end)
    return 0


if __name__ == "__main__":
    sys.exit(main())
