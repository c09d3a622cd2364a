#!/usr/bin/env bash
# tools/ship-model.sh RUN_DIR DEST: copy a finished `pathens train` run's model into DEST (what
# models/fashion-vit holds): model.safetensors, config.json, train_log.csv, train.json. Checkpoints
# (with the AdamW moments) and pre_finetune/ stay in the run folder.
set -euo pipefail
run=${1:?usage: tools/ship-model.sh RUN_DIR DEST}; dest=${2:?usage: tools/ship-model.sh RUN_DIR DEST}
for f in model.safetensors config.json train_log.csv train.json; do
  [ -f "$run/$f" ] || { echo "ship-model: $run/$f missing: is the training run finished?" >&2; exit 2; }
done
mkdir -p "$dest"
cp "$run/model.safetensors" "$run/config.json" "$run/train_log.csv" "$run/train.json" "$dest/"
du -b "$dest"/* | awk '{ s += $1 } END { printf "ship-model: %s holds %d bytes\n", "'"$dest"'", s }'
