# Sourced by the tool tests that count checks: a scratch folder removed on exit, ok/bad
# counters, and finish (the summary line, and a failing status if any check failed).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
# finish [LABEL]
finish() {
    echo "${1:+$1: }$pass passed, $fails failed"
    [[ $fails -eq 0 ]]
}
