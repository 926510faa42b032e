# SPDX-License-Identifier: BSD-2-Clause
"""test_redis_faults - relaymilter while its Redis dies or hangs.

    python3 test_redis_faults.py --milter build/relaymilter [-v] [-k PATTERN]

Each test starts its own redis-server (temp dir, free loopback port) and its
own relaymilter (connect_timeout_ms = command_timeout_ms = 100), drives a
steady stream of messages through the milter protocol from four client
threads (test/lib/milterclient.py), and then kills (SIGKILL) or hangs
(SIGSTOP) Redis and brings it back, checking doc/OPERATIONS, "Operations: when Redis
fails":
  - every milter answer comes within connect + command timeout + a margin;
  - on_store_error accept / tempfail (451 4.3.0) / local (a local_share of
    each limit, counted in memory) decides what messages get meanwhile;
  - the circuit opens ("circuit open"), answers are immediate while it is
    open, and it closes ("reachable again") once Redis answers;
  - enforcement through Redis resumes within 10 s of Redis being back;
  - the daemon never exits.
Measured numbers go to stderr, one "measured:" line per test.
"""

import argparse
import collections
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rharness as h  # noqa: E402
import keynames  # noqa: E402

MILTER = None
CONNECT_MS = COMMAND_MS = 100
BOUND_MS = CONNECT_MS + COMMAND_MS + 400   # generous: 2 busy cores
# A sanitizer build runs several times slower (scripts/sanitize.sh sets it).
BOUND_MS *= int(os.environ.get("RM_SLOW_FACTOR", "1"))
RESUME_S = 10.0
# While the circuit is open answers must not pay the command timeout; half
# of it separates "at once" from "waited" even on two busy cores.
FAST_MS = COMMAND_MS / 2
HEALTHY_S, OUTAGE_S = 1.5, 3.0
LOAD = ["load0", "load1", "load2", "load3"]
OVER = "overlimit"   # a customer Redis allows nothing (messages_per_minute 0)
OPEN_RX = r"failures in a row .*; circuit open"   # the transition, not decision lines



