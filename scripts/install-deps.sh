#!/usr/bin/env bash
# Installs, with apt-get, whatever a Debian 12 machine lacks to build and test sigprop.
# Fast and silent when everything is already there (no apt-get update in that case).
# Run as root, or as a user with sudo.
set -euo pipefail

packages=(
    build-essential cmake              # compiler, make, CMake
    libboost-math1.81-dev              # the library's one dependency (Boost.Math)
    libeigen3-dev librandom123-dev     # the Monte-Carlo validator
    doctest-dev libbenchmark-dev       # tests and benchmarks
    nlohmann-json3-dev libcli11-dev    # the command-line tools
    python3                            # the command-line tests compare JSON outputs
    gnuplot-nox                        # sigprop predict --plot (optional at run time)
    clang libclang-rt-14-dev           # scripts/fuzz.sh: libFuzzer and its sanitizer runtimes
)

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=()
if ((EUID != 0)); then
    command -v sudo >/dev/null || { echo "install-deps: run as root (or install sudo)" >&2; exit 1; }
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
