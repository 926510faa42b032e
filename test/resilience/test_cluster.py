#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""test_cluster - relaymilter on a Redis Cluster, under load.

    python3 test_cluster.py --milter build/relaymilter [-v] [-k PATTERN]

Each test starts its own Redis Cluster on loopback (test/lib/rcluster.py:
three primaries, three replicas, cluster-node-timeout 2 s,
cluster-require-full-coverage no) and relaymilter with redis.cluster_nodes
and on_store_error = "tempfail", so that a store error shows as 451 4.3.0,
and sends messages from SASL customers spread over all three primaries
through the milter protocol (test/lib/milterclient.py), one thread and one
milter connection each:

  test_exact_two_milters  two milters, 16 connections each, six customers
      over the three primaries, messages_per_hour 40: each customer gets
      exactly 40 messages through, and its counter (on its node) says 40.
  test_failover_manual    CLUSTER FAILOVER on a replica under load.
  test_failover_kill      SIGKILL of a primary under load.
      In both: the customers of the other primaries get no error at all;
      those of the failed one get 451 4.3.0 only inside a bounded window
      (FAILOVER_S), after which they are accepted again without a restart;
      no customer is counted more than it was admitted (plus the store
      errors, whose call may have reached Redis): nothing is charged twice.
  test_reshard            redis-cli --cluster reshard of slots holding
      customers, then one customer's slot moved by hand, key by key, while
      it sends (command_timeout_ms 500, the time TRYAGAIN is tried again):
      no store error and no refusal, every counter equals what was
      admitted, and the milter's metrics count MOVED, ASK and TRYAGAIN.
Measured numbers go to stderr, one "measured:" line per test.
"""

import argparse
import collections
import os
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rharness as h  # noqa: E402
import keynames  # noqa: E402
import rcluster  # noqa: E402

MILTER = None
CONNECT_MS = COMMAND_MS = 100
# every answer: connect + command timeout, and a slot map read, on busy cores
BOUND_MS = 1000 * int(os.environ.get("RM_SLOW_FACTOR", "1"))
# a primary killed -> its replica serving: node timeout 2 s, the election,
# the milter's back-off (up to 2-4 s) and a slot map read; generous
FAILOVER_S = 20.0
LIMIT = 40



def metric_sum(text, name, label=""):
    """The sum of a metric's samples (those whose labels hold label)."""
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
               if ln.startswith(name + "{") and label in ln)



