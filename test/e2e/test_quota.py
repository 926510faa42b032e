#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""test_quota - relaymilter behind a real Postfix: what an SMTP client sees.

    with-redis /usr/bin/python3 test_quota.py --milter PATH [unittest options]

Needs root (Postfix). One private Postfix + relaymilter serves all tests;
Redis is flushed before each test, and each test sends from its own loopback
address (all of 127.0.0.0/8 is local), so each test is its own customer:
"ip:127.0.0.N", or a named customer where the config maps a 127.x.y.0/24.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness_conf import read_postconf, wait_until  # noqa: E402
import e2e_main  # noqa: E402
import milterclient as mc  # noqa: E402
from postfix_harness import EXAMPLE_MAIN_CF  # noqa: E402

LIMITS = {
    "messages_per_minute": 2, "messages_per_hour": 1000, "messages_per_day": 10000,
    "recipients_per_minute": 50, "recipients_per_hour": 5000, "recipients_per_day": 50000,
    "sender_messages_per_hour": 500, "max_recipients": 3, "action": "tempfail",
}
CUSTOMERS = [
    {"name": "e2e-reject", "networks": ["127.0.1.0/24"], "limits": {"action": "reject"}},
    {"name": "e2e-hold", "networks": ["127.0.2.0/24"], "limits": {"action": "hold"}},
    {"name": "e2e-monitor", "networks": ["127.0.4.0/24"], "limits": {"action": "monitor"}},
]
SETTINGS = {"limits": LIMITS, "customers": CUSTOMERS}
RELOADED = {"name": "e2e-reloaded", "networks": ["127.0.3.0/24"],
            "limits": {"messages_per_minute": 1}}

QUOTA_TEXT = r"quota exceeded: %s %d for %s, retry in \d+[smh]$"


def rcpts(n):
    return ["rcpt%d@example.net" % i for i in range(1, n + 1)]


