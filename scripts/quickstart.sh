#!/usr/bin/env bash
# The README's first command: installs what is missing, builds the examples (Release) and
# runs the demo, which prints forward and backward moments through the components.
# Arguments are passed on to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
build=${SIGPROP_BUILD_DIR:-build-release}
jobs=${SIGPROP_JOBS:-2}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
      -DSIGPROP_BUILD_TESTS=OFF -DSIGPROP_BUILD_BENCH=OFF -DSIGPROP_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build" --target sigprop-demo -j "$jobs"
exec "$build/examples/sigprop-demo" "$@"
