#!/usr/bin/env bash
# Usage: sigprop_plot.sh PATH/TO/sigprop
# --plot writes a non-empty PNG when gnuplot is installed; exits 77 (ctest: skipped) when not.
set -uo pipefail
exe=$1
command -v gnuplot >/dev/null || { echo "gnuplot not installed: skipped"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$exe" predict gpt2-small --plot "$work/p.png" >/dev/null || { echo "FAIL: predict --plot"; exit 1; }
# A PNG starts with \x89PNG.
[[ -s $work/p.png && $(head -c 4 "$work/p.png" | tail -c 3) == PNG ]] || { echo "FAIL: no PNG written"; exit 1; }
echo "plot: ok"
