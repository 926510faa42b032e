#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""script_vs_get - relay.lua's calls against a plain GET, in the same Redis.

    python3 script_vs_get.py [--quick] [--rounds N] [--lua PATH] [--lookup-lua PATH]

redis-benchmark, 50 clients, against one private redis-server (with-redis's
when RM_REDIS_PORT is set), keys spread over --keyspace customers
(__rand_int__, as redis-benchmark's own tests do):
    GET      GET key:N (the keys SET first)
    charge   EVALSHA relay.lua charge, the call made at DATA: 4 counter hashes
             (customer minute / hour / day, sender hour) with the milter's
             argument layout, 1 recipient, limits far above the load
    lookup   EVALSHA lookup.lua, the call made at MAIL FROM (one primary)
    no-op    EVALSHA of "return 1" with charge's 4 keys and 33 arguments:
             the floor any script call with that argument list pays
each without pipelining (-P 1: how the milter calls, one command per round
trip per pooled connection) and with 16 commands in flight per client
(-P 16: Redis's own CPU is the limit). Each round runs every case; the table
shows the median over rounds and the ratio to GET. redis-benchmark shares
the machine with Redis: on 2 cores each gets about one.

Note: redis-benchmark draws each __rand_int__ of a command separately, so
the 4 keys of one charge call belong to different customers; each is still
one counter hash of the real layout (key names from policy/keys.c, through
test/lib/keynames.py: RM_KEYS names the rm-keys program).
"""

import argparse
import os
import subprocess
import sys

import benchlib as bl

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import keynames  # noqa: E402

SECTION = "redis"

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "..", "..", "policy", "relay.lua")
LOOKUP_LUA = os.path.join(HERE, "..", "..", "policy", "lookup.lua")
B = str(1000000000)


def charge_args(sha):
    """EVALSHA sha 4 counter... charge nrcpt NC (per key x5) tail (relay.lua)."""
    c = "c__rand_int__"
    keys = [keynames.counter("m", c), keynames.counter("h", c), keynames.counter("d", c),
            keynames.counter("h", c, "s0@c.example")]
    per_key = [["60000", B, B, "messages_per_minute", "recipients_per_minute"],
               ["3600000", B, B, "messages_per_hour", "recipients_per_hour"],
               ["86400000", B, B, "messages_per_day", "recipients_per_day"],
               ["3600000", B, "-1", "sender_messages_per_hour",
                "sender_recipients_per_hour"]]
    tail = ["10000", "0000ABCDEF1", c, "-", "s0@c.example", "r0@dest.example", "tempfail"]
    return (["EVALSHA", sha, "4"] + keys + ["charge", "1", "4"] + sum(per_key, []) + tail)


def lookup_args(sha):
    return ["EVALSHA", sha, "2", "relay:sasl", "relay:limits:c__rand_int__",
            "c__rand_int__", "relay:limits:", "c.example", "relay:domain:", "", "1000"]


def bench(redis, argv, n, pipeline, keyspace):
    """requests per second, from redis-benchmark --csv."""
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(redis.port), "-c", "50",
           "-n", str(n), "-P", str(pipeline), "-r", str(keyspace), "--csv"] + argv
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=600)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith('"')]
    if res.returncode != 0 or len(lines) < 2:
        raise RuntimeError("redis-benchmark failed: %s %s" % (res.stdout, res.stderr))
    # the last row: "name","rps",...; the name may hold commas, rps is the
    # second-to-last-but-five field
    return float(lines[-1].rsplit(",", 7)[1].strip('"'))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--keyspace", type=int, default=1000)
    ap.add_argument("--lua", default=LUA)
    ap.add_argument("--lookup-lua", default=LOOKUP_LUA)
    a = ap.parse_args()
    rounds = a.rounds or (1 if a.quick else 3)
    scale = 0.05 if a.quick else 1.0

    la = bl.wait_for_quiet() if not a.quick else bl.loadavg()
    redis = bl.shared_redis()
    with open(a.lua) as f:
        sha = redis.cli("-x", "SCRIPT", "LOAD", stdin=f.read())
    with open(a.lookup_lua) as f:
        lsha = redis.cli("-x", "SCRIPT", "LOAD", stdin=f.read())
    nop = redis.cli("SCRIPT", "LOAD", "return 1")
    if len(sha) != 40 or len(lsha) != 40 or len(nop) != 40:
        raise RuntimeError("SCRIPT LOAD failed: %r %r %r" % (sha, lsha, nop))
    charge = charge_args(sha)
    cases = [
        ("GET", ["-t", "get"], {16: 2000000, 1: 300000}),
        ("charge (4 keys)", charge, {16: 200000, 1: 100000}),
        ("lookup", lookup_args(lsha), {16: 400000, 1: 150000}),
        ("no-op script, same args", ["EVALSHA", nop] + charge[2:], {16: 600000, 1: 200000}),
    ]
    # the GET keys exist, as a customer's counters would
    bench(redis, ["-t", "set"], a.keyspace * 4, 16, a.keyspace)
    got = {(name, p): [] for name, _, ns in cases for p in ns}
    for r in range(rounds):
        for p in (1, 16):
            for name, argv, ns in (cases if r % 2 == 0 else list(reversed(cases))):
                got[(name, p)].append(bench(redis, argv, max(1000, int(ns[p] * scale)), p,
                                            a.keyspace))
    la_end = bl.loadavg()

    rows = []
    for p in (1, 16):
        base = bl.median(got[("GET", p)])
        for name, _, _ in cases:
            rps = bl.median(got[(name, p)])
            rows.append([p, name, "%.0f" % rps, "%.3f" % (rps / base),
                         "1/%.1f" % (base / rps) if rps < base else "1"])
            if name != "GET":
                bl.record("redis", "-P %d: %s / GET" % (p, name),
                          "%.0f / %.0f = %.3f" % (rps, base, rps / base),
                          "goal >= 0.333" if name.startswith("charge") else "")
    print(bl.table("relay.lua vs GET, redis-benchmark -c 50, %d customers' keys, "
                   "median of %d round(s)" % (a.keyspace, rounds),
                   ["pipeline", "command", "calls/s", "ratio to GET", "as a fraction"],
                   rows))
    print("load average: %.2f before, %.2f after" % (la, la_end))
    bl.record_load(SECTION, la, la_end)
    return 0


if __name__ == "__main__":
    sys.exit(main())
