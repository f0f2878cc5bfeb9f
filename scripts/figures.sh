#!/usr/bin/env bash
# Redraws the signal-propagation figures of Kedia et al. (ICML 2024) into docs/figures/:
#   fig1-preln-forward.png    Pre-LN + Xavier, stream variance against the layer
#   fig2-preln-backward.png   Pre-LN + Xavier, gradient variance against the layer
#   fig3-postln-backward.png  Post-LN + Xavier, gradient variance against the layer
#   fig4-dslm.png             the same quantities under DeepScaleLM (Pre- and Post-LN)
# Every model has 192 layers, GELU, no dropout. Each figure shows
#   - theory (`sigprop predict --csv`) and Monte-Carlo measurements (`sigprop-model-mc
#     --csv`, +- one standard error) for a model small enough for a CPU: d 64, 4 heads,
#     d_ff 256, L 32, input (0, 1, 0), output gradient (1, 0);
#   - theory only for the paper's width: d 1024, 16 heads, d_ff 4096, L 512 with BERT's
#     embedding (the model of `sigprop predict` without arguments).
# The CSV files behind the figures are written next to them, so the figures can be redrawn
# with --plot-only (no computation).
#
# Usage: scripts/figures.sh [--no-mc] [--plot-only] [--sequences N] [BUILD_DIR]
#   BUILD_DIR    holds cli/sigprop and validation/sigprop-model-mc (default build-release);
#                if either is missing it is configured and built there (Release, a few
#                minutes on 2 cores).
#   --no-mc      theory only: keeps the mc-*.csv already in docs/figures (if any) and
#                redraws; seconds.
#   --plot-only  redraws the PNGs from the CSVs in docs/figures; about a second.
#   --sequences  Monte-Carlo sequences per model (default 64, 2 per weight draw); the
#                Monte-Carlo's time is linear in it.
# SIGPROP_JOBS sets the threads (default 2).
#
# Time on 2 shared cores of an AMD EPYC (g++ 12, Release, other jobs running): the whole
# command 3.5-4 min. Monte-Carlo 40-70 s per model (four models, 64 sequences each, 2
# threads); the 8 theory predictions and the 4 plots together about 1 s (--no-mc,
# --plot-only). Building the two programs first, if needed, takes a few more minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "figures.sh: $*" >&2; exit 2; }

