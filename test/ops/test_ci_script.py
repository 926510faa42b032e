#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""test_ci_script - postfix-example/ci-test.sh against a real, private Postfix.

    with-redis /usr/bin/python3 test_ci_script.py --milter PATH [unittest options]

The script users run in their CI (ci-test.sh HOST PORT) runs here unchanged
against the Postfix + relaymilter of test/e2e/postfix_harness.py and the
Redis of test/lib/with-redis. It must pass there, leave the customer's Redis
limits as it found them, and fail (exit 1) when the replies are wrong: with
the milter stopped, Postfix accepts everything (milter_default_action =
accept). It reaches Redis only through relaymilter-ctl (--ctl: the built one,
$RM_CTL, else the one beside the milter, with the milter's config). With
--auth-user it runs against the harness's Postfix with Cyrus SASL, relaying
for logins only: the customer it picks is the one relaymilter makes of the
login (relaymilter-ctl whois: the PREFIXsasl hash, customers[].sasl, else
sasl:LOGIN in canonical form with sasl.realm). Needs root (Postfix).
"""

import os
import re
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import e2e_main  # noqa: E402
from postfix_harness import SASL_REALM  # noqa: E402

SCRIPT = os.path.join(HERE, "..", "..", "postfix-example", "ci-test.sh")
# the built relaymilter-ctl: $RM_CTL (set by test/ops/CMakeLists.txt), else
# the one built beside the milter
CTL = os.environ.get("RM_CTL")
# The sample's defaults, as a user's relay would have them.
SETTINGS = {"limits": {"messages_per_minute": 60, "messages_per_hour": 1000,
                       "max_recipients": 100, "action": "tempfail"}}


class CiScriptCase(e2e_main.HarnessCase):
    settings = SETTINGS

    def setUp(self):
        self.h.redis("FLUSHALL")
        if not self.h.milter_alive():
            self.h.start_milter()

    def ctl(self, *args):
        """How ci-test.sh runs relaymilter-ctl: with the milter's config."""
        path = CTL or os.path.join(os.path.dirname(e2e_main.MILTER), "relaymilter-ctl")
        return shlex.join([path, "-c", self.h.milter_conf] + list(args))

    def run_script(self, *args, source="127.0.0.1"):
        argv = ["sh", SCRIPT, "--ctl", self.ctl(), "--source", source] + list(args) + [
            "127.0.0.1", str(self.h.smtpd_port)]
        res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=120)
        sys.stderr.write(res.stdout)
        self.assertNotIn("could not restore", res.stdout)
        return res


