#!/usr/bin/env bash
# bench/claims.sh: the paper's claims at small scale, as training sweeps (issue 14, items 3 and 4).
#   bench/claims.sh BUILD_DIR [fashion|shakespeare|both]        (default both)
# Writes the grids as `pathens sweep` INIs ([sweep] kind = train, docs/sweeps.md "Training sweeps"),
# runs them (locally, CLAIMS_JOBS points at a time; or as SLURM job arrays), aggregates them, and
# runs bench/claims_table.py, which prints the claims table (claim -> verdict -> evidence) and
# writes it to $OUT/claims.md. Nothing is computed here: every figure comes from the sweeps.
#
# The grid, per dataset (configs/fashion-vit-train.ini, configs/shakespeare-char-train.ini: their
# architecture, optimizer and schedule, with the step budget below):
#   dense.ini    dense training, train.seed = 1, 2, 3 (3 points)
#   ssa.ini      SSA unbiased and local x rho 4 and 8 x dense fine-tune 0, 5, 10, 25% of the steps,
#                train.seed = 1 (16 points)
#   seeds-1.ini, seeds-2.ini   the two SSA configurations with the lowest held-out validation
#                loss (train.val_span, scored at the last step; never the test data), chosen once
#                ssa.ini is done, at train.seed = 2, 3 (2 points each)
# Each point trains, then evaluates on the test data: dense and a K = 16 self-ensemble with its
# own scheme and rho (dense-trained points: sweep.dense_scheme at rho 4); K = 1 and 4 come from
# the ensemble-size curve. Test data: Fashion-MNIST's 10,000 test images; the last 10% of Tiny
# Shakespeare (0.9:1) in windows of 128 bytes. Held out for validation: the last 10% of the
# Fashion-MNIST training images (training on the first 54,000), Tiny Shakespeare 0.8:0.9
# (training on 0:0.8). Seeds change train.seed (initialisation and data order); the pathway
# samples (pathways.seed) stay the config's.
#
# Budget (measured on this machine, CPU seconds of one process, 1 BLAS thread; the full run has
# 2 x 23 points): a Fashion-MNIST training step of 128 images costs about 0.18 s (dense 0.20, SSA
# 0.17: 640-760 img/s per core), a K = 16 evaluation of the 10,000 test images 94 s; a Tiny
# Shakespeare step of 32 x 128 tokens 0.5 s (8,000-8,300 tok/s per core), a K = 16 evaluation of
# its test span (871 windows) 88 s. Fashion 23 x (1,000 x 0.18 + 94 + 5) = 6,400 s; Shakespeare
# 23 x (400 x 0.5 + 88) = 6,600 s; 13,000 CPU seconds in all, 1 h 48 min with both cores
# (CLAIMS_JOBS = 2) on an idle machine (1,000 ViT steps of 128 are the shipped config's; the char
# LM gets 400 steps of 32 x 128 tokens, where its config has 600). The models are smaller budgets than the shipped default: the claims are about the
# relative effects (SSA vs dense training on the same budget, ensemble vs dense of one model).
#
# Environment:
#   CLAIMS_JOBS=2     points run at once locally (each one process, 1 BLAS thread)
#   CLAIMS_SCALE=N    a scaled-down run that proves the pipeline: steps / N (at least 20),
#                     CLAIMS_SEEDS seeds (default 2 when scaled), the first 200 test images / 30
#                     test windows, validation on the last 1% of the training file (not 10%), into runs/claims-scale<N>/ (default 1: the full run)
#   CLAIMS_SEEDS=3    seeds for dense training and the two chosen SSA configurations
#   CLAIMS_SLURM=1    submit each grid with jobs/submit-sweep.sh instead (rerun this script once
#                     the arrays are done: it then selects, submits the seed grids, and at the end
#                     aggregates and prints the table)
#   CLAIMS_OUT=DIR    output folder (default runs/claims, runs/claims-scale<N> when scaled)
set -euo pipefail
BUILD=${1:?usage: bench/claims.sh BUILD_DIR [fashion|shakespeare|both]}
WHICH=${2:-both}
SRC=$(cd "$(dirname "$0")/.." && pwd)
PATHENS=$(cd "$BUILD" && pwd)/pathens
export PATHENS OPENBLAS_NUM_THREADS=1
SCALE=${CLAIMS_SCALE:-1}
JOBS=${CLAIMS_JOBS:-2}
if [ "$SCALE" -gt 1 ]; then SEEDS=${CLAIMS_SEEDS:-2}; OUT=${CLAIMS_OUT:-$SRC/runs/claims-scale$SCALE}
else SEEDS=${CLAIMS_SEEDS:-3}; OUT=${CLAIMS_OUT:-$SRC/runs/claims}; fi
case $WHICH in both) SETS=(fashion shakespeare) ;; fashion|shakespeare) SETS=("$WHICH") ;;
  *) echo "bench/claims.sh: unknown dataset '$WHICH' (fashion, shakespeare, both)" >&2; exit 1 ;; esac
