#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""test_memcheck - relaymilter under valgrind memcheck, through an end-to-end batch.

    with-redis /usr/bin/python3 test_memcheck.py --milter PATH [unittest options]

Needs root (Postfix) and valgrind; exits 77 (skipped) without them. The
harness of test/e2e (a private Postfix on loopback relaying into smtp-sink)
starts the milter through a wrapper script that execs
valgrind --tool=memcheck on the binary given, so every callback, the Redis
pool, the reload and the shutdown run under memcheck.

The batch, a few hundred messages sent by several client threads at once:
  - accepted mail with one and with several recipients, from many customers
    ("ip:127.0.20.N" and so on), each until its messages_per_minute is used
    up, then over quota: 451 4.7.1;
  - a customer with action "reject" (550 5.7.1) and one with "hold" (accepted
    into Postfix's hold queue);
  - messages with more than max_recipients (452 4.5.3 for the extra ones) or
    a blocked recipient domain (550 5.7.1 for that recipient);
  - connections that give up: RSET after RCPT, QUIT before DATA, a client
    gone in the middle of DATA (its charge is refunded);
  - in the middle of the traffic, a SIGHUP reload that adds a customer and
    changes the Redis pool (a new store, the old one freed when its last
    message is done), a failed reload, and a reload that keeps the store.
Every SMTP reply is checked, each accepted message must carry a decision
line in the milter's log, and the sink must receive exactly the accepted
messages that were not held: the run really went through the daemon. Then
SIGTERM: the daemon must exit 0, and the valgrind log must show no error
(invalid read or write, uninitialised value, bad free) and nothing
definitely or indirectly lost. On failure the valgrind log is printed.
RM_KEEP=1 keeps the temp dirs (the harness's and the valgrind log's).
"""

import concurrent.futures
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import e2e_main  # noqa: E402
from harness_conf import wait_until  # noqa: E402
from postfix_harness import Harness, _tail  # noqa: E402

SUPPRESSIONS = os.path.join(HERE, "valgrind.supp")
VALGRIND_OPTS = [
    "--tool=memcheck", "--leak-check=full",
    "--show-leak-kinds=definite,indirect,possible",
    "--errors-for-leak-kinds=definite,indirect",
    "--error-exitcode=99", "--track-fds=no", "--num-callers=40",
]

LIMIT = 4  # messages_per_minute of every customer but the reloaded one
LIMITS = {
    "messages_per_minute": LIMIT, "messages_per_hour": 1000, "messages_per_day": 10000,
    "recipients_per_minute": 200, "recipients_per_hour": 5000, "recipients_per_day": 50000,
    "sender_messages_per_hour": 500, "max_recipients": 3, "action": "tempfail",
}
CUSTOMERS = [
    {"name": "mc-reject-a", "networks": ["127.0.1.0/24"], "limits": {"action": "reject"}},
    {"name": "mc-hold-a", "networks": ["127.0.2.0/24"], "limits": {"action": "hold"}},
    {"name": "mc-reject-b", "networks": ["127.0.5.0/24"], "limits": {"action": "reject"}},
    {"name": "mc-hold-b", "networks": ["127.0.6.0/24"], "limits": {"action": "hold"}},
]
# Generous Redis timeouts: under valgrind the daemon is many times slower,
# and a timeout would turn into on_store_error's "accept", not a quota reply.
REDIS = {"connect_timeout_ms": 3000, "command_timeout_ms": 3000, "pool_size": 4}
SETTINGS = {"redis": REDIS, "limits": LIMITS, "customers": CUSTOMERS,
            "blocked_recipient_domains": ["spamtrap.example"]}
RELOADED_LIMIT = 2
RELOADED = {"name": "mc-reloaded", "networks": ["127.0.3.0/24"],
            "limits": {"messages_per_minute": RELOADED_LIMIT}}
# After the first reload: one more customer, and another Redis pool size, so
# the daemon builds a new store and frees the old one.
SETTINGS_RELOADED = dict(SETTINGS, redis=dict(REDIS, pool_size=3),
                         customers=CUSTOMERS + [RELOADED])

N_QUOTA = 30     # customers per phase that fill their quota, then go over
N_MAXRCPT = 10   # clients per phase sending too many / blocked recipients
N_ABORT = 3      # clients per phase whose connections give up
RCPT_CYCLE = [1, 3, 1, 2]  # recipients of the accepted messages, in turn
WORKERS = 6      # client threads: that many SMTP sessions at once

QUOTA_TEXT = r"quota exceeded: messages_per_minute %d for %s, retry in \d+[smh]$"
START_TIMEOUT = 120  # seconds for valgrind to start the milter (harness: 10)
STOP_TIMEOUT = 300   # ... and to stop it and check for leaks


def rcpts(n, domain="example.net"):
    return ["rcpt%d@%s" % (i, domain) for i in range(1, n + 1)]


def sender_of(src):
    return "mc-%s@memcheck.test" % src.replace(".", "-")


class ValgrindHarness(Harness):
    """The e2e harness with timeouts for a milter that runs under valgrind."""
    start_timeout = START_TIMEOUT
    stop_timeout = STOP_TIMEOUT


class Tally:
    """What the batch sent and what it expects, filled by the client threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.problems = []
        self.to_sink = {}   # queue id -> recipients it must reach the sink with
        self.held = set()   # queue ids that must sit in the hold queue
        self.sent = 0       # messages offered (MAIL FROM given)

    def problem(self, what, outcome=None):
        with self.lock:
            self.problems.append(what if outcome is None else "%s: %s" % (what, outcome))

    def accepted(self, o, rcpt_list, held=False):
        with self.lock:
            if held:
                self.held.add(o.queue_id)
            else:
                self.to_sink[o.queue_id] = rcpt_list

    def count(self, n=1):
        with self.lock:
            self.sent += n


class Batch:
    """The scenarios, each run by one client thread, sequentially for its source
    address (so its customer's quota is used up in order)."""

    def __init__(self, h, tally):
        self.h, self.t = h, tally

    def send(self, src, rcpt_list, subject="memcheck"):
        self.t.count()
        return self.h.send(sender_of(src), rcpt_list, source=src, subject=subject)

    def expect_accepted(self, src, o, rcpt_list, held=False):
        if (o.stage, o.code) != ("accepted", 250) or not o.queue_id:
            self.t.problem("%s: expected 250 queued" % src, o)
            return False
        self.t.accepted(o, rcpt_list, held)
        return True

    def expect_refused(self, src, o, stage, code, text_rx):
        if (o.stage, o.code) != (stage, code) or not re.search(text_rx, o.text):
            self.t.problem("%s: expected %s %d /%s/" % (src, stage, code, text_rx), o)

    def quota(self, src, customer, action="tempfail", limit=LIMIT, over=2):
        """limit messages accepted, then over more: refused or held by action."""
        for i in range(limit):
            r = rcpts(RCPT_CYCLE[i % len(RCPT_CYCLE)])
            self.expect_accepted(src, self.send(src, r), r)
        quota_rx = QUOTA_TEXT % (limit, re.escape(customer))
        for _ in range(over):
            o = self.send(src, rcpts(1), subject="over quota")
            if action == "tempfail":
                self.expect_refused(src, o, "data", 451, r"^4\.7\.1 " + quota_rx)
            elif action == "reject":
                self.expect_refused(src, o, "data", 550, r"^5\.7\.1 " + quota_rx)
            else:  # hold: the client cannot tell
                self.expect_accepted(src, o, rcpts(1), held=True)

    def recipients(self, src):
        """Too many recipients, then a blocked recipient domain."""
        o = self.send(src, rcpts(5))
        if self.expect_accepted(src, o, rcpts(3)):
            if sorted(o.refused) != rcpts(5)[3:] or any(
                    c != 452 or not re.match(r"4\.5\.3 .*max_recipients 3", t)
                    for c, t in o.refused.values()):
                self.t.problem("%s: expected 452 4.5.3 for rcpt4, rcpt5" % src, o)
        mixed = rcpts(1) + ["trap@spamtrap.example"]
        o = self.send(src, mixed)
        if self.expect_accepted(src, o, rcpts(1)):
            if list(o.refused) != ["trap@spamtrap.example"] or \
                    o.refused["trap@spamtrap.example"][0] != 550:
                self.t.problem("%s: expected 550 for the blocked recipient" % src, o)

    def aborts(self, src):
        """RSET after RCPT, QUIT before DATA, and a client gone during DATA."""
        sender = sender_of(src)
        s = self.h.smtp(src)
        try:
            replies = [s.mail(sender)[0], s.rcpt(rcpts(1)[0])[0], s.rcpt(rcpts(2)[1])[0],
                       s.rset()[0], s.mail(sender)[0], s.rcpt(rcpts(1)[0])[0]]
            s.quit()
        finally:
            s.close()
        self.t.count(2)
        if replies != [250] * 6:
            self.t.problem("%s: RSET/QUIT dialogue got %s" % (src, replies))
        s = self.h.smtp(src)
        try:
            replies = [s.mail(sender)[0], s.rcpt(rcpts(1)[0])[0], s.docmd("DATA")[0]]
            s.send(b"Subject: never finished\r\n\r\nhalf a messa")
        finally:
            s.close()  # the client goes away in the middle of DATA
        self.t.count()
        if replies != [250, 250, 354]:
            self.t.problem("%s: DATA dialogue got %s" % (src, replies))

    def phase(self, pool, net_quota, net_rcpt, net_abort, reject, hold, extra=()):
        """Submits one phase's scenarios; returns their futures."""
        jobs = [(self.quota, reject[0], reject[1], "reject"),
                (self.quota, hold[0], hold[1], "hold")]
        for i in range(1, N_QUOTA + 1):
            src = "%s.%d" % (net_quota, i)
            jobs.append((self.quota, src, "ip:" + src))
        jobs += [(self.recipients, "%s.%d" % (net_rcpt, i)) for i in range(1, N_MAXRCPT + 1)]
        jobs += [(self.aborts, "%s.%d" % (net_abort, i)) for i in range(1, N_ABORT + 1)]
        jobs += list(extra)
        return [pool.submit(*job) for job in jobs]


def valgrind_findings(log):
    """What in a memcheck log breaks the requirement; [] if nothing."""
    found = []
    m = re.search(r"ERROR SUMMARY: (\d+) errors", log)
    if m is None:
        return ["valgrind wrote no ERROR SUMMARY: the daemon did not exit normally"]
    if int(m.group(1)) != 0:
        found.append("valgrind: " + m.group(0))
    if "All heap blocks were freed -- no leaks are possible" in log:
        return found
    if "LEAK SUMMARY" not in log:
        found.append("valgrind wrote no LEAK SUMMARY: the leak check did not run")
    for kind in ("definitely lost", "indirectly lost"):
        m = re.search(r"%s: ([\d,]+) bytes in ([\d,]+) blocks" % kind, log)
        if m is None:
            found.append("valgrind: no '%s' line in the LEAK SUMMARY" % kind)
        elif m.group(1) != "0":
            found.append("valgrind: %s" % m.group(0))
    # "still reachable" is no failure, and "possibly lost" is none as long as
    # each such block was allocated for a thread of libmilter's. The daemon
    # joins its own threads (milter, reload) before main returns, but
    # libmilter joins none of the threads it starts: its signal-control
    # thread (mi_control_startup), its worker pool's controller
    # (mi_pool_controller_init) and the pool's idle session threads
    # (mi_start_session) are still alive at exit. What glibc allocated for
    # their thread-local storage (allocate_dtv, from pthread_create) is only
    # pointed into, so memcheck calls it "possibly lost"; the copies of the
    # socket name and the filter description libmilter keeps, and its threads'
    # buffers, are "still reachable". Neither grows with the traffic, and
    # neither is the daemon's to free. The possibly lost records are shown in
    # the log (--show-leak-kinds) so that this is checked, not assumed.
    for rec in re.finditer(r"==\d+== ([\d,]+ bytes in [\d,]+ blocks) are possibly lost "
                           r"in loss record [^\n]*\n((?:==\d+==  +\S[^\n]*\n)+)", log):
        stack = rec.group(2)
        if not (re.search(r"\bpthread_create\b", stack) and "allocate_dtv" in stack
                and "libmilter.so" in stack):
            found.append("valgrind: %s possibly lost, not in a thread of libmilter's:\n%s"
                         % (rec.group(1), stack))
    return found


class MemcheckBatch(e2e_main.HarnessCase):
    settings = SETTINGS
    harness = ValgrindHarness

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rm-memcheck.")
        os.chmod(cls.tmp, 0o755)
        cls.vg_log = os.path.join(cls.tmp, "valgrind.log")
        cls.wrapper = os.path.join(cls.tmp, "relaymilter-memcheck")
        opts = VALGRIND_OPTS + ["--log-file=" + cls.vg_log]
        if os.path.exists(SUPPRESSIONS):
            opts.append("--suppressions=" + SUPPRESSIONS)
        with open(cls.wrapper, "w") as f:
            f.write("#!/bin/sh\nexec %s %s %s \"$@\"\n" % (
                shutil.which("valgrind"), " ".join("'%s'" % o for o in opts),
                e2e_main.MILTER))
        os.chmod(cls.wrapper, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP
                 | stat.S_IROTH | stat.S_IXOTH)
        # The milter's process is valgrind's, which the harness's reaper does
        # not recognise as relaymilter; it is a child of this process, though,
        # so the harness's stop (or a ctest timeout) ends it by its PID.
        cls.milter = cls.wrapper
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            if os.environ.get("RM_KEEP") == "1":
                sys.stderr.write("RM_KEEP=1: kept %s\n" % cls.tmp)
            else:
                shutil.rmtree(cls.tmp, ignore_errors=True)

    def valgrind_log(self):
        try:
            with open(self.vg_log, errors="replace") as f:
                return f.read()
        except OSError as e:
            return "(no valgrind log: %s)" % e

    def reload(self, settings=None, expect_ok=True, append=None):
        self.h.write_milter_config(settings)
        if append is not None:
            with open(self.h.milter_conf, "a") as f:
                f.write(append)
        self.h.reload_milter(expect_ok=expect_ok, timeout=60)

    def test_batch(self):
        h, t = self.h, Tally()
        b = Batch(h, t)
        h.redis("FLUSHALL")
        started = time.monotonic()
        problems = []
        try:
            self.run_batch(b)
            problems += t.problems
            problems += self.check_delivery(t)
        except Exception as e:  # still stop the milter and read the log
            problems += t.problems + ["batch aborted: %r" % e]
        batch_secs = time.monotonic() - started
        try:
            h.stop_milter()  # SIGTERM; raises unless the exit status is 0
        except Exception as e:
            problems.append("stopping the milter: %s" % e)
        log = self.valgrind_log()
        problems += valgrind_findings(log)
        print("memcheck batch: %d messages, %d delivered, %d held, %.0fs; milter stopped "
              "after %.0fs" % (t.sent, len(t.to_sink), len(t.held), batch_secs,
                               time.monotonic() - started - batch_secs))
        summary = re.findall(r"==\d+== +(?:ERROR SUMMARY|(?:definitely|indirectly|possibly) "
                             r"lost|still reachable|All heap).*", log)
        print("\n".join(summary))
        if problems:
            self.fail("\n".join(problems) + "\n--- valgrind log %s ---\n%s"
                      "\n--- relaymilter log (tail) ---\n%s"
                      % (self.vg_log, log, _tail(h.milter_log_path, 60)))

    def run_batch(self, b):
        h = self.h
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            futs = b.phase(pool, "127.0.20", "127.0.21", "127.0.24",
                           ("127.0.1.1", "mc-reject-a"), ("127.0.2.1", "mc-hold-a"))
            # The reloads come while the first phase's traffic still flows.
            self.wait_done(futs, len(futs) // 2)
            self.reload(SETTINGS_RELOADED)
            self.reload(SETTINGS_RELOADED, expect_ok=False, append="no_such_key = 1;\n")
            self.wait_done(futs, len(futs))
            extra = [(b.quota, "127.0.3.1", "mc-reloaded", "tempfail", RELOADED_LIMIT)]
            futs = b.phase(pool, "127.0.22", "127.0.23", "127.0.25",
                           ("127.0.5.1", "mc-reject-b"), ("127.0.6.1", "mc-hold-b"), extra)
            self.wait_done(futs, len(futs) // 2)
            self.reload(SETTINGS_RELOADED)  # same redis{}: the store is kept
            self.wait_done(futs, len(futs))
        self.assertEqual(h.milter_log().count("configuration reloaded"), 2)

    @staticmethod
    def wait_done(futs, n):
        """Until n of futs are done; re-raises what a client thread raised."""
        def done():
            return sum(f.done() for f in futs) >= n
        wait_until(done, 600, "%d of %d client jobs" % (n, len(futs)), interval=0.2)
        for f in futs:
            if f.done():
                f.result()

    def check_delivery(self, t):
        """The sink got exactly the accepted messages that were not held, the
        hold queue has the held ones, and the milter decided each of them."""
        h, problems = self.h, []
        try:
            h.wait_for_deliveries(len(t.to_sink), timeout=300)
        except TimeoutError as e:
            problems.append(str(e))
        time.sleep(2)  # anything more would be a message nobody expected
        got = {m.queue_id: m.recipients for m in h.sink_messages()}
        if got != t.to_sink:
            problems.append("sink: %d messages, expected %d; missing %s, unexpected %s, "
                            "wrong recipients %s" % (
                                len(got), len(t.to_sink), sorted(set(t.to_sink) - set(got)),
                                sorted(set(got) - set(t.to_sink)),
                                sorted(q for q in got if q in t.to_sink
                                       and got[q] != t.to_sink[q])))
        if set(h.hold_queue()) != t.held:
            problems.append("hold queue %s, expected %s" % (h.hold_queue(), sorted(t.held)))
        log = h.milter_log()
        decided = set(re.findall(r"(\w+): customer=\S+ login=\S+ sender=<[^>]*> nrcpt=\d+ "
                                 r"action=(?:accept|hold)", log))
        undecided = sorted((set(t.to_sink) | t.held) - decided)
        if undecided:
            problems.append("no decision line in the milter log for %s" % undecided)
        refunds = len(re.findall(r"transaction aborted, charge refunded", log))
        if refunds != 2 * N_ABORT:
            problems.append("%d refund lines in the milter log, expected %d"
                            % (refunds, 2 * N_ABORT))
        # The milter answered every time: Postfix never fell back to
        # milter_default_action (which accepts).
        warnings = [ln for ln in h.maillog().splitlines()
                    if re.search(r"warning: .*milter", ln)]
        if warnings:
            problems.append("Postfix warned about the milter:\n" + "\n".join(warnings[:20]))
        return problems


if __name__ == "__main__":
    if shutil.which("valgrind") is None:
        print("SKIP: valgrind is not installed")
        sys.exit(77)
    sys.exit(e2e_main.run(__doc__))
