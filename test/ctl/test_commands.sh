#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_commands.sh CTL KEYNAME - relaymilter-ctl's reset, whois, notes on
# unknown names, --json, the "which Redis" line and the customer-name rules,
# against a private redis-server (run under test/lib/with-redis).
#
# Key names come from KEYNAME (test/lib/rm_keys.c, on policy/keys.h), and
# counters are written by relay.lua's own charge operation, so these checks
# follow the key and counter layout wherever it is changed. Redis MONITOR
# shows the commands the tool sends (SCAN, never KEYS; XADD with MAXLEN ~).
#
# Checks are written as eval 'single-quoted tests', expanded when they run.
# shellcheck disable=SC2016,SC2034
set -u
CTL=${1:?usage: test_commands.sh path/to/relaymilter-ctl path/to/rm-keys}
KEYNAME=${2:?usage: test_commands.sh path/to/relaymilter-ctl path/to/rm-keys}
: "${RM_REDIS_PORT:?run under test/lib/with-redis}"
: "${RM_REDIS_SOCK:?run under test/lib/with-redis}"
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=test/ctl/lib.sh
. "$here/lib.sh"
LUA=$(cat "$here/../../policy/relay.lua")

tmp=$(mktemp -d /tmp/rm-ctl-cmd.XXXXXX)
mon_pid=""
cleanup() {
    [ -z "$mon_pid" ] || { kill "$mon_pid" 2>/dev/null; wait "$mon_pid" 2>/dev/null; }
    rm -rf "$tmp"
}
trap cleanup EXIT

