#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""postfix_compare - what relaymilter costs a real Postfix.

    python3 postfix_compare.py --milter PATH [--quick] [--rounds N] [--msgs N]

A private Postfix (test/e2e/postfix_harness.py: loopback only, relaying
everything to smtp-sink) gets three smtpd listeners:
    none       smtpd_milters empty: Postfix alone
    inet       the harness's relaymilter on inet:127.0.0.1:PORT
    unix       a second relaymilter (same Redis, same settings) on unix:PATH
    inet-keep  a third, on inet:, with aborted_charge = "keep": it accepts at
               DATA, and Postfix skips the end-of-message stage
and, when their binaries are given (run_all.sh gives them), two reference
filters on inet: that negotiate what relaymilter negotiates and answer
"continue" at once, without policy or Redis:
    noop-libmilter  built on libmilter (test/bench/noop_libmilter.c): the
                    floor of any filter on this libmilter
    noop-raw        the milter protocol spoken directly, a thread per
                    connection (test/bench/noop_raw.c): the floor of the
                    protocol itself, what Postfix's own milter client costs
and smtp-source sends through each in turn:
  - throughput: 5000 messages of 2 KiB, 20 parallel sessions (a new SMTP
    session per message, as smtp-source does without -d), with 1 and with 10
    recipients per message;
  - sequential latency: one session (-d) sending 1000 messages one after
    the other; the added latency per message is
    (time with the milter - time without) / messages;
  - per-message latency: one session of our own (no pipelining) timing each
    transaction, MAIL FROM to the reply after the final dot: p50 / p99 / max
    and the count of transactions of 30 ms or more, where a small-write
    (Nagle / delayed-ACK) stall of about 40 ms would show.
The listeners are measured round-robin in every round (the order rotates),
each run after Postfix has delivered the previous run's mail, so all see
the same machine. The table shows medians over rounds and the ratio with /
without. CPU per message is the milter's and Redis's CPU time
(/proc/PID/stat, utime + stime, all threads) over the run, divided by the
messages; the machine's CPU per message (/proc/stat: every process, the
kernel, until delivered) shows what the whole set costs, with and without.

Needs root (Postfix). The limits are far above the load: every message is
checked and charged against the 4 counters of the default windows, and
accepted. smtp-source cannot log in, so every message belongs to one
customer (ip:127.0.0.1) and one sender: the same 4 keys, the hottest case
for Redis.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import time

import benchlib as bl

SECTION = "postfix"
from harness_conf import free_port, listening, stop_process, wait_until
from postfix_harness import Harness

SMTP_SOURCE = "/usr/sbin/smtp-source"


REFERENCES = ("noop-libmilter", "noop-raw", "noop-raw-accept")


class Reference:
    """A reference filter (noop_libmilter or noop_raw) on a loopback port."""

    def __init__(self, binary, args=()):
        self.binary = binary
        self.args = list(args)
        self.port = free_port()
        self.postfix_spec = "inet:127.0.0.1:%d" % self.port
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        self.proc = subprocess.Popen([self.binary] + self.args + ["inet:%d@127.0.0.1"
                                                                  % self.port],
                                     stdin=subprocess.DEVNULL)
        bl._cleanups.append(lambda: stop_process(self.proc))
        wait_until(lambda: listening(self.port), 10, "%s on port %d"
                   % (self.binary, self.port))
        return self


