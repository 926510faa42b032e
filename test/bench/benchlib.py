# SPDX-License-Identifier: BSD-2-Clause
"""benchlib - pieces shared by the benchmarks in test/bench.

    r = Redis().start()                   # a private redis-server: 127.0.0.1,
                                          # a free port, a unix socket, no disk
    m = Milter(path, r, socket="inet"|"unix", settings={...}).start()
    res = milterload(loadpath, m.spec, conns=16, msgs=20000, pids=[m.pid, r.pid])
    res["rate"], res["msg_p99"], res["cpu0_us"] ...      (the RESULT line)
    m.stop(); r.stop()                    # also done at exit, by PID

    wait_for_quiet()                      # waits while the load average is high
    record(section, what, value)          # a row for run_all.sh's table

Every process is started here and stopped by its own PID; every socket is on
loopback or in a private temp dir.
"""

import atexit
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from harness_conf import (free_port, listening, milter_config,  # noqa: E402
                          stop_process, wait_until)

# Every quota the default configuration has (customer: messages and
# recipients per minute / hour / day; sender: messages per hour), set so high
# that the load never reaches them: every message is checked and charged
# against 4 counter hashes, as in production, and accepted.
BIG = 1000000000
BENCH_LIMITS = {
    "messages_per_minute": BIG, "messages_per_hour": BIG, "messages_per_day": BIG,
    "recipients_per_minute": BIG, "recipients_per_hour": BIG, "recipients_per_day": BIG,
    "sender_messages_per_hour": BIG, "max_recipients": 1000,
}
BENCH_SETTINGS = {
    "redis": {"connect_timeout_ms": 200, "command_timeout_ms": 100, "pool_size": 8},
    "limits": BENCH_LIMITS,
    "log": {"level": "info"},
}

_cleanups = []
_NUM = re.compile(r"^[-+]?[0-9.]+( MB| kB)?$")


def _cleanup_all():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # keep stopping the rest
            sys.stderr.write("bench cleanup: %s\n" % e)


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


atexit.register(_cleanup_all)
signal.signal(signal.SIGTERM, _on_signal)


def merged(*dicts):
    out = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(
                out.get(k), dict) else v
    return out


# ---- redis ------------------------------------------------------------------

class Redis:
    """A private redis-server, the same settings as test/lib/with-redis."""

    def __init__(self, extra=()):
        self.dir = tempfile.mkdtemp(prefix="rm-bench-redis.")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.sock = os.path.join(self.dir, "redis.sock")
        self.extra = list(extra)
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
             "--unixsocket", self.sock, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", self.dir,
             "--logfile", os.path.join(self.dir, "redis.log"), "--daemonize", "no"]
            + self.extra,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _cleanups.append(self.stop)
        wait_until(lambda: self.cli("PING") == "PONG", 10,
                   "redis-server on 127.0.0.1:%d" % self.port)
        return self

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, *args, stdin=None):
        res = subprocess.run(["redis-cli", "-s", self.sock] + [str(a) for a in args],
                             input=stdin, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, timeout=600)
        return res.stdout.strip()

    def info(self, section="memory"):
        out = {}
        for line in self.cli("INFO", section).splitlines():
            k, sep, v = line.partition(":")
            if sep:
                out[k] = v.strip()
        return out

    def used_memory(self):
        return int(self.info("memory")["used_memory"])

    def dbsize(self):
        return int(self.cli("DBSIZE"))


class ExistingRedis(Redis):
    """The redis-server of test/lib/with-redis (RM_REDIS_PORT, RM_REDIS_SOCK,
    RM_REDIS_PID): used, never stopped here."""

    def __init__(self):
        self.port = int(os.environ["RM_REDIS_PORT"])
        self.sock = os.environ["RM_REDIS_SOCK"]
        self._pid = int(os.environ["RM_REDIS_PID"])
        self.proc = None

    @property
    def pid(self):
        return self._pid

    def start(self):
        return self

    def stop(self):
        pass


def shared_redis():
    """with-redis's server when there is one, else a private one."""
    if os.environ.get("RM_REDIS_PORT") and os.environ.get("RM_REDIS_SOCK"):
        return ExistingRedis()
    return Redis().start()


# ---- relaymilter ------------------------------------------------------------