[ -x "$PATHENS" ] || { echo "bench/claims.sh: no pathens binary in $BUILD" >&2; exit 1; }
FASHION=${PATHENS_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
mkdir -p "$OUT"
VAL_F=0.9:1 VAL_S=0.8:0.9 # held-out validation spans (scaled runs: the last 1%)
[ "$SCALE" -gt 1 ] && VAL_F=0.99:1 VAL_S=0.89:0.9

steps_of() { # the step budget of a dataset, scaled
    local s; case $1 in fashion) s=1000 ;; shakespeare) s=400 ;; esac
    s=$((s / SCALE)); [ $s -ge 20 ] || s=20; echo $s
}
seeds_list() { local i l=""; for i in $(seq "$1" "$2"); do l="$l${l:+, }$i"; done; echo "$l"; }

# write_grid DS NAME [pathways lines] [train lines]: one sweep INI ($OUT/DS/NAME.ini, run.out
# $OUT/DS/NAME); the training config is the dataset's shipped one with the grid's values
write_grid() {
    local ds=$1 name=$2 pw=$3 tr=$4 f="$OUT/$1/$2.ini" steps; steps=$(steps_of "$ds")
    mkdir -p "$OUT/$ds"
    {
        echo "; bench/claims.sh: $ds, $name (written by the script; rerunning it rewrites this file)"
        echo "[sweep]"
        echo "kind = train"
        if [ "$ds" = fashion ]; then
            cat <<EOF
dense_scheme = unbiased
[model]
config = $SRC/configs/arch/vit-fashion.json
[data]
path = $FASHION/train-images-idx3-ubyte.gz
span = 0:0.9
EOF
        else
            cat <<EOF
dense_scheme = local
[model]
config = $SRC/configs/arch/charlm-shakespeare.json
tokenizer = bytes
[data]
path = $SRC/data/tinyshakespeare.txt
span = 0:0.8
EOF
        fi
        echo "[pathways]"
        printf '%s\n' "$pw"
        if [ "$ds" = fashion ]; then
            cat <<EOF
seed = 1234
[train]
steps = $steps
batch = 128
grad_chunks = 4
lr = 1e-3
min_lr = 1e-5
warmup = $((steps / 10))
weight_decay = 0.05
clip = 1
val_span = $VAL_F
log_every = $(( steps / 20 > 0 ? steps / 20 : 1 ))
checkpoint_minutes = 2
EOF
        else
            cat <<EOF
sigma = 4
seed = 1234
[train]
steps = $steps
batch = 32
grad_chunks = 4
context = 128
lr = 2e-3
min_lr = 2e-5
warmup = $((steps / 10))
weight_decay = 0.05
clip = 1
val_span = $VAL_S
log_every = $(( steps / 20 > 0 ? steps / 20 : 1 ))
checkpoint_minutes = 2
EOF
        fi
        printf '%s\n' "$tr"
        if [ "$ds" = fashion ]; then
            echo "[eval.data]"
            echo "path = $FASHION/t10k-images-idx3-ubyte.gz"
            [ "$SCALE" -gt 1 ] && echo "limit = 200"
            echo "[eval.run]"
            echo "batch = 64"
        else
            cat <<EOF
[eval.data]
path = $SRC/data/tinyshakespeare.txt
span = 0.9:1
mode = windows
context = 128
stride = 128
EOF
            [ "$SCALE" -gt 1 ] && echo "limit = 30"
            echo "[eval.run]"
            echo "batch = 16"
        fi
        cat <<EOF
[eval.pathways]
members = 16
[eval.importance]
statistics = 0
[run]
out = $OUT/$ds/$name
EOF
    } >"$f"
    echo "$f"
}

