#!/usr/bin/env bash
# Usage: pytorch_init.sh PATH/TO/sigprop EXAMPLES/DIR
# Runs examples/pytorch_init.py on a small DSLM model and checks what it reports: the
# stream variance stays near 1 (DSLM's promise) and the weights have the asked std.
# Exits 77 (ctest: skipped) when no python3 on this machine can import torch.
set -uo pipefail
exe=$1
examples=$2
python=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c "import torch" 2>/dev/null; then python=$p; break; fi
done
[[ -n $python ]] || { echo "no python3 with torch: skipped"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$exe" init --layers 6 --d-model 64 --heads 4 --d-ff 256 --seq-len 32 --norm pre --scheme dslm \
    --dropout 0 --input-var 1 --input-corr 0 -o "$work/init.json" || { echo "FAIL: sigprop init"; exit 1; }
PYTHONPATH=$examples "$python" - "$work/init.json" <<'PY'
import sys
import pytorch_init
variances, std_ratio = pytorch_init.main(sys.argv[1])
assert all(0.7 < v < 1.4 for v in variances), variances
assert 0.95 < std_ratio < 1.05, std_ratio
print("pytorch_init: ok")
PY
