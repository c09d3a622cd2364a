#!/usr/bin/env bash
# cli_sweep_train.sh: training sweeps ([sweep] kind = train, docs/sweeps.md "Training sweeps") on a
# tiny byte-level LM (tests/arch/lm-tiny.json) and Tiny Shakespeare: a 2-point grid (dense with
# sweep.dense_scheme = local, and SSA local rho 4 with a dense fine-tune) trains each point into
# <point>/train/ and evaluates it into <point>/eval/ on the test span of [eval.data]. SIGTERM to the
# sweep mid-training: exit 75, the point neither DONE nor FAILED, --status shows it partial; the
# rerun resumes the training from its checkpoint (train.json resumed_at_step > 0), and the model,
# the evaluation (results.json without its config paths) and the aggregated sweep.csv / sweep.json
# are byte-identical to an uninterrupted sweep's. sweep.csv has one row per point with the swept
# training keys and the evaluation figures with intervals (K = 1, 4 from the curve equal to
# results.json's curve), val_loss equal to train.json's. Bad combinations exit 2 naming the key.
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}"
source "$PATHENS_SRC/tests/lib.sh"
need_data tinyshakespeare.txt
PY=/usr/bin/python3
T="$PATHENS_TEST_TMP/cli_sweep_train"; rm -rf "$T"; mkdir -p "$T"
D=$(cd "$PATHENS_DATA_DIR" && pwd)
export OPENBLAS_NUM_THREADS=1
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
expect_rc() { # expect_rc RC PHRASE DESC CMD...: exit code and a phrase of the message
    local want=$1 phrase=$2 desc=$3; shift 3
    "$@" >"$T/out.txt" 2>"$T/err.txt"; local rc=$?
    if [ "$rc" = "$want" ] && { [ -z "$phrase" ] || grep -qF -- "$phrase" "$T/err.txt"; }; then ok "$desc (exit $rc)"
    else bad "$desc: exit $rc (wanted $want with '$phrase'): $(head -c 400 "$T/err.txt")"; fi
}
# write_ini FILE [EXTRA LINES...]: the training sweep (2 points); extra lines go at the end
write_ini() {
    local f=$1; shift
    cat >"$f" <<EOF
[sweep]
kind = train
dense_scheme = local
[model]
config = $PATHENS_SRC/tests/arch/lm-tiny.json
tokenizer = bytes
[data]
path = $D/tinyshakespeare.txt
span = 0:0.8
[pathways]
scheme = dense, local
ratio = 4
[train]
steps = 1000
batch = 8
grad_chunks = 2
warmup = 20
lr = 3e-3
finetune_dense_steps = 100
val_span = 0.8:0.9
log_every = 10
checkpoint_minutes = 0
[eval.data]
path = $D/tinyshakespeare.txt
span = 0.9:1
mode = windows
limit = 60
[eval.pathways]
members = 4
[eval.importance]
statistics = 0
[run]
out = out
EOF
    local l
    for l in "$@"; do printf '%s\n' "$l" >>"$f"; done
}
cd "$T"
write_ini sw.ini

# 1. bad combinations: exit 2, the key named
write_ini nodata.ini; sed -i '/^\[eval.data\]/,/^limit/d' nodata.ini
expect_rc 2 "[eval.data] path" "kind = train without test data" "$PATHENS" sweep nodata.ini --count
write_ini l.ini; sed -i 's/^span = 0.9:1/span = 0.9:1, 0.8:0.9/' l.ini
expect_rc 2 "[eval.data] span" "a list in [eval.data]" "$PATHENS" sweep l.ini --count
write_ini m.ini "[pathways]" "members = 4"
expect_rc 2 "[pathways] members is an evaluation key" "an eval-only key in a training grid" "$PATHENS" sweep m.ini --count
expect_rc 1 "--set eval.pathways.members" "--set of an eval-only key names its eval. form" \
    "$PATHENS" sweep sw.ini --count --set pathways.members=2
