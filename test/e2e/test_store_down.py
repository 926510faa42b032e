#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""test_store_down - what SMTP clients see while Redis is down or hung.

    /usr/bin/python3 test_store_down.py --milter PATH [unittest options]

Needs root (Postfix). Starts its own redis-server (127.0.0.1, a free port, a
temp dir), which the tests stop, restart on the same port, and pause with
SIGSTOP; one private Postfix + relaymilter serves all tests, the milter
reloaded with each test's on_store_error. Every SMTP round (MAIL FROM to the
reply after DATA) is timed while Redis is unusable and must stay bounded.
"""

import os
import re
import smtplib
import sys
import time
import unittest
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_main  # noqa: E402
import keynames  # noqa: E402
from harness_conf import wait_until  # noqa: E402
from postfix_harness import Harness  # noqa: E402
from private_redis import PrivateRedis  # noqa: E402

CONNECT_MS, COMMAND_MS = 200, 200
ROUND_BOUND = 2.0     # seconds, MAIL FROM .. reply after DATA, through Postfix
RECOVERY_BOUND = 10.0  # seconds from Redis answering again to mail through Redis
BASE = {
    "redis": {"connect_timeout_ms": CONNECT_MS, "command_timeout_ms": COMMAND_MS,
              "pool_size": 4},
    "limits": {"messages_per_minute": 100, "recipients_per_minute": 1000},
}
RCPTS = ["one@example.net", "two@example.org"]
TIMINGS = []  # (what, [seconds]), printed at the end


@dataclass
class Round:
    stage: str                  # accepted | mail | rcpt | data
    code: int
    text: str
    times: dict = field(default_factory=dict)  # mail, rcpt (slowest), data, total
    queue_id: str = None


def merged(*dicts):
    out = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = merged(out[k], v) if isinstance(v, dict) and k in out else v
    return out


class StoreDown(unittest.TestCase):
    h = None
    r = None

    @classmethod
    def setUpClass(cls):
        cls.r = PrivateRedis()
        try:
            cls.r.start()
            cls.h = Harness(e2e_main.MILTER, BASE, redis_port=cls.r.port).start()
            cls.r.on_start = lambda proc: cls.h.adopt("redis", proc)
            cls.h.adopt("redis", cls.r.proc)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.r is not None:
                cls.r.resume()  # the milter must not wait on a paused server
            if cls.h is not None:
                cls.h.stop()
        finally:
            if cls.r is not None:
                cls.r.cleanup()

    def setUp(self):
        self.r.resume()
        if not self.r.running():
            self.r.start()
        self.r.cli("FLUSHALL")
        self.sender = "%s@e2e.test" % self._testMethodName.replace("_", "-")

    def tearDown(self):
        self.r.resume()
        self.assertTrue(self.h.milter_alive(), "relaymilter died:\n" + self.h.milter_log())

    # ---- shared steps -----------------------------------------------------
    def use_config(self, on_store_error, **extra):
        """This on_store_error from now on, by SIGHUP (no restart: libmilter
        takes up to 5 s to stop). Every test ends with Redis answering and a
        message charged through it, so the next starts with a closed circuit."""
        self.h.write_milter_config(merged(BASE, {"on_store_error": on_store_error}, extra))
        self.h.reload_milter(expect_ok=True)
        self.log_at = self.h.milter_log_size()

    def transact(self, source, body=None, rcpts=RCPTS):
        """One message on its own connection; each SMTP round timed from
        MAIL FROM on (connecting is not the milter's time)."""
        body = body or self.h.message(self.sender, rcpts, self._testMethodName)
        s = self.h.smtp(source)
        times = {"rcpt": 0.0}
        try:
            t0 = time.monotonic()
            code, text = s.mail(self.sender)
            times["mail"] = time.monotonic() - t0
            if code != 250:
                return self._round("mail", code, text, times, t0)
            for rc in rcpts:
                t = time.monotonic()
                code, text = s.rcpt(rc)
                times["rcpt"] = max(times["rcpt"], time.monotonic() - t)
                if code not in (250, 251):
                    return self._round("rcpt", code, text, times, t0)
            t = time.monotonic()
            try:
                code, text = s.data(body)
            except smtplib.SMTPDataError as e:
                code, text = e.smtp_code, e.smtp_error
            times["data"] = time.monotonic() - t
            rd = self._round("accepted" if code == 250 else "data", code, text, times, t0)
            m = re.search(r"queued as (\w+)", rd.text)
            rd.queue_id = m.group(1) if m else None
            return rd
        finally:
            try:
                s.quit()
            except smtplib.SMTPException:
                s.close()

    @staticmethod
    def _round(stage, code, text, times, t0):
        times["total"] = time.monotonic() - t0
        return Round(stage, code, text.decode(errors="replace"), times)

    def bounded_rounds(self, what, source, n, expect):
        """n messages while Redis is unusable: each gets expect(round) checked
        and each MAIL FROM .. DATA round stays under ROUND_BOUND."""
        rounds = []
        for _ in range(n):
            rd = self.transact(source)
            expect(rd)
            self.assertLess(rd.times["total"], ROUND_BOUND, rd)
            rounds.append(rd)
        TIMINGS.append((what, [rd.times["total"] for rd in rounds]))
        return rounds

    def assert_accepted(self, rd):
        self.assertEqual((rd.stage, rd.code), ("accepted", 250), rd)

    def assert_store_tempfail(self, rd):
        """451 4.3.0 at the first stage that needs Redis: MAIL FROM, or DATA
        when MAIL FROM was answered from the milter's copy of the staff-edited
        keys (at most 1 s old; not used once the circuit is open)."""
        self.assertIn((rd.stage, rd.code), (("mail", 451), ("data", 451)), rd)
        self.assertRegex(rd.text, r"^4\.3\.0 ")

    def assert_local_refusal(self, rd):
        self.assertEqual((rd.stage, rd.code), ("data", 451), rd)
        self.assertRegex(rd.text, r"^4\.7\.1 quota exceeded: messages_per_minute 2 "
                                  r"\(local share of 8\) for ip:127\.0\.32\.1, retry in ")

    def counter_key(self, source):
        return keynames.counter("m", "ip:" + source)

    def until_counted(self, what, source, since, meanwhile=None):
        """Sends a message every 0.5 s until one is accepted and charged
        through Redis again: its decision line has no store_error, and the
        counter's m grew by one. Until then a message is accepted or, if
        given, passes meanwhile(round). Returns the accepted rounds."""
        sent = []

        def counted():
            before = self.h.redis("HGET", self.counter_key(source), "m")
            rd = self.transact(source)
            if rd.stage != "accepted" and meanwhile is not None:
                meanwhile(rd)
            else:
                self.assert_accepted(rd)
                sent.append(rd)
                line = self.h.wait_milter_log(r"%s: customer=.*" % rd.queue_id, self.log_at)
                if "store_error" not in line.group(0):
                    self.assertNotIn("fallback", line.group(0))
                    self.assertEqual(int(self.h.redis("HGET", self.counter_key(source), "m")),
                                     int(before or 0) + 1, "the counter did not count it")
                    return True
            time.sleep(0.5)
            return False
        wait_until(counted, RECOVERY_BOUND, "a message charged in Redis again",
                   lambda: self.h.milter_log(self.log_at)[-3000:], interval=0)
        TIMINGS.append((what, [time.monotonic() - since]))
        return sent

    def assert_delivered(self, rounds):
        """Exactly these messages of this test's sender reached the sink."""
        ids = {rd.queue_id for rd in rounds}
        self.assertNotIn(None, ids)
        wait_until(lambda: ids <= {m.queue_id for m in self.h.sink_messages(self.sender)},
                   20, "queue ids %s at the sink" % sorted(ids),
                   lambda: self.h.maillog()[-3000:])
        msgs = self.h.sink_messages(self.sender)
        self.assertEqual(sorted(m.queue_id for m in msgs), sorted(ids))
        for m in msgs:
            self.assertEqual(sorted(m.recipients), sorted(RCPTS), m.path)

    # ---- tests -----------------------------------------------------------
    def test_a_tempfail_then_nothing_lost(self):
        self.use_config("tempfail")
        src = "127.0.30.1"
        first = self.transact(src)
        self.assert_accepted(first)
        self.r.stop()
        body = self.h.message(self.sender, RCPTS, "kept by the client")
        self.bounded_rounds("tempfail, Redis stopped: MAIL FROM round", src, 6,
                            self.assert_store_tempfail)
        self.h.wait_milter_log(r"customer=ip:127\.0\.30\.1 login=- sender=<%s> nrcpt=0 "
                               r"action=tempfail reason=store_error" % re.escape(self.sender),
                               self.log_at)
        self.h.wait_milter_log(r"circuit open", self.log_at)
        # the client keeps the message and retries until it goes through
        self.r.start()
        back = time.monotonic()
        tries = []
        while True:
            rd = self.transact(src, body)
            tries.append(rd)
            if rd.stage == "accepted":
                break
            self.assert_store_tempfail(rd)
            self.assertLess(time.monotonic() - back, RECOVERY_BOUND,
                            "still refused %.1fs after Redis came back: %s"
                            % (time.monotonic() - back, rd))
            time.sleep(0.5)
        TIMINGS.append(("tempfail: the retried message accepted after Redis restart "
                        "(%d tries)" % len(tries), [time.monotonic() - back]))
        self.h.wait_milter_log(r"reachable again", self.log_at)
        self.assert_delivered([first, rd])
        msgs = [m for m in self.h.sink_messages(self.sender) if "kept by the client" in m.text]
        self.assertEqual(len(msgs), 1, [m.path for m in msgs])
        # enforcement is back: the message was counted in the new Redis
        self.assertEqual(self.h.redis("HGET", self.counter_key(src), "m"), "1")

    def test_b_accept_mail_flows(self):
        self.use_config("accept")
        src = "127.0.31.1"
        first = self.transact(src)
        self.assert_accepted(first)
        self.r.stop()
        down = [first] + self.bounded_rounds(
            "accept, Redis stopped: MAIL FROM..DATA round", src, 6, self.assert_accepted)
        self.h.wait_milter_log(r"%s: customer=ip:127\.0\.31\.1 .*action=accept "
                               r"reason=store_error" % down[-1].queue_id, self.log_at)
        self.r.start()
        up = self.until_counted("accept: charged in Redis again after restart", src,
                                time.monotonic())
        self.assert_delivered(down + up)

    def test_c_local_limits_while_down(self):
        self.use_config("local", redis={"local_share": 0.25},
                        limits={"messages_per_minute": 8})
        src, other = "127.0.32.1", "127.0.32.2"
        self.r.stop()
        ok = self.bounded_rounds("local, Redis stopped: MAIL FROM..DATA round", src, 2,
                                 self.assert_accepted)
        third = self.bounded_rounds("local, Redis stopped: the refused third", src, 1,
                                    lambda rd: None)[0]
        self.assert_local_refusal(third)
        self.h.wait_milter_log(r"customer=ip:127\.0\.32\.1 .*action=tempfail "
                               r"reason=messages_per_minute fallback=local", self.log_at)
        # each customer has its own local share
        ok += self.bounded_rounds("local, Redis stopped: another customer", other, 2,
                                  self.assert_accepted)
        self.assert_delivered(ok)
        self.r.start()
        up = self.until_counted("local: charged in Redis again after restart", src,
                                time.monotonic(), self.assert_local_refusal)
        self.assert_delivered(ok + up)

    def test_d_hung_redis_accept(self):
        self.use_config("accept")
        src = "127.0.33.1"
        first = self.transact(src)
        self.assert_accepted(first)  # the pool holds live connections now
        self.r.pause()
        hung = self.bounded_rounds("accept, Redis hung (SIGSTOP): MAIL FROM..DATA round",
                                   src, 6, self.assert_accepted)
        self.h.wait_milter_log(r"customer=ip:127\.0\.33\.1 .*action=accept "
                               r"reason=store_error", self.log_at)
        self.r.resume()
        since = time.monotonic()
        # what the server did with the calls that timed out while it was
        # stopped (resume returns once it has read them)
        TIMINGS.append(("hung: messages counted in Redis after SIGCONT, before the next "
                        "message (1 charged before the hang, %d accepted during it): m=%s"
                        % (len(hung), self.h.redis("HGET", self.counter_key(src), "m")), []))
        up = self.until_counted("hung: charged in Redis again after SIGCONT", src, since)
        self.assert_delivered([first] + hung + up)

    def test_e_hung_redis_tempfail(self):
        self.use_config("tempfail")
        src = "127.0.34.1"
        self.assert_accepted(self.transact(src))
        self.r.pause()
        self.bounded_rounds("tempfail, Redis hung (SIGSTOP): MAIL FROM round", src, 4,
                            self.assert_store_tempfail)
        self.r.resume()
        self.until_counted("hung tempfail: accepted through Redis after SIGCONT", src,
                           time.monotonic(), self.assert_store_tempfail)


def report():
    for what, secs in TIMINGS:
        print("timing: %s%s" % (what, "".join(" %.3fs" % s for s in secs)))


if __name__ == "__main__":
    rc = e2e_main.run(__doc__, need_with_redis=False)
    report()
    sys.exit(rc)