class ClusterCase(unittest.TestCase):
    def setUp(self):
        self.work = h.mkworkdir("cluster")
        self.addCleanup(h.rmworkdir, self.work)
        self.cluster = rcluster.Cluster(os.path.join(self.work, "cluster"))
        self.addCleanup(self.cluster.stop)
        self.cluster.start()
        self.milters = []

    def start_milter(self, per_hour=10000000, metrics_port=None, tag="m",
                     command_ms=COMMAND_MS):
        port = h.free_port()
        extra = ('metrics = { listen = "127.0.0.1:%d"; };' % metrics_port
                 if metrics_port else "")
        conf = h.write_milter_conf(port, mode="tempfail", connect_ms=CONNECT_MS,
                                   command_ms=command_ms, cluster=self.cluster.seeds(),
                                   per_hour=per_hour, extra=extra)
        m = h.Milter(MILTER, os.path.join(self.work, tag), conf, port)
        self.addCleanup(m.stop)
        self.milters.append(m.start())
        return m

    def log_tail(self):
        return "".join("\n%s log tail:\n%s" % (m.dir, m.tail()) for m in self.milters)

    # ---- customers -------------------------------------------------------------
    def key(self, login, w="d"):
        return keynames.counter(w, "sasl:" + login)

    def logins_on(self, port, n, tag, slot_range=None):
        """n logins whose counters live on the primary at port (within
        slot_range, when given)."""
        out, i = [], 0
        while len(out) < n:
            login = "%s%d" % (tag, i)
            slot = self.cluster.keyslot(self.key(login))
            if (self.cluster.primary_of(slot) == port and
                    (slot_range is None or slot in slot_range)):
                out.append(login)
            i += 1
            self.assertLess(i, 5000, "no login lands on %d" % port)
        return out

    def counted(self, login, w="d"):
        v = self.cluster.cli_c("HGET", self.key(login, w), "m")
        return int(v) if v else 0

    # ---- checks ----------------------------------------------------------------
    def check_answers(self, records):
        errors = [r for r in records if r.error]
        self.assertEqual(errors[:5], [], "client errors" + self.log_tail())
        n, mx, p99, p50 = h.answer_stats(records)
        slow = [(max(r.answers), r.customer, r.stage, r.text) for r in records
                if r.answers and max(r.answers) * 1000 >= BOUND_MS]
        self.assertEqual(slow[:5], [], "answers slower than %d ms" % BOUND_MS)
        for m in self.milters:
            self.assertTrue(m.alive(), "relaymilter exited" + self.log_tail())
        return n, mx, p99

    def check_no_double_charge(self, records, logins):
        """counted <= admitted + store errors (a failed call may still have
        been carried out by Redis); returns {login: (admitted, counted)}."""
        accepted = collections.Counter(r.customer for r in records if r.verdict == "accept")
        store_err = collections.Counter(r.customer for r in records
                                        if r.verdict != "accept")
        out = {}
        for c in logins:
            got = self.counted(c)
            self.assertLessEqual(got, accepted[c] + store_err[c],
                                 "%s counted %d, admitted %d, %d store errors"
                                 % (c, got, accepted[c], store_err[c]))
            out[c] = (accepted[c], got)
        return out

    def day_boundary_guard(self):
        """The counters checked are the day's: stay clear of midnight (UTC)."""
        left = 86400 - time.time() % 86400
        if left < 120:
            time.sleep(left + 2)

    # ---- tests -------------------------------------------------------------------
    def test_exact_two_milters(self):
        left = 3600 - time.time() % 3600  # the hour window must not turn meanwhile
        if left < 90:
            time.sleep(left + 2)
        logins = []
        for p in self.cluster.primaries():
            logins += self.logins_on(p, 2, "ex%d-" % p)
        m1 = self.start_milter(per_hour=LIMIT, tag="m1")
        m2 = self.start_milter(per_hour=LIMIT, tag="m2")
        conns = [logins[i % len(logins)] for i in range(16)]
        t0 = time.monotonic()
        loads = [h.Load(m.address, conns, pause=0.0, tag=t).start()
                 for m, t in ((m1, "A"), (m2, "B"))]
        for ld in loads:
            self.addCleanup(ld.stop)

        def all_refused():
            recs = [r for ld in loads for r in ld.snapshot()]
            refused = collections.Counter(r.customer for r in recs if r.verdict != "accept")
            return all(refused[c] >= 5 for c in logins)
        done = h.wait_for(all_refused, 90.0, 0.2)
        records = [r for ld in loads for r in ld.stop()]
        took = time.monotonic() - t0
        self.assertTrue(done, "not every customer reached its limit" + self.log_tail())
        self.check_answers(records)
        accepted = collections.Counter(r.customer for r in records if r.verdict == "accept")
        wrong = [r for r in records if r.verdict != "accept" and
                 "quota exceeded: messages_per_hour %d" % LIMIT not in r.text]
        self.assertEqual(wrong[:3], [], "refusals other than the hour quota")
        for c in logins:
            self.assertEqual(accepted[c], LIMIT, "%s: %d admitted" % (c, accepted[c]))
            self.assertEqual(self.counted(c, "h"), LIMIT, "%s: counter" % c)
        h.report("exact_two_milters", "%d messages in %.1f s, 2 milters x 16 connections, "
               "%d customers on %d primaries: each admitted exactly %d"
               % (len(records), took, len(logins), len(self.cluster.primaries()), LIMIT))

    def failover(self, kill):
        self.day_boundary_guard()
        primaries = self.cluster.primaries()
        logins = {p: self.logins_on(p, 2, "fo%d-" % p) for p in primaries}
        victim = primaries[0]
        replica = next(r for r in self.cluster.replicas()
                       if self.cluster.info(r, "replication").get("master_port") ==
                       str(victim))
        self.start_milter()
        everyone = [c for p in primaries for c in logins[p]]
        load = h.Load(self.milters[0].address, everyone, pause=0.01).start()
        self.addCleanup(load.stop)
        time.sleep(3.0)  # every customer looked up, its staff keys read
        t_fail = time.monotonic()
        if kill:
            self.cluster.kill(victim)
        else:
            self.cluster.failover(replica)
        self.assertTrue(h.wait_for(lambda: self.cluster.role(replica) == "master", 30.0, 0.1),
                        "the replica was not promoted")
        t_promoted = time.monotonic()

        def resumed():
            recs = [r for r in load.snapshot() if r.customer in logins[victim]]
            late = [r for r in recs if r.t_start > time.monotonic() - 1.0]
            return late and all(r.verdict == "accept" for r in late)
        self.assertTrue(h.wait_for(resumed, FAILOVER_S, 0.1),
                        "the failed shard's customers were not accepted again"
                        + self.log_tail())
        time.sleep(1.0)
        records = load.stop()
        self.check_answers(records)
        others = [r for r in records if r.customer not in logins[victim]]
        self.assertEqual([r for r in others if r.verdict != "accept"][:5], [],
                         "customers of healthy primaries were refused" + self.log_tail())
        refused = [r for r in records if r.verdict != "accept"]
        self.assertEqual([r for r in refused if not r.text.startswith("451 4.3.0")][:5], [],
                         "refusals other than on_store_error")
        window = max((r.t_end for r in refused), default=t_fail) - t_fail
        self.assertLess(window, FAILOVER_S, "store errors for %.1f s" % window)
        counts = self.check_no_double_charge(records, everyone)
        for p in primaries[1:]:
            for c in logins[p]:
                self.assertEqual(counts[c][0], counts[c][1], "%s: admitted != counted" % c)
        return (len(records), len(refused), window, t_promoted - t_fail)

    def test_failover_manual(self):
        n, refused, window, promoted = self.failover(kill=False)
        h.report("failover_manual", "%d messages; CLUSTER FAILOVER took %.1f s; %d store "
               "errors within %.2f s, all on the failed-over shard" % (n, promoted, refused,
                                                                      window))

    def test_failover_kill(self):
        n, refused, window, promoted = self.failover(kill=True)
        h.report("failover_kill", "%d messages; replica promoted %.1f s after SIGKILL; %d "
               "store errors within %.2f s, all on the dead shard" % (n, promoted, refused,
                                                                      window))

    def test_reshard(self):
        self.day_boundary_guard()
        c = self.cluster
        src, dst = c.primaries()[0], c.primaries()[1]
        first = min(rng[0] for rng in c.slots() if rng[2] == src)
        moved_range = range(first, first + 300)
        logins = self.logins_on(src, 2, "rs-", moved_range)
        for p in c.primaries():
            logins += self.logins_on(p, 1, "st%d-" % p)
        mport = h.free_port()
        # TRYAGAIN is tried again for up to command_timeout_ms: more than a
        # busy machine may take between two MIGRATEs of the test
        self.start_milter(metrics_port=mport, command_ms=500)
        load = h.Load(self.milters[0].address, logins, pause=0.005).start()
        self.addCleanup(load.stop)
        time.sleep(2.0)
        out = c.reshard(src, dst, len(moved_range))
        self.assertEqual([lg for lg in logins[:2] if c.primary_of(c.keyslot(self.key(lg)))
                          != dst], [], "reshard did not move the customers' slots:\n" + out)
        # by hand, key by key: TRYAGAIN between the keys, ASK after, MOVED at last
        hot = logins[-1]
        keys = [self.key(hot, w) for w in "mhd"] + [
            keynames.counter("h", "sasl:" + hot, "user@%s.example" % hot)]
        frm = c.primary_of(c.keyslot(keys[0]))
        to = next(p for p in c.primaries() if p != frm)
        c.move_slot_by_hand(c.keyslot(keys[0]), frm, to, keys, pause=0.025)
        time.sleep(1.0)
        records = load.stop()
        self.check_answers(records)
        self.assertEqual([r for r in records if r.verdict != "accept"][:5], [],
                         "refusals while resharding" + self.log_tail())
        counts = self.check_no_double_charge(records, logins)
        for lg, (admitted, counted) in counts.items():
            self.assertEqual(admitted, counted, "%s: admitted %d, counted %d"
                             % (lg, admitted, counted))
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                      timeout=5).read().decode()
        seen = {"moved": metric_sum(text, "relaymilter_redis_node_redirects_total", "moved"),
                "ask": metric_sum(text, "relaymilter_redis_node_redirects_total", "ask"),
                "tryagain": metric_sum(text, "relaymilter_redis_node_tryagain_total")}
        for kind, n in seen.items():
            self.assertGreater(n, 0, "no %s counted" % kind)
        h.report("reshard", "%d messages, no error; %d slots resharded, one moved by hand; "
               "MOVED %d, ASK %d, TRYAGAIN %d" % (len(records), len(moved_range),
                                                  seen["moved"], seen["ask"],
                                                  seen["tryagain"]))


def main():
    global MILTER
    ap = argparse.ArgumentParser()
    ap.add_argument("--milter", required=True)
    args, rest = ap.parse_known_args()
    MILTER = os.path.abspath(args.milter)
    prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
