#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""test_sasl - SMTP AUTH through a real Postfix with Cyrus SASL: identity by login.

    with-redis /usr/bin/python3 test_sasl.py --milter PATH [unittest options]

Clients log in with AUTH PLAIN or LOGIN against a private sasldb (realm
relay.e2e.test), exactly as customers of a relay do; Postfix hands the milter
{auth_authen} as typed. Checked (relaymilter.conf(5), IDENTITY and SASL
GROUP): every spelling Cyrus accepts for one account ("bob",
"bob@relay.e2e.test"; "dave"/"DAVE" stand for a back end that folds case)
reaches one customer, its quota and its suspension; a login equal to a
configured customer's name does not become that customer; each
sasl.unknown mode; the login in the decision line and in the events stream;
a mapping added with redis-cli HSET is in force within 2 seconds; with
Postfix's smtpd_sasl_local_domain the milter sees one spelling by itself.
Needs root (Postfix).
"""

import re
import sys
import time

import e2e_main
import keynames
from harness_conf import wait_until
from postfix_harness import SASL_REALM

PW = "e2e-secret"
USERS = {u: PW for u in ("bob", "dave", "DAVE", "initech", "stranger", "carol")}
LIMITS = {"messages_per_minute": 50, "messages_per_hour": 1000, "action": "tempfail"}
SETTINGS = {
    "sasl": {"realm": SASL_REALM},
    "limits": LIMITS,
    "customers": [
        {"name": "acme", "domains": ["acme.example"]},
        {"name": "initech", "domains": ["initech.example"],
         "limits": {"messages_per_minute": 500}},
    ],
}
BOB = "bob@" + SASL_REALM


def canon(login):
    return login.lower() if "@" in login else login.lower() + "@" + SASL_REALM


class SaslCase(e2e_main.HarnessCase):
    """Helpers shared by the classes below."""

    def setUp(self):
        self.h.redis("FLUSHALL")
        self.log_at = self.h.milter_log_size()

    def send(self, login, mech="PLAIN", sender=None, password=PW):
        sender = sender or "%s-%d@free.example" % (login.split("@")[0].lower(),
                                                   int(time.time() * 1000))
        return self.h.send(sender, ["rcpt@dest.example"], source="127.0.0.1",
                           auth=(login, password, mech))

    def decision(self, outcome):
        """The milter's decision line for an accepted or DATA-refused message,
        or the NOQUEUE line of a refusal at MAIL FROM: (customer, login)."""
        if outcome.queue_id:
            rx = r"%s: customer=(\S+) login=(\S+) sender=" % outcome.queue_id
        else:
            rx = r"NOQUEUE: customer=(\S+) login=(\S+) sender="
        m = self.h.wait_milter_log(rx, self.log_at)
        return m.group(1), m.group(2)

    def assert_accepted(self, o):
        self.assertEqual((o.stage, o.code), ("accepted", 250), o)


class Identity(SaslCase):
    settings = SETTINGS
    harness_args = {"sasl_users": USERS}

    def test_a_spellings_share_one_quota(self):
        self.h.redis("HSET", "relay:sasl", BOB, "acme")
        self.h.staff_edit("HSET", "relay:limits:acme", "messages_per_minute", "3")
        accepted = [self.send("bob", "PLAIN"), self.send(BOB, "LOGIN"),
                    self.send("bob", "LOGIN")]
        for o in accepted:
            self.assert_accepted(o)
            self.assertEqual(self.decision(o), ("acme", BOB))
        o = self.send(BOB, "PLAIN")
        self.assertEqual((o.stage, o.code), ("data", 451), o)
        self.assertRegex(o.text, r"^4\.7\.1 quota exceeded: messages_per_minute 3 for acme,")
        o = self.send("bob", "PLAIN")
        self.assertEqual((o.stage, o.code), ("data", 451), o)
        self.assertEqual(self.h.redis("HGET", keynames.counter("m", "acme"), "m"), "3")

    def test_b_spellings_share_one_suspension(self):
        self.h.redis("HSET", "relay:sasl", BOB, "acme")
        self.h.staff_edit("HSET", "relay:limits:acme", "suspended", "1")
        for login, mech in (("bob", "PLAIN"), (BOB, "LOGIN"), ("bob", "LOGIN")):
            o = self.send(login, mech)
            self.assertEqual((o.stage, o.code), ("mail", 550), (login, o))
            self.assertEqual(o.text, "5.7.1 sending suspended for acme, contact support")
        self.assertEqual(self.decision(o), ("acme", BOB))

    def test_c_case_variants_are_one_customer(self):
        # "dave" and "DAVE" are both accounts here, as every spelling is on
        # a back end that folds case.
        dave = "sasl:dave@" + SASL_REALM
        self.h.staff_edit("HSET", "relay:limits:" + dave, "messages_per_minute", "1")
        o = self.send("DAVE", "PLAIN")
        self.assert_accepted(o)
        self.assertEqual(self.decision(o), (dave, "dave@" + SASL_REALM))
        o = self.send("dave", "LOGIN")
        self.assertEqual((o.stage, o.code), ("data", 451), o)
        self.assertIn("messages_per_minute 1 for %s," % dave, o.text)

    def test_d_login_named_like_a_customer_is_not_that_customer(self):
        o = self.send("initech", sender="boss@initech.example")
        self.assertEqual((o.stage, o.code), ("mail", 550), o)
        self.assertEqual(o.text, "5.7.1 sasl:initech@%s may not send as initech.example"
                         % SASL_REALM)
        self.assertEqual(self.decision(o), ("sasl:initech@" + SASL_REALM,
                                            "initech@" + SASL_REALM))
        # and the event says which account it was
        ev = wait_until(lambda: [e for e in self.h.events()
                                 if e.get("sender") == "boss@initech.example"], 5,
                        "the event of the refusal")[-1]
        self.assertEqual((ev["customer"], ev["login"], ev["reason"], ev["action"]),
                         ("sasl:initech@" + SASL_REALM, "initech@" + SASL_REALM,
                          "sender_domain_owned_by_other", "reject"))
        # its mail from a domain nobody owns goes, charged to the login's customer
        o = self.send("initech")
        self.assert_accepted(o)
        self.assertEqual(self.h.redis("EXISTS", keynames.counter("m", "initech")), "0")
        self.assertEqual(self.h.redis(
            "HGET", keynames.counter("m", "sasl:initech@" + SASL_REALM), "m"), "1")

    def test_e_unknown_login_is_its_own_customer(self):
        o = self.send("stranger", "LOGIN")
        self.assert_accepted(o)
        self.assertEqual(self.decision(o), ("sasl:stranger@" + SASL_REALM,
                                            "stranger@" + SASL_REALM))

    def test_f_unknown_refuse_and_tempfail(self):
        self.h.redis("HSET", "relay:sasl", BOB, "acme")
        try:
            for mode, code in (("refuse", 550), ("tempfail", 451)):
                self.h.write_milter_config(dict(SETTINGS, sasl={"realm": SASL_REALM,
                                                                "unknown": mode}))
                self.h.reload_milter()
                since = self.h.milter_log_size()
                o = self.send("stranger")
                self.assertEqual((o.stage, o.code), ("mail", code), (mode, o))
                self.assertEqual(o.text, "%s.7.1 SASL login stranger@%s is not provisioned "
                                 "on this relay%s" % (str(code)[0], SASL_REALM,
                                                      ", contact support" if code == 550
                                                      else " yet, try again later"))
                self.h.wait_milter_log(
                    r"NOQUEUE: customer=sasl:stranger@%s login=stranger@%s sender=<[^>]*> "
                    r"nrcpt=0 action=%s reason=login_not_provisioned"
                    % (re.escape(SASL_REALM), re.escape(SASL_REALM),
                       "reject" if code == 550 else "tempfail"), since)
                ev = wait_until(lambda: [e for e in self.h.events()
                                         if e.get("reason") == "login_not_provisioned"
                                         and e.get("action") == ("reject" if code == 550
                                                                 else "tempfail")],
                                5, "the %s event" % mode)[-1]
                self.assertEqual(ev["login"], "stranger@" + SASL_REALM)
                # a mapped login is not affected
                self.assert_accepted(self.send("bob"))
        finally:
            self.h.write_milter_config()
            self.h.reload_milter()

    def test_g_hset_mapping_in_force_within_2s(self):
        carol = "carol@" + SASL_REALM
        o = self.send("carol")
        self.assert_accepted(o)
        self.assertEqual(self.decision(o)[0], "sasl:" + carol)
        self.h.redis("HSET", "relay:sasl", carol, "acme")
        t0 = time.monotonic()
        while True:
            self.log_at = self.h.milter_log_size()
            o = self.send("carol")
            self.assert_accepted(o)
            elapsed = time.monotonic() - t0
            if self.decision(o)[0] == "acme":
                break
            self.assertLess(elapsed, 2.0, "mapping not in force after %.2f s" % elapsed)
            time.sleep(0.1)  # a message every 0.1 s: far below the minute limit
        sys.stderr.write("measured: mapping in force %.2f s after HSET\n" % elapsed)
        self.assertLessEqual(elapsed, 2.0)


class PostfixCanonicalises(SaslCase):
    """smtpd_sasl_local_domain: Cyrus reports one spelling; no sasl.realm."""
    settings = {"limits": LIMITS}
    harness_args = {"sasl_users": {"bob": PW}, "sasl_local_domain": SASL_REALM}

    def test_one_spelling_reaches_the_milter(self):
        self.h.staff_edit("HSET", "relay:sasl", BOB, "acme")
        for login, mech in (("bob", "PLAIN"), (BOB, "LOGIN")):
            o = self.send(login, mech)
            self.assert_accepted(o)
            self.assertEqual(self.decision(o), ("acme", BOB), login)


if __name__ == "__main__":
    sys.exit(e2e_main.run(__doc__))
