# SPDX-License-Identifier: BSD-2-Clause
"""postfix_harness - a private Postfix, smtp-sink and relaymilter for end-to-end tests.

    h = Harness(milter_path, milter_settings)   # settings: see milter_config()
    h.start()          # everything below lives in one temp dir, loopback only
    ...
    h.stop()           # also run at exit, and by a reaper if this process dies

Pieces, each on its own free 127.0.0.1 port:
  - relaymilter, started with a config file written here, logging to a file
    (RELAYMILTER_LOG_STDERR), talking to the redis-server of test/lib/with-redis
    (RM_REDIS_PORT, RM_REDIS_SOCK);
  - a Postfix instance with its own config, queue and data directories, its
    smtpd on 127.0.0.1, every message relayed to
  - Postfix's smtp-sink, which dumps each received message into a file.
The milter lines of Postfix's main.cf are those of postfix-example/main.cf,
with the socket pointed at the milter started here.

SMTP AUTH: Harness(..., sasl_users={"bob": "pw"}) gives Postfix Cyrus SASL
(PLAIN and LOGIN) over a private sasldb whose accounts live in the realm
SASL_REALM; relaying is then allowed to mynetworks (default loopback) and to
authenticated clients. Cyrus accepts an account under several spellings
("bob", "bob@relay.e2e.test"), and Postfix hands the milter the login as
typed unless sasl_local_domain is given (smtpd_sasl_local_domain).

What a test uses:
  send(sender, rcpts, source=ADDR, auth=(USER, PASSWORD, MECH)) -> Outcome
                          one SMTP connection; every reply (source: any
                          127.x.y.z, so a test can be its own client; auth:
                          log in first, MECH "PLAIN" or "LOGIN")
  smtp(source)            a raw smtplib connection, for odd dialogues
  sink_messages(sender), wait_for_deliveries(n, sender), delivered_recipients()
  queue_list() (postqueue -j), hold_queue(), queue_file(id) (postcat),
  postfix_cmd(prog, args...), maillog(), wait_maillog(regex)
  write_milter_config(settings | text=), reload_milter(expect_ok),
  stop_milter(), start_milter(), milter_log(since), wait_milter_log(regex, since)
  redis(args...)          redis-cli on the private Redis (beside test/lib/with-cluster:
                          its Redis Cluster); redis_json(args...)
  events()                the entries of the stream relay:events, as dicts
  adopt(name, proc)       the reaper stops proc too (e.g. a test's own redis-server)

Must run as root (Postfix needs it). RM_KEEP=1 keeps the temp dir for a look.
"""

import atexit
import json
import os
import pathlib
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid

from harness_conf import (check_accounts, free_port, listening, milter_config, stop_process,
                          postfix_main_cf, postfix_master_cf, sasl_smtpd_conf, wait_until)

HERE = pathlib.Path(__file__).resolve().parent
EXAMPLE_MAIN_CF = HERE.parent.parent / "postfix-example" / "main.cf"
REAPER = HERE / "reaper.py"
POSTFIX = "/usr/sbin/postfix"
SMTP_SINK = "/usr/sbin/smtp-sink"


@dataclass
class Outcome:
    """What the SMTP client saw for one message."""
    stage: str            # accepted | connect | mail | rcpt | data
    code: int
    text: str             # the reply after the code, e.g. "4.7.1 quota ..."
    queue_id: str = None  # from "250 ... queued as ID"
    refused: dict = field(default_factory=dict)  # rcpt -> (code, text)

    @property
    def reply(self):
        return "%d %s" % (self.code, self.text)


@dataclass
class SinkMessage:
    path: str
    sender: str
    recipients: list
    queue_id: str         # Postfix's queue id, from its Received header
    text: str


def _run(argv, check=True, **kw):
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, **kw)
    if check and res.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(argv), res.returncode,
                                                    res.stdout, res.stderr))
    return res


def _tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return "(%s)" % e


# The realm of the sasldb accounts: Postfix's myhostname, which Cyrus takes
# as the realm of a login typed without one.
SASL_REALM = "relay.e2e.test"
SASLPASSWD2 = "/usr/sbin/saslpasswd2"


