#!/usr/bin/env bash
# Re-scores the stored Post-LN encoder measurements of this folder against the current
# predict() (docs/ACCURACY.md, "Post-LN"; docs/theory/models.md section 9). Usage:
#   replay.sh PATH/TO/sigprop-model-mc [--resolved]
# Extra options go to every run. The per-block gains quoted in models.md are ratios of
# consecutive rows' gradient variances in the table each replay prints (drop the grep).
set -euo pipefail
mc=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
common="--arch encoder --norm post --init xavier --blocks 16 --threads 2"
run() {
    local file=$1
    shift
    echo "== $file"
    "$mc" $common "$@" --replay "$here/$file" "${extra[@]}" | grep '^# g_var'
}
extra=("$@")
run enc2-d64-L128.json --layers 2 --d-model 64 --d-ff 256 --heads 2 --seq-len 128 --sequences 2048 --per-draw 4
run enc2-d256-L128.json --layers 2 --d-model 256 --d-ff 1024 --heads 4 --seq-len 128 --sequences 256 --per-draw 4
run enc12-d64-L32.json --layers 12 --d-model 64 --d-ff 256 --heads 2 --seq-len 32 --sequences 512 --per-draw 4 --seed 3
run enc12-d64-L128.json --layers 12 --d-model 64 --d-ff 256 --heads 2 --seq-len 128 --sequences 256 --per-draw 4 --seed 3
run enc12-d256-L32.json --layers 12 --d-model 256 --d-ff 1024 --heads 4 --seq-len 32 --sequences 256 --per-draw 4 --seed 3
run enc12-d256-L128.json --layers 12 --d-model 256 --d-ff 1024 --heads 4 --seq-len 128 --sequences 64 --per-draw 2 --seed 3
run enc32-d128-L64.json --layers 32 --d-model 128 --d-ff 512 --heads 4 --seq-len 64 --sequences 128 --per-draw 4 --seed 3
run enc24-d128-L32.json --layers 24 --d-model 128 --d-ff 512 --heads 4 --seq-len 32 --sequences 256 --per-draw 1 --seed 5
run enc24-d128-L128.json --layers 24 --d-model 128 --d-ff 512 --heads 4 --seq-len 128 --sequences 128 --per-draw 1 --seed 5