# run_grids INI...: every point of the INIs, CLAIMS_JOBS at a time (a local job array: each point
# is `pathens sweep INI --index I`; finished points are skipped, interrupted ones resume); or
# under CLAIMS_SLURM=1 one job array per INI (jobs/submit-sweep.sh submits only what is left)
run_grids() {
    local ini n i
    if [ "${CLAIMS_SLURM:-0}" = 1 ]; then # once per grid: pending array tasks look missing to --status
        for ini in "$@"; do
            if [ -f "${ini%.ini}.submitted" ]; then
                echo "bench/claims.sh: $ini was submitted already (remove ${ini%.ini}.submitted to submit what is left)" >&2
            else
                "$SRC/jobs/submit-sweep.sh" "$ini" --cpus-per-task=1 && date >"${ini%.ini}.submitted"
            fi
        done
        return
    fi
    for ini in "$@"; do
        n=$("$PATHENS" sweep "$ini" --count)
        for i in $(seq 0 $((n - 1))); do printf '%s\0%s\0' "$ini" "$i"; done
    done | xargs -0 -n 2 -P "$JOBS" sh -c '
        log="${0%.ini}.log"
        "$PATHENS" sweep "$0" --index "$1" --quiet >>"$log" 2>&1 || { rc=$?; echo "bench/claims.sh: $0 point $1: exit $rc (log: $log)" >&2; exit 1; }' \
        || echo "bench/claims.sh: some points did not finish (above)" >&2
}

all_done() { # every point of the INIs is DONE; else their census
    local ini r=0
    for ini in "$@"; do "$PATHENS" sweep "$ini" --status >/dev/null 2>&1 || { r=1; "$PATHENS" sweep "$ini" --status >&2 || true; }; done
    return $r
}

# 1. the grids fixed before any training
PH1=()
for ds in "${SETS[@]}"; do
    steps=$(steps_of "$ds")
    PH1+=("$(write_grid "$ds" dense "scheme = dense
ratio = 4" "seed = $(seeds_list 1 "$SEEDS")
finetune_dense_steps = 0")")
    PH1+=("$(write_grid "$ds" ssa "scheme = unbiased, local
ratio = 4, 8" "seed = 1
finetune_dense_steps = 0, $((steps * 5 / 100)), $((steps * 10 / 100)), $((steps * 25 / 100))")")
done
n1=0; for f in "${PH1[@]}"; do n1=$((n1 + $("$PATHENS" sweep "$f" --count))); done
echo "== phase 1: ${#PH1[@]} grids, $n1 points into $OUT" >&2
start=$(date +%s)
run_grids "${PH1[@]}"
if ! all_done "${PH1[@]}"; then
    echo "bench/claims.sh: phase 1 is not finished (pathens sweep INI --status); rerun this script when it is" >&2
    exit 75
fi

# 2. the two SSA configurations with the lowest held-out validation loss, at the other seeds
PH2=()
for ds in "${SETS[@]}"; do
    "$PATHENS" sweep "$OUT/$ds/ssa.ini" --aggregate
    [ "$SEEDS" -gt 1 ] || continue
    /usr/bin/python3 - "$OUT/$ds/ssa/sweep.csv" >"$OUT/$ds/chosen.txt" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["val_loss"]]
rows.sort(key=lambda r: float(r["val_loss"]))  # held-out validation (train.val_span), never the test data
for r in rows[:2]:
    print(r["pathways.scheme"], r["pathways.ratio"], r["train.finetune_dense_steps"], r["val_loss"])
PY
    k=0
    while read -r scheme ratio ft vl; do
        k=$((k + 1))
        echo "== $ds: chose $scheme rho $ratio fine-tune $ft (validation loss $vl) for seeds 2..$SEEDS" >&2
        PH2+=("$(write_grid "$ds" "seeds-$k" "scheme = $scheme
ratio = $ratio" "seed = $(seeds_list 2 "$SEEDS")
finetune_dense_steps = $ft")")
    done <"$OUT/$ds/chosen.txt"
done
if [ ${#PH2[@]} -gt 0 ]; then
    run_grids "${PH2[@]}"
    if ! all_done "${PH2[@]}"; then
        echo "bench/claims.sh: phase 2 is not finished (pathens sweep INI --status); rerun this script when it is" >&2
        exit 75
    fi
fi
[ "${CLAIMS_SLURM:-0}" = 1 ] || echo "== the points ran in $(( $(date +%s) - start )) s (CLAIMS_JOBS=$JOBS)" >&2

# 3. aggregate every grid, then the table
for ini in "${PH1[@]}" "${PH2[@]}"; do "$PATHENS" sweep "$ini" --aggregate; done
CLAIMS_CMD="$([ "$SCALE" -gt 1 ] && echo "CLAIMS_SCALE=$SCALE ")bench/claims.sh $BUILD $WHICH" \
    /usr/bin/python3 "$SRC/bench/claims_table.py" "$OUT" "${SETS[@]}" | tee "$OUT/claims.md"