class Harness:
    start_timeout = 10  # seconds for a process to listen (a subclass may raise it)
    stop_timeout = 10   # ... and to exit after SIGTERM
    def __init__(self, milter_path, milter_settings=None, redis_port=None, redis_sock=None,
                 sasl_users=None, sasl_local_domain=None, mynetworks="127.0.0.0/8"):
        """redis_port (and redis_sock, for redis()): a Redis of the test's own;
        by default that of test/lib/with-redis. sasl_users: {login: password}
        accounts for SMTP AUTH (None: no AUTH offered); sasl_local_domain:
        Postfix's smtpd_sasl_local_domain; mynetworks: the clients Postfix
        relays for without AUTH."""
        self.milter_path = os.path.abspath(milter_path)
        self.milter_settings = milter_settings or {}
        self.sasl_users = sasl_users
        self.sasl_local_domain = sasl_local_domain
        self.mynetworks = mynetworks
        # beside test/lib/with-cluster: a Redis Cluster (redis.cluster_nodes)
        self.cluster_seeds = None
        if redis_port is None and os.environ.get("RM_CLUSTER_NODES"):
            self.cluster_seeds = os.environ["RM_CLUSTER_NODES"].split(",")
            self.redis_port = int(self.cluster_seeds[0].rsplit(":", 1)[1])
            self.redis_sock = None
        elif redis_port is None:
            self.redis_port = int(os.environ["RM_REDIS_PORT"])
            self.redis_sock = os.environ.get("RM_REDIS_SOCK")
        else:
            self.redis_port, self.redis_sock = int(redis_port), redis_sock
        self.keep = os.environ.get("RM_KEEP") == "1"
        self.dir = None
        self.milter = None
        self.sink = None
        self.master_pid = None
        self._reaper = None
        self._stopped = False
        self._adopted = {}

    # ---- life cycle ------------------------------------------------------
    def start(self):
        if os.geteuid() != 0:
            raise RuntimeError("the end-to-end harness must run as root (Postfix)")
        self.dir = tempfile.mkdtemp(prefix="rm-e2e.")
        os.chmod(self.dir, 0o755)  # Postfix's unprivileged daemons pass through
        self.etc = os.path.join(self.dir, "postfix")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.sink_dir = os.path.join(self.dir, "sink")
        self.maillog_path = os.path.join(self.dir, "maillog")
        self.milter_conf = os.path.join(self.dir, "relaymilter.conf")
        self.milter_log_path = os.path.join(self.dir, "relaymilter.log")
        self.smtpd_port, self.sink_port, self.milter_port = self._ports(3)
        atexit.register(self.stop)
        self._start_reaper()
        try:
            self._start_sink()
            self.start_milter()
            self._start_postfix()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        if self._stopped or self.dir is None:
            return
        self._stopped = True
        errors = []
        for step in (self._stop_postfix, self.stop_milter, self._stop_sink):
            try:
                step()
            except Exception as e:  # keep stopping the rest
                errors.append("%s: %s" % (step.__name__, e))
        try:
            os.unlink(os.path.join(self.dir, "reaper.manifest"))
        except FileNotFoundError:
            pass
        if self.keep:
            sys.stderr.write("RM_KEEP=1: kept %s\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self._reaper is not None:
            self._reaper.stdin.close()  # EOF: the reaper finds no manifest
        if errors:
            raise RuntimeError("; ".join(errors))

    @staticmethod
    def _ports(n):
        ports = set()
        while len(ports) < n:
            ports.add(free_port())
        return sorted(ports)

    def _start_reaper(self):
        """A process that outlives this one if it is killed (a ctest
        timeout): it stops what we started, by PID, when its stdin closes."""
        self._reaper = subprocess.Popen([sys.executable, str(REAPER), self.dir],
                                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        self._reaper.wait()  # it forks: the child, orphaned, does the work
        self._manifest()

    def _manifest(self):
        lines = ["keep %d" % self.keep, "postfix %s" % self.etc]
        procs = [("milter", self.milter), ("sink", self.sink)] + list(self._adopted.items())
        for name, proc in procs:
            if proc is not None and proc.poll() is None:
                lines.append("pid %d %s" % (proc.pid, name))
        tmp = os.path.join(self.dir, "reaper.manifest.new")
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, os.path.join(self.dir, "reaper.manifest"))

    def adopt(self, name, proc):
        """The reaper also stops proc (a subprocess.Popen of the test's own) if
        this process dies; name is a key of reaper.PROGRAMS. proc=None forgets."""
        if self.dir is None:
            raise RuntimeError("adopt() after start()")
        self._adopted[name] = proc
        self._manifest()

    # ---- smtp-sink -------------------------------------------------------
    def _start_sink(self):
        os.mkdir(self.sink_dir)
        shutil.chown(self.sink_dir, "postfix", "postfix")
        log = open(os.path.join(self.dir, "smtp-sink.log"), "w")
        self.sink = subprocess.Popen(
            [SMTP_SINK, "-u", "postfix", "-h", "sink.e2e.test",
             "-d", os.path.join(self.sink_dir, "%Y%m%d%H%M%S."),
             "127.0.0.1:%d" % self.sink_port, "64"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self._manifest()
        self._wait_listening(self.sink, self.sink_port, "smtp-sink",
                             os.path.join(self.dir, "smtp-sink.log"))

    def _stop_sink(self):
        self._stop_proc(self.sink)

    def _wait_listening(self, proc, port, what, logfile):
        def ready():
            if proc.poll() is not None:
                raise RuntimeError("%s exited with %s:\n%s" % (what, proc.returncode,
                                                               _tail(logfile)))
            return listening(port)
        wait_until(ready, self.start_timeout, "%s listening on 127.0.0.1:%d" % (what, port))

    def _stop_proc(self, proc):
        if not stop_process(proc, self.stop_timeout):
            raise RuntimeError("pid %d ignored SIGTERM for %ds" % (proc.pid, self.stop_timeout))

    def sink_messages(self, sender=None):
        """Messages the sink has completely received (its file is closed)."""
        try:
            names = sorted(os.listdir(self.sink_dir))
        except FileNotFoundError:
            return []
        busy = self._open_files(self.sink.pid)
        out = []
        for name in names:
            path = os.path.join(self.sink_dir, name)
            if path in busy or not os.path.isfile(path):
                continue
            msg = self._parse_sink_file(path)
            if sender is None or msg.sender == sender:
                out.append(msg)
        return out

    @staticmethod
    def _open_files(pid):
        fds = "/proc/%d/fd" % pid
        out = set()
        try:
            for fd in os.listdir(fds):
                try:
                    out.add(os.readlink(os.path.join(fds, fd)))
                except OSError:
                    pass
        except OSError:
            pass
        return out

    @staticmethod
    def _parse_sink_file(path):
        with open(path, errors="replace") as f:
            text = f.read()
        sender, rcpts = None, []
        for line in text.split("\n"):
            m = re.match(r"X-(Mail|Rcpt)-Args: .*?<([^>]*)>", line)
            if m and m.group(1) == "Mail":
                sender = m.group(2)
            elif m:
                rcpts.append(m.group(2))
            elif not line.startswith("X-"):
                break  # the sink's own headers come first
        m = re.search(r"\(Postfix\) with E?SMTP id (\w+)", text)
        return SinkMessage(path, sender, rcpts, m.group(1) if m else None, text)

    def wait_for_deliveries(self, n, sender=None, timeout=20):
        """At least n messages (from sender) at the sink; returns them all."""
        def enough():
            msgs = self.sink_messages(sender)
            return msgs if len(msgs) >= n else None
        return wait_until(enough, timeout, "%d message(s) from %s at the sink" % (n, sender),
                          lambda: self.maillog()[-3000:])

    def delivered_recipients(self, sender=None):
        return [r for m in self.sink_messages(sender) for r in m.recipients]

    # ---- relaymilter -----------------------------------------------------
    @property
    def milter_socket(self):
        return "inet:%d@127.0.0.1" % self.milter_port

    def write_milter_config(self, settings=None, text=None):
        """Writes relaymilter.conf: milter_config(settings) or raw text."""
        if text is None:
            text = milter_config(self.milter_socket, self.cluster_seeds or self.redis_port,
                                 self.milter_settings if settings is None else settings)
        with open(self.milter_conf, "w") as f:
            f.write(text)

    def start_milter(self):
        if not os.path.exists(self.milter_conf):
            self.write_milter_config()
        env = dict(os.environ, RELAYMILTER_LOG_STDERR="1")
        log = open(self.milter_log_path, "a")
        self.milter = subprocess.Popen([self.milter_path, "-c", self.milter_conf],
                                       stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=env)
        log.close()
        self._manifest()
        self._wait_listening(self.milter, self.milter_port, "relaymilter",
                             self.milter_log_path)

    def stop_milter(self):
        """SIGTERM; the daemon must exit 0 (a graceful stop, relaymilter(8))."""
        was_running = self.milter_alive()
        self._stop_proc(self.milter)
        self._manifest()
        if was_running and self.milter.returncode != 0:
            raise RuntimeError("relaymilter exited with %s on SIGTERM:\n%s"
                               % (self.milter.returncode, _tail(self.milter_log_path)))

    def milter_alive(self):
        return self.milter is not None and self.milter.poll() is None

    def milter_log(self, since=0):
        with open(self.milter_log_path, errors="replace") as f:
            f.seek(since)
            return f.read()

    def milter_log_size(self):
        return os.path.getsize(self.milter_log_path)

    def wait_milter_log(self, pattern, since=0, timeout=10):
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.milter_log(since)), timeout,
                          "relaymilter log line /%s/" % pattern,
                          lambda: self.milter_log(since)[-3000:])

    def reload_milter(self, expect_ok=True, timeout=10):
        """SIGHUP; waits for the daemon's log line saying how it went."""
        since = self.milter_log_size()
        self.milter.send_signal(signal.SIGHUP)
        m = self.wait_milter_log("configuration reloaded|reload failed", since, timeout)
        if (m.group(0) == "configuration reloaded") != expect_ok:
            raise AssertionError("SIGHUP: expected %s, the daemon logged:\n%s"
                                 % ("a reload" if expect_ok else "a failed reload",
                                    self.milter_log(since)))
        return m

    # ---- redis -----------------------------------------------------------
    def redis(self, *args):
        """redis-cli ARGS on the private Redis; on a cluster with -c (staff's
        way: redirections followed), and FLUSHALL and KEYS on every primary."""
        if self.cluster_seeds and args and str(args[0]).upper() in ("FLUSHALL", "KEYS"):
            outs = [self._redis_cli(["-p", str(p)], args) for p in self._primaries()]
            return "\n".join(o for o in outs if o)
        if self.cluster_seeds:
            return self._redis_cli(["-c", "-p", str(self.redis_port)], args)
        where = ["-s", self.redis_sock] if self.redis_sock else ["-p", str(self.redis_port)]
        return self._redis_cli(where, args)

    @staticmethod
    def _redis_cli(where, args):
        return _run(["redis-cli"] + where + [str(a) for a in args]).stdout.strip()

    def _primaries(self):
        slots = json.loads(self._redis_cli(["-p", str(self.redis_port), "--json"],
                                           ("CLUSTER", "SLOTS")))
        return sorted({int(rng[2][1]) for rng in slots})

    # The milter answers MAIL FROM from a copy of the staff-edited keys at
    # most 1 s old (doc/OPERATIONS, "Redis keys"); an edit is in force after that.
    STAFF_EDIT_IN_FORCE_S = 1.1

    def staff_edit(self, *args):
        """A staff edit (redis-cli ARGS), returned once it is in force."""
        out = self.redis(*args)
        time.sleep(self.STAFF_EDIT_IN_FORCE_S)
        return out

    def redis_json(self, *args):
        """The reply as JSON values (redis-cli --json): lists stay lists."""
        return json.loads(self.redis("--json", *args) or "null")

    def events(self, key="relay:events"):
        """The events stream, oldest first: one dict of fields per entry,
        plus "id"."""
        out = []
        for entry_id, flat in self.redis_json("XRANGE", key, "-", "+") or []:
            ev = dict(zip(flat[0::2], flat[1::2]))
            ev["id"] = entry_id
            out.append(ev)
        return out

    # ---- Postfix ---------------------------------------------------------
    def _start_postfix(self):
        check_accounts()
        for d in (self.etc, self.queue, self.data):
            os.mkdir(d, 0o755)
        shutil.chown(self.data, "postfix", "postfix")
        if self.sasl_users is not None:
            self._make_sasldb()
        params = postfix_main_cf(self, EXAMPLE_MAIN_CF)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(params)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(postfix_master_cf(self.smtpd_port))
        # "check" creates the queue directories with the owners and modes of
        # the package's postfix-files, and changes nothing outside self.dir.
        _run([POSTFIX, "-c", self.etc, "check"])
        res = _run([POSTFIX, "-c", self.etc, "start"], check=False)
        self.master_pid = self._read_master_pid()
        self._manifest()
        if res.returncode != 0:
            raise RuntimeError("postfix start failed: %s%s\nmaillog:\n%s"
                               % (res.stdout, res.stderr, _tail(self.maillog_path)))
        wait_until(lambda: listening(self.smtpd_port), 15,
                   "Postfix smtpd on 127.0.0.1:%d" % self.smtpd_port,
                   lambda: _tail(self.maillog_path))

    def _make_sasldb(self):
        """Cyrus's config and a sasldb with the accounts, readable by the
        postfix user smtpd runs as (nothing is chrooted here)."""
        sasl_dir = os.path.join(self.etc, "sasl")
        os.mkdir(sasl_dir, 0o755)
        db = os.path.join(sasl_dir, "sasldb2")
        with open(os.path.join(sasl_dir, "smtpd.conf"), "w") as f:
            f.write(sasl_smtpd_conf(db))
        for user, password in self.sasl_users.items():
            self.add_sasl_user(user, password, db)

    def add_sasl_user(self, user, password, db=None):
        """An account in the sasldb, realm SASL_REALM."""
        db = db or os.path.join(self.etc, "sasl", "sasldb2")
        _run([SASLPASSWD2, "-p", "-c", "-f", db, "-u", SASL_REALM, user],
             input=password + "\n")
        shutil.chown(db, "root", "postfix")
        os.chmod(db, 0o640)

    def _read_master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _stop_postfix(self):
        if self.master_pid is None:
            return
        _run([POSTFIX, "-c", self.etc, "stop"], check=False)
        pid, self.master_pid = self.master_pid, None
        try:
            wait_until(lambda: not os.path.exists("/proc/%d" % pid), 15,
                       "Postfix master %d to exit" % pid)
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)  # our own master, by its pid file
            raise RuntimeError("Postfix master %d did not stop; killed" % pid)

    def postfix_cmd(self, *argv):
        """Runs a Postfix command (postsuper, postqueue, ...) on this instance."""
        return _run([argv[0], "-c", self.etc] + list(argv[1:])).stdout

    def queue_list(self):
        """postqueue -j: one dict per queued message (queue_name, queue_id,
        sender, recipients, ...)."""
        out = self.postfix_cmd("/usr/sbin/postqueue", "-j")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def hold_queue(self):
        """Queue ids in Postfix's hold queue (its directory, read directly)."""
        ids = []
        for _, _, files in os.walk(os.path.join(self.queue, "hold")):
            ids.extend(files)
        return sorted(ids)

    def queue_file(self, queue_id):
        return self.postfix_cmd("/usr/sbin/postcat", "-q", queue_id)

    def maillog(self):
        try:
            with open(self.maillog_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_maillog(self, pattern, timeout=10):
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.maillog()), timeout,
                          "maillog line /%s/" % pattern,
                          lambda: self.maillog()[-3000:])

    # ---- SMTP client -----------------------------------------------------
    def smtp(self, source="127.0.0.1"):
        """An SMTP connection to the private smtpd from a loopback source address
        (all of 127.0.0.0/8 is local, so each test can be its own client)."""
        s = smtplib.SMTP("127.0.0.1", self.smtpd_port, timeout=30,
                         source_address=(source, 0))
        s.ehlo("client.e2e.test")
        return s

    @staticmethod
    def message(sender, rcpts, subject="e2e"):
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = ", ".join(rcpts)
        msg["Subject"] = subject
        msg["Message-ID"] = make_msgid(domain="e2e.test")
        msg.set_content("relaymilter end-to-end test message\n")
        return msg.as_bytes()

    @staticmethod
    def login(s, user, password, mech="PLAIN"):
        """SMTP AUTH on connection s with mechanism mech (PLAIN or LOGIN);
        smtplib.SMTPAuthenticationError when the server refuses."""
        s.user, s.password = user, password
        auth = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login}[mech]
        return s.auth(mech, auth, initial_response_ok=mech == "PLAIN")

    def send(self, sender, rcpts, source="127.0.0.1", subject="e2e", auth=None):
        """One message in its own SMTP connection; every reply as an Outcome.
        auth: (user, password) or (user, password, mech): log in first; a
        refused login is the Outcome of stage "auth"."""
        try:
            s = self.smtp(source)
        except smtplib.SMTPResponseException as e:
            return Outcome("connect", e.smtp_code, e.smtp_error.decode(errors="replace"))
        try:
            if auth is not None:
                try:
                    self.login(s, *auth)
                except smtplib.SMTPAuthenticationError as e:
                    return Outcome("auth", e.smtp_code,
                                   e.smtp_error.decode(errors="replace"))
            return self._transaction(s, sender, rcpts, subject)
        finally:
            try:
                s.quit()
            except smtplib.SMTPException:
                s.close()

    def _transaction(self, s, sender, rcpts, subject):
        def dec(b):
            return b.decode(errors="replace")
        code, text = s.mail(sender)
        if code != 250:
            return Outcome("mail", code, dec(text))
        refused = {}
        for r in rcpts:
            code, text = s.rcpt(r)
            if code not in (250, 251):
                refused[r] = (code, dec(text))
        if len(refused) == len(rcpts):
            s.rset()
            code, text = refused[rcpts[-1]]
            return Outcome("rcpt", code, text, refused=refused)
        try:
            code, text = s.data(self.message(sender, rcpts, subject))
        except smtplib.SMTPDataError as e:
            return Outcome("data", e.smtp_code, dec(e.smtp_error), refused=refused)
        m = re.search(r"queued as (\w+)", dec(text))
        return Outcome("accepted" if code == 250 else "data", code, dec(text),
                       m.group(1) if m else None, refused)
