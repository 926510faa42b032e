#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# ci-test.sh - check a Postfix + relaymilter + Redis from a CI job: send test
# messages with Python's smtplib and assert the SMTP replies.
#
#   ci-test.sh [OPTIONS] HOST PORT
#
# What it does, for one customer (by default the one relaymilter makes of
# this client: with --auth-user the customer its login resolves to, else
# "ip:ADDRESS", the address this script connects from):
#   0. with --auth-user: the login must be accepted (one more "passed");
#   1. sets the customer's limits with relaymilter-ctl: messages_per_minute N,
#      action tempfail, every other limit field lifted; clears its counters;
#   2. sends N messages: each must get 250;
#   3. sends one more: it must get 451 4.7.1 "quota exceeded:
#      messages_per_minute N for CUSTOMER";
#   4. sets action reject; one more message must get 550 5.7.1;
#   5. puts the customer's limit overrides back as they were and clears the
#      counters it made.
# Every Redis key is read and written by relaymilter-ctl(1), with the
# relaymilter.conf it reads: its Redis, prefix and sasl.realm.
#
# Options:
#   --limit N           messages under the limit (default 3)
#   --auth-user LOGIN   log in with SMTP AUTH (Postfix must offer it) before
#                       each message, for a relay that relays only for logins
#   --auth-password PW  its password, or
#   --auth-password-file FILE  a file whose first line is the password
#   --customer NAME     the customer relaymilter makes of this client. Default:
#                       with --auth-user, the one relaymilter-ctl whois gives
#                       for the login; without, ip:ADDRESS of this end of the
#                       connection: behind NAT or a container port mapping
#                       give it, e.g. --customer ip:172.18.0.1, or a customer
#                       whose networks contain that address
#   --source ADDR       local address to connect from
#   --sender ADDR       envelope sender (default ci-test-RANDOM@example.com)
#   --rcpt ADDR         recipient (default ci-test@example.net); Postfix must
#                       relay it for this client (mynetworks, or the login)
#   --ctl CMD           how to run relaymilter-ctl (default "relaymilter-ctl"),
#                       e.g. "relaymilter-ctl -c /etc/relaymilter.conf" or
#                       "docker compose exec -T relay relaymilter-ctl"
#   --timeout SEC       SMTP timeout (default 30)
#
# Exit status: 0 every reply as expected, 1 a reply was not, 2 bad usage or
# relaymilter-ctl (or its Redis) cannot be used, also when the customer's
# limits could not be put back afterwards; 143 on SIGTERM (the limits are put
# back first). The last line is "N passed, N failed".
set -eu

usage() {
    sed -n '3,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}
limit=3 customer="" source_addr="" sender="" rcpt="ci-test@example.net"
ctl="relaymilter-ctl" timeout=30 auth_user="" auth_password=""
while [ $# -gt 0 ]; do
    case $1 in
    --limit) limit=${2:?}; shift 2 ;;
    --customer) customer=${2:?}; shift 2 ;;
    --auth-user) auth_user=${2:?}; shift 2 ;;
    --auth-password) auth_password=${2:?}; shift 2 ;;
    --auth-password-file)
        [ -r "${2:?}" ] || { echo "ci-test.sh: cannot read $2" >&2; exit 2; }
        auth_password=$(head -n 1 "$2"); shift 2 ;;
    --source) source_addr=${2:?}; shift 2 ;;
    --sender) sender=${2:?}; shift 2 ;;
    --rcpt) rcpt=${2:?}; shift 2 ;;
    --ctl) ctl=${2:?}; shift 2 ;;
    --timeout) timeout=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    --) shift; break ;;
    -*) echo "ci-test.sh: unknown option $1" >&2; usage ;;
    *) break ;;
    esac
