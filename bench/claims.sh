#!/usr/bin/env bash
# bench/claims.sh: the paper's claims at small scale (docs/results.md, "Training with SSA").
#   bench/claims.sh BUILD_DIR fashion|shakespeare [RANKS]
# Trains five models with the same architecture and budget (configs/fashion-vit-train.ini or
# configs/shakespeare-char-train.ini): dense; SSA unbiased and local at rho 4 and 8, each ending
# with the config's dense fine-tune (the model just before the fine-tune is kept in
# pre_finetune/). Then evaluates on the held-out set (Fashion-MNIST's 10,000 test images; the
# last 10% of Tiny Shakespeare): dense inference and a K = 16 self-ensemble with the model's own
# training scheme and rho (the curve gives K = 4). Prints a markdown table. Nothing is tuned on
# the test set: every hyperparameter is the config's, fixed before any test evaluation.
set -euo pipefail
BUILD=${1:?usage: bench/claims.sh BUILD_DIR fashion|shakespeare [RANKS]}
DS=${2:?usage: bench/claims.sh BUILD_DIR fashion|shakespeare [RANKS]}
RANKS=${3:-2}
SRC=$(cd "$(dirname "$0")/.." && pwd)
PATHENS=$(cd "$BUILD" && pwd)/pathens
OUT=$SRC/runs/claims/$DS
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPI=(mpirun -n "$RANKS" --oversubscribe)
case $DS in
  fashion)
    TRAIN=$SRC/configs/fashion-vit-train.ini
    EVAL_DATA=(--set data.path=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz --set data.span=0:1 --set run.batch=64) ;;
  shakespeare)
    TRAIN=$SRC/configs/shakespeare-char-train.ini
    EVAL_DATA=(--set data.path="$SRC/data/tinyshakespeare.txt" --set data.span=0.9:1 --set data.mode=windows
               --set data.context=128 --set data.stride=128 --set model.tokenizer=bytes --set run.batch=16) ;;
  *) echo "unknown dataset $DS" >&2; exit 1 ;;
esac
mkdir -p "$OUT"
VARIANTS=(dense unbiased-4 unbiased-8 local-4 local-8)
for var in "${VARIANTS[@]}"; do
  dir=$OUT/$var
  [ -f "$dir/train.json" ] && continue
  if [ "$var" = dense ]; then sets=(--set pathways.scheme=dense --set train.finetune_dense_steps=0)
  else sets=(--set pathways.scheme="${var%-*}" --set pathways.ratio="${var#*-}"); fi
  echo "== train $DS $var" >&2
  "${MPI[@]}" "$PATHENS" train "$TRAIN" "${sets[@]}" --set run.out="$dir" --resume --quiet
done
evaluate() { # model_dir scheme ratio out
  local ini=$OUT/eval.ini
  [ -f "$4/results.json" ] && return 0
  printf '[model]\npath = %s/model.safetensors\n[data]\npath = x\n[run]\nout = %s\n' "$1" "$4" > "$ini"
  "${MPI[@]}" "$PATHENS" eval "$ini" "${EVAL_DATA[@]}" --set pathways.scheme="$2" --set pathways.ratio="$3" \
    --set pathways.members=16 --set importance.statistics=0 --quiet
}
for var in "${VARIANTS[@]}"; do
  dir=$OUT/$var
  if [ "$var" = dense ]; then
    echo "== eval $DS dense (ensembles: local 4 and unbiased 4)" >&2
    evaluate "$dir" local 4 "$dir/eval-local-4"
    evaluate "$dir" unbiased 4 "$dir/eval-unbiased-4"
  else
    echo "== eval $DS $var" >&2
    evaluate "$dir" "${var%-*}" "${var#*-}" "$dir/eval"
    evaluate "$dir/pre_finetune" "${var%-*}" "${var#*-}" "$dir/eval-pre-finetune"
  fi
done
/usr/bin/python3 "$SRC/bench/claims_table.py" "$OUT" "$DS"
