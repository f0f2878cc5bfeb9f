#!/usr/bin/env bash
# The test suite again, built with AddressSanitizer and UndefinedBehaviorSanitizer in a
# build folder of its own (CI runs it after scripts/test.sh). Any sanitizer report fails
# the test that triggered it: UBSan does not recover, ASan aborts on the first error.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${SIGPROP_ASAN_BUILD_DIR:-build-asan}
jobs=${SIGPROP_JOBS:-2}
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# -O1 keeps the Monte-Carlo tests fast enough while leaving the sanitizers' checks intact.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_FLAGS="$flags" \
      -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
      -DSIGPROP_BUILD_TESTS=ON -DSIGPROP_BUILD_BENCH=OFF -DSIGPROP_BUILD_EXAMPLES=ON
cmake --build "$build" -j "$jobs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build" -j "$jobs" --output-on-failure
