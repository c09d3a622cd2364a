#!/usr/bin/env bash
# slurm_sweep.sh: the jobs/ templates under a real SLURM (slurmctld + slurmd on localhost, started
# with tools/slurm_up.sh in a scratch folder and always stopped with tools/slurm_down.sh).
#   (a) a 4-point sweep (stories260K, scheme x ratio) run locally without SLURM: the reference;
#   (b) the same sweep as a job array from jobs/submit-sweep.sh. Two array tasks are preempted
#       mid-run, once their point's journal holds finished tasks: task 0 by USR1 to its batch
#       script (what --signal=B:USR1@120 sends; the template's trap forwards it, pathens exits 75
#       and the script requeues the task), task 1 by `scontrol requeue` (SLURM's TERM to the job).
#       Both restart (Restarts=1) and resume from their journals; --status then shows 4 done and
#       --aggregate writes a sweep.json byte-identical to the reference's;
#   (c) a 2-rank `srun --mpi=pmix` evaluation from jobs/eval.sbatch, preempted by USR1 the same
#       way, requeued and resumed: its results.json is byte-identical to a local 1-process run;
#   (d) a point that fails (a tokenizer given as the model): its array task ends FAILED with
#       pathens' exit code 2 and is not requeued;
#   (e) a 2-rank `srun --mpi=pmix` training run from jobs/train.sbatch (a small ViT on real
#       Fashion-MNIST images with SSA), preempted by USR1, requeued and resumed with --resume: its
#       weights are byte-identical to a local 1-process training run;
#   (f) a training sweep ([sweep] kind = train, 2 points of a tiny byte LM with dropout, each trained
#       then evaluated) as a job array: task 0 is preempted by USR1 mid-training, exits 75 with a
#       checkpoint, is requeued and resumes from it (train.json resumed_at_step > 0); its weights and
#       the aggregated sweep.csv / sweep.json are byte-identical to a local uninterrupted sweep.
# A requeued job waits about 2 minutes (SLURM's Reason=BeginTime); the test releases it at once
# with `scontrol update JobId=... StartTime=now`. FAILS (never skips) without the SLURM packages.
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}"
source "$PATHENS_SRC/tests/lib.sh"
need_data stories260K.bin tok512.bin tinystories_val.txt
need_fashion train-images-idx3-ubyte.gz
for b in slurmctld slurmd sbatch squeue scontrol scancel srun sinfo; do
    command -v "$b" >/dev/null || {
        echo "FAIL: $b not found: install the SLURM packages (slurmctld slurmd slurm-client, tools/deps.sh)"; exit 1; }
