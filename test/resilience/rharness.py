# SPDX-License-Identifier: BSD-2-Clause
"""rharness - processes and load for the resilience tests.

    free_port()                      a free loopback TCP port
    redis_cmd(port, *args)           one command on a fresh connection (RESP);
                                     RespError for an error reply
    Redis(workdir, port=None, args=())
        .start() .kill(sig) .stop() .alive() .pid .port .wait_ready()
        a private redis-server on 127.0.0.1, no persistence; start() again
        after kill() restarts it on the same port
    Sentinel(workdir, master_port, quorum=2)   redis-server --sentinel, the
        same methods; monitors "mymaster"
    Milter(binary, workdir, conf_text)  relaymilter -c CONF with its log on a
        pipe: .lines() [(monotonic time, text)], .wait_log(regex, timeout,
        since), .grep(regex, since), .address, .alive(), .terminate()
        (SIGTERM, wait), .stop() (SIGKILL: cleanup)
    Load(address, customers, ...)    one thread (and one milter connection)
        per customer, sending messages until stop(); .records [Rec]
    write_milter_conf(...)           the config text the tests use (one primary,
                                     Sentinel or a Redis Cluster)
    percentile(values, p)
    report(name, text)               a "measured:" line on stderr
    wait_for(pred, timeout, step)    pred()'s first true value, or None

Every process is registered and stopped by its own PID at exit (atexit),
and again by the tests' cleanups; a stopped (SIGSTOP) Redis is continued
first. Nothing here looks for processes it did not start.
"""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import namedtuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import milterclient as mc  # noqa: E402
from rcluster import RespError, redis_cmd, redis_try  # noqa: E402,F401
from rcluster import stop_popen as _stop_popen  # noqa: E402

_procs = []  # every Popen we started, for the exit handler
_procs_lock = threading.Lock()


@atexit.register
def _stop_all():
    with _procs_lock:
        procs = list(_procs)
    for p in procs:
        _stop_popen(p, signal.SIGKILL, 2.0)


def _spawn(argv, **kw):
    p = subprocess.Popen(argv, **kw)
    with _procs_lock:
        _procs.append(p)
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mkworkdir(tag):
    return tempfile.mkdtemp(prefix="rm-res-%s." % tag)


def rmworkdir(path):
    if os.environ.get("RM_KEEP_TMP"):
        print("kept %s" % path, file=sys.stderr)
    else:
        shutil.rmtree(path, ignore_errors=True)


def report(name, text):
    """A measured number, on stderr: one "measured:" line per test."""
    print("measured: %s: %s" % (name, text), file=sys.stderr, flush=True)


