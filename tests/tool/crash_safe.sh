#!/usr/bin/env bash
# Usage: crash_safe.sh CHECK TOOL...
# Crash safety and determinism of the tools that write files (docs/RELIABILITY.md,
# "Crash-safe tools"). One CHECK per ctest entry, each a few seconds:
#   validate-signals  SIGPROP_VALIDATE   SIGINT / SIGTERM mid-sweep: status 130 / 143, no file left
#   validate-resume   SIGPROP_VALIDATE   an interrupted shard resumed is byte-identical; a foreign journal: status 2
#   validate-determinism SIGPROP_VALIDATE  --threads 1, --threads 2, OMP_NUM_THREADS=2: the same bytes
#   model-mc          SIGPROP_MODEL_MC   signals as above; the same bytes at 1 and 2 threads and
#                                        from --replay of its own JSON
#   sigprop           SIGPROP            predict --plot and init: interrupted, failed, repeated
set -uo pipefail
# Background jobs of a script start with SIGINT ignored (and the tools keep an ignored
# signal ignored, as nohup needs): `env --default-signal` gives them the default back.
background() { env --default-signal=INT,TERM "$@" & }
check=$1
shift
# shellcheck source=harness.sh
source "$(dirname "$0")/harness.sh"

# wait_for GLOB PID: waits (up to 20 s) until a file matching GLOB exists, while PID lives.
wait_for() {
    for _ in $(seq 200); do
        compgen -G "$1" >/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# interrupted SIGNAL WANT_STATUS NAME COMMAND...: starts COMMAND in $work/run, waits until
# its temporary output exists, sends SIGNAL, then checks the status and that the directory
# holds no output or temporary file (only a journal may stay).
interrupted() {
    local sig=$1 want=$2 name=$3
    shift 3
    rm -rf "$work/run" && mkdir "$work/run"
    background "$@" >"$work/run.out" 2>"$work/run.err"
    local pid=$!
    if ! wait_for "$work/run/*.tmp.*" "$pid"; then
        bad "$name: no temporary output appeared: $(cat "$work/run.err")"
        kill -KILL "$pid" 2>/dev/null
        wait "$pid"
        return
    fi
    sleep 0.3
    kill -"$sig" "$pid"
    wait "$pid"
    local got=$?
    [[ $got -eq $want ]] || { bad "$name: SIG$sig gave status $got, want $want"; return; }
    local left
    left=$(cd "$work/run" && ls | grep -v '\.journal$')
    [[ -z $left ]] || { bad "$name: SIG$sig left: $left"; return; }
    ok
}

# A grid slow enough to interrupt (a few seconds; 16 points of a wide linear layer).
cat >"$work/slow.json" <<'EOF'
{"name": "slow", "grids": [{"component": "linear", "sequences": 256,
  "axes": {"d_in": 96, "d_out": 96, "sigma_w": [0.1, 0.2, 0.3, 0.4], "x_mean": [0, 1], "x_var": [0.5, 2],
           "x_corr": 0.5, "g_var": 1, "g_corr": 0.3, "L": 32}}]}
EOF

case $check in
validate-signals)
    exe=$1
    interrupted INT 130 "sigprop-validate" "$exe" --grid "$work/slow.json" --threads 1 --quiet --json "$work/run/out.json"
    interrupted TERM 143 "sigprop-validate" "$exe" --grid "$work/slow.json" --threads 1 --quiet --json "$work/run/out.json"
    # An unwritable output fails at once, with one line, before the sweep.
    "$exe" --grid quick --quiet --json "$work/absent/out.json" >/dev/null 2>"$work/e"
    [[ $? -eq 2 && $(wc -l <"$work/e") -eq 1 ]] && grep -q "cannot write" "$work/e" && ok || bad "unwritable output: $(cat "$work/e")"
    ;;
