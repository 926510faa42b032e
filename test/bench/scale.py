#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""scale - cost per message against the amount of data in Redis, memory per
active sender, daemon memory over a long run, keys going back to zero.

    python3 scale.py --milter PATH --milterload PATH [--quick] [--long]
                     [--rounds N] [--big N]

1. 1 thousand vs 1 million customers: two private redis-servers with the
   same settings, filled with the counter hashes of the real layout
   (doc/OPERATIONS "Redis keys"; names from policy/keys.c through
   test/lib/keynames.py: the customer's minute, hour and day counters and
   one sender's hour counter, live in the current window), 4 keys per
   customer: 4 thousand keys in one, 4 million (--big customers) in the other.
   One relaymilter per Redis; milterload sends to the filled customers:
     small     the thousand customers of the small Redis
     big       the same thousand customers, in the big Redis: only the
               amount of data differs (the O(1) comparison, goal <= 1.1)
     big-cold  every message from a customer not seen in this run, of the
               million: a large installation's working set, for information
   Rounds rotate the order of the three; the table shows medians:
   messages/s, decision latency p50 / p99 from milterload at 1 and 16
   connections, and Redis's own time per EVALSHA (INFO commandstats,
   usec_per_call, reset before each run). Goal: p99 big / small <= 1.1.
   At 16 connections as fast as they go the two cores are saturated and
   p99 is mostly the queue in front of them, which multiplies any
   difference in cost; so 16 connections also run paced (milterload -R) at
   a quarter of the rate the small Redis reached in a calibration run, the
   same offered load for all three: there p99 is the cost of a message (at
   half that rate, p99 on 2 cores still varies by 2x from run to run). The
   table counts the paced messages that started 1 ms or more late: many
   would mean the offered rate was more than that Redis could take.
   The filled keys get a 2-hour TTL so none expires during the test (the
   milter's own minute keys live at most 2 minutes).
2. Memory per active sender: used_memory of an empty Redis before and after
   charging N new customers (one sender each: 4 keys), then N more senders
   of the same customers (1 key each).
3. Daemon RSS over 100k messages (after 10k of warm-up).
4. --long: keys back to zero. A relaymilter with minute windows only (every
   hour / day / sender limit -1); after the traffic stops, DBSIZE is polled
   until it reaches 0 (at most 200 s).
"""

import argparse
import os
import sys
import time

import benchlib as bl

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import keynames  # noqa: E402

SECTION = "scale"

# ARGV: customer-name prefix, first, last, TTL, then the key templates with
# @C@ for the customer: minute, hour, day, and one sender's hour counter.
FILL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local p, ttl = ARGV[1], tonumber(ARGV[4])
local wins = { { ARGV[5], 60000 }, { ARGV[6], 3600000 }, { ARGV[7], 86400000 } }
for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do
  local c = p .. i
  for _, w in ipairs(wins) do
    local k = string.gsub(w[1], '@C@', c)
    redis.call('HSET', k, 'e', math.floor(now / w[2]), 'm', 1, 'r', 1, 'pm', 0, 'pr', 0)
    redis.call('PEXPIRE', k, ttl)
  end
  local k = string.gsub(ARGV[8], '@C@', c)
  redis.call('HSET', k, 'e', math.floor(now / 3600000), 'm', 1, 'r', 1, 'pm', 0, 'pr', 0)
  redis.call('PEXPIRE', k, ttl)
end
return 1
"""


def fill(redis, prefix, n, batch=20000):
    templates = [keynames.counter(w, "@C@") for w in "mhd"] + [
        keynames.counter("h", "@C@", "s0@@C@.example")]
    for lo in range(0, n, batch):
        hi = min(n, lo + batch) - 1
        out = redis.cli("EVAL", FILL, 0, prefix, lo, hi, 7200000, *templates)
        if out != "1":
            raise RuntimeError("fill failed: %s" % out)


def evalsha_usec(redis):
    for line in redis.cli("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_evalsha:"):
            for kv in line.split(":", 1)[1].split(","):
                k, _, v = kv.partition("=")
                if k == "usec_per_call":
                    return float(v)
    return float("nan")


def compare(a, load, small_n, big_n, rounds, msgs, duration):
    small, big = bl.Redis().start(), bl.Redis().start()
    t0 = time.monotonic()
    fill(small, "fcust", small_n)
    fill(big, "fcust", big_n)
    fill_secs = time.monotonic() - t0
    ms, mb = bl.Milter(a.milter, small).start(), bl.Milter(a.milter, big).start()
    sizes = {"small": small.dbsize(), "big": big.dbsize()}
    mem = {"small": small.used_memory(), "big": big.used_memory()}
    for m in (ms, mb):  # warm up: connections, pools, the script
        bl.milterload(load, m.spec, conns=4, msgs=200, customers=small_n,
                      prefix="fcust", duration=duration)
    cal = bl.milterload(load, ms.spec, conns=16, msgs=msgs // 2, customers=small_n,
                        prefix="fcust", duration=duration)
    paced = max(100, int(cal["rate"] / 4))
    got = {}
    offset = 0
    arms = ["small", "big", "big-cold"]
    for r in range(rounds):
        for which in arms[r % 3:] + arms[:r % 3]:
            redis, m = (small, ms) if which == "small" else (big, mb)
            for conns, rate in ((1, 0), (16, 0), (16, paced)):
                n = msgs // 4 if conns == 1 else msgs // 2 if rate else msgs
                if which != "big-cold":
                    # the same thousand active customers
                    customers, first = small_n, 0
                else:
                    # customers this run has not touched yet
                    customers, first = min(n, big_n), offset % max(1, big_n - n)
                    offset += n
                redis.cli("CONFIG", "RESETSTAT")
                res = bl.milterload(load, m.spec, conns=conns, msgs=n,
                                    customers=customers, first=first, prefix="fcust",
                                    duration=duration,
                                    extra=["-R", rate] if rate else [])
                res["evalsha_us"] = evalsha_usec(redis)
                got.setdefault((which, conns, rate), []).append(res)
    ms.stop()
    mb.stop()
    small.stop()
    big.stop()
    return got, sizes, mem, fill_secs, paced


def memory_per_sender(a, load, n, duration):
    r = bl.Redis().start()
    m = bl.Milter(a.milter, r).start()
    bl.milterload(load, m.spec, conns=2, msgs=50, customers=1, prefix="warm",
                  duration=duration)
    r.cli("FLUSHALL")
    before = r.used_memory()
    res1 = bl.milterload(load, m.spec, conns=8, msgs=n, customers=n, senders=1,
                         prefix="mem", duration=duration)
    keys1, mid = r.dbsize(), r.used_memory()
    res2 = bl.milterload(load, m.spec, conns=8, msgs=2 * n, customers=n, senders=2,
                         prefix="mem", duration=duration)
    keys2, after = r.dbsize(), r.used_memory()
    # what Redis says one key of each kind takes, as a cross-check
    # milterload logs in as mem0..., unmapped logins: customers sasl:mem0...
    ckey = keynames.counter("h", "sasl:mem0")
    skey = keynames.counter("h", "sasl:mem0", "s1@mem0.example")
    usage = {k: int(r.cli("MEMORY", "USAGE", k, "SAMPLES", "0") or 0) for k in (ckey, skey)}
    m.stop()
    r.stop()
    if res1["accepted"] != n or res2["accepted"] != 2 * n:
        raise RuntimeError("memory run: not every message was accepted")
    return {"n": n, "keys1": keys1, "keys2": keys2,
            "per_customer": (mid - before) / n, "per_sender": (after - mid) / n,
            "per_key": (mid - before) / max(1, keys1),
            "usage_customer_key": usage[ckey],
            "usage_sender_key": usage[skey]}


def rss_run(a, load, warm, n, duration):
    r = bl.Redis().start()
    m = bl.Milter(a.milter, r).start()
    bl.milterload(load, m.spec, conns=16, msgs=warm, customers=1000, senders=10,
                  duration=duration)
    res = bl.milterload(load, m.spec, conns=16, msgs=n, customers=1000, senders=10,
                        pids=[m.pid], duration=duration)
    m.stop()
    r.stop()
    return res


def back_to_zero(a, load, duration):
    r = bl.Redis().start()
    minute_only = {k: -1 for k in (
        "messages_per_hour", "messages_per_day", "recipients_per_hour",
        "recipients_per_day", "sender_messages_per_minute", "sender_messages_per_hour",
        "sender_messages_per_day", "sender_recipients_per_minute",
        "sender_recipients_per_hour", "sender_recipients_per_day")}
    m = bl.Milter(a.milter, r, settings={"limits": minute_only}).start()
    res = bl.milterload(load, m.spec, conns=8, msgs=2000, customers=500,
                        duration=duration)
    m.stop()  # traffic stops
    t0 = time.monotonic()
    peak = r.dbsize()
    while r.dbsize() > 0 and time.monotonic() - t0 < 200:
        time.sleep(5)
    left, secs = r.dbsize(), time.monotonic() - t0
    r.stop()
    return {"accepted": res["accepted"], "peak": peak, "left": left, "secs": secs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--milter", required=True)
    ap.add_argument("--milterload", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--long", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--big", type=int)
    ap.add_argument("--msgs", type=int)
    a = ap.parse_args()
    rounds = a.rounds or (1 if a.quick else 3)
    big_n = a.big or (20000 if a.quick else 1000000)
    msgs = a.msgs or (400 if a.quick else 20000)
    duration = 10 if a.quick else 120
    load = a.milterload

    la = bl.wait_for_quiet() if not a.quick else bl.loadavg()
    got, sizes, mem, fill_secs, paced = compare(a, load, 1000, big_n, rounds, msgs,
                                                duration)
    rows = []
    names = {"small": "%d keys (%d customers)" % (sizes["small"], 1000),
             "big": "%d keys, same 1000 active" % sizes["big"],
             "big-cold": "%d keys, a new customer per msg" % sizes["big"]}
    for conns, rate in ((1, 0), (16, 0), (16, paced)):
        run = "%d%s" % (conns, " at %d/s" % rate if rate else "")

        def med(which, k):
            return bl.median([x[k] for x in got[(which, conns, rate)]])
        for which in ("small", "big", "big-cold"):
            rows.append([names[which], run, "%.0f" % med(which, "rate"),
                         "%.0f" % med(which, "msg_p50"), "%.0f" % med(which, "msg_p99"),
                         "/".join("%.0f" % x["msg_p99"] for x in got[(which, conns, rate)]),
                         "%.1f" % med(which, "evalsha_us"),
                         "%.0f MB" % (mem["small" if which == "small" else "big"] / 1e6),
                         "%d" % sum(x.get("late", 0) for x in got[(which, conns, rate)])
                         if rate else "-"])
        for which in ("big", "big-cold"):
            ratio = med(which, "msg_p99") / med("small", "msg_p99")
            rows.append(["ratio %s / small" % which, run,
                         "%.2f" % (med(which, "rate") / med("small", "rate")),
                         "%.2f" % (med(which, "msg_p50") / med("small", "msg_p50")),
                         "%.2f" % ratio, "",
                         "%.2f" % (med(which, "evalsha_us") / med("small", "evalsha_us")),
                         "", ""])
            what = "%d conn%s%s" % (conns, "s" if conns > 1 else "",
                                    " at %d/s" % rate if rate else "")
            bl.record("scale", "%s: p99, %s / %d keys" % (what, names[which],
                                                           sizes["small"]),
                      "%.0f vs %.0f us = %.2f" % (med(which, "msg_p99"),
                                                  med("small", "msg_p99"), ratio),
                      "goal <= 1.10" if which == "big" else "")
            bl.record("scale", "%s: Redis us/EVALSHA, %s / small"
                      % (what, which), "%.1f / %.1f" % (med(which, "evalsha_us"),
                                                         med("small", "evalsha_us")))
    print(bl.table(
        "Scale: keys in Redis vs cost per message (median of %d round(s), %d messages "
        "per run at 16 conns, %d paced, %d at 1; fill took %.0f s)"
        % (rounds, msgs, msgs // 2, msgs // 4, fill_secs),
        ["keys in Redis", "conns", "msg/s", "msg p50 us", "msg p99 us",
         "p99 per round", "redis us/EVALSHA", "used_memory", "late starts"], rows))

    n = 500 if a.quick else 10000
    mp = memory_per_sender(a, load, n, duration)
    print()
    print("Memory: %d new customers with one sender each -> %d keys, %.0f bytes per "
          "customer (%.0f per key); %d more senders of those customers -> %d keys, "
          "%.0f bytes per added sender; MEMORY USAGE: %d bytes for a customer key, %d "
          "for a sender key" % (n, mp["keys1"], mp["per_customer"], mp["per_key"], n,
                                mp["keys2"], mp["per_sender"], mp["usage_customer_key"],
                                mp["usage_sender_key"]))
    bl.record("memory", "Redis bytes per active customer (4 keys)",
              "%.0f" % mp["per_customer"])
    bl.record("memory", "Redis bytes per added sender (1 key)", "%.0f" % mp["per_sender"],
              "MEMORY USAGE %d" % mp["usage_sender_key"])

    warm, big_run = (1000, 2000) if a.quick else (10000, 100000)
    rr = rss_run(a, load, warm, big_run, duration=600)
    print("Daemon RSS over %d messages (after %d of warm-up): %d kB -> %d kB (%+d kB)"
          % (rr["msgs"], warm, rr["rss0_before"], rr["rss0_after"],
             rr["rss0_after"] - rr["rss0_before"]))
    bl.record("memory", "daemon RSS over %d messages" % rr["msgs"],
              "%d -> %d kB" % (rr["rss0_before"], rr["rss0_after"]))

    if a.long:
        z = back_to_zero(a, load, duration)
        print("Minute windows only: %d messages left %d keys; DBSIZE %d after %.0f s "
              "without traffic" % (z["accepted"], z["peak"], z["left"], z["secs"]))
        bl.record("memory", "keys after traffic stops (minute limits only)",
                  "%d -> %d in %.0f s" % (z["peak"], z["left"], z["secs"]),
                  "goal 0 within ~2 min")
    else:
        print("Keys back to zero: skipped (--long)")
    la_end = bl.loadavg()
    print("load average: %.2f before, %.2f after" % (la, la_end))
    bl.record_load(SECTION, la, la_end)
    return 0


if __name__ == "__main__":
    sys.exit(main())