def wait_for(pred, timeout, step=0.05):
    """pred()'s first true value within timeout seconds, else None."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def percentile(values, p):
    v = sorted(values)
    if not v:
        return 0.0
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def hash_of(flat):
    return dict(zip(flat[0::2], flat[1::2])) if flat else {}


# --- servers -----------------------------------------------------------------
class _Server:
    name = "server"

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "%s-%d" % (self.name, id(self) % 100000))
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def argv(self):
        raise NotImplementedError

    def start(self, timeout=10.0):
        self.proc = _spawn(self.argv(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, cwd=self.dir)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if redis_try(self.port, "PING") == "PONG":
                return
            if not self.alive():
                break
            time.sleep(0.02)
        raise RuntimeError("%s on port %d did not start; log:\n%s"
                           % (self.name, self.port, self.log_tail()))

    def log_tail(self, n=30):
        try:
            with open(os.path.join(self.dir, "log")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def kill(self, sig=signal.SIGKILL):
        os.kill(self.proc.pid, sig)
        if sig == signal.SIGKILL:
            self.proc.wait(5)

    def stop(self):
        if self.proc is not None:
            _stop_popen(self.proc)


class Redis(_Server):
    name = "redis"

    def __init__(self, workdir, port=None, args=()):
        super().__init__(workdir)
        if port:
            self.port = port
        self.args = list(args)

    def argv(self):
        return ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--logfile", os.path.join(self.dir, "log"), "--daemonize", "no",
                "--repl-diskless-sync-delay", "0"] + self.args


class Sentinel(_Server):
    name = "sentinel"

    def __init__(self, workdir, master_port, quorum=2, down_after=1000,
                 failover_timeout=3000):
        super().__init__(workdir)
        self.conf = os.path.join(self.dir, "sentinel.conf")
        with open(self.conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\nlogfile %s\n"
                    "sentinel monitor mymaster 127.0.0.1 %d %d\n"
                    "sentinel down-after-milliseconds mymaster %d\n"
                    "sentinel failover-timeout mymaster %d\n"
                    "sentinel parallel-syncs mymaster 1\n"
                    % (self.port, self.dir, os.path.join(self.dir, "log"), master_port,
                       quorum, down_after, failover_timeout))

    def argv(self):
        return ["redis-server", self.conf, "--sentinel"]

    def master_info(self):
        return hash_of(redis_try(self.port, "SENTINEL", "MASTER", "mymaster") or [])

    def master_addr(self):
        a = redis_try(self.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
        return (a[0], int(a[1])) if a else None


# --- the milter ------------------------------------------------------------------
def write_milter_conf(port, redis_port=None, mode="accept", per_minute=1000000,
                      sentinels=None, local_share=None, pool_size=8,
                      connect_ms=100, command_ms=100, cluster=None, per_hour=10000000,
                      extra=""):
    """cluster: "HOST:PORT" seeds of a Redis Cluster (redis.cluster_nodes);
    extra: more top-level settings, as text."""
    if sentinels:
        where = 'sentinels = [ %s ]; master = "mymaster";' % ", ".join(
            '"127.0.0.1:%d"' % p for p in sentinels)
    elif cluster:
        where = "cluster_nodes = [ %s ];" % ", ".join('"%s"' % s for s in cluster)
    else:
        where = 'host = "127.0.0.1"; port = %d;' % redis_port
    share = "local_share = %s;" % local_share if local_share is not None else ""
    return """\
