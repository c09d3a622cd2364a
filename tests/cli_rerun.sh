#!/usr/bin/env bash
# cli_rerun.sh: runs you can rerun, serial (no mpirun), in the MPI build and in the MPI-less build.
#   eval: no journal.msgpack after success; rerunning the finished config is a no-op that says so
#   (exit 0, results.json not rewritten); another config into the used run.out is refused (exit 2)
#   with both ways forward (another run.out, --overwrite) and changes nothing; --overwrite
#   recomputes; an unfinished run of another config is refused the same way.
#   SIGINT (Ctrl-C) = SIGTERM: MPI build: exit 75, a message naming the journal and how to resume,
#   no coordinator.pid, and the rerun replays the journal (fewer tasks computed) and gives
#   byte-identical results; a TERM repeated while it stops still gives exit 75. MPI-less build
#   (no journal): SIGINT ends the run (130) with no results.json and no pid file, and the rerun
#   computes everything.
#   train: SIGINT -> exit 75 with a checkpoint and a message; a used run.out is refused (exit 2)
#   with its three ways forward; --overwrite starts over; --resume and --overwrite together: usage.
#   One run per run.out: eval or train into a folder that a running pathens holds is refused
#   (exit 2, naming its pid); the lock is gone when the holder is (kill -9).
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}"
T="$PATHENS_TEST_TMP/cli_rerun"; rm -rf "$T"; mkdir -p "$T"
source "$PATHENS_SRC/tests/lib.sh"
need_data stories260K.bin tok512.bin tinystories_val.txt tinyshakespeare.txt
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
D="$PATHENS_DATA_DIR"
export OPENBLAS_NUM_THREADS=1
mpi=0; ldd "$PATHENS" | grep -q libmpi && mpi=1
echo "build: $([ $mpi = 1 ] && echo "with MPI (journal)" || echo "without MPI (no journal)")"
json() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
stamp() { stat -c '%i %Y.%y' "$1" 2>/dev/null; } # inode + mtime: an atomic rewrite changes both
# a script's background job starts with SIGINT ignored (and pathens keeps it so, as the shell means):
# start the runs that get a Ctrl-C the way a terminal would, with SIGINT at its default
with_sigint() { exec /usr/bin/python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' "$@"; }
same_results() { # same_results A B: byte-identical but for the run.out line results.json echoes
    cmp -s <(sed '/^\t\t\t"out":/d' "$1") <(sed '/^\t\t\t"out":/d' "$2"); }

out="$T/run"
base=(eval "$PATHENS_SRC/configs/stories260k.ini" --set model.path="$D/stories260K.bin" --set model.tokenizer="$D/tok512.bin"
      --set data.path="$D/tinystories_val.txt" --set data.limit=160 --set run.shard=4 --set pathways.members=4
      --set importance.statistics=0 --quiet)
tasks=40

# 1. a finished run keeps no journal
"$PATHENS" "${base[@]}" --set run.out="$out" 2>"$T/err1"; rc=$?
[ $rc = 0 ] && [ -f "$out/results.json" ] && ok "reference run (exit 0)" || bad "reference run: exit $rc: $(tail -3 "$T/err1")"
cp "$out/results.json" "$T/ref.json"
[ ! -e "$out/journal.msgpack" ] && ok "no journal.msgpack after success" || bad "journal.msgpack left after success ($(stat -c %s "$out/journal.msgpack") bytes)"
[ ! -e "$out/coordinator.pid" ] && ok "no coordinator.pid after success" || bad "coordinator.pid left after success"

# 2. the same config again: a no-op that says so
before=$(stamp "$out/results.json")
"$PATHENS" "${base[@]}" --set run.out="$out" 2>"$T/err2"; rc=$?
[ $rc = 0 ] && ok "rerun of the finished config: exit 0" || bad "rerun: exit $rc: $(cat "$T/err2")"
grep -q "already holds the finished run of this config.*nothing to do" "$T/err2" && ok "rerun says so: $(head -c 160 "$T/err2")" \
    || bad "rerun message: $(cat "$T/err2")"
[ "$(stamp "$out/results.json")" = "$before" ] && cmp -s "$T/ref.json" "$out/results.json" \
    && ok "rerun: results.json not rewritten" || bad "rerun rewrote results.json"
# the batch changes no number: still the same run
"$PATHENS" "${base[@]}" --set run.out="$out" --set run.batch=5 2>"$T/err2b"; rc=$?
[ $rc = 0 ] && grep -q "nothing to do" "$T/err2b" && ok "another run.batch: still a no-op" || bad "run.batch: exit $rc: $(cat "$T/err2b")"
# a crash after results.json but before the journal was removed: the rerun tidies up
printf 'PJR1' >"$out/journal.msgpack"; rm -f "$out/report.html"
"$PATHENS" "${base[@]}" --set run.out="$out" 2>"$T/err2c"; rc=$?
[ $rc = 0 ] && [ ! -e "$out/journal.msgpack" ] && [ -f "$out/report.html" ] \
    && ok "rerun after a crash between results and cleanup: journal removed, report.html rewritten" \
    || bad "crash leftovers: exit $rc, $(ls "$out"): $(cat "$T/err2c")"

# 3. another config into the used run.out: refused, both ways forward named, nothing changed
before=$(stamp "$out/results.json")
"$PATHENS" "${base[@]}" --set run.out="$out" --set pathways.members=3 2>"$T/err3"; rc=$?
[ $rc = 2 ] && ok "another config refused (exit 2)" || bad "another config: exit $rc"
grep -q "pathways.members: 3 here, 4 there" "$T/err3" && ok "the message names what differs" || bad "no difference named: $(cat "$T/err3")"
grep -q -- "--set run.out=" "$T/err3" && grep -q -- "--overwrite" "$T/err3" \
    && ok "both ways forward named (another run.out, --overwrite)" || bad "ways forward: $(cat "$T/err3")"
[ "$(stamp "$out/results.json")" = "$before" ] && ok "refused run changed nothing" || bad "refused run touched results.json"

# 4. --overwrite recomputes
"$PATHENS" "${base[@]}" --set run.out="$out" --set pathways.members=3 --overwrite 2>"$T/err4"; rc=$?
[ $rc = 0 ] && [ "$(json "$out/results.json" "len(d['members'])")" = 3 ] \
    && ok "--overwrite: exit 0, results.json of the new config (3 members)" || bad "--overwrite: exit $rc: $(cat "$T/err4")"
[ ! -e "$out/journal.msgpack" ] && ok "--overwrite run keeps no journal either" || bad "journal after --overwrite run"
"$PATHENS" eval --overwrite --bogus 2>/dev/null; [ $? = 1 ] && ok "eval option parsing: unknown option still exit 1" || bad "usage exit"

# 5. SIGINT (Ctrl-C) to a serial run
int_out="$T/int"
with_sigint "$PATHENS" "${base[@]}" --set run.out="$int_out" 2>"$T/err5" & job=$!
if [ $mpi = 1 ]; then
    for i in $(seq 1 600); do [ "$(journal_records "$int_out")" -ge 2 ] && break; kill -0 $job 2>/dev/null || break; sleep 0.05; done
else # nothing on disk before the end without a journal: the run takes > 2 s of CPU, stop it after 1 s
    sleep 1
fi
kill -INT $job; wait $job; rc=$?
[ ! -e "$int_out/coordinator.pid" ] && ok "SIGINT: no coordinator.pid left" || bad "SIGINT left coordinator.pid"
[ ! -e "$int_out/results.json" ] && ok "SIGINT: no results.json from the stopped run" || bad "results.json after SIGINT"
if [ $mpi = 1 ]; then
    saved=$(journal_records "$int_out")
    [ $rc = 75 ] && ok "SIGINT: exit 75 after $saved of $tasks tasks" || bad "SIGINT: exit $rc (wanted 75): $(cat "$T/err5")"
    grep -q "stopped by SIGINT after $saved of $tasks tasks.*saved in $int_out/journal.msgpack.*rerun the same command" "$T/err5" \
        && ok "SIGINT message: $(grep 'stopped by SIGINT' "$T/err5" | head -c 200)" || bad "SIGINT message: $(cat "$T/err5")"
    [ "$saved" -ge 2 ] && [ "$saved" -lt $tasks ] && ok "the journal holds the $saved finished tasks" || bad "journal holds $saved tasks"
    "$PATHENS" "${base[@]}" --set run.out="$int_out" 2>"$T/err5b"; rc=$?
    replayed=$(json "$int_out/timing.json" "d['tasks_replayed_from_journal']" 2>/dev/null)
    computed=$(json "$int_out/timing.json" "sum(r['tasks'] for r in d['per_rank'])" 2>/dev/null)
    [ $rc = 0 ] && same_results "$T/ref.json" "$int_out/results.json" && ok "resumed: byte-identical results.json (but run.out)" \
        || bad "resume: exit $rc, results differ: $(diff "$T/ref.json" "$int_out/results.json" | head -4)"
    [ "$replayed" = "$saved" ] && [ "$computed" = $((tasks - saved)) ] \
        && ok "resume replayed $replayed tasks from the journal and computed only $computed of $tasks" \
        || bad "resume: replayed $replayed (journal had $saved), computed $computed of $tasks"
    # an unfinished run of another config is refused with the ways forward (and not replayed)
    "$PATHENS" "${base[@]}" --set run.out="$T/int2" 2>/dev/null & job=$!
    for i in $(seq 1 600); do [ "$(journal_records "$T/int2")" -ge 1 ] && break; sleep 0.05; done
    # TERM, then TERM again and again while it winds down (SLURM signals every process of a job and
    # a batch script forwards its own TERM): still exit 75, never a death by the repeated signal
    kill -TERM $job
    while kill -TERM $job 2>/dev/null; do sleep 0.002; done
    wait $job; rc=$?
    [ $rc = 75 ] && ok "TERM repeated every 2 ms while it stops: still exit 75" \
        || bad "TERM repeated while it stops: exit $rc (wanted 75; 143 is a death by the repeated TERM)"
    "$PATHENS" "${base[@]}" --set run.out="$T/int2" --set pathways.seed=7 2>"$T/err5c"; rc=$?
    [ $rc = 2 ] && grep -q "unfinished run of another config" "$T/err5c" && grep -q -- "--overwrite" "$T/err5c" \
        && grep -q -- "--set run.out=" "$T/err5c" && ok "unfinished run of another config refused (exit 2, ways forward)" \
        || bad "foreign journal: exit $rc: $(cat "$T/err5c")"
    "$PATHENS" "${base[@]}" --set run.out="$T/int2" --set pathways.seed=7 --overwrite 2>"$T/err5d"; rc=$?
    [ $rc = 0 ] && [ "$(json "$T/int2/timing.json" "d['tasks_replayed_from_journal']")" = 0 ] \
        && ok "--overwrite discards the foreign journal: nothing replayed" || bad "--overwrite over a journal: exit $rc: $(cat "$T/err5d")"
else
    [ $rc = 130 ] && ok "SIGINT without MPI (no journal): the run ends (exit 130)" || bad "SIGINT without MPI: exit $rc"
    "$PATHENS" "${base[@]}" --set run.out="$int_out" 2>"$T/err5b"; rc=$?
    [ $rc = 0 ] && same_results "$T/ref.json" "$int_out/results.json" && ok "rerun after SIGINT: identical results" \
        || bad "rerun after SIGINT: exit $rc"
    # a journal from an MPI build cannot be resumed here: refused, not overwritten
    mkdir -p "$T/mj" && printf 'PJR1' >"$T/mj/journal.msgpack"
    "$PATHENS" "${base[@]}" --set run.out="$T/mj" 2>"$T/err5c"; rc=$?
    [ $rc = 2 ] && grep -q -- "--overwrite" "$T/err5c" && ok "a journal of an MPI build refused (exit 2, --overwrite named)" \
        || bad "MPI journal in an MPI-less build: exit $rc: $(cat "$T/err5c")"
fi

# 6. train: SIGINT, a used run.out, --overwrite
cat > "$T/lm.ini" <<I
[model]
config = $PATHENS_SRC/tests/arch/lm-tiny.json
tokenizer = bytes
[data]
path = $D/tinyshakespeare.txt
span = 0:0.9
[pathways]
scheme = unbiased
ratio = 4
[train]
steps = 4000
batch = 16
grad_chunks = 4
warmup = 4
lr = 3e-3
log_every = 5
checkpoint_minutes = 0
I
tr="$T/train"
with_sigint "$PATHENS" train "$T/lm.ini" --set run.out="$tr" --quiet 2>"$T/err6" & job=$!
for i in $(seq 1 600); do [ -f "$tr/train_log.csv" ] && [ "$(wc -l < "$tr/train_log.csv")" -ge 3 ] && break; sleep 0.05; done
kill -INT $job; wait $job; rc=$?
[ $rc = 75 ] && [ -f "$tr/checkpoint/LATEST" ] && ok "train SIGINT: exit 75 with a checkpoint ($(cat "$tr/checkpoint/LATEST"))" \
    || bad "train SIGINT: exit $rc: $(cat "$T/err6")"
grep -q "stopped by a signal after step [0-9]* (checkpoint in $tr/checkpoint); rerun with --resume" "$T/err6" \
    && ok "train SIGINT message names the checkpoint and --resume" || bad "train SIGINT message: $(cat "$T/err6")"
"$PATHENS" train "$T/lm.ini" --set run.out="$tr" --quiet 2>"$T/err7"; rc=$?
[ $rc = 2 ] && grep -q -- "--resume" "$T/err7" && grep -q -- "--overwrite" "$T/err7" && grep -q -- "--set run.out=" "$T/err7" \
    && ok "train into a used run.out refused (exit 2) with --resume, --overwrite and another run.out" \
    || bad "train used run.out: exit $rc: $(cat "$T/err7")"
"$PATHENS" train "$T/lm.ini" --set run.out="$tr" --resume --overwrite 2>/dev/null; rc=$?
[ $rc = 1 ] && ok "train --resume --overwrite: usage error" || bad "train --resume --overwrite: exit $rc"
"$PATHENS" train "$T/lm.ini" --set run.out="$tr" --set train.steps=10 --overwrite --quiet 2>"$T/err8"; rc=$?
[ $rc = 0 ] && [ -f "$tr/model.safetensors" ] && [ "$(tail -1 "$tr/train_log.csv" | cut -d, -f1)" = 10 ] \
    && ok "train --overwrite: a fresh 10-step run" || bad "train --overwrite: exit $rc: $(cat "$T/err8")"

# 5. one run per run.out: a second pathens into a folder that a running one holds (.pathens.lock,
#    flock) is refused at once (exit 2), naming the holder, whatever the configs; the holder's run
#    is untouched; the lock goes with the holder (kill -9 included)
held="$T/held"
"$PATHENS" "${base[@]}" --set run.out="$held" 2>"$T/err9" & job=$!
for i in $(seq 1 600); do grep -q "^pid $job " "$held/.pathens.lock" 2>/dev/null && break; sleep 0.02; done
"$PATHENS" "${base[@]}" --set run.out="$held" --set pathways.members=2 2>"$T/err10"; rc=$?
wait $job; rc1=$?
[ $rc = 2 ] && grep -q "$held is in use by another pathens run (pid $job on .* since 20" "$T/err10" \
    && ok "eval into a folder another eval holds: refused (exit 2), the holder named" \
    || bad "eval into a held folder: exit $rc: $(cat "$T/err10")"
[ $rc1 = 0 ] && same_results "$held/results.json" "$T/ref.json" && ok "the holder's run: exit 0, the reference results" \
    || bad "the holder's run: exit $rc1: $(tail -2 "$T/err9")"
th="$T/train_held"
"$PATHENS" train "$T/lm.ini" --set run.out="$th" --quiet 2>/dev/null & job=$!
for i in $(seq 1 600); do grep -q "^pid $job " "$th/.pathens.lock" 2>/dev/null && break; sleep 0.02; done
"$PATHENS" train "$T/lm.ini" --set run.out="$th" --resume --quiet 2>"$T/err11"; rc=$?
kill -9 $job; wait $job 2>/dev/null
[ $rc = 2 ] && grep -q "$th is in use by another pathens run (pid $job on " "$T/err11" \
    && ok "train --resume into a folder a running training holds: refused (exit 2)" \
    || bad "train into a held folder: exit $rc: $(cat "$T/err11")"
"$PATHENS" train "$T/lm.ini" --set run.out="$th" --set train.steps=10 --overwrite --quiet 2>"$T/err12"; rc=$?
[ $rc = 0 ] && ok "after kill -9 of the holder the folder is free (--overwrite runs, exit 0)" \
    || bad "after kill -9 of the holder: exit $rc: $(cat "$T/err12")"

echo "$fails failure(s)"
[ "$fails" = 0 ]
