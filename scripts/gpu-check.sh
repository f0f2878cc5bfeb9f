#!/usr/bin/env bash
# Usage: scripts/gpu-check.sh OUT_DIR [--dry-run]
#
# The GPU checks, unattended, on a machine with a GPU, nvcc, CMake and PyTorch but none of
# our Debian packages and no network: configure and build the CUDA validator against the
# headers gathered by scripts/gather-gpu-deps.sh (.carry/deps), run the GPU tests, the GPU
# speed checks (sigprop-gpu-bench, the same grids through PyTorch on the same GPU) and the
# paper's full grids of every component the GPU backend runs. Every step has a time limit
# inside an 8-minute budget; each writes OUT_DIR/<step>.log, and OUT_DIR/summary.json
# lists the steps, their exit status and seconds. Each paper grid writes its JSON (and its error table in its
# log) when it completes; a step that runs out of time is marked 124 and the rest go on.
#
# --dry-run: the same script on a machine without a GPU (CI's), with a longer budget and
# both CUDA architectures: it proves the script configures, builds with SIGPROP_CUDA=ON,
# passes the no-GPU paths (status 2, one line) and writes the expected files.
set -uo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 OUT_DIR [--dry-run]" >&2; exit 2; }
out=$(mkdir -p "$1" && cd "$1" && pwd)
dry=0
[[ ${2:-} == --dry-run ]] && dry=1
cd "$(dirname "$0")/.."
root=$(pwd)

budget=${SIGPROP_GPU_CHECK_BUDGET:-$((dry ? 1800 : 470))}
deadline=$(($(date +%s) + budget))
build=${SIGPROP_GPU_CHECK_BUILD:-build-gpu-check}
jobs=$(nproc)
export CUDACXX=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
summary=()

# What a step that needs the GPU must return: 0 with one, 2 (no usable device) without.
gpu=$((dry ? 2 : 0))
failed=0

# step NAME CAP_SECONDS WANT COMMAND...: runs COMMAND with at most CAP seconds (less if the
# budget is nearly spent), output in OUT_DIR/NAME.log; records status, the status wanted
# and seconds.
step() {
    local name=$1 cap=$2 want=$3
    shift 3
    local left=$((deadline - $(date +%s) - 10))
    local limit=$((cap < left ? cap : left))
    local t0 status
    t0=$(date +%s)
    if ((limit < 5)); then
        echo "== $name: skipped, the budget is spent" | tee "$out/$name.log"
        status=skipped
    else
        echo "== $name (limit ${limit}s): $*"
        timeout --kill-after=5 "$limit" "$@" >"$out/$name.log" 2>&1
        status=$?
        ((status == 124)) && echo "   timed out after ${limit}s"
    fi
    local secs=$(($(date +%s) - t0))
    local ok=false
    [[ $status == "$want" ]] && ok=true || failed=$((failed + 1))
    echo "   status $status (want $want), ${secs}s"
    summary+=("{\"step\": \"$name\", \"status\": \"$status\", \"want\": $want, \"ok\": $ok, \"seconds\": $secs, \"limit\": $limit}")
}

{
    echo "date: $(date -u +%FT%TZ)"
    echo "mode: $([[ $dry -eq 1 ]] && echo dry-run || echo gpu)"
    echo "nvcc: $("$CUDACXX" --version 2>&1 | tail -1)"
    echo "cmake: $(cmake --version | head -1)"
    echo "cores: $jobs"
    nvidia-smi -L 2>&1 || true
} >"$out/machine.txt"

prefix=()
[[ -d .carry/deps/usr ]] && prefix=(-DCMAKE_PREFIX_PATH="$root/.carry/deps/usr"
    -DBoost_DIR="$root/.carry/deps/usr/lib/x86_64-linux-gnu/cmake/Boost-1.81.0")
# On the GPU machine only its own architecture is compiled (half the nvcc time); the dry
# run builds the project's default pair (80 and 90) as CI does.
archs=()
((dry == 0)) && archs=(-DCMAKE_CUDA_ARCHITECTURES=90)
step configure 120 0 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSIGPROP_CUDA=ON \
    -DSIGPROP_BUILD_TESTS=ON -DSIGPROP_BUILD_BENCH=OFF -DSIGPROP_BUILD_EXAMPLES=OFF "${prefix[@]}" "${archs[@]}"
step build $((dry ? 1500 : 240)) 0 cmake --build "$build" -j "$jobs" --target sigprop-validate sigprop-gpu-bench
validate=$build/validation/sigprop-validate
# The GPU tests: no-GPU path (skipped where there is one) and CPU/GPU agreement.
step gpu-tests 120 0 ctest --test-dir "$build" -R '^tool\.gpu\.' --output-on-failure
step gpu-bench 90 "$gpu" "$build/validation/sigprop-gpu-bench" --repeats 5 --json "$out/gpu_bench.json"
# The same grids on the GPU through our backend and through PyTorch (float32, as ours).
for g in attention_speed attention_speed_large; do
    step "grid-$g-cuda" 60 "$gpu" "$validate" --backend cuda --grid "bench/grids/$g.json" --quiet --json "$out/$g-cuda.json"
    step "grid-$g-torch" 90 0 python3 bench/torch_attention.py "bench/grids/$g.json" --device cuda --dtype float32
done
# The paper's grids of every component the GPU backend runs. Attention first (26244
# points, 64 sequences each; 6 shards, so a shard that runs out of time loses only itself),
# then the others while the budget lasts, the cheapest first (by data volume, not timed:
# docs/GPU.md). Softmax and GeLU come last: they hand the host one double per (sequence,
# token) for the output and for the gradient, about 340 GB and 400 GB over their grids
# (10^4 and 10^5 sequences of up to 10^4 and 10^3 one-unit tokens), so they are expected
# to be bound by the copies to the host and the single-threaded folding there.
shards=6
for i in $(seq 0 $((shards - 1))); do
    step "paper-attention-shard-$i" 400 "$gpu" "$validate" --backend cuda --grid paper --component attention \
        --shard "$i/$shards" --quiet --json "$out/paper-attention-$i.json"
done
if ls "$out"/paper-attention-*.json >/dev/null 2>&1; then
    step paper-attention-merge 60 0 "$validate" merge "$out"/paper-attention-*.json --json "$out/paper-attention.json"
fi
for c in layer_norm relu dropout linear softmax gelu; do
    step "paper-$c" 300 "$gpu" "$validate" --backend cuda --grid paper --component "$c" --quiet \
        --json "$out/paper-$c.json"
done

{
    echo "{\"mode\": \"$([[ $dry -eq 1 ]] && echo dry-run || echo gpu)\", \"budget_s\": $budget, \"failed\": $failed, \"steps\": ["
    for ((k = 0; k < ${#summary[@]}; ++k)); do
        echo "  ${summary[k]}$([[ $k -lt $((${#summary[@]} - 1)) ]] && echo ,)"
    done
    echo "]}"
} >"$out/summary.json"
echo "wrote $out/summary.json: $failed step(s) not as wanted"
((failed == 0))