class QuotaThroughPostfix(e2e_main.HarnessCase):
    settings = SETTINGS

    def setUp(self):
        self.h.redis("FLUSHALL")
        self.sender = "%s@e2e.test" % self._testMethodName.replace("_", "-")
        self.log_at = self.h.milter_log_size()
        self.pid = self.h.milter.pid

    def tearDown(self):
        self.assertTrue(self.h.milter_alive(), "relaymilter died:\n" + self.h.milter_log())

    # ---- shared steps -----------------------------------------------------
    def send(self, source, n_rcpt=1, subject="e2e"):
        return self.h.send(self.sender, rcpts(n_rcpt), source=source, subject=subject)

    def assert_accepted(self, o):
        self.assertEqual((o.stage, o.code), ("accepted", 250), o)
        self.assertTrue(o.queue_id, o)

    def assert_refused(self, o, stage, code, text_rx):
        self.assertEqual((o.stage, o.code), (stage, code), o)
        self.assertRegex(o.text, text_rx)

    def fill_quota(self, source, n=2):
        """n messages accepted and delivered: the minute quota is used up."""
        outs = [self.send(source) for _ in range(n)]
        for o in outs:
            self.assert_accepted(o)
        self.h.wait_for_deliveries(n, self.sender)
        return outs

    def assert_sink_count(self, n):
        got = self.h.sink_messages(self.sender)
        self.assertEqual(len(got), n, [m.queue_id for m in got])

    def milter_log(self):
        return self.h.milter_log(self.log_at)

    # ---- tests -----------------------------------------------------------
    def test_a_under_limit_reaches_the_sink(self):
        o = self.send("127.0.0.11", n_rcpt=2)
        self.assert_accepted(o)
        [m] = self.h.wait_for_deliveries(1, self.sender)
        self.assertEqual(m.queue_id, o.queue_id)
        self.assertEqual(m.recipients, rcpts(2))
        # the decision line carries Postfix's queue id (macro "i" at DATA)
        self.h.wait_milter_log(r"%s: customer=ip:127\.0\.0\.11 login=- sender=<%s> nrcpt=2 "
                               r"action=accept" % (o.queue_id, re.escape(self.sender)),
                               self.log_at)
        keys = self.h.redis("KEYS", "relay:*").split()
        self.assertTrue(keys, "no usage counters in Redis")
        for k in keys:  # every key expires, within twice its window (doc/OPERATIONS)
            self.assertIn(int(self.h.redis("TTL", k)), range(1, 2 * 86400 + 1), k)

    def test_b_over_limit_tempfails(self):
        self.fill_quota("127.0.0.12")
        o = self.send("127.0.0.12")
        self.assert_refused(o, "data", 451, r"^4\.7\.1 " + QUOTA_TEXT % (
            "messages_per_minute", 2, r"ip:127\.0\.0\.12"))
        self.assert_sink_count(2)
        self.h.wait_milter_log(r"customer=ip:127\.0\.0\.12 .* action=tempfail "
                               r"reason=messages_per_minute", self.log_at)
        self.h.wait_maillog(r"milter-reject: DATA from .*127\.0\.0\.12\]: 451 4\.7\.1 quota")

    def test_c_action_reject(self):
        self.fill_quota("127.0.1.12")
        o = self.send("127.0.1.12")
        self.assert_refused(o, "data", 550, r"^5\.7\.1 " + QUOTA_TEXT % (
            "messages_per_minute", 2, "e2e-reject"))
        self.assert_sink_count(2)

    def test_d_action_hold(self):
        self.fill_quota("127.0.2.12")
        o = self.send("127.0.2.12", subject="held")
        self.assert_accepted(o)  # the client cannot tell
        self.assertIn(o.queue_id, self.h.hold_queue())
        held = [q for q in self.h.queue_list() if q["queue_id"] == o.queue_id]
        self.assertEqual([q["queue_name"] for q in held], ["hold"], self.h.queue_list())
        self.assertIn("Subject: held", self.h.queue_file(o.queue_id))
        # Postfix logs no reason for a hold; relaymilter's log line has it
        self.h.wait_maillog(r"%s: milter-hold: END-OF-MESSAGE from .*127\.0\.2\.12\]"
                            % o.queue_id)
        self.h.wait_milter_log(r"%s: customer=e2e-hold .* action=hold "
                               r"reason=messages_per_minute" % o.queue_id, self.log_at)
        self.assert_sink_count(2)
        self.assertNotIn(o.queue_id, [m.queue_id for m in self.h.sink_messages()])
        # Support releases it: the message was whole and now goes out.
        self.h.postfix_cmd("/usr/sbin/postsuper", "-H", o.queue_id)
        msgs = self.h.wait_for_deliveries(3, self.sender)
        self.assertIn(o.queue_id, [m.queue_id for m in msgs])
        self.assertEqual(self.h.hold_queue(), [])

    def test_d_action_monitor(self):
        self.fill_quota("127.0.4.12")
        o = self.send("127.0.4.12")
        self.assert_accepted(o)
        self.h.wait_for_deliveries(3, self.sender)
        self.h.wait_milter_log(r"%s: customer=e2e-monitor .* action=monitor "
                               r"reason=messages_per_minute" % o.queue_id, self.log_at)

    def test_e_live_limit_change_in_redis(self):
        src, key = "127.0.0.13", "relay:limits:ip:127.0.0.13"
        self.assert_accepted(self.send(src))
        self.h.staff_edit("HSET", key, "messages_per_minute", 1)
        o = self.send(src)
        self.assert_refused(o, "data", 451, r"^4\.7\.1 " + QUOTA_TEXT % (
            "messages_per_minute", 1, r"ip:127\.0\.0\.13"))
        self.h.staff_edit("HSET", key, "messages_per_minute", 5)
        self.assert_accepted(self.send(src))
        self.h.wait_for_deliveries(2, self.sender)
        self.assertEqual(self.h.milter.pid, self.pid)
        self.assertNotIn("configuration reloaded", self.milter_log())

    def test_f_max_recipients(self):
        o = self.send("127.0.0.14", n_rcpt=5)
        self.assert_accepted(o)
        self.assertEqual(sorted(o.refused), rcpts(5)[3:])
        for code, text in o.refused.values():
            self.assertEqual(code, 452)
            self.assertRegex(text, r"^4\.5\.3 .*max_recipients 3")
        [m] = self.h.wait_for_deliveries(1, self.sender)
        self.assertEqual(m.recipients, rcpts(3))
        self.h.wait_milter_log(r"%s: customer=ip:127\.0\.0\.14 .* nrcpt=3 action=accept"
                               % o.queue_id, self.log_at)

    def test_g_suspended_in_redis(self):
        src, key = "127.0.0.15", "relay:limits:ip:127.0.0.15"
        self.h.staff_edit("HSET", key, "suspended", 1)
        o = self.send(src)
        self.assert_refused(o, "mail", 550, r"^5\.7\.1 .*ip:127\.0\.0\.15")
        self.h.staff_edit("HSET", key, "suspended", 0)
        self.assert_accepted(self.send(src))
        self.h.wait_for_deliveries(1, self.sender)

    def test_h_sighup_reload(self):
        self.addCleanup(self.restore_config)
        before = self.send("127.0.3.1")
        self.assert_accepted(before)
        self.h.wait_milter_log(r"customer=ip:127\.0\.3\.1 ", self.log_at)
        # a new customer, and its limit, come into force on SIGHUP
        self.h.write_milter_config(dict(SETTINGS, customers=CUSTOMERS + [RELOADED]))
        self.h.reload_milter(expect_ok=True)
        self.check_reloaded_customer("127.0.3.1")
        # an invalid file on SIGHUP: logged, and the config in force stays
        good = self.h.milter_log_size()
        with open(self.h.milter_conf, "a") as f:
            f.write("no_such_key = 1;\n")
        self.h.reload_milter(expect_ok=False)
        self.assertRegex(self.h.milter_log(good), r"reload failed.*%s:\d+: .*no_such_key"
                         % re.escape(self.h.milter_conf))
        self.h.redis("FLUSHALL")
        self.check_reloaded_customer("127.0.3.2")
        self.assertEqual(self.h.milter.pid, self.pid)

    def check_reloaded_customer(self, src):
        o = self.send(src)
        self.assert_accepted(o)
        self.h.wait_milter_log(r"%s: customer=e2e-reloaded " % o.queue_id, self.log_at)
        o = self.send(src)
        self.assert_refused(o, "data", 451, r"^4\.7\.1 " + QUOTA_TEXT % (
            "messages_per_minute", 1, "e2e-reloaded"))

    def restore_config(self):
        self.h.write_milter_config()
        self.h.reload_milter(expect_ok=True)

    def test_i_aborted_message_costs_no_quota(self):
        src = "127.0.0.16"
        s = self.h.smtp(src)
        self.assertEqual(s.mail(self.sender)[0], 250)
        self.assertEqual(s.rcpt(rcpts(1)[0])[0], 250)
        self.assertEqual(s.docmd("DATA")[0], 354)  # the quota is charged here
        s.send(b"Subject: never finished\r\n\r\nhalf a messa")
        s.close()  # the client goes away in the middle of DATA
        self.h.wait_milter_log(r"customer=ip:127\.0\.0\.16 .*charge refunded", self.log_at)
        self.fill_quota(src)  # both still fit into messages_per_minute 2
        o = self.send(src)
        self.assertEqual((o.stage, o.code), ("data", 451), o)

    def test_k_aborted_charge_keep(self):
        """aborted_charge = keep: the milter answers "accept" at DATA (after
        which an MTA sends it nothing more for the message); an abort after
        DATA keeps its charge; a hold still goes through the end of the
        message."""
        self.addCleanup(self.restore_config)
        self.h.write_milter_config(dict(SETTINGS, aborted_charge="keep"))
        self.h.reload_milter(expect_ok=True)
        # the answer to DATA, as the MTA gets it (Postfix logs no milter replies)
        with mc.MilterClient(("127.0.0.1", self.h.milter_port), timeout=5.0) as c:
            c.connect_info(addr="127.0.0.18")
            res = c.send_message(self.sender, rcpts(1), qid="4KEEP01")
        self.assertEqual((res.verdict, res.stage), ("accept", "DATA"), res)

        src = "127.0.0.19"
        self.assert_accepted(self.send(src))
        self.h.wait_for_deliveries(1, self.sender)
        s = self.h.smtp(src)
        self.assertEqual(s.mail(self.sender)[0], 250)
        self.assertEqual(s.rcpt(rcpts(1)[0])[0], 250)
        self.assertEqual(s.docmd("DATA")[0], 354)  # charged, and final, here
        s.send(b"Subject: never finished\r\n\r\nhalf a messa")
        s.close()
        decided = r"customer=ip:127\.0\.0\.19 .*action=accept"
        wait_until(lambda: len(re.findall(decided, self.milter_log())) == 2, 10,
                   "two decisions for 127.0.0.19", self.milter_log)
        # Postfix has ended that session, and told the milter (abort, quit)
        self.h.wait_maillog(r"disconnect from \S+\[127\.0\.0\.19\].* data=0/1")
        o = self.send(src)  # messages_per_minute 2: used by the two above
        self.assert_refused(o, "data", 451, r"^4\.7\.1 " + QUOTA_TEXT % (
            "messages_per_minute", 2, r"ip:127\.0\.0\.19"))
        self.assertNotIn("refunded", self.milter_log())

        self.fill_quota("127.0.2.19")
        o = self.send("127.0.2.19", subject="held under keep")
        self.assert_accepted(o)
        self.assertIn(o.queue_id, self.h.hold_queue())
        self.h.postfix_cmd("/usr/sbin/postsuper", "-d", o.queue_id)

    def test_j_milter_down_uses_milter_default_action(self):
        action = dict(read_postconf(EXAMPLE_MAIN_CF))["milter_default_action"]
        expected = {"accept": 250, "tempfail": 451, "reject": 550}[action]
        self.h.stop_milter()
        try:
            o = self.send("127.0.0.17")
            self.assertEqual(o.code, expected, o)
            self.assertEqual(o.stage == "accepted", action == "accept", o)
            self.h.wait_maillog(r"connect to Milter service inet:127\.0\.0\.1:%d: "
                                r"Connection refused" % self.h.milter_port)
            if action == "accept":
                self.h.wait_for_deliveries(1, self.sender)
        finally:
            self.h.start_milter()
        self.pid = self.h.milter.pid
        o = self.send("127.0.0.17")
        self.assert_accepted(o)
        self.h.wait_milter_log(r"%s: customer=ip:127\.0\.0\.17 .*action=accept"
                               % o.queue_id, self.log_at)


if __name__ == "__main__":
    sys.exit(e2e_main.run(__doc__))
