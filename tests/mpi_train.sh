#!/usr/bin/env bash
# mpi_train.sh: pathens train under a real mpirun.
#   Data parallel: the trained weights (model.safetensors, every byte) are identical for the serial
#   binary and 1, 2, 3, 4 ranks, for a ViT on real Fashion-MNIST images and a byte-level LM on
#   Tiny Shakespeare, both with SSA, a dense fine-tune (pre_finetune/ too) and train.dropout = 0.1
#   (its masks are keyed by example slot), and the logs agree; the resume cases train with dropout too.
#   Preemption: kill -9 mid-run, then --resume: byte-identical weights to an uninterrupted run;
#   SIGUSR1 to mpirun (forwarded to the ranks) and SIGTERM to a serial run: exit 75 with a
#   checkpoint, then --resume: byte-identical; Ctrl-C (SIGINT) to mpirun: mpirun SIGTERMs the
#   ranks and exits 1 (Open MPI cannot forward SIGINT), the ranks checkpoint and say so, --resume
#   gives byte-identical weights. Each --resume run started at the step of the checkpoint it
#   found (train.json resumed_at_step, > 0) and ran only the remaining steps (a resume that
#   retrained from scratch gives the same bytes, so the counts are what prove it). A checkpoint
#   of another config is refused, and a run.out that holds a run is not overwritten without
#   --resume. An error on one rank only (MPMD: rank 1 cannot read its data) is reported by that rank
#   with its rank number before the abort (dist_fail). MPI_TRAIN_PARTS=resume skips section 1 (the
#   mutation check's resume mutants); MPI_TRAIN_PARTS=fail runs only section 1's failure checks.
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}" "${MPIEXEC:?}"
export PATHENS_FASHION_DIR=${PATHENS_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
FASHION=$PATHENS_FASHION_DIR
source "$PATHENS_SRC/tests/lib.sh"
need_fashion train-images-idx3-ubyte.gz
models=vit; have_data tinyshakespeare.txt && models="vit lm" # without it, the LM part of 1. is skipped
T="$PATHENS_TEST_TMP/mpi_train"; rm -rf "$T"; mkdir -p "$T"
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
export OPENBLAS_NUM_THREADS=1

cat > "$T/vit.ini" <<I
[model]
config = $PATHENS_SRC/tests/arch/vit-tiny.json
[data]
path = $FASHION/train-images-idx3-ubyte.gz
limit = 600
[pathways]
scheme = local
ratio = 4
sigma = 2
[train]
steps = 24
batch = 32
grad_chunks = 4
warmup = 4
lr = 3e-3
finetune_dense_steps = 6
log_every = 4
checkpoint_minutes = 0
dropout = 0.1
I
cat > "$T/lm.ini" <<I
[model]
config = $PATHENS_SRC/tests/arch/lm-tiny.json
tokenizer = bytes
[data]
path = $PATHENS_DATA_DIR/tinyshakespeare.txt
span = 0:0.9
[pathways]
scheme = unbiased
ratio = 4
[train]
steps = 20
batch = 16
grad_chunks = 4
warmup = 4
lr = 3e-3
finetune_dense_steps = 5
log_every = 5
checkpoint_minutes = 0
dropout = 0.1
I

resumed() { # resumed WHAT OUT STEP: the --resume run into OUT started at checkpoint STEP (> 0), ran only the rest
    local v
    v=$(/usr/bin/python3 - "$2/train.json" "$3" <<'PY'
import json, sys
t, s = json.load(open(sys.argv[1])), int(sys.argv[2] or 0)
ran = sum(t.get(k, {}).get("steps", 0) for k in ("attention_ssa_steps", "attention_dense_steps"))
print("ok" if s > 0 and t["resumed_at_step"] == s and ran == t["steps"] - s
      else f"resumed_at_step {t['resumed_at_step']}, ran {ran} of {t['steps']} steps; the checkpoint was at step {s}")
PY
)
    [ "$v" = ok ] && ok "$1: --resume started at the checkpoint's step $3 and ran only the remaining steps" \
        || bad "$1: not resumed from the checkpoint: $v"
}
ck_step() { sed 's/^step-0*//' "$1/checkpoint/LATEST" 2>/dev/null; } # the step of the newest checkpoint

# 1. the same weights for the serial binary and 1..4 ranks
parts=${MPI_TRAIN_PARTS:-all}
if [ "$parts" = resume ]; then echo "MPI_TRAIN_PARTS=resume: section 1 skipped"; else
[ "$parts" = fail ] && { echo "MPI_TRAIN_PARTS=fail: the failure checks of section 1 only"; models=; }
for m in $models; do
    "$PATHENS" train "$T/$m.ini" --set run.out="$T/$m-serial" --quiet || bad "$m serial run failed"
    for n in 1 2 3 4; do
        "$MPIEXEC" -n $n "$PATHENS" train "$T/$m.ini" --set run.out="$T/$m-$n" --quiet || bad "$m $n ranks failed"
        if cmp -s "$T/$m-serial/model.safetensors" "$T/$m-$n/model.safetensors" &&
           cmp -s "$T/$m-serial/pre_finetune/model.safetensors" "$T/$m-$n/pre_finetune/model.safetensors"; then
            ok "$m: $n rank(s): model.safetensors and pre_finetune byte-identical to the serial run"
        else
            bad "$m: $n rank(s): weights differ from the serial run"
        fi
        # the loss column of the log is the same too (timings differ)
        cut -d, -f1-6 "$T/$m-serial/train_log.csv" > "$T/a.csv"; cut -d, -f1-6 "$T/$m-$n/train_log.csv" > "$T/b.csv"
        cmp -s "$T/a.csv" "$T/b.csv" || bad "$m: $n ranks: train_log.csv losses differ"
    done
    # training moved the weights and lowered the loss
    first=$(sed -n 2p "$T/$m-serial/train_log.csv" | cut -d, -f3); last=$(tail -1 "$T/$m-serial/train_log.csv" | cut -d, -f3)
    awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' && ok "$m: loss fell from $first to $last" \
        || bad "$m: loss did not fall ($first -> $last)"
done
"$MPIEXEC" -n 5 "$PATHENS" train "$T/vit.ini" --set run.out="$T/vit-5" --quiet 2>"$T/err5"; rc=$?
[ $rc != 0 ] && grep -q "grad_chunks" "$T/err5" && ok "5 ranks for 4 chunks refused (exit $rc)" \
    || bad "5 ranks for 4 chunks: exit $rc: $(head -2 "$T/err5")"
# an error on one rank only (its node cannot read the data; MPMD: rank 1 gets another data.path):
# rank 0 is in a collective, so rank 1 reports its own error with its rank (dist_fail) and aborts
"$MPIEXEC" -n 1 "$PATHENS" train "$T/vit.ini" --set run.out="$T/vit-r1" --quiet : \
    -n 1 "$PATHENS" train "$T/vit.ini" --set run.out="$T/vit-r1" --quiet --set data.path="$T/absent-images-idx3-ubyte.gz" \
    2>"$T/err_r1"; rc=$?
[ $rc != 0 ] && grep -q "error on rank 1: .*absent-images-idx3-ubyte.gz: cannot open" "$T/err_r1" \
    && ok "an error on rank 1 only: reported with its rank and path (exit $rc)" \
    || bad "an error on rank 1 only: exit $rc, no 'error on rank 1' with the path: $(head -3 "$T/err_r1")"
fi
if [ "$parts" = fail ]; then
    [ $fails = 0 ] && echo "mpi_train: all passed" || echo "mpi_train: $fails failure(s)"
    finish $fails
fi

# 2. kill -9 mid-run, then --resume (longer run, checkpoint every 5 steps)
# long enough that a signal sent after the third log line lands mid-run on an idle machine too
# (400 steps took about 1 s: mpirun's SIGINT handling could arrive after the last step)
long=(train "$T/vit.ini" --set train.steps=1200 --set train.finetune_dense_steps=120 --set train.checkpoint_steps=5 --quiet)
"$MPIEXEC" -n 2 "$PATHENS" "${long[@]}" --set run.out="$T/ref" || bad "long reference run failed"
out="$T/killed"
"$MPIEXEC" -n 2 "$PATHENS" "${long[@]}" --set run.out="$out" & job=$!
for i in $(seq 1 600); do
    [ -f "$out/checkpoint/LATEST" ] && grep -q "step-000000[2-9]" "$out/checkpoint/LATEST" 2>/dev/null && break
    sleep 0.05
done
pkill -9 -P $job -f "$PATHENS"; kill -9 $job 2>/dev/null; wait $job 2>/dev/null
at=$(cat "$out/checkpoint/LATEST" 2>/dev/null)
if [ -f "$out/model.safetensors" ]; then bad "kill -9: the run had already finished (make it longer)"; fi
s_at=$(ck_step "$out")
"$MPIEXEC" -n 2 "$PATHENS" "${long[@]}" --set run.out="$out" --resume || bad "resume after kill -9 failed"
resumed "kill -9" "$out" "$s_at"
cmp -s "$T/ref/model.safetensors" "$out/model.safetensors" \
    && ok "kill -9 at $at, --resume: byte-identical weights" || bad "kill -9 at $at, --resume: weights differ"
cut -d, -f1-6 "$T/ref/train_log.csv" > "$T/a.csv"; cut -d, -f1-6 "$out/train_log.csv" > "$T/b.csv"
cmp -s "$T/a.csv" "$T/b.csv" && ok "kill -9: train_log.csv has each step once, same losses" \
    || bad "kill -9: train_log.csv differs: $(diff "$T/a.csv" "$T/b.csv" | head -3)"

# 3. SIGUSR1 to mpirun: exit 75 with a checkpoint, then --resume
out="$T/usr1"
"$MPIEXEC" -n 2 "$PATHENS" "${long[@]}" --set run.out="$out" & job=$!
for i in $(seq 1 600); do [ -f "$out/train_log.csv" ] && [ "$(wc -l < "$out/train_log.csv")" -ge 3 ] && break; sleep 0.05; done
kill -USR1 $job; wait $job; rc=$?
[ $rc = 75 ] && ok "SIGUSR1 to mpirun: exit 75" || bad "SIGUSR1 to mpirun: exit $rc (expected 75)"
[ -f "$out/checkpoint/LATEST" ] || bad "SIGUSR1: no checkpoint"
s_at=$(ck_step "$out")
"$MPIEXEC" -n 2 "$PATHENS" "${long[@]}" --set run.out="$out" --resume || bad "resume after SIGUSR1 failed"
resumed "SIGUSR1" "$out" "$s_at"
cmp -s "$T/ref/model.safetensors" "$out/model.safetensors" && ok "SIGUSR1, --resume: byte-identical weights" \
    || bad "SIGUSR1, --resume: weights differ"

# 3b. Ctrl-C (SIGINT) to mpirun: mpirun SIGTERMs every rank (it cannot forward SIGINT) and exits 1
out="$T/int"
"$MPIEXEC" -n 2 "$PATHENS" "${long[@]}" --set run.out="$out" 2>"$T/err_int" & job=$!
for i in $(seq 1 600); do [ -f "$out/train_log.csv" ] && [ "$(wc -l < "$out/train_log.csv")" -ge 3 ] && break; sleep 0.05; done
kill -INT $job; wait $job; rc=$?
[ $rc = 1 ] && ok "SIGINT to mpirun: mpirun exits 1 (as documented)" || bad "SIGINT to mpirun: exit $rc (docs say 1)"
grep -q "stopped by a signal after step [0-9]* (checkpoint in $out/checkpoint); rerun with --resume" "$T/err_int" \
    && ok "SIGINT to mpirun: the ranks checkpointed and said so" || bad "SIGINT to mpirun: $(grep -v '^ ' "$T/err_int" | head -3)"
"$MPIEXEC" -n 2 "$PATHENS" "${long[@]}" --set run.out="$out" --resume || bad "resume after SIGINT to mpirun failed"
cmp -s "$T/ref/model.safetensors" "$out/model.safetensors" && ok "SIGINT to mpirun, --resume: byte-identical weights" \
    || bad "SIGINT to mpirun, --resume: weights differ"

# 4. SIGTERM to a serial run, resumed by 2 ranks
out="$T/term"
"$PATHENS" "${long[@]}" --set run.out="$out" & job=$!
for i in $(seq 1 600); do [ -f "$out/train_log.csv" ] && [ "$(wc -l < "$out/train_log.csv")" -ge 3 ] && break; sleep 0.05; done
kill -TERM $job; wait $job; rc=$?
[ $rc = 75 ] && ok "SIGTERM: exit 75" || bad "SIGTERM: exit $rc (expected 75)"
s_at=$(ck_step "$out")
"$MPIEXEC" -n 2 "$PATHENS" "${long[@]}" --set run.out="$out" --resume || bad "resume after SIGTERM failed"
resumed "SIGTERM (serial), resumed on 2 ranks" "$out" "$s_at"
cmp -s "$T/ref/model.safetensors" "$out/model.safetensors" && ok "SIGTERM (serial), --resume on 2 ranks: byte-identical" \
    || bad "SIGTERM, --resume: weights differ"

# 5. refusals: another config's checkpoint; a run.out that holds a run, without --resume
"$PATHENS" "${long[@]}" --set run.out="$out" --set train.lr=1e-3 --resume 2>"$T/err6"; rc=$?
[ $rc = 2 ] && grep -q "another training config" "$T/err6" && ok "a checkpoint of another config is refused (exit 2)" \
    || bad "foreign checkpoint: exit $rc: $(head -2 "$T/err6")"
"$PATHENS" "${long[@]}" --set run.out="$out" 2>"$T/err7"; rc=$?
[ $rc = 2 ] && grep -q -- "--resume" "$T/err7" && ok "an existing run is not overwritten without --resume" \
    || bad "existing run without --resume: exit $rc: $(head -2 "$T/err7")"

[ $fails = 0 ] && echo "mpi_train: all passed" || echo "mpi_train: $fails failure(s)"
finish $fails