# K customer W CUSTOMER | sender W CUSTOMER SENDER | limits CUSTOMER | sasl | events
K() {
    case $1 in
    customer) "$KEYNAME" counter relay: "$2" "$3" ;;
    sender) "$KEYNAME" counter relay: "$2" "$3" "$4" ;;
    *) "$KEYNAME" "$1" relay: "${@:2}" ;;
    esac
}
declare -A WMS=([m]=60000 [h]=3600000 [d]=86400000)
# charge CUSTOMER [SENDER]: one message of one recipient in every window, by
# relay.lua's charge with no limit (as the milter charges at DATA)
charge() {
    local keys=() args=() w
    for w in m h d; do
        keys+=("$(K customer "$w" "$1")")
        args+=("${WMS[$w]}" -1 -1 m r)
        if [ $# -gt 1 ]; then
            keys+=("$(K sender "$w" "$1" "$2")")
            args+=("${WMS[$w]}" -1 -1 m r)
        fi
    done
    R EVAL "$LUA" "${#keys[@]}" "${keys[@]}" charge 1 "${#keys[@]}" "${args[@]}" 0 "" "" "" "" "" "" \
        >/dev/null
}
# counters CUSTOMER [SENDER]: how many of its counter keys exist (0 to 3)
counters() {
    local n=0 w k
    for w in m h d; do
        if [ $# -gt 1 ]; then k=$(K sender "$w" "$1" "$2"); else k=$(K customer "$w" "$1"); fi
        n=$((n + $(R EXISTS "$k")))
    done
    echo "$n"
}
# monitor CMD...: run CMD while redis-cli MONITOR records into $tmp/monitor.log
monitor() {
    : >"$tmp/monitor.log"
    "$REAL_CLI" -p "$RM_REDIS_PORT" MONITOR >"$tmp/monitor.log" &
    mon_pid=$!
    sleep 0.3
    run "$@"
    sleep 0.3
    kill "$mon_pid" 2>/dev/null
    wait "$mon_pid" 2>/dev/null
    mon_pid=""
}
json() { python3 -c "import json, sys; d = json.load(sys.stdin); $1" <<<"$OUT"; }

cat >"$tmp/own.conf" <<EOF
redis = { host = "127.0.0.1"; port = $RM_REDIS_PORT; events_maxlen = 50; };
limits = { messages_per_hour = 17; };
sasl = { realm = "Relay.Test"; unknown = "own"; };
customers = (
  { name = "acme"; sasl = [ "Carol" ]; limits = { recipients_per_day = 7; }; },
  { name = "beta"; }
);
EOF
sed 's/unknown = "own"/unknown = "refuse"/' "$tmp/own.conf" >"$tmp/refuse.conf"
sed 's/unknown = "own"/unknown = "tempfail"/' "$tmp/own.conf" >"$tmp/tempfail.conf"
sed 's/events_maxlen = 50/events_maxlen = 0/' "$tmp/own.conf" >"$tmp/noevents.conf"
ctl() { "$CTL" -c "$tmp/own.conf" "$@"; }
EV=$(K events)

# ---------------------------------------------------------------- reset
R FLUSHALL >/dev/null
charge acme bob@acme.example
charge acme eve@acme.example
charge acme2 bob@acme.example
charge beta
check "reset setup: counters written by relay.lua" \
    eval '[ "$(counters acme)" = 3 ] && [ "$(counters acme bob@acme.example)" = 3 ] && [ "$(counters acme2 bob@acme.example)" = 3 ]'

run ctl reset acme '<Bob@ACME.example>' </dev/null
check "reset one sender (any spelling): its counters go, no question asked" \
    eval '[ "$ST" -eq 0 ] && [ "$(counters acme bob@acme.example)" = 0 ] && [ "$(counters acme eve@acme.example)" = 3 ] && [ "$(counters acme)" = 3 ] && [ "$(counters acme2 bob@acme.example)" = 3 ]'
check "reset one sender: says what it did" eval 'has "$OUT" "3 counter keys deleted" && ! has "$ERR" "[y/N]"'
run ctl events 1
check "reset one sender: an event, as the milter writes them" \
    eval '[[ $OUT =~ ^[0-9-]+\ [0-9:]+\ UTC\ \ NOQUEUE\ \ customer=acme\ login=-\ sender=\<bob@acme\.example\>\ recipients=\ reason=reset\ action=reset$ ]]'

monitor ctl reset acme </dev/null
check "reset a customer: its own and every sender's counters go, nobody else's" \
    eval '[ "$ST" -eq 0 ] && [ "$(counters acme)" = 0 ] && [ "$(counters acme eve@acme.example)" = 0 ] && [ "$(counters acme2 bob@acme.example)" = 3 ] && [ "$(counters acme2)" = 3 ] && [ "$(counters beta)" = 3 ]'
check "reset a customer: senders found by SCAN MATCH, never KEYS" \
    eval 'grep -q "\"SCAN\" \"0\" \"MATCH\"" "$tmp/monitor.log" && ! grep -qi "\"KEYS\"" "$tmp/monitor.log"'
check "reset a customer: the event capped with MAXLEN ~ redis.events_maxlen" \
    eval 'grep -q "\"XADD\" \"$EV\" \"MAXLEN\" \"~\" \"50\" \"\\*\" \"time\" \"[0-9]*\" \"queue_id\" \"\" \"customer\" \"acme\" \"login\" \"-\" \"sender\" \"\" \"recipients\" \"\" \"reason\" \"reset\" \"action\" \"reset\"" "$tmp/monitor.log"'
n_events=$(R XLEN "$EV")
run ctl reset acme </dev/null
check "reset with nothing to clear: exit 0, no event" \
    eval '[ "$ST" -eq 0 ] && has "$OUT" "nothing to reset" && [ "$(R XLEN "$EV")" = "$n_events" ]'
charge beta
monitor "$CTL" -c "$tmp/noevents.conf" reset beta </dev/null
check "reset with events_maxlen = 0: done, no XADD" \
    eval '[ "$ST" -eq 0 ] && [ "$(counters beta)" = 0 ] && ! grep -q "\"XADD\"" "$tmp/monitor.log"'

charge acme
run python3 "$here/with_tty.py" n "$CTL" -c "$tmp/own.conf" reset acme
check "reset from a terminal: asks, and 'n' leaves everything (exit 2)" \
    eval '[ "$ST" -eq 2 ] && has "$ERR" "[y/N]" && [ "$(counters acme)" = 3 ]'
run python3 "$here/with_tty.py" y "$CTL" -c "$tmp/own.conf" reset acme
check "reset from a terminal: 'y' resets" eval '[ "$ST" -eq 0 ] && [ "$(counters acme)" = 0 ]'
charge acme
run python3 "$here/with_tty.py" "" "$CTL" -c "$tmp/own.conf" -y reset acme
check "reset -y from a terminal: no question" eval '[ "$ST" -eq 0 ] && ! has "$ERR" "[y/N]" && [ "$(counters acme)" = 0 ]'
charge acme
run python3 "$here/with_tty.py" "" "$CTL" -c "$tmp/own.conf" --yes reset acme
check "reset --yes from a terminal: no question" eval '[ "$ST" -eq 0 ] && [ "$(counters acme)" = 0 ]'

charge acme
run ctl reset acme 'bad sender'$'\001'
check "reset: a sender with a control character is refused (exit 2)" eval '[ "$ST" -eq 2 ] && [ "$(counters acme)" = 3 ]'
run ctl reset 'ac{me}' </dev/null
check "reset: a name with braces is refused (exit 2)" eval '[ "$ST" -eq 2 ] && has "$ERR" "{"'
charge 'ip:192.0.2.1'
run ctl reset 'ip:192.0.2.1' </dev/null
check "reset: ip:ADDRESS is a customer name too" eval '[ "$ST" -eq 0 ] && [ "$(counters ip:192.0.2.1)" = 0 ]'

# ---------------------------------------------------------------- customer names
names_before=$(R --scan | sort)
refused_name() {
    run ctl "$@"
    check "refused customer name: $(printf '%q ' "$@")(exit 2, nothing written)" \
        eval '[ "$ST" -eq 2 ] && [ "$(R --scan | sort)" = "$names_before" ]'
}
refused_name limits 'a{b' messages_per_hour 5
refused_name limits 'a}b'
refused_name suspend 'x{'
refused_name resume '}'
refused_name usage '{acme}'
refused_name own ok.example 'a{b}'
refused_name disown ok.example 'a}'
refused_name reset 'a{'
refused_name suspend $'a\tb'
refused_name limits $'a\nb' messages_per_hour 5
refused_name limits $'a\x7fb' messages_per_hour 5
run ctl limits 'ip:192.0.2.9' messages_per_hour 5
check "limits ip:ADDRESS: allowed (a real customer's name)" \
    eval '[ "$ST" -eq 0 ] && [ "$(R HGET "$(K limits ip:192.0.2.9)" messages_per_hour)" = 5 ]'
run ctl suspend 'sasl:bob@relay.test'
check "suspend sasl:LOGIN: allowed" eval '[ "$ST" -eq 0 ] && [ "$(R HGET "$(K limits sasl:bob@relay.test)" suspended)" = 1 ]'

# ---------------------------------------------------------------- sasl, unsasl
SASL=$(K sasl)
run ctl sasl Dave acme
check "sasl: stores the canonical login (lower case, @sasl.realm)" \
    eval '[ "$ST" -eq 0 ] && [ "$(R HGET "$SASL" dave@relay.test)" = acme ] && [ "$(R HEXISTS "$SASL" Dave)" = 0 ]'
run ctl unsasl DAVE@Relay.Test
check "unsasl: removes the canonical login" eval '[ "$ST" -eq 0 ] && [ "$(R HEXISTS "$SASL" dave@relay.test)" = 0 ]'
for bad in 'ip:192.0.2.1' 'sasl:x' 'a{b' 'c}' ''; do
    run ctl sasl dave "$bad"
    check "sasl: customer '$bad' refused (exit 2, nothing written)" \
        eval '[ "$ST" -eq 2 ] && [ "$(R HEXISTS "$SASL" dave@relay.test)" = 0 ]'
done
run ctl sasl '' acme
check "sasl: an empty login is refused" eval '[ "$ST" -eq 2 ]'

# ---------------------------------------------------------------- whois
R DEL "$SASL" >/dev/null
R HSET "$SASL" dave@relay.test beta gina@relay.test 'ip:192.0.2.7' hank@relay.test 'x{y}' >/dev/null
run ctl whois Dave
check "whois: the Redis hash, by the canonical login" \
    eval '[ "$ST" -eq 0 ] && has "$OUT" "canonical: dave@relay.test (sasl.realm relay.test)" && has "$OUT" "customer:  beta" && has "$OUT" "because:   redis hash"'
run ctl whois carol
check "whois: a customers[].sasl entry" \
    eval '[ "$ST" -eq 0 ] && has "$OUT" "canonical: carol@relay.test" && has "$OUT" "customer:  acme" && has "$OUT" "because:   config entry"'
run ctl whois CAROL@RELAY.TEST
check "whois: any spelling of the login" eval '[ "$ST" -eq 0 ] && has "$OUT" "customer:  acme"'
run ctl whois frank
check "whois: sasl.unknown = own makes the customer sasl:LOGIN" \
    eval '[ "$ST" -eq 0 ] && has "$OUT" "customer:  sasl:frank@relay.test" && has "$OUT" "sasl.unknown = own"'
run "$CTL" -c "$tmp/refuse.conf" whois frank
check "whois: sasl.unknown = refuse" \
    eval '[ "$ST" -eq 0 ] && has "$OUT" "customer:  none: its mail is refused" && has "$OUT" "sasl.unknown = refuse"'
run "$CTL" -c "$tmp/tempfail.conf" whois frank
check "whois: sasl.unknown = tempfail" \
    eval '[ "$ST" -eq 0 ] && has "$OUT" "refused for now" && has "$OUT" "sasl.unknown = tempfail"'
run "$CTL" -c "$tmp/refuse.conf" whois carol
check "whois: a config entry goes before sasl.unknown" eval '[ "$ST" -eq 0 ] && has "$OUT" "customer:  acme"'
run ctl whois gina
check "whois: a hash value naming ip:... is ignored, as the milter does" \
    eval '[ "$ST" -eq 0 ] && has "$OUT" "ignored:" && has "$OUT" "ip:192.0.2.7" && has "$OUT" "customer:  sasl:gina@relay.test"'
run ctl whois hank
check "whois: a hash value with braces is ignored" \
    eval '[ "$ST" -eq 0 ] && has "$OUT" "ignored:" && has "$OUT" "customer:  sasl:hank@relay.test"'
run "$CTL" -c /dev/null -p "$RM_REDIS_PORT" whois Dave@Relay.Test
check "whois without sasl.realm: lower case only" \
    eval '[ "$ST" -eq 0 ] && has "$OUT" "canonical: dave@relay.test" && ! has "$OUT" "sasl.realm"'
run ctl whois ''
check "whois: an empty login is refused (exit 2)" eval '[ "$ST" -eq 2 ]'
run ctl whois $'a\tb'
check "whois: a login with a control character is refused (exit 2)" eval '[ "$ST" -eq 2 ]'

# ---------------------------------------------------------------- unknown names
R FLUSHALL >/dev/null
note="is not a customer the config or Redis knows"
run ctl usage nobody-here
check "usage of an unknown name: exit 0, the table, and a note on stderr" \
    eval '[ "$ST" -eq 0 ] && [ "$(grep -c "^customer " <<<"$OUT")" = 6 ] && has "$ERR" "$note" && ! has "$OUT" "$note"'
run ctl limits nobody-here
check "limits of an unknown name: no overrides, and the note" \
    eval '[ "$ST" -eq 0 ] && has "$OUT" "no overrides" && has "$ERR" "$note"'
run ctl usage acme
check "usage of a configured customer: no note" eval '[ "$ST" -eq 0 ] && [ -z "$ERR" ]'
run ctl limits beta
check "limits of a configured customer: no note" eval '[ "$ST" -eq 0 ] && [ -z "$ERR" ]'
R HSET "$(K limits hashonly)" messages_per_hour 5 >/dev/null
run ctl usage hashonly
check "usage: a limits hash is known" eval '[ "$ST" -eq 0 ] && ! has "$ERR" "$note"'
charge counted
run ctl usage counted
check "usage: counters are known" eval '[ "$ST" -eq 0 ] && ! has "$ERR" "$note"'
run ctl limits counted
check "limits: counters are known" eval '[ "$ST" -eq 0 ] && ! has "$ERR" "$note"'
R EVAL "$LUA" 1 "$(K sender h senderonly s@x.example)" charge 1 1 3600000 -1 -1 m r 0 "" "" "" "" "" "" \
    >/dev/null
run ctl limits senderonly
check "limits: a sender's counter is known" eval '[ "$ST" -eq 0 ] && ! has "$ERR" "$note"'
R HSET "$SASL" someone@relay.test mapped >/dev/null
run ctl usage mapped
check "usage: a name the SASL hash maps to is known" eval '[ "$ST" -eq 0 ] && ! has "$ERR" "$note"'
run ctl limits mapped
check "limits: a name the SASL hash maps to is known" eval '[ "$ST" -eq 0 ] && ! has "$ERR" "$note"'
run ctl limits mappe
check "limits: a near miss is not" eval '[ "$ST" -eq 0 ] && has "$ERR" "$note"'

# ---------------------------------------------------------------- --json
charge acme bob@acme.example
R HSET "$(K limits acme)" messages_per_minute 9 bogus_field 1 action drop >/dev/null
run ctl --json usage acme
check "usage --json: one JSON document" eval '[ "$ST" -eq 0 ] && json "pass"'
check "usage --json: fields" eval 'json "
assert d[\"customer\"] == \"acme\" and d[\"known\"] is True and d[\"time_ms\"] > 0, d
lim = d[\"limits\"]
assert len(lim) == 16, lim
assert lim[\"messages_per_minute\"] == {\"value\": 9, \"source\": \"redis\"}, lim
assert lim[\"messages_per_hour\"] == {\"value\": 17, \"source\": \"limits\"}, lim
assert lim[\"recipients_per_day\"] == {\"value\": 7, \"source\": \"customers[]\"}, lim
assert lim[\"action\"] == {\"value\": \"tempfail\", \"source\": \"built-in\"}, lim
assert lim[\"sender_messages_per_minute\"][\"value\"] == -1, lim
rows = d[\"counters\"]
assert len(rows) == 12, rows
r = [x for x in rows if x[\"scope\"] == \"sender\" and x[\"field\"] == \"sender_messages_per_hour\"][0]
assert r[\"sender\"] == \"bob@acme.example\" and r[\"used\"] == 1 and r[\"current\"] == 1, r
assert r[\"limit\"] == 500 and r[\"garbage\"] is False and 0 < r[\"resets_in_ms\"] <= 7200000, r
c = [x for x in rows if x[\"scope\"] == \"customer\" and x[\"window\"] == \"minute\"]
assert [x[\"field\"] for x in c] == [\"messages_per_minute\", \"recipients_per_minute\"], c
assert c[0][\"sender\"] is None and c[0][\"limit\"] == 9 and c[0][\"source\"] == \"redis\", c
assert any(\"bogus_field\" in w for w in d[\"warnings\"]) and any(\"drop\" in w for w in d[\"warnings\"]), d
"'
run ctl --json usage nobody-here
check "usage --json of an unknown name: known false" eval '[ "$ST" -eq 0 ] && json "assert d[\"known\"] is False"'
R HSET "$(K limits acme)" $'ctl\x01\xff' $'\xfe' >/dev/null
run ctl --json limits acme
check "limits --json: overrides, each marked" eval '[ "$ST" -eq 0 ] && json "
o = {x[\"field\"]: x for x in d[\"overrides\"]}
assert d[\"customer\"] == \"acme\" and d[\"known\"] is True and d[\"key\"], d
assert o[\"messages_per_minute\"][\"value\"] == \"9\" and o[\"messages_per_minute\"][\"ignored\"] is None, o
assert o[\"bogus_field\"][\"ignored\"] and o[\"action\"][\"ignored\"], o
assert o[\"ctl\\x01\\ufffd\"][\"value\"] == \"\\ufffd\", o
"'
run ctl limits acme
check "limits (text): ignored fields are marked, control characters shown escaped" \
    eval '[[ $OUT =~ bogus_field\ +1\ +\(not\ a\ limit\ field ]] && [[ $OUT =~ action\ +drop\ +\(malformed ]] && has "$OUT" "ctl\\x01" && [[ $OUT != *$'\''\x01'\''* ]]'
run ctl --json whois Dave
check "whois --json" eval '[ "$ST" -eq 0 ] && json "
assert d == {\"login\": \"Dave\", \"canonical\": \"dave@relay.test\", \"customer\": \"sasl:dave@relay.test\",
             \"source\": \"sasl.unknown\", \"rule\": \"own\", \"ignored_hash_value\": None,
             \"ignored_reason\": None, \"refused\": False}, d
"'
R HSET "$SASL" ivy@relay.test 'sasl:ivy' >/dev/null
run "$CTL" -c "$tmp/refuse.conf" --json whois ivy
check "whois --json: refused, the ignored hash value and why" eval '[ "$ST" -eq 0 ] && json "
assert d[\"customer\"] is None and d[\"refused\"] is True and d[\"rule\"] == \"refuse\", d
assert d[\"ignored_hash_value\"] == \"sasl:ivy\" and \"reserved\" in d[\"ignored_reason\"], d
"'
R DEL "$EV" >/dev/null
R XADD "$EV" '*' time 1700000000 queue_id 4XyZ customer acme login bob@relay.test sender b@acme.example \
    recipients 'a@x.example' reason messages_per_hour action tempfail >/dev/null
R XADD "$EV" '*' queue_id '' customer beta sender '' recipients '' reason suspended action reject >/dev/null
run ctl --json events
check "events --json: newest first, every field" eval '[ "$ST" -eq 0 ] && json "
e = d[\"events\"]
assert len(e) == 2, e
assert e[1] == {\"id\": e[1][\"id\"], \"time\": 1700000000, \"time_utc\": \"2023-11-14 22:13:20\",
                \"queue_id\": \"4XyZ\", \"customer\": \"acme\", \"login\": \"bob@relay.test\",
                \"sender\": \"b@acme.example\", \"recipients\": \"a@x.example\",
                \"reason\": \"messages_per_hour\", \"action\": \"tempfail\"}, e[1]
assert e[0][\"login\"] is None and e[0][\"customer\"] == \"beta\" and e[0][\"time\"] > 1700000000, e[0]
"'
R DEL "$EV" >/dev/null
run ctl --json events 5
check "events --json: none" eval '[ "$ST" -eq 0 ] && json "assert d == {\"events\": []}"'

# ---------------------------------------------------------------- which Redis
run env RELAYMILTER_CONF="$tmp/no-such.conf" "$CTL" -p "$RM_REDIS_PORT" events
check "no config file: one line on stderr names the Redis used" \
    eval '[ "$ST" -eq 0 ] && [ "$(wc -l <<<"$ERR")" = 1 ] && has "$ERR" "no-such.conf" && has "$ERR" "Redis at 127.0.0.1:$RM_REDIS_PORT, db 0, prefix \"relay:\"" && [ -z "$OUT" ]'
run env RELAYMILTER_CONF="$tmp/no-such.conf" "$CTL" -s "$RM_REDIS_SOCK" -n 3 -P other: events
check "no config file: the socket, db and prefix of the flags" \
    eval '[ "$ST" -eq 0 ] && has "$ERR" "Redis at unix socket $RM_REDIS_SOCK, db 3, prefix \"other:\""'
run env RELAYMILTER_CONF="$tmp/own.conf" "$CTL" events
check "RELAYMILTER_CONF names the default config: no such line" eval '[ "$ST" -eq 0 ] && [ -z "$ERR" ]'
run ctl events
check "with -c FILE: no such line" eval '[ "$ST" -eq 0 ] && [ -z "$ERR" ]'
printf 'redis = { port = 1; bogus = 2; };\n' >"$tmp/bad.conf"
run env RELAYMILTER_CONF="$tmp/bad.conf" "$CTL" events
check "a broken default config is an error, not a fallback (exit 2, FILE:LINE)" \
    eval '[ "$ST" -eq 2 ] && has "$ERR" "bad.conf:1:" && has "$ERR" "bogus"'

finish
