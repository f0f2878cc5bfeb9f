#!/usr/bin/env bash
# The README's first command: installs what is missing, builds the sigprop tool (Release)
# and runs `sigprop predict`, whose built-in default compares Pre-/Post-LN and Xavier/DSLM
# on a 192-layer model. Arguments replace `predict` (e.g. quickstart.sh predict gpt2-small).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
build=${SIGPROP_BUILD_DIR:-build-release}
jobs=${SIGPROP_JOBS:-2}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSIGPROP_BUILD_VALIDATION=ON \
      -DSIGPROP_BUILD_TESTS=OFF -DSIGPROP_BUILD_BENCH=OFF -DSIGPROP_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target sigprop-cli -j "$jobs"
(($# > 0)) || set -- predict
exec "$build/cli/sigprop" "$@"
