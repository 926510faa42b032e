# SPDX-License-Identifier: BSD-2-Clause
"""harness_conf - configuration text and small utilities for postfix_harness.

  milter_config(socket, redis_port, settings)  relaymilter.conf (libconfig)
  postfix_main_cf(h, example)                  main.cf of the private Postfix
  sasl_smtpd_conf(sasldb)                      Cyrus SASL's smtpd.conf for it
  postfix_master_cf(smtpd_port)                its master.cf
  example_milter_params(path, milter_port)     the lines of postfix-example/main.cf
  free_port(), port_sockets(port), listening(port), wait_until(...), check_accounts()
  stop_process(proc, timeout)                  SIGTERM, then SIGKILL after timeout
"""

import grp
import os
import pwd
import re
import signal
import socket
import subprocess
import time

# ---- small utilities ------------------------------------------------------


def free_port():
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc, timeout=10):
    """SIGTERM to a subprocess.Popen of our own (by its PID); SIGKILL when it
    is still there after timeout seconds. Returns False when it had to be
    killed, True when it exited (or had exited) by itself."""
    if proc is None or proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return False


def port_sockets(port):
    """(local address, state, receive queue) of every TCP socket whose local
    port is port, from /proc/net/tcp (hex fields; state 0A is LISTEN; for a
    listening socket the queue is its accept queue). Reading it makes no
    connection, so a test leaves no stray one behind."""
    suffix = ":%04X" % port
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[1].endswith(suffix):
                yield cols[1], cols[3], int(cols[4].split(":")[1], 16)


def listening(port):
    """True when something listens on 127.0.0.1:port (or 0.0.0.0:port)."""
    wanted = {"0100007F:%04X" % port, "00000000:%04X" % port}
    return any(addr in wanted and state == "0A" for addr, state, _ in port_sockets(port))


