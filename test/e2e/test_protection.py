#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""test_protection - sender domain protection, blocked recipients, suspension,
the events stream and relaymilter-ctl, through a real Postfix.

    with-redis /usr/bin/python3 test_protection.py --milter PATH [unittest options]

Needs root (Postfix). One private Postfix + relaymilter serves all tests;
Redis is flushed before each test. Each customer of the config owns a
127.x.y.0/24, so a test picks its customer by its loopback source address.
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_main  # noqa: E402
from harness_conf import wait_until  # noqa: E402

CTL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                   "scripts", "relaymilter-ctl")
EVENTS_MAXLEN = 100
LIMITS = {"messages_per_minute": 1000, "recipients_per_minute": 5000, "action": "tempfail"}
ACME, BETA, GAMMA, STRICT, FROZEN, DELTA = (
    "127.0.10.1", "127.0.11.1", "127.0.12.1", "127.0.13.1", "127.0.14.1", "127.0.15.1")
CUSTOMERS = [
    {"name": "acme", "networks": ["127.0.10.0/24"], "domains": ["acme.example"]},
    {"name": "beta", "networks": ["127.0.11.0/24"]},
    {"name": "gamma", "networks": ["127.0.12.0/24"]},
    {"name": "strict", "networks": ["127.0.13.0/24"], "domains": ["strict.example"]},
    {"name": "frozen", "networks": ["127.0.14.0/24"], "limits": {"suspended": 1}},
    {"name": "delta", "networks": ["127.0.15.0/24"]},
]
SETTINGS = {"redis": {"events_maxlen": EVENTS_MAXLEN}, "limits": LIMITS,
            "customers": CUSTOMERS, "blocked_recipient_domains": ["spamtrap.example"]}
EVENT_FIELDS = {"id", "time", "queue_id", "customer", "login", "sender", "recipients", "reason",
                "action"}
OK_RCPTS = ["one@example.net", "two@example.org"]
TIMINGS = []  # (what, seconds), printed at the end


