#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""test_run_local - the README's run command, typed as written at a terminal.

    test_run_local.py SOURCE_DIR

Runs `sh scripts/run-local.sh` in SOURCE_DIR on a pseudo-terminal, as a user
does, and checks what the README promises:
  - the milter listens on inet:8890@127.0.0.1 with the sample config and
    decides a message (a milter client speaking as Postfix does) through
    Redis: accepted, its decision line on the terminal without a store error;
  - with nothing on 127.0.0.1:6379 before, a private redis-server listens
    there while it runs;
  - Ctrl-C (the terminal's interrupt character) stops it: the script exits
    with 130, the private redis-server is gone and its temp dir removed,
    nothing listens on 8890 or 6379 any more.
With a Redis already on 6379 the script uses it and the test checks that it
is still there afterwards. Exits 77 (skipped) when something else already
listens on 8890, the sample config's port.
"""

import glob
import os
import pty
import re
import select
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import milterclient as mc  # noqa: E402
from checks import Checks  # noqa: E402
from harness_conf import listening  # noqa: E402

MILTER, REDIS = 8890, 6379  # the sample config's, on 127.0.0.1
DIRS = "/tmp/relaymilter-redis.*"


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


class Terminal:
    """sh scripts/run-local.sh on a pty; everything it printed in .out."""

    def __init__(self, source):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.chdir(source)
            os.execvp("sh", ["sh", "scripts/run-local.sh"])
        self.out = ""
        self.status = None

    def read_until(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.out) and time.monotonic() < deadline:
            if not self.read_some(deadline - time.monotonic()):
                break
        return re.search(pattern, self.out)

    def read_some(self, timeout=0.0):
        """What the terminal shows within timeout seconds; False once the
        other side has closed it."""
        if not select.select([self.fd], [], [], max(timeout, 0))[0]:
            return True
        try:
            data = os.read(self.fd, 4096)
        except OSError:  # EIO: the other side closed
            return False
        self.out += data.decode(errors="replace")
        return bool(data)

    def interrupt(self):
        os.write(self.fd, b"\x03")  # ^C: SIGINT to the terminal's foreground group

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.read_some(0.1)
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
                return self.status
        return None

    def kill(self):
        """Only if the test fails half-way: the script's session, which this
        test started (pty.fork makes it a session leader)."""
        if self.status is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.wait(10)


def decide(ck, term):
    with mc.MilterClient(("127.0.0.1", MILTER), timeout=5.0) as c:
        c.connect_info(addr="127.0.0.1", port=40000, hostname="localhost")
        res = c.send_message(sender="bob@run-local.example", rcpts=["a@example.org"],
                             qid="4RunLocal1")
    ck("a message is decided: accepted", res.verdict == "accept", res)
    line = term.read_until(r"4RunLocal1: customer=[^\r\n]*", 10)
    ck("its decision line is on the terminal, without a store error",
       line is not None and "action=accept" in line.group(0)
       and "store_error" not in line.group(0), term.out[-2000:])


def main():
    source = sys.argv[1]
    ck = Checks("run-local")
    if listening(MILTER):
        print("skipped: something already listens on 127.0.0.1:%d" % MILTER)
        return 77
    had_redis = listening(REDIS)
    dirs_before = set(glob.glob(DIRS))
    term = Terminal(source)
    try:
        up = term.read_until(r"listening on inet:8890@127\.0\.0\.1", 900)
        if not ck("the milter starts and says where it listens", up is not None,
                  term.out[-3000:]):
            return ck.finish()
        m = re.search(r"started a private redis-server \(pid (\d+)\)", term.out)
        redis_pid = int(m.group(1)) if m else None
        new_dirs = set(glob.glob(DIRS)) - dirs_before
        if had_redis:
            ck("a Redis already on 6379 is used, no private one started",
               redis_pid is None and not new_dirs, term.out[-2000:])
        else:
            ck("a private redis-server listens on 127.0.0.1:6379",
               redis_pid is not None and alive(redis_pid) and listening(REDIS)
               and len(new_dirs) == 1, term.out[-2000:])
        decide(ck, term)
        term.interrupt()
        status = term.wait(30)
        ck("Ctrl-C stops it: exit status 130", status == 130,
           "status %s\n%s" % (status, term.out[-2000:]))
        ck("nothing listens on 8890 any more", not listening(MILTER))
        if had_redis:
            ck("the Redis that was there before still listens", listening(REDIS))
        else:
            ck("the private redis-server is gone", redis_pid is not None and not alive(redis_pid))
            ck("nothing listens on 6379 any more", not listening(REDIS))
            left = [d for d in new_dirs if os.path.exists(d)]
            ck("its temp dir is removed", not left, left)
    finally:
        term.kill()
    return ck.finish()


if __name__ == "__main__":
    sys.exit(main())
