# SPDX-License-Identifier: BSD-2-Clause
"""test_sentinel - relaymilter follows a Redis Sentinel failover.

    python3 test_sentinel.py --milter build/relaymilter [-v] [-k PATTERN]

Each test starts, all on loopback with private ports and temp dirs: a Redis
primary, a replica (replicaof), three sentinels (monitor mymaster quorum 2,
down-after-milliseconds 1000, failover-timeout 3000, parallel-syncs 1) and a
relaymilter with redis.sentinels/master and on_store_error = "tempfail",
then drives a steady stream of messages from four client threads.

  test_primary_killed   SIGKILL the primary; the sentinels promote the
      replica; the milter logs 'primary for "mymaster" is 127.0.0.1:NEW', its
      counters land on the new primary within a few seconds of the
      promotion, messages get 451 4.3.0 only inside that window, and every
      one of them is accepted when sent again afterwards.
  test_demoted_primary_readonly   SENTINEL FAILOVER promotes the replica; the
      old primary is then made a replica of it (what the sentinels do to a
      returning old primary), so the milter's pooled connections get
      READONLY: a store error (451 4.3.0), after which the milter asks the
      sentinels again and moves to the new primary.
Measured numbers go to stderr, one "measured:" line per test.
"""

import argparse
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rharness as h  # noqa: E402
import keynames  # noqa: E402
import milterclient as mc  # noqa: E402

MILTER = None
CONNECT_MS = COMMAND_MS = 100
BOUND_MS = 600               # every answer; 3 sentinels may each cost a timeout
# A sanitizer build runs several times slower (scripts/sanitize.sh sets it).
BOUND_MS *= int(os.environ.get("RM_SLOW_FACTOR", "1"))
FAILOVER_S = 30.0            # kill -> sentinels promote (down-after 1 s + election)
# promotion -> counters on the new primary: the milter's back-off (at most
# 2-4 s by then) and the sentinels spreading the new config (hello, 2 s) may
# each cost a round; generous for two busy cores.
FOLLOW_S = 10.0
LOAD = ["load0", "load1", "load2", "load3"]



def role(port):
    r = h.redis_try(port, "ROLE")
    return r[0] if r else None



