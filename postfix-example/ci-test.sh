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
#   1. sets the customer's limits in Redis (HSET PREFIXlimits:CUSTOMER
#      messages_per_minute N, action tempfail) and clears its counters;
#   2. sends N messages: each must get 250;
#   3. sends one more: it must get 451 4.7.1 "quota exceeded:
#      messages_per_minute N for CUSTOMER";
#   4. HSET action reject; one more message must get 550 5.7.1;
#   5. puts the customer's Redis limits back as they were and clears the
#      counters it made.
#
# Options:
#   --limit N           messages under the limit (default 3)
#   --auth-user LOGIN   log in with SMTP AUTH (Postfix must offer it) before
#                       each message, for a relay that relays only for logins
#   --auth-password PW  its password, or
#   --auth-password-file FILE  a file whose first line is the password
#   --realm REALM       sasl.realm of relaymilter.conf, if set: a login without
#                       "@" is then LOGIN@REALM to relaymilter
#   --customer NAME     the customer relaymilter makes of this client. Default:
#                       with --auth-user, the one the login resolves to as
#                       relaymilter does it (the login in lower case, @REALM
#                       added; the field of that name in the hash PREFIXsasl,
#                       else sasl:LOGIN), so give --customer when
#                       relaymilter.conf's customers[].sasl maps the login;
#                       without, ip:ADDRESS of this end of the connection:
#                       behind NAT or a container port mapping give it, e.g.
#                       --customer ip:172.18.0.1, or a customer whose
#                       networks contain that address
#   --source ADDR       local address to connect from
#   --sender ADDR       envelope sender (default ci-test-RANDOM@example.com)
#   --rcpt ADDR         recipient (default ci-test@example.net); Postfix must
#                       relay it for this client (mynetworks, or the login)
#   --redis-cli CMD     how to run redis-cli (default "redis-cli"), e.g.
#                       "redis-cli -h 127.0.0.1 -p 6379" or
#                       "docker compose exec -T redis redis-cli"; a password
#                       goes in REDISCLI_AUTH
#   --prefix PREFIX     redis.prefix of relaymilter.conf (default relay:)
#   --timeout SEC       SMTP timeout (default 30)
#
# Exit status: 0 every reply as expected, 1 a reply was not, 2 bad usage or
# no Redis. The last line is "N passed, N failed".
set -eu

usage() {
    sed -n '3,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}
limit=3 customer="" source_addr="" sender="" rcpt="ci-test@example.net"
redis_cli="redis-cli" prefix="relay:" timeout=30 auth_user="" auth_password="" realm=""
while [ $# -gt 0 ]; do
    case $1 in
    --limit) limit=${2:?}; shift 2 ;;
    --customer) customer=${2:?}; shift 2 ;;
    --auth-user) auth_user=${2:?}; shift 2 ;;
    --auth-password) auth_password=${2:?}; shift 2 ;;
    --auth-password-file)
        [ -r "${2:?}" ] || { echo "ci-test.sh: cannot read $2" >&2; exit 2; }
        auth_password=$(head -n 1 "$2"); shift 2 ;;
    --realm) realm=${2:?}; shift 2 ;;
    --source) source_addr=${2:?}; shift 2 ;;
    --sender) sender=${2:?}; shift 2 ;;
    --rcpt) rcpt=${2:?}; shift 2 ;;
    --redis-cli) redis_cli=${2:?}; shift 2 ;;
    --prefix) prefix=${2:?}; shift 2 ;;
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

export CI_HOST=$1 CI_PORT=$2 CI_LIMIT=$limit CI_CUSTOMER=$customer CI_SOURCE=$source_addr
export CI_SENDER=$sender CI_RCPT=$rcpt CI_REDIS_CLI=$redis_cli CI_PREFIX=$prefix
export CI_TIMEOUT=$timeout CI_AUTH_USER=$auth_user CI_AUTH_PASSWORD=$auth_password CI_REALM=$realm
exec python3 - <<'EOF'
import os
import random
import shlex
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
limit, prefix = int(env["CI_LIMIT"]), env["CI_PREFIX"]
timeout = float(env["CI_TIMEOUT"])
source = env["CI_SOURCE"] or None
sender = env["CI_SENDER"] or "ci-test-%08x@example.com" % random.getrandbits(32)
rcpt = env["CI_RCPT"]
redis_cli = shlex.split(env["CI_REDIS_CLI"])
auth_user, auth_password = env["CI_AUTH_USER"], env["CI_AUTH_PASSWORD"]
passed = failed = 0


def say(*a):
    print("ci-test.sh:", *a, flush=True)


