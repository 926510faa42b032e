# SPDX-License-Identifier: BSD-2-Clause
"""rcluster - a private Redis Cluster of redis-server processes on loopback.

    c = Cluster(workdir, primaries=3, replicas=1).start()
        every node: cluster-enabled, its own free data and bus ports
        (cluster-port), no persistence, cluster-require-full-coverage no,
        cluster-node-timeout NODE_TIMEOUT_MS; then redis-cli --cluster create
        --cluster-yes, and start() returns once every node says
        cluster_state:ok and every replica master_link_status:up
    c.seeds()                "127.0.0.1:PORT" of every node
    c.primaries(), c.replicas()              ports, as the cluster says now
    c.primary_of(slot), c.keyslot(key)       (CLUSTER KEYSLOT)
    c.cli(port, *args)       redis-cli -p PORT ARGS (stdout, stripped)
    c.cli_c(*args)           redis-cli -c: follows redirections, as staff do
    c.flushall()             FLUSHALL on every primary
    c.keys(pattern)          KEYS on every primary, together
    c.kill(port) c.restart(port) c.failover(replica_port) c.wait_ok()
    c.slots()                [(first, last, primary port)] (CLUSTER SLOTS)
    c.node_id(port)          CLUSTER MYID
    c.reshard(src, dst, n)   redis-cli --cluster reshard: src's n lowest slots
                             to dst (its output)
    c.move_slot_by_hand(slot, src, dst, keys, pause)
                             SETSLOT IMPORTING / MIGRATING, then MIGRATE keys
                             one at a time (pause seconds before each), the
                             rest of the slot's keys, and SETSLOT NODE on every
                             primary: a slot moved the way the Redis Cluster
                             specification describes ("Live reconfiguration")
    c.stop()                 every node, by its own PID (also at exit)

Also redis_cmd(port, *args) / redis_try(...): one command on a fresh
connection (RESP), RespError for an error reply / None for any failure.

As a command, the ctest wrapper test/lib/with-cluster:

    rcluster.py run COMMAND [ARG...]

starts a cluster, runs COMMAND with RM_CLUSTER_NODES ("127.0.0.1:P1,...") and
RM_CLUSTER_PORTS ("P1 P2 ...") in its environment, stops the cluster, and
exits with COMMAND's status (77, "skipped", passes through).
"""

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

NODE_TIMEOUT_MS = 2000
_live = []  # every Popen we started, for the exit handler


@atexit.register
def _stop_all():
    for p in list(_live):
        stop_popen(p, signal.SIGKILL)


def stop_popen(p, sig=signal.SIGTERM, wait=5.0):
    """Stop a process of ours by its PID: SIGCONT first (a test may have
    paused it), then sig, then SIGKILL after wait seconds."""
    if p.poll() is not None:
        return
    try:
        os.kill(p.pid, signal.SIGCONT)  # a test may have paused it
        os.kill(p.pid, sig)
        p.wait(wait)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(5)
    except ProcessLookupError:
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, step=0.05):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError("redis cluster: timed out after %ss waiting for %s"
                               % (timeout, what))
        time.sleep(step)


# --- RESP ------------------------------------------------------------------
class RespError(Exception):
    pass


