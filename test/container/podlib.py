# SPDX-License-Identifier: BSD-2-Clause
"""podlib - what the container tests share.

  Store(build_dir, name)   a podman store of the test's own (run.sh with
                           RM_PODMAN_STORE), emptied and removed by cleanup(),
                           or by a reaper process if the test is killed
  run_test(doc, check, name, body, containers)
                           the frame of a test: arguments, root, a Store

    python3 podlib.py --reap STORE   the reaper (started by Store.open)
"""

import hashlib
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_SH = os.path.join(HERE, "run.sh")


class Store:
    def __init__(self, build_dir, name):
        # Outside the source tree (never part of a build context), one per
        # build tree and test; podman allows 50 characters for the run root.
        key = "%s\0%s" % (os.path.realpath(build_dir), name)
        self.path = "/var/tmp/rm-podman-" + hashlib.sha256(key.encode()).hexdigest()[:12]
        self.env = dict(os.environ, RM_PODMAN_STORE=self.path)
        self.reaper = None

    def open(self):
        """A fresh store (what a killed earlier run left is removed first),
        and a reaper that removes it if this process dies."""
        cleanup(self.path)
        os.makedirs(self.path)
        self.reaper = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--reap",
                                        self.path], stdin=subprocess.PIPE,
                                       start_new_session=True)

    def close(self):
        cleanup(self.path)
        if self.reaper is not None:
            self.reaper.stdin.close()
            self.reaper.wait(300)

    def run(self, *args, timeout=120, check=True):
        """run.sh ARGS in this store: CompletedProcess, output merged, text."""
        res = subprocess.run([RUN_SH] + [str(a) for a in args], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError("run.sh %s: exit %d\n%s" % (" ".join(map(str, args)),
                                                         res.returncode, res.stdout[-4000:]))
        return res

    def logs_tail(self, name, chars=6000):
        res = self.run("logs", name, check=False)
        return res.stdout[-chars:] if res.returncode == 0 else ""


def cleanup(path):
    """Removes every container and image of the store at path, then the store."""
    if not os.path.isdir(path):
        return
    env = dict(os.environ, RM_PODMAN_STORE=path)
    for args in (["rm", "-f", "-a", "-t", "2"], ["rmi", "-f", "-a"]):
        try:
            subprocess.run([RUN_SH] + args, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=180)
        except subprocess.TimeoutExpired:
            print("cleanup: run.sh %s timed out" % " ".join(args), flush=True)
    # containers/storage keeps its overlay directory bind-mounted.
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f]
    for m in sorted((m for m in mounts if m.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", m], check=False)
    shutil.rmtree(path, ignore_errors=True)


def processes_using(path):
    """PIDs whose command line names path (conmon of a left container)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if path.encode() in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def check_store_removed(check, store):
    """The closing checks: nothing of the store is left."""
    check("every container and image of the test is gone (store removed)",
          not os.path.exists(store.path))
    left = processes_using(store.path)
    check("no process of the test's containers is left", not left, " ".join(left))


def run_test(doc, check, name, body, containers=()):
    """The frame of a container test run as `TEST SOURCE_DIR BUILD_DIR`: exit
    77 (skipped) when not root; body(src, build, store) runs with a Store of
    its own, whatever it raises is a failure (with the log tails of the
    named containers), and the store is removed afterwards. Exit status."""
    if len(sys.argv) != 3:
        print(doc, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("skip: needs root (podman, rootful)")
        return 77
    src, build = (os.path.realpath(a) for a in sys.argv[1:3])
    store = Store(build, name)
    started = time.monotonic()
    store.open()
    try:
        body(src, build, store)
    except (RuntimeError, subprocess.TimeoutExpired, TimeoutError) as e:
        check("%s runs to its end" % name, False, str(e))
    finally:
        if check.fails:
            for c in containers:
                check.say("--- output of container %s (tail) ---\n%s" % (c, store.logs_tail(c)))
        store.close()
    check_store_removed(check, store)
    check.say("total %.0f s" % (time.monotonic() - started))
    return check.finish()


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--reap":
    # Waits for the test to close stdin (or die), then removes what it left.
    sys.stdin.read()
    cleanup(sys.argv[2])