class Milter:
    """relaymilter on a loopback port or a unix socket in a private dir, its
    log (RELAYMILTER_LOG_STDERR) in a file."""

    def __init__(self, binary, redis, socket_kind="inet", settings=None, env=None):
        self.binary = os.path.abspath(binary)
        self.env = dict(os.environ, RELAYMILTER_LOG_STDERR="1", **(env or {}))
        self.redis = redis
        self.kind = socket_kind
        self.dir = tempfile.mkdtemp(prefix="rm-bench-milter.")
        os.chmod(self.dir, 0o755)  # Postfix's smtpd (user postfix) reaches the socket
        self.conf = os.path.join(self.dir, "relaymilter.conf")
        self.log_path = os.path.join(self.dir, "relaymilter.log")
        self.settings = merged(BENCH_SETTINGS, settings or {})
        if socket_kind == "inet":
            self.port = free_port()
            self.spec = "inet:%d@127.0.0.1" % self.port
            self.postfix_spec = "inet:127.0.0.1:%d" % self.port
        else:
            self.path = os.path.join(self.dir, "milter.sock")
            self.spec = "unix:%s" % self.path
            self.postfix_spec = "unix:%s" % self.path
            self.settings = merged(self.settings, {"milter": {"socket_mode": "0666"}})
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        with open(self.conf, "w") as f:
            f.write(milter_config(self.spec, self.redis.port, self.settings))
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.binary, "-c", self.conf], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env)
        log.close()
        _cleanups.append(self.stop)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("relaymilter exited with %s:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            if self.kind == "inet":
                return listening(self.port)
            return os.path.exists(self.path)
        wait_until(ready, 10, "relaymilter on %s" % self.spec)
        return self

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def log_size(self):
        return os.path.getsize(self.log_path)

    def count_log(self, needle, since=0):
        n = 0
        with open(self.log_path, errors="replace") as f:
            f.seek(since)
            for line in f:
                if needle in line:
                    n += 1
        return n


# ---- milterload -------------------------------------------------------------

def milterload(binary, spec, conns=1, msgs=1000, per_conn=5, rcpts=1, customers=100,
               senders=1, prefix="cust", first=0, size=2048, duration=120, pids=(),
               label="", extra=()):
    """Runs milterload and returns its RESULT line as a dict (numbers as
    floats); raises if it could not run."""
    argv = [binary, "-q", "-s", spec, "-c", conns, "-n", msgs, "-m", per_conn,
            "-r", rcpts, "-u", customers, "-S", senders, "-p", prefix, "-o", first,
            "-b", size, "-d", duration]
    for p in pids:
        argv += ["-P", p]
    if label:
        argv += ["-L", label]
    argv += list(extra)
    res = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=duration + 120)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError("milterload printed no RESULT (exit %d): %s"
                           % (res.returncode, res.stderr))
    out = {}
    for kv in line.split()[1:]:
        k, _, v = kv.partition("=")
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = v
    if res.stderr.strip():
        out["stderr"] = res.stderr.strip()
    return out


# ---- machine load -----------------------------------------------------------

def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wait_for_quiet(limit=None, max_wait=None, poll=20, quiet=False):
    """Waits until the 1-minute load average is at most limit (default 1.5,
    or BENCH_LOAD_LIMIT), for at most max_wait seconds (default 1200, or
    BENCH_LOAD_WAIT; 0: do not wait); returns the load average when
    measuring starts, and says on stdout what it was."""
    if limit is None:
        limit = float(os.environ.get("BENCH_LOAD_LIMIT", "1.5"))
    if max_wait is None:
        max_wait = float(os.environ.get("BENCH_LOAD_WAIT", "1200"))
    t0 = time.monotonic()
    deadline = t0 + max_wait
    la = loadavg()
    while la > limit and time.monotonic() < deadline:
        if not quiet:
            sys.stderr.write("load average %.2f > %.2f: waiting\n" % (la, limit))
        time.sleep(min(poll, max(1.0, deadline - time.monotonic())))
        la = loadavg()
    if not quiet:
        print("load average %.2f when measuring starts (limit %.2f, waited %.0f s%s)"
              % (la, limit, time.monotonic() - t0,
                 "; other work is running: compare the side-by-side ratios"
                 if la > limit else ""), flush=True)
    return la


def proc_cpu(pid):
    """utime + stime of every thread of pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# ---- results ----------------------------------------------------------------

def record(section, what, value, note=""):
    """One row of the summary table run_all.sh prints (BENCH_RESULTS names the
    file; without it the row only goes to stdout)."""
    path = os.environ.get("BENCH_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write("%s\t%s\t%s\t%s\n" % (section, what, value, note))


def record_load(section, before, after):
    """The load average a section measured under, as a row of the table."""
    record(section, "load average (1 min) before / after", "%.2f / %.2f"
           % (before, after), "other work on the machine" if max(before, after) > float(
               os.environ.get("BENCH_LOAD_LIMIT", "1.5")) else "")


def table(title, header, rows):
    """An aligned text table."""
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_NUM.match(r[i]) for r in cells[1:] if r[i] not in ("", "-"))
               for i in range(len(header))]
    lines = [title]
    for j, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if numeric[i] else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine():
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f
                          if ln.startswith("model name")), "?")
    except OSError:
        model = "?"
    return "%d cores (%s), load average %.2f" % (os.cpu_count(), model, loadavg())