class Bench:
    def __init__(self, a):
        self.a = a
        self.redis = bl.shared_redis()
        self.h = Harness(a.milter, bl.BENCH_SETTINGS, redis_port=self.redis.port,
                         redis_sock=self.redis.sock)

    def start(self):
        self.h.start()
        bl._cleanups.append(self.h.stop)
        self.unix_milter = bl.Milter(self.a.milter, self.redis, "unix").start()
        self.keep_milter = bl.Milter(self.a.milter, self.redis, "inet",
                                     settings={"aborted_charge": "keep"}).start()
        self.ports = {"inet": self.h.smtpd_port}
        self.refs = {m: Reference(b, ["-a"] if m == "noop-raw-accept" else []).start()
                     for m, b in self.a.references.items()}
        specs = {"none": "", "unix": self.unix_milter.postfix_spec,
                 "inet-keep": self.keep_milter.postfix_spec}
        specs.update({m: r.postfix_spec for m, r in self.refs.items()})
        with open(os.path.join(self.h.etc, "master.cf"), "a") as f:
            for mode, spec in specs.items():
                self.ports[mode] = free_port()
                f.write("127.0.0.1:%d inet n - n - - smtpd -o smtpd_milters=%s\n"
                        % (self.ports[mode], spec))
        subprocess.run(["/usr/sbin/postfix", "-c", self.h.etc, "reload"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for p in self.ports.values():
            wait_until(lambda: listening(p), 20, "smtpd on 127.0.0.1:%d" % p)
        self.milter_pid = {"inet": self.h.milter.pid, "unix": self.unix_milter.pid,
                           "inet-keep": self.keep_milter.pid}
        for mode, ref in self.refs.items():
            self.milter_pid[mode] = ref.pid
        self.milter_log = {"inet": self.h.milter_log_path,
                           "unix": self.unix_milter.log_path,
                           "inet-keep": self.keep_milter.log_path}
        self._log_at, self._log_rest, self._removed = 0, b"", 0
        return self

    # ---- queue ----------------------------------------------------------
    def removed(self):
        """Messages Postfix has removed from its queue (delivered) since the
        start: read from the maillog incrementally, so that polling it
        during a run costs next to nothing."""
        with open(self.h.maillog_path, "rb") as f:
            f.seek(self._log_at)
            data = self._log_rest + f.read()
        self._log_at += len(data) - len(self._log_rest)
        cut = data.rfind(b"\n") + 1
        self._removed += data[:cut].count(b": removed\n")
        self._log_rest = data[cut:]
        return self._removed

    def queued(self):
        n = 0
        for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(os.path.join(self.h.queue, sub)):
                n += len(files)
        return n

    def drain(self, timeout=600):
        """Waits until Postfix has delivered everything, then empties the
        sink's directory."""
        wait_until(lambda: self.queued() == 0, timeout, "the Postfix queue to drain",
                   interval=0.2)
        for name in os.listdir(self.h.sink_dir):
            try:
                os.unlink(os.path.join(self.h.sink_dir, name))
            except OSError:
                pass
        deferred = self.h.maillog().count("status=deferred")
        if deferred:
            raise RuntimeError("%d deliveries deferred: see the maillog" % deferred)

    def probe(self, mode, msgs):
        """Per-message times (ms) of msgs transactions in one session."""
        self.drain()
        p = SmtpProbe(self.ports[mode])
        try:
            times = [p.message() * 1000 for _ in range(msgs)]
        finally:
            p.close()
        return sorted(times)

    # ---- one run --------------------------------------------------------
    def count(self, mode, needle):
        if mode not in self.milter_log:
            return 0
        with open(self.milter_log[mode], errors="replace") as f:
            return f.read().count(needle)

    def decisions(self, mode):
        """Decision lines made at DATA (they carry the queue id; a store
        error at MAIL FROM adds a NOQUEUE line of its own)."""
        if mode not in self.milter_log:
            return 0
        rx = re.compile(r"^relaymilter: (?!NOQUEUE)\w+: customer=\S+ .*action=accept",
                        re.M)
        with open(self.milter_log[mode], errors="replace") as f:
            return len(rx.findall(f.read()))

    def run(self, mode, msgs, sessions, rcpts, one_session=False):
        self.drain()
        pids = [self.redis.pid] + ([self.milter_pid[mode]] if mode != "none" else [])
        judged = mode in self.milter_log
        cpu0 = {p: bl.proc_cpu(p) for p in pids}
        acc0 = self.decisions(mode)
        err0 = self.count(mode, "store_error")
        removed0 = self.removed()
        busy0 = machine_busy()
        argv = [SMTP_SOURCE, "-s", str(sessions), "-m", str(msgs), "-l", "2048",
                "-r", str(rcpts), "-f", "sender@client.bench.example",
                "-t", "rcpt@dest.bench.example", "-M", "client.bench.example"]
        if one_session:
            argv.append("-d")
        argv.append("127.0.0.1:%d" % self.ports[mode])
        t0 = time.monotonic()
        res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, timeout=1800)
        secs = time.monotonic() - t0
        if res.returncode != 0:
            raise RuntimeError("smtp-source failed (%d): %s" % (res.returncode,
                                                                res.stderr))
        wait_until(lambda: self.removed() - removed0 >= msgs, 600,
                   "Postfix to deliver %d messages" % msgs, interval=0.01)
        secs_e2e = time.monotonic() - t0
        busy = machine_busy() - busy0
        cpu = {p: bl.proc_cpu(p) - cpu0[p] for p in pids}
        sys.stderr.write("  %s: %d msgs, %d session(s)%s, %d rcpt(s): %.1f s, %.0f msg/s "
                         "accepted, %.0f delivered, load %.2f\n"
                         % (mode, msgs, sessions, " (one, -d)" if one_session else "",
                            rcpts, secs, msgs / secs, msgs / secs_e2e, bl.loadavg()))
        accepted = self.decisions(mode) - acc0
        if judged and accepted != msgs:
            raise RuntimeError("%s: %d accept decisions at DATA for %d messages"
                               % (mode, accepted, msgs))
        return {
            "secs": secs, "rate": msgs / secs, "rate_e2e": msgs / secs_e2e,
            "machine_us": busy * 1e6 / msgs,
            "redis_us": cpu[self.redis.pid] * 1e6 / msgs,
            "milter_us": cpu[self.milter_pid[mode]] * 1e6 / msgs if mode != "none" else 0,
            "store_errors": self.count(mode, "store_error") - err0,
        }


class SmtpProbe:
    """One SMTP session (no pipelining) that times each transaction, MAIL
    FROM to the reply after the final dot: the distribution shows stalls
    (a 40 ms small-write delay stands out) that an average hides."""

    BODY = ("Subject: probe\r\n\r\n" + "x" * 76 + "\r\n") * 25

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")
        self.reply()
        self.cmd("EHLO client.bench.example")

    def reply(self):
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("SMTP server closed the connection")
            if line[3:4] != b"-":
                return line.decode("ascii", "replace").strip()

    def cmd(self, text, expect="2"):
        self.sock.sendall(text.encode() + b"\r\n")
        r = self.reply()
        if not r.startswith(expect):
            raise RuntimeError("%s -> %s" % (text, r))
        return r

    def message(self, rcpts=1):
        t0 = time.perf_counter()
        self.cmd("MAIL FROM:<sender@client.bench.example>")
        for i in range(rcpts):
            self.cmd("RCPT TO:<rcpt%d@dest.bench.example>" % i)
        self.cmd("DATA", "3")
        self.sock.sendall(self.BODY.encode() + b".\r\n")
        r = self.reply()
        if not r.startswith("2"):
            raise RuntimeError("end of data -> %s" % r)
        return time.perf_counter() - t0

    def close(self):
        try:
            self.cmd("QUIT")
        finally:
            self.sock.close()


def machine_busy():
    """CPU seconds the whole machine has spent (every core, every process,
    the kernel): /proc/stat's first line without idle and iowait."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:8]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def rotate(xs, r):
    r %= len(xs)
    return xs[r:] + xs[:r]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--milter", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--msgs", type=int)
    ap.add_argument("--sessions", type=int)
    ap.add_argument("--seq-msgs", type=int)
    ap.add_argument("--probe-msgs", type=int)
    ap.add_argument("--noop-libmilter", help="test/bench/noop_libmilter binary")
    ap.add_argument("--noop-raw", help="test/bench/noop_raw binary (also run with -a)")
    a = ap.parse_args()
    a.references = {m: b for m, b in (("noop-libmilter", a.noop_libmilter),
                                      ("noop-raw", a.noop_raw),
                                      ("noop-raw-accept", a.noop_raw)) if b}
    if os.geteuid() != 0:
        print("postfix_compare: skipped (Postfix needs root)")
        bl.record("postfix", "skipped", "needs root")
        return 0
    rounds = a.rounds or (1 if a.quick else 3)
    msgs = a.msgs or (200 if a.quick else 5000)
    sessions = a.sessions or (5 if a.quick else 20)
    seq_msgs = a.seq_msgs or (50 if a.quick else 1000)
    probe_msgs = a.probe_msgs or (20 if a.quick else 300)
    rcpt_counts = [1] if a.quick else [1, 10]
    modes = ["none", "inet", "unix", "inet-keep"] + [m for m in REFERENCES
                                                     if m in a.references]
    milters = modes[1:]

    la = bl.wait_for_quiet() if not a.quick else bl.loadavg()
    b = Bench(a).start()
    for mode in modes:  # warm up smtpd processes, milter connections, the script
        b.run(mode, 50 if not a.quick else 10, 5, 1)

    thr = {(r, m): [] for r in rcpt_counts for m in modes}
    seq = {m: [] for m in modes}
    probe = {m: [] for m in modes}
    for rnd in range(rounds):
        for rcpts in rcpt_counts:
            for mode in rotate(modes, rnd):
                thr[(rcpts, mode)].append(b.run(mode, msgs, sessions, rcpts))
        for mode in rotate(modes, rnd):
            seq[mode].append(b.run(mode, seq_msgs, 1, 1, one_session=True))
        for mode in rotate(modes, rnd):
            probe[mode] += b.probe(mode, probe_msgs)
    b.drain()
    la_end = bl.loadavg()

    def med(runs, k):
        return bl.median([x[k] for x in runs])

    rows = []
    for rcpts in rcpt_counts:
        none = thr[(rcpts, "none")]
        base, base_e2e = med(none, "rate"), med(none, "rate_e2e")
        base_cpu = med(none, "machine_us")
        rows.append([rcpts, "none", "%.0f" % base, "1.00", "%.0f" % base_e2e, "1.00",
                     "%.0f" % base_cpu, "-", "-", "%.0f" % med(none, "redis_us"), 0])
        for mode in milters:
            runs = thr[(rcpts, mode)]
            rate, rate_e2e = med(runs, "rate"), med(runs, "rate_e2e")
            cpu = med(runs, "machine_us")
            rows.append([rcpts, mode, "%.0f" % rate, "%.2f" % (rate / base),
                         "%.0f" % rate_e2e, "%.2f" % (rate_e2e / base_e2e),
                         "%.0f" % cpu, "%+.0f" % (cpu - base_cpu),
                         "%.0f" % med(runs, "milter_us"), "%.0f" % med(runs, "redis_us"),
                         sum(x["store_errors"] for x in runs)])
            bl.record("postfix", "%d rcpt, %s: msg/s delivered with / without (accepted)"
                      % (rcpts, mode), "%.0f / %.0f = %.2f (%.2f)"
                      % (rate_e2e, base_e2e, rate_e2e / base_e2e, rate / base),
                      ("goal >= %.2f" % (0.95 if rcpts == 1 else 0.93))
                      if mode in ("inet", "unix", "inet-keep") else "reference filter")
            bl.record("postfix", "%d rcpt, %s: CPU us/msg milter + redis, machine added"
                      % (rcpts, mode), "%.0f + %.0f, %+.0f"
                      % (med(runs, "milter_us"), med(runs, "redis_us"), cpu - base_cpu))
        floor = thr.get((rcpts, "noop-libmilter"))
        for mode in (m for m in ("inet", "unix", "inet-keep") if floor and m in milters):
            # relaymilter against the filter on libmilter that does nothing:
            # what its policy and Redis cost beyond libmilter itself
            runs = thr[(rcpts, mode)]
            bl.record("postfix", "%d rcpt, %s / noop-libmilter: delivered (accepted)"
                      % (rcpts, mode), "%.2f (%.2f)"
                      % (med(runs, "rate_e2e") / med(floor, "rate_e2e"),
                         med(runs, "rate") / med(floor, "rate")), "goal >= 0.97")
    print(bl.table(
        "Postfix throughput, smtp-source -s %d -m %d -l 2048 (a session per message), "
        "median of %d round(s); accepted: until smtp-source ends, delivered: until "
        "the last message is in smtp-sink; machine CPU: every process, per message"
        % (sessions, msgs, rounds),
        ["rcpts", "milter", "accepted msg/s", "ratio", "delivered msg/s", "ratio",
         "machine CPU us/msg", "added", "milter CPU us/msg", "redis CPU us/msg",
         "store errors"], rows))

    base = med(seq["none"], "secs") * 1000 / seq_msgs
    srows = [["none", "%.2f" % base, "-", "-"]]
    for mode in milters:
        ms = med(seq[mode], "secs") * 1000 / seq_msgs
        srows.append([mode, "%.2f" % ms, "%+.3f" % (ms - base), "%.0f"
                      % med(seq[mode], "milter_us")])
        bl.record("postfix", "sequential, %s: added ms/message" % mode,
                  "%.3f (%.2f vs %.2f)" % (ms - base, ms, base))
    print()
    print(bl.table(
        "Postfix, one session (smtp-source -s 1 -d -m %d): time per message, median "
        "of %d round(s)" % (seq_msgs, rounds),
        ["milter", "ms/message", "added ms/message", "milter CPU us/msg"], srows))

    def pct(xs, p):
        return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]
    prows = []
    for mode in modes:
        xs = sorted(probe[mode])
        stalls = sum(1 for x in xs if x >= 30)
        prows.append([mode, len(xs), "%.2f" % pct(xs, 50), "%.2f" % pct(xs, 90),
                      "%.2f" % pct(xs, 99), "%.2f" % xs[-1], stalls,
                      "-" if mode == "none" else "%+.3f" % (
                          pct(xs, 50) - pct(sorted(probe["none"]), 50))])
        if mode != "none":
            bl.record("postfix", "one session, %s: ms p50 / p99 / max, >= 30 ms" % mode,
                      "%.2f / %.2f / %.1f, %d" % (pct(xs, 50), pct(xs, 99), xs[-1], stalls),
                      "none: %.2f / %.2f / %.1f" % (
                          pct(sorted(probe["none"]), 50), pct(sorted(probe["none"]), 99),
                          max(probe["none"])))
    print()
    print(bl.table(
        "Postfix, one session, each transaction timed (MAIL FROM .. reply to the final "
        "dot, 2 KiB, no pipelining), %d per listener and round, ms" % probe_msgs,
        ["milter", "n", "p50", "p90", "p99", "max", ">= 30 ms", "added p50"], prows))
    print("load average: %.2f before, %.2f after" % (la, la_end))
    bl.record_load(SECTION, la, la_end)
    return 0


if __name__ == "__main__":
    sys.exit(main())
