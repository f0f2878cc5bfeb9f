#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan) and runs each for
# SECONDS (default 60) from its seed corpus in fuzz/corpus/TARGET. New inputs the fuzzer
# finds go to a scratch corpus in the build folder, never into the repository; a crash,
# a sanitizer report or an unexpected exception fails the script and leaves the input
# (crash-*, leak-*, timeout-*) in the build folder.
#   scripts/fuzz.sh [SECONDS]      SIGPROP_FUZZ_TARGETS="formulas predict" to run some only
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=${1:-60}
build=${SIGPROP_FUZZ_BUILD_DIR:-build-fuzz}
jobs=${SIGPROP_JOBS:-2}
targets=${SIGPROP_FUZZ_TARGETS:-config grid formulas predict}

cmake -S fuzz -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
for t in $targets; do cmake --build "$build" -j "$jobs" --target "fuzz_$t"; done

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for t in $targets; do
    scratch="$build/corpus/$t"
    mkdir -p "$scratch"
    echo "fuzz: $t for ${seconds}s"
    # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: a runaway allocation.
    (cd "$build" && "./fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "corpus/$t" "$root/fuzz/corpus/$t" 2>"fuzz_$t.log") || {
        tail -n 40 "$build/fuzz_$t.log" >&2
        echo "fuzz: $t FAILED (input saved in $build/)" >&2
        # CI sets SIGPROP_FUZZ_REPORT_ONLY=1: a random search may find a new input on any
        # run, which is reported (above) without failing an unrelated submission.
        [[ ${SIGPROP_FUZZ_REPORT_ONLY:-0} == 1 ]] && continue
        exit 1
    }
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$build/fuzz_$t.log" | sed "s/^/fuzz: $t /"
done