milter = { socket = "inet:%d@127.0.0.1"; timeout = 30; };
redis = {
  %s
  prefix = "relay:";
  connect_timeout_ms = %d;  command_timeout_ms = %d;  pool_size = %d;
  %s
};
on_store_error = "%s";
limits = {
  messages_per_minute = %d;  messages_per_hour = %d;  messages_per_day = 100000000;
  recipients_per_minute = 10000000;  recipients_per_hour = 10000000;
  recipients_per_day = 100000000;  sender_messages_per_hour = 10000000;
  max_recipients = 100;  action = "tempfail";
};
log = { level = "info"; };
%s
""" % (port, where, connect_ms, command_ms, pool_size, share, mode, per_minute, per_hour, extra)


class Milter:
    def __init__(self, binary, workdir, conf_text, port):
        self.dir = os.path.join(workdir, "milter")
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "relaymilter.conf")
        with open(self.conf, "w") as f:
            f.write(conf_text)
        self.binary, self.port = binary, port
        self.address = ("127.0.0.1", port)
        self._lines, self._lock = [], threading.Lock()
        self.proc, self._reader = None, None

    def start(self, timeout=10.0):
        env = dict(os.environ, RELAYMILTER_LOG_STDERR="1")
        self.proc = _spawn([self.binary, "-c", self.conf], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_log(r"listening on", timeout)
        return self

    def _read(self):
        with open(os.path.join(self.dir, "log"), "w") as out:
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._lock:
                    self._lines.append((time.monotonic(), line))
                out.write(line + "\n")
                out.flush()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def lines(self):
        with self._lock:
            return list(self._lines)

    def grep(self, regex, since=0.0):
        rx = re.compile(regex)
        return [(t, ln) for t, ln in self.lines() if t >= since and rx.search(ln)]

    def wait_log(self, regex, timeout, since=0.0):
        """(time, line) of the first matching line after since; None on timeout."""
        end = time.monotonic() + timeout
        while True:
            hits = self.grep(regex, since)
            if hits:
                return hits[0]
            if time.monotonic() > end:
                return None
            if not self.alive():
                raise AssertionError("relaymilter exited (status %s); log tail:\n%s"
                                     % (self.proc.returncode, self.tail()))
            time.sleep(0.02)

    def tail(self, n=40):
        return "\n".join(ln for _, ln in self.lines()[-n:])

    def terminate(self, timeout=10.0):
        """SIGTERM and wait: (exit status or None, seconds taken)."""
        t0 = time.monotonic()
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        return rc, time.monotonic() - t0

    def stop(self):
        """Cleanup: SIGKILL at once (libmilter notices SIGTERM only every 5 s;
        terminate() is the graceful way)."""
        if self.proc is not None:
            _stop_popen(self.proc, signal.SIGKILL)
        if self._reader is not None:
            self._reader.join(5)


# --- load --------------------------------------------------------------------------
Rec = namedtuple("Rec", "customer sender qid t_start t_end verdict stage text "
                        "elapsed_max answers error")


def send_one(address, customer, qid, sender=None, rcpts=None, timeout=5.0):
    """One message on a fresh milter connection; a Rec."""
    sender = sender or "user@%s.example" % customer
    t0 = time.monotonic()
    try:
        with mc.MilterClient(address, timeout=timeout) as c:
            c.connect_info(addr="198.51.100.9", port=41000)
            res = c.send_message(sender, rcpts or ["rcpt@dest.example"], login=customer,
                                 qid=qid)
    except (mc.MilterError, OSError) as e:
        return Rec(customer, sender, qid, t0, time.monotonic(), "error", None, str(e),
                   0.0, [], str(e))
    return Rec(customer, sender, qid, t0, time.monotonic(), res.verdict, res.stage,
               res.text, res.elapsed_max, [s.elapsed for s in res.stages], None)


class Load:
    """One client thread per customer, each on its own milter connection,
    sending one message after another (pause seconds apart) until stop()."""

    def __init__(self, address, customers, pause=0.02, timeout=5.0, tag="L"):
        self.address, self.customers = address, list(customers)
        self.pause, self.timeout, self.tag = pause, timeout, tag
        self.records, self._lock = [], threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def start(self):
        for i, cust in enumerate(self.customers):
            t = threading.Thread(target=self._run, args=(i, cust), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        return self.records

    def snapshot(self):
        with self._lock:
            return list(self.records)

    def _add(self, rec):
        with self._lock:
            self.records.append(rec)

    def _run(self, idx, cust):
        client, n = None, 0
        sender = "user@%s.example" % cust
        while not self._stop.is_set():
            if client is None:
                try:
                    client = mc.MilterClient(self.address, timeout=self.timeout).open()
                    client.connect_info(addr="198.51.100.%d" % (idx + 1), port=40000 + idx)
                except (mc.MilterError, OSError) as e:
                    self._add(Rec(cust, sender, None, time.monotonic(), time.monotonic(),
                                  "error", "CONNECT", str(e), 0.0, [], str(e)))
                    client = None
                    self._stop.wait(0.2)
                    continue
            n += 1
            qid = "%s%dN%d" % (self.tag, idx, n)
            t0 = time.monotonic()
            try:
                res = client.send_message(sender, ["rcpt%d@dest.example" % n],
                                          login=cust, qid=qid)
                rec = Rec(cust, sender, qid, t0, time.monotonic(), res.verdict,
                          res.stage, res.text, res.elapsed_max,
                          [s.elapsed for s in res.stages], None)
            except (mc.MilterError, OSError) as e:
                rec = Rec(cust, sender, qid, t0, time.monotonic(), "error", None, str(e),
                          time.monotonic() - t0, [], str(e))
                client.close()
                client = None
            self._add(rec)
            self._stop.wait(self.pause)
        if client is not None:
            try:
                client.quit()
            except (mc.MilterError, OSError):
                pass
            client.close()


def answer_stats(records):
    """(number of answers, max, p99, p50) of every stage answer, in ms."""
    ans = [a * 1000.0 for r in records for a in r.answers]
    return len(ans), max(ans, default=0.0), percentile(ans, 99), percentile(ans, 50)