class FaultCase(unittest.TestCase):
    def setUp(self):
        self.work = h.mkworkdir("faults")
        self.addCleanup(h.rmworkdir, self.work)
        self.redis = h.Redis(self.work).start()
        self.addCleanup(self.redis.stop)

    def start_milter(self, mode, **kw):
        port = h.free_port()
        conf = h.write_milter_conf(port, self.redis.port, mode=mode, connect_ms=CONNECT_MS,
                                   command_ms=COMMAND_MS, **kw)
        self.milter = h.Milter(MILTER, self.work, conf, port)
        self.addCleanup(self.milter.stop)
        self.milter.start()
        return self.milter

    def start_load(self, customers=LOAD):
        load = h.Load(self.milter.address, customers).start()
        self.addCleanup(load.stop)
        return load

    def log_tail(self):
        return "\nmilter log tail:\n" + self.milter.tail()

    def check_common(self, records):
        """Bounded answers, no protocol failure, the daemon alive."""
        errors = [r for r in records if r.error]
        self.assertEqual(errors[:5], [], "client errors (timeouts, closed)" + self.log_tail())
        n, mx, p99, p50 = h.answer_stats(records)
        self.assertGreater(n, 100, "too little traffic to judge")
        slow = sorted((max(r.answers), r.qid, r.stage, r.text) for r in records
                      if r.answers and max(r.answers) * 1000 >= BOUND_MS)
        self.assertEqual(slow[-5:], [], "answers slower than %d ms" % BOUND_MS)
        self.assertTrue(self.milter.alive(), "relaymilter exited" + self.log_tail())
        return n, mx, p99, p50

    def wait_redis_enforcing(self, t_up, customers):
        """After a restart: seconds until the over-limit customer is refused
        through Redis (4.7.1 naming Redis's limit 0), and until every load
        customer has a counter in Redis again. Also returns the probes."""
        h.redis_cmd(self.redis.port, "HSET", "relay:limits:sasl:" + OVER,
                    "messages_per_minute", "0")
        probes, refused_at, counted_at, n = [], None, None, 0
        while time.monotonic() < t_up + RESUME_S and (refused_at is None or
                                                      counted_at is None):
            if refused_at is None:
                n += 1
                rec = h.send_one(self.milter.address, OVER, "P%d" % n)
                probes.append(rec)
                if rec.verdict == "tempfail" and rec.text.startswith("451 4.7.1") and \
                        "messages_per_minute 0 for sasl:%s" % OVER in rec.text:
                    refused_at = rec.t_end
            if counted_at is None:
                counts = [h.redis_try(self.redis.port, "HGET",
                                       keynames.counter("m", "sasl:" + c), "m")
                          for c in customers]
                if all(c is not None and int(c) > 0 for c in counts):
                    counted_at = time.monotonic()
            time.sleep(0.05)
        return refused_at, counted_at, probes

    # --- Redis killed -----------------------------------------------------------
    def run_kill(self, mode, per_minute=1000000, local_share=None):
        self.start_milter(mode, per_minute=per_minute, local_share=local_share)
        load = self.start_load()
        time.sleep(HEALTHY_S)
        t_kill = time.monotonic()
        self.redis.kill(signal.SIGKILL)
        time.sleep(OUTAGE_S)
        self.assertTrue(self.milter.alive(), "relaymilter exited" + self.log_tail())
        t_restart = time.monotonic()
        self.redis.start()
        t_up = time.monotonic()
        refused_at, counted_at, probes = self.wait_redis_enforcing(t_up, LOAD)
        time.sleep(0.3)
        records = load.stop()
        n, mx, p99, p50 = self.check_common(records + probes)
        during = [r for r in records if r.t_start > t_kill and r.t_end < t_restart]
        before = [r for r in records if r.t_end < t_kill]
        opened = self.milter.grep(OPEN_RX, t_kill)
        h.report("kill/%s" % mode,
               "%d messages (%d while down), %d answers: max %.1f ms, p99 %.1f ms, "
               "p50 %.2f ms (bound %d ms); circuit open %s s after the kill; Redis "
               "enforcing again %s s, counters back %s s after restart"
               % (len(records), len(during), n, mx, p99, p50, BOUND_MS,
                  "%.2f" % (opened[0][0] - t_kill) if opened else "never",
                  "%.2f" % (refused_at - t_up) if refused_at else "never",
                  "%.2f" % (counted_at - t_up) if counted_at else "never"))
        self.assertTrue(before and during, "no traffic before or during the outage")
        self.assertTrue(opened, "no \"circuit open\" in the log" + self.log_tail())
        self.assertIsNotNone(refused_at, "a message over a Redis limit was not refused "
                             "within %.0f s of Redis restarting: %r%s"
                             % (RESUME_S, probes[-3:], self.log_tail()))
        self.assertIsNotNone(counted_at, "counters did not reappear in Redis within "
                             "%.0f s" % RESUME_S)
        return records, before, during, t_kill, t_restart

    def test_kill_accept(self):
        records, before, during, _, _ = self.run_kill("accept")
        bad = [r for r in records if r.verdict != "accept"]
        self.assertEqual(bad[:5], [], "on_store_error=accept refused messages")
        lines = self.milter.grep(r"action=accept reason=store_error")
        self.assertTrue(lines, "no store_error decision lines" + self.log_tail())

    def test_kill_tempfail(self):
        records, before, during, _, _ = self.run_kill("tempfail")
        self.assertEqual([r for r in before if r.verdict != "accept"][:5], [])
        bad = [r for r in during if not (r.verdict == "tempfail" and
                                         r.text.startswith("451 4.3.0"))]
        self.assertEqual(bad[:5], [], "while Redis was down, a message got something "
                         "other than 451 4.3.0")
        other = [r for r in records if r.verdict != "accept" and
                 not r.text.startswith("451 4.3.0")]
        self.assertEqual(other[:5], [], "refusals other than 451 4.3.0")

    def test_kill_local(self):
        # messages_per_minute 8, local_share 0.25: 2 per customer while down.
        records, before, during, t_kill, t_restart = self.run_kill(
            "local", per_minute=8, local_share=0.25)
        local_ok = collections.Counter()
        for t, ln in self.milter.grep(r"action=accept reason=store_error fallback=local",
                                      t_kill):
            for c in LOAD + [OVER]:
                if " customer=sasl:%s " % c in ln:
                    local_ok[c] += 1
        refused = self.milter.grep(r"action=tempfail reason=\S+ fallback=local", t_kill)
        admitted = collections.Counter(r.customer for r in during if r.verdict == "accept")
        h.report("kill/local", "admitted locally per customer (log) %s, (client, while "
               "down) %s; %d refused locally"
               % (dict(local_ok), dict(admitted), len(refused)))
        self.assertTrue(all(v <= 2 for v in local_ok.values()),
                        "more than 2 (8 * 0.25) admitted locally: %s" % dict(local_ok))
        self.assertTrue(all(v <= 2 for v in admitted.values()), dict(admitted))
        self.assertTrue(all(local_ok[c] >= 1 for c in LOAD),
                        "the local fallback admitted nothing: %s" % dict(local_ok))
        self.assertTrue(refused, "nothing refused by the local limit" + self.log_tail())
        wrong = [r for r in during if r.verdict != "accept" and
                 not r.text.startswith("451 4.7.1")]
        self.assertEqual(wrong[:5], [], "local mode: refusals other than 451 4.7.1")

    # --- Redis hung ---------------------------------------------------------------
    def test_hang_tempfail(self):
        m = self.start_milter("tempfail")
        load = self.start_load()
        try:
            time.sleep(HEALTHY_S)
            t_stop = time.monotonic()
            self.redis.kill(signal.SIGSTOP)
            opened = m.wait_log(OPEN_RX, 5.0, t_stop)
            self.assertIsNotNone(opened, "the circuit did not open" + self.log_tail())
            time.sleep(2.5)
            t_cont = time.monotonic()
        finally:
            self.redis.kill(signal.SIGCONT)
        closed = m.wait_log(r"reachable again", RESUME_S, t_cont)
        self.assertIsNotNone(closed, "the circuit did not close within %.0f s of SIGCONT"
                             % RESUME_S + self.log_tail())
        time.sleep(0.5)
        records = load.stop()
        n, mx, p99, p50 = self.check_common(records)
        t_open = opened[0]
        hung = [r for r in records if r.t_start > t_stop and r.t_end < t_cont]
        while_open = [a * 1000 for r in records if t_open < r.t_start and r.t_end < t_cont
                      for a in r.answers]
        fast = sum(1 for a in while_open if a < FAST_MS)
        after = [r for r in records if r.t_start > closed[0] + 0.2]
        opens = m.grep(OPEN_RX, t_stop)
        h.report("hang/tempfail",
               "%d answers: max %.1f ms, p99 %.1f ms (bound %d ms); circuit open %.2f s "
               "after SIGSTOP; while open %d answers, %d under %d ms, p50 %.2f ms, max "
               "%.1f ms (probes); closed %.2f s after SIGCONT; %d probe-failed lines"
               % (n, mx, p99, BOUND_MS, t_open - t_stop, len(while_open), fast, FAST_MS,
                  h.percentile(while_open, 50), max(while_open, default=0),
                  closed[0] - t_cont, len(m.grep(r"probe failed", t_stop))))
        self.assertTrue(hung and after, "no traffic while hung or after")
        bad = [r for r in hung if not (r.verdict == "tempfail" and
                                       r.text.startswith("451 4.3.0"))]
        self.assertEqual(bad[:5], [], "while Redis hung, not 451 4.3.0")
        self.assertGreater(len(while_open), 20)
        self.assertGreaterEqual(fast, 0.8 * len(while_open),
                                "answers were not immediate while the circuit was open")
        self.assertEqual(len([o for o in opens if o[0] < t_cont]), 1,
                         "\"circuit open\" logged more than once for one outage")
        self.assertEqual([r for r in after if r.verdict != "accept"][:5], [],
                         "messages refused after the circuit closed")
        # A charge that timed out while Redis hung still runs when it resumes:
        # the message got 451 4.3.0 yet is counted. At most one per pooled
        # connection that was in flight when Redis stopped.
        accepted = collections.Counter(r.customer for r in records if r.verdict == "accept")
        counted = {c: int(h.redis_try(self.redis.port, "HGET",
                                         keynames.counter("d", "sasl:" + c), "m") or 0)
                   for c in LOAD}
        phantom = sum(counted[c] - accepted[c] for c in LOAD)
        h.report("hang/tempfail", "day counters in Redis %s vs accepted %s: %d charges for "
               "refused messages" % (counted, dict(accepted), phantom))
        self.assertTrue(all(counted[c] >= accepted[c] for c in LOAD),
                        "accepted messages missing from the counters")
        self.assertLessEqual(phantom, 8, "more refused messages charged than connections "
                             "in flight (pool_size 8)")
        rc, took = m.terminate()
        h.report("hang/tempfail", "SIGTERM afterwards: exit status %s after %.1f s"
               % (rc, took))
        self.assertEqual(rc, 0, "relaymilter did not stop cleanly on SIGTERM")


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
