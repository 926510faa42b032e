#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_defaults.sh CTL MILTER - relaymilter-ctl and the daemon agree on every
# limit, default or configured: compare_defaults.py compares the limits of
# `relaymilter -c FILE -p` with the tool's usage table and --json, for an
# empty config (the built-in defaults) and for one that sets limits. Then
# the comparison itself must fail when either side is changed: a doctored
# -p output (a default changed on the daemon's side only, a field left
# out), a doctored table and a doctored JSON (the tool's side only).
# Run under test/lib/with-redis.
# shellcheck disable=SC2016,SC2034
set -u
CTL=${1:?usage: test_defaults.sh path/to/relaymilter-ctl path/to/relaymilter}
MILTER=${2:?usage: test_defaults.sh path/to/relaymilter-ctl path/to/relaymilter}
: "${RM_REDIS_PORT:?run under test/lib/with-redis}"
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=test/ctl/lib.sh
. "$here/lib.sh"
tmp=$(mktemp -d /tmp/rm-ctl-defaults.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# compare CONFIG: daemon -p, tool table and JSON for an unknown customer
outputs() {
    "$MILTER" -c "$1" -p >"$tmp/p.txt" &&
        "$CTL" -c "$1" -p "$RM_REDIS_PORT" usage nobody-x >"$tmp/usage.txt" 2>/dev/null &&
        "$CTL" -c "$1" -p "$RM_REDIS_PORT" --json usage nobody-x >"$tmp/usage.json" 2>/dev/null
}
compare() { python3 "$here/compare_defaults.py" "$@"; }

: >"$tmp/empty.conf"
run outputs "$tmp/empty.conf"
check "empty config: the daemon and the tool run" [ "$ST" -eq 0 ]
run compare "$tmp/p.txt" "$tmp/usage.txt" "$tmp/usage.json"
check "empty config: every built-in default agrees (16 fields)" \
    eval '[ "$ST" -eq 0 ] && has "$OUT" "16 fields compared, 0 differences"'

# the comparison must be able to fail, on either side
sed 's/^  messages_per_hour = 1000;/  messages_per_hour = 999;/' "$tmp/p.txt" >"$tmp/p-changed.txt"
run compare "$tmp/p-changed.txt" "$tmp/usage.txt" "$tmp/usage.json"
check "a default changed on the daemon's side only: found" \
    eval '[ "$ST" -eq 1 ] && ! cmp -s "$tmp/p.txt" "$tmp/p-changed.txt" && has "$OUT" "messages_per_hour"'
sed 's/^  action = "tempfail";/  action = "hold";/' "$tmp/p.txt" >"$tmp/p-action.txt"
run compare "$tmp/p-action.txt" "$tmp/usage.txt" "$tmp/usage.json"
check "a changed action on the daemon's side: found" eval '[ "$ST" -eq 1 ] && has "$OUT" "action"'
sed 's/^  sender_recipients_per_day = -1;/  sender_recipients_per_day = 0;/' "$tmp/p.txt" >"$tmp/p-unl.txt"
run compare "$tmp/p-unl.txt" "$tmp/usage.txt" "$tmp/usage.json"
check "unlimited against 0: found" eval '[ "$ST" -eq 1 ] && has "$OUT" "sender_recipients_per_day"'
sed '/^  own_domains_only = /d' "$tmp/p.txt" >"$tmp/p-less.txt"
run compare "$tmp/p-less.txt" "$tmp/usage.txt" "$tmp/usage.json"
check "a field the tool shows and the daemon does not: found" \
    eval '[ "$ST" -eq 1 ] && has "$OUT" "own_domains_only"'
sed 's/^  max_recipients = 100;/  max_recipients = 100;\n  max_bananas = 3;/' "$tmp/p.txt" >"$tmp/p-more.txt"
run compare "$tmp/p-more.txt" "$tmp/usage.txt" "$tmp/usage.json"
check "a field the daemon has and the tool lacks: found" eval '[ "$ST" -eq 1 ] && has "$OUT" "max_bananas"'
sed 's/sender_messages_per_hour 500 /sender_messages_per_hour 501 /' "$tmp/usage.txt" >"$tmp/usage-changed.txt"
run compare "$tmp/p.txt" "$tmp/usage-changed.txt" "$tmp/usage.json"
check "a default changed in the tool's table only: found" \
    eval '[ "$ST" -eq 1 ] && ! cmp -s "$tmp/usage.txt" "$tmp/usage-changed.txt" && has "$OUT" "sender_messages_per_hour"'
awk '$1 == "customer" && $3 == "recipients_per_day" { sub(/50000/, "50001") } { print }' \
    "$tmp/usage.txt" >"$tmp/usage-row.txt"
run compare "$tmp/p.txt" "$tmp/usage-row.txt" "$tmp/usage.json"
check "a default changed in a customer row of the table: found" \
    eval '[ "$ST" -eq 1 ] && ! cmp -s "$tmp/usage.txt" "$tmp/usage-row.txt" && has "$OUT" "recipients_per_day"'
python3 -c '
import json, sys
d = json.load(open(sys.argv[1])); d["limits"]["suspended"]["value"] = 1
json.dump(d, open(sys.argv[2], "w"))' "$tmp/usage.json" "$tmp/usage-changed.json"
run compare "$tmp/p.txt" "$tmp/usage.txt" "$tmp/usage-changed.json"
check "a default changed in the tool's JSON only: found" eval '[ "$ST" -eq 1 ] && has "$OUT" "suspended"'

# a config that sets limits: the tool reads it as the daemon does
cat >"$tmp/set.conf" <<EOF
limits = { messages_per_minute = 7; sender_messages_per_day = 12345678901L;
           action = "hold"; own_domains_only = true; max_recipients = -1; };
EOF
run outputs "$tmp/set.conf"
check "a config with limits: the daemon and the tool run" [ "$ST" -eq 0 ]
run compare "$tmp/p.txt" "$tmp/usage.txt" "$tmp/usage.json"
check "a config with limits: every field agrees" \
    eval '[ "$ST" -eq 0 ] && grep -q "sender_messages_per_day 12345678901 (limits)" "$tmp/usage.txt" && grep -q "^max_recipients unlimited (limits), action hold (limits)" "$tmp/usage.txt"'

finish