def wait_until(pred, timeout, what, detail=None, interval=0.05):
    """pred()'s first true value within timeout seconds, else TimeoutError
    naming what was awaited (plus detail(), e.g. a log tail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            msg = "timed out after %ss waiting for %s" % (timeout, what)
            if detail is not None:
                msg += "\n--- details ---\n%s" % detail()
            raise TimeoutError(msg)
        time.sleep(interval)


def check_accounts():
    """Postfix runs its daemons as mail_owner and needs setgid_group: a
    package install creates both; say so clearly if they are missing."""
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError as e:
        raise RuntimeError("missing account %s: install the postfix package "
                           "(apt-get install postfix)" % e)


# ---- relaymilter.conf -----------------------------------------------------

BASE_MILTER = {
    "milter": {"timeout": 30},
    "redis": {"host": "127.0.0.1", "db": 0, "prefix": "relay:",
              "connect_timeout_ms": 500, "command_timeout_ms": 500, "pool_size": 4},
    "on_store_error": "accept",
    "log": {"level": "info"},
}


def _merge(base, over):
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _quote(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


def _render(value, indent):
    pad = "  " * (indent + 1)
    if isinstance(value, bool):
        raise TypeError("libconfig values here are numbers or strings, not booleans")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # libconfig needs the point: 1.0, 0.25
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, dict):
        body = "".join("%s%s = %s;\n" % (pad, k, _render(v, indent + 1))
                       for k, v in value.items())
        return "{\n%s%s}" % (body, "  " * indent)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        items = ",\n".join(pad + _render(v, indent + 1) for v in value)
        return "(\n%s\n%s)" % (items, "  " * indent)
    if isinstance(value, list):
        return "[ %s ]" % ", ".join(_render(v, indent) for v in value)
    raise TypeError("cannot write %r as libconfig" % (value,))


def milter_config(sock, redis_port, settings):
    """relaymilter.conf text: BASE_MILTER, the socket and Redis port given
    (or a list of "HOST:PORT": a Redis Cluster's seeds, redis.cluster_nodes),
    then settings (nested dicts merge; None drops a key)."""
    if isinstance(redis_port, list):
        redis = {"cluster_nodes": redis_port}
    else:
        redis = {"port": redis_port}
    cfg = _merge(BASE_MILTER, {"milter": {"socket": sock}, "redis": redis})
    if isinstance(redis_port, list):
        del cfg["redis"]["host"]
    cfg = _merge(cfg, settings)
    lines = ["# written by test/e2e/harness_conf.py"]
    for k, v in cfg.items():
        if v is None or v == []:
            continue
        lines.append("%s = %s;" % (k, _render(v, 0)))
    return "\n".join(lines) + "\n"


# ---- Postfix ---------------------------------------------------------------


def read_postconf(path):
    """(name, value) pairs of a main.cf-syntax file: comments and blank lines
    skipped, continuation lines (leading white space) joined."""
    params = []
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace():
                if not params:
                    raise ValueError("%s: continuation line before any parameter" % path)
                params[-1] = (params[-1][0], params[-1][1] + " " + line.strip())
                continue
            name, sep, value = line.partition("=")
            if not sep:
                raise ValueError("%s: not a parameter line: %s" % (path, line))
            params.append((name.strip(), value.strip()))
    return params


def example_milter_params(path, milter_port):
    """The admin's snippet, its milter socket(s) pointed at our milter."""
    params = read_postconf(path)
    names = [n for n, _ in params]
    if "smtpd_milters" not in names:
        raise ValueError("%s has no smtpd_milters line" % path)
    out = []
    for name, value in params:
        if name in ("smtpd_milters", "non_smtpd_milters"):
            new = re.sub(r"inet:(127\.0\.0\.1|localhost):\d+",
                         "inet:127.0.0.1:%d" % milter_port, value)
            if new == value:
                raise ValueError("%s: %s is not an inet:127.0.0.1:PORT socket: %s"
                                 % (path, name, value))
            value = new
        out.append((name, value))
    return out


def postfix_main_cf(h, example):
    """main.cf of the private instance: loopback only, no local delivery,
    everything relayed to the sink, logs to a file, quick retries."""
    tag = os.path.basename(h.dir).replace(".", "-")
    base = [
        ("compatibility_level", "3.6"),
        ("queue_directory", h.queue),
        ("data_directory", h.data),
        ("syslog_name", "postfix-" + tag),
        ("maillog_file", h.maillog_path),
        ("maillog_file_prefixes", h.dir),
        ("myhostname", "relay.e2e.test"),
        ("mydomain", "e2e.test"),
        ("inet_interfaces", "127.0.0.1"),
        ("inet_protocols", "ipv4"),
        ("mynetworks", "127.0.0.0/8"),
        ("mydestination", ""),
        ("relay_domains", ""),
        ("local_recipient_maps", ""),
        ("local_transport", "error:local delivery is disabled"),
        ("alias_maps", ""),
        ("alias_database", ""),
        ("relayhost", "[127.0.0.1]:%d" % h.sink_port),
        ("smtp_dns_support_level", "disabled"),
        ("smtpd_peername_lookup", "no"),
        ("smtpd_relay_restrictions", "permit_mynetworks, reject_unauth_destination"),
        ("smtpd_error_sleep_time", "0"),
        ("in_flow_delay", "0"),
        ("queue_run_delay", "1s"),
        ("minimal_backoff_time", "1s"),
        ("maximal_backoff_time", "2s"),
        ("smtp_connect_timeout", "5s"),
        ("maximal_queue_lifetime", "1h"),
        ("bounce_queue_lifetime", "1h"),
        ("smtputf8_enable", "no"),
        ("biff", "no"),
    ]
    if h.sasl_users is not None:
        # SMTP AUTH as a relay offers it: Cyrus SASL, a sasldb of our own
        # (sasl_smtpd_conf). Debian's Postfix reads $config_directory/sasl/
        # smtpd.conf. Without smtpd_sasl_local_domain, {auth_authen} is the
        # login exactly as the client typed it.
        sasl = [
            ("smtpd_sasl_auth_enable", "yes"),
            ("smtpd_sasl_type", "cyrus"),
            ("smtpd_sasl_path", "smtpd"),
            ("cyrus_sasl_config_path", os.path.join(h.etc, "sasl")),
            ("smtpd_sasl_security_options", "noanonymous"),
            ("smtpd_sasl_local_domain", h.sasl_local_domain or ""),
            ("mynetworks", h.mynetworks),
            ("smtpd_relay_restrictions",
             "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"),
        ]
        names = dict(sasl)
        base = [(n, names.pop(n, v)) for n, v in base] + list(names.items())
    lines = ["# written by test/e2e/harness_conf.py"]
    lines += ["%s = %s" % kv for kv in base]
    lines.append("# from %s" % example)
    lines += ["%s = %s" % kv for kv in example_milter_params(example, h.milter_port)]
    return "\n".join(lines) + "\n"


def sasl_smtpd_conf(sasldb):
    """Cyrus SASL's configuration for smtpd: PLAIN and LOGIN checked against
    the sasldb file given (auxprop), nothing else."""
    return ("# written by test/e2e/harness_conf.py\n"
            "pwcheck_method: auxprop\n"
            "auxprop_plugin: sasldb\n"
            "mech_list: PLAIN LOGIN\n"
            "sasldb_path: %s\n" % sasldb)


MASTER_SERVICES = """\
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def postfix_master_cf(smtpd_port):
    """master.cf: smtpd on 127.0.0.1 only, nothing chrooted, no pickup/local."""
    return ("# written by test/e2e/harness_conf.py\n"
            "127.0.0.1:%d inet n - n - - smtpd\n" % smtpd_port + MASTER_SERVICES)