class CiScript(CiScriptCase):

    def test_passes_against_postfix(self):
        # A limit override and a field relaymilter ignores: both are kept.
        self.h.redis("HSET", "relay:limits:ip:127.0.5.1", "messages_per_hour", "777",
                     "action", "reject", "note", "kept")
        res = self.run_script(source="127.0.5.1")
        self.assertEqual(res.returncode, 0, res.stdout)
        lines = res.stdout.strip().split("\n")
        self.assertEqual(lines[-1], "5 passed, 0 failed")
        self.assertIn("customer ip:127.0.5.1", res.stdout)
        self.assertRegex(res.stdout, r"ok: message 4, over messages_per_minute 3: 451 4\.7\.1 "
                                     r"quota exceeded: messages_per_minute 3 for ip:127\.0\.5\.1")
        self.assertRegex(res.stdout, r"ok: over the limit with action reject: 550 5\.7\.1 ")
        # The three messages under the limit went through Postfix to the sink.
        self.h.wait_for_deliveries(3)
        # The customer's own override is back, nothing else is left behind.
        self.assertEqual(self.h.redis_json("HGETALL", "relay:limits:ip:127.0.5.1"),
                         {"messages_per_hour": "777", "action": "reject", "note": "kept"})
        self.assertEqual(self.h.redis("--scan", "--pattern", "relay:q*"), "")

    def test_limit_and_customer_options(self):
        self.h.redis("FLUSHALL")
        res = self.run_script("--limit", "1", "--customer", "ip:127.0.5.2",
                              source="127.0.5.2")
        self.assertEqual(res.returncode, 0, res.stdout)
        self.assertEqual(res.stdout.strip().split("\n")[-1], "3 passed, 0 failed")
        self.assertEqual(self.h.redis("EXISTS", "relay:limits:ip:127.0.5.2"), "0")

    def test_fails_with_the_wrong_customer(self):
        # The limit goes to a customer that is not us: nothing is refused.
        res = self.run_script("--customer", "nobody", source="127.0.5.3")
        self.assertEqual(res.returncode, 1, res.stdout)
        self.assertIn("FAIL: message 4, over messages_per_minute 3", res.stdout)
        self.assertIn("hint:", res.stdout)

    def test_fails_without_the_milter(self):
        self.h.stop_milter()
        try:
            res = self.run_script(source="127.0.5.4")
        finally:
            self.h.start_milter()
        self.assertEqual(res.returncode, 1, res.stdout)
        self.assertIn("3 passed, 2 failed", res.stdout)

    def test_restore_failing_is_exit_2_and_other_steps_run(self):
        # A tool that refuses the unset step: the run fails (exit 2), and the
        # steps after it (the counters' reset) still run.
        self.h.redis("FLUSHALL")
        with tempfile.TemporaryDirectory(prefix="rm-ci.") as tmp:
            wrapper = os.path.join(tmp, "ctl")
            with open(wrapper, "w") as f:
                f.write('#!/bin/sh\ncase " $* " in *" unset "*) echo refused >&2; '
                        'exit 1 ;; esac\nexec %s "$@"\n' % self.ctl())
            os.chmod(wrapper, 0o755)
            argv = ["sh", SCRIPT, "--ctl", wrapper, "--source", "127.0.5.5",
                    "127.0.0.1", str(self.h.smtpd_port)]
            res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, timeout=120)
        sys.stderr.write(res.stdout)
        self.assertEqual(res.returncode, 2, res.stdout)
        self.assertIn("could not restore ip:127.0.5.5", res.stdout)
        self.assertEqual(res.stdout.strip().split("\n")[-1], "5 passed, 0 failed")
        self.assertEqual(self.h.redis("--scan", "--pattern", "relay:q*"), "")

    def test_sigterm_puts_the_limits_back(self):
        # A CI job cancelled while the test's limits are set: exit 143, the
        # customer's override as it was, no counters left.
        self.h.redis("FLUSHALL")
        self.h.redis("HSET", "relay:limits:ip:127.0.5.6", "messages_per_hour", "55")
        argv = ["sh", SCRIPT, "--ctl", self.ctl(), "--source", "127.0.5.6",
                "127.0.0.1", str(self.h.smtpd_port)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        try:
            out = ""
            while "limits lifted" not in out:  # the test's limits are in Redis
                line = proc.stdout.readline()
                self.assertTrue(line, out)
                out += line
            proc.terminate()
            out += proc.communicate(timeout=60)[0]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        sys.stderr.write(out)
        self.assertEqual(proc.returncode, 143, out)
        self.assertEqual(self.h.redis_json("HGETALL", "relay:limits:ip:127.0.5.6"),
                         {"messages_per_hour": "55"})
        self.assertEqual(self.h.redis("--scan", "--pattern", "relay:q*"), "")

    def test_no_redis_is_exit_2(self):
        for ctl in (self.ctl("-p", "1"), "/nonexistent/relaymilter-ctl"):
            argv = ["sh", SCRIPT, "--ctl", ctl, "127.0.0.1", str(self.h.smtpd_port)]
            res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, timeout=60)
            self.assertEqual(res.returncode, 2, res.stdout)
            self.assertIn("cannot use Redis through relaymilter-ctl", res.stdout)

    def test_usage(self):
        res = subprocess.run(["sh", SCRIPT, "onlyhost"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=30)
        self.assertEqual(res.returncode, 2)
        self.assertIn("ci-test.sh [OPTIONS] HOST PORT", res.stdout)


class CiScriptSasl(CiScriptCase):
    """ci-test.sh --auth-user against the same Postfix with Cyrus SASL (the
    harness's private sasldb), relaying for logins only: 127.0.6.x is not in
    mynetworks. relaymilter reads logins in the realm SASL_REALM."""
    settings = dict(SETTINGS, sasl={"realm": SASL_REALM},
                    customers=[{"name": "ci-config", "sasl": ["cfg-user"]}])
    harness_args = {"sasl_users": {"ci-user": "ci-secret", "Mixed.Case": "mixed-secret",
                                   "cfg-user": "cfg-secret"},
                    "mynetworks": "127.0.0.1/32"}

    def auth(self, user, password, *extra, source="127.0.6.1"):
        with tempfile.NamedTemporaryFile("w", prefix="rm-ci-pw.") as pw:
            pw.write(password + "\n")
            pw.flush()
            return self.run_script("--auth-user", user, "--auth-password-file", pw.name,
                                   *extra, source=source)

    def assert_passed_for(self, res, customer):
        self.assertEqual(res.returncode, 0, res.stdout)
        self.assertEqual(res.stdout.strip().split("\n")[-1], "6 passed, 0 failed")
        self.assertIn("customer %s," % customer, res.stdout)
        # The milter named the same customer in its refusal.
        self.assertRegex(res.stdout, r"ok: message 4, .*: 451 4\.7\.1 quota exceeded: "
                                     r"messages_per_minute 3 for %s" % re.escape(customer))

    def test_default_customer_is_the_login(self):
        res = self.auth("ci-user", "ci-secret")
        self.assert_passed_for(res, "sasl:ci-user@" + SASL_REALM)
        self.assertIn("ok: AUTH as ci-user accepted", res.stdout)
        self.h.wait_for_deliveries(3)
        self.assertEqual(self.h.redis("--scan", "--pattern", "relay:limits:*"), "")

    def test_login_in_canonical_form(self):
        res = self.auth("Mixed.Case", "mixed-secret", source="127.0.6.2")
        self.assert_passed_for(res, "sasl:mixed.case@" + SASL_REALM)

    def test_login_mapped_in_redis(self):
        self.h.redis("HSET", "relay:sasl", "ci-user@" + SASL_REALM, "ci-customer")
        res = self.auth("ci-user", "ci-secret", source="127.0.6.3")
        self.assert_passed_for(res, "ci-customer")

    def test_login_mapped_in_the_config(self):
        # customers[].sasl: relaymilter-ctl whois reads the same config.
        res = self.auth("cfg-user", "cfg-secret", source="127.0.6.4")
        self.assert_passed_for(res, "ci-config")

    def test_without_auth_postfix_refuses(self):
        res = self.run_script(source="127.0.6.5")
        self.assertEqual(res.returncode, 1, res.stdout)
        self.assertIn("Relay access denied", res.stdout)

    def test_wrong_password(self):
        res = self.auth("ci-user", "not-the-password", source="127.0.6.6")
        self.assertEqual(res.returncode, 1, res.stdout)
        self.assertIn("FAIL: AUTH as ci-user: 535", res.stdout)
        self.assertEqual(res.stdout.strip().split("\n")[-1], "0 passed, 1 failed")

    def test_auth_user_needs_a_password(self):
        res = self.run_script("--auth-user", "ci-user", source="127.0.6.7")
        self.assertEqual(res.returncode, 2, res.stdout)
        self.assertIn("--auth-user needs", res.stdout)


if __name__ == "__main__":
    sys.exit(e2e_main.run(__doc__, need_with_redis=True))