done
[ $# -eq 2 ] || usage
case $limit in '' | *[!0-9]*) echo "ci-test.sh: --limit must be a number" >&2; exit 2 ;; esac
[ "$limit" -ge 1 ] || { echo "ci-test.sh: --limit must be at least 1" >&2; exit 2; }
[ -z "$auth_user" ] || [ -n "$auth_password" ] ||
    { echo "ci-test.sh: --auth-user needs --auth-password or --auth-password-file" >&2; exit 2; }

export CI_HOST="$1" CI_PORT="$2" CI_LIMIT="$limit" CI_CUSTOMER="$customer"
export CI_SOURCE="$source_addr" CI_SENDER="$sender" CI_RCPT="$rcpt" CI_CTL="$ctl"
export CI_TIMEOUT="$timeout" CI_AUTH_USER="$auth_user" CI_AUTH_PASSWORD="$auth_password"
exec python3 - <<'EOF'
import json
import os
import random
import shlex
import signal
import smtplib
import socket
import subprocess
import sys
import time

# Each milter answers MAIL FROM from a copy of the staff-edited keys that is
# at most 1 s old; a change to them is in force within 2 s (doc/OPERATIONS, "Redis keys").
EDIT_IN_FORCE_S = 2

env = os.environ
host, port = env["CI_HOST"], int(env["CI_PORT"])
limit = int(env["CI_LIMIT"])
timeout = float(env["CI_TIMEOUT"])
source = env["CI_SOURCE"] or None
sender = env["CI_SENDER"] or "ci-test-%08x@example.com" % random.getrandbits(32)
rcpt = env["CI_RCPT"]
ctl_cmd = shlex.split(env["CI_CTL"])
auth_user, auth_password = env["CI_AUTH_USER"], env["CI_AUTH_PASSWORD"]
passed = failed = 0


def say(*a):
    print("ci-test.sh:", *a, flush=True)


def ctl(*args):
    """relaymilter-ctl ARGS: its output (parsed with --json first)."""
    argv = ctl_cmd + [str(a) for a in args]
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=60)
    if res.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), res.returncode,
                                                (res.stderr or res.stdout).strip()))
    return json.loads(res.stdout) if args[0] == "--json" else res.stdout


def connect():
    s = smtplib.SMTP(host, port, timeout=timeout,
                     source_address=(source, 0) if source else None)
    s.ehlo("ci-test.example")
    if auth_user:
        s.login(auth_user, auth_password)
    return s


def send_one(n):
    """One message in its own connection: (code, text) of the first refusal,
    or of the end of DATA."""
    s = connect()
    try:
        code, text = s.mail(sender)
        if code != 250:
            return code, text.decode(errors="replace"), "MAIL FROM"
        code, text = s.rcpt(rcpt)
        if code not in (250, 251):
            return code, text.decode(errors="replace"), "RCPT TO"
        body = ("From: <%s>\r\nTo: <%s>\r\nSubject: relaymilter ci-test %d\r\n\r\n"
                "relaymilter ci-test message %d\r\n" % (sender, rcpt, n, n))
        try:
            code, text = s.data(body)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode(errors="replace"), "DATA"
        return code, text.decode(errors="replace"), "DATA"
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            s.close()


def expect(what, got, code, text_start):
    global passed, failed
    c, text, stage = got
    if c == code and text.startswith(text_start):
        passed += 1
        say("ok: %s: %d %s" % (what, c, text))
    else:
        failed += 1
        say("FAIL: %s: expected %d %s..., got %d %s (at %s)"
            % (what, code, text_start, c, text, stage))


# ---- who are we to relaymilter ------------------------------------------------
customer = env["CI_CUSTOMER"]
try:
    s = connect()
    where = s.sock.getsockname()[0]
    s.quit()
    if auth_user:
        passed += 1
        say("ok: AUTH as %s accepted" % auth_user)
except (OSError, smtplib.SMTPException) as e:
    if isinstance(e, smtplib.SMTPAuthenticationError):
        say("FAIL: AUTH as %s: %d %s" % (auth_user, e.smtp_code,
                                         e.smtp_error.decode(errors="replace")))
    else:
        say("FAIL: SMTP: %r" % (e,))
    print("0 passed, 1 failed")
    sys.exit(1)