write_ini mp.ini "[eval.model]" "path = x.bin"
expect_rc 2 "[eval.model] path cannot be set" "[eval.model] path refused" "$PATHENS" sweep mp.ini --count
write_ini k.ini; sed -i 's/^kind = train/kind = training/' k.ini
expect_rc 2 "[sweep] kind = 'training'" "unknown sweep kind" "$PATHENS" sweep k.ini --count
write_ini ds.ini; sed -i 's/^dense_scheme = local/dense_scheme = dense/' ds.ini
expect_rc 2 "[sweep] dense_scheme = 'dense'" "dense_scheme must sample" "$PATHENS" sweep ds.ini --count
write_ini e.ini; sed -i '/^kind = train/d' e.ini
expect_rc 2 "[eval.data] path is for training sweeps" "[eval.*] in an evaluation sweep" "$PATHENS" sweep e.ini --count
write_ini tk.ini; sed -i '/^kind = train/d; /^dense_scheme/d; /^\[eval\./,$d' tk.ini; printf '[run]\nout = out\n' >>tk.ini
expect_rc 2 "[train] steps has no effect in an evaluation sweep" "[train] keys in an evaluation sweep" "$PATHENS" sweep tk.ini --count
write_ini u.ini "[sweep]" "members = 4"
expect_rc 2 "unknown key 'members' in section [sweep]" "unknown [sweep] key" "$PATHENS" sweep u.ini --count
write_ini fe.ini; sed -i 's/^finetune_dense_steps = 100/finetune_dense_steps = 1001/' fe.ini
expect_rc 2 "finetune_dense_steps" "a training config refused up front (fine-tune longer than training)" "$PATHENS" sweep fe.ini --count

# 2. the uninterrupted reference
expect_rc 0 "" "--count" "$PATHENS" sweep sw.ini --count
[ "$(cat "$T/out.txt")" = 2 ] && ok "2 points" || bad "--count: $(cat "$T/out.txt")"
"$PATHENS" sweep sw.ini --quiet --set run.out=ref 2>"$T/ref.err" || bad "the reference sweep failed: $(tail -3 "$T/ref.err")"
"$PATHENS" sweep sw.ini --aggregate --set run.out=ref 2>>"$T/ref.err" || bad "aggregate of the reference failed"

# 3. SIGTERM mid-training of point 1 (SSA), then the rerun resumes it
"$PATHENS" sweep sw.ini --quiet --index 0 2>"$T/p0.err" || bad "point 0 failed: $(tail -3 "$T/p0.err")"
"$PATHENS" sweep sw.ini --quiet --index 1 2>"$T/sig.err" & job=$!
p1=
for _ in $(seq 600); do # wait for 3 log rows of the training (checkpointed on the signal)
    p1=$(for d in out/*/; do [ -f "$d/DONE" ] || echo "${d%/}"; done | head -1)
    [ -n "$p1" ] && [ "$(cat "$p1/train/train_log.csv" 2>/dev/null | wc -l)" -ge 4 ] && break
    sleep 0.05
done
kill -TERM $job; wait $job; rc=$?
[ $rc = 75 ] && grep -q "stopped by a signal during the training of .*; rerun the same command to resume it" "$T/sig.err" \
    && ok "SIGTERM mid-training: exit 75, says how to resume" || bad "SIGTERM mid-training: exit $rc (wanted 75): $(tail -3 "$T/sig.err")"
[ -n "$p1" ] && [ -f "$p1/train/checkpoint/LATEST" ] && [ ! -f "$p1/DONE" ] && [ ! -f "$p1/FAILED" ] && [ ! -f "$p1/train/model.safetensors" ] \
    && ok "the point holds a checkpoint and neither DONE nor FAILED, no model yet" || bad "after SIGTERM: $(ls "$p1" "$p1/train" 2>&1 | tr '\n' ' ')"
"$PATHENS" sweep sw.ini --status >"$T/status.txt" 2>&1; src=$?
[ $src = 1 ] && grep -q "^done        1  0" "$T/status.txt" && grep -q "^missing     1  1(partial)" "$T/status.txt" \
    && ok "--status: point 0 done, point 1 missing (partial)" || bad "--status (exit $src): $(cat "$T/status.txt")"
"$PATHENS" sweep sw.ini --quiet 2>"$T/resume.err" || bad "the resumed sweep failed: $(tail -3 "$T/resume.err")"
"$PATHENS" sweep sw.ini --aggregate 2>>"$T/resume.err" || bad "aggregate failed"
$PY - "$p1/train/train.json" <<'PY' && ok "the rerun resumed the training from its checkpoint (resumed_at_step > 0)" || bad "not resumed: $(head -c 300 "$p1/train/train.json")"
import json, sys
t = json.load(open(sys.argv[1]))
assert 0 < t["resumed_at_step"] < t["steps"], t["resumed_at_step"]
PY
same=1
for d in ref/*/; do
    h=$(basename "$d")
    cmp -s "$d/train/model.safetensors" "out/$h/train/model.safetensors" || { same=0; echo "model of $h differs"; }
    $PY - "$d/eval/results.json" "out/$h/eval/results.json" <<'PY' || { same=0; echo "results.json of $h differs"; }
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for r in (a, b): r.pop("config", None); r.pop("model", None)
sys.exit(0 if a == b else 1)
PY
done
[ $same = 1 ] && ok "signal + resume: the same model bytes and evaluation as the uninterrupted sweep" || bad "signal + resume differs"
cmp -s ref/sweep.csv out/sweep.csv && cmp -s ref/sweep.json out/sweep.json \
    && ok "signal + resume: sweep.csv and sweep.json byte-identical" || bad "aggregates differ: $(diff ref/sweep.csv out/sweep.csv | head -4)"

# 4. the aggregate rows
$PY - out <<'PY' && ok "sweep.csv: 2 rows with the swept keys, dense/ensemble/K=1/K=4 with intervals equal to results.json, val_loss, attention FLOPs" || bad "sweep.csv rows"
import csv, json, sys, os
out = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(out, "sweep.csv"))))
assert len(rows) == 2, len(rows)
assert [r["pathways.scheme"] for r in rows] == ["dense", "local"], rows
sj = json.load(open(os.path.join(out, "sweep.json")))
assert sj["done"] == 2 and len(sj["rows"]) == 2
for r, j in zip(rows, sj["rows"]):
    res = json.load(open(os.path.join(out, r["dir"], "eval", "results.json")))
    tr = json.load(open(os.path.join(out, r["dir"], "train", "train.json")))
    assert res["config"]["pathways"]["scheme"] == "local", res["config"]["pathways"]  # dense point: sweep.dense_scheme
    assert res["config"]["data"]["span"] == "0.9:1" and res["dense"]["units"] == 60
    assert float(r["dense"]) == res["dense"]["nll_per_token"]
    for k in (1, 4):
        c = res["curve"][k - 1]
        assert c["k"] == k and float(r[f"k{k}"]) == c["nll_per_token"], (k, r[f"k{k}"], c)
        assert [float(r[f"k{k}_lo"]), float(r[f"k{k}_hi"])] == c["nll_per_token_ci95"]
        assert j["metrics"][f"k{k}_ci95"] == c["nll_per_token_ci95"]
    assert float(r["k4"]) == float(r["ensemble"])  # members = 4
    assert float(r["ensemble_minus_dense_lo"]) < float(r["ensemble_minus_dense"]) < float(r["ensemble_minus_dense_hi"])
    assert float(r["val_loss"]) == tr["validation"]["loss"] and j["train"]["val_loss"] == tr["validation"]["loss"]
    assert float(r["train_loss"]) == tr["final_train_loss"]
    assert r["val_accuracy"] == ""  # an LM: empty cell, never nan
