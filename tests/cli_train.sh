#!/usr/bin/env bash
# cli_train.sh: `pathens train` on the command line: help, usage and bad-input exit codes with
# messages that name the problem; a short real training run (Tiny Shakespeare, byte-level) whose
# outputs evaluate with `pathens eval`; starting from a checkpoint (model.path) continues from its
# weights; the shipped default model models/fashion-vit (<= 2 MB) loads and evaluates.
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}"
export PATHENS_FASHION_DIR=${PATHENS_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
FASHION=$PATHENS_FASHION_DIR
source "$PATHENS_SRC/tests/lib.sh"
need_fashion
lm=1; have_data tinyshakespeare.txt stories260K.bin || lm=0 # without them, lm_part is skipped
T="$PATHENS_TEST_TMP/cli_train"; rm -rf "$T"; mkdir -p "$T"
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
expect_rc() { # expect_rc RC GREP DESC CMD...: exit code and a phrase of the message
    local want=$1 phrase=$2 desc=$3; shift 3
    "$@" >"$T/out.txt" 2>"$T/err.txt"; local rc=$?
    if [ "$rc" = "$want" ] && grep -q -- "$phrase" "$T/out.txt" "$T/err.txt"; then ok "$desc (exit $rc)"
    else bad "$desc: exit $rc (wanted $want), message: $(head -c 300 "$T/err.txt")"; fi
}
export OPENBLAS_NUM_THREADS=1
cat > "$T/lm.ini" <<I
[model]
config = $PATHENS_SRC/tests/arch/lm-tiny.json
tokenizer = bytes
[data]
path = $PATHENS_DATA_DIR/tinyshakespeare.txt
span = 0:0.9
[pathways]
scheme = local
ratio = 4
[train]
steps = 60
batch = 16
warmup = 10
lr = 3e-3
finetune_dense_steps = 10
log_every = 10
[run]
out = run
I

expect_rc 0 "resume" "train --help" "$PATHENS" train --help
grep -q "^train.lr " "$T/out.txt" && grep -q "^example" "$T/out.txt" && grep -q "^  pathens train configs/" "$T/out.txt" \
    && ! grep -Eq "^(importance\.|pathways\.members |run\.batch )" "$T/out.txt" \
    && ok "train --help: a worked example and the keys train reads (no eval-only keys)" || bad "train --help: $(grep -E '^(example|train.lr|importance)' "$T/out.txt")"
expect_rc 0 "train CONFIG" "pathens --help lists train" "$PATHENS" --help
expect_rc 1 "missing CONFIG" "train without config" "$PATHENS" train
lm_part() { # the byte-level LM on Tiny Shakespeare (and stories260K refused)
expect_rc 1 "unknown option" "train unknown option" "$PATHENS" train "$T/lm.ini" --bogus
[ "$(grep -c "unknown option" "$T/err.txt")" = 1 ] && ok "train unknown option: said once" || bad "train unknown option: $(cat "$T/err.txt")"
expect_rc 2 "grad_chunks" "batch not a multiple of grad_chunks" "$PATHENS" train "$T/lm.ini" --set train.batch=10
expect_rc 2 "model.config" "no architecture" "$PATHENS" train "$T/lm.ini" --set model.config=
expect_rc 2 "finetune_dense_steps" "fine-tune longer than training" "$PATHENS" train "$T/lm.ini" --set train.finetune_dense_steps=61
expect_rc 2 "norm must be layernorm" "a llama (RMSNorm) checkpoint is not trainable" \
    "$PATHENS" train "$T/lm.ini" --set model.path="$PATHENS_DATA_DIR/stories260K.bin"
expect_rc 2 "cannot drive SSA" "scheme plan refused for training" "$PATHENS" train "$T/lm.ini" --set pathways.scheme=plan
expect_rc 2 "tokenizer" "an LM without a tokenizer" "$PATHENS" train "$T/lm.ini" --set model.tokenizer=none
expect_rc 2 "data.span" "a bad span" "$PATHENS" train "$T/lm.ini" --set data.span=0.9:0.1
expect_rc 2 "train.context" "context beyond seq_len" "$PATHENS" train "$T/lm.ini" --set train.context=64

# a real run: progress lines, outputs, and the model evaluates
"$PATHENS" train "$T/lm.ini" 2>"$T/train.err" || bad "training run failed: $(tail -3 "$T/train.err")"
grep -q "step     60/60 dense" "$T/train.err" && grep -q "ETA" "$T/train.err" && grep -q "tok/s" "$T/train.err" \
    && ok "progress lines: step, phase, loss, tok/s, ETA" || bad "progress lines missing: $(tail -3 "$T/train.err")"
grep -q "1 rank x 1 BLAS thread" "$T/train.err" && ok "start-up line says ranks x BLAS threads" || bad "no start-up line"
for f in model.safetensors config.json train_log.csv train.json pre_finetune/model.safetensors checkpoint/LATEST; do
    [ -s "$T/run/$f" ] || bad "missing output $f"
done
rows=$(($(wc -l < "$T/run/train_log.csv") - 1))
[ "$rows" = 6 ] && ok "train_log.csv: 6 rows" || bad "train_log.csv has $rows rows, wanted 6"
/usr/bin/python3 - "$T/run" <<'PY' && ok "train_log.csv: loss falls, SSA keeps < 40% of attention, dense fine-tune keeps 100%" || bad "train_log.csv content"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1] + "/train_log.csv")))
assert float(rows[-1]["loss"]) < float(rows[0]["loss"]) - 0.5, (rows[0]["loss"], rows[-1]["loss"])
assert all(float(r["att_kept_frac"]) < 0.4 for r in rows if r["phase"] == "ssa")
assert [r["phase"] for r in rows][-1] == "dense" and float(rows[-1]["att_kept_frac"]) == 1.0
PY
cat > "$T/ev.ini" <<I
[model]
path = run/model.safetensors
tokenizer = bytes
[data]
path = $PATHENS_DATA_DIR/tinyshakespeare.txt
span = 0.9:1
mode = windows
limit = 40
[pathways]
scheme = local
ratio = 4
members = 2
[run]
out = ev
I
"$PATHENS" eval "$T/ev.ini" 2>"$T/ev.err" || bad "eval of the trained model failed: $(tail -3 "$T/ev.err")"
/usr/bin/python3 -c "
import json, sys; r = json.load(open(sys.argv[1]))
bpb = r['dense']['bits_per_byte']; assert 2.0 < bpb < 6.0, bpb; print('bits/byte', bpb)" "$T/ev/results.json" \
    && ok "the trained LM evaluates (test span bits/byte between 2 and 6; uniform is 8)" || bad "trained LM evaluation"