mc=1 compute=1 sequences=64 build=build-release
while (($# > 0)); do
    case "$1" in
        --no-mc) mc=0 ;;
        --plot-only) mc=0 compute=0 ;;
        --sequences) (($# >= 2)) || die "--sequences needs a number"; sequences=$2; shift ;;
        --sequences=*) sequences=${1#*=} ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *) build=$1 ;;
    esac
    shift
done
[[ $sequences =~ ^[0-9]+$ ]] && ((sequences >= 2)) || die "--sequences wants an integer >= 2, got '$sequences'"
jobs=${SIGPROP_JOBS:-2}
out=docs/figures
mkdir -p "$out"

command -v gnuplot >/dev/null || die "needs gnuplot (Debian: apt-get install gnuplot-nox)"
if gnuplot -e 'set terminal pngcairo' 2>/dev/null; then term="pngcairo size 900,620 font ',11'"
else term="png size 900,620"; fi

# --- data --------------------------------------------------------------------------
sigprop=$build/cli/sigprop
model_mc=$build/validation/sigprop-model-mc
if ((compute)) && { [[ ! -x $sigprop ]] || { ((mc)) && [[ ! -x $model_mc ]]; }; }; then
    echo "figures.sh: building sigprop and sigprop-model-mc in $build" >&2
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSIGPROP_BUILD_VALIDATION=ON \
          -DSIGPROP_BUILD_TESTS=OFF -DSIGPROP_BUILD_BENCH=OFF -DSIGPROP_BUILD_EXAMPLES=OFF >/dev/null
    cmake --build "$build" --target sigprop-cli sigprop-model-mc -j "$jobs" >/dev/null
fi

small=(--layers 192 --d-model 64 --d-ff 256 --heads 4 --seq-len 32 --act gelu)
configs=("pre xavier" "post xavier" "pre dslm" "post dslm")

# keep COLUMNS... < CSV > CSV: the named columns only (by header, so the tools may add
# columns), numbers with 6 significant digits; anything else ("overflow") passes through.
keep() {
    awk -F, -v want="$*" 'BEGIN { OFS = ","; n = split(want, w, " ") }
        NR == 1 { for (i = 1; i <= NF; i++) at[$i] = i
                  for (j = 1; j <= n; j++) if (!(w[j] in at)) { print "figures.sh: no column \"" w[j] "\" in the CSV" > "/dev/stderr"; exit 3 }
                  print want; next }
        { line = ""
          for (j = 1; j <= n; j++) { v = $(at[w[j]])
              if (v ~ /^[-+]?[0-9.]+([eE][-+]?[0-9]+)?$/) v = sprintf("%.6g", v)
              line = line (j > 1 ? "," : "") v }
          print line }' | tr ' ' ','
}
theory_cols="point layer kind var corr grad_var grad_corr"
mc_cols="index boundary x_var x_var_se x_corr x_corr_se g_var g_var_se g_corr g_corr_se"

if ((compute)); then
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    ((mc)) && : >"$scratch/summary"
    for c in "${configs[@]}"; do
        read -r norm scheme <<<"$c"
        t0=$SECONDS
        "$sigprop" predict "${small[@]}" --norm "$norm" --scheme "$scheme" --dropout 0 \
            --final-norm false --input-mean 0 --input-var 1 --input-corr 0 --csv \
            | keep $theory_cols >"$out/theory-small-$norm-$scheme.csv"
        # The paper's width: the built-in model of `sigprop predict` (BERT-large, 192 layers).
        "$sigprop" predict --norm "$norm" --scheme "$scheme" --dropout 0 --csv \
            | keep $theory_cols >"$out/theory-paper-$norm-$scheme.csv"
        if ((mc)); then
            "$model_mc" "${small[@]}" --norm "$norm" --init "$scheme" --sequences "$sequences" \
                --per-draw 2 --threads "$jobs" --csv "$scratch/mc.csv" >"$scratch/mc.log"
            keep $mc_cols <"$scratch/mc.csv" >"$out/mc-$norm-$scheme.csv"
            grep '^#' "$scratch/mc.log" >>"$scratch/summary" || true
            echo "figures.sh: $norm-LN $scheme: theory and Monte-Carlo ($sequences sequences)" \
                 "in $((SECONDS - t0)) s" >&2
        fi
    done
    # The model MC's own agreement scores (R^2 of log, largest relative error) per run.
    ((mc)) && mv "$scratch/summary" "$out/mc-summary.txt"
fi
for c in "${configs[@]}"; do
    read -r norm scheme <<<"$c"
    for f in theory-small theory-paper; do
        [[ -s $out/$f-$norm-$scheme.csv ]] || die "missing $out/$f-$norm-$scheme.csv (run without --plot-only)"
    done
done

# --- plots ---------------------------------------------------------------------------
# x = boundary index / 2: layer l's attention block ends at l - 0.5, its FFN block at l.
# Measured points every 8 layers (every 16th boundary) keep the error bars readable.
# Columns of the kept CSVs: theory 4 var, 6 grad_var; Monte-Carlo 3/4 x_var/se, 7/8 g_var/se.
mc_note="d 64, 4 heads, d_ff 256, L 32"
paper_note="d 1024, 16 heads, d_ff 4096, L 512"
have_mc() { [[ -s $out/mc-$1.csv ]]; }

# plot_items CONFIG COL_THEORY COL_MC COL_SE COLOUR LABEL: gnuplot plot items for one model.
plot_items() {
    local cfg=$1 ct=$2 cm=$3 cs=$4 colour=$5 label=$6
    local items="'$out/theory-small-$cfg.csv' skip 1 using (\$1/2):$ct with lines lw 2 lc rgb '$colour' title '$label theory, $mc_note'"
    if have_mc "$cfg"; then
        items+=", '$out/mc-$cfg.csv' skip 1 every 16 using (\$1/2):$cm:$cs with yerrorbars pt 7 ps 0.9 lc rgb '$colour' title '$label measured (Monte-Carlo, +- 1 s.e.), same model'"
    fi
    items+=", '$out/theory-paper-$cfg.csv' skip 1 using (\$1/2):$ct with lines lw 2 dt 2 lc rgb '$colour' title '$label theory only, $paper_note'"
    printf '%s' "$items"
}

# off_panel LO HI [FILE COL NAME]...: a gnuplot label for each curve that leaves the
# panel's y range, so that a clipped curve says so (with its range) instead of vanishing.
off_panel() {
    local lo=$1 hi=$2 n=0
    shift 2
    while (($# >= 3)); do
        awk -F, -v c="$2" -v lo="$lo" -v hi="$hi" -v name="$3" -v n="$n" '
            NR > 1 && $c ~ /^[-+0-9.eE]+$/ { v = $c + 0; if (!m++) { mn = mx = v }
                                             if (v < mn) mn = v; if (v > mx) mx = v }
            END { if (m && (mn < lo || mx > hi))
                      printf "set label %d \"%s leaves the panel: it runs from %.3g to %.3g\" " \
                             "at graph 0.98, graph %.2f right font \",9\"\n", 10 + n, name, mn, mx, 0.05 + 0.05 * n }' "$1"
        n=$((n + 1))
        shift 3
    done
}

common="set datafile separator ','
set terminal $term
set grid
set key box opaque noenhanced font ',9'
set xlabel 'layer'
set xrange [0:192]
set xtics 24
set logscale y
set format y '%g'"

gp() { gnuplot 2>&1 | { grep -v '^$' || true; } >&2; }

gp <<GP
$common
set output '$out/fig1-preln-forward.png'
set title 'Pre-LN, Xavier, 192 layers: the stream variance grows with depth' noenhanced
set ylabel 'forward: variance of the residual stream'
set key top left
set yrange [0.5:*]
plot $(plot_items pre-xavier 4 3 4 '#1f5fa8' 'Pre-LN Xavier')
GP
gp <<GP
$common
set output '$out/fig2-preln-backward.png'
set title 'Pre-LN, Xavier, 192 layers: the gradient grows toward the input' noenhanced
set ylabel 'backward: variance of the gradient at the stream'
set key top right
set yrange [0.5:*]
plot $(plot_items pre-xavier 6 7 8 '#1f5fa8' 'Pre-LN Xavier')
GP
# The gradient changes fastest in the last ten layers: measured points every layer there.
tail_points=""
have_mc post-xavier && tail_points=", '$out/mc-post-xavier.csv' skip 1 every 2::362 using (\$1/2):7:8 with yerrorbars pt 7 ps 0.6 lc rgb '#b03030' notitle"
gp <<GP
$common
set output '$out/fig3-postln-backward.png'
set title 'Post-LN, Xavier, 192 layers: the gradient collapses below the last layers' noenhanced
set ylabel 'backward: variance of the gradient at the stream'
set key top right
plot $(plot_items post-xavier 6 7 8 '#b03030' 'Post-LN Xavier')$tail_points
GP
gp <<GP
$common
set terminal ${term/900,620/1300,620}
set output '$out/fig4-dslm.png'
set multiplot layout 1,2 title 'DeepScaleLM, 192 layers: variance and gradient stay within a small factor' noenhanced
set yrange [0.1:10]
set key top left font ',8'
set title 'forward: variance of the residual stream'
$(off_panel 0.1 10 "$out/theory-small-pre-dslm.csv" 4 "Pre-LN DSLM theory (d 64)" \
                   "$out/theory-small-post-dslm.csv" 4 "Post-LN DSLM theory (d 64)")
plot $(plot_items pre-dslm 4 3 4 '#1f5fa8' 'Pre-LN DSLM'), $(plot_items post-dslm 4 3 4 '#b03030' 'Post-LN DSLM')
unset label
set title 'backward: variance of the gradient at the stream'
$(off_panel 0.1 10 "$out/theory-small-pre-dslm.csv" 6 "Pre-LN DSLM theory (d 64)" \
                   "$out/theory-small-post-dslm.csv" 6 "Post-LN DSLM theory (d 64)")
plot $(plot_items pre-dslm 6 7 8 '#1f5fa8' 'Pre-LN DSLM'), $(plot_items post-dslm 6 7 8 '#b03030' 'Post-LN DSLM')
unset multiplot
GP
echo "figures.sh: wrote $out/fig1-preln-forward.png fig2-preln-backward.png fig3-postln-backward.png fig4-dslm.png" >&2
