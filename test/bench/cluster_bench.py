#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""cluster_bench - relaymilter on one Redis primary and on a Redis Cluster of
three primaries, side by side in one run.

    python3 cluster_bench.py --milter PATH --milterload PATH [--quick]
                             [--rounds N] [--msgs N] [--customers N]

Two private setups, each with its own relaymilter (the same binary and
settings but redis { }): one redis-server, and a Redis Cluster of three
primaries without replicas (test/lib/rcluster.py; a replica would add its
replication to the primaries' CPU, and the single server has none either).
milterload sends the same traffic to each, rounds alternating: 16
connections, --customers customers with one sender each, 1 recipient. For
each setup:
  msg/s             messages per second through the milter (wall clock)
  milter us/msg     the milter's CPU per message; the cluster's minus the
                    single server's is the routing layer's cost (slots,
                    the node table, per-node pools); the single server's
                    milter has as many connections (pool_size x 3) as the
                    cluster's has in all
  redis us/msg      all Redis servers' CPU per message, together
  per shard         each primary's CPU per message whose customer it serves
                    (its CPU during the run / its share of the messages, the
                    share of the EVALSHA calls it answered, INFO
                    commandstats), and EVALSHA's usec_per_call there (on one
                    primary the lookup script's calls are in it too)
Capacity: a primary's core is used up when it spends 1e6 us a second; it
spends (its CPU per message of its own) x (its share) per message sent, so
the setup carries 1e6 / that of the busiest primary messages a second. With
the customers spread over N primaries each takes about 1/N of the messages,
so N primaries carry about N times what one does. Two cores cannot show that
in wall clock (milterload, the milter and every Redis share them), which is
why the table reports it from each shard's CPU.
"""

import argparse
import os
import sys

import benchlib as bl

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rcluster  # noqa: E402

SECTION = "cluster"


class ClusterTarget:
    """What benchlib.Milter needs of a Redis: .port, here the cluster's seeds
    (harness_conf.milter_config writes them as redis.cluster_nodes)."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.port = cluster.seeds()


def evalsha_stats(ports):
    """{port: (calls, usec)} of EVALSHA (and EVAL) per server."""
    out = {}
    for p in ports:
        calls = usec = 0
        text = rcluster.redis_cmd(p, "INFO", "commandstats") or ""
        for line in text.splitlines():
            if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
                kv = dict(x.split("=") for x in line.split(":", 1)[1].split(","))
                calls += int(kv["calls"])
                usec += int(kv["usec"])
        out[p] = (calls, usec)
    return out


def run_once(a, milter, ports, pids, msgs):
    for p in ports:
        rcluster.redis_cmd(p, "CONFIG", "RESETSTAT")
    res = bl.milterload(a.milterload, milter.spec, conns=16, msgs=msgs,
                        customers=a.customers, duration=60 if not a.quick else 10,
                        pids=[milter.pid] + pids)
    stats = evalsha_stats(ports)
    total = sum(calls for calls, _ in stats.values()) or 1
    shards = []
    for i, p in enumerate(ports):
        calls, usec = stats[p]
        # each message is one charge on the shard of its customer; a shard's
        # share of the EVALSHA calls is its share of the messages (on one
        # primary the lookups are EVALSHA too, and the share is 1 all the same)
        share = calls / total
        cpu_per_msg = res.get("cpu%d_us" % (i + 1), 0.0)
        shards.append({"port": p, "calls": calls,
                       "cpu_per_charge": cpu_per_msg / share if share else 0.0,
                       "usec_per_call": usec / calls if calls else 0.0,
                       "share": share})
    return {"rate": res["rate"], "milter": res.get("cpu0_us", 0.0),
            "redis": sum(s["cpu_per_charge"] * s["share"] for s in shards),
            "errors": res.get("error", 0), "shards": shards}


def median_run(runs):
    med = {k: bl.median([r[k] for r in runs]) for k in ("rate", "milter", "redis")}
    med["errors"] = sum(r["errors"] for r in runs)
    med["shards"] = [{k: bl.median([r["shards"][i][k] for r in runs])
                      for k in ("calls", "cpu_per_charge", "usec_per_call", "share")}
                     for i in range(len(runs[0]["shards"]))]
    return med


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--milter", required=True)
    ap.add_argument("--milterload", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--msgs", type=int)
    ap.add_argument("--customers", type=int, default=300)
    a = ap.parse_args()
    rounds = a.rounds or (1 if a.quick else 3)
    msgs = a.msgs or (300 if a.quick else 20000)

    la = bl.wait_for_quiet() if not a.quick else bl.loadavg()
    single = bl.Redis().start()
    cluster = rcluster.Cluster(primaries=3, replicas=0)
    bl._cleanups.append(cluster.stop)
    cluster.start()
    primaries = cluster.primaries()
    # The same connections in all: pool_size is per node, so the single
    # server's milter gets as many as the cluster's has to its primaries
    # (with fewer, its threads would wait for connections, and that wait,
    # not routing, would tell the two apart).
    pool = bl.BENCH_SETTINGS["redis"]["pool_size"]
    setups = {
        "one primary": (bl.Milter(a.milter, single,
                                  settings={"redis": {"pool_size": pool * len(primaries)}})
                        .start(), [single.port], [single.pid]),
        "cluster, 3 primaries": (bl.Milter(a.milter, ClusterTarget(cluster)).start(),
                                 primaries,
                                 [cluster.nodes[p].proc.pid for p in primaries]),
    }
    for m, _, _ in setups.values():  # warm up: connections, scripts, slot map
        bl.milterload(a.milterload, m.spec, conns=4, msgs=200 if not a.quick else 40,
                      customers=a.customers, duration=30)
    runs = {name: [] for name in setups}
    for r in range(rounds):
        for name in (setups if r % 2 == 0 else reversed(list(setups))):
            m, ports, pids = setups[name]
            runs[name].append(run_once(a, m, ports, pids, msgs))
    la_end = bl.loadavg()

    rows, med = [], {name: median_run(rs) for name, rs in runs.items()}
    base = med["one primary"]
    for name, md in med.items():
        per_shard = " / ".join("%.1f" % s["cpu_per_charge"] for s in md["shards"])
        per_call = " / ".join("%.1f" % s["usec_per_call"] for s in md["shards"])
        share = " / ".join("%.0f%%" % (100 * s["share"]) for s in md["shards"])
        # the busiest shard's core runs out first: its CPU per message of all
        worst = max(s["cpu_per_charge"] * s["share"] for s in md["shards"])
        capacity = 1e6 / worst if worst else 0.0
        rows.append([name, "%.0f" % md["rate"], "%.0f" % md["milter"], "%.0f" % md["redis"],
                     per_shard, per_call, share, "%.0f" % capacity, "%d" % md["errors"]])
        bl.record(SECTION, "%s: messages/s, 16 conns" % name, "%.0f" % md["rate"])
        bl.record(SECTION, "%s: CPU us/message milter + all redis" % name,
                  "%.0f + %.0f" % (md["milter"], md["redis"]))
        bl.record(SECTION, "%s: redis CPU us per message, per shard" % name, per_shard,
                  "EVALSHA usec/call %s; shares %s" % (per_call, share))
        bl.record(SECTION, "%s: messages/s the primaries' cores allow" % name,
                  "%.0f" % capacity, "1e6 / the busiest shard's CPU us per message")
    routing = med["cluster, 3 primaries"]["milter"] - base["milter"]
    bl.record(SECTION, "routing: milter CPU us/message, cluster - one primary",
              "%.0f" % routing)
    print(bl.table(
        "relaymilter on one Redis primary and on a 3-primary Redis Cluster "
        "(milterload, 16 connections, %d messages a run, %d customers; median of %d "
        "round(s); CPU in us)" % (msgs, a.customers, rounds),
        ["setup", "msg/s", "milter/msg", "redis/msg", "redis/msg per shard",
         "EVALSHA usec/call", "share", "msg/s cap", "errors"], rows))
    print("routing layer: %+.0f us of milter CPU per message (cluster - one primary)"
          % routing)
    print("load average: %.2f before, %.2f after" % (la, la_end))
    bl.record_load(SECTION, la, la_end)
    return 0


if __name__ == "__main__":
    sys.exit(main())
