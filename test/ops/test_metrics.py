#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""test_metrics - the Prometheus endpoint (metrics.listen) under real traffic.

    with-redis /usr/bin/python3 test_metrics.py --milter PATH [unittest options]

A private Postfix (test/e2e/postfix_harness.py) relays through relaymilter,
which serves /metrics on a free loopback port. Messages go through Postfix
(accepted, over the limit under tempfail and under reject, a blocked
recipient) while curl scrapes the endpoint; the counters must move by exactly
what was sent, every scrape must be valid Prometheus text, and reloads (good
and bad, by SIGHUP) must show in the config gauges. Needs root (Postfix).
"""

import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import e2e_main  # noqa: E402
from harness_conf import free_port, wait_until  # noqa: E402

LIMITS = {"messages_per_minute": 3, "messages_per_hour": 1000, "messages_per_day": 10000,
          "recipients_per_minute": 100, "max_recipients": 5, "action": "tempfail"}
CUSTOMERS = [{"name": "ops-reject", "networks": ["127.0.9.0/24"],
              "limits": {"messages_per_minute": 1, "action": "reject"}}]
BLOCKED = ["blocked.example"]

# ---- the Prometheus text format (exposition format 0.0.4) --------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE_RX = re.compile(r"^(%s)(?:\{((?:%s)(?:,(?:%s))*,?)?\})? (\S+)(?: (-?\d+))?$"
                       % (NAME, LABEL, LABEL))
LABEL_RX = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_value(text):
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    return float(text)  # ValueError for anything else


def parse_exposition(text):
    """Parses and validates a scrape. Returns {(name, frozenset(labels)): value}
    and {family: type}; raises AssertionError naming the first problem."""
    assert text.endswith("\n"), "the body must end with a newline"
    samples, types, helps = {}, {}, {}
    seen_families, current = [], None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (n, line)
        if line == "":
            continue
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) (%s) (.*)$" % NAME, line)
            if m is None:
                assert not line.startswith(("# HELP", "# TYPE")), "malformed " + where
                continue  # a plain comment
            kind, fam, rest = m.groups()
            if kind == "TYPE":
                assert rest in TYPES, "unknown type in " + where
                assert fam not in types, "second TYPE for %s at %s" % (fam, where)
                assert fam not in seen_families, "TYPE after samples of %s at %s" % (fam, where)
                types[fam] = rest
            else:
                assert fam not in helps, "second HELP for %s at %s" % (fam, where)
                assert fam not in seen_families, "HELP after samples of %s at %s" % (fam, where)
                helps[fam] = rest
            continue
        m = SAMPLE_RX.match(line)
        assert m is not None, "not a sample line: " + where
        name, labels_text, value_text = m.group(1), m.group(2) or "", m.group(3)
        try:
            value = parse_value(value_text)
        except ValueError:
            raise AssertionError("bad value in " + where)
        labels = LABEL_RX.findall(labels_text)
        assert len({k for k, _ in labels}) == len(labels), "repeated label in " + where
        fam = family_of(name, types)
        assert fam in types, "sample before (or without) its TYPE: " + where
        assert fam in helps, "sample before (or without) its HELP: " + where
        if fam != current:
            assert fam not in seen_families, "samples of %s are not together: %s" % (fam, where)
            seen_families.append(fam)
            current = fam
        key = (name, frozenset(labels))
        assert key not in samples, "duplicate series: " + where
        samples[key] = value
    for fam, typ in types.items():
        fam_samples = {k: v for k, v in samples.items() if family_of(k[0], types) == fam}
        assert fam_samples, "TYPE %s without samples" % fam
        if typ == "counter":
            assert all(v >= 0 for v in fam_samples.values()), "negative counter " + fam
        if typ == "histogram":
            check_histogram(fam, fam_samples)
    return samples, types


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) in ("histogram", "summary"):
            return name[:-len(suffix)]
    return name


def check_histogram(fam, fam_samples):
    buckets = []
    for (name, labels), v in fam_samples.items():
        if name == fam + "_bucket":
            le = dict(labels).get("le")
            assert le is not None, "%s bucket without le" % fam
            buckets.append((parse_value(le), v))
    buckets.sort()
    assert buckets and buckets[-1][0] == math.inf, "%s has no +Inf bucket" % fam
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "%s buckets are not cumulative: %s" % (fam, buckets)
    count = fam_samples.get((fam + "_count", frozenset()))
    assert count is not None and fam_samples.get((fam + "_sum", frozenset())) is not None, \
        "%s lacks _sum or _count" % fam
    assert count == buckets[-1][1], "%s_count %s != +Inf bucket %s" % (fam, count, buckets[-1][1])


def val(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    if key not in samples:
        raise AssertionError("no series %s%s in the scrape" % (name, labels or ""))
    return samples[key]


# ---- the test -------------------------------------------------------------------


class MetricsUnderTraffic(e2e_main.HarnessCase):
    @classmethod
    def setUpClass(cls):
        if shutil.which("curl") is None:
            raise unittest.SkipTest("curl is not installed")
        cls.port = free_port()
        cls.settings = {"limits": LIMITS, "customers": CUSTOMERS,
                        "blocked_recipient_domains": BLOCKED,
                        "metrics": {"listen": "127.0.0.1:%d" % cls.port}}
        super().setUpClass()
        wait_until(lambda: cls.curl("/metrics", check=False)[0] == 200, 10,
                   "the metrics endpoint on 127.0.0.1:%d" % cls.port,
                   lambda: cls.h.milter_log()[-2000:])

    def tearDown(self):
        self.assertTrue(self.h.milter_alive(), "relaymilter died:\n" + self.h.milter_log())

    # ---- helpers ------------------------------------------------------------
    @classmethod
    def curl(cls, path, check=True):
        """(status, content type, body) of GET path, by curl."""
        res = subprocess.run(
            ["curl", "-sS", "--max-time", "5", "-o", "-", "-w",
             "\n%{http_code} %{content_type}", "http://127.0.0.1:%d%s" % (cls.port, path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if res.returncode != 0:
            if check:
                raise AssertionError("curl failed (%d): %s" % (res.returncode, res.stderr))
            return 0, "", ""
        body, _, tail = res.stdout.rpartition("\n")
        code, _, ctype = tail.partition(" ")
        return int(code), ctype, body + "\n" if body else ""

    def scrape(self):
        code, ctype, body = self.curl("/metrics")
        self.assertEqual(code, 200, body)
        self.assertTrue(ctype.startswith("text/plain"), ctype)
        self.assertIn("version=0.0.4", ctype)
        samples, types = parse_exposition(body)
        return samples, types, body

    def send(self, source, rcpts=None, sender="metrics@e2e.test"):
        return self.h.send(sender, rcpts or ["rcpt@example.net"], source=source)

    # ---- the parser itself must be able to fail ---------------------------------
    def test_0_parser_rejects_broken_text(self):
        good = ("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n")
        parse_exposition(good)
        broken = [
            "a_total 3\n",                                             # no TYPE
            "# HELP a_total A.\n# TYPE a_total counter\na_total{x=1} 3\n",   # unquoted
            "# HELP a_total A.\n# TYPE a_total counter\na_total three\n",    # value
            "# HELP a A.\n# TYPE a gauge\na 1\n# TYPE a gauge\n",         # TYPE twice
            "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",                     # duplicate
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
            "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",               # not cumulative
            "# HELP a A.\n# TYPE a gauge\na 1",                           # no final newline
        ]
        for text in broken:
            with self.assertRaises(AssertionError, msg=repr(text)):
                parse_exposition(text)

    # ---- the endpoint --------------------------------------------------------------
    def test_1_other_paths_are_404(self):
        code, _, _ = self.curl("/")
        self.assertEqual(code, 404)
        code, _, _ = self.curl("/metrics/x")
        self.assertEqual(code, 404)

    def test_2_counters_follow_traffic(self):
        self.h.redis("FLUSHALL")
        before, types, _ = self.scrape()
        for fam, typ in (("relaymilter_decisions_total", "counter"),
                         ("relaymilter_limit_refusals_total", "counter"),
                         ("relaymilter_store_call_seconds", "histogram"),
                         ("relaymilter_connections", "gauge"),
                         ("relaymilter_config_generation", "gauge"),
                         ("relaymilter_config_reloads_total", "counter"),
                         ("relaymilter_build_info", "gauge")):
            self.assertEqual(types.get(fam), typ, fam)

        # Scrape continuously while the traffic runs: every scrape must be
        # valid and no counter may go backwards.
        stop, problems, scrapes = threading.Event(), [], []

        def scraper():
            last = None
            while not stop.is_set():
                try:
                    s, t, _ = self.scrape()
                    scrapes.append(1)
                    if last is not None:
                        for key, v in s.items():
                            fam = family_of(key[0], t)
                            if t.get(fam) in ("counter", "histogram") and v < last.get(key, 0):
                                problems.append("%s went from %s to %s" % (key, last[key], v))
                    last = s
                except Exception as e:  # noqa: BLE001 - reported below
                    problems.append(repr(e))
                time.sleep(0.05)

        th = threading.Thread(target=scraper, daemon=True)
        th.start()
        try:
            outs = [self.send("127.0.8.1") for _ in range(3)]       # ip:127.0.8.1, 3/min
            over = self.send("127.0.8.1")                            # the 4th: tempfail
            rej_ok = self.send("127.0.9.1")                          # ops-reject, 1/min
            rej = self.send("127.0.9.1")                             # the 2nd: reject
            mixed = self.send("127.0.8.2", ["a@blocked.example", "b@example.net"])
            # An open SMTP session holds a milter connection open.
            s = self.h.smtp("127.0.8.3")
            try:
                # Postfix does not wait for the CONNECT reply (SMFIP_NR_CONN):
                # the milter may count the connection a moment after the greeting.
                end = time.monotonic() + 5
                while True:
                    mid, _, _ = self.scrape()
                    if val(mid, "relaymilter_connections") >= 1 or time.monotonic() > end:
                        break
                    time.sleep(0.05)
                self.assertGreaterEqual(val(mid, "relaymilter_connections"), 1)
            finally:
                s.quit()
        finally:
            stop.set()
            th.join(10)
        self.assertEqual(problems, [])
        self.assertGreater(len(scrapes), 0)

        for o in outs + [rej_ok, mixed]:
            self.assertEqual((o.stage, o.code), ("accepted", 250), o)
        self.assertEqual((over.stage, over.code), ("data", 451), over)
        self.assertTrue(over.text.startswith("4.7.1 quota exceeded: messages_per_minute 3"), over)
        self.assertEqual((rej.stage, rej.code), ("data", 550), rej)
        self.assertTrue(rej.text.startswith("5.7.1 quota exceeded: messages_per_minute 1"), rej)
        self.assertEqual(mixed.refused["a@blocked.example"][0], 550, mixed)

        after, _, _ = self.scrape()

        def delta(name, **labels):
            return val(after, name, **labels) - val(before, name, **labels)

        accepted = len(outs) + 2
        self.assertEqual(delta("relaymilter_decisions_total", action="accept", reason="none"),
                         accepted)
        self.assertEqual(delta("relaymilter_decisions_total", action="tempfail", reason="quota"), 1)
        self.assertEqual(delta("relaymilter_decisions_total", action="reject", reason="quota"), 1)
        self.assertEqual(delta("relaymilter_limit_refusals_total", limit="messages_per_minute"), 2)
        self.assertEqual(delta("relaymilter_limit_refusals_total", limit="messages_per_hour"), 0)
        self.assertEqual(delta("relaymilter_recipients_refused_total",
                               reason="blocked_recipient_domain"), 1)
        # Nothing else was decided: the other series did not move.
        moved = {k for k in after if k[0] == "relaymilter_decisions_total"
                 and after[k] != before.get(k, 0)}
        self.assertEqual({(dict(k[1])["action"], dict(k[1])["reason"]) for k in moved},
                         {("accept", "none"), ("tempfail", "quota"), ("reject", "quota")})
        # At least one Redis round trip per message (MAIL FROM, DATA).
        calls = delta("relaymilter_store_call_seconds_count")
        self.assertGreaterEqual(calls, len(outs) + 4)
        self.assertGreater(val(after, "relaymilter_store_call_seconds_count"), 0)
        self.assertGreater(val(after, "relaymilter_store_call_seconds_sum"), 0)
        self.assertEqual(delta("relaymilter_store_errors_total"), 0)
        self.assertEqual(val(after, "relaymilter_store_circuit_open"), 0)
        wait_until(lambda: val(self.scrape()[0], "relaymilter_connections") == 0, 10,
                   "relaymilter_connections back to 0 after the sessions closed")
        self.assertGreaterEqual(val(after, "relaymilter_connections"), 0)

        version = subprocess.run([e2e_main.MILTER, "-V"], stdout=subprocess.PIPE,
                                 text=True, check=True).stdout.split()[-1]
        self.assertEqual(val(after, "relaymilter_build_info", version=version), 1)

    def test_3_reloads(self):
        s0, _, _ = self.scrape()
        gen = val(s0, "relaymilter_config_generation")
        ok0 = val(s0, "relaymilter_config_reloads_total", result="ok")
        failed0 = val(s0, "relaymilter_config_reloads_total", result="failed")

        self.h.reload_milter(expect_ok=True)
        s1, _, _ = self.scrape()
        self.assertEqual(val(s1, "relaymilter_config_generation"), gen + 1)
        self.assertEqual(val(s1, "relaymilter_config_reloads_total", result="ok"), ok0 + 1)
        self.assertEqual(val(s1, "relaymilter_config_last_reload_ok"), 1)

        # A broken file: the reload fails, the configuration in force stays.
        with open(self.h.milter_conf) as f:
            good = f.read()
        try:
            self.h.write_milter_config(text=good + "no_such_key = 1;\n")
            self.h.reload_milter(expect_ok=False)
            s2, _, _ = self.scrape()
            self.assertEqual(val(s2, "relaymilter_config_reloads_total", result="failed"),
                             failed0 + 1)
            self.assertEqual(val(s2, "relaymilter_config_last_reload_ok"), 0)
            self.assertEqual(val(s2, "relaymilter_config_generation"), gen + 1)
            # Mail still flows under the configuration in force.
            o = self.send("127.0.8.20")
            self.assertEqual((o.stage, o.code), ("accepted", 250), o)
        finally:
            self.h.write_milter_config(text=good)
        self.h.reload_milter(expect_ok=True)
        s3, _, _ = self.scrape()
        self.assertEqual(val(s3, "relaymilter_config_generation"), gen + 2)
        self.assertEqual(val(s3, "relaymilter_config_last_reload_ok"), 1)

    def test_4_promtool_if_available(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool is not installed (the format was checked by this file)")
        _, _, body = self.scrape()
        res = subprocess.run([promtool, "check", "metrics"], input=body, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(res.returncode, 0, res.stdout)


if __name__ == "__main__":
    sys.exit(e2e_main.run(__doc__, need_with_redis=True))
