#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# container-entrypoint.sh - runs Postfix and relaymilter in the CI container
# (postfix-example/Dockerfile); stops both when either stops or on SIGTERM.
#
# Environment (the defaults suit compose.yaml's own network):
#   REDIS_HOST       the Redis of relaymilter (default "redis", the compose
#   REDIS_PORT       service; port 6379)
#   RELAYHOST        where Postfix relays accepted mail; empty (default): it is
#                    discarded, so a CI run sends nothing anywhere
#   MYNETWORKS       clients Postfix relays for without a login (default:
#                    loopback and the private ranges a container network uses)
#   MYHOSTNAME       Postfix's host name (default relay.ci.test)
#   SASL_USERS       "LOGIN:PASSWORD ..." (space-separated): Postfix offers SMTP
#                    AUTH (PLAIN, LOGIN; Cyrus SASL with a sasldb) for these
#                    accounts and relays for them; empty (default): no AUTH
#   SMTP_PORT        port of Postfix's smtpd (default 25)
#   INET_INTERFACES  addresses Postfix listens on (default all)
#   MILTER_PORT      port of relaymilter on 127.0.0.1 (default 8890)
#   METRICS_LISTEN   relaymilter's metrics.listen (default 0.0.0.0:9890)
# With host networking (the container shares the host's addresses) give
# loopback addresses and free ports: see doc/CI.
# Postfix and the milter log to the container's output.
set -eu
REDIS_HOST=${REDIS_HOST:-redis}
REDIS_PORT=${REDIS_PORT:-6379}
RELAYHOST=${RELAYHOST:-}
MYNETWORKS=${MYNETWORKS:-127.0.0.0/8 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16}
SASL_USERS=${SASL_USERS:-}
SMTP_PORT=${SMTP_PORT:-25}
MILTER_PORT=${MILTER_PORT:-8890}

say() { echo "container-entrypoint: $*" >&2; }

# relaymilter.conf: the value of KEY (alone on its line) becomes VALUE.
conf=/etc/relaymilter.conf
set_conf() {
    sed -i "s|^\([[:space:]]*$1[[:space:]]*=[[:space:]]*\)[^;]*;|\1$2;|" "$conf"
    grep -q "^[[:space:]]*$1[[:space:]]*=[[:space:]]*$2;" "$conf" ||
        { say "cannot set $1 in $conf"; exit 1; }
}
set_conf socket "\"inet:$MILTER_PORT@127.0.0.1\""
set_conf host "\"$REDIS_HOST\""
set_conf port "$REDIS_PORT"
set_conf listen "\"${METRICS_LISTEN:-0.0.0.0:9890}\""
relaymilter -c "$conf" -t

# Postfix: a relay for MYNETWORKS (and SASL logins), nothing delivered
# locally, logs to stdout. Debian's package leaves main.cf to us
# ("No configuration"): Postfix's built-in defaults plus these lines.
[ -f /etc/postfix/main.cf ] || : >/etc/postfix/main.cf
postconf -e "myhostname=${MYHOSTNAME:-relay.ci.test}" "mydestination=" \
    "mynetworks=$MYNETWORKS" "inet_interfaces=${INET_INTERFACES:-all}" \
    "inet_protocols=ipv4" "relay_domains=" "local_recipient_maps=" "alias_maps=" \
    "alias_database=" "maillog_file=/dev/stdout" "smtputf8_enable=no" \
    "compatibility_level=3.6" \
    "smtpd_relay_restrictions=permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"
if [ -z "$RELAYHOST" ]; then
    postconf -e "default_transport=discard:" "relay_transport=discard:"
else
    postconf -e "relayhost=$RELAYHOST"
fi
if [ "$SMTP_PORT" != 25 ]; then
    postconf -MX smtp/inet
    postconf -M "$SMTP_PORT/inet=$SMTP_PORT inet n - n - - smtpd"
fi
# The milter lines exactly as the package's example has them, on MILTER_PORT.
grep -E '^[a-z_]+[[:space:]]*=' /usr/share/doc/relaymilter/examples/main.cf |
    while IFS= read -r line; do postconf -e "$line"; done
postconf -e "smtpd_milters=inet:127.0.0.1:$MILTER_PORT"
# Nothing chrooted: the container is the boundary.
postconf -F '*/*/chroot = n'

# SMTP AUTH: Postfix's smtpd reads $config_directory/sasl/smtpd.conf (Cyrus
# SASL). Without a realm in the login, Cyrus looks it up in the realm of
# myhostname, so the accounts are made there. smtpd runs as the user postfix
# (not chrooted): the sasldb must be readable by it.
if [ -n "$SASL_USERS" ]; then
    sasldb=/etc/sasldb2 realm=$(postconf -h myhostname)
    rm -f "$sasldb"
    for account in $SASL_USERS; do
        case $account in *:*) ;; *) say "SASL_USERS: \"$account\" is not LOGIN:PASSWORD"; exit 1 ;; esac
        printf '%s' "${account#*:}" |
            saslpasswd2 -p -c -f "$sasldb" -u "$realm" "${account%%:*}"
    done
    chown root:postfix "$sasldb"
    chmod 0640 "$sasldb"
    mkdir -p /etc/postfix/sasl
    printf '%s\n' "pwcheck_method: auxprop" "auxprop_plugin: sasldb" \
        "mech_list: PLAIN LOGIN" "sasldb_path: $sasldb" >/etc/postfix/sasl/smtpd.conf
    postconf -e "smtpd_sasl_auth_enable=yes" "smtpd_sasl_type=cyrus" "smtpd_sasl_path=smtpd"
else
    postconf -e "smtpd_sasl_auth_enable=no"
fi

# Postfix logs to its postlog service, which runs only once Postfix does: a
# check that fails now would say nothing. Under script(1) stderr is a
# terminal, where Postfix commands also write their messages.
if ! postfix check; then
    say "postfix check failed:"
    script -qec "postfix check" /dev/null >&2 || true
    exit 1
fi

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
