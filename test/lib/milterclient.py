# SPDX-License-Identifier: BSD-2-Clause
"""milterclient - a milter protocol (version 6) client that talks to a filter
the way Postfix does. Python standard library only.

Interface
---------
    import milterclient as mc

    c = mc.MilterClient(("127.0.0.1", 8890), timeout=5.0)
    # or MilterClient("/path/to/socket"), or mc.address_of("inet:8890@127.0.0.1")
    c.open()                       # TCP/unix connect, then OPTNEG
    c.negotiated                   # Negotiated(version, actions, protocol, symlists)
    c.connect_info(addr="192.0.2.1", port=40000, hostname="client.example")
    res = c.send_message(sender="bob@acme.example", rcpts=["a@x.example"],
                         login="acme", qid="4XyZ1234")
    res.verdict                    # "accept", "hold" (accepted with a 'q'
                                   # action), "tempfail", "reject", "discard",
                                   # "norcpt" (every recipient refused)
    res.reply                      # the Reply that decided (None when accepted)
    res.stage                      # where: "MAIL", "RCPT", "DATA", "EOM", ...
    res.stages                     # [Stage(name, reply, elapsed_seconds), ...]
    res.quarantine                 # reason text of a 'q' action at EOM, or None
    res.elapsed_max                # slowest answer of the message
    c.send_message(...)            # more messages on the same connection
    c.quit(); c.close()            # or: with mc.MilterClient(...) as c: ...

Step by step (each returns a Reply, or None when the filter asked for no
reply (SMFIP_NR_*) or for the step to be skipped (SMFIP_NO*)):
    c.helo(name), c.mail(sender, args=(), macros=None),
    c.rcpt(rcpt, args=(), macros=None), c.data(macros=None),
    c.header(name, value), c.eoh(), c.body(chunk),
    c.eom(macros=None) -> (final Reply, [modification Replies]),
    c.abort(), c.quit(), c.quit_new_connection(), c.unknown(command)
    c.macro(stage, {name: value})  - send a 'D' packet as given (unfiltered)
Every step records c.last_elapsed (seconds, send to reply).

Raw access, also for malformed input:
    c.send_packet(cmd, payload)    - one well-framed packet (length + cmd)
    c.send_raw(data)               - bytes exactly as given
    c.recv_packet() -> (cmd, payload)
    c.read_reply(final_only=True)  - next reply, skipping 'p' (progress)
    c.sock                         - the socket itself

Errors: MilterError; MilterTimeout (no answer within `timeout` seconds; the
connection is then unusable), MilterClosed (the filter closed it),
MilterProtocolError (a reply that makes no sense at that point).

Like Postfix, the client offers every action (SMFIF_* incl. QUARANTINE and
SETSYMLIST) and every protocol flag (SMFIP_*) by default, honours the steps
the filter asks to skip and the replies it asks not to send, sends only the
macros of a stage's symbol list when the filter set one, and sends ABORT when
a transaction ends early (a refusal at MAIL, RCPT, DATA).
"""

import socket
import struct
import time
from collections import namedtuple

# Commands (MTA -> filter)
SMFIC_ABORT, SMFIC_BODY, SMFIC_CONNECT, SMFIC_MACRO = b"A", b"B", b"C", b"D"
SMFIC_BODYEOB, SMFIC_HELO, SMFIC_QUIT_NC, SMFIC_HEADER = b"E", b"H", b"K", b"L"
SMFIC_MAIL, SMFIC_EOH, SMFIC_OPTNEG, SMFIC_QUIT = b"M", b"N", b"O", b"Q"
SMFIC_RCPT, SMFIC_DATA, SMFIC_UNKNOWN = b"R", b"T", b"U"

# Actions the MTA offers (SMFIF_*)
SMFIF_ADDHDRS, SMFIF_CHGBODY, SMFIF_ADDRCPT, SMFIF_DELRCPT = 0x01, 0x02, 0x04, 0x08
SMFIF_CHGHDRS, SMFIF_QUARANTINE, SMFIF_CHGFROM = 0x10, 0x20, 0x40
SMFIF_ADDRCPT_PAR, SMFIF_SETSYMLIST = 0x80, 0x100
ALL_ACTIONS = 0x1FF

