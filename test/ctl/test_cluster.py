#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""test_cluster - relaymilter-ctl against a Redis Cluster.

    test_cluster.py CTL RELAYMILTER

Starts (one unittest case) a private Redis Cluster (test/lib/rcluster.py: three primaries, three
replicas) and a config file with redis.cluster_nodes naming one seed, then
runs every command of relaymilter-ctl and reads what it wrote with
redis-cli -c (staff's way), through a node that serves none of the keys
involved wherever that can be arranged, so a command sent to the wrong node
shows (it would answer MOVED):
  limits (set, show, unset), suspend, resume, own, disown, block, unblock,
  sasl, unsasl, whois;
  usage of a customer whose counters (and its senders', found by SCAN) lie on
  another primary than the seed, counted by relaymilter itself (a milter
  charge through the milter protocol), and --json;
  reset (the counters gone, its event written to the events stream's node);
  events (newest first, from the stream's node).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "resilience"))
import keynames  # noqa: E402
import milterclient as mc  # noqa: E402
import rcluster  # noqa: E402
import rharness as h  # noqa: E402

CTL = MILTER = None


class CtlOnCluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="rm-ctl-cluster.")
        cls.c = rcluster.Cluster(os.path.join(cls.work, "cluster")).start()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()
        h.rmworkdir(cls.work)

    def test_every_command(self):
        run_all(self, self.c, self.work)


def run_all(t, c, work):
    def check(ok, what, detail=""):
        t.assertTrue(ok, "%s\n%s" % (what, detail))

    seed = c.primaries()[0]
    conf = os.path.join(work, "relaymilter.conf")
    mport = h.free_port()
    with open(conf, "w") as f:
        f.write('milter = { socket = "inet:%d@127.0.0.1"; };\n'
                'redis = { cluster_nodes = [ "127.0.0.1:%d" ]; command_timeout_ms = 1000; };\n'
                'limits = { messages_per_hour = 100; };\n' % (mport, seed))

    def ctl(*args):
        res = subprocess.run([CTL, "-c", conf, "-y"] + [str(a) for a in args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             timeout=30)
        return res.returncode, res.stdout, res.stderr

    def away(key):
        """A customer-independent check that key's node is not the seed."""
        return c.primary_of(c.keyslot(key)) != seed

    def customer_away(tag):
        i = 0
        while not away(keynames.counter("h", "%s%d" % (tag, i))):
            i += 1
        return "%s%d" % (tag, i)

    # ---- staff keys --------------------------------------------------------
    cust = customer_away("lim")
    lkey = keynames.name("limits", cust)
    rc, out, err = ctl("limits", cust, "messages_per_hour", 5000)
    check(rc == 0 and c.cli_c("HGET", lkey, "messages_per_hour") == "5000",
          "limits set on the limits hash's node", err)
    rc, out, err = ctl("limits", cust)
    check(rc == 0 and "5000" in out, "limits shown", out + err)
    rc, out, err = ctl("limits", cust, "unset", "messages_per_hour")
    check(rc == 0 and c.cli_c("HEXISTS", lkey, "messages_per_hour") == "0", "limits unset",
          err)
    rc, _, err = ctl("suspend", cust)
    check(rc == 0 and c.cli_c("HGET", lkey, "suspended") == "1", "suspend", err)
    rc, _, err = ctl("resume", cust)
    check(rc == 0 and c.cli_c("HEXISTS", lkey, "suspended") == "0", "resume", err)
    dkey = keynames.name("domain", "acme.example")
    rc, _, err = ctl("own", "Acme.Example.", cust)
    check(rc == 0 and c.cli_c("SISMEMBER", dkey, cust) == "1", "own", err)
    rc, _, err = ctl("disown", "acme.example", cust)
    check(rc == 0 and c.cli_c("SISMEMBER", dkey, cust) == "0", "disown", err)
    bkey = keynames.name("blocked")
    rc, _, err = ctl("block", "spamtrap.example")
    check(rc == 0 and c.cli_c("SISMEMBER", bkey, "spamtrap.example") == "1", "block", err)
    rc, _, err = ctl("unblock", "spamtrap.example")
    check(rc == 0 and c.cli_c("SISMEMBER", bkey, "spamtrap.example") == "0", "unblock", err)
    skey = keynames.name("sasl")
    rc, _, err = ctl("sasl", "bob@relay.example", cust)
    check(rc == 0 and c.cli_c("HGET", skey, "bob@relay.example") == cust, "sasl", err)
    rc, out, err = ctl("whois", "bob@relay.example")
    check(rc == 0 and cust in out, "whois reads the sasl hash's node", out + err)
    rc, _, err = ctl("unsasl", "bob@relay.example")
    check(rc == 0 and c.cli_c("HEXISTS", skey, "bob@relay.example") == "0", "unsasl", err)

    # ---- usage, reset, events: counters written by relaymilter itself ------
    login = customer_away("use")
    user = "sasl:" + login
    mconf = os.path.join(work, "milter.conf")
    with open(conf) as f, open(mconf, "w") as g:
        g.write(f.read())
    m = h.Milter(MILTER, work, open(mconf).read(), mport).start()
    try:
        for sender in ("a@x.example", "b@x.example", "a@x.example"):
            with mc.MilterClient(m.address, timeout=5.0) as client:
                client.connect_info(addr="192.0.2.1")
                r = client.send_message(sender, ["r@dest.example"], login=login,
                                        qid="Q%d" % time.monotonic_ns())
                check(r.verdict == "accept", "a message of %s accepted" % user, r)
    finally:
        m.stop()
    check(away(keynames.counter("h", user)), "the customer's counters are not on the seed")
    rc, out, err = ctl("usage", user)
    check(rc == 0 and "sender a@x.example" in out and "sender b@x.example" in out,
          "usage lists the senders (SCAN on the customer's node)", out + err)
    rc, out, err = ctl("--json", "usage", user)
    try:
        doc = json.loads(out)
    except ValueError:
        doc = None
    check(rc == 0 and doc is not None and "3" in json.dumps(doc), "usage --json", out + err)
    rc, out, err = ctl("reset", user)
    keys = [keynames.counter(w, user) for w in "mhd"] + [
        keynames.counter(w, user, s) for w in "mhd" for s in ("a@x.example", "b@x.example")]
    check(rc == 0 and all(c.cli_c("EXISTS", k) == "0" for k in keys),
          "reset removes every counter of the customer and its senders", out + err)
    rc, out, err = ctl("events", 5)
    check(rc == 0 and user in out and "reset" in out, "events shows the reset", out + err)
    ekey = keynames.name("events")
    check(int(c.cli_c("XLEN", ekey) or 0) >= 1, "the event is on the stream's node")


if __name__ == "__main__":
    CTL, MILTER = (os.path.abspath(a) for a in sys.argv[1:3])
    sys.exit(0 if unittest.main(argv=sys.argv[:1], exit=False,
                                verbosity=2).result.wasSuccessful() else 1)
