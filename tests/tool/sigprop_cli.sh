#!/usr/bin/env bash
# Usage: sigprop_cli.sh PATH/TO/sigprop TESTS/TOOL/DIR
# The command-line contract of the sigprop tool: bad input exits 2 with one line naming the
# problem, --help everywhere, the built-in default, deep models, and JSON round trips
# (what --json and init write, read back by --config, predicts the same).
set -uo pipefail
exe=$1
here=$2
# shellcheck source=harness.sh
source "$(dirname "$0")/harness.sh"


# expect_error 'message fragment' ARGS...: status 2, one line on stderr, nothing on stdout.
expect_error() {
    local fragment=$1
    shift
    "$exe" "$@" >"$work/stdout" 2>"$work/stderr"
    local got=$?
    if [[ $got -ne 2 ]]; then bad "$* -> status $got, want 2"; return; fi
    if [[ $(wc -l <"$work/stderr") -ne 1 ]]; then bad "$* -> not one line on stderr:"; cat "$work/stderr"; return; fi
    if [[ -s $work/stdout ]]; then bad "$* -> wrote to stdout"; return; fi
    if ! grep -qF -- "$fragment" "$work/stderr"; then bad "$* -> '$(cat "$work/stderr")' lacks '$fragment'"; return; fi
    ok
}

echo '{"d_model": 100, "heads": 3}' >"$work/indivisible.json"
echo '{"d_model": 64,' >"$work/malformed.json"
echo '{"layerz": 3}' >"$work/unknown_key.json"
echo '{"layers": "many"}' >"$work/wrong_type.json"
echo '{"p_hidden": 1.5}' >"$work/bad_dropout.json"
echo '[1, 2]' >"$work/not_object.json"
echo '{"scheme": "dslm", "sigmas": [{}]}' >"$work/scheme_and_sigmas.json"

expect_error "unknown preset 'bert-huge'" predict bert-huge
expect_error "--no-such-option" predict --no-such-option
expect_error "heads = 3 is outside the valid range {divisors of d_model = 100}" predict --config "$work/indivisible.json"
expect_error "is not valid JSON" predict --config "$work/malformed.json"
expect_error "unknown key 'layerz'" predict --config "$work/unknown_key.json"
expect_error "'layers' must be an integer" predict --config "$work/wrong_type.json"
expect_error "p_hidden = 1.5 is outside the valid range [0, 1)" predict --config "$work/bad_dropout.json"
expect_error "expected a JSON object" predict --config "$work/not_object.json"
expect_error "'scheme' must be \"custom\"" predict --config "$work/scheme_and_sigmas.json"
expect_error "cannot read" predict --config "$work/absent.json"
expect_error "layers = 0 is outside" predict --layers 0
expect_error "layers = 100001 is outside" predict --layers 100001
expect_error "layers * seq_len = 2000000000 is outside" predict gpt2-small --layers 20000 --seq-len 100000
expect_error "Could not convert" predict --layers ten
expect_error "unknown norm placement 'middle'" predict --norm middle
expect_error "unknown scheme 'kaiming'" predict --scheme kaiming
expect_error "unknown activation" predict --act tanh
expect_error "input.corr = 2 is outside" predict --input-corr 2
expect_error "choose one" predict --csv --json
expect_error "unknown preset" init bert-huge
expect_error "k = 500 is outside" init --scheme dslm --dslm-k 500
expect_error "unknown grid 'nope'" validate --grid nope
expect_error "subcommand" bogus

# --help exits 0 on the tool and every subcommand.
for sub in "" predict init presets validate; do
    # shellcheck disable=SC2086
    if "$exe" $sub --help >"$work/help" 2>&1 && [[ -s $work/help ]]; then ok; else bad "$sub --help"; fi
done
# The validator's usage line and errors name the command the user ran.
"$exe" validate --help 2>&1 | grep -q "^Usage: sigprop validate " && ok || bad "validate --help: usage does not name 'sigprop validate'"
"$exe" validate --grid nope >/dev/null 2>"$work/stderr"
grep -q "^sigprop validate: error:" "$work/stderr" && ok || bad "validate error not prefixed 'sigprop validate:'"

# The built-in default: the four configurations, no NaN.
"$exe" predict >"$work/default.txt" || bad "predict (default)"
for row in "Pre-LN   Xavier" "Post-LN  Xavier" "Pre-LN   DSLM" "Post-LN  DSLM"; do
    grep -qF "$row" "$work/default.txt" && ok || bad "default output lacks '$row'"
done
# Post-LN + Xavier collapses within the 192 layers; DSLM does not.
grep -F "Post-LN  Xavier" "$work/default.txt" | grep -q "layer " && ok || bad "Post-LN Xavier shows no collapse"
grep -F "Pre-LN   DSLM" "$work/default.txt" | grep -q "none" && ok || bad "DSLM collapses"

# Every preset predicts; 10000 layers work; an exploding model reports overflow, never NaN.
for p in bert-base bert-large gpt2-small gpt2-medium t5-base vit-base; do
    "$exe" predict "$p" >"$work/p.txt" && grep -q "rank collapse" "$work/p.txt" && ok || bad "predict $p"
done
"$exe" predict --layers 10000 --scheme dslm --every 2500 >"$work/deep.txt" && grep -q "^10000 " "$work/deep.txt" && ok ||
    bad "10000 layers"
# (Post-LN Xavier's gradient grows ~3e278 over 100000 layers: a large output gradient
# takes it past the largest double.)
"$exe" predict --layers 100000 --norm post --scheme xavier --every 50000 --grad-var 1e60 >"$work/boom.txt" ||
    bad "overflowing model failed"