# Protocol flags (SMFIP_*)
SMFIP_NOCONNECT, SMFIP_NOHELO, SMFIP_NOMAIL, SMFIP_NORCPT = 0x1, 0x2, 0x4, 0x8
SMFIP_NOBODY, SMFIP_NOHDRS, SMFIP_NOEOH, SMFIP_NR_HDR = 0x10, 0x20, 0x40, 0x80
SMFIP_NOUNKNOWN, SMFIP_NODATA, SMFIP_SKIP, SMFIP_RCPT_REJ = 0x100, 0x200, 0x400, 0x800
SMFIP_NR_CONN, SMFIP_NR_HELO, SMFIP_NR_MAIL, SMFIP_NR_RCPT = 0x1000, 0x2000, 0x4000, 0x8000
SMFIP_NR_DATA, SMFIP_NR_UNKN, SMFIP_NR_EOH, SMFIP_NR_BODY = 0x10000, 0x20000, 0x40000, 0x80000
SMFIP_HDR_LEADSPC = 0x100000
ALL_PROTOCOL = 0x1FFFFF

# Macro stages of a symbol list (SMFIM_*) and the command each belongs to
SYMLIST_STAGES = {0: b"C", 1: b"H", 2: b"M", 3: b"R", 4: b"T", 5: b"E", 6: b"N"}

# Replies (filter -> MTA)
REPLY_NAMES = {
    b"c": "continue", b"r": "reject", b"t": "tempfail", b"y": "replycode",
    b"a": "accept", b"d": "discard", b"s": "skip", b"p": "progress",
    b"q": "quarantine", b"h": "addheader", b"i": "insheader", b"m": "chgheader",
    b"b": "replbody", b"+": "addrcpt", b"-": "delrcpt", b"2": "addrcpt_par",
    b"e": "chgfrom", b"l": "setsymlist", b"O": "optneg",
}
FINAL_REPLIES = frozenset(b"crtyads")
MAX_PACKET = 64 * 1024 * 1024

# Per stage: (command, skip flag, no-reply flag)
STEPS = {
    "CONNECT": (SMFIC_CONNECT, SMFIP_NOCONNECT, SMFIP_NR_CONN),
    "HELO": (SMFIC_HELO, SMFIP_NOHELO, SMFIP_NR_HELO),
    "MAIL": (SMFIC_MAIL, SMFIP_NOMAIL, SMFIP_NR_MAIL),
    "RCPT": (SMFIC_RCPT, SMFIP_NORCPT, SMFIP_NR_RCPT),
    "DATA": (SMFIC_DATA, SMFIP_NODATA, SMFIP_NR_DATA),
    "HEADER": (SMFIC_HEADER, SMFIP_NOHDRS, SMFIP_NR_HDR),
    "EOH": (SMFIC_EOH, SMFIP_NOEOH, SMFIP_NR_EOH),
    "BODY": (SMFIC_BODY, SMFIP_NOBODY, SMFIP_NR_BODY),
    "UNKNOWN": (SMFIC_UNKNOWN, SMFIP_NOUNKNOWN, SMFIP_NR_UNKN),
}


class MilterError(Exception):
    pass


class MilterTimeout(MilterError):
    pass


class MilterClosed(MilterError):
    pass


class MilterProtocolError(MilterError):
    pass


Negotiated = namedtuple("Negotiated", "version actions protocol symlists")
Stage = namedtuple("Stage", "name reply elapsed")


class Reply:
    """One packet from the filter: cmd (1 byte), data (bytes)."""

    def __init__(self, cmd, data=b""):
        self.cmd, self.data = cmd, data

    @property
    def name(self):
        return REPLY_NAMES.get(self.cmd, "unknown(%r)" % self.cmd)

    @property
    def text(self):
        """The text of a 'y' reply ("451 4.3.0 ..."), a 'q' reason, etc."""
        return self.data.rstrip(b"\0").decode("utf-8", "replace")

    @property
    def code(self):
        """SMTP code of a replycode ('451'), else the code Postfix would use."""
        if self.cmd == b"y":
            return self.text[:3]
        return {b"r": "550", b"t": "451"}.get(self.cmd)

    @property
    def verdict(self):
        """continue, accept, reject, tempfail, discard, skip or the name."""
        if self.cmd == b"y":
            return "tempfail" if self.text.startswith("4") else "reject"
        return self.name

    @property
    def is_continue(self):
        return self.cmd == b"c"

    def __repr__(self):
        return "Reply(%s%s)" % (self.name, " %r" % self.text if self.data else "")


