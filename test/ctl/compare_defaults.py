#!/usr/bin/python3
# SPDX-License-Identifier: BSD-2-Clause
"""compare_defaults.py DAEMON_P CTL_TEXT CTL_JSON - do the daemon and
relaymilter-ctl agree on every limit field?

DAEMON_P is the output of `relaymilter -c FILE -p` (its top-level limits
group: every field, the built-in defaults filled in); CTL_TEXT and CTL_JSON
are `relaymilter-ctl -c FILE usage X` and `relaymilter-ctl -c FILE --json
usage X` for a customer X that the config and Redis do not know, so that
X's limits are the config's. Every field the daemon prints must appear in
both outputs of the tool with the same value, and no other field: the LIMIT
column of the customer rows, the summary line and the "sender limits:"
line of the table; the "limits" object of the JSON. Exit 0 when they agree,
1 with each difference listed.
"""
import json
import re
import sys


def daemon_limits(text):
    """{field: value} of the top-level limits = { ... } group."""
    m = re.search(r"^limits = \{\n(.*?)^\};", text, re.S | re.M)
    if not m:
        sys.exit("no top-level limits group in the daemon's -p output")
    out = {}
    for line in m.group(1).splitlines():
        f = re.fullmatch(r"\s*(\w+) = (-?\d+)L?;|\s*(\w+) = \"([^\"]*)\";", line)
        if not f:
            sys.exit("cannot read %r in the daemon's limits group" % line)
        if f.group(1):
            out[f.group(1)] = int(f.group(2))
        else:
            out[f.group(3)] = f.group(4)
    return out


def value(text):
    if text == "unlimited":
        return -1
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def ctl_text_limits(text):
    """{field: value} from the table: customer rows, then the two lines of
    "field value (source)" pairs. A field seen twice must agree with itself."""
    out, problems = {}, []

    def put(field, v):
        if field in out and out[field] != v:
            problems.append("%s shown as both %r and %r" % (field, out[field], v))
        out[field] = v

    for line in text.splitlines():
        cols = line.split()
        if cols[:1] == ["customer"] and len(cols) == 7:
            put(cols[2], value(cols[4]))
        elif line.startswith("max_recipients ") or line.startswith("sender limits: "):
            for field, v in re.findall(r"(\w+) (\S+) \([^)]*\)", line):
                put(field, value(v))
    return out, problems


def compare(name, want, got):
    diffs = []
    for field in sorted(set(want) | set(got)):
        if field not in got:
            diffs.append("%s: %s lacks %s (the daemon has %r)" % (name, name, field, want[field]))
        elif field not in want:
            diffs.append("%s: %s shows %s, which the daemon does not print" % (name, name, field))
        elif want[field] != got[field]:
            diffs.append("%s: %s is %r, the daemon's %r" % (name, field, got[field], want[field]))
    return diffs


def main():
    want = daemon_limits(open(sys.argv[1]).read())
    text, problems = ctl_text_limits(open(sys.argv[2]).read())
    js = {f: v["value"] for f, v in json.load(open(sys.argv[3]))["limits"].items()}
    diffs = problems + compare("usage table", want, text) + compare("usage --json", want, js)
    for d in diffs:
        print(d)
    print("%d fields compared, %d differences" % (len(want), len(diffs)))
    return 1 if diffs or len(want) < 16 else 0


if __name__ == "__main__":
    sys.exit(main())