d, s = rows
assert s["att_flops_ssa_step"] and d["att_flops_ssa_step"] == ""
ratio = float(s["att_flops_dense_step"]) / float(s["att_flops_ssa_step"])
assert 2.5 < ratio < 5, ratio  # local rho 4 over a causal 32-token window
assert float(d["att_flops_dense_step"]) == float(s["att_flops_dense_step"])
PY

# 5. a point killed after its final checkpoint but before train.json: the rerun resumes at the last
# step, runs no step, and still scores train.val_span (train.json's validation and the aggregate
# are the uninterrupted run's)
h=$(basename "$p1")
rm -f "out/$h/train/train.json" "out/$h/DONE"
"$PATHENS" sweep sw.ini --quiet --index 1 2>"$T/final.err" || bad "rerun after the final checkpoint failed: $(tail -3 "$T/final.err")"
"$PATHENS" sweep sw.ini --aggregate 2>>"$T/final.err"
$PY - "ref/$h/train/train.json" "out/$h/train/train.json" <<'PY' && ok "resumed at the final checkpoint: train.json's validation loss is the uninterrupted run's" || bad "validation after a resume at the last step: $(grep -A4 validation "out/$h/train/train.json")"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert b["resumed_at_step"] == b["steps"], b["resumed_at_step"]
assert b["validation"]["loss"] == a["validation"]["loss"], (a["validation"], b["validation"])
PY
cut -d, -f1-24 ref/sweep.csv >"$T/a.csv"; cut -d, -f1-24 out/sweep.csv >"$T/b.csv"
cmp -s "$T/a.csv" "$T/b.csv" && ok "and sweep.csv's evaluation and val_loss columns are the uninterrupted run's" || bad "sweep.csv after a resume at the last step: $(diff "$T/a.csv" "$T/b.csv" | head -3)"

# 6. a rerun skips both points; --set eval.* changes the evaluation, hence the points' folders
"$PATHENS" sweep sw.ini 2>"$T/again.err"; rc=$?
[ $rc = 0 ] && [ "$(grep -c "done already" "$T/again.err")" = 2 ] && ok "a rerun skips the 2 finished points" || bad "rerun: exit $rc: $(cat "$T/again.err")"
"$PATHENS" sweep sw.ini --status --set eval.data.limit=30 >"$T/st2.txt" 2>&1
grep -q "^missing     2" "$T/st2.txt" && ok "--set eval.data.limit=30 names other points (the hash covers the evaluation)" || bad "--set eval.*: $(cat "$T/st2.txt")"
finish $fails
