#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_install.sh SOURCE_DIR BUILD_DIR
#
# `cmake --install` into a DESTDIR under a temp dir, twice (prefix /usr as a
# package would, and the default prefix), then checks what landed there:
# the daemon and relaymilter-ctl run, the sample config passes `relaymilter -t`
# and nothing is written to /etc (what the pages say is test_docs.py's
# business); the systemd unit has the directives INSTALL promises and passes
# `systemd-analyze verify` (skipped with a message where that is missing).
set -u
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
tmp=$(mktemp -d /tmp/rm-ops-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
passes=0

ok() { passes=$((passes + 1)); echo "ok: $*"; }
fail() { fails=$((fails + 1)); echo "FAIL: $*"; }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then ok "$what"; else fail "$what"; sed 's/^/    /' "$tmp/out"; fi
}

# ---- install with prefix /usr ---------------------------------------------
d=$tmp/usr-root
if ! DESTDIR=$d cmake --install "$build" --prefix /usr >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log"
    echo "FAIL: cmake --install --prefix /usr"
    exit 1
fi
ok "cmake --install --prefix /usr into DESTDIR"

for f in usr/sbin/relaymilter usr/bin/relaymilter-ctl; do
    check "$f is an executable file" test -f "$d/$f" -a -x "$d/$f"
done
for f in usr/share/doc/relaymilter/examples/relaymilter.conf \
         usr/share/doc/relaymilter/examples/main.cf \
         usr/share/doc/relaymilter/examples/master.cf \
         usr/share/doc/relaymilter/examples/sendmail.mc \
         usr/share/doc/relaymilter/examples/relaymilter.rules.yml \
         usr/share/doc/relaymilter/examples/relaymilter-dashboard.json \
         usr/share/doc/relaymilter/README \
         usr/share/doc/relaymilter/INSTALL \
         usr/share/doc/relaymilter/SECURITY \
         usr/share/doc/relaymilter/OPERATIONS \
         usr/share/doc/relaymilter/PERFORMANCE \
         usr/share/doc/relaymilter/CLUSTER \
         usr/share/doc/relaymilter/CI \
         usr/share/doc/relaymilter/MONITORING \
         usr/share/man/man8/relaymilter.8 \
         usr/share/man/man5/relaymilter.conf.5 \
         usr/share/man/man1/relaymilter-ctl.1 \
         lib/systemd/system/relaymilter.service; do
    check "$f installed, not executable" test -f "$d/$f" -a ! -x "$d/$f"
done
check "nothing installed under /etc (the admin's config is never replaced)" \
    test ! -e "$d/etc"
check "the example is the sample config" \
    cmp "$src/postfix-example/relaymilter.conf" "$d/usr/share/doc/relaymilter/examples/relaymilter.conf"
check "installed relaymilter -V prints the version" \
    bash -c '"$1" -V | grep -Eq "^relaymilter [0-9]+\.[0-9]+\.[0-9]+$"' _ "$d/usr/sbin/relaymilter"
check "installed relaymilter -t accepts the installed example config" \
    bash -c '[ "$("$1" -c "$2" -t)" = "configuration OK" ]' _ \
    "$d/usr/sbin/relaymilter" "$d/usr/share/doc/relaymilter/examples/relaymilter.conf"
check "installed relaymilter-ctl help runs" \
    bash -c '"$1" help | grep -q "^usage: relaymilter-ctl"' _ "$d/usr/bin/relaymilter-ctl"

# ---- the systemd unit -------------------------------------------------------
unit=$d/lib/systemd/system/relaymilter.service
for line in "Type=simple" \
            "User=relaymilter" "Group=relaymilter" \
            "ExecStartPre=/usr/sbin/relaymilter -c /etc/relaymilter.conf -t" \
            "ExecStart=/usr/sbin/relaymilter -c /etc/relaymilter.conf" \
            "ExecReload=/usr/sbin/relaymilter -c /etc/relaymilter.conf -t" \
            'ExecReload=/bin/kill -HUP $MAINPID' \
            "RuntimeDirectory=relaymilter" "NoNewPrivileges=yes" "ProtectSystem=strict" \
            "ProtectHome=yes" "PrivateTmp=yes" "PrivateDevices=yes" \
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" "CapabilityBoundingSet=" \
            "MemoryDenyWriteExecute=yes" "LockPersonality=yes" \
            "SystemCallFilter=@system-service" "Restart=on-failure" \
            "WantedBy=multi-user.target"; do
    check "unit has: $line" grep -qxF -- "$line" "$unit"
done
# The test runs before the reload: the first ExecReload line must be -t.
check "unit: the config check comes before the HUP" \
    bash -c 'grep "^ExecReload=" "$1" | head -1 | grep -q -- " -t$"' _ "$unit"
check "unit: milter.user is not set in the sample (the unit sets User=)" \
    bash -c '! grep -Eq "^[[:space:]]*user[[:space:]]*=" "$1"' _ "$src/postfix-example/relaymilter.conf"