validate-resume)
    exe=$1
    run() { "$exe" --grid "$work/slow.json" --shard 1/2 --seed 7 --threads 1 --quiet "$@"; }
    run --json "$work/whole.json" >/dev/null || bad "uninterrupted shard"
    [[ ! -e $work/whole.json.journal ]] && ok || bad "a finished run kept its journal"
    # Interrupted once at least two points are in the journal (header + 2 lines).
    mkdir "$work/r"
    background "$exe" --grid "$work/slow.json" --shard 1/2 --seed 7 --threads 1 --quiet --json "$work/r/out.json" >/dev/null
    pid=$!
    for _ in $(seq 300); do
        [[ $(cat "$work/r/out.json.journal" 2>/dev/null | wc -l) -ge 3 ]] && break
        sleep 0.05
    done
    kill -INT "$pid"
    wait "$pid"
    [[ $? -eq 130 ]] && ok || bad "interrupted shard: status"
    lines=$(wc -l <"$work/r/out.json.journal")
    [[ ! -e $work/r/out.json && $lines -ge 3 && $lines -lt 9 ]] && ok || bad "interrupted shard: journal of $lines lines (want 3..8), or an output"
    # A journal of another run (another seed) is refused, with one line, and left alone.
    "$exe" --grid "$work/slow.json" --shard 1/2 --seed 8 --threads 1 --quiet --json "$work/r/out.json" --resume \
        >/dev/null 2>"$work/e"
    [[ $? -eq 2 && $(wc -l <"$work/e") -eq 1 ]] && grep -q "belongs to another run (its seed is 7" "$work/e" && ok ||
        bad "foreign journal: $(cat "$work/e")"
    [[ $(wc -l <"$work/r/out.json.journal") -eq $lines && ! -e $work/r/out.json ]] && ok || bad "a refused resume touched the files"
    # A journal that is not one (a damaged first line) is refused too.
    mkdir "$work/d" && echo garbage >"$work/d/out.json.journal"
    run --json "$work/d/out.json" --resume >/dev/null 2>"$work/e"
    [[ $? -eq 2 && $(wc -l <"$work/e") -eq 1 ]] && grep -q "is damaged" "$work/e" && ok || bad "damaged journal: $(cat "$work/e")"
    # A torn last line (a kill mid-write) is dropped; resumed, the shard is byte-identical.
    printf '{"index": 1, "comp' >>"$work/r/out.json.journal"
    run --json "$work/r/out.json" --resume >"$work/resumed.txt" || bad "resume"
    cmp "$work/whole.json" "$work/r/out.json" && ok || bad "resumed shard differs from the uninterrupted one"
    grep -q "points from the journal" "$work/resumed.txt" && ok || bad "resume did not use the journal"
    [[ ! -e $work/r/out.json.journal ]] && ok || bad "a finished resume kept its journal"
    # --resume without a journal runs afresh; without --json it is an error.
    run --json "$work/fresh.json" --resume >/dev/null && cmp -s "$work/whole.json" "$work/fresh.json" && ok ||
        bad "--resume without a journal"
    "$exe" --grid quick --resume >/dev/null 2>"$work/e"
    [[ $? -eq 2 ]] && grep -q "needs --json" "$work/e" && ok || bad "--resume without --json: $(cat "$work/e")"
    ;;
validate-determinism)
    exe=$1
    "$exe" --grid quick --threads 1 --quiet --json "$work/t1.json" >/dev/null || bad "1 thread"
    "$exe" --grid quick --threads 2 --quiet --json "$work/t2.json" >/dev/null || bad "2 threads"
    OMP_NUM_THREADS=2 "$exe" --grid quick --quiet --json "$work/omp.json" >/dev/null || bad "OMP_NUM_THREADS"
    cmp "$work/t1.json" "$work/t2.json" && cmp "$work/t1.json" "$work/omp.json" && ok || bad "thread counts differ"
    ;;
