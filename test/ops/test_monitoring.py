#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""test_monitoring - the monitoring kit of monitoring/ against a running daemon.

    test_monitoring.py SOURCE_DIR RELAYMILTER

  - promtool check rules: relaymilter.rules.yml is valid;
  - promtool test rules: its unit tests (relaymilter.rules.test.yml) pass;
  - every metric name the rules and the Grafana dashboard use is one that
    relaymilter exports: the daemon is started with metrics.listen on a free
    loopback port (no Redis needed) and /metrics is scraped, once with one
    Redis and once with redis.cluster_nodes (the per-node metrics); names
    recorded by the rules themselves, and Prometheus's own "up", count too;
  - every expression of the dashboard is valid PromQL (promtool checks them
    as recording rules, with Grafana's variables filled in).
The name check is tried on a misspelt copy first: it must catch it.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness_conf import free_port, stop_process, wait_until  # noqa: E402
from checks import Checks  # noqa: E402

# Names Prometheus itself gives every scrape target.
PROMETHEUS_OWN = {"up"}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "offset", "bool", "inf", "nan"}
check = Checks("test_monitoring")


def rule_exprs(text):
    """(exprs, recorded names) of a Prometheus rule file in the layout of
    relaymilter.rules.yml: `expr: ONE LINE` or `expr: >-` with the expression
    on the more indented lines below."""
    exprs, lines = [], text.split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)(?:- )?expr:\s*(.*)$", line)
        if not m:
            continue
        if m.group(2) not in (">-", ">", "|", "|-"):
            exprs.append(m.group(2).strip("'\""))
            continue
        body, indent = [], len(m.group(1))
        for nxt in lines[i + 1:]:
            if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                break
            body.append(nxt.strip())
        exprs.append(" ".join(body).strip())
    recorded = set(re.findall(r"^\s*- record:\s*(\S+)", text, re.M))
    return exprs, recorded


def metric_names(expr):
    """The metric names a PromQL expression selects (Grafana's $variables and
    label_values(METRIC, LABEL) understood)."""
    e = re.sub(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,[^)]*\)", r"\1", expr)
    e = re.sub(r"\$\{?\w+\}?", "", e)
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', "", e)  # strings
    e = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", e)  # label matchers, ranges
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\b\d[\w.]*", " ", e)  # numbers, durations
    names = set()
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        if not m.group(2) and m.group(1).lower() not in KEYWORDS:
            names.add(m.group(1))
    return names


def unknown_names(exprs, known):
    return sorted({n for e in exprs for n in metric_names(e)} - known)


def scrape(milter, tmp, redis):
    """/metrics of a daemon started with the redis { } settings given; the
    Redis it names need not answer (a cluster's seed nodes are listed at
    start)."""
    port, metrics_port = free_port(), free_port()
    conf = os.path.join(tmp, "relaymilter.conf")
    with open(conf, "w") as f:
        f.write('milter = { socket = "inet:%d@127.0.0.1"; };\n'
                'redis = { %s };\n'
                'metrics = { listen = "127.0.0.1:%d"; };\n' % (port, redis, metrics_port))
    proc = subprocess.Popen([milter, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d/metrics" % metrics_port

    def get():
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read().decode()
        except OSError:
            return None
    try:
        return wait_until(get, 30, "relaymilter's /metrics", interval=0.2)
    finally:
        stop_process(proc)


def promtool(*args):
    res = subprocess.run(["promtool"] + list(args), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=120)
    return res.returncode == 0, res.stdout


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    src, milter = sys.argv[1:3]
    mon = os.path.join(src, "monitoring")
    rules_file = os.path.join(mon, "relaymilter.rules.yml")
    ok, out = promtool("check", "rules", rules_file)
    check("promtool check rules relaymilter.rules.yml", ok, out)
    ok, out = promtool("test", "rules", os.path.join(mon, "relaymilter.rules.test.yml"))
    check("promtool test rules relaymilter.rules.test.yml", ok, out)

    with tempfile.TemporaryDirectory(prefix="rm-monitoring.") as tmp:
        text = scrape(milter, tmp, 'host = "127.0.0.1"; port = %d;' % free_port())
        nodes = ", ".join('"127.0.0.1:%d"' % free_port() for _ in range(2))
        text += scrape(milter, tmp, "cluster_nodes = [ %s ];" % nodes)
        exported = {line.split("{")[0].split(" ")[0] for line in text.split("\n")
                    if line and not line.startswith("#")}
        check("the daemon exports metrics (%d names)" % len(exported),
              len(exported) >= 10 and "relaymilter_decisions_total" in exported, text)
        check("with redis.cluster_nodes, per-node metrics too",
              "relaymilter_redis_node_circuit_open" in exported, text)

        with open(rules_file) as f:
            rules_text = f.read()
        exprs, recorded = rule_exprs(rules_text)
        known = exported | recorded | PROMETHEUS_OWN
        used = {n for e in exprs for n in metric_names(e)}
        check("the rules use %d metric names in %d expressions" % (len(used), len(exprs)),
              len(exprs) >= 10 and len(used & exported) >= 6, sorted(used))
        # The check must be able to fail: a misspelt name is caught.
        bad, _ = rule_exprs(rules_text.replace("relaymilter_store_errors_total",
                                               "relaymilter_store_error_total"))
        check("a misspelt metric name is caught",
              unknown_names(bad, known) == ["relaymilter_store_error_total"],
              unknown_names(bad, known))
        check("every metric name of the rules is exported by the daemon",
              not unknown_names(exprs, known), unknown_names(exprs, known))

        with open(os.path.join(mon, "relaymilter-dashboard.json")) as f:
            dash = json.load(f)
        dexprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        dexprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
        check("the dashboard has %d panels and %d expressions" % (len(dash["panels"]), len(dexprs)),
              len(dash["panels"]) >= 8 and all(p.get("targets") for p in dash["panels"]))
        check("every metric name of the dashboard is exported by the daemon",
              not unknown_names(dexprs, exported), unknown_names(dexprs, exported))
        # Its PromQL, with Grafana's variables filled in, as recording rules.
        as_rules = os.path.join(tmp, "dashboard.rules.yml")
        with open(as_rules, "w") as f:
            f.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, e in enumerate(t["expr"] for p in dash["panels"] for t in p["targets"]):
                e = e.replace("$__rate_interval", "5m").replace("$instance", ".*")
                f.write("      - record: dashboard:expr%d\n        expr: %s\n"
                        % (i, json.dumps(e)))
        ok, out = promtool("check", "rules", as_rules)
        check("every expression of the dashboard is valid PromQL (promtool)", ok, out)

    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
