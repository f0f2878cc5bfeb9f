#!/usr/bin/env bash
# Usage: validate_cli.sh PATH/TO/sigprop-validate TESTS/TOOL/DIR
# Checks the command-line contract of sigprop-validate on the quick grid.
set -uo pipefail
exe=$1
here=$2
# shellcheck source=harness.sh
source "$(dirname "$0")/harness.sh"


# expect_error STATUS 'message fragment' ARGS...: one line on stderr, the status, no output file.
expect_error() {
    local want=$1 fragment=$2
    shift 2
    rm -f "$work/out.json"
    "$exe" "$@" --json "$work/out.json" >"$work/stdout" 2>"$work/stderr"
    local got=$?
    local lines
    lines=$(wc -l <"$work/stderr")
    if [[ $got -ne $want ]]; then bad "$* -> status $got, want $want"; return; fi
    if [[ $lines -ne 1 ]]; then bad "$* -> $lines lines on stderr, want 1"; cat "$work/stderr"; return; fi
    if ! grep -qF -- "$fragment" "$work/stderr"; then bad "$* -> '$(cat "$work/stderr")' lacks '$fragment'"; return; fi
    if ls "$work"/out.json* >/dev/null 2>&1; then bad "$* left an output file"; return; fi
    ok
}

expect_error 2 "unknown grid 'nope'" --grid nope
expect_error 2 "unknown component 'relux'" --component relux
expect_error 2 "--shard" --shard 3/3
expect_error 2 "--shard" --shard x
expect_error 2 "not valid JSON" --grid "$here/grids/malformed.json"
expect_error 2 "unknown parameter 'd_inn'" --grid "$here/grids/unknown_param.json"
expect_error 2 "must be given exactly once" --grid "$here/grids/missing_param.json"
expect_error 2 "x.corr = 1.5 is outside the valid range [-1, 1]" --grid "$here/grids/impossible.json"
expect_error 2 "cannot read" --grid "$work/absent.json"
expect_error 2 "error" --no-such-option

# --help exits 0.
if "$exe" --help >/dev/null 2>&1; then ok; else bad "--help"; fi

# The quick grid runs; 1 and 2 threads give bit-identical points.
if "$exe" --grid quick --threads 1 --quiet --json "$work/t1.json" >"$work/t1.txt"; then ok; else bad "quick grid, 1 thread"; fi
if "$exe" --grid quick --threads 2 --quiet --json "$work/t2.json" >/dev/null; then ok; else bad "quick grid, 2 threads"; fi
points() { python3 -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))['points'], sort_keys=True))" "$1"; }
if [[ "$(points "$work/t1.json")" == "$(points "$work/t2.json")" ]]; then ok; else bad "1 and 2 threads differ"; fi
if grep -q "published" "$work/t1.txt"; then ok; else bad "table lacks the published row"; fi

# Three shards merged give exactly the unsharded points.
for i in 0 1 2; do
    "$exe" --grid quick --shard "$i/3" --quiet --json "$work/s$i.json" >/dev/null || bad "shard $i"
done
if "$exe" merge "$work/s0.json" "$work/s1.json" "$work/s2.json" --json "$work/m.json" >/dev/null; then ok; else bad "merge"; fi
if [[ "$(points "$work/t1.json")" == "$(points "$work/m.json")" ]]; then ok; else bad "merged shards differ from the whole sweep"; fi
# A missing shard or a repeated one is an error.
if "$exe" merge "$work/s0.json" "$work/s1.json" >/dev/null 2>"$work/e"; then bad "merge of 2 of 3 shards succeeded"; else
    [[ $? -eq 2 ]] && grep -q "2 of 3 shards" "$work/e" && ok || bad "merge of 2 of 3: $(cat "$work/e")"; fi
if "$exe" merge "$work/s0.json" "$work/s0.json" "$work/s1.json" >/dev/null 2>"$work/e"; then bad "merge with a repeated shard succeeded"; else ok; fi
if "$exe" merge "$here/grids/malformed.json" >/dev/null 2>"$work/e"; then bad "merge of malformed JSON succeeded"; else
    [[ $? -eq 2 ]] && ok || bad "merge of malformed JSON: status"; fi

# Filters keep each point's index (and so its measurement); filtered shards merge too.
"$exe" --grid quick --where L=8 --where p=0.5 --quiet --json "$work/w.json" >/dev/null || bad "--where"
for i in 0 1; do
    "$exe" --grid quick --where L=8 --where p=0.5 --shard "$i/2" --quiet --json "$work/ws$i.json" >/dev/null || bad "--where shard $i"
done
"$exe" merge "$work/ws0.json" "$work/ws1.json" --json "$work/wm.json" >/dev/null || bad "merge of filtered shards"
if [[ "$(points "$work/w.json")" == "$(points "$work/wm.json")" ]]; then ok; else bad "merged filtered shards differ"; fi
python3 - "$work/w.json" "$work/t1.json" <<'PY' && ok || bad "filtered points differ from the same points of the whole sweep"
import json, sys
w = json.load(open(sys.argv[1]))["points"]
whole = {p["index"]: p for p in json.load(open(sys.argv[2]))["points"]}
assert w and all(p["params"]["p"] == 0.5 for p in w)
assert all(p == whole[p["index"]] for p in w)
PY
expect_error 2 "no point of grid 'quick' passes the filters" --where L=9
expect_error 2 "is not a number" --where L=x

finish