model-mc)
    exe=$1
    slow=(--layers 24 --d-model 64 --d-ff 256 --seq-len 32 --sequences 256 --threads 1)
    interrupted INT 130 "sigprop-model-mc" "$exe" "${slow[@]}" --csv "$work/run/out.csv" --json "$work/run/out.json"
    interrupted TERM 143 "sigprop-model-mc" "$exe" "${slow[@]}" --csv "$work/run/out.csv" --json "$work/run/out.json"
    small=(--layers 2 --d-model 16 --d-ff 32 --heads 2 --seq-len 8 --sequences 16 --per-draw 2 --blocks 8 --seed 5)
    "$exe" "${small[@]}" --threads 1 --csv "$work/a.csv" --json "$work/a.json" >/dev/null || bad "model-mc, 1 thread"
    "$exe" "${small[@]}" --threads 2 --csv "$work/b.csv" --json "$work/b.json" >/dev/null || bad "model-mc, 2 threads"
    OMP_NUM_THREADS=2 "$exe" "${small[@]}" --csv "$work/c.csv" --json "$work/c.json" >/dev/null || bad "OMP_NUM_THREADS"
    for f in csv csv.layers.csv json; do
        cmp "$work/a.$f" "$work/b.$f" && cmp "$work/a.$f" "$work/c.$f" && ok || bad "model-mc .$f differs across threads"
    done
    # --replay of a run's own JSON reproduces every output byte for byte (an encoder-decoder:
    # its cross-attention weights too).
    ed=("${small[@]}" --arch encoder_decoder --threads 1)
    "$exe" "${ed[@]}" --csv "$work/ed.csv" --json "$work/ed.json" >/dev/null || bad "model-mc, encoder-decoder"
    "$exe" "${ed[@]}" --replay "$work/ed.json" --csv "$work/rp.csv" --json "$work/rp.json" >/dev/null || bad "replay"
    for f in csv csv.layers.csv json; do
        cmp "$work/ed.$f" "$work/rp.$f" && ok || bad "model-mc --replay .$f differs from the run"
    done
    "$exe" "${small[@]}" --json "$work/absent/out.json" >/dev/null 2>"$work/e"
    [[ $? -eq 2 ]] && grep -q "cannot write" "$work/e" && ok || bad "model-mc, unwritable output: $(cat "$work/e")"
    "$exe" "${small[@]}" --arch encoder_decoder --init dslm --dslm-resolved >/dev/null 2>"$work/e"
    [[ $? -eq 2 ]] && grep -q "with forward = resolved" "$work/e" && ok || bad "model-mc, --dslm-resolved encoder-decoder: $(cat "$work/e")"
    ;;
sigprop)
    exe=$1
    # A stand-in gnuplot that writes part of the image and hangs, as a slow gnuplot would.
    cat >"$work/gnuplot" <<'EOF'
#!/usr/bin/env bash
out=$(sed -n "s/^set output '\(.*\)'$/\1/p")
printf 'partial' >"$out"
echo $$ >"${out%/*}/../gnuplot.pid"
[[ ${FAKE_GNUPLOT:-hang} == fail ]] && exit 1
exec sleep 60
EOF
    chmod +x "$work/gnuplot"
    export SIGPROP_GNUPLOT=$work/gnuplot
    for s in INT:130 TERM:143; do
        TMPDIR=$work/run interrupted "${s%:*}" "${s#*:}" "sigprop predict --plot" \
            "$exe" predict bert-base --plot "$work/run/p.png"
        kill "$(cat "$work/gnuplot.pid")" 2>/dev/null
    done
    rm -rf "$work/run" && mkdir "$work/run"
    FAKE_GNUPLOT=fail TMPDIR=$work/run "$exe" predict bert-base --plot "$work/run/p.png" >/dev/null 2>"$work/e"
    [[ -z $(ls "$work/run") ]] && grep -q "could not write" "$work/e" && ok || bad "failed gnuplot left: $(ls "$work/run")"
    unset SIGPROP_GNUPLOT
    # init: an unwritable path fails with one line and no file; the same command, the same bytes.
    "$exe" init gpt2-small -o "$work/absent/i.json" 2>"$work/e"
    [[ $? -eq 2 ]] && grep -q "cannot write" "$work/e" && ok || bad "init, unwritable output: $(cat "$work/e")"
    for k in 1 2; do
        "$exe" init gpt2-small -o "$work/init$k.json" || bad "init"
        OMP_NUM_THREADS=$k "$exe" predict gpt2-small --json >"$work/predict$k.json" || bad "predict --json"
        "$exe" predict gpt2-small --csv >"$work/predict$k.csv" || bad "predict --csv"
    done
    for f in init1.json:init2.json predict1.json:predict2.json predict1.csv:predict2.csv; do
        cmp "$work/${f%:*}" "$work/${f#*:}" && ok || bad "$f differ"
    done
    [[ -z $(compgen -G "$work/*.tmp.*") ]] && ok || bad "init left a temporary file"
    ;;
*)
    echo "unknown check $check"
    exit 2
    ;;
esac

finish "$check"
