#!/usr/bin/env bash
# bench/bench_train.sh BUILD_DIR [STEPS]: training throughput of `pathens train` against the
# PyTorch peer (bench/train_peer.py, Debian's python3-torch) on the same machine, same shapes, one
# thread each, one process: the shipped ViT (configs/fashion-vit-train.ini: 4x4 patches, T = 50)
# and the Tiny Shakespeare char LM (configs/shakespeare-char-train.ini: T = 128), dense and SSA.
# pathens: the median examples/s of train_log.csv rows after the first (warm-up); torch: the median
# step after 3 warm-up steps. Prints a markdown table (docs/performance.md).
set -euo pipefail
BUILD=${1:?usage: bench/bench_train.sh BUILD_DIR [STEPS]}
STEPS=${2:-40}
SRC=$(cd "$(dirname "$0")/.." && pwd)
PATHENS=$(cd "$BUILD" && pwd)/pathens
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export OPENBLAS_NUM_THREADS=1
median_rate() { # train_log.csv column -> median of rows 2..
  /usr/bin/python3 -c "
import csv, statistics, sys
v = [float(r[sys.argv[2]]) for r in list(csv.DictReader(open(sys.argv[1])))[1:]]
print(f'{statistics.median(v):.3f}')" "$1" "$2"
}
echo "| model | attention | pathens ex/s | PyTorch ex/s | ratio | pathens att kept |"
echo "|---|---|---|---|---|---|"
run() { # name ini arch batch context scheme ratio
  local name=$1 ini=$2 arch=$3 batch=$4 ctx=$5 scheme=$6 ratio=$7 out="$TMP/$RANDOM"
  "$PATHENS" train "$ini" --set run.out="$out" --set train.steps="$STEPS" --set train.log_every=5 \
    --set train.finetune_dense_steps=0 --set pathways.scheme="$scheme" --set pathways.ratio="$ratio" --quiet
  local p; p=$(median_rate "$out/train_log.csv" examples_per_s)
  local kept; kept=$(median_rate "$out/train_log.csv" att_kept_frac)
  local tr=1; [ "$scheme" != dense ] && tr=$ratio
  local t; t=$(/usr/bin/python3 "$SRC/bench/train_peer.py" --arch "$arch" --batch "$batch" --steps 30 --ratio "$tr" \
    ${ctx:+--context "$ctx"} | grep -o '[0-9.]* examples/s' | cut -d' ' -f1)
    local lab=$scheme; [ "$scheme" != dense ] && lab="$scheme rho $ratio"
  echo "| $name | $lab | $p | $t | $(awk -v a="$p" -v b="$t" 'BEGIN{printf "%.2f", a/b}')x | $kept |"
}
V=$SRC/configs/fashion-vit-train.ini; VA=$SRC/configs/arch/vit-fashion.json
L=$SRC/configs/shakespeare-char-train.ini; LA=$SRC/configs/arch/charlm-shakespeare.json
run "ViT, batch 128" "$V" "$VA" 128 "" dense 1
run "ViT, batch 128" "$V" "$VA" 128 "" unbiased 4
run "ViT, batch 128" "$V" "$VA" 128 "" local 4
run "ViT, batch 128" "$V" "$VA" 128 "" local 8
run "char LM, batch 32 x 128" "$L" "$LA" 32 128 dense 1
run "char LM, batch 32 x 128" "$L" "$LA" 32 128 unbiased 4
run "char LM, batch 32 x 128" "$L" "$LA" 32 128 local 4