class Protection(e2e_main.HarnessCase):
    settings = SETTINGS

    def setUp(self):
        self.h.redis("FLUSHALL")
        self.log_at = self.h.milter_log_size()
        self.started = time.time()

    def tearDown(self):
        self.assertTrue(self.h.milter_alive(), "relaymilter died:\n" + self.h.milter_log())

    # ---- shared steps -----------------------------------------------------
    def send(self, source, sender, rcpts=OK_RCPTS, subject=None):
        return self.h.send(sender, rcpts, source=source,
                           subject=subject or self._testMethodName)

    def assert_accepted(self, o, delivered_to=None):
        """Accepted, and at the sink with exactly the recipients given."""
        self.assertEqual((o.stage, o.code), ("accepted", 250), o)
        want = OK_RCPTS if delivered_to is None else delivered_to
        msg = wait_until(lambda: [m for m in self.h.sink_messages()
                                  if m.queue_id == o.queue_id], 20,
                         "queue id %s at the sink" % o.queue_id,
                         lambda: self.h.maillog()[-3000:])[0]
        self.assertEqual(sorted(msg.recipients), sorted(want), msg.path)

    def assert_mail_refused(self, o, text_rx):
        self.assertEqual((o.stage, o.code), ("mail", 550), o)
        self.assertRegex(o.text, r"^5\.7\.1 " + text_rx)

    def assert_may_not_send(self, o, customer, domain):
        self.assert_mail_refused(o, r"%s may not send as %s$"
                                 % (re.escape(customer), re.escape(domain)))

    def wait_event(self, **want):
        """The entry of relay:events written during this test whose fields
        match want (each value a regular expression, whole-field match)."""
        def match():
            for ev in self.h.events():
                if all(re.fullmatch(rx, ev.get(k, "")) for k, rx in want.items()):
                    return ev
            return None
        ev = wait_until(match, 5, "an event with %s" % want,
                        lambda: "\n".join(map(str, self.h.events()[-10:])))
        self.assertEqual(set(ev), EVENT_FIELDS, ev)
        self.assertLessEqual(abs(int(ev["time"]) - self.started), 60, ev)
        return ev

    def ctl(self, *args):
        """scripts/relaymilter-ctl with the config the milter runs with."""
        res = subprocess.run([CTL, "-c", self.h.milter_conf] + [str(a) for a in args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             timeout=30)
        self.assertEqual(res.returncode, 0, "relaymilter-ctl %s: exit %d\n%s%s"
                         % (" ".join(args), res.returncode, res.stdout, res.stderr))
        reads = args[0] in ("events", "usage", "show") or (args[0] == "limits"
                                                            and len(args) == 2)
        if not reads:  # an edit: returned once it is in force
            time.sleep(self.h.STAFF_EDIT_IN_FORCE_S)
        return res.stdout

    # ---- sender domain protection -----------------------------------------
    def test_a_config_domain_is_protected(self):
        self.assert_may_not_send(self.send(BETA, "bob@acme.example"), "beta", "acme.example")
        self.wait_event(customer="beta", sender="bob@acme.example", reason=".*domain.*",
                        action="reject", queue_id="")
        # a subdomain too, in canonical (lower) case
        o = self.send(BETA, "bob@Mail.ACME.example")
        self.assert_may_not_send(o, "beta", "mail.acme.example")
        self.wait_event(customer="beta", sender="(?i)bob@mail.acme.example",
                        reason=".*domain.*", action="reject")
        self.h.wait_milter_log(r"NOQUEUE: customer=beta login=- sender=<bob@acme\.example> nrcpt=0 "
                               r"action=reject reason=\S*domain", self.log_at)
        # the owner sends as its domain and subdomains; beta from a free domain
        self.assert_accepted(self.send(ACME, "bob@acme.example"))
        self.assert_accepted(self.send(ACME, "bob@mail.acme.example"))
        self.assert_accepted(self.send(BETA, "bob@beta.example"))
        # a name that merely ends in the same letters is not a subdomain
        self.assert_accepted(self.send(BETA, "bob@notacme.example"))

    def test_b_redis_domain_is_protected(self):
        self.assert_accepted(self.send(BETA, "bob@gamma.example"))  # nobody owns it yet
        self.h.staff_edit("SADD", "relay:domain:gamma.example", "gamma")
        self.assert_may_not_send(self.send(BETA, "bob@gamma.example"), "beta", "gamma.example")
        self.wait_event(customer="beta", sender="bob@gamma.example", reason=".*domain.*",
                        action="reject")
        self.assert_may_not_send(self.send(BETA, "bob@eu.mail.gamma.example"), "beta",
                                 "eu.mail.gamma.example")
        self.assert_accepted(self.send(GAMMA, "bob@gamma.example"))
        self.assert_accepted(self.send(GAMMA, "bob@eu.mail.gamma.example"))
        # removed from the set: free again, without a reload
        self.h.staff_edit("SREM", "relay:domain:gamma.example", "gamma")
        self.assert_accepted(self.send(BETA, "bob@gamma.example"))

    def test_c_config_and_redis_owners_together(self):
        # at the same name the owners of both count
        self.h.staff_edit("SADD", "relay:domain:acme.example", "beta")
        self.assert_accepted(self.send(BETA, "bob@acme.example"))
        self.assert_accepted(self.send(ACME, "bob@acme.example"))
        self.assert_may_not_send(self.send(GAMMA, "bob@acme.example"), "gamma", "acme.example")
        # the most specific protected entry decides
        self.h.staff_edit("SADD", "relay:domain:eu.acme.example", "gamma")
        self.assert_accepted(self.send(GAMMA, "bob@x.eu.acme.example"))
        self.assert_may_not_send(self.send(ACME, "bob@eu.acme.example"), "acme",
                                 "eu.acme.example")
        self.assert_accepted(self.send(ACME, "bob@www.acme.example"))

    def test_d_own_domains_only(self):
        self.assert_accepted(self.send(STRICT, "bob@free.example"))
        self.h.staff_edit("HSET", "relay:limits:strict", "own_domains_only", 1)
        self.assert_may_not_send(self.send(STRICT, "bob@free.example"), "strict",
                                 "free.example")
        self.wait_event(customer="strict", sender="bob@free.example",
                        reason=".*domain.*", action="reject")
        self.assert_accepted(self.send(STRICT, "bob@strict.example"))
        self.assert_accepted(self.send(STRICT, "bob@lists.strict.example"))
        # another customer's domain stays refused; the null sender (bounces) not
        self.assert_may_not_send(self.send(STRICT, "bob@acme.example"), "strict",
                                 "acme.example")
        self.assert_accepted(self.send(STRICT, ""))
        self.h.staff_edit("HDEL", "relay:limits:strict", "own_domains_only")
        self.assert_accepted(self.send(STRICT, "bob@free.example"))

    # ---- blocked recipient domains -----------------------------------------
    def assert_partly_blocked(self, o, blocked, entry):
        self.assertEqual(sorted(o.refused), sorted(blocked), o)
        for code, text in o.refused.values():
            self.assertEqual(code, 550, o)
            self.assertEqual(text, "5.7.1 relaying to %s is not allowed" % entry, o)
        self.assert_accepted(o, delivered_to=OK_RCPTS)

    def test_e_blocked_recipient_in_config(self):
        blocked = ["trap@spamtrap.example", "deep@x.SpamTrap.example"]
        o = self.send(BETA, "bob@beta.example", [OK_RCPTS[0]] + blocked + [OK_RCPTS[1]])
        self.assert_partly_blocked(o, blocked, "spamtrap.example")
        self.h.wait_milter_log(r"customer=beta login=- sender=<bob@beta\.example> "
                               r"rcpt=<trap@spamtrap\.example> action=reject", self.log_at)
        # every recipient blocked: nothing delivered, one event
        o = self.send(BETA, "all@beta.example", ["trap@spamtrap.example"])
        self.assertEqual((o.stage, o.code), ("rcpt", 550), o)
        self.wait_event(customer="beta", sender="all@beta.example",
                        recipients="trap@spamtrap.example", reason=".*block.*",
                        action="reject")
        self.assertEqual(self.h.sink_messages("all@beta.example"), [])

    def poll_rcpt(self, source, rcpt, want_code, timeout):
        """Seconds until RCPT TO:<rcpt> gets want_code, trying every 50 ms on
        one SMTP connection (MAIL, RCPT, RSET)."""
        t0 = time.monotonic()
        s = self.h.smtp(source)
        try:
            while True:
                self.assertEqual(s.mail("poll@beta.example")[0], 250)
                code, text = s.rcpt(rcpt)
                s.rset()
                took = time.monotonic() - t0
                if code == want_code:
                    return took
                self.assertLess(took, timeout, "RCPT TO:<%s> still %d %s after %.2fs"
                                % (rcpt, code, text.decode(), took))
                time.sleep(0.05)
        finally:
            s.quit()

    def test_f_blocked_recipient_in_redis(self):
        self.assert_accepted(self.send(BETA, "bob@beta.example", ["x@trap2.example"]),
                             delivered_to=["x@trap2.example"])
        self.h.redis("SADD", "relay:blocked-rcpt-domains", "trap2.example")
        took = self.poll_rcpt(BETA, "x@sub.trap2.example", 550, 2.0)
        TIMINGS.append(("Redis blocked-rcpt-domains SADD in force after", took))
        o = self.send(BETA, "bob@beta.example", OK_RCPTS + ["x@trap2.example"])
        self.assert_partly_blocked(o, ["x@trap2.example"], "trap2.example")
        self.h.redis("SREM", "relay:blocked-rcpt-domains", "trap2.example")
        took = self.poll_rcpt(BETA, "x@sub.trap2.example", 250, 2.0)
        TIMINGS.append(("Redis blocked-rcpt-domains SREM in force after", took))

    # ---- suspension ----------------------------------------------------------
    def test_g_suspended(self):
        o = self.send(FROZEN, "bob@frozen.example")  # customers[].limits
        self.assert_mail_refused(o, r"sending suspended for frozen, contact support$")
        self.wait_event(customer="frozen", sender="bob@frozen.example", reason="suspended",
                        action="reject")
        self.assert_accepted(self.send(BETA, "bob@beta.example"))
        self.h.staff_edit("HSET", "relay:limits:beta", "suspended", 1)  # Redis
        o = self.send(BETA, "bob@beta.example")
        self.assert_mail_refused(o, r"sending suspended for beta, contact support$")
        self.wait_event(customer="beta", sender="bob@beta.example", reason="suspended",
                        action="reject")
        self.h.staff_edit("HSET", "relay:limits:frozen", "suspended", 0)  # lifted in Redis
        self.assert_accepted(self.send(FROZEN, "bob@frozen.example"))

    # ---- the events stream stays capped ------------------------------------
    def test_h_events_stream_is_capped(self):
        n, per_connection = 500, 9  # below smtpd_soft_error_limit (10)
        t0 = time.monotonic()
        sent = 0
        while sent < n:
            s = self.h.smtp(BETA)
            for _ in range(min(per_connection, n - sent)):
                code, text = s.mail("cap%d@acme.example" % sent)
                self.assertEqual(code, 550, text)
                s.rset()
                sent += 1
            s.quit()
        took = time.monotonic() - t0
        TIMINGS.append(("%d MAIL FROM refusals (%.1f ms each)" % (n, 1000 * took / n), took))
        xlen = int(self.h.redis("XLEN", "relay:events"))
        TIMINGS.append(("XLEN relay:events after %d refusals, events_maxlen %d: %d"
                        % (n, EVENTS_MAXLEN, xlen), None))
        self.assertGreaterEqual(xlen, EVENTS_MAXLEN)
        self.assertLess(xlen, EVENTS_MAXLEN + 200)
        last = self.h.events()[-1]
        self.assertEqual((last["customer"], last["sender"]),
                         ("beta", "cap%d@acme.example" % (n - 1)), last)

    # ---- scripts/relaymilter-ctl -------------------------------------------
    def test_i_ctl_limit_change(self):
        self.assertTrue(os.access(CTL, os.X_OK), "%s is missing or not executable" % CTL)
        self.ctl("limits", "delta", "messages_per_minute", "1")
        self.assertRegex(self.ctl("limits", "delta"), r"messages_per_minute\W+1\b")
        self.assertEqual(self.h.redis("HGET", "relay:limits:delta", "messages_per_minute"), "1")
        self.assert_accepted(self.send(DELTA, "bob@delta.example"))
        o = self.send(DELTA, "bob@delta.example")
        self.assertEqual((o.stage, o.code), ("data", 451), o)
        self.assertRegex(o.text, r"^4\.7\.1 quota exceeded: messages_per_minute 1 for delta,")
        self.ctl("limits", "delta", "unset", "messages_per_minute")
        self.assert_accepted(self.send(DELTA, "bob@delta.example"))

    def test_j_ctl_suspend_resume(self):
        self.ctl("suspend", "delta")
        self.assert_mail_refused(self.send(DELTA, "bob@delta.example"),
                                 r"sending suspended for delta, contact support$")
        self.ctl("resume", "delta")
        self.assert_accepted(self.send(DELTA, "bob@delta.example"))

    def test_k_ctl_own_and_block(self):
        self.ctl("own", "Delta.Example.", "delta")
        self.assert_may_not_send(self.send(BETA, "bob@delta.example"), "beta", "delta.example")
        self.assert_accepted(self.send(DELTA, "bob@delta.example"))
        self.ctl("block", "trap3.example")
        self.poll_rcpt(BETA, "x@trap3.example", 550, 2.0)
        events = self.ctl("events", "5")
        self.assertRegex(events, r"customer=beta login=- sender=<?bob@delta\.example>?")
        self.ctl("disown", "delta.example", "delta")
        self.ctl("unblock", "trap3.example")
        self.assert_accepted(self.send(BETA, "bob@delta.example"))
        self.poll_rcpt(BETA, "x@trap3.example", 250, 2.0)


if __name__ == "__main__":
    rc = e2e_main.run(__doc__)
    for what, secs in TIMINGS:
        print("timing: %s%s" % (what, "" if secs is None else ": %.3fs" % secs))
    sys.exit(rc)