grep -q "summary" "$T/ev.err" && grep -q "report: " "$T/ev.err" && ok "eval prints the summary and the report path" \
    || bad "no summary: $(tail -5 "$T/ev.err")"

# start from a checkpoint: step 0 of the new run has the old run's loss level, not a fresh model's
mkdir -p "$T/sub"
"$PATHENS" train "$T/lm.ini" --set model.path="$T/run/model.safetensors" --set model.config= --set run.out="$T/sub/../cont" \
    --set train.steps=10 --set train.finetune_dense_steps=0 --set train.warmup=0 --set train.lr=1e-4 --set train.log_every=10 \
    2>"$T/cont.err" || bad "training from a checkpoint failed: $(tail -3 "$T/cont.err")"
grep -q "^wrote $T/cont/model.safetensors" "$T/cont.err" && ok "train prints the output folder with dir/.. collapsed" \
    || bad "train 'wrote' line: $(grep wrote "$T/cont.err")"
/usr/bin/python3 - "$T/run/train_log.csv" "$T/cont/train_log.csv" <<'PY' && ok "model.path: training continues from the checkpoint's weights" || bad "model.path did not start from the checkpoint"
import csv, sys
first = float(list(csv.DictReader(open(sys.argv[1])))[0]["loss"])
cont = float(list(csv.DictReader(open(sys.argv[2])))[0]["loss"])
assert cont < first - 0.5, (first, cont)
PY
}
if [ $lm = 1 ]; then lm_part; else echo "skip the LM part: data/ lacks tinyshakespeare.txt or stories260K.bin (tools/fetch-data.sh)"; fi

# the shipped default model
M="$PATHENS_SRC/models/fashion-vit"
size=$(cat "$M/model.safetensors" "$M/config.json" | wc -c)
[ -s "$M/model.safetensors" ] && [ -s "$M/config.json" ] && [ "$size" -le 2097152 ] && ok "models/fashion-vit: $size bytes (<= 2 MB)" || bad "models/fashion-vit is $size bytes"
"$PATHENS" eval "$PATHENS_SRC/configs/fashion-vit.ini" --set data.limit=300 --set pathways.members=2 \
    --set importance.ablation=0 --set run.out="$T/fv" 2>"$T/fv.err" || bad "eval of the shipped model failed"
/usr/bin/python3 -c "
import json, sys; a = json.load(open(sys.argv[1]))['dense']['accuracy']; assert a > 0.75, a; print('accuracy', a)" \
    "$T/fv/results.json" && ok "models/fashion-vit: > 75% on the first 300 test images" || bad "shipped model accuracy"

[ $fails = 0 ] && echo "cli_train: all passed" || echo "cli_train: $fails failure(s)"
finish $fails
