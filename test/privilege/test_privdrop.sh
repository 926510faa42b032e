#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# The daemon drops root to milter.user after binding, keeps serving, and can
# reload a config that only root may read (SIGHUP): edits made in place are
# applied, a replaced file is refused with a clear error and the old
# configuration stays in force. A unix socket gets milter.socket_mode/group.
# Runs as root, beside a private redis-server (test/lib/with-redis).
set -u
milter=$1
dir=$(mktemp -d /tmp/rm-priv.XXXXXX)
pid=""
fails=0
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
check() { # check DESCRIPTION COMMAND...
    if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi
}
wait_log() { # wait_log PATTERN: up to 5 s
    for _ in $(seq 1 50); do grep -q "$1" "$dir/log" && return 0; sleep 0.1; done
    return 1
}
if [ "$(id -u)" -ne 0 ]; then echo "skipped: needs root"; exit 77; fi
user=nobody
id "$user" >/dev/null 2>&1 || { echo "skipped: no user $user"; exit 77; }
chmod 755 "$dir"
write_conf() { # write_conf LOGLEVEL
    cat > "$dir/conf.tmp" <<CONF
milter = { socket = "unix:$dir/milter.sock"; user = "$user"; socket_mode = "0600"; };
redis = { host = "127.0.0.1"; port = $RM_REDIS_PORT; };
log = { level = "$1"; };
CONF
}
write_conf info
install -m 0600 -o root -g root "$dir/conf.tmp" "$dir/relaymilter.conf"
RELAYMILTER_LOG_STDERR=1 "$milter" -c "$dir/relaymilter.conf" 2> "$dir/log" &
pid=$!
check "daemon starts" wait_log "listening on unix:$dir/milter.sock"
check "runs as $user" test "$(ps -o user= -p "$pid" | tr -d ' ')" = "$user"
check "socket owned by $user, mode 0600" \
    test "$(stat -c '%U %a' "$dir/milter.sock")" = "$user 600"
check "config is root-only" test "$(stat -c '%U %a' "$dir/relaymilter.conf")" = "root 600"

# Edit in place (same inode), as `cat > file` or most config tools do.
write_conf debug
cat "$dir/conf.tmp" > "$dir/relaymilter.conf"
kill -HUP "$pid"
check "in-place edit of a root-only file is reloaded" wait_log "configuration reloaded"

# Replace the file (new inode), as many editors do.
write_conf warn
install -m 0600 -o root -g root "$dir/conf.tmp" "$dir/relaymilter.conf.new"
mv "$dir/relaymilter.conf.new" "$dir/relaymilter.conf"
kill -HUP "$pid"
check "a replaced root-only file is refused, not read stale" \
    wait_log "reload failed.*replaced by a file this user cannot read"
check "daemon still running" kill -0 "$pid"
grep -q "password" "$dir/log" && { echo "FAIL: log mentions a password"; fails=$((fails + 1)); }
echo "$fails failed"
[ "$fails" -eq 0 ]
