#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""test_container - the users' CI kit of postfix-example/, built and run.

    test_container.py SOURCE_DIR BUILD_DIR

From a clean state, in a podman store of its own (test/container/run.sh with
RM_PODMAN_STORE): makes the debian:12 base image from Debian's packages,
builds the relay image (postfix-example/Dockerfile) and the Redis image
(postfix-example/Dockerfile.redis), starts both with host networking on free
loopback ports, waits for their health checks, then runs
postfix-example/ci-test.sh against the relay from the host (with and without
SMTP AUTH; --ctl runs relaymilter-ctl in the relay container with podman
exec) and from inside the relay container (plain relaymilter-ctl), and
scrapes /metrics there.
Postfix relays for 127.0.0.2 only (MYNETWORKS); 127.0.0.1 must log in, so a
run from there without AUTH must fail. Every container and image is then
removed with the store; if this process is killed, a reaper started at the
beginning does it. Prints the build and start-to-healthy times. Needs root
(exit 77 otherwise): any other failure to build or run is a failure.

Services start with `podman run` of the images and their entrypoints, with
the environment of doc/CI for host networking: Debian 12's podman-compose
cannot use host networking (doc/CI).
"""

import os
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness_conf import free_port, wait_until  # noqa: E402
from podlib import RUN_SH, run_test  # noqa: E402
from checks import Checks  # noqa: E402

RELAY, REDIS, BUILD_STAGE = "rm-ci-relay", "rm-ci-redis", "rm-ci-build"
# Accounts of the relay: one the test maps to a customer in Redis, one left
# to relaymilter's default (sasl:LOGIN, the login in lower case).
MAPPED, MAPPED_PW = "ci-mapped", "mapped-secret"
UNMAPPED, UNMAPPED_PW = "CI-Login", "pw:with:colons"
NOAUTH_SOURCE = "127.0.0.2"   # the one client Postfix relays for without AUTH
check = Checks("test_container")


def last_line(res):
    return res.stdout.strip().split("\n")[-1]


def run_kit(src, build, store):
    def ci_test(*args, inside=None):
        """ci-test.sh ARGS from the host, or in the container named inside."""
        if inside:
            argv = [RUN_SH, "exec", inside, "ci-test.sh"] + list(args)
        else:
            argv = ["sh", os.path.join(src, "postfix-example", "ci-test.sh")] + list(args)
        res = subprocess.run(argv, env=store.env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=180)
        sys.stdout.write(res.stdout.replace("\n", "\n    ").join(["    ", "\n"]))
        return res

    # ---- build from a clean state ----------------------------------------
    t0 = time.monotonic()
    store.run("base", timeout=600)
    t_base = time.monotonic() - t0
    check("base image debian:12 made from Debian packages (%.0f s)" % t_base, True)

    dockerfile = os.path.join(src, "postfix-example", "Dockerfile")
    store.run("build", "--target", "build", "-t", BUILD_STAGE, "-f", dockerfile, src,
              timeout=1200)
    # .dockerignore applies: neither the Git data nor a build tree is copied.
    listing = store.run("run", "--rm", BUILD_STAGE, "ls", "-A", "/src/relaymilter").stdout
    entries = set(listing.split())
    inside = os.path.relpath(build, src).split(os.sep)[0] if build.startswith(src + "/") else None
    check("the build context leaves out .git and the build tree (.dockerignore)",
          "debian" in entries and ".git" not in entries and "build" not in entries
          and (inside is None or inside not in entries), listing)
    store.run("build", "-t", RELAY, "-f", dockerfile, src, timeout=1200)
    store.run("build", "-t", REDIS, "-f",
              os.path.join(src, "postfix-example", "Dockerfile.redis"),
              os.path.join(src, "postfix-example"), timeout=600)
    t_build = time.monotonic() - t0
    check("images built: relay (.deb from this tree + Postfix) and redis", True)
    check.say("build time from a clean state: %.0f s (base image %.0f s)" % (t_build, t_base))

    # ---- start ------------------------------------------------------------
    redis_port, smtp_port, milter_port, metrics_port = (free_port() for _ in range(4))
    t0 = time.monotonic()
    store.run("run", "-d", "--name", REDIS, "-e", "REDIS_BIND=127.0.0.1",
              "-e", "REDIS_PORT=%d" % redis_port, REDIS)
    env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": redis_port, "RELAYHOST": "",
           "MYNETWORKS": NOAUTH_SOURCE + "/32",
           "SASL_USERS": "%s:%s %s:%s" % (MAPPED, MAPPED_PW, UNMAPPED, UNMAPPED_PW),
           "SMTP_PORT": smtp_port, "INET_INTERFACES": "127.0.0.1",
           "MILTER_PORT": milter_port, "METRICS_LISTEN": "127.0.0.1:%d" % metrics_port}
    store.run("run", "-d", "--name", RELAY,
              *sum((["-e", "%s=%s" % kv] for kv in env.items()), []), RELAY)

    def healthy():
        # No systemd here to run health checks on a timer: run them.
        for n in (REDIS, RELAY):
            status = store.run("inspect", "-f", "{{.State.Status}}", n).stdout.strip()
            if status != "running":
                raise RuntimeError("container %s is %s" % (n, status))
            if store.run("healthcheck", "run", n, check=False).returncode != 0:
                return False
        return True

    def state():
        return store.run("ps", "-a", check=False).stdout
    wait_until(healthy, 180, "the health checks of both containers", state, interval=0.5)
    t_healthy = time.monotonic() - t0
    check("redis and relay healthy (%.1f s after start)" % t_healthy, True)
    check.say("start to healthy: %.1f s" % t_healthy)

    # relaymilter-ctl of the relay container, with its /etc/relaymilter.conf
    ctl = shlex.join([RUN_SH, "exec", RELAY, "relaymilter-ctl"])
    target = ["127.0.0.1", str(smtp_port)]

    # ---- ci-test.sh from the host -------------------------------------------
    res = ci_test("--ctl", ctl, "--source", NOAUTH_SOURCE, *target)
    check("host, no AUTH, from a client in mynetworks: ci-test.sh passes",
          res.returncode == 0 and last_line(res) == "5 passed, 0 failed"
          and "customer ip:%s," % NOAUTH_SOURCE in res.stdout)

    res = ci_test("--ctl", ctl, "--source", "127.0.0.1", *target)
    check("host, no AUTH, from a client Postfix does not relay for: ci-test.sh fails",
          res.returncode == 1 and "Relay access denied" in res.stdout)

    store.run("exec", RELAY, "relaymilter-ctl", "sasl", MAPPED, "ci-sasl-customer")
    with tempfile.NamedTemporaryFile("w", prefix="rm-ci-pw.") as pw:
        pw.write(MAPPED_PW + "\n")
        pw.flush()
        res = ci_test("--ctl", ctl, "--source", "127.0.0.1",
                      "--auth-user", MAPPED, "--auth-password-file", pw.name, *target)
    check("host, AUTH with a login mapped in PREFIXsasl: ci-test.sh passes for its customer",
          res.returncode == 0 and last_line(res) == "6 passed, 0 failed"
          and "customer ci-sasl-customer," in res.stdout)

    res = ci_test("--ctl", ctl, "--source", "127.0.0.1",
                  "--auth-user", UNMAPPED, "--auth-password", UNMAPPED_PW, *target)
    check("host, AUTH with a login mapped to no customer: ci-test.sh passes for sasl:LOGIN",
          res.returncode == 0 and last_line(res) == "6 passed, 0 failed"
          and "customer sasl:%s," % UNMAPPED.lower() in res.stdout)

    res = ci_test("--ctl", ctl, "--source", "127.0.0.1",
                  "--auth-user", MAPPED, "--auth-password", "wrong", *target)
    check("host, AUTH with a wrong password: ci-test.sh fails",
          res.returncode == 1 and "FAIL: AUTH as %s: 535" % MAPPED in res.stdout)

    # ---- ci-test.sh inside the relay container ------------------------------
    res = ci_test("--source", NOAUTH_SOURCE, *target, inside=RELAY)
    check("inside the relay container: ci-test.sh passes",
          res.returncode == 0 and last_line(res) == "5 passed, 0 failed")

    # ---- /metrics, scraped in the relay container ----------------------------
    url = "http://127.0.0.1:%d/metrics" % metrics_port
    res = store.run("exec", RELAY, "python3", "-c",
                    "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
                    "sys.argv[1], timeout=10).read().decode())", url)
    samples = dict(line.rsplit(" ", 1) for line in res.stdout.splitlines()
                   if line and not line.startswith("#"))
    accepted = float(samples.get('relaymilter_decisions_total{action="accept",reason="none"}', 0))
    tempfailed = float(samples.get(
        'relaymilter_decisions_total{action="tempfail",reason="quota"}', 0))
    check("/metrics in the container counts what was sent (%g accepted, %g over quota)"
          % (accepted, tempfailed), accepted >= 12 and tempfailed >= 4, res.stdout[:2000])
    # The same endpoint answers from the host (host networking).
    with urllib.request.urlopen(url, timeout=10) as r:
        check("/metrics answers from the host too", r.status == 200)


if __name__ == "__main__":
    sys.exit(run_test(__doc__, check, "kit", run_kit, (RELAY, REDIS)))
