# SPDX-License-Identifier: BSD-2-Clause
"""private_redis - a redis-server of a test's own, to stop, restart and pause.

    r = PrivateRedis().start()      # 127.0.0.1, a free port, a temp dir
    r.stop(); r.start()             # the same port again, empty (no persistence)
    r.pause(); r.resume()           # SIGSTOP / SIGCONT: a hung server; resume
                                    # returns once the server has read what
                                    # was sent to it while it was stopped
    r.cli("PING"); r.cleanup()

on_start(proc) is called after each start (e.g. Harness.adopt, so that the
reaper stops this server too if the test dies). Only the process started
here is ever signalled, by its PID.
"""

import os
import shutil
import signal
import subprocess
import tempfile

from harness_conf import free_port, port_sockets, wait_until


class PrivateRedis:
    def __init__(self, on_start=None):
        self.dir = tempfile.mkdtemp(prefix="rm-e2e-redis.")
        self.port = free_port()
        self.proc = None
        self.paused = False
        self.on_start = on_start
        self.log_path = os.path.join(self.dir, "redis.log")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        if self.running():
            raise RuntimeError("redis-server %d is already running" % self.proc.pid)
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--dir", self.dir,
             "--logfile", self.log_path, "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.paused = False
        if self.on_start is not None:
            self.on_start(self.proc)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited with %s:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            return self.ping()
        wait_until(up, 10, "redis-server on 127.0.0.1:%d" % self.port, self.log_tail)
        return self

    def ping(self):
        res = subprocess.run(["redis-cli", "-p", str(self.port), "PING"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, timeout=5)
        return res.stdout.strip() == "PONG"

    def stop(self):
        if not self.running():
            return
        self.proc.send_signal(signal.SIGTERM)
        if self.paused:
            self.resume()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.running():
            self.proc.send_signal(signal.SIGCONT)
            wait_until(self.drained, 10, "redis-server %d reading what it was sent while "
                       "stopped" % self.port, self.log_tail, interval=0.01)
        self.paused = False

    def drained(self):
        """True when no byte or connection sent to this server waits in the
        kernel: every socket on its port has an empty receive queue (for the
        listening socket, an empty accept queue; /proc/net/tcp's rx_queue).
        A command sent before this held is carried out before any command
        sent after it, since Redis runs a command in the same step as it
        reads it: a call that timed out while the server was stopped and
        that Redis still carries out (doc/OPERATIONS, "Operations: when
        Redis fails") is counted before a test reads a counter."""
        return all(queued == 0 for _, _, queued in port_sockets(self.port))

    def cli(self, *args):
        """redis-cli on this server; not while it is paused (it would wait)."""
        if self.paused:
            raise RuntimeError("redis-server is paused")
        res = subprocess.run(["redis-cli", "-p", str(self.port)] + [str(a) for a in args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             timeout=10)
        if res.returncode != 0:
            raise RuntimeError("redis-cli %s: %s" % (" ".join(args), res.stderr))
        return res.stdout.strip()

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError as e:
            return "(%s)" % e

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
