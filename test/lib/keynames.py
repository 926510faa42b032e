# SPDX-License-Identifier: BSD-2-Clause
"""keynames - Redis key names for the Python tests, from policy/keys.c.

The layout lives in one place (keys.c); the tests ask test/lib/rm_keys.c, a
small program built from it, instead of spelling names themselves.

    counter(w, customer, sender=None, prefix="relay:")   a usage counter
        (w "m", "h" or "d"; the sender scope when sender is given)
    sender_pattern(w, customer, prefix="relay:")         SCAN MATCH pattern
    name(kind, *args, prefix="relay:")                   limits, domain, sasl,
                                                         blocked, events

The program is $RM_KEYS (set by the tests' CMake files), else rm-keys in
test/lib of the build directory beside $RM_MILTER.
"""

import functools
import os
import subprocess


def _program():
    if os.environ.get("RM_KEYS"):
        return os.environ["RM_KEYS"]
    milter = os.environ.get("RM_MILTER", "")
    return os.path.join(os.path.dirname(os.path.abspath(milter)), "test", "lib", "rm-keys")


@functools.lru_cache(maxsize=4096)
def _run(*argv):
    res = subprocess.run([_program()] + list(argv), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    if res.returncode != 0:
        raise RuntimeError("rm-keys %s: %s" % (" ".join(argv), res.stderr.decode()))
    return res.stdout.decode("utf-8", "surrogateescape")


def counter(w, customer, sender=None, prefix="relay:"):
    args = ("counter", prefix, w, customer) + (() if sender is None else (sender,))
    return _run(*args)


def sender_pattern(w, customer, prefix="relay:"):
    return _run("sender-pattern", prefix, w, customer)


def name(kind, *args, prefix="relay:"):
    return _run(kind, prefix, *args)
