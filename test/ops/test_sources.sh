#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# test_sources.sh SOURCE_DIR - every source file carries the licence's SPDX
# line in its first two lines (LICENSE, debian/copyright), and no file points
# outside the tree for a rule it relies on: comments cite a man page, a
# document of doc/ (or README, INSTALL, SECURITY) or an RFC.
# The files are git's tracked ones (a checkout), else every file found.
set -u
cd "$1" || exit 2
if git rev-parse --git-dir >/dev/null 2>&1; then
    list() { git ls-files; }
else
    list() { find . -type f ! -path './build*' ! -path './.git/*' | sed 's|^\./||'; }
fi
fails=0
# Source: code, build and packaging files, scripts, man pages, samples.
list | grep -Ev '^test/fuzz/corpus/|\.(dict|txt\.gz)$' |
    grep -E '\.(c|h|lua|py|sh|cmake|yaml|conf|cf|mc|service|supp|[158])$|(^|/)(CMakeLists\.txt|Dockerfile|rules|run|with-redis|relaymilter\.(postinst|postrm|install))$' \
    >/tmp/rm-sources.$$
n=0
while IFS= read -r f; do
    n=$((n + 1))
    if ! head -n 2 "$f" | grep -q 'SPDX-License-Identifier: BSD-2-Clause'; then
        echo "FAIL: $f has no SPDX-License-Identifier line at its top"
        fails=$((fails + 1))
    fi
done </tmp/rm-sources.$$
rm -f /tmp/rm-sources.$$
echo "checked $n source files for their SPDX line"
if list | grep -v '^test/ops/test_sources.sh$' | xargs grep -lE '\.\./shared/|SPEC\.md|\bSPEC [0-9]' 2>/dev/null; then
    echo "FAIL: the files above point outside the tree"
    fails=$((fails + 1))
fi
echo "$fails failure(s)"
[ "$fails" -eq 0 ]
