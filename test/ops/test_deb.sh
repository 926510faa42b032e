#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_deb.sh SOURCE_DIR
#
# Builds the Debian package (dpkg-buildpackage -us -uc -b, from a copy of the
# tree in a temp dir so that the build leaves nothing in the checkout),
# installs it with apt-get, checks what it installed, and purges it again.
#
# It changes the machine while it runs (the package, the system user
# relaymilter, /etc/relaymilter.conf), so it refuses to run (exit 77, skipped)
# where any of that belongs to someone else: relaymilter already installed, or
# an /etc/relaymilter.conf that no package owns. Also skipped: not root, or no
# debhelper (apt-get install debhelper). The user relaymilter stays after the
# purge, as Debian packages leave their system users.
set -u
src=$(cd "$1" && pwd)
start=$(date +%s)

skip() { echo "skip: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (apt-get install)"
command -v dpkg-buildpackage >/dev/null 2>&1 || skip "dpkg-buildpackage missing (apt-get install dpkg-dev)"
command -v dh >/dev/null 2>&1 || skip "dh missing (apt-get install debhelper)"
if dpkg-query -W -f='${Status}' relaymilter 2>/dev/null | grep -q "installed"; then
    skip "the relaymilter package is installed on this machine: not touching it"
fi
[ -e /etc/relaymilter.conf ] && skip "/etc/relaymilter.conf exists and is not ours: not touching it"

tmp=$(mktemp -d /tmp/rm-ops-deb.XXXXXX)
installed=0
cleanup() {
    if [ "$installed" -eq 1 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -q relaymilter >/dev/null 2>&1 ||
            dpkg --purge relaymilter >/dev/null 2>&1
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
passes=0
ok() { passes=$((passes + 1)); echo "ok: $*"; }
fail() { fails=$((fails + 1)); echo "FAIL: $*"; }
check() {
    local what=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then ok "$what"; else fail "$what"; sed 's/^/    /' "$tmp/out"; fi
}
finish() {
    echo "test_deb: $(($(date +%s) - start))s in all"
    echo "$passes passed, $fails failed"
    [ "$fails" -eq 0 ]
    exit
}

# ---- a copy of the tree ------------------------------------------------------
mkdir "$tmp/src"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    # Tracked and new files, not what .gitignore names (build dirs).
    (cd "$src" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$tmp/src")
else
    tar -C "$src" --exclude=./build --exclude='./build-*' --exclude=./obj-* -cf - . |
        tar -C "$tmp/src" -xf -
fi
check "source tree copied" test -f "$tmp/src/debian/control"

# ---- build -----------------------------------------------------------------------
# nocheck: the test suite runs from the main build; here only the packaging.
t0=$(date +%s)
if (cd "$tmp/src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
        dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
    ok "dpkg-buildpackage -us -uc -b ($(($(date +%s) - t0))s)"
else
    fail "dpkg-buildpackage"
    tail -40 "$tmp/build.log"
    finish
fi
deb=$(ls "$tmp"/relaymilter_*_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { fail "no relaymilter_*.deb built"; finish; }
ok "built $(basename "$deb")"
# lintian: no error (warnings and informational tags are printed, not failed).
if command -v lintian >/dev/null 2>&1; then
    lintian --tag-display-limit 0 "$deb" >"$tmp/lintian.txt" 2>&1
    sed 's/^/    lintian: /' "$tmp/lintian.txt"
    check "lintian reports no error on $(basename "$deb")" \
        bash -c '! grep -q "^E: " "$1"' _ "$tmp/lintian.txt"
else
    fail "lintian is not installed (apt-get install lintian)"
fi
check "the checkout got no build output (no debian/relaymilter in $src)" \
    test ! -e "$src/debian/relaymilter" -a ! -e "$src/debian/files"

check "the package ships /etc/relaymilter.conf as a conffile" \
    bash -c 'dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./conffiles | grep -qx /etc/relaymilter.conf' _ "$deb"
check "Depends comes from shlibs (libmilter, hiredis, libconfig)" \
    bash -c 'd=$(dpkg-deb -f "$1" Depends); case $d in *libmilter*libhiredis*|*libhiredis*libmilter*) echo "$d" | grep -q libconfig;; *) false;; esac' _ "$deb"

# ---- install -------------------------------------------------------------------
t0=$(date +%s)
if DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb" >"$tmp/install.log" 2>&1; then
    installed=1
    ok "apt-get install ./$(basename "$deb") ($(($(date +%s) - t0))s)"
else
    installed=1 # a half-configured package is still purged on exit
    fail "apt-get install"
    tail -30 "$tmp/install.log"
    finish
fi

check "dpkg says relaymilter is installed" \
    bash -c 'dpkg-query -W -f="\${Status}" relaymilter | grep -qx "install ok installed"'
check "relaymilter -c /etc/relaymilter.conf -t prints configuration OK" \
    bash -c '[ "$(/usr/sbin/relaymilter -c /etc/relaymilter.conf -t)" = "configuration OK" ]'
check "/etc/relaymilter.conf is the sample" cmp /etc/relaymilter.conf "$src/postfix-example/relaymilter.conf"
check "system user relaymilter exists, with no login shell" \
    bash -c 'getent passwd relaymilter | grep -Eq ":/usr/sbin/nologin$"'
check "/etc/relaymilter.conf is root:relaymilter 0640" \
    bash -c '[ "$(stat -c "%U:%G %a" /etc/relaymilter.conf)" = "root:relaymilter 640" ]'
# What the unit does: start as relaymilter and read the file.
check "the user relaymilter can read and check the config" \
    setpriv --reuid=relaymilter --regid=relaymilter --init-groups \
    /usr/sbin/relaymilter -c /etc/relaymilter.conf -t
check "relaymilter-ctl is installed and runs" bash -c 'relaymilter-ctl help | grep -q "^usage: relaymilter-ctl"'
check "relaymilter-ctl is /usr/bin/relaymilter-ctl" test -x /usr/bin/relaymilter-ctl
for page in relaymilter.8 relaymilter.conf.5 relaymilter-ctl.1; do
    name=${page%.*}
    sec=${page##*.}
    check "man page $page installed" test -f "/usr/share/man/man$sec/$page.gz"
    check "man $sec $name renders" bash -c 'MANWIDTH=80 man "$1" "$2" 2>&1 | grep -q "^NAME"' _ "$sec" "$name"
done
check "unit installed at /lib/systemd/system/relaymilter.service" \
    grep -qxF "ExecStart=/usr/sbin/relaymilter -c /etc/relaymilter.conf" /lib/systemd/system/relaymilter.service
check "unit enabled (multi-user.target.wants)" \
    test -L /etc/systemd/system/multi-user.target.wants/relaymilter.service
check "examples in /usr/share/doc/relaymilter/examples" \
    test -f /usr/share/doc/relaymilter/examples/relaymilter.conf -a -f /usr/share/doc/relaymilter/examples/sendmail.mc
if [ -d /run/systemd/system ]; then
    # systemd runs here: the package started the service.
    check "systemctl is-active relaymilter" systemctl is-active --quiet relaymilter
    check "systemctl reload relaymilter" systemctl reload relaymilter
else
    echo "note: systemd is not running here: the package enabled the unit and did not start it"
fi

# ---- purge -------------------------------------------------------------------------
t0=$(date +%s)
if DEBIAN_FRONTEND=noninteractive apt-get purge -y -q relaymilter >"$tmp/purge.log" 2>&1; then
    installed=0
    ok "apt-get purge relaymilter ($(($(date +%s) - t0))s)"
else
    fail "apt-get purge"
    tail -30 "$tmp/purge.log"
fi
check "package gone" bash -c '! dpkg-query -W -f="\${Status}" relaymilter 2>/dev/null | grep -q installed'
for f in /usr/sbin/relaymilter /usr/bin/relaymilter-ctl /etc/relaymilter.conf \
         /lib/systemd/system/relaymilter.service \
         /etc/systemd/system/multi-user.target.wants/relaymilter.service; do
    check "purge removed $f" test ! -e "$f" -a ! -L "$f"
done
check "purge removed the statoverride" bash -c '! dpkg-statoverride --list /etc/relaymilter.conf'

finish