def redis(*args):
    res = subprocess.run(redis_cli + [str(a) for a in args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=30)
    out = res.stdout.strip()
    # redis-cli exits 0 on a server error reply: look at the text too.
    if res.returncode != 0 or out.startswith(("ERR", "WRONGTYPE", "NOAUTH", "Could not")):
        raise RuntimeError("%s %s: %s%s" % (" ".join(redis_cli), " ".join(map(str, args)),
                                           out, res.stderr.strip()))
    return out


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


def canonical_login(login, realm):
    """The login as relaymilter keys it (relaymilter.conf(5), sasl): ASCII
    lower case, @REALM added to a login without "@" when a realm is set."""
    login = "".join(c.lower() if c.isascii() else c for c in login)
    return login + "@" + realm if realm and "@" not in login else login


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
    redis("PING")
    if not customer and auth_user:
        login = canonical_login(auth_user, env["CI_REALM"])
        customer = redis("--raw", "HGET", prefix + "sasl", login) or "sasl:" + login
except (RuntimeError, OSError, subprocess.SubprocessError) as e:
    say("cannot use Redis: %s" % e)
    sys.exit(2)
customer = customer or "ip:" + where
say("Postfix %s:%d, customer %s, sender %s, recipient %s" % (host, port, customer, sender, rcpt))

limits_key = prefix + "limits:" + customer
# The usage counters, as relaymilter names them (relaymilter.conf(5), "REDIS
# KEYS"): PREFIX qc:W:{CUSTOMER} and PREFIX qs:W:{CUSTOMER}:SENDER. They all
# carry the hash tag {CUSTOMER}, so one DEL clears them on a Redis Cluster too.
counters = [prefix + "qc:%s:{%s}" % (w, customer) for w in "mhd"]
try:
    saved_fields = subprocess.run(redis_cli + ["--raw", "HGETALL", limits_key],
                                  stdout=subprocess.PIPE, text=True, timeout=30).stdout
    # An absent hash prints an empty line: nothing to restore.
    saved_fields = saved_fields.split("\n")[:-1] if saved_fields.strip() else []
except (RuntimeError, OSError, subprocess.SubprocessError) as e:
    say("cannot use Redis: %s" % e)
    sys.exit(2)


def sender_counters():
    keys = []
    for w in "mhd":
        pattern = "%sqs:%s:{%s}:*" % (prefix, w, customer)
        out = redis("--scan", "--pattern", pattern)
        keys += [k for k in out.split("\n") if k]
    return keys


def reset_counters():
    keys = counters + sender_counters()
    redis("DEL", *keys)


exit_code = 0
try:
    # Only the minute limit counts for this test; the others are lifted.
    reset_counters()
    redis("DEL", limits_key)
    redis("HSET", limits_key, "messages_per_minute", limit, "action", "tempfail",
          "messages_per_hour", -1, "messages_per_day", -1,
          "recipients_per_minute", -1, "recipients_per_hour", -1, "recipients_per_day", -1,
          "sender_messages_per_minute", -1, "sender_messages_per_hour", -1,
          "sender_messages_per_day", -1, "suspended", 0, "own_domains_only", 0)
    say("redis: HSET %s messages_per_minute %d action tempfail" % (limits_key, limit))
    time.sleep(EDIT_IN_FORCE_S)

    for i in range(1, limit + 1):
        expect("message %d of %d under the limit" % (i, limit), send_one(i), 250, "")
    expect("message %d, over messages_per_minute %d" % (limit + 1, limit), send_one(limit + 1),
           451, "4.7.1 quota exceeded: messages_per_minute %d for %s" % (limit, customer))

    redis("HSET", limits_key, "action", "reject")
    say("redis: HSET %s action reject" % limits_key)
    time.sleep(EDIT_IN_FORCE_S)
    expect("over the limit with action reject", send_one(limit + 2),
           550, "5.7.1 quota exceeded: messages_per_minute %d for %s" % (limit, customer))
except (OSError, smtplib.SMTPException) as e:
    failed += 1
    say("FAIL: SMTP: %r" % (e,))
except RuntimeError as e:
    say("Redis: %s" % e)
    exit_code = 2
finally:
    try:
        redis("DEL", limits_key)
        if saved_fields:
            redis("HSET", limits_key, *saved_fields)
        reset_counters()
    except RuntimeError as e:
        say("could not restore %s: %s" % (limits_key, e))

if failed and exit_code == 0:
    say("hint: is relaymilter in Postfix's smtpd_milters, and is %s the customer "
        "relaymilter makes of this client's %s (see --customer)?"
        % (customer, "login" if auth_user else "address"))
print("%d passed, %d failed" % (passed, failed))
sys.exit(exit_code or (1 if failed else 0))
EOF
