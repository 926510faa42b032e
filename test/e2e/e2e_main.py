# SPDX-License-Identifier: BSD-2-Clause
"""e2e_main - the command line shared by the end-to-end test files.

    sys.exit(e2e_main.run(__doc__, need_with_redis=True))

Parses --milter PATH (default $RM_MILTER) into e2e_main.MILTER, skips (77)
when not root, and runs the unittest classes of the calling __main__ module
with the remaining arguments (-k PATTERN, -v, ...).

    class MyTests(e2e_main.HarnessCase):
        settings = {...}          # milter settings (harness_conf.milter_config)
        harness_args = {...}      # optional: more Harness arguments (sasl_users=...)
        harness = MyHarness       # optional: a subclass of Harness
        milter = "/path/wrapper"  # optional: instead of --milter

HarnessCase starts one private Postfix + relaymilter (postfix_harness.Harness)
for the class as self.h, and stops it after the last test.
"""

import argparse
import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from postfix_harness import Harness  # noqa: E402

MILTER = None  # path of the relaymilter binary


class HarnessCase(unittest.TestCase):
    settings = None   # the milter's settings for the whole class
    harness_args = {}  # keyword arguments of the Harness (sasl_users, ...)
    harness = Harness  # a subclass may bring its own (timeouts, ...)
    milter = None     # the command that runs the milter; default MILTER
    h = None

    @classmethod
    def setUpClass(cls):
        cls.h = cls.harness(cls.milter or MILTER, cls.settings, **cls.harness_args).start()

    @classmethod
    def tearDownClass(cls):
        if cls.h is not None:
            cls.h.stop()


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def run(doc, need_with_redis=True):
    global MILTER
    ap = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    ap.add_argument("--milter", default=os.environ.get("RM_MILTER"),
                    help="the relaymilter binary (default: $RM_MILTER)")
    args, rest = ap.parse_known_args()
    if not args.milter:
        ap.error("--milter PATH is required")
    if os.geteuid() != 0:
        print("SKIP: the end-to-end tests run a private Postfix and need root")
        return 77
    if need_with_redis and not ({"RM_REDIS_PORT", "RM_CLUSTER_NODES"} & set(os.environ)):
        ap.error("run under test/lib/with-redis or with-cluster (RM_REDIS_PORT, "
                 "RM_CLUSTER_NODES are not set)")
    MILTER = os.path.abspath(args.milter)
    # SIGTERM (a ctest timeout) ends the run like ^C, which unittest does not
    # swallow; the harness stops Postfix, the milter (and Redis) at exit.
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        prog = unittest.main(module="__main__", argv=[sys.argv[0]] + rest,
                             exit=False, verbosity=2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 143
    return 0 if prog.result.wasSuccessful() else 1
