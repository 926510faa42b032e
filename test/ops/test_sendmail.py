#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""test_sendmail - relaymilter behind a real Sendmail, with postfix-example/sendmail.mc.

    with-redis /usr/bin/python3 test_sendmail.py --milter PATH [unittest options]

Debian's sendmail-bin cannot be installed beside postfix (both are the
mail-transport-agent; installing one removes the other). So this test
fetches the packages sendmail-bin, sendmail-cf and libwrap0 with
`apt-get download` and unpacks them into a temp dir with dpkg-deb -x:
nothing is installed and the system's MTA is untouched. It builds a
sendmail.cf with m4 from a private .mc that includes the snippet
postfix-example/sendmail.mc unchanged (but for the milter port), and runs
that Sendmail as a daemon on a free 127.0.0.1 port, in a UTS namespace of
its own with a fully qualified host name (Sendmail waits a minute for an
unqualified one). Mail is only queued, never delivered.

Skipped (77) when not root, or when the packages, m4 or unshare are not
to be had.
"""

import glob
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import e2e_main  # noqa: E402
from harness_conf import free_port, listening, milter_config, wait_until  # noqa: E402

SNIPPET = os.path.join(HERE, "..", "..", "postfix-example", "sendmail.mc")
SETTINGS = {
    "limits": {"messages_per_minute": 2, "action": "tempfail"},
    "customers": [
        {"name": "sm-reject", "networks": ["127.0.6.0/24"],
         "limits": {"messages_per_minute": 1, "action": "reject"}},
        {"name": "sm-hold", "networks": ["127.0.5.0/24"],
         "limits": {"messages_per_minute": 1, "action": "hold"}},
    ],
}

MC = """divert(-1)dnl
include(`{cf}/m4/cf.m4')dnl
divert(0)dnl
VERSIONID(`relaymilter test')dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `mta.e2e.test')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`QUEUE_DIR', `{dir}/queue')dnl
define(`confPID_FILE', `{dir}/sendmail.pid')dnl
define(`STATUS_FILE', `{dir}/statistics')dnl
define(`ALIAS_FILE', `')dnl
define(`confHOST_STATUS_DIRECTORY', `')dnl
define(`confDEF_USER_ID', `daemon:daemon')dnl
define(`confSERVICE_SWITCH_FILE', `{dir}/service.switch')dnl
define(`confDELIVERY_MODE', `queueonly')dnl
FEATURE(`nocanonify')dnl
FEATURE(`no_default_msa')dnl
FEATURE(`accept_unresolvable_domains')dnl
DAEMON_OPTIONS(`Port={port}, Addr=127.0.0.1, Name=MTA')dnl
RELAY_DOMAIN(`127.0')dnl
include(`{dir}/snippet.mc')dnl
MAILER(`smtp')dnl
"""


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kw)


class ThroughSendmail(unittest.TestCase):
    dir = milter = sendmail = None

    @classmethod
    def setUpClass(cls):
        for tool in ("m4", "unshare", "apt-get", "dpkg-deb"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest("%s is not installed" % tool)
        cls.dir = tempfile.mkdtemp(prefix="rm-sendmail.")
        try:
            cls._unpack()
            cls._configure()
            cls._start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _unpack(cls):
        debs = os.path.join(cls.dir, "debs")
        os.mkdir(debs)
        os.chmod(cls.dir, 0o755)
        os.chmod(debs, 0o777)  # apt-get download runs as _apt where it can
        res = run(["apt-get", "download", "sendmail-bin", "sendmail-cf", "libwrap0"], cwd=debs,
                  timeout=300)
        if res.returncode != 0:
            raise unittest.SkipTest("apt-get download sendmail-bin failed:\n" + res.stdout)
        cls.root = os.path.join(cls.dir, "root")
        for deb in glob.glob(os.path.join(debs, "*.deb")):
            subprocess.run(["dpkg-deb", "-x", deb, cls.root], check=True)
        cls.binary = os.path.join(cls.root, "usr/libexec/sendmail/sendmail")
        # Unpacked setgid: the dynamic loader would ignore LD_LIBRARY_PATH.
        os.chmod(cls.binary, 0o755)
        cls.libdir = os.path.join(cls.root, "usr/lib/x86_64-linux-gnu")
        cls.cfdir = os.path.join(cls.root, "usr/share/sendmail/cf")

    @classmethod
    def _configure(cls):
        cls.milter_port, cls.port = free_port(), free_port()
        while cls.port == cls.milter_port:
            cls.port = free_port()
        with open(SNIPPET) as f:
            snippet = f.read()
        assert "S=inet:8890@127.0.0.1" in snippet, "the snippet's socket changed"
        with open(os.path.join(cls.dir, "snippet.mc"), "w") as f:
            f.write(snippet.replace("inet:8890@", "inet:%d@" % cls.milter_port))
        with open(os.path.join(cls.dir, "service.switch"), "w") as f:
            f.write("hosts files\naliases files\n")
        os.mkdir(os.path.join(cls.dir, "queue"), 0o700)
        mc = os.path.join(cls.dir, "test.mc")
        with open(mc, "w") as f:
            f.write(MC.format(cf=cls.cfdir, dir=cls.dir, port=cls.port))
        res = run(["m4", "-D_CF_DIR_=%s/" % cls.cfdir, mc])
        if res.returncode != 0 or "m4:" in res.stdout:
            raise AssertionError("m4 failed:\n" + res.stdout[-3000:])
        cls.cf_text = res.stdout
        cls.cf = os.path.join(cls.dir, "sendmail.cf")
        with open(cls.cf, "w") as f:
            f.write(res.stdout)
        cls.milter_conf = os.path.join(cls.dir, "relaymilter.conf")
        with open(cls.milter_conf, "w") as f:
            f.write(milter_config("inet:%d@127.0.0.1" % cls.milter_port,
                                  int(os.environ["RM_REDIS_PORT"]), SETTINGS))

    @classmethod
    def _start(cls):
        cls.milter_log = os.path.join(cls.dir, "relaymilter.log")
        with open(cls.milter_log, "w") as log:
            cls.milter = subprocess.Popen(
                [e2e_main.MILTER, "-c", cls.milter_conf], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=dict(os.environ, RELAYMILTER_LOG_STDERR="1"))
        wait_until(lambda: listening(cls.milter_port), 10, "relaymilter")
        with open(os.path.join(cls.dir, "sendmail.log"), "w") as log:
            cls.sendmail = subprocess.Popen(
                ["unshare", "--uts", "sh", "-c",
                 'hostname mta.e2e.test && exec "$0" -C "$1" -bD', cls.binary, cls.cf],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=dict(os.environ, LD_LIBRARY_PATH=cls.libdir))

        def up():
            if cls.sendmail.poll() is not None:
                raise RuntimeError("sendmail exited with %s: %s" % (
                    cls.sendmail.returncode,
                    open(os.path.join(cls.dir, "sendmail.log")).read()[-2000:]))
            return listening(cls.port)
        wait_until(up, 20, "sendmail on 127.0.0.1:%d" % cls.port)

    @classmethod
    def tearDownClass(cls):
        for proc in (cls.sendmail, cls.milter):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        if cls.dir and os.environ.get("RM_KEEP") != "1":
            shutil.rmtree(cls.dir, ignore_errors=True)

    def log(self):
        with open(self.milter_log, errors="replace") as f:
            return f.read()

    def send(self, source, rcpt="rcpt@example.net"):
        """(code, text) at the end of DATA, or of the first refusal."""
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=30, source_address=(source, 0))
        try:
            s.ehlo("client.e2e.test")
            code, text = s.mail("sender@e2e.test")
            if code == 250:
                code, text = s.rcpt(rcpt)
            if code == 250:
                try:
                    code, text = s.data(b"Subject: sendmail e2e\r\n\r\nhello\r\n")
                except smtplib.SMTPDataError as e:
                    code, text = e.smtp_code, e.smtp_error
            return code, text.decode(errors="replace")
        finally:
            s.quit()

    def test_0_cf_has_the_snippet(self):
        self.assertIn("\nXrelaymilter, S=inet:%d@127.0.0.1, F=T, T=S:10s;R:10s;E:30s\n"
                      % self.milter_port, self.cf_text)
        for line in ("O Milter.macros.data=i", "O Milter.macros.eom={msg_id}, i"):
            self.assertIn("\n" + line + "\n", self.cf_text)
        envfrom = [ln for ln in self.cf_text.split("\n") if ln.startswith("O Milter.macros.envfrom=")]
        self.assertEqual(len(envfrom), 1)
        self.assertIn("{auth_authen}", envfrom[0])

    def test_quota_tempfail(self):
        self.assertEqual(self.send("127.0.7.1")[0], 250)
        code, text = self.send("127.0.7.1")
        self.assertEqual(code, 250, text)
        code, text = self.send("127.0.7.1")
        self.assertEqual(code, 451, text)
        self.assertTrue(text.startswith("4.7.1 quota exceeded: messages_per_minute 2 for "
                                        "ip:127.0.7.1, retry in "), text)
        # The queue id (macro i) reached the milter: decision lines carry
        # Sendmail's queue ids, not NOQUEUE.
        lines = [ln for ln in self.log().split("\n") if "customer=ip:127.0.7.1" in ln]
        self.assertEqual(len(lines), 3, self.log())
        for ln in lines:
            self.assertRegex(ln, r"relaymilter: [0-9A-Za-z]{14}: customer=ip:127\.0\.7\.1 ")
        self.assertIn("action=tempfail reason=messages_per_minute", lines[-1])

    def test_quota_reject(self):
        self.assertEqual(self.send("127.0.6.1")[0], 250)
        code, text = self.send("127.0.6.1")
        self.assertEqual(code, 550, text)
        self.assertTrue(text.startswith("5.7.1 quota exceeded: messages_per_minute 1 for sm-reject"),
                        text)

    def test_hold_quarantines(self):
        self.assertEqual(self.send("127.0.5.1")[0], 250)
        code, text = self.send("127.0.5.1")
        self.assertEqual(code, 250, text)  # accepted, into quarantine
        qid = text.split()[1]
        # Sendmail keeps a quarantined message's control file as hf<ID>.
        wait_until(lambda: os.path.exists(os.path.join(self.dir, "queue", "hf" + qid)), 5,
                   "quarantined control file hf%s" % qid,
                   lambda: str(os.listdir(os.path.join(self.dir, "queue"))))


if __name__ == "__main__":
    sys.exit(e2e_main.run(__doc__, need_with_redis=True))