class MessageResult:
    """What one send_message() got; see the module comment."""

    def __init__(self):
        self.stages, self.actions, self.rcpt_replies = [], [], []
        self.verdict, self.reply, self.stage, self.quarantine = "accept", None, None, None
        self.started = time.monotonic()

    def add(self, name, reply, elapsed):
        self.stages.append(Stage(name, reply, elapsed))

    def decide(self, stage, reply):
        self.verdict, self.reply, self.stage = reply.verdict, reply, stage

    @property
    def text(self):
        return self.reply.text if self.reply is not None else ""

    @property
    def elapsed_max(self):
        return max((s.elapsed for s in self.stages), default=0.0)

    @property
    def elapsed_total(self):
        return sum(s.elapsed for s in self.stages)

    def __repr__(self):
        return "MessageResult(%s at %s %r)" % (self.verdict, self.stage, self.text)


def address_of(spec):
    """A libmilter socket spec ("inet:PORT@HOST", "unix:/path") as an address."""
    if spec.startswith(("unix:", "local:")):
        return spec.split(":", 1)[1]
    if spec.startswith("inet:") or spec.startswith("inet6:"):
        port, _, host = spec.split(":", 1)[1].partition("@")
        return (host.strip("[]") or "127.0.0.1", int(port))
    return spec


def _macro_name(name):
    return name[1:-1] if name.startswith("{") and name.endswith("}") else name