grep -q "OVERFLOW .* at layer 1:" "$work/boom.txt" && ok || bad "overflow not reported"
if grep -qi "nan" "$work/default.txt" "$work/deep.txt" "$work/boom.txt"; then bad "NaN printed"; else ok; fi

# CSV: one header and one row per residual boundary (12 layers x 2 + input).
"$exe" predict bert-base --csv >"$work/p.csv" || bad "--csv"
[[ $(wc -l <"$work/p.csv") -eq 26 ]] && ok || bad "--csv has $(wc -l <"$work/p.csv") lines, want 26"

# --resolved: the position-resolved prediction, refused where it does not apply.
"$exe" predict --arch decoder --layers 4 --d-model 64 --heads 4 --d-ff 256 --seq-len 32 --norm pre --scheme xavier \
    --json >"$work/pooled.json" || bad "decoder --json"
"$exe" predict --arch decoder --layers 4 --d-model 64 --heads 4 --d-ff 256 --seq-len 32 --norm pre --scheme xavier \
    --json --resolved >"$work/resolved.json" || bad "decoder --json --resolved"
python3 - "$work/pooled.json" "$work/resolved.json" <<'PY' && ok || bad "--resolved document"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["method"] == "predict" and b["method"] == "predict_resolved"
assert len(a["points"]) == len(b["points"])
# Same forward input, a different (position-resolved) gradient at the causal stack's input.
assert a["points"][0]["var"] == b["points"][0]["var"]
ga, gb = a["points"][0]["grad_var"], b["points"][0]["grad_var"]
assert gb > 0 and abs(ga - gb) > 1e-3 * ga, (ga, gb)
PY
expect_error "not an encoder-decoder" predict t5-base --resolved
expect_error "limit 8 GiB" predict gpt2-small --resolved --layers 100000
expect_error "input.mean" predict --arch decoder --layers 2 --input-mean 1 --input-var 1 --input-corr 0 --resolved

# --dslm-resolved and the config key dslm_resolved: DSLM solved on the position-resolved
# forward, whose prediction of the stream is then one at every boundary (the pooled
# solution's is not); refused past its cost limit and for an encoder-decoder.
dslm="--arch decoder --layers 4 --d-model 64 --heads 4 --d-ff 256 --seq-len 32 --norm pre --scheme dslm --input-mean 0 --input-var 1 --input-corr 0.2"
echo '{"dslm_resolved": true}' >"$work/dslm_resolved.json"
echo '{"dslm_resolved": 1}' >"$work/dslm_resolved_number.json"
# shellcheck disable=SC2086
"$exe" predict $dslm --json --resolved >"$work/dslm-pooled.json" || bad "dslm --resolved"
# shellcheck disable=SC2086
"$exe" predict $dslm --dslm-resolved true --json --resolved >"$work/dslm-resolved.json" || bad "--dslm-resolved true"
# shellcheck disable=SC2086
"$exe" predict $dslm --config "$work/dslm_resolved.json" --json --resolved >"$work/dslm-config.json" ||
    bad "dslm_resolved config"
python3 - "$work/dslm-pooled.json" "$work/dslm-resolved.json" "$work/dslm-config.json" <<'PY' && ok || bad "--dslm-resolved"
import json, sys
a, b, c = (json.load(open(p)) for p in sys.argv[1:4])
dev = lambda d: max(abs(p["var"] - 1) for p in d["points"])
assert dev(b) < 1e-9 and dev(a) > 0.02, (dev(a), dev(b))
assert b["points"] == c["points"]
PY
expect_error "layers * seq_len^2 = 201326592 is outside" predict gpt2-small --scheme dslm --dslm-resolved true --seq-len 4096
expect_error "with forward = resolved" predict t5-base --scheme dslm --dslm-resolved true
expect_error "'dslm_resolved' must be true or false" predict --config "$work/dslm_resolved_number.json"

# Round trips: --json and init documents read back by --config predict the same.
same_prediction() {
    python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for k in ("points", "layers", "diagnostics"):
    assert a[k] == b[k], k
spec_a, spec_b = dict(a["spec"]), dict(b["spec"])
spec_a.pop("derived_from"); spec_b.pop("derived_from")
assert spec_a == spec_b
assert a["format"] == "sigprop-predict" and a["version"] == 1
PY
}
for model in "bert-base" "gpt2-small --scheme dslm" "t5-base --scheme deepnorm" "vit-base --scheme tfixup --layers 30"; do
    # shellcheck disable=SC2086
    "$exe" predict $model --json >"$work/a.json" || bad "predict $model --json"
    "$exe" predict --config "$work/a.json" --json >"$work/b.json" || bad "--config of predict $model --json"
    same_prediction "$work/a.json" "$work/b.json" && ok || bad "predict --json round trip of $model"
    # shellcheck disable=SC2086
    "$exe" init $model -o "$work/init.json" || bad "init $model"
    "$exe" predict --config "$work/init.json" --json >"$work/c.json" || bad "--config of init $model"
    same_prediction "$work/a.json" "$work/c.json" && ok || bad "init round trip of $model"
done
python3 - "$work/init.json" <<'PY' && ok || bad "init document"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["format"] == "sigprop-init" and j["version"] == 1 and j["scheme"] == "tfixup"
assert len(j["layers"]) == 30 and all(l["q"] > 0 and l["ffn2"] > 0 for l in j["layers"])
PY

# Without gnuplot: a message on stderr, the same stdout, status 0, no file.
"$exe" predict bert-base >"$work/plain.txt"
SIGPROP_GNUPLOT=/nonexistent "$exe" predict bert-base --plot "$work/x.png" >"$work/noplot.txt" 2>"$work/e" &&
    cmp -s "$work/plain.txt" "$work/noplot.txt" && grep -q "needs gnuplot" "$work/e" && [[ ! -e $work/x.png ]] && ok ||
    bad "--plot without gnuplot"

finish
