#!/usr/bin/env bash
# Usage: gpu_cli.sh no-gpu    PATH/TO/sigprop-validate 'expected message fragment'
#        gpu_cli.sh agreement PATH/TO/sigprop-validate
# The cuda backend from the command line. Exit 77 (ctest SKIP_RETURN_CODE) where the test's
# premise does not hold: a GPU is present for no-gpu, none is for agreement.
set -uo pipefail
mode=$1
exe=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run_cuda() {  # the quick attention grid on the GPU; sets $status
    "$exe" --backend cuda --component attention --grid quick --quiet --json "$work/gpu.json" \
        >"$work/stdout" 2>"$work/stderr"
    status=$?
}

case $mode in
no-gpu)
    fragment=$3
    run_cuda
    if [[ $status -eq 0 ]]; then echo "SKIP: a GPU is present, the no-GPU path cannot be tested here"; exit 77; fi
    lines=$(wc -l <"$work/stderr")
    fail=0
    [[ $status -eq 2 ]] || { echo "FAIL: status $status, want 2"; fail=1; }
    [[ $lines -eq 1 ]] || { echo "FAIL: $lines lines on stderr, want 1"; fail=1; }
    grep -qF -- "$fragment" "$work/stderr" || { echo "FAIL: stderr lacks '$fragment'"; fail=1; }
    ! ls "$work"/gpu.json* >/dev/null 2>&1 || { echo "FAIL: an output file was left"; fail=1; }
    cat "$work/stderr"
    [[ $fail -eq 0 ]] && echo "1 passed, 0 failed" || exit 1
    ;;
agreement)
    run_cuda
    if [[ $status -ne 0 ]]; then echo "SKIP: no GPU run possible: $(cat "$work/stderr")"; exit 77; fi
    # Both backends draw the same random numbers, so every measured quantity must agree
    # within one standard error (in practice within float rounding, far inside it).
    for c in linear relu gelu layer_norm dropout softmax attention; do
        "$exe" --backend cuda --component $c --grid quick --quiet --json "$work/$c-gpu.json" >/dev/null || exit 1
        "$exe" --backend cpu --component $c --grid quick --quiet --json "$work/$c-cpu.json" >/dev/null || exit 1
    done
    python3 - "$work" <<'PY'
import json, sys
worst, bad, n = 0.0, 0, 0
for c in ["linear", "relu", "gelu", "layer_norm", "dropout", "softmax", "attention"]:
    cpu = {p["index"]: p for p in json.load(open(f"{sys.argv[1]}/{c}-cpu.json"))["points"]}
    gpu = {p["index"]: p for p in json.load(open(f"{sys.argv[1]}/{c}-gpu.json"))["points"]}
    assert cpu.keys() == gpu.keys() and cpu, f"{c}: different points"
    for i, p in cpu.items():
        for q, v in p["measured"]["value"].items():
            se, w = p["measured"]["se"][q], gpu[i]["measured"]["value"][q]
            # A quantity exact by construction (LayerNorm's mean 0 and variance 1, the
            # softmax's mean 1/L) has a standard error of rounding size, or 0: it must agree
            # to float rounding, relative to its own size or to its side's variance.
            scale = abs(p["measured"]["value"][q[0] + "_var"])
            ratio = abs(v - w) / (max(se, 1e-5 * (abs(v) + scale)) + 1e-300)
            worst, n = max(worst, ratio), n + 1
            if ratio > 1:
                bad += 1
                print(f"{c} point {i} {q}: cpu {v} gpu {w} se {se}")
print(f"largest |cpu - gpu| / se: {worst:.2e}")
print(f"{n - bad} passed, {bad} failed")
sys.exit(1 if bad else 0)
PY
    ;;
*)
    echo "unknown mode $mode"
    exit 2
    ;;
esac