def _resp_encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def _resp_read(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RespError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise ConnectionError("bad RESP line %r" % line)


def redis_cmd(port, *args, timeout=1.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(_resp_encode(args))
        with s.makefile("rb") as f:
            return _resp_read(f)


def redis_try(port, *args, timeout=0.5):
    """redis_cmd, or None when the server is unreachable or answers an error."""
    try:
        return redis_cmd(port, *args, timeout=timeout)
    except (OSError, RespError, ConnectionError, ValueError):
        return None



class Node:
    def __init__(self, workdir, port, bus):
        self.port, self.bus = port, bus
        self.dir = os.path.join(workdir, "node-%d" % port)
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None

    def argv(self):
        return ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                "--cluster-enabled", "yes", "--cluster-port", str(self.bus),
                "--cluster-config-file", os.path.join(self.dir, "nodes.conf"),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-require-full-coverage", "no",
                "--cluster-replica-validity-factor", "0",
                "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--repl-diskless-sync-delay", "0",
                "--logfile", os.path.join(self.dir, "log"), "--daemonize", "no"]

    def start(self):
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=self.dir)
        _live.append(self.proc)
        wait_for(lambda: self.ping(), 10, "node %d to answer" % self.port)

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    def __init__(self, workdir=None, primaries=3, replicas=1):
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="rm-cluster.")
        self.nprimaries, self.nreplicas = primaries, replicas
        ports = set()
        while len(ports) < 2 * primaries * (1 + replicas):
            ports.add(free_port())
        ports = sorted(ports)
        self.nodes = {p: Node(self.dir, p, b) for p, b in zip(ports[0::2], ports[1::2])}

    # ---- life ---------------------------------------------------------------
    def start(self):
        try:
            for n in self.nodes.values():
                n.start()
            out = subprocess.run(
                ["redis-cli", "--cluster", "create"] + self.seeds() +
                ["--cluster-replicas", str(self.nreplicas), "--cluster-yes"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
            if out.returncode != 0:
                raise RuntimeError("redis-cli --cluster create failed:\n" + out.stdout)
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        for n in self.nodes.values():
            if n.proc is not None:
                stop_popen(n.proc)
        if self.own_dir and not os.environ.get("RM_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def kill(self, port, sig=signal.SIGKILL):
        n = self.nodes[port]
        os.kill(n.proc.pid, sig)
        if sig == signal.SIGKILL:
            n.proc.wait(5)

    def restart(self, port):
        self.nodes[port].start()

    # ---- queries --------------------------------------------------------------
    def seeds(self):
        return ["127.0.0.1:%d" % p for p in self.nodes]

    def cli(self, port, *args, check=True):
        res = subprocess.run(["redis-cli", "-p", str(port)] + [str(a) for a in args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             timeout=30)
        if check and res.returncode != 0:
            raise RuntimeError("redis-cli -p %d %s: %s" % (port, args, res.stderr))
        return res.stdout.strip()

    def cli_c(self, *args):
        port = next(p for p in self.live() if self.role(p) == "master")
        return self.cli(port, "-c", *args)

    def live(self):
        return [p for p, n in self.nodes.items() if n.alive()]

    def info(self, port, section):
        """INFO section as a dict; "cluster": CLUSTER INFO (cluster_state...)."""
        args = ("CLUSTER", "INFO") if section == "cluster" else ("INFO", section)
        try:
            text = self.cli(port, *args, check=False)
        except subprocess.TimeoutExpired:
            return {}
        return dict(ln.strip().split(":", 1) for ln in text.splitlines() if ":" in ln)

    def role(self, port):
        return self.info(port, "replication").get("role")

    def primaries(self):
        return [p for p in self.live() if self.role(p) == "master"]

    def replicas(self):
        return [p for p in self.live() if self.role(p) == "slave"]

    def keyslot(self, key):
        return int(self.cli(self.live()[0], "CLUSTER", "KEYSLOT", key))

    def slots(self):
        text = self.cli(self.live()[0], "--json", "CLUSTER", "SLOTS")
        return [(int(first), int(last), int(primary[1]))
                for first, last, primary, *rest in json.loads(text)]

    def primary_of(self, slot):
        for first, last, port in self.slots():
            if first <= slot <= last:
                return port
        return None

    def node_id(self, port):
        return redis_cmd(port, "CLUSTER", "MYID")

    def reshard(self, src, dst, n):
        res = subprocess.run(
            ["redis-cli", "--cluster", "reshard", "127.0.0.1:%d" % src,
             "--cluster-from", self.node_id(src), "--cluster-to", self.node_id(dst),
             "--cluster-slots", str(n), "--cluster-yes"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
        if res.returncode != 0:
            raise RuntimeError("redis-cli --cluster reshard failed:\n" + res.stdout)
        return res.stdout

    def move_slot_by_hand(self, slot, src, dst, keys, pause):
        src_id, dst_id = self.node_id(src), self.node_id(dst)
        redis_cmd(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        redis_cmd(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        rest = redis_cmd(src, "CLUSTER", "GETKEYSINSLOT", slot, 1000) or []
        for k in list(keys) + [k for k in rest if k not in keys]:
            time.sleep(pause)
            if redis_cmd(src, "EXISTS", k):
                redis_cmd(src, "MIGRATE", "127.0.0.1", dst, k, 0, 5000)
        time.sleep(4 * pause)  # meanwhile the source answers ASK
        for p in [dst, src] + [p for p in self.primaries() if p not in (src, dst)]:
            redis_cmd(p, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)

    def flushall(self):
        for p in self.primaries():
            self.cli(p, "FLUSHALL")

    def keys(self, pattern="*"):
        out = []
        for p in self.primaries():
            out += [k for k in self.cli(p, "KEYS", pattern).split("\n") if k]
        return out

    # ---- state ----------------------------------------------------------------
    def healthy(self):
        live = self.live()
        for p in live:
            if self.info(p, "cluster").get("cluster_state") != "ok":
                return False
            info = self.info(p, "replication")
            if info.get("role") == "slave" and info.get("master_link_status") != "up":
                return False
        if len(live) == len(self.nodes):  # all there: every replica in place
            return len(self.replicas()) == self.nprimaries * self.nreplicas
        return True

    def wait_ok(self, timeout=60):
        wait_for(self.healthy, timeout, "cluster_state:ok and every replica linked", 0.2)

    def failover(self, replica_port, timeout=30):
        """CLUSTER FAILOVER on a replica: it becomes the primary of its
        primary's slots, which becomes its replica."""
        self.cli(replica_port, "CLUSTER", "FAILOVER")
        wait_for(lambda: self.role(replica_port) == "master", timeout,
                 "replica %d to take over" % replica_port, 0.1)


def main(argv):
    if len(argv) < 3 or argv[1] != "run":
        print("usage: rcluster.py run COMMAND [ARG...]", file=sys.stderr)
        return 2
    c = Cluster()
    try:
        c.start()
    except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as e:
        print("with-cluster: %s" % e, file=sys.stderr)
        c.stop()
        return 1
    env = dict(os.environ, RM_CLUSTER_NODES=",".join(c.seeds()),
               RM_CLUSTER_PORTS=" ".join(str(p) for p in c.nodes))
    try:
        proc = subprocess.Popen(argv[2:], env=env)

        def forward(signum, frame):
            proc.send_signal(signum)
        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        return proc.wait()
    finally:
        c.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
