#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# test.sh - install, build and run every test layer (unit, integration with a
# private redis-server, end to end through a private Postfix). Exit status is
# non-zero when any test fails.
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
cd build
ctest --output-on-failure "$@"
