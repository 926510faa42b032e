# SPDX-License-Identifier: BSD-2-Clause
"""reaper DIR - cleans up after a postfix_harness whose process died.

Started by the harness with a pipe on stdin. It forks once, so that the
working copy is orphaned and survives whatever kills the test (a ctest
timeout kills the test's whole process tree, but Postfix's master has
already left that tree). When stdin reaches end of file -- the harness
closed it, or died -- it reads DIR/reaper.manifest. The harness deletes that
file after a clean stop; if it is still there, the reaper stops what it
lists:
    postfix CONFIG_DIR    -> postfix -c CONFIG_DIR stop
    pid PID NAME          -> SIGTERM (then SIGKILL) to PID, only if
                             /proc/PID/cmdline still names NAME's program
                             (then SIGCONT, in case a test paused it)
    keep 0|1              -> 0: remove DIR afterwards
"""

import os
import shutil
import signal
import subprocess
import sys
import time

PROGRAMS = {"milter": "relaymilter", "sink": "smtp-sink", "redis": "redis-server"}


def still_ours(pid, name):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv0 = f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return False
    # redis-server rewrites its title: "redis-server 127.0.0.1:6379"
    return os.path.basename(argv0.split(" ")[0]) == PROGRAMS.get(name)


def stop_pid(pid, name):
    if not still_ours(pid, name):
        return
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGCONT)  # a test may have stopped it (SIGSTOP)
    for _ in range(100):
        if not still_ours(pid, name):
            return
        time.sleep(0.05)
    if still_ours(pid, name):
        os.kill(pid, signal.SIGKILL)


def reap(top):
    try:
        with open(os.path.join(top, "reaper.manifest")) as f:
            lines = [ln.split() for ln in f if ln.strip()]
    except OSError:
        return  # clean stop
    keep = False
    for words in lines:
        if words[0] == "postfix" and os.path.exists(os.path.join(words[1], "main.cf")):
            subprocess.run(["/usr/sbin/postfix", "-c", words[1], "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elif words[0] == "pid":
            stop_pid(int(words[1]), words[2])
        elif words[0] == "keep":
            keep = words[1] == "1"
    if not keep:
        time.sleep(1)  # let Postfix's master finish before its queue goes
        shutil.rmtree(top, ignore_errors=True)


def main():
    top = sys.argv[1]
    if os.fork() > 0:
        os._exit(0)
    sys.stdin.buffer.read()
    reap(top)


if __name__ == "__main__":
    main()
