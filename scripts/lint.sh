#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# lint.sh - static analysis of the C code in policy/, milter/ and ctl/:
#   clang-tidy  the checks in .clang-tidy, with the compile commands of a build
#               configured with CMAKE_EXPORT_COMPILE_COMMANDS=ON;
#   cppcheck    warning, performance and portability checks.
# Exit status 0 when there is no finding, 1 when there is any (each printed as
# FILE:LINE:COL: message [check]), 2 when a tool is missing or the build fails.
#
# Known false positives are listed in SUPPRESS below, each as
#   FILE|CHECK|TEXT ON THE LINE|why it is not a bug
# and match only where the flagged source line contains that text, so a new
# finding of the same kind elsewhere still fails. Do not add a real bug here.
#
# Environment: RM_LINT_BUILD build directory (default /tmp/build-lint),
# RM_LINT_JOBS parallel clang-tidy runs (default: nproc).
# Debian packages: clang, clang-tidy, cppcheck (scripts/setup.sh).
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
build=${RM_LINT_BUILD:-/tmp/build-lint}
jobs=${RM_LINT_JOBS:-$(nproc)}

SUPPRESS='
policy/addr.c|bugprone-narrowing-conversions|? (char)(c - |the ternary is int by promotion; both arms are char values (A-Z mapped to a-z, or c itself)
policy/config.c|clang-analyzer-core.uninitialized.Assign|*(int *)base = (int)v;|get_int writes v whenever it returns 0; the analyzer does not inline the variadic fail() and assumes it may return 0
policy/config.c|clang-analyzer-core.uninitialized.Assign|out->v[id] = v;|as above: every path that reaches the assignment set v, or returned fail() (-1)
policy/config.c|invalidPointerCast|*(double *)base = d;|base is the address of a double member (table of offsetof); the char * is only for the offset arithmetic
policy/localquota.c|bugprone-sizeof-expression|sizeof(*lq->bucket)|bucket is a pointer to pointers: this allocates an array of pointers, as meant (clang-tidy 14 has no option to turn this case off)
policy/rpool.c|bugprone-sizeof-expression|sizeof(*p->idle)|idle is a pointer to pointers: an array of pointers, as meant
policy/quota.c|bugprone-implicit-widening-of-multiplication-result|s < 2 * 3600|a constant, 7200
policy/rpool.c|bugprone-implicit-widening-of-multiplication-result|(ms % 1000) * 1000|at most 999000, fits an int
policy/sentinel.c|bugprone-implicit-widening-of-multiplication-result|% 1000) * 1000|at most 999000, fits an int
milter/main.c|bugprone-reserved-identifier|__lsan_do_leak_check|the interface of the leak checker (sanitizer/lsan_interface.h), declared weak
'

for tool in clang clang-tidy cppcheck python3 cmake; do
    command -v "$tool" >/dev/null || {
        echo "lint.sh: $tool is not installed" >&2
        exit 2
    }
done

# compile_commands.json, and the generated relay_lua.h the sources include.
CC=clang cmake -S "$src" -B "$build" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
    -DBUILD_TESTING=OFF >"$build.cmake.log" 2>&1 || {
    cat "$build.cmake.log" >&2
    exit 2
}
cmake --build "$build" --target relaypolicy >"$build.build.log" 2>&1 || {
    tail -30 "$build.build.log" >&2
    exit 2
}

out=$(mktemp -d /tmp/rm-lint.XXXXXX)
trap 'rm -rf "$out"' EXIT

files=$(ls policy/*.c milter/*.c ctl/*.c)
echo "clang-tidy: $(echo "$files" | wc -l) files"
# shellcheck disable=SC2086,SC2016 # the inner script expands its own $1..$3
printf '%s\n' $files | xargs -P "$jobs" -I{} sh -c \
    'clang-tidy -p "$1" --quiet "$2" >"$3/tidy.$(echo "$2" | tr / _)" 2>"$3/tidy-err.$(echo "$2" | tr / _)"; echo $? >"$3/rc.$(echo "$2" | tr / _)"' \
    _ "$build" {} "$out"
cat "$out"/tidy.* >"$out/tidy.all"
# clang-tidy exits non-zero for compile errors (a finding, too); warnings
# alone leave it at 0 and are counted below.
for f in "$out"/rc.*; do
    if [ "$(cat "$f")" != 0 ] && ! grep -q ': error: ' "$out/tidy.all"; then
        echo "lint.sh: clang-tidy failed on ${f#"$out"/rc.}:" >&2
        cat "$out/tidy-err.${f#"$out"/rc.}" >&2
        exit 2
    fi
done

echo "cppcheck"
cppcheck --enable=warning,performance,portability --std=c11 --language=c \
    -D_GNU_SOURCE '-D_Noreturn=__attribute__((noreturn))' -DRM_VERSION='"lint"' \
    -I policy -I ctl -I "$build/generated" --suppress=missingIncludeSystem --inline-suppr \
    --quiet -j"$jobs" --template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
    policy milter ctl >"$out/cppcheck.all" 2>&1 || {
    cat "$out/cppcheck.all" >&2
    exit 2
}

SUPPRESS=$SUPPRESS python3 - "$src" "$out/tidy.all" "$out/cppcheck.all" <<'EOF'
import os, re, sys

src = sys.argv[1]
rules = []
for line in os.environ["SUPPRESS"].strip().splitlines():
    path, check, text, why = line.split("|", 3)
    rules.append([path, check, text, why, 0])

pat = re.compile(r"^(\S+?):(\d+):(\d+): (warning|error|style|portability|performance|"
                 r"information): (.*) \[([\w.,-]+)\]$")
findings, seen = [], set()
for report in sys.argv[2:]:
    for raw in open(report, errors="replace"):
        m = pat.match(raw.rstrip("\n"))
        if not m:
            continue
        path, line, col, sev, msg, check = m.groups()
        rel = os.path.relpath(os.path.join(src, path), src)
        key = (rel, line, col, check)
        if key in seen:
            continue
        seen.add(key)
        try:
            text = open(os.path.join(src, rel), errors="replace").read().splitlines()[int(line) - 1]
        except (OSError, IndexError):
            text = ""
        for r in rules:
            if r[0] == rel and r[1] == check and r[2] in text:
                r[4] += 1
                break
        else:
            findings.append(f"{rel}:{line}:{col}: {sev}: {msg} [{check}]\n    {text.strip()}")

suppressed = sum(r[4] for r in rules)
for f in findings:
    print(f)
for r in rules:
    if r[4] == 0:
        print(f"lint.sh: note: suppression no longer needed: {r[0]} {r[1]} \"{r[2]}\"")
print(f"lint.sh: {len(findings)} finding(s), {suppressed} known false positive(s) suppressed")
sys.exit(1 if findings else 0)
EOF
