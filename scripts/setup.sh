#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# setup.sh - install the build and test dependencies (Debian 12, as root) and
# build relaymilter into ./build. Used by run-local.sh and test.sh.
set -eu
cd "$(dirname "$0")/.."
PKGS="build-essential cmake pkg-config libmilter-dev libhiredis-dev libconfig-dev libidn2-dev libmicrohttpd-dev liblua5.1-0-dev check
      redis-server redis-tools postfix python3 miltertest curl sasl2-bin libsasl2-modules
      debhelper m4 lintian
      clang libclang-rt-14-dev clang-tidy cppcheck valgrind
      podman runc slirp4netns mmdebstrap python3-yaml prometheus"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup.sh: missing packages:$missing (run as root to install them)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q $missing
fi
cmake -S . -B build -DRM_WERROR=ON ${RM_CMAKE_ARGS:-}
cmake --build build -j"$(nproc)"
