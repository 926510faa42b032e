#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""test_install_doc - the manual install path of INSTALL ("From source"), run
as written on a fresh Debian 12 with systemd.

    test_install_doc.py SOURCE_DIR BUILD_DIR

The lines between "# BEGIN install-from-source" and "# END
install-from-source" run unchanged (bash -e) as root in /root/relaymilter, a
copy of this tree, in a container whose init is systemd (install.Dockerfile,
built in a podman store of the test's own: test/container/run.sh). The
container has its own network namespace (slirp4netns: apt-get reaches the
mirror, and the daemon's inet:8890@127.0.0.1 is the container's own). Then:
the service is active, runs as the user relaymilter and answers on its
socket; the config file has the owner and mode the doc gives; a reload
works. Everything the test made is removed. Needs root (exit 77 otherwise).
"""

import os
import re
import sys
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness_conf import wait_until  # noqa: E402
from podlib import run_test  # noqa: E402
from checks import Checks  # noqa: E402

NAME = "rm-install-doc"
BLOCK_RX = re.compile(r"^[ \t]*# BEGIN install-from-source\n(.*?)^[ \t]*# END "
                      r"install-from-source$", re.M | re.S)
check = Checks("test_install_doc")


def run(src, build, store):
    with open(os.path.join(src, "INSTALL")) as f:
        m = BLOCK_RX.search(f.read())
    if not check("INSTALL has the marked block", m is not None):
        return
    block = textwrap.dedent(m.group(1))
    store.run("base", timeout=600)
    store.run("build", "-t", NAME, "-f", os.path.join(HERE, "install.Dockerfile"), src,
              timeout=600)
    store.run("run", "-d", "--name", NAME, "--network", "slirp4netns",
              NAME)

    def sh(script, timeout=60, ok=True):
        return store.run("exec", "-w", "/root/relaymilter", NAME, "bash", "-c", script,
                         timeout=timeout, check=ok)
    wait_until(lambda: sh("systemctl is-system-running", ok=False).stdout.strip()
               in ("running", "degraded"), 120, "systemd in the container", interval=0.5)

    t0 = time.monotonic()
    res = sh("set -ex\n" + block, timeout=1500, ok=False)
    print("    " + res.stdout[-3000:].replace("\n", "\n    "))
    check("the block of INSTALL runs as written (%.0f s)"
          % (time.monotonic() - t0), res.returncode == 0)

    state = sh("systemctl is-active relaymilter", ok=False).stdout.strip()
    check("relaymilter.service is active", state == "active",
          sh("systemctl status --no-pager relaymilter", ok=False).stdout)
    user = sh("stat -c %U /proc/$(systemctl show -p MainPID --value relaymilter)",
              ok=False).stdout.strip()
    check("the daemon runs as the user relaymilter", user == "relaymilter", user)
    check("it answers on inet:8890@127.0.0.1",
          sh("exec 3<>/dev/tcp/127.0.0.1/8890", ok=False).returncode == 0)
    mode = sh("stat -c '%U:%G %a' /etc/relaymilter.conf", ok=False).stdout.strip()
    check("/etc/relaymilter.conf is root:relaymilter 640", mode == "root:relaymilter 640", mode)
    check("systemctl reload relaymilter works",
          sh("systemctl reload relaymilter && systemctl is-active relaymilter",
             ok=False).returncode == 0)


if __name__ == "__main__":
    sys.exit(run_test(__doc__, check, "install-doc", run, (NAME,)))