done
T="$PATHENS_TEST_TMP/slurm_sweep"
S="$T/slurm"
"$PATHENS_SRC/tools/slurm_down.sh" "$S" >/dev/null 2>&1   # leftovers of an interrupted earlier run
rm -rf "$T"; mkdir -p "$T/logs"
T=$(cd "$T" && pwd)
S="$T/slurm"
D=$(cd "$PATHENS_DATA_DIR" && pwd)
JOBS="$PATHENS_SRC/jobs"
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
export OPENBLAS_NUM_THREADS=1 SLURM_CONF="$S/slurm.conf" SLURM_UP_PORT=${SLURM_UP_PORT:-26817}
export PATHENS                                 # the templates run this binary
t_start=$(date +%s)
dump_logs() {
    for f in "$S"/log/slurmctld.log "$S"/log/slurmd.log "$T"/logs/*; do
        [ -e "$f" ] && { echo "--- tail $f"; tail -25 "$f"; }
    done
    squeue -t all -r -o '%i %T %r %S' 2>/dev/null
}
cleanup() {
    [ "$fails" = 0 ] || dump_logs
    "$PATHENS_SRC/tools/slurm_down.sh" "$S" >/dev/null 2>&1
}
trap cleanup EXIT

job_state() { squeue -h -r -t all -j "$1" -o '%T' 2>/dev/null | head -1; }
restarts() { scontrol show job "$1" 2>/dev/null | grep -o 'Restarts=[0-9]*' | head -1 | cut -d= -f2; }
# wait_job ID TIMEOUT: wait until every task of job (array) ID has ended; requeued tasks held for
# SLURM's requeue delay (Reason=BeginTime) are released at once. Prints the final states.
wait_job() {
    local id=$1 end=$(( $(date +%s) + $2 )) line
    while [ "$(date +%s)" -lt "$end" ]; do
        squeue -h -r -t pending -j "$id" -o '%i %r' 2>/dev/null | while read -r tid reason; do
            [ "$reason" = BeginTime ] && scontrol update JobId="$tid" StartTime=now 2>/dev/null
        done
        line=$(squeue -h -r -t all -j "$id" -o '%T' 2>/dev/null | sort | uniq -c | tr -s ' ' | tr '\n' ' ')
        if [ -n "$line" ] && ! squeue -h -r -t all -j "$id" -o '%T' 2>/dev/null |
               grep -qvE '^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)$'; then
            echo "$line"; return 0
        fi
        sleep 0.2
    done
    echo "timeout: $line"; return 1
}

# ---- (a) the reference: the same 4-point grid, uninterrupted, without SLURM ----------------------
ini="$T/sweep.ini"
cat >"$ini" <<EOF
; slurm_sweep.sh: 4 points (scheme x ratio), 30 tasks of 4 documents each
[model]
path = $D/stories260K.bin
tokenizer = $D/tok512.bin
[data]
path = $D/tinystories_val.txt
mode = documents
limit = 120
[run]
out = $T/sweep
shard = 4
[pathways]
scheme = unbiased, local
ratio = 2, 4
members = 4
EOF
ntasks=30
t0=$(date +%s)
"$PATHENS" sweep "$ini" --quiet || bad "(a) reference sweep failed"
"$PATHENS" sweep "$ini" --aggregate 2>"$T/agg-ref.err" || bad "(a) reference aggregate: $(cat "$T/agg-ref.err")"
cp "$T/sweep/sweep.json" "$T/ref-sweep.json" && cp "$T/sweep/sweep.csv" "$T/ref-sweep.csv" &&
    ok "(a) reference sweep: 4 points in $(( $(date +%s) - t0 )) s, $(grep -c '"index"' "$T/ref-sweep.json") rows" ||
    bad "(a) no reference sweep.json"
point_dir() { /usr/bin/python3 -c 'import json,sys; print([r["dir"] for r in json.load(open(sys.argv[1]))["rows"] if r["index"] == int(sys.argv[2])][0])' "$T/ref-sweep.json" "$1"; }
dir0="$T/sweep/$(point_dir 0)"; dir1="$T/sweep/$(point_dir 1)"
mv "$T/sweep" "$T/sweep-ref"                   # the SLURM run writes the same run.out afresh

# ---- SLURM up --------------------------------------------------------------------------------
if "$PATHENS_SRC/tools/slurm_up.sh" "$S" >"$T/slurm_up.log" 2>&1; then ok "slurm up: $(tail -1 "$T/slurm_up.log")"
else bad "slurm_up.sh failed: $(tail -5 "$T/slurm_up.log")"; echo "$fails failure(s)"; exit 1; fi

# ---- (b) the sweep as a job array, two tasks preempted mid-run ---------------------------------
t0=$(date +%s)
MAXPAR=2 PATHENS_LOGS="$T/logs" "$JOBS/submit-sweep.sh" "$ini" >"$T/submit.out" 2>&1 || bad "(b) submit-sweep.sh: $(cat "$T/submit.out")"
J=$(grep -o 'submitted job array [0-9]*' "$T/submit.out" | grep -o '[0-9]*$')
if [ -n "$J" ]; then ok "(b) submit-sweep.sh: $(head -1 "$T/submit.out")"
else bad "(b) no job id from submit-sweep.sh: $(cat "$T/submit.out")"; echo "$fails failure(s)"; exit 1; fi
grep -q -- "--status" "$T/submit.out" && grep -q -- "--aggregate" "$T/submit.out" && grep -q "squeue -j $J" "$T/submit.out" &&
    ok "(b) submit-sweep.sh prints how to follow the array" || bad "(b) submit-sweep.sh output: $(cat "$T/submit.out")"

# preempt task 0 (USR1 to the batch script) and task 1 (scontrol requeue) once each has journaled
# at least one finished task and is not done
k0=""; k1=""
for _ in $(seq 1 1200); do
    if [ -z "$k0" ] && [ "$(job_state "${J}_0")" = RUNNING ] && [ ! -e "$dir0/DONE" ]; then
        r=$(journal_records "$dir0/journal.msgpack")
        if [ "$r" -ge 1 ]; then
            # scancel delivers the signal at once, but while other tasks of the array are pending
            # it also reports "Job is in transitional state" and retries after 5 s; stop it before
            k0=$r; timeout 3 scancel --batch --signal=USR1 "${J}_0" >>"$T/scancel.log" 2>&1 &
        fi
    fi
    if [ -z "$k1" ] && [ "$(job_state "${J}_1")" = RUNNING ] && [ ! -e "$dir1/DONE" ]; then
        r=$(journal_records "$dir1/journal.msgpack")
        if [ "$r" -ge 1 ]; then k1=$r; scontrol requeue "${J}_1" || bad "(b) scontrol requeue failed"; fi
    fi
    [ -n "$k0" ] && [ -n "$k1" ] && break
    sleep 0.05
done
[ -n "$k0" ] && [ "$k0" -lt "$ntasks" ] && ok "(b) task ${J}_0 sent USR1 with $k0 of $ntasks tasks journaled (point 0 not done)" ||
    bad "(b) task 0 was not caught mid-run (journal: ${k0:-none})"
[ -n "$k1" ] && [ "$k1" -lt "$ntasks" ] && ok "(b) task ${J}_1 requeued by scontrol with $k1 of $ntasks tasks journaled (point 1 not done)" ||
    bad "(b) task 1 was not caught mid-run (journal: ${k1:-none})"

states=$(wait_job "$J" 240) && ok "(b) array $J ended: $states" || bad "(b) array $J: $states"
[ "$(squeue -h -r -t all -j "$J" -o '%T' | grep -c '^COMPLETED$')" = 4 ] && ok "(b) all 4 array tasks COMPLETED" ||
    bad "(b) array task states: $(squeue -h -r -t all -j "$J" -o '%i=%T' | tr '\n' ' ')"
l0="$T/logs/sweep-${J}_0.out"; l1="$T/logs/sweep-${J}_1.out"
grep -q "USR1 (preemption warning)" "$l0" && grep -q "exit 75: checkpointed; requeueing ${J}_0" "$l0" &&
    ok "(b) task 0: the trap forwarded USR1, pathens checkpointed (exit 75), the script requeued the task" ||
    bad "(b) task 0 log lacks the trap/requeue path: $(tail -5 "$l0")"
grep -q "TERM at" "$l1" && grep -q "exit 75: checkpointed after SIGTERM" "$l1" &&
    ok "(b) task 1: SLURM's TERM made pathens checkpoint (exit 75)" || bad "(b) task 1 log: $(tail -5 "$l1")"
for t in 0 1; do
    l="$T/logs/sweep-${J}_$t.out"; k=$([ $t = 0 ] && echo "$k0" || echo "$k1")
    runs=$(grep -c "^sweep point $t of 4" "$l"); rs=$(restarts "${J}_$t")
    rep=$(grep -o 'journal .*: [0-9]* finished tasks replayed' "$l" | grep -o '[0-9]* finished' | cut -d' ' -f1)
    [ "$runs" = 2 ] && [ "$rs" = 1 ] && grep -q "restart 1," "$l" &&
        ok "(b) task $t ran twice (Restarts=$rs, 2 'sweep point $t' runs in its log)" ||
        bad "(b) task $t: runs=$runs Restarts=$rs"
    [ -n "$rep" ] && [ "$rep" -ge "${k:-1}" ] && [ "$rep" -lt "$ntasks" ] &&
        ok "(b) task $t resumed: $rep finished tasks replayed from the journal ($k before the preemption)" ||
        bad "(b) task $t did not resume from its journal: $(grep journal "$l")"
done
for t in 2 3; do
    rs=$(restarts "${J}_$t"); [ "$rs" = 0 ] && ok "(b) task $t ran once" || bad "(b) task $t Restarts=$rs"
done
"$PATHENS" sweep "$ini" --status >"$T/status.out" 2>&1; rc=$?
[ $rc = 0 ] && grep -qE '^done +4 ' "$T/status.out" && ok "(b) pathens sweep --status: 4 done (exit 0)" ||
    bad "(b) --status exit $rc: $(cat "$T/status.out")"
"$PATHENS" sweep "$ini" --aggregate 2>"$T/agg.err" || bad "(b) aggregate: $(cat "$T/agg.err")"
cmp -s "$T/ref-sweep.json" "$T/sweep/sweep.json" && cmp -s "$T/ref-sweep.csv" "$T/sweep/sweep.csv" &&
    ok "(b) sweep.json and sweep.csv byte-identical to the uninterrupted local sweep" ||
    bad "(b) sweep differs: $(diff "$T/ref-sweep.json" "$T/sweep/sweep.json" | head -6)"
[ -s "$T/sweep/sweep_report.html" ] && ok "(b) sweep_report.html written" || bad "(b) no sweep_report.html"
echo "     (b) took $(( $(date +%s) - t0 )) s"

# ---- (c) srun --mpi=pmix -n 2 evaluation from jobs/eval.sbatch, preempted and resumed ----------
cfg="$T/eval.ini"
cat >"$cfg" <<EOF
[model]
path = $D/stories260K.bin
tokenizer = $D/tok512.bin
[data]
path = $D/tinystories_val.txt
mode = documents
limit = 240
[run]
out = $T/eval
shard = 4
[pathways]
scheme = local
ratio = 4
members = 4
EOF
etasks=60
t0=$(date +%s)
"$PATHENS" eval "$cfg" --quiet && cp "$T/eval/results.json" "$T/ref-results.json" &&
    ok "(c) local 1-process reference in $(( $(date +%s) - t0 )) s" || bad "(c) local reference run failed"
mv "$T/eval" "$T/eval-ref"
t0=$(date +%s)
E=$(sbatch --parsable -N 1 -n 2 --ntasks-per-node=2 -o "$T/logs/eval-%j.out" "$JOBS/eval.sbatch" "$cfg" 2>"$T/sbatch.err")
E=${E%%;*}
[ -n "$E" ] && ok "(c) sbatch -n 2 jobs/eval.sbatch: job $E" || bad "(c) sbatch: $(cat "$T/sbatch.err")"
ke=""
for _ in $(seq 1 1200); do
    if [ "$(job_state "$E")" = RUNNING ] && [ ! -e "$T/eval/results.json" ]; then
        r=$(journal_records "$T/eval/journal.msgpack")
        if [ "$r" -ge 2 ]; then ke=$r; timeout 3 scancel --batch --signal=USR1 "$E"; break; fi
    fi
    sleep 0.05
done
[ -n "$ke" ] && [ "$ke" -lt "$etasks" ] && ok "(c) job $E sent USR1 with $ke of $etasks tasks journaled" ||
    bad "(c) the evaluation was not caught mid-run (journal: ${ke:-none})"
states=$(wait_job "$E" 180) && [ "$(job_state "$E")" = COMPLETED ] && ok "(c) job $E ended: $states" || bad "(c) job $E: $states"
le="$T/logs/eval-$E.out"
grep -q "2 ranks x 1 thread" "$le" && ok "(c) srun --mpi=pmix started 2 ranks" || bad "(c) not 2 ranks: $(head -3 "$le")"
grep -q "USR1 (preemption warning)" "$le" && grep -q "exit 75: checkpointed; requeueing job $E" "$le" &&
    ok "(c) the trap forwarded USR1 through srun, exit 75, the script requeued the job" ||
    bad "(c) eval log lacks the trap/requeue path: $(grep -E 'USR1|exit|srun' "$le" | head -5)"
rep=$(grep -o '[0-9]* finished tasks replayed' "$le" | cut -d' ' -f1)
[ "$(restarts "$E")" = 1 ] && [ -n "$rep" ] && [ "$rep" -ge "${ke:-1}" ] &&
    ok "(c) job $E restarted once and resumed: $rep finished tasks replayed" ||
    bad "(c) Restarts=$(restarts "$E"), replayed=${rep:-none}"
cmp -s "$T/ref-results.json" "$T/eval/results.json" &&
    ok "(c) results.json of the preempted 2-rank SLURM run byte-identical to the local 1-process run" ||
    bad "(c) results differ: $(diff "$T/ref-results.json" "$T/eval/results.json" | head -6)"
echo "     (c) took $(( $(date +%s) - t0 )) s"

# ---- (d) a failing point: the array task fails with pathens' exit code and is not requeued -------
bad_ini="$T/bad.ini"
cat >"$bad_ini" <<EOF
; a tokenizer given as the model: exit 2 (bad input)
[model]
path = $D/tok512.bin
tokenizer = $D/tok512.bin
[data]
path = $D/tinystories_val.txt
limit = 8
[run]
out = $T/bad
EOF
MAXPAR=1 PATHENS_LOGS="$T/logs" "$JOBS/submit-sweep.sh" "$bad_ini" >"$T/submit-bad.out" 2>&1
B=$(grep -o 'submitted job array [0-9]*' "$T/submit-bad.out" | grep -o '[0-9]*$')
if [ -n "$B" ] && states=$(wait_job "$B" 60); then
    st=$(job_state "${B}_0"); ec=$(scontrol show job "${B}_0" | grep -o ' ExitCode=[0-9:]*' | cut -d= -f2)
    [ "$st" = FAILED ] && [ "$ec" = "2:0" ] && [ "$(restarts "${B}_0")" = 0 ] &&
        ok "(d) a bad point: array task FAILED with ExitCode $ec (pathens exit 2), not requeued" ||
        bad "(d) bad point: state $st ExitCode $ec Restarts $(restarts "${B}_0")"
    "$PATHENS" sweep "$bad_ini" --status 2>/dev/null | grep -qE '^failed +1 +0' &&
        ok "(d) pathens sweep --status lists the point as failed" || bad "(d) --status: $("$PATHENS" sweep "$bad_ini" --status 2>&1)"
else bad "(d) bad sweep: ${B:-no job}: $(cat "$T/submit-bad.out") ${states:-}"; fi

# ---- (e) srun --mpi=pmix -n 2 training from jobs/train.sbatch, preempted and resumed -----------
F=${PATHENS_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
tcfg="$T/train.ini"
cat >"$tcfg" <<EOF
[model]
config = $PATHENS_SRC/tests/arch/vit-tiny.json
[data]
path = $F/train-images-idx3-ubyte.gz
limit = 2000
[pathways]
scheme = local
ratio = 4
[train]
steps = 400
batch = 32
warmup = 20
finetune_dense_steps = 40
checkpoint_steps = 10
log_every = 10
[run]
out = $T/train
EOF
t0=$(date +%s)
"$PATHENS" train "$tcfg" --set run.out="$T/train-ref" --quiet && ok "(e) local 1-process training reference in $(( $(date +%s) - t0 )) s" ||
    bad "(e) local training reference failed"
t0=$(date +%s)
R=$(sbatch --parsable -N 1 -n 2 --ntasks-per-node=2 -o "$T/logs/train-%j.out" "$JOBS/train.sbatch" "$tcfg" 2>"$T/sbatch.err")
R=${R%%;*}
[ -n "$R" ] && ok "(e) sbatch -n 2 jobs/train.sbatch: job $R" || bad "(e) sbatch: $(cat "$T/sbatch.err")"
at=""
for _ in $(seq 1 1200); do
    if [ "$(job_state "$R")" = RUNNING ] && [ ! -e "$T/train/model.safetensors" ] &&
       grep -q "step-000000[2-9]" "$T/train/checkpoint/LATEST" 2>/dev/null; then
        at=$(cat "$T/train/checkpoint/LATEST"); timeout 3 scancel --batch --signal=USR1 "$R"; break
    fi
    sleep 0.05
done
[ -n "$at" ] && ok "(e) job $R sent USR1 mid-run (checkpoint $at)" || bad "(e) the training was not caught mid-run"
states=$(wait_job "$R" 240) && [ "$(job_state "$R")" = COMPLETED ] && ok "(e) job $R ended: $states" || bad "(e) job $R: $states"
lt="$T/logs/train-$R.out"
grep -q "2 ranks x 1 BLAS thread" "$lt" && grep -q "USR1 (preemption warning)" "$lt" &&
    grep -q "exit 75: checkpointed; requeueing job $R" "$lt" && grep -q "resuming from step" "$lt" &&
    ok "(e) 2 ranks, USR1 through srun, exit 75, requeued, resumed from the checkpoint" ||
    bad "(e) train log lacks the trap/requeue/resume path: $(grep -E 'USR1|exit|resum|rank' "$lt" | head -6)"
cmp -s "$T/train-ref/model.safetensors" "$T/train/model.safetensors" &&
    ok "(e) weights of the preempted 2-rank SLURM training byte-identical to the local 1-process run" ||
    bad "(e) trained weights differ from the local run"
echo "     (e) took $(( $(date +%s) - t0 )) s"

# ---- (f) a training sweep ([sweep] kind = train) as a job array, a task preempted mid-training ----
fini="$T/sweep-train.ini"
cat >"$fini" <<EOF
; slurm_sweep.sh (f): 2 points (dense with sweep.dense_scheme = local, local rho 4 with a dense
; fine-tune), each trained with dropout on a tiny byte LM, then evaluated on the test span
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
steps = 600
batch = 8
grad_chunks = 2
warmup = 20
lr = 3e-3
dropout = 0.1
finetune_dense_steps = 60
val_span = 0.8:0.9
log_every = 10
checkpoint_steps = 10
checkpoint_minutes = 0
[eval.data]
path = $D/tinyshakespeare.txt
span = 0.9:1
mode = windows
limit = 40
[eval.pathways]
members = 4
[eval.importance]
statistics = 0
[run]
out = $T/tsweep
EOF
t0=$(date +%s)
"$PATHENS" sweep "$fini" --quiet && "$PATHENS" sweep "$fini" --aggregate 2>"$T/tagg-ref.err" &&
    cp "$T/tsweep/sweep.csv" "$T/ref-tsweep.csv" && cp "$T/tsweep/sweep.json" "$T/ref-tsweep.json" &&
    ok "(f) local training-sweep reference: 2 points in $(( $(date +%s) - t0 )) s" ||
    bad "(f) local training sweep failed: $(cat "$T/tagg-ref.err")"
tsub=$(/usr/bin/python3 -c 'import json,sys; print([r["dir"] for r in json.load(open(sys.argv[1]))["rows"] if r["index"] == 0][0])' "$T/ref-tsweep.json")
tdir0="$T/tsweep/$tsub"; tdir0_ref="$T/tsweep-ref/$tsub"
mv "$T/tsweep" "$T/tsweep-ref"
t0=$(date +%s)
MAXPAR=2 PATHENS_LOGS="$T/logs" "$JOBS/submit-sweep.sh" "$fini" >"$T/submit-t.out" 2>&1 || bad "(f) submit-sweep.sh: $(cat "$T/submit-t.out")"
TJ=$(grep -o 'submitted job array [0-9]*' "$T/submit-t.out" | grep -o '[0-9]*$')
if [ -z "$TJ" ]; then bad "(f) no job id: $(cat "$T/submit-t.out")"; echo "$fails failure(s)"; exit 1; fi
ok "(f) submit-sweep.sh: $(head -1 "$T/submit-t.out")"
tat=""
for _ in $(seq 1 2400); do
    if [ "$(job_state "${TJ}_0")" = RUNNING ] && [ ! -e "$tdir0/train/train.json" ] &&
       grep -q "step-0*[2-9][0-9]$" "$tdir0/train/checkpoint/LATEST" 2>/dev/null; then
        tat=$(cat "$tdir0/train/checkpoint/LATEST"); timeout 3 scancel --batch --signal=USR1 "${TJ}_0" >>"$T/scancel.log" 2>&1; break
    fi
    sleep 0.05
done
[ -n "$tat" ] && ok "(f) task ${TJ}_0 sent USR1 mid-training (checkpoint $tat)" || bad "(f) point 0's training was not caught mid-run"
states=$(wait_job "$TJ" 300) && [ "$(squeue -h -r -t all -j "$TJ" -o '%T' | grep -c '^COMPLETED$')" = 2 ] &&
    ok "(f) array $TJ ended: $states" || bad "(f) array $TJ: ${states:-} $(squeue -h -r -t all -j "$TJ" -o '%i=%T' | tr '\n' ' ')"
lf="$T/logs/sweep-${TJ}_0.out"
grep -q "USR1 (preemption warning)" "$lf" && grep -q "exit 75: checkpointed; requeueing ${TJ}_0" "$lf" &&
    [ "$(restarts "${TJ}_0")" = 1 ] && ok "(f) task 0: USR1, exit 75 during training, requeued (Restarts=1)" ||
    bad "(f) task 0 log lacks the trap/requeue path (Restarts=$(restarts "${TJ}_0")): $(tail -5 "$lf")"
rat=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["resumed_at_step"])' "$tdir0/train/train.json" 2>/dev/null)
[ -n "$rat" ] && [ "$rat" -gt 0 ] && ok "(f) point 0's training resumed from its checkpoint at step $rat" ||
    bad "(f) point 0 not resumed from a checkpoint (resumed_at_step ${rat:-none})"
cmp -s "$tdir0_ref/train/model.safetensors" "$tdir0/train/model.safetensors" &&
    ok "(f) point 0's weights byte-identical to the local sweep's" || bad "(f) point 0's weights differ from the local sweep's"
"$PATHENS" sweep "$fini" --aggregate 2>"$T/tagg.err" || bad "(f) aggregate: $(cat "$T/tagg.err")"
cmp -s "$T/ref-tsweep.json" "$T/tsweep/sweep.json" && cmp -s "$T/ref-tsweep.csv" "$T/tsweep/sweep.csv" &&
    ok "(f) sweep.json and sweep.csv byte-identical to the uninterrupted local training sweep" ||
    bad "(f) training sweep differs: $(diff "$T/ref-tsweep.csv" "$T/tsweep/sweep.csv" | head -6)"
echo "     (f) took $(( $(date +%s) - t0 )) s"

# ---- SLURM down (also done by the EXIT trap); twice is fine ------------------------------------
pids=$(cat "$S/slurmctld.pid" "$S/slurmd.pid" 2>/dev/null)
"$PATHENS_SRC/tools/slurm_down.sh" "$S" >"$T/slurm_down.log" 2>&1 && "$PATHENS_SRC/tools/slurm_down.sh" "$S" >>"$T/slurm_down.log" 2>&1 &&
    ! { [ -s "$S/slurmctld.pid" ] || [ -s "$S/slurmd.pid" ]; } && [ -n "$pids" ] && ! kill -0 $pids 2>/dev/null &&
    ok "slurm down (twice): $(grep -c stopped "$T/slurm_down.log") daemons stopped, none left" ||
    bad "slurm_down.sh: $(cat "$T/slurm_down.log")"
echo "total $(( $(date +%s) - t_start )) s; $fails failure(s)"
[ "$fails" = 0 ]
