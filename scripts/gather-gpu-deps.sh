#!/usr/bin/env bash
# Usage: scripts/gather-gpu-deps.sh [DEST]   (default DEST: .carry/deps, ignored by git)
#
# Copies the Debian-packaged headers and CMake package files that building the GPU
# validator needs into DEST/usr, keeping the /usr layout so that every package file finds
# its headers relative to itself. A GPU machine with nvcc and CMake but none of our Debian
# packages then builds with -DCMAKE_PREFIX_PATH=DEST/usr (scripts/gpu-check.sh does this).
# Boost is large, so only the Boost headers the tools actually include are copied (found
# by asking the compiler); Eigen, Random123, CLI11, nlohmann-json and doctest are whole.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.carry/deps}
rm -rf "$dest"
mkdir -p "$dest/usr/include" "$dest/usr/lib/cmake" "$dest/usr/share/cmake" "$dest/usr/share/eigen3" \
         "$dest/usr/lib/x86_64-linux-gnu/cmake"

copy() {  # copy PATH-UNDER-/usr...: keeps the path below $dest
    for p in "$@"; do
        mkdir -p "$dest/$(dirname "$p")"
        cp -a "$p" "$dest/$p"
    done
}

copy /usr/include/eigen3 /usr/include/Random123 /usr/include/CLI /usr/include/nlohmann /usr/include/doctest
copy /usr/share/eigen3/cmake /usr/share/cmake/CLI11 /usr/share/cmake/nlohmann_json /usr/lib/cmake/doctest
copy /usr/lib/x86_64-linux-gnu/cmake/Boost-1.81.0 /usr/lib/x86_64-linux-gnu/cmake/boost_headers-1.81.0 \
     /usr/lib/x86_64-linux-gnu/cmake/BoostDetectToolset-1.81.0.cmake
# Debian's doctest package file names /usr literally; make it relative like the others.
sed -i 's|^set(_IMPORT_PREFIX "/usr")|get_filename_component(_IMPORT_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)|' \
    "$dest/usr/lib/cmake/doctest/doctestTargets.cmake"

# The Boost headers of every translation unit the GPU check builds (the tools and the
# doctest suite), as g++ lists them.
flags=(-std=c++20 -fopenmp -Iinclude -Ivalidation/include -Itests -I/usr/include/eigen3)
cccl=$(ls -d /usr/local/cuda/include/cccl 2>/dev/null || true)
[[ -n $cccl ]] && flags+=(-isystem "$cccl" -DTHRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_OMP)
list=$(mktemp)
trap 'rm -f "$list"' EXIT
for tu in validation/tools/*.cpp tests/main.cpp $(find tests -name '*.test.cpp'); do
    g++ "${flags[@]}" -M "$tu" | tr ' \\' '\n\n' | { grep '^/usr/include/boost/' || true; } >>"$list"
done
sort -u "$list" | while read -r h; do copy "$h"; done
echo "gathered into $dest: $(du -sh "$dest" | cut -f1), $(find "$dest" -type f | wc -l) files"
