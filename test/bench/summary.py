#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""summary RESULTS STARTED LOAD_AT_START [--quick] - run_all.sh's last table:
the rows every section recorded (benchlib.record), with the machine and the
load average. Exit 1 if there are no rows."""

import sys

import benchlib as bl


def main():
    path, started, load_start = sys.argv[1:4]
    quick = "--quick" in sys.argv[4:]
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 4:
                rows.append(parts)
    title = ("relaymilter benchmarks%s - %s\nmachine: %s\nload average at start "
             "(1/5/15 min): %s" % (" (--quick: numbers not meaningful)" if quick else "",
                                   started, bl.machine(), load_start))
    print(bl.table(title, ["section", "what", "value", "note"], rows))
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
