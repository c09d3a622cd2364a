#!/usr/bin/env bash
# cli_train_val.sh: the held-out validation and the image augmentation of `pathens train`.
# train.val_span is scored by the inference forward: val_loss / val_accuracy in train_log.csv (at
# every train.val_every steps and at the last, nan elsewhere) and train.json's `validation` are
# the figures `pathens eval` gives on that span for the same weights (ViT: nll and accuracy; LM:
# nll per token over eval's windows); the val keys leave the weights byte-identical; a val_span
# overlapping data.span, a malformed one and augmentation of an LM are refused (exit 2).
# train.augment_crop / augment_flip change the weights, and the same config gives the same bytes.
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}"
export PATHENS_FASHION_DIR=${PATHENS_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
source "$PATHENS_SRC/tests/lib.sh"
need_fashion train-images-idx3-ubyte.gz
T="$PATHENS_TEST_TMP/cli_train_val"; rm -rf "$T"; mkdir -p "$T"
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
cat > "$T/vit.ini" <<I
[model]
config = $PATHENS_SRC/tests/arch/vit-tiny.json
[data]
path = $PATHENS_FASHION_DIR/train-images-idx3-ubyte.gz
span = 0:0.02
[pathways]
scheme = unbiased
ratio = 4
[train]
steps = 12
batch = 32
warmup = 2
lr = 3e-3
finetune_dense_steps = 2
log_every = 4
val_span = 0.99:1
val_every = 6
augment_crop = 2
augment_flip = 1
[run]
out = run
I
# one Python check of a run against eval: check_val RUN EVAL_RESULTS KIND
check_val() {
/usr/bin/python3 - "$@" <<'PY'
import csv, json, math, sys
run, res, kind = sys.argv[1:4]
rows = list(csv.DictReader(open(run + "/train_log.csv")))
scored = [r for r in rows if r["val_loss"] != "nan"]
assert [int(r["step"]) for r in scored] == [6, 12], [r["step"] for r in rows]
assert all(r["val_loss"] == "nan" for r in rows if int(r["step"]) not in (6, 12))
tj = json.load(open(run + "/train.json"))["validation"]
d = json.load(open(res))["dense"]
last = scored[-1]
if kind == "vit":
    assert abs(float(last["val_loss"]) - d["nll"]) < 2e-6, (last["val_loss"], d["nll"])
    assert abs(float(last["val_accuracy"]) - d["accuracy"]) < 1e-6, (last["val_accuracy"], d["accuracy"])
    assert tj["units"] == d["examples"] == 600 and abs(tj["accuracy"] - d["accuracy"]) < 1e-12, (tj, d["examples"])
else:
    assert last["val_accuracy"] == "nan"
    assert abs(float(last["val_loss"]) - d["nll_per_token"]) < 2e-6, (last["val_loss"], d["nll_per_token"])
assert abs(tj["loss"] - float(last["val_loss"])) < 1e-6, (tj, last["val_loss"])
print(kind, "val", last["val_loss"], "eval", d.get("nll", d.get("nll_per_token")))
PY
}
cd "$T" || exit 1
"$PATHENS" train vit.ini --quiet 2>"$T/vit.err" || bad "ViT training with val and augmentation failed: $(tail -3 "$T/vit.err")"
"$PATHENS" eval vit.ini --set model.path=run/model.safetensors --set model.config= --set data.span=0.99:1 \
    --set pathways.members=0 --set importance.statistics=0 --set run.out=ev --quiet 2>"$T/ev.err" \
    || bad "eval of the val span failed: $(tail -3 "$T/ev.err")"
check_val run ev/results.json vit && ok "ViT: val_loss / val_accuracy at steps 6 and 12 = pathens eval on train.val_span" \
    || bad "ViT validation figures differ from eval's"

# the val keys do not touch the weights; augmentation does, deterministically
"$PATHENS" train vit.ini --quiet --set train.val_span= --set run.out=noval 2>/dev/null || bad "run without val failed"
cmp -s run/model.safetensors noval/model.safetensors && ok "val_span / val_every leave the weights byte-identical" \
    || bad "a run with train.val_span has other weights than one without"
"$PATHENS" train vit.ini --quiet --set train.val_span= --set run.out=again 2>/dev/null || bad "rerun failed"
cmp -s noval/model.safetensors again/model.safetensors && ok "augmentation: the same config gives the same bytes" \
    || bad "augmented training is not deterministic"
"$PATHENS" train vit.ini --quiet --set train.val_span= --set train.augment_crop=0 --set run.out=noflip \
    2>/dev/null || bad "run with flip only failed"
"$PATHENS" train vit.ini --quiet --set train.val_span= --set train.augment_crop=0 --set train.augment_flip=0 \
    --set run.out=plain 2>/dev/null || bad "run without augmentation failed"
! cmp -s noval/model.safetensors noflip/model.safetensors && ! cmp -s noflip/model.safetensors plain/model.safetensors \
    && ok "augment_crop and augment_flip each change the weights" || bad "an augmentation key had no effect"

expect_rc 2 "overlaps data.span" "val_span overlapping data.span" "$PATHENS" train vit.ini --set train.val_span=0.01:0.5
expect_rc 2 "train.val_span" "malformed val_span" "$PATHENS" train vit.ini --set train.val_span=0.5
expect_rc 2 "augment_flip" "augment_flip out of range" "$PATHENS" train vit.ini --set train.augment_flip=2

lm_part() { # the byte-level LM on Tiny Shakespeare
cat > "$T/lm.ini" <<I
[model]
config = $PATHENS_SRC/tests/arch/lm-tiny.json
tokenizer = bytes
[data]
path = $PATHENS_DATA_DIR/tinyshakespeare.txt
span = 0:0.8
[pathways]
scheme = local
ratio = 4
[train]
steps = 12
batch = 8
warmup = 2
lr = 3e-3
finetune_dense_steps = 2
log_every = 4
val_span = 0.8:0.81
val_every = 6
[run]
out = lm
I
expect_rc 2 "images only" "augmentation of an LM refused" "$PATHENS" train lm.ini --set train.augment_crop=2 --set run.out=lmbad
"$PATHENS" train lm.ini --quiet 2>"$T/lm.err" || bad "LM training with val failed: $(tail -3 "$T/lm.err")"
"$PATHENS" eval lm.ini --set model.path=lm/model.safetensors --set model.config= --set data.span=0.8:0.81 \
    --set data.mode=windows --set pathways.members=0 --set importance.statistics=0 --set run.out=lmev --quiet \
    2>"$T/lmev.err" || bad "eval of the LM val span failed: $(tail -3 "$T/lmev.err")"
check_val lm lmev/results.json lm && ok "LM: val_loss at steps 6 and 12 = pathens eval's nll per token on train.val_span" \
    || bad "LM validation figures differ from eval's"
}
if have_data tinyshakespeare.txt; then lm_part; else echo "skip the LM part: data/ lacks tinyshakespeare.txt (tools/fetch-data.sh)"; fi
[ $fails = 0 ] && echo "cli_train_val: all passed" || echo "cli_train_val: $fails failure(s)"
finish $fails