if command -v systemd-analyze >/dev/null 2>&1; then
    # verify checks that the ExecStart binaries exist: point the unit at the
    # DESTDIR copy, and man at the DESTDIR pages for Documentation=.
    sed "s|/usr/sbin/relaymilter|$d/usr/sbin/relaymilter|g" "$unit" >"$tmp/relaymilter.service"
    if MANPATH=$d/usr/share/man systemd-analyze verify "$tmp/relaymilter.service" \
        >"$tmp/verify" 2>&1 && [ ! -s "$tmp/verify" ]; then
        ok "systemd-analyze verify: no complaint"
    else
        fail "systemd-analyze verify"
        sed 's/^/    /' "$tmp/verify"
    fi
    # The check must be able to fail: a unit with a typo must be reported.
    mkdir -p "$tmp/bad"
    sed 's/^Type=simple/Type=simpel/' "$tmp/relaymilter.service" >"$tmp/bad/relaymilter.service"
    if MANPATH=$d/usr/share/man systemd-analyze verify "$tmp/bad/relaymilter.service" 2>&1 |
        grep -q "simpel"; then
        ok "systemd-analyze verify reports a broken unit (the check can fail)"
    else
        fail "systemd-analyze verify did not report Type=simpel"
    fi
else
    echo "skip: systemd-analyze is not installed: the unit was not verified"
fi

# ---- man pages ---------------------------------------------------------------
for page in man8/relaymilter.8 man5/relaymilter.conf.5 man1/relaymilter-ctl.1; do
    p=$d/usr/share/man/$page
    if groff -man -ww -z "$p" >"$tmp/groff" 2>&1 && [ ! -s "$tmp/groff" ]; then
        ok "groff -man -ww: $page renders without a warning"
    else
        fail "groff -man -ww: $page"
        sed 's/^/    /' "$tmp/groff"
    fi
    if command -v man >/dev/null 2>&1; then
        if MANWIDTH=80 man -l "$p" >"$tmp/man.txt" 2>"$tmp/man.err" &&
            [ ! -s "$tmp/man.err" ] && [ "$(wc -l <"$tmp/man.txt")" -gt 20 ]; then
            ok "man -l $page"
        else
            fail "man -l $page"
            sed 's/^/    /' "$tmp/man.err"
        fi
    fi
done

# What the man pages must document is checked by test_docs.py.

# ---- the CI container files (no container engine is needed for these) ----------
pe=$src/postfix-example
check "container-relaymilter.conf passes relaymilter -t" \
    bash -c '[ "$("$1" -c "$2" -t)" = "configuration OK" ]' _ "$d/usr/sbin/relaymilter" "$pe/container-relaymilter.conf"
check "container-entrypoint.sh parses (bash -n)" bash -n "$pe/container-entrypoint.sh"
check "ci-test.sh parses (sh -n)" sh -n "$pe/ci-test.sh"
# ci-test.sh reaches Redis through relaymilter-ctl only: the installed one
# gives it the limit fields (with the container's config, and no Redis).
check "ci-test.sh drives Redis with --ctl, not redis-cli" bash -c '
    sh "$1" --help 2>&1 | grep -q -- "--ctl CMD" && ! grep -q "redis-cli" "$1"' _ "$pe/ci-test.sh"
check "installed relaymilter-ctl --json fields, with container-relaymilter.conf" \
    bash -c '"$1" -c "$2" --json fields | python3 -c "
import json, sys
assert len(json.load(sys.stdin)[\"fields\"]) == 16"' _ "$d/usr/bin/relaymilter-ctl" "$pe/container-relaymilter.conf"
check "every COPY source of the Dockerfile exists" bash -c '
    cd "$1" && for f in $(sed -n "s/^COPY \(--[^ ]* \)*\([^ ]*\) .*/\2/p" postfix-example/Dockerfile | grep -v "^/"); do
        [ "$f" = . ] || [ -e "$f" ] || { echo "missing: $f"; exit 1; }; done' _ "$src"
if python3 -c 'import yaml' 2>/dev/null; then
    check "compose.yaml: services redis and relay, built from Dockerfile.redis and Dockerfile" \
        python3 -c '
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
s = c["services"]
assert set(s) == {"redis", "relay"}, s.keys()
assert s["relay"]["build"]["dockerfile"] == "postfix-example/Dockerfile"
assert s["redis"]["build"]["dockerfile"] == "Dockerfile.redis"
assert not any("image" in v for v in s.values()), "an image from a registry"
assert all(p.startswith("127.0.0.1:") for p in s["relay"]["ports"]), "ports not on loopback"
' "$pe/compose.yaml"
else
    echo "skip: python3-yaml is not installed: compose.yaml not parsed"
fi

# ---- install with the default prefix ------------------------------------------
d2=$tmp/default-root
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
if DESTDIR=$d2 cmake --install "$build" >"$tmp/install2.log" 2>&1; then
    ok "cmake --install with the configured prefix ($prefix)"
    if [ "$prefix" != /usr ]; then
        u2=$d2$prefix/lib/systemd/system/relaymilter.service
        check "unit under $prefix/lib/systemd/system" test -f "$u2"
        check "its ExecStart names $prefix/sbin/relaymilter" \
            grep -qxF "ExecStart=$prefix/sbin/relaymilter -c /etc/relaymilter.conf" "$u2"
        check "nothing outside $prefix" \
            bash -c '[ -z "$(cd "$1" && find . -type f | grep -v "^.${2}/")" ]' _ "$d2" "$prefix"
    fi
else
    fail "cmake --install with the default prefix"
    cat "$tmp/install2.log"
fi

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