class MilterClient:
    def __init__(self, address, timeout=5.0, version=6, actions=ALL_ACTIONS,
                 protocol=ALL_PROTOCOL):
        self.address, self.timeout = address, timeout
        self.version, self.actions, self.protocol = version, actions, protocol
        self.sock, self.negotiated = None, None
        self.last_elapsed = 0.0
        self.last_skipped = False
        self._pending = b""  # macros go out with their command, in one write
        self.in_transaction = False

    # --- connection -------------------------------------------------------
    def open(self, negotiate=True):
        fam = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
        if fam == socket.AF_INET and ":" in self.address[0]:
            fam = socket.AF_INET6
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        if fam != socket.AF_UNIX:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock.connect(self.address)
        except socket.timeout:
            self.close()
            raise MilterTimeout("connect to %r timed out" % (self.address,))
        except OSError:
            self.close()
            raise
        if negotiate:
            self.optneg()
        return self

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self):
        if self.sock is None:
            self.open()
        return self

    def __exit__(self, *exc):
        try:
            if self.sock is not None and exc[0] is None:
                self.quit()
        finally:
            self.close()

    # --- raw --------------------------------------------------------------
    def send_raw(self, data):
        data, self._pending = self._pending + data, b""
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise MilterTimeout("send timed out")
        except (BrokenPipeError, ConnectionResetError) as e:
            raise MilterClosed("filter closed the connection: %s" % e)

    def send_packet(self, cmd, payload=b""):
        if isinstance(cmd, str):
            cmd = cmd.encode()
        self.send_raw(struct.pack("!I", len(payload) + 1) + cmd + payload)

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                raise MilterTimeout("no answer within %.3f s" % self.timeout)
            except ConnectionResetError as e:
                raise MilterClosed("filter reset the connection: %s" % e)
            if not chunk:
                raise MilterClosed("filter closed the connection")
            buf += chunk
        return bytes(buf)

    def recv_packet(self):
        (length,) = struct.unpack("!I", self._recv_exact(4))
        if length < 1 or length > MAX_PACKET:
            raise MilterProtocolError("bad packet length %d" % length)
        data = self._recv_exact(length)
        return data[:1], data[1:]

    def read_reply(self, final_only=True):
        """The next reply; 'p' (progress) is skipped. With final_only, a
        modification action here is a protocol error."""
        while True:
            cmd, data = self.recv_packet()
            if cmd == b"p":
                continue
            if final_only and cmd[0] not in FINAL_REPLIES:
                raise MilterProtocolError("unexpected reply %r %r" % (cmd, data[:80]))
            return Reply(cmd, data)

    # --- negotiation and macros --------------------------------------------
    def optneg(self):
        self.send_packet(SMFIC_OPTNEG, struct.pack("!III", self.version, self.actions,
                                                   self.protocol))
        cmd, data = self.recv_packet()
        if cmd != SMFIC_OPTNEG or len(data) < 12:
            raise MilterProtocolError("bad OPTNEG reply %r %r" % (cmd, data[:80]))
        version, actions, protocol = struct.unpack("!III", data[:12])
        symlists, rest = {}, data[12:]
        while len(rest) >= 5:
            (stage,) = struct.unpack("!I", rest[:4])
            names, _, rest = rest[4:].partition(b"\0")
            symlists[SYMLIST_STAGES.get(stage, stage)] = names.decode().split()
        self.negotiated = Negotiated(version, actions, protocol, symlists)
        return self.negotiated

    def skips(self, step):
        return bool(self.negotiated and self.negotiated.protocol & STEPS[step][1])

    def no_reply(self, step):
        return bool(self.negotiated and self.negotiated.protocol & STEPS[step][2])

    def macro(self, stage, macros):
        """One 'D' packet for stage (a command byte), exactly as given."""
        if isinstance(stage, str):
            stage = stage.encode()
        payload = b"".join(_b(k) + b"\0" + _b(v) + b"\0" for k, v in macros.items())
        self.send_packet(SMFIC_MACRO, stage + payload)

    def _queue_macro(self, stage, macros):
        payload = b"".join(_b(k) + b"\0" + _b(v) + b"\0" for k, v in macros.items())
        self._pending += struct.pack("!I", len(payload) + 2) + SMFIC_MACRO + stage + payload

    def _macros(self, stage, macros):
        """Send macros for a stage as Postfix does: only the symbol list's
        names when the filter set one; nothing when there is nothing."""
        if not macros:
            return
        wanted = self.negotiated.symlists.get(stage) if self.negotiated else None
        if wanted is not None:
            keep = {_macro_name(w) for w in wanted}
            macros = {k: v for k, v in macros.items() if _macro_name(k) in keep}
        if macros:
            self._queue_macro(stage, macros)

    # --- protocol steps -----------------------------------------------------
    def _step(self, step, payload=b"", macros=None):
        cmd = STEPS[step][0]
        self.last_skipped = self.skips(step)
        if self.last_skipped:
            self.last_elapsed = 0.0
            return None
        self._macros(cmd, macros)
        t0 = time.monotonic()
        self.send_packet(cmd, payload)
        reply = None if self.no_reply(step) else self.read_reply()
        self.last_elapsed = time.monotonic() - t0
        return reply

    def connect_info(self, addr="192.0.2.1", port=40000, hostname=None, family="4",
                     macros=None):
        """CONNECT; family '4', '6', 'L' (unix) or 'U' (unknown, no address)."""
        if hostname is None:
            hostname = "[%s]" % addr if family in "46" else "localhost"
        payload = _b(hostname) + b"\0" + _b(family)
        if family != "U":
            payload += struct.pack("!H", port) + _b(addr) + b"\0"
        if macros is None:
            macros = {"j": "relay.example", "{daemon_name}": "smtpd",
                      "{daemon_addr}": "127.0.0.1", "v": "Postfix 3.7",
                      "_": "%s [%s]" % (hostname, addr)}
        return self._step("CONNECT", payload, macros)

    def helo(self, name="client.example", macros=None):
        return self._step("HELO", _b(name) + b"\0", macros)

    def mail(self, sender, args=(), macros=None):
        self.in_transaction = True
        return self._step("MAIL", _args(sender, args), macros)

    def rcpt(self, rcpt, args=(), macros=None):
        return self._step("RCPT", _args(rcpt, args), macros)

    def data(self, macros=None):
        return self._step("DATA", b"", macros)

    def header(self, name, value, macros=None):
        return self._step("HEADER", _b(name) + b"\0" + _b(value) + b"\0", macros)

    def eoh(self, macros=None):
        return self._step("EOH", b"", macros)

    def body(self, chunk, macros=None):
        return self._step("BODY", _b(chunk), macros)

    def unknown(self, command, macros=None):
        return self._step("UNKNOWN", _b(command) + b"\0", macros)

    def eom(self, macros=None, chunk=b""):
        """End of message: (final Reply, [modification Replies])."""
        self._macros(SMFIC_BODYEOB, macros)
        t0 = time.monotonic()
        self.send_packet(SMFIC_BODYEOB, _b(chunk))
        actions = []
        while True:
            r = self.read_reply(final_only=False)
            if r.cmd[0] in FINAL_REPLIES:
                break
            actions.append(r)
        self.last_elapsed = time.monotonic() - t0
        self.in_transaction = False
        return r, actions

    def abort(self):
        self.send_packet(SMFIC_ABORT)
        self.in_transaction = False

    def quit(self):
        self.send_packet(SMFIC_QUIT)

    def quit_new_connection(self):
        """'K' (protocol 6): end this SMTP connection, keep the milter one."""
        self.send_packet(SMFIC_QUIT_NC)
        self.in_transaction = False

    # --- a whole message ------------------------------------------------------
    def send_message(self, sender, rcpts, login=None, qid=None, headers=None,
                     body=b"", mail_args=(), extra_macros=None):
        """One transaction the way Postfix runs it; returns a MessageResult.
        extra_macros: {stage byte: {name: value}} merged into the defaults."""
        res = MessageResult()
        extra = extra_macros or {}

        def macros(stage, base):
            m = dict(base)
            m.update(extra.get(stage, {}))
            return m

        def step(name, reply):
            if self.last_skipped:
                return "go"
            res.add(name, reply, self.last_elapsed)
            if reply is not None and not reply.is_continue:
                if reply.cmd == b"s" and name == "BODY":
                    return "skip"
                res.decide(name, reply)
                return "stop"
            return "go"

        mail_m = {"{mail_addr}": sender, "{mail_host}": _domain(sender),
                  "{mail_mailer}": "smtp"}
        if login is not None:
            mail_m.update({"{auth_type}": "PLAIN", "{auth_authen}": login})
        if step("MAIL", self.mail("<%s>" % sender, mail_args,
                                  macros(SMFIC_MAIL, mail_m))) == "stop":
            return self._end_early(res)
        accepted = 0
        for rc in rcpts:
            rm = {"{rcpt_addr}": rc, "{rcpt_host}": _domain(rc), "{rcpt_mailer}": "smtp"}
            r = self.rcpt("<%s>" % rc, (), macros(SMFIC_RCPT, rm))
            if self.last_skipped:
                accepted += 1
                continue
            res.add("RCPT", r, self.last_elapsed)
            res.rcpt_replies.append(r)
            if r is None or r.is_continue:
                accepted += 1
            elif r.cmd in (b"a", b"d"):  # accept/discard: the whole message
                res.decide("RCPT", r)
                return self._end_early(res)
        if accepted == 0:
            refused = [r for r in res.rcpt_replies if r is not None]
            if refused:
                res.decide("RCPT", refused[-1])
            else:
                res.verdict, res.stage = "norcpt", "RCPT"
            return self._end_early(res)
        qm = {"i": qid} if qid else {}
        if step("DATA", self.data(macros(SMFIC_DATA, qm))) == "stop":
            return self._end_early(res)
        if headers is None:
            headers = [("From", "<%s>" % sender), ("To", ", ".join(rcpts)),
                       ("Subject", "test")]
        for name, value in headers if not self.skips("HEADER") else ():
            st = step("HEADER", self.header(name, value, macros(SMFIC_HEADER, qm)))
            if st == "stop":
                return self._end_early(res)
        if not self.skips("EOH") and step("EOH", self.eoh(macros(SMFIC_EOH, qm))) == "stop":
            return self._end_early(res)
        body = _b(body) if not self.skips("BODY") else b""
        for off in range(0, len(body), 65535):
            st = step("BODY", self.body(body[off:off + 65535]))
            if st == "stop":
                return self._end_early(res)
            if st == "skip":
                break
        final, res.actions = self.eom(macros(SMFIC_BODYEOB, qm))
        res.add("EOM", final, self.last_elapsed)
        for a in res.actions:
            if a.cmd == b"q":
                res.quarantine = a.text
        if not final.is_continue and final.cmd != b"a":
            res.decide("EOM", final)
        elif res.quarantine is not None:
            res.verdict, res.stage = "hold", "EOM"
        return res

    def _end_early(self, res):
        """A transaction ended before EOM: Postfix resets the filter."""
        self.abort()
        return res


def _b(v):
    return v if isinstance(v, bytes) else str(v).encode("utf-8", "surrogateescape")


def _args(first, rest):
    return b"".join(_b(a) + b"\0" for a in (first,) + tuple(rest))


def _domain(address):
    return address.rpartition("@")[2] if "@" in address else ""
