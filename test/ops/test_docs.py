#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""test_docs - the documents say what the code does, and nothing it does not.

    test_docs.py SOURCE_DIR RELAYMILTER RELAYMILTER_CTL

The facts come from the programs themselves: the configuration keys and limit
fields from `relaymilter -c EMPTY -p`, the metric names from a running
daemon's /metrics (on one Redis and on a Redis Cluster), the options from `relaymilter -h`, the support tool's
commands from `relaymilter-ctl help`. Then every page (README, INSTALL,
SECURITY, doc/*, the man pages) is read:
  - each configuration key, limit field, metric, option and support command
    it names must exist (a renamed key leaves no stale page behind), and each
    path of the tree it names must exist;
  - relaymilter.conf(5) documents every key, group, limit field and range,
    relaymilter(8) every option, relaymilter-ctl(1) every command and option,
    doc/OPERATIONS every metric; the man pages render without a warning and
    the EXAMPLE of relaymilter.conf(5) is a valid file;
  - INSTALL lists the same main.cf lines as postfix-example/main.cf;
  - README stays short (the topics have their own files).
Nothing is contacted but a daemon of our own on loopback, stopped by its PID.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SRC, MILTER, CTL = (os.path.abspath(a) for a in sys.argv[1:4])
PAGES = ["README", "INSTALL", "SECURITY"] + sorted(
    os.path.join("doc", f) for f in os.listdir(os.path.join(SRC, "doc")))
MANS = {"relaymilter.8": "m8", "relaymilter.conf.5": "m5", "relaymilter-ctl.1": "m1"}
README_MAX_LINES = 220
GROUPS = ("milter", "redis", "sasl", "log", "metrics")
# Words after "GROUP." that are file names or prose, not keys; names of the
# form x_per_y that are Redis's, not limit fields.
NOT_KEYS = {"conf", "example", "sock", "service"}
NOT_FIELDS = {"usec_per_call"}

fails = passes = 0


def check(ok, what, detail=""):
    global fails, passes
    if ok:
        passes += 1
        print("ok: " + what)
    else:
        fails += 1
        print("FAIL: " + what + (("\n    " + detail) if detail else ""))


def run(*argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- facts from the programs ---------------------------------------------

def config_facts(empty):
    """(keys as group.name / name, groups, limit fields) of relaymilter -p."""
    out = run(MILTER, "-c", empty, "-p").stdout
    keys, groups, fields, group = set(), set(), set(), ""
    for line in out.splitlines():
        m = re.match(r"^(\w+) = [{(]$", line)
        if m:
            group = m.group(1)
            groups.add(group)
            continue
        if line in ("};", ");"):
            group = ""
            continue
        m = re.match(r"^ *(?:# )?(\w+)(?: = |: )", line)
        if m is None:
            continue
        if group == "limits":
            fields.add(m.group(1))
        elif group in GROUPS:
            keys.add("%s.%s" % (group, m.group(1)))
        elif group == "" and line[0] != " ":
            keys.add(m.group(1))
    return keys, groups, fields


def metric_names(empty_dir):
    """The metric families a running daemon exports: on one Redis, and with
    redis.cluster_nodes (a seed nobody listens on: the families are there all
    the same)."""
    return (daemon_metrics(empty_dir, "") |
            daemon_metrics(empty_dir, 'redis = { cluster_nodes = [ "127.0.0.1:%d" ]; };\n'
                           % free_port()))


def daemon_metrics(empty_dir, redis):
    port, mport = free_port(), free_port()
    conf = os.path.join(empty_dir, "metrics.conf")
    with open(conf, "w") as f:
        f.write('milter = { socket = "inet:%d@127.0.0.1"; };\n'
                'metrics = { listen = "127.0.0.1:%d"; };\n%s' % (port, mport, redis))
    proc = subprocess.Popen([MILTER, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ,
                                                                RELAYMILTER_LOG_STDERR="1"))
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                              timeout=2).read().decode()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return set(re.findall(r"^# TYPE (\w+) ", text, re.M))


def milter_options():
    return set(re.findall(r"(?<![\w-])-([a-zA-Z])\b", run(MILTER, "-h").stdout))


def ctl_commands():
    text = run(CTL, "help").stdout
    body = text.split("Commands:", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"^  ([a-z]+)\b", body, re.M))


def ctl_options():
    text = run(CTL, "help").stdout
    body = text.split("Commands:", 1)[0]
    return set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", body))


# ---- the pages -------------------------------------------------------------

def plain_man(name):
    res = run("groff", "-man", "-Tutf8", "-P-cbou", os.path.join(SRC, "man", name))
    return res.stdout.replace("\u2010", "-")


def page_texts():
    texts = {}
    for p in PAGES:
        with open(os.path.join(SRC, p)) as f:
            texts[p] = f.read()
    for m in MANS:
        texts["man/" + m] = plain_man(m)
    return texts


def names_in(text, keys, fields, metrics, options, commands, man=False):
    """What a page names that the programs do not know. In a rendered man
    page every line is indented, so support commands are not picked from
    prose there (relaymilter-ctl(1) is checked for completeness instead)."""
    bad = []
    for g, k in re.findall(r"(?<![\w./-])(%s)\.([a-z_]+)\b" % "|".join(GROUPS), text):
        if k not in NOT_KEYS and "%s.%s" % (g, k) not in keys:
            bad.append("key %s.%s" % (g, k))
    for f in re.findall(r"\b([a-z_]*_per_[a-z]+)\b(?!\{)", text):
        if f not in fields and f not in NOT_FIELDS:
            bad.append("limit field " + f)
    for m in re.findall(r"\b(relaymilter_[a-z_]+)\b", text):
        if re.sub(r"_(bucket|sum|count)$", "", m) not in metrics and m not in metrics:
            bad.append("metric " + m)
    for o in re.findall(r"\brelaymilter(?: -c \S+)? -([a-zA-Z])\b", text):
        if o not in options:
            bad.append("option -" + o)
    # commands where a command is shown: an indented example or `quoted`
    for c in [] if man else re.findall(r"(?:^[ \t]+|`)relaymilter-ctl(?: -c \S+)? ([a-z]+)\b",
                                       text, re.M):
        if c not in commands:
            bad.append("relaymilter-ctl command " + c)
    for path in re.findall(r"(?<![\w/.-])((?:postfix-example|scripts|test|doc|policy|milter|"
                           r"packaging|debian|man|cmake)/[\w./-]*\w)", text):
        if not os.path.exists(os.path.join(SRC, path)):
            bad.append("path " + path)
    return sorted(set(bad))


def main_cf_lines():
    """name = value lines of postfix-example/main.cf, comments left out."""
    with open(os.path.join(SRC, "postfix-example", "main.cf")) as f:
        return [re.sub(r"\s*=\s*", " = ", ln.strip()) for ln in f
                if re.match(r"^[a-z_]+\s*=", ln)]


def install_main_cf_block(text):
    """The indented block after "Add these lines to main.cf" in INSTALL."""
    after = text.split("Add these lines to main.cf", 1)[1]
    block = re.search(r"\n\n((?:    \S.*\n)+)", after).group(1)
    return [re.sub(r"\s*=\s*", " = ", ln.strip()) for ln in block.splitlines()]


def main():
    with tempfile.TemporaryDirectory(prefix="rm-docs.") as tmp:
        empty = os.path.join(tmp, "empty.conf")
        open(empty, "w").close()
        keys, groups, fields = config_facts(empty)
        check(len(keys) >= 25 and len(fields) == 16 and "sasl" in groups,
              "relaymilter -p names %d keys, %d groups, %d limit fields"
              % (len(keys), len(groups), len(fields)))
        metrics = metric_names(tmp)
        check(len(metrics) >= 10, "the daemon exports %d metrics" % len(metrics))
        options, commands = milter_options(), ctl_commands()
        check({"c", "t", "p", "V", "h"} <= options, "relaymilter -h: %s" % sorted(options))
        check(len(commands) >= 10, "relaymilter-ctl help: %s" % sorted(commands))
        ctl_opts = ctl_options()
        check(len(ctl_opts) >= 10, "relaymilter-ctl help options: %s" % sorted(ctl_opts))

        texts = page_texts()
        for page, text in texts.items():
            bad = names_in(text, keys, fields, metrics, options, commands,
                           page.startswith("man/"))
            check(not bad, "%s names only real keys, fields, metrics, options, commands "
                  "and paths" % page, ", ".join(bad))

        m8, m5, m1 = (texts["man/" + m] for m in MANS)
        for k in sorted(keys):
            check(k in m5, "relaymilter.conf(5) documents " + k)
        for g in sorted(groups):
            check(re.search(r"\b%s\b" % g, m5), "relaymilter.conf(5) documents group " + g)
        for f in sorted(fields):
            check(f in m5, "relaymilter.conf(5) documents limit field " + f)
        with open(os.path.join(SRC, "policy", "config.c")) as f:
            ranges = re.findall(r'CT_INT, OFF\(\w+\),\s*-?\d+,\s*NULL,\s*(\d+),\s*(\d+)',
                                f.read())
        check(len(ranges) >= 8, "config.c's ranges read")
        for lo, hi in ranges:
            check("%s..%s" % (lo, hi) in m5, "relaymilter.conf(5) states the range %s..%s"
                  % (lo, hi))
        for o in sorted(options):
            check(re.search(r"(^|\s)-%s(\s|$)" % o, m8, re.M), "relaymilter(8) documents -" + o)
        for s in ("SIGHUP", "SIGTERM", "SIGINT", "EXIT STATUS", "FILES", "EXAMPLES",
                  "RELAYMILTER_LOG_STDERR"):
            check(s in m8, "relaymilter(8) has " + s)
        for c in sorted(commands):
            check(re.search(r"\b%s\b" % c, m1), "relaymilter-ctl(1) documents " + c)
        m1_options = m1.split("\nOPTIONS\n", 1)[-1].split("\nCOMMANDS\n", 1)[0]
        for o in sorted(ctl_opts):
            check(re.search(r"^ {7}(.*[\s,])?%s([\s,]|$)" % o, m1_options, re.M),
                  "relaymilter-ctl(1) documents %s under OPTIONS" % o)
        for s in ("EXIT STATUS", "JSON OUTPUT", "ENVIRONMENT", "REDISCLI_AUTH",
                  "RELAYMILTER_CONF", "EXAMPLES"):
            check(s in m1, "relaymilter-ctl(1) has " + s)
        for m in sorted(metrics):
            check(m in texts["doc/OPERATIONS"], "doc/OPERATIONS documents metric " + m)
        for man in MANS:
            res = run("groff", "-man", "-ww", "-z", os.path.join(SRC, "man", man))
            check(res.returncode == 0 and not res.stderr.strip(),
                  "groff -man -ww: %s renders without a warning" % man, res.stderr)
        with open(os.path.join(SRC, "man", "relaymilter.conf.5")) as f:
            ex = re.search(r"^\.SH EXAMPLE\n\.nf\n(.*?)^\.fi", f.read(), re.M | re.S).group(1)
        excf = os.path.join(tmp, "example.conf")
        with open(excf, "w") as f:
            f.write(ex.replace("\\-", "-"))
        res = run(MILTER, "-c", excf, "-t")
        check(res.stdout.strip() == "configuration OK",
              "the EXAMPLE of relaymilter.conf(5) passes relaymilter -t", res.stderr)

        want = main_cf_lines()
        got = install_main_cf_block(texts["INSTALL"])
        check(want and got == want, "INSTALL lists the main.cf lines of postfix-example/main.cf",
              "INSTALL %s\n    main.cf %s" % (got, want))
        n = texts["README"].count("\n")
        check(n <= README_MAX_LINES, "README is %d lines (at most %d)" % (n, README_MAX_LINES))
    print("%d passed, %d failed" % (passes, fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