try:
    fields = ctl("--json", "fields")["fields"]
    if not customer and auth_user:
        who = ctl("--json", "whois", auth_user)
        if who["refused"]:
            say("relaymilter refuses the mail of login %s (%s %s): give --customer"
                % (auth_user, who["source"], who["rule"]))
            sys.exit(2)
        customer = who["customer"]
    customer = customer or "ip:" + where
    saved = ctl("--json", "limits", customer)["overrides"]
except (RuntimeError, OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
    say("cannot use Redis through relaymilter-ctl: %s" % e)
    sys.exit(2)
say("Postfix %s:%d, customer %s, sender %s, recipient %s" % (host, port, customer, sender, rcpt))

# The test sets every limit field: the minute limit and the action it tests,
# each other field at the value that lifts it. Afterwards the fields that had
# an override get it back, the others are unset. A malformed one (ignored by
# relaymilter) cannot be written back and is unset too.
names = [f["field"] for f in fields]
test_limits = {f["field"]: f["lifted"] for f in fields if f["lifted"] is not None}
test_limits.update(messages_per_minute=limit, action="tempfail")
restore = {o["field"]: o["value"] for o in saved
           if o["field"] in names and o["ignored"] is None}
for o in saved:
    if o["field"] in names and o["ignored"] is not None:
        say("note: %s = %s is malformed, will be unset afterwards" % (o["field"], o["value"]))


def pairs(d):
    return [x for kv in d.items() for x in kv]


exit_code = 0
# A cancelled CI job (SIGTERM) still puts the limits back: the handler
# raises SystemExit here, so the finally below runs.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
try:
    ctl("--yes", "reset", customer)
    ctl("limits", customer, *pairs(test_limits))
    say("relaymilter-ctl: limits %s messages_per_minute %d action tempfail, the other "
        "limits lifted" % (customer, limit))
    time.sleep(EDIT_IN_FORCE_S)

    for i in range(1, limit + 1):
        expect("message %d of %d under the limit" % (i, limit), send_one(i), 250, "")
    expect("message %d, over messages_per_minute %d" % (limit + 1, limit), send_one(limit + 1),
           451, "4.7.1 quota exceeded: messages_per_minute %d for %s" % (limit, customer))

    ctl("limits", customer, "action", "reject")
    say("relaymilter-ctl: limits %s action reject" % customer)
    time.sleep(EDIT_IN_FORCE_S)
    expect("over the limit with action reject", send_one(limit + 2),
           550, "5.7.1 quota exceeded: messages_per_minute %d for %s" % (limit, customer))
except (OSError, smtplib.SMTPException) as e:
    failed += 1
    say("FAIL: SMTP: %r" % (e,))
except (RuntimeError, subprocess.SubprocessError) as e:
    say("relaymilter-ctl: %s" % e)
    exit_code = 2
finally:
    # Each step on its own, so that one failing does not skip the others; a
    # customer left with the test's limits is a failed run (exit 2).
    unset = [n for n in names if n not in restore]
    for step in ([["limits", customer] + pairs(restore)] if restore else []) + \
            ([["limits", customer, "unset"] + unset] if unset else []) + \
            [["--yes", "reset", customer]]:
        try:
            ctl(*step)
        except (RuntimeError, subprocess.SubprocessError) as e:
            say("could not restore %s: %s" % (customer, e))
            exit_code = 2

if failed and exit_code == 0:
    say("hint: is relaymilter in Postfix's smtpd_milters, and is %s the customer "
        "relaymilter makes of this client's %s (see --customer)?"
        % (customer, "login" if auth_user else "address"))
print("%d passed, %d failed" % (passed, failed))
sys.exit(exit_code or (1 if failed else 0))
EOF
