#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# container-entrypoint.sh - runs Postfix and relaymilter in the CI container
# (postfix-example/Dockerfile); stops both when either stops or on SIGTERM.
#
# Environment:
#   REDIS_HOST   the Redis of relaymilter (default "redis", the compose service)
#   RELAYHOST    where Postfix relays accepted mail; empty (default): it is
#                discarded, so a CI run sends nothing anywhere
#   MYNETWORKS   clients Postfix relays for (default: loopback and the private
#                ranges a container network uses)
#   MYHOSTNAME   Postfix's host name (default relay.ci.test)
# Postfix and the milter log to the container's output.
set -eu
REDIS_HOST=${REDIS_HOST:-redis}
RELAYHOST=${RELAYHOST:-}
MYNETWORKS=${MYNETWORKS:-127.0.0.0/8 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16}

conf=/etc/relaymilter.conf
sed -i "s|^\(  host = \)\"[^\"]*\"|\1\"$REDIS_HOST\"|" "$conf"
relaymilter -c "$conf" -t

# Postfix: a relay for MYNETWORKS, nothing delivered locally, logs to stdout.
[ -f /etc/postfix/main.cf ] || cp /usr/share/postfix/main.cf.dist /etc/postfix/main.cf
postconf -e "myhostname=${MYHOSTNAME:-relay.ci.test}" "mydestination=" \
    "mynetworks=$MYNETWORKS" "inet_interfaces=all" "inet_protocols=ipv4" \
    "relay_domains=" "local_recipient_maps=" "alias_maps=" "alias_database=" \
    "smtpd_relay_restrictions=permit_mynetworks, reject_unauth_destination" \
    "maillog_file=/dev/stdout" "smtputf8_enable=no" "compatibility_level=3.6"
if [ -z "$RELAYHOST" ]; then
    postconf -e "default_transport=discard:" "relay_transport=discard:"
else
    postconf -e "relayhost=$RELAYHOST"
fi
# The milter lines exactly as the package's example has them.
grep -E '^[a-z_]+[[:space:]]*=' /usr/share/doc/relaymilter/examples/main.cf |
    while IFS= read -r line; do postconf -e "$line"; done
# Nothing chrooted: the container is the boundary.
postconf -F '*/*/chroot = n'
postfix check

setpriv --reuid=relaymilter --regid=relaymilter --init-groups \
    env RELAYMILTER_LOG_STDERR=1 relaymilter -c "$conf" &
milter=$!
postfix start-fg &
master=$!

stop() {
    postfix stop >/dev/null 2>&1 || true
    kill -TERM "$milter" 2>/dev/null || true
}
trap 'stop' TERM INT
# Whichever ends first ends the container.
wait -n "$milter" "$master" || true
stop
wait "$milter" "$master" 2>/dev/null || true
exit 1
