#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_ctl.sh CTL - tests of relaymilter-ctl (the built binary) against a
# private redis-server. Run under test/lib/with-redis (RM_REDIS_PORT,
# RM_REDIS_SOCK). Every command is checked by reading the resulting Redis
# state with redis-cli. A second private redis-server with --requirepass is
# started here for the password tests, and a Sentinel; both are stopped by
# their PIDs.
#
# Checks are written as eval 'single-quoted tests', expanded when they run.
# shellcheck disable=SC2016,SC2034
set -u
CTL=${1:?usage: test_ctl.sh path/to/relaymilter-ctl}
CTL=$(cd "$(dirname "$CTL")" && pwd)/$(basename "$CTL")
: "${RM_REDIS_PORT:?run under test/lib/with-redis}"
: "${RM_REDIS_SOCK:?run under test/lib/with-redis}"
: "${RM_KEYS:?the rm-keys program (test/lib/rm_keys.c): counter key names}"
# K [-p PREFIX] W CUSTOMER [SENDER]: a counter key as policy/keys.c names it
K() {
    local prefix=relay:
    [ "$1" = -p ] && { prefix=$2; shift 2; }
    "$RM_KEYS" counter "$prefix" "$@"
}
# shellcheck source=test/ctl/lib.sh
. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d /tmp/rm-ctl-test.XXXXXX)
auth_pid=""
sent_pid=""
silent_pid=""
cleanup() {
    local p
    for p in $auth_pid $sent_pid $silent_pid; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
# Any glob or command substitution that escaped quoting would act in here.
mkdir "$tmp/cwd"
touch "$tmp/cwd/acme-glob-bait" "$tmp/cwd/x.example"
cd "$tmp/cwd" || exit 1

cat >"$tmp/main.conf" <<EOF
# relaymilter.conf for the tests
milter = { socket = "inet:8890@127.0.0.1"; timeout = 30; };
redis = {
  host = "127.0.0.1";  port = $RM_REDIS_PORT;   # or: unix = "/nonexistent.sock";
  # username = "nobody";  password = "wrong";
  db = 0;
  prefix = "relay:";                  // every key starts with this
  connect_timeout_ms = 200;
};
limits = {
  messages_per_minute = 61; recipients_per_hour = 5001;
  max_recipients = 100;  action = "tempfail";
};
customers = (
  { name = "acme";
    sasl = [ "acme", "acme-relay" ];
    domains = [ "acme.example" ];
    limits = { messages_per_hour = 5000; };
  },
  { name = "other"; limits = { recipients_per_day = 1; suspended = 1; }; }
);
blocked_recipient_domains = [ "spamtrap.example" ];
log = { level = "info"; };
EOF

ctl() { "$CTL" -c "$tmp/main.conf" "$@"; }

# ---------------------------------------------------------------- no helpers run
# The tool is C on the policy library: no redis-cli, no idn2. Stand-ins that
# record being run come first on PATH and must stay silent.
mkdir "$tmp/shim"
for p in redis-cli idn2 awk; do
    printf '#!/bin/sh\necho "%s $*" >>"%s"\nexit 1\n' "$p" "$tmp/shim.log" >"$tmp/shim/$p"
    chmod +x "$tmp/shim/$p"
done
: >"$tmp/shim.log"
run env PATH="$tmp/shim:$PATH" "$CTL" -c "$tmp/main.conf" own 'Shim-Bücher.Example.' acme
check "IDN through libidn2 with stand-in redis-cli, idn2 and awk first on PATH" \
    eval '[ "$ST" -eq 0 ] && [ "$(R SISMEMBER relay:domain:xn--shim-bcher-feb.example acme)" = 1 ]'
run env PATH="$tmp/shim:$PATH" "$CTL" -c "$tmp/main.conf" usage acme
check "usage with stand-ins first on PATH" eval '[ "$ST" -eq 0 ] && has "$OUT" "messages_per_hour"'
check "no redis-cli, idn2 or awk was run" eval '[ ! -s "$tmp/shim.log" ]'
R DEL relay:domain:xn--shim-bcher-feb.example >/dev/null

run ctl help
check "help: exit 0 with usage text" eval '[ "$ST" -eq 0 ] && has "$OUT" "usage: relaymilter-ctl" && has "$OUT" "events [N]"'
run "$CTL" -h
check "-h alone: usage, exit 0" eval '[ "$ST" -eq 0 ] && has "$OUT" "usage: relaymilter-ctl"'
run "$CTL"
check "no command: usage on stderr, exit 2" eval '[ "$ST" -eq 2 ] && has "$ERR" "usage: relaymilter-ctl"'
run ctl frobnicate acme
check "unknown command: exit 2" eval '[ "$ST" -eq 2 ] && has "$ERR" "unknown command"'
run ctl --bogus limits acme
check "unknown option: exit 2" [ "$ST" -eq 2 ]
run ctl suspend
check "missing argument: exit 2" [ "$ST" -eq 2 ]
run ctl sasl a b c
check "extra argument: exit 2" [ "$ST" -eq 2 ]
run "$CTL" -c "$tmp/no-such.conf" limits acme
check "unreadable config: exit 2" eval '[ "$ST" -eq 2 ] && has "$ERR" "no-such.conf"'

# ---------------------------------------------------------------- limits
for f in messages_per_minute messages_per_hour messages_per_day recipients_per_minute \
    recipients_per_hour recipients_per_day sender_messages_per_minute sender_messages_per_hour \
    sender_messages_per_day sender_recipients_per_minute sender_recipients_per_hour \
    sender_recipients_per_day max_recipients; do
    run ctl limits acme "$f" 1234
    check "limits set $f" eval '[ "$ST" -eq 0 ] && [ "$(R HGET relay:limits:acme "$f")" = 1234 ]'
done
run ctl limits acme messages_per_hour -1
check "limits -1 (unlimited)" eval '[ "$ST" -eq 0 ] && [ "$(R HGET relay:limits:acme messages_per_hour)" = -1 ]'
run ctl limits acme messages_per_day 0
check "limits 0" eval '[ "$ST" -eq 0 ] && [ "$(R HGET relay:limits:acme messages_per_day)" = 0 ]'
run ctl limits acme max_recipients 007
check "limits leading zeros stored as the number" eval '[ "$ST" -eq 0 ] && [ "$(R HGET relay:limits:acme max_recipients)" = 7 ]'
run ctl limits acme messages_per_minute 1000000000000
check "limits at the maximum" eval '[ "$ST" -eq 0 ] && [ "$(R HGET relay:limits:acme messages_per_minute)" = 1000000000000 ]'
for a in tempfail reject hold monitor; do
    run ctl limits acme action "$a"
    check "limits action $a" eval '[ "$ST" -eq 0 ] && [ "$(R HGET relay:limits:acme action)" = "$a" ]'
done
for f in suspended own_domains_only; do
    for v in 1 0; do
        run ctl limits acme "$f" "$v"
        check "limits $f $v" eval '[ "$ST" -eq 0 ] && [ "$(R HGET relay:limits:acme "$f")" = "$v" ]'
    done
done

# refusals: exit 2, the hash exactly as before
before=$(R HGETALL relay:limits:acme)
refuse() {
    run ctl limits acme "$1" "$2"
    check "refused: limits acme '$1' '$2' (exit 2, Redis unchanged)" \
        eval '[ "$ST" -eq 2 ] && [ -n "$ERR" ] && [ "$(R HGETALL relay:limits:acme)" = "$before" ]'
}
refuse messages_per_hur 10
refuse Messages_Per_Hour 10
refuse nonsense 10
refuse '*' 10
refuse messages_per_hour 10k
refuse messages_per_hour abc
refuse messages_per_hour 1.5
refuse messages_per_hour 1e3
refuse messages_per_hour -2
refuse messages_per_hour --1
refuse messages_per_hour +5
refuse messages_per_hour ' 5'
refuse messages_per_hour '5 '
refuse messages_per_hour ''
refuse messages_per_hour 0x10
refuse messages_per_hour 1000000000001
refuse messages_per_hour 99999999999999999999999
refuse messages_per_hour '$(touch pwned)'
refuse action drop
refuse action TEMPFAIL
refuse action ''
refuse suspended 2
refuse suspended yes
refuse suspended -1
refuse own_domains_only true
run ctl limits acme messages_per_hour
check "limits with a field and no value: exit 2" eval '[ "$ST" -eq 2 ] && [ "$(R HGETALL relay:limits:acme)" = "$before" ]'
run ctl limits acme messages_per_hour 5 6
check "limits with too many arguments: exit 2" eval '[ "$ST" -eq 2 ] && [ "$(R HGETALL relay:limits:acme)" = "$before" ]'
run ctl limits acme unset
check "limits unset without a field: exit 2" eval '[ "$ST" -eq 2 ] && [ "$(R HGETALL relay:limits:acme)" = "$before" ]'

run ctl limits acme unset max_recipients
check "limits unset: HDEL" eval '[ "$ST" -eq 0 ] && [ "$(R HEXISTS relay:limits:acme max_recipients)" = 0 ] && [ "$(R HGET relay:limits:acme action)" = monitor ]'
R HSET relay:limits:acme mesages_per_hour 9 >/dev/null
run ctl limits acme unset mesages_per_hour
check "limits unset removes a misspelt field too" eval '[ "$ST" -eq 0 ] && [ "$(R HEXISTS relay:limits:acme mesages_per_hour)" = 0 ]'

# several pairs: one HSET; one refused pair writes none of them
R DEL relay:limits:multi >/dev/null
run ctl limits multi messages_per_hour 5 action reject suspended 0
check "limits with several pairs: each set, one line each" \
    eval '[ "$ST" -eq 0 ] && [ "$(R HGET relay:limits:multi messages_per_hour)" = 5 ] && [ "$(R HGET relay:limits:multi action)" = reject ] && [ "$(R HGET relay:limits:multi suspended)" = 0 ] && [ "$(printf "%s\n" "$OUT" | wc -l)" -eq 3 ] && has "$OUT" "relay:limits:multi: action = reject"'
before=$(R HGETALL relay:limits:multi)
for bad in "messages_per_day 7 action drop" "messages_per_day 7 nonsense 1" \
    "messages_per_day 7 max_recipients" "messages_per_day 7 action reject messages_per_day 8"; do
    # shellcheck disable=SC2086
    run ctl limits multi $bad
    check "limits multi $bad: exit 2, nothing written" \
        eval '[ "$ST" -eq 2 ] && [ -n "$ERR" ] && [ -z "$OUT" ] && [ "$(R HGETALL relay:limits:multi)" = "$before" ]'
done
R HSET relay:limits:multi mesages_per_day 9 >/dev/null
run ctl limits multi unset messages_per_hour action mesages_per_day max_recipients
check "limits unset of several fields: each removed, one line each" \
    eval '[ "$ST" -eq 0 ] && [ "$(R HKEYS relay:limits:multi)" = suspended ] && has "$OUT" "removed action" && has "$OUT" "removed mesages_per_day" && has "$OUT" "max_recipients was not set" && has "$ERR" "mesages_per_day is not a limit field"'

# every field at once: one command of 34 arguments
all=$("$CTL" -c /dev/null fields | while read -r f kind lifted; do
    [ "$kind" = action ] && lifted=hold
    printf '%s %s ' "$f" "$lifted"
done)
# shellcheck disable=SC2086
run ctl limits multi $all
check "limits with every field in one command" \
    eval '[ "$ST" -eq 0 ] && [ "$(R HLEN relay:limits:multi)" = 16 ] && [ "$(R HGET relay:limits:multi action)" = hold ] && [ "$(R HGET relay:limits:multi max_recipients)" = -1 ]'

# fields: every limit field, its kind, the value that lifts it; no Redis
run "$CTL" -c /dev/null -p 1 fields
check "fields: 16 lines, a count lifted by -1, a flag by 0, action by none" \
    eval '[ "$ST" -eq 0 ] && [ "$(printf "%s\n" "$OUT" | wc -l)" -eq 16 ] && [[ $OUT =~ messages_per_minute\ +count\ +-1 ]] && [[ $OUT =~ suspended\ +bool\ +0 ]] && [[ $OUT =~ action\ +action\ +- ]]'
run "$CTL" -c /dev/null -p 1 --json fields
check "fields --json: the same fields, in the order of limits.h" \
    eval '[ "$ST" -eq 0 ] && python3 -c "
import json, sys
f = json.load(sys.stdin)[\"fields\"]
assert len(f) == 16 and f[0] == {\"field\": \"messages_per_minute\", \"kind\": \"count\", \"lifted\": \"-1\"}, f
assert {\"field\": \"action\", \"kind\": \"action\", \"lifted\": None} in f, f
assert {\"field\": \"own_domains_only\", \"kind\": \"bool\", \"lifted\": \"0\"} in f, f
" <<<"$OUT"'
run "$CTL" -c /dev/null fields extra
check "fields takes no argument: exit 2" [ "$ST" -eq 2 ]

R DEL relay:limits:show >/dev/null
R HSET relay:limits:show messages_per_hour 5000 action reject >/dev/null
run ctl limits show
check "limits show: every field and value" eval '[ "$ST" -eq 0 ] && [[ $OUT =~ messages_per_hour\ +5000 ]] && [[ $OUT =~ action\ +reject ]]'
run ctl limits nobody-here
check "limits show: no overrides" eval '[ "$ST" -eq 0 ] && has "$OUT" "no overrides"'

# ---------------------------------------------------------------- suspend / resume
R DEL relay:limits:acme >/dev/null
run ctl suspend acme
check "suspend: HSET suspended 1" eval '[ "$ST" -eq 0 ] && [ "$(R HGET relay:limits:acme suspended)" = 1 ]'
run ctl resume acme
check "resume: HDEL suspended" eval '[ "$ST" -eq 0 ] && [ "$(R HEXISTS relay:limits:acme suspended)" = 0 ]'
run ctl resume other
check "resume: warns when the config still suspends" eval '[ "$ST" -eq 0 ] && has "$ERR" "still suspended"'

# ---------------------------------------------------------------- own / disown
run ctl own Acme.EXAMPLE. acme
check "own: canonical key, SADD" eval '[ "$ST" -eq 0 ] && [ "$(R SISMEMBER relay:domain:acme.example acme)" = 1 ] && [ "$(R EXISTS relay:domain:Acme.EXAMPLE.)" = 0 ]'
run ctl own acme.example other
check "own: a second owner" eval '[ "$ST" -eq 0 ] && [ "$(R SCARD relay:domain:acme.example)" = 2 ]'
run ctl disown ACME.example other
check "disown: SREM" eval '[ "$ST" -eq 0 ] && [ "$(R SMEMBERS relay:domain:acme.example)" = acme ]'
run ctl own sub_1.my-domain.example acme
check "own: '_' and '-' are allowed" eval '[ "$ST" -eq 0 ] && [ "$(R SISMEMBER relay:domain:sub_1.my-domain.example acme)" = 1 ]'
run ctl own 'Bücher.Example.' acme
check "own: IDN to A-label" eval '[ "$ST" -eq 0 ] && [ "$(R SISMEMBER relay:domain:xn--bcher-kva.example acme)" = 1 ]'
keys_before=$(R --scan | sort)
bad_domain() {
    run ctl "$@"
    check "refused domain: $* (exit 2, nothing written, nothing run)" \
        eval '[ "$ST" -eq 2 ] && [ "$(R --scan | sort)" = "$keys_before" ] && [ ! -e pwned ] && [ ! -e "$tmp/pwned" ]'
}
bad_domain own 'a b.example' acme
bad_domain own '*' acme
bad_domain own '*.example' acme
bad_domain own 'x"y.example' acme
bad_domain own "x'y.example" acme
bad_domain own '$(touch pwned).example' acme
bad_domain own '`touch pwned`' acme
bad_domain own 'a..example' acme
bad_domain own '.example' acme
bad_domain own '' acme
bad_domain own . acme
bad_domain own "$(printf 'a%.0s' $(seq 64)).example" acme
bad_domain block 'spam trap.example'
bad_domain block '$(touch "$tmp/pwned")'
run ctl own acme.example ''
check "own: empty customer refused" eval '[ "$ST" -eq 2 ] && [ "$(R SMEMBERS relay:domain:acme.example)" = acme ]'

# ---------------------------------------------------------------- block / unblock
run ctl block SpamTrap.Example.
check "block: SADD canonical" eval '[ "$ST" -eq 0 ] && [ "$(R SMEMBERS relay:blocked-rcpt-domains)" = spamtrap.example ]'
run ctl block other.example
run ctl unblock SPAMTRAP.example
check "unblock: SREM" eval '[ "$ST" -eq 0 ] && [ "$(R SMEMBERS relay:blocked-rcpt-domains)" = other.example ]'

# ---------------------------------------------------------------- sasl / unsasl
run ctl sasl acme-relay acme
check "sasl: HSET" eval '[ "$ST" -eq 0 ] && [ "$(R HGET relay:sasl acme-relay)" = acme ]'
run ctl sasl login2 acme
run ctl unsasl acme-relay
check "unsasl: HDEL" eval '[ "$ST" -eq 0 ] && [ "$(R HEXISTS relay:sasl acme-relay)" = 0 ] && [ "$(R HGET relay:sasl login2)" = acme ]'

# ---------------------------------------------------------------- literal names
weird='we ird "q" '"'s'"' $(touch pwned) `touch pwned` * ?[x] \n $HOME'
run ctl limits "$weird" messages_per_hour 42
check "weird customer: limits key is the literal name" eval '[ "$ST" -eq 0 ] && [ "$(R HGET "relay:limits:$weird" messages_per_hour)" = 42 ] && [ ! -e pwned ]'
run ctl limits "$weird"
check "weird customer: limits show" eval '[ "$ST" -eq 0 ] && [[ $OUT =~ messages_per_hour\ +42 ]]'
run ctl suspend "$weird"
check "weird customer: suspend" eval '[ "$ST" -eq 0 ] && [ "$(R HGET "relay:limits:$weird" suspended)" = 1 ]'
run ctl resume "$weird"
check "weird customer: resume" eval '[ "$ST" -eq 0 ] && [ "$(R HEXISTS "relay:limits:$weird" suspended)" = 0 ]'
run ctl own weird.example "$weird"
check "weird customer: own" eval '[ "$ST" -eq 0 ] && [ "$(R SISMEMBER relay:domain:weird.example "$weird")" = 1 ]'
run ctl disown weird.example "$weird"
check "weird customer: disown" eval '[ "$ST" -eq 0 ] && [ "$(R EXISTS relay:domain:weird.example)" = 0 ]'
run ctl sasl "$weird" "$weird"
# the login is stored in canonical form (ASCII lower case), the customer as given
weird_login=$(printf '%s' "$weird" | LC_ALL=C tr 'A-Z' 'a-z')
check "weird login and customer: sasl" eval '[ "$ST" -eq 0 ] && [ "$(R HGET relay:sasl "$weird_login")" = "$weird" ]'
run ctl unsasl "$weird"
check "weird login: unsasl" eval '[ "$ST" -eq 0 ] && [ "$(R HEXISTS relay:sasl "$weird_login")" = 0 ]'
run ctl limits '*' messages_per_hour 5
check "customer '*': no globbing" eval '[ "$ST" -eq 0 ] && [ "$(R HGET "relay:limits:*" messages_per_hour)" = 5 ] && [ "$(R EXISTS relay:limits:acme-glob-bait)" = 0 ]'
run ctl sasl '-x' '-y'
check "names starting with '-'" eval '[ "$ST" -eq 0 ] && [ "$(R HGET relay:sasl -x)" = -y ]'
check "nothing was executed" eval '[ ! -e pwned ] && [ ! -e "$tmp/pwned" ] && [ ! -e "$HOME/pwned" ]'

# ---------------------------------------------------------------- usage
now=$(R TIME | head -1)
hw=$((now / 3600)) mw=$((now / 60)) dw=$((now / 86400))
R DEL relay:limits:acme >/dev/null
R HSET relay:limits:acme recipients_per_minute 77 messages_per_day abc >/dev/null
R HSET "$(K h acme)" e "$hw" m 7 r 9 pm 0 pr 0 >/dev/null
R HSET "$(K d acme)" e $((dw - 1)) m 4 r 8 >/dev/null
R HSET "$(K h acme bob@acme.example)" e "$hw" m 2 r 3 pm 0 pr 0 >/dev/null
R HSET "$(K m acme bob@acme.example)" e "$mw" m 1 r 1 >/dev/null
R HSET "$(K h acme2 eve@acme2.example)" e "$hw" m 5 r 5 >/dev/null
R HSET "$(K h acme2)" e "$hw" m 5 r 5 >/dev/null
R HSET "$(K h 'a*' star@x.example)" e "$hw" m 1 r 1 >/dev/null
R HSET "$(K h ab ab@x.example)" e "$hw" m 1 r 1 >/dev/null
run ctl usage acme
usage_out=$OUT
# row FIELD [SCOPE-WORD]: "USED LIMIT SOURCE RESETS" of that row
row() {
    awk -v f="$1" -v s="${2:-customer}" 'index($0, s " ") == 1 {
        for (i = 1; i <= NF; i++) if ($i == f) { print $(NF - 3), $(NF - 2), $(NF - 1), $NF; exit } }' <<<"$usage_out"
}
check "usage: exit 0" [ "$ST" -eq 0 ]
check "usage: messages_per_hour used 7, limit 5000 from customers[]" eval '[[ "$(row messages_per_hour)" =~ ^7\ 5000\ customers\[\]\ (1h[0-5][0-9]m|2h00m)$ ]]'
check "usage: recipients_per_hour used 9, limit 5001 from limits" eval '[[ "$(row recipients_per_hour)" =~ ^9\ 5001\ limits\  ]]'
check "usage: messages_per_minute unused, limit 61 from limits" eval '[ "$(row messages_per_minute)" = "0 61 limits -" ]'
check "usage: recipients_per_minute limit 77 from redis" eval '[ "$(row recipients_per_minute)" = "0 77 redis -" ]'
check "usage: malformed redis value ignored, built-in applies" eval '[[ "$(row messages_per_day)" =~ ^[1-4]\ 10000\ built-in\ [0-9]+[hms] ]] && has "$usage_out" "messages_per_day holds \"abc\""'
check "usage: previous day decays (recipients_per_day)" eval '[[ "$(row recipients_per_day)" =~ ^[1-8]\ 50000\ built-in\  ]]'
check "usage: sender hour row" eval '[[ "$(row sender_messages_per_hour "sender bob@acme.example")" =~ ^2\ 500\ built-in\ (1h|2h00m) ]]'
check "usage: sender recipients unlimited" eval '[[ "$(row sender_recipients_per_hour "sender bob@acme.example")" =~ ^3\ unlimited\ built-in ]]'
check "usage: sender minute row" eval '[[ "$(row sender_messages_per_minute "sender bob@acme.example")" =~ ^1\ unlimited\ built-in\ [0-9]+(s|m[0-9][0-9]s)$ ]]'
check "usage: other customers' keys not shown" eval '! has "$usage_out" "eve@" && ! has "$usage_out" "star@"'
check "usage: max_recipients/action summary" eval 'has "$usage_out" "max_recipients 100 (limits)" && has "$usage_out" "action tempfail (limits)"'
run ctl usage 'a*'
check "usage 'a*': its own sender key only (pattern escaped)" eval '[ "$ST" -eq 0 ] && has "$OUT" "sender star@x.example" && ! has "$OUT" "bob@" && ! has "$OUT" "eve@" && ! has "$OUT" "ab@"'
run ctl usage 'a?'
check "usage 'a?': not the keys of 'ab' or 'a*'" eval '[ "$ST" -eq 0 ] && ! has "$OUT" "ab@" && ! has "$OUT" "star@"'
run ctl usage a
check "usage 'a': nothing of 'a*' or acme" eval '[ "$ST" -eq 0 ] && ! has "$OUT" "star@" && ! has "$OUT" "bob@" && [ "$(grep -c "^customer " <<<"$OUT")" = 6 ]'
R HSET "$(K h "$weird")" e "$hw" m 3 r 4 >/dev/null
R HSET "$(K h "$weird" w@x.example)" e "$hw" m 3 r 4 >/dev/null
run ctl usage "$weird"
usage_out=$OUT
check "usage of a weird customer" eval '[ "$ST" -eq 0 ] && [[ "$(row messages_per_hour)" =~ ^3\ 42\ redis ]] && has "$OUT" "sender w@x.example" && [ ! -e pwned ]'
R HSET "$(K m bad)" e 1 m xyz >/dev/null
run ctl usage bad
usage_out=$OUT
check "usage: garbage counter shown as full" eval '[ "$(row messages_per_minute)" = "full 61 limits ?" ] && has "$OUT" "not a number"'
run ctl usage
check "usage without a customer: exit 2" [ "$ST" -eq 2 ]

# ---------------------------------------------------------------- events
R DEL relay:events >/dev/null
R XADD relay:events '*' time 1700000000 queue_id 4XyZ1234 customer acme login bob@relay.test sender bob@acme.example \
    recipients 'a@x.example,b@x.example' reason messages_per_hour action tempfail >/dev/null
R XADD relay:events '*' time 1700000100 queue_id '' customer other sender 'e@o.example' \
    recipients '' reason suspended action reject >/dev/null
for i in 1 2 3; do
    R XADD relay:events '*' time $((1700000200 + i)) queue_id "Q$i" customer acme sender s@x \
        recipients r@y reason messages_per_minute action monitor >/dev/null
done
run ctl events
check "events: all five, newest first" eval '[ "$ST" -eq 0 ] && [ "$(wc -l <<<"$OUT")" = 5 ] && [[ "$(head -1 <<<"$OUT")" == "2023-11-14 22:16:43 UTC  Q3 "* ]]'
check "events: one line with every field" eval 'grep -qxF "2023-11-14 22:13:20 UTC  4XyZ1234  customer=acme login=bob@relay.test sender=<bob@acme.example> recipients=a@x.example,b@x.example reason=messages_per_hour action=tempfail" <<<"$OUT"'
check "events: no queue id" eval 'grep -qF "2023-11-14 22:15:00 UTC  NOQUEUE  customer=other login=- sender=<e@o.example> recipients= reason=suspended action=reject" <<<"$OUT"'
run ctl events 2
check "events 2: the two newest" eval '[ "$ST" -eq 0 ] && [ "$(wc -l <<<"$OUT")" = 2 ] && has "$OUT" " Q3 " && has "$OUT" " Q2 " && ! has "$OUT" " Q1 "'
for n in 0 x -1 '2;3' '*'; do
    run ctl events "$n"
    check "events '$n': exit 2" [ "$ST" -eq 2 ]
done
R DEL relay:events >/dev/null
run ctl events
check "events: none" eval '[ "$ST" -eq 0 ] && [ -z "$OUT" ]'

# ---------------------------------------------------------------- Redis errors
R SET relay:limits:str x >/dev/null
run ctl limits str
check "Redis error: exit 1 with its message" eval '[ "$ST" -eq 1 ] && has "$ERR" WRONGTYPE'
R SET relay:domain:str2.example x >/dev/null
run ctl own str2.example acme
check "Redis error on SADD: exit 1" eval '[ "$ST" -eq 1 ] && has "$ERR" WRONGTYPE'
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
deadport=$(freeport)
run ctl -p "$deadport" limits acme
check "no Redis: exit 1 with redis-cli's message" eval '[ "$ST" -eq 1 ] && has "$ERR" "$deadport"'

# ---------------------------------------------------------------- other settings
cat >"$tmp/alt.conf" <<EOF
/* a config in another style: several settings a line, ':' separators,
   redis = { port = 1; prefix = "wrong:"; }   <- inside a comment */
redis: { db = 3; host = "127.0.0.1"; port = $RM_REDIS_PORT; prefix = "rm" "-test:"; };  # port = 2
limits: { messages_per_hour: 17; };  // prefix = "nope:"
log = { level = "debug"; }
EOF
run "$CTL" -c "$tmp/alt.conf" limits acme messages_per_hour 99
check "config: prefix, db and port honoured" eval '[ "$ST" -eq 0 ] && [ "$(R -n 3 HGET rm-test:limits:acme messages_per_hour)" = 99 ] && [ "$(R HEXISTS relay:limits:acme messages_per_hour)" = 0 ]'
R -n 3 HSET "$(K -p rm-test: h acme)" e "$hw" m 2 r 2 >/dev/null
run "$CTL" -c "$tmp/alt.conf" usage acme
usage_out=$OUT
check "config: usage under another prefix and db" eval '[ "$ST" -eq 0 ] && [ "$(row messages_per_hour)" != "" ] && [[ "$(row messages_per_hour)" =~ ^2\ 99\ redis ]]'
R -n 3 HDEL rm-test:limits:acme messages_per_hour >/dev/null
run "$CTL" -c "$tmp/alt.conf" usage acme
usage_out=$OUT
check "config: limits group read from the alternative syntax" eval '[[ "$(row messages_per_hour)" =~ ^2\ 17\ limits ]]'
run "$CTL" -c "$tmp/alt.conf" -P flag: -n 4 sasl l c
check "flags -P and -n override the config" eval '[ "$ST" -eq 0 ] && [ "$(R -n 4 HGET flag:sasl l)" = c ]'
run "$CTL" -c "$tmp/alt.conf" -p "$deadport" sasl l c
check "flag -p overrides the config" eval '[ "$ST" -eq 1 ] && has "$ERR" "$deadport"'
run "$CTL" -c "$tmp/alt.conf" -s "$RM_REDIS_SOCK" sasl l2 c
check "flag -s: unix socket" eval '[ "$ST" -eq 0 ] && [ "$(R -n 3 HGET rm-test:sasl l2)" = c ]'
printf 'redis = { unix = "%s"; prefix = "sock:"; };\n' "$RM_REDIS_SOCK" >"$tmp/sock.conf"
run "$CTL" -c "$tmp/sock.conf" block sock.example
check "config unix socket" eval '[ "$ST" -eq 0 ] && [ "$(R SMEMBERS sock:blocked-rcpt-domains)" = sock.example ]'
run "$CTL" -c /dev/null -p "$RM_REDIS_PORT" sasl d1 c1
check "empty config: default prefix relay:" eval '[ "$ST" -eq 0 ] && [ "$(R HGET relay:sasl d1)" = c1 ]'

# ---------------------------------------------------------------- sentinel
# a Sentinel watching the private server: the config names sentinels and a
# master, and the helper asks them for the master's address
sentdir=$tmp/sentinel
mkdir "$sentdir"
sentport=$(freeport)
printf 'port %s\nbind 127.0.0.1\nsentinel monitor relaymaster 127.0.0.1 %s 1\n' \
    "$sentport" "$RM_REDIS_PORT" >"$sentdir/sentinel.conf"
redis-server "$sentdir/sentinel.conf" --sentinel --dir "$sentdir" \
    --logfile "$sentdir/sentinel.log" --daemonize no &
sent_pid=$!
for _ in $(seq 1 100); do
    [ -n "$("$REAL_CLI" -p "$sentport" SENTINEL get-master-addr-by-name relaymaster 2>/dev/null)" ] && break
    sleep 0.05
done
cat >"$tmp/sentinel-ctl.conf" <<EOF
redis = {
  sentinels = [ "127.0.0.1:$deadport", "127.0.0.1:$sentport" ];  master = "relaymaster";
  prefix = "sent:";
};
EOF
run "$CTL" -c "$tmp/sentinel-ctl.conf" sasl s1 c1
check "sentinels: the master found through the second sentinel" eval '[ "$ST" -eq 0 ] && [ "$(R HGET sent:sasl s1)" = c1 ]'
kill "$sent_pid" 2>/dev/null
wait "$sent_pid" 2>/dev/null
sent_pid=""
run "$CTL" -c "$tmp/sentinel-ctl.conf" sasl s2 c2
check "sentinels: none answers -> exit 1" eval '[ "$ST" -eq 1 ] && has "$ERR" relaymaster && [ "$(R HEXISTS sent:sasl s2)" = 0 ]'

# ---------------------------------------------------------------- password
authdir=$tmp/auth
mkdir "$authdir"
authport=$(freeport)
secret='s3cr3t pass $(x)'
redis-server --bind 127.0.0.1 --port "$authport" --requirepass "$secret" --save '' \
    --appendonly no --dir "$authdir" --logfile "$authdir/redis.log" --daemonize no &
auth_pid=$!
RA() { REDISCLI_AUTH=$secret "$REAL_CLI" -p "$authport" "$@"; }
for _ in $(seq 1 100); do
    [ "$(RA ping 2>/dev/null)" = PONG ] && break
    sleep 0.05
done
check "password redis-server started" [ "$(RA ping 2>/dev/null)" = PONG ]
cat >"$tmp/auth.conf" <<EOF
redis = {
  host = "127.0.0.1"; port = $authport;
  password = "s3cr3t pass \$(x)";   # the secret
};
EOF
# no output or error may show a password (nor a part of it)
noleak() { ! has "$OUT$ERR" "s3cr3t" && ! has "$OUT$ERR" "pass \$(x)" && ! has "$OUT$ERR" "support pw"; }
run "$CTL" -c "$tmp/auth.conf" limits acme messages_per_hour 321
check "password from the config: command works" eval '[ "$ST" -eq 0 ] && [ "$(RA HGET relay:limits:acme messages_per_hour)" = 321 ]'
check "password from the config: not in the output" noleak
run env -u REDISCLI_AUTH "$CTL" -c /dev/null -p "$authport" -a "$secret" usage acme
check "-a PASSWORD: usage works" eval '[ "$ST" -eq 0 ] && [[ "$OUT" == *messages_per_hour* ]]'
check "-a PASSWORD: not in the output" noleak
run env REDISCLI_AUTH="$secret" "$CTL" -c /dev/null -p "$authport" sasl e1 c1
check "REDISCLI_AUTH: the password from the environment" eval '[ "$ST" -eq 0 ] && [ "$(RA HGET relay:sasl e1)" = c1 ]'
check "REDISCLI_AUTH: not in the output" noleak
run env -u REDISCLI_AUTH "$CTL" -c /dev/null -p "$authport" sasl x y
check "no password: exit 1 with the server's refusal" eval '[ "$ST" -eq 1 ] && has "$ERR" "NOAUTH" && [ "$(RA HEXISTS relay:sasl x)" = 0 ]'
run env -u REDISCLI_AUTH "$CTL" -c /dev/null -p "$authport" -a "$secret-wrong" sasl x y
check "wrong password: exit 1, the refusal named, the password not" \
    eval '[ "$ST" -eq 1 ] && has "$ERR" "WRONGPASS" && noleak && [ "$(RA HEXISTS relay:sasl x)" = 0 ]'
RA ACL SETUSER support on '>support pw' '~*' '+@all' >/dev/null
run env -u REDISCLI_AUTH "$CTL" -c /dev/null -p "$authport" --user support -a 'support pw' sasl u1 c1
check "--user NAME with a password: ACL login" eval '[ "$ST" -eq 0 ] && [ "$(RA HGET relay:sasl u1)" = c1 ] && noleak'
run env REDISCLI_AUTH='support pw' "$CTL" -c /dev/null -p "$authport" --user support sasl u2 c2
check "--user NAME with REDISCLI_AUTH" eval '[ "$ST" -eq 0 ] && [ "$(RA HGET relay:sasl u2)" = c2 ] && noleak'
run env REDISCLI_AUTH='support pw!' "$CTL" -c /dev/null -p "$authport" --user support sasl u3 c3
check "--user NAME, wrong password: exit 1, the password not shown" \
    eval '[ "$ST" -eq 1 ] && has "$ERR" "WRONGPASS" && noleak && [ "$(RA HEXISTS relay:sasl u3)" = 0 ]'
run env -u REDISCLI_AUTH "$CTL" -c /dev/null -p "$authport" --user support sasl u4 c4
check "--user NAME without any password: exit 2" eval '[ "$ST" -eq 2 ] && [ "$(RA HEXISTS relay:sasl u4)" = 0 ]'

# -a PASSWORD is blanked in the process list (ps, /proc/PID/cmdline) while
# the tool runs: a server that accepts and never answers keeps it waiting,
# and says when the tool has connected (its options long read by then).
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
c = s.accept()
open(sys.argv[2], "w").write("connected")
time.sleep(60)' "$tmp/silent.port" "$tmp/silent.conn" &
silent_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/silent.port" ] && break; sleep 0.05; done
"$CTL" -c /dev/null -p "$(cat "$tmp/silent.port")" -a "$secret" sasl z z >/dev/null 2>&1 &
ctl_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/silent.conn" ] && break; sleep 0.05; done
cmdline=$(tr '\0' ' ' <"/proc/$ctl_pid/cmdline" 2>/dev/null)
OUT=$cmdline
check "-a PASSWORD: blanked in /proc/PID/cmdline while it runs" \
    eval '[[ $cmdline == *" -a xxx"*" sasl z z "* ]] && [[ $cmdline != *s3cr3t* ]]'
kill "$ctl_pid" 2>/dev/null
wait "$ctl_pid" 2>/dev/null
kill "$silent_pid" 2>/dev/null
wait "$silent_pid" 2>/dev/null
silent_pid=""
kill "$auth_pid" 2>/dev/null
wait "$auth_pid" 2>/dev/null
auth_pid=""

finish
