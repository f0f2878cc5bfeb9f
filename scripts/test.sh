#!/usr/bin/env bash
# The README's second command (and what CI runs): configures and builds everything -
# library, validator, tests, benchmarks, examples - in a build folder of its own, then
# runs the whole test suite, package tests included.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${SIGPROP_TEST_BUILD_DIR:-build-test}
jobs=${SIGPROP_JOBS:-2}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
      -DSIGPROP_BUILD_TESTS=ON -DSIGPROP_BUILD_BENCH=ON -DSIGPROP_BUILD_EXAMPLES=ON
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" -j "$jobs" --output-on-failure