class SentinelCase(unittest.TestCase):
    def setUp(self):
        self.work = h.mkworkdir("sentinel")
        self.addCleanup(h.rmworkdir, self.work)
        self.primary = h.Redis(self.work).start()
        self.addCleanup(self.primary.stop)
        self.replica = h.Redis(self.work, args=["--replicaof", "127.0.0.1",
                                                str(self.primary.port)]).start()
        self.addCleanup(self.replica.stop)
        self.assertTrue(h.wait_for(lambda: "master_link_status:up" in (h.redis_try(
            self.replica.port, "INFO", "replication") or ""), 10.0),
            "the replica did not sync")
        self.sentinels = []
        for _ in range(3):
            s = h.Sentinel(self.work, self.primary.port, quorum=2, down_after=1000,
                           failover_timeout=3000)
            self.addCleanup(s.stop)
            self.sentinels.append(s.start())
        t0 = time.monotonic()

        def ready():
            infos = [s.master_info() for s in self.sentinels]
            return all(i.get("num-slaves") == "1" and i.get("num-other-sentinels") == "2"
                       for i in infos)
        self.assertTrue(h.wait_for(ready, 20.0, 0.1),
                        "the sentinels did not discover each other and the replica")
        self.setup_s = time.monotonic() - t0
        port = h.free_port()
        conf = h.write_milter_conf(port, mode="tempfail", connect_ms=CONNECT_MS,
                                   command_ms=COMMAND_MS,
                                   sentinels=[s.port for s in self.sentinels])
        self.milter = h.Milter(MILTER, self.work, conf, port)
        self.addCleanup(self.milter.stop)
        self.milter.start()
        rec = h.send_one(self.milter.address, "warmup", "W1")
        self.assertEqual(rec.verdict, "accept", repr(rec) + self.log_tail())
        self.assertTrue(self.milter.grep(
            r'primary for "mymaster" is 127\.0\.0\.1:%d' % self.primary.port),
            "the milter did not log the primary" + self.log_tail())

    def log_tail(self):
        return "\nmilter log tail:\n" + self.milter.tail()

    def counters(self, port):
        """(e, m) of every load customer's day counter: it changes only when
        the milter writes to that server."""
        return [tuple(h.redis_try(port, "HMGET", keynames.counter("d", "sasl:" + c), "e", "m") or ())
                for c in LOAD]

    def wait_counters_land(self, port, base, timeout):
        t = h.wait_for(lambda: self.counters(port) != base and time.monotonic(), timeout)
        return t

    def check_answers(self, records):
        errors = [r for r in records if r.error]
        self.assertEqual(errors[:5], [], "client errors" + self.log_tail())
        n, mx, p99, p50 = h.answer_stats(records)
        slow = [(max(r.answers), r.qid, r.stage, r.text) for r in records
                if r.answers and max(r.answers) * 1000 >= BOUND_MS]
        self.assertEqual(slow[:5], [], "answers slower than %d ms" % BOUND_MS)
        self.assertTrue(self.milter.alive(), "relaymilter exited" + self.log_tail())
        return n, mx, p99

    def check_refusals(self, records, start, end):
        """Refusals are 451 4.3.0 and lie in [start, end]; every refused
        message is accepted when sent again. Returns (count, window)."""
        refused = [r for r in records if r.verdict != "accept"]
        wrong = [r for r in refused if not r.text.startswith("451 4.3.0")]
        self.assertEqual(wrong[:5], [], "refusals other than 451 4.3.0")
        outside = [r for r in refused if r.t_end < start or r.t_start > end]
        self.assertEqual(outside[:5], [], "refused outside the failover window")
        window = (max(r.t_end for r in refused) - min(r.t_start for r in refused)
                  if refused else 0.0)
        lost = []
        with mc.MilterClient(self.milter.address, timeout=5.0) as c:
            c.connect_info(addr="198.51.100.50", port=42000)
            for i, r in enumerate(refused):
                res = c.send_message(r.sender, ["again@dest.example"], login=r.customer,
                                     qid="R%d" % i)
                if res.verdict != "accept":
                    lost.append((r.qid, res))
        self.assertEqual(lost[:5], [], "%d of %d refused messages were not accepted "
                         "when sent again" % (len(lost), len(refused)))
        return len(refused), window

    def test_primary_killed(self):
        m, new = self.milter, self.replica.port
        load = h.Load(m.address, LOAD).start()
        self.addCleanup(load.stop)
        time.sleep(1.5)
        t_kill = time.monotonic()
        self.primary.kill(signal.SIGKILL)
        t_prom = h.wait_for(lambda: role(new) == "master" and time.monotonic(), FAILOVER_S)
        self.assertTrue(t_prom, "the sentinels did not promote the replica within "
                        "%.0f s" % FAILOVER_S)
        base = self.counters(new)
        t_land = self.wait_counters_land(new, base, FOLLOW_S)
        follow = m.wait_log(r'primary for "mymaster" is 127\.0\.0\.1:%d' % new, 1.0,
                            t_kill)
        time.sleep(1.0)
        records = load.stop()
        n, mx, p99 = self.check_answers(records)
        self.assertIsNotNone(follow, "the milter did not log the new primary" +
                             self.log_tail())
        self.assertTrue(t_land, "no counter landed on the new primary within %.0f s of "
                        "the promotion" % FOLLOW_S)
        t_follow = follow[0]
        after = [r for r in records if r.t_start > t_follow + 0.5]
        self.assertTrue(after and all(r.verdict == "accept" for r in after),
                        "messages after the milter followed were not all accepted")
        count, window = self.check_refusals(records, t_kill, t_follow + 0.5)
        h.report("sentinel/kill",
               "%d messages, %d answers: max %.1f ms, p99 %.1f ms (bound %d ms); sentinel "
               "setup %.1f s; promoted %.2f s after the kill; milter followed %.2f s, "
               "counters on the new primary %.2f s after the promotion; %d messages "
               "got 451 4.3.0 over a %.2f s window, all accepted when sent again"
               % (len(records), n, mx, p99, BOUND_MS, self.setup_s, t_prom - t_kill,
                  t_follow - t_prom, t_land - t_prom, count, window))
        self.assertTrue(self.milter.alive())

    def test_demoted_primary_readonly(self):
        m, old, new = self.milter, self.primary.port, self.replica.port
        load = h.Load(m.address, LOAD).start()
        self.addCleanup(load.stop)
        time.sleep(1.0)
        t_fo = time.monotonic()
        h.redis_cmd(self.sentinels[0].port, "SENTINEL", "FAILOVER", "mymaster")
        t_prom = h.wait_for(lambda: role(new) == "master" and time.monotonic(), 15.0)
        self.assertTrue(t_prom, "SENTINEL FAILOVER did not promote the replica")
        self.assertTrue(h.wait_for(lambda: all(s.master_addr() == ("127.0.0.1", new)
                                             for s in self.sentinels), 10.0),
                        "the sentinels do not agree on the new primary")
        base = self.counters(new)
        t_dem = time.monotonic()
        h.redis_cmd(old, "REPLICAOF", "127.0.0.1", str(new))
        ro = m.wait_log(r"READONLY", 5.0, t_dem)
        follow = m.wait_log(r'primary for "mymaster" is 127\.0\.0\.1:%d' % new, 10.0,
                            t_dem)
        t_land = self.wait_counters_land(new, base, FOLLOW_S)
        time.sleep(1.0)
        records = load.stop()
        n, mx, p99 = self.check_answers(records)
        self.assertIsNotNone(ro, "no READONLY store error logged after the demotion" +
                             self.log_tail())
        self.assertIsNotNone(follow, "the milter did not ask the sentinels again and "
                             "move to the new primary" + self.log_tail())
        self.assertTrue(t_land, "no counter landed on the new primary")
        self.assertEqual(role(old), "slave")
        count, window = self.check_refusals(records, t_dem, follow[0] + 0.5)
        h.report("sentinel/readonly",
               "%d messages, %d answers: max %.1f ms, p99 %.1f ms; promoted %.2f s after "
               "SENTINEL FAILOVER; after REPLICAOF on the old primary: READONLY "
               "logged %.2f s, new primary used %.2f s, counters landed %.2f s later; "
               "%d messages got 451 4.3.0 over a %.2f s window, all accepted when sent "
               "again" % (len(records), n, mx, p99, t_prom - t_fo, ro[0] - t_dem,
                          follow[0] - t_dem, t_land - t_dem, count, window))


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt  # a ctest timeout: clean up like ^C


def main():
    global MILTER
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--milter", default=os.environ.get("RM_MILTER"),
                    help="the relaymilter binary (default: $RM_MILTER)")
    args, rest = ap.parse_known_args()
    if not args.milter:
        ap.error("--milter PATH is required")
    MILTER = os.path.abspath(args.milter)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        prog = unittest.main(module="__main__", argv=[sys.argv[0]] + rest, exit=False,
                             verbosity=2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 143
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
