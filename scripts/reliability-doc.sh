#!/usr/bin/env bash
# Regenerates the generated sections of docs/RELIABILITY.md (the bad-input table and the
# precision statistics) from the tests that check them: runs those tests of a built
# sigprop_tests with SIGPROP_RELIABILITY_OUT set and replaces the text between
# "<!-- BEGIN name -->" and "<!-- END name -->" with each fragment.
#   scripts/reliability-doc.sh [TEST_BINARY]   (default build-rel/tests/sigprop_tests)
set -euo pipefail
cd "$(dirname "$0")/.."

tests=${1:-build-rel/tests/sigprop_tests}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
SIGPROP_RELIABILITY_OUT=$out "$tests" \
    -tc='reliability: every entry point rejects*,reliability: double agrees*' >/dev/null
for fragment in errors.md precision.md; do
    [[ -s $out/$fragment ]] || { echo "reliability-doc: $fragment was not written" >&2; exit 1; }
    python3 - docs/RELIABILITY.md "$fragment" "$out/$fragment" <<'PY'
import sys
doc, name, path = sys.argv[1:]
text = open(doc).read()
begin, end = f"<!-- BEGIN {name} -->\n", f"<!-- END {name} -->"
i, j = text.index(begin) + len(begin), text.index(end)
open(doc, "w").write(text[:i] + open(path).read() + text[j:])
PY
done
echo "reliability-doc: docs/RELIABILITY.md updated"
