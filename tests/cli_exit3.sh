#!/usr/bin/env bash
# cli_exit3.sh: exit code 3 (internal error: an I/O failure) from a real full device, and no
# partial outputs. Outputs are written to "<file>.tmp.<pid>" and renamed (src/common.c); here that
# temporary name is made, before the process starts, a symlink to /dev/full (every write fails
# with ENOSPC, also for root), by a shell that then execs pathens (same pid):
#   eval, results.json on a full device: exit 3, a message naming the file and the disk, no
#   results.json and no temporary file left behind; the same command without /dev/full: exit 0
#   and a results.json (so the failure comes from the device, not the command);
#   eval, a later output (members.csv) on a full device: exit 3 naming members.csv;
#   train, model.safetensors on a full device: exit 3, no model.safetensors, no temporary file.
set -u
: "${PATHENS:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}" "${PATHENS_DATA_DIR:?}"
source "$PATHENS_SRC/tests/lib.sh"
need_data stories260K.bin tok512.bin tinystories_val.txt tinyshakespeare.txt
T="$PATHENS_TEST_TMP/cli_exit3"; rm -rf "$T"; mkdir -p "$T"
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
export OPENBLAS_NUM_THREADS=1
[ -w /dev/full ] || { echo "FAIL: /dev/full is not writable here"; exit 1; }
D=$PATHENS_DATA_DIR
printf '[model]\npath = %s\ntokenizer = %s\n[data]\npath = %s\nlimit = 3\n[pathways]\nmembers = 2\n' \
    "$D/stories260K.bin" "$D/tok512.bin" "$D/tinystories_val.txt" >"$T/lm.ini"

full() { # full OUT_DIR FILE CMD...: run CMD (pathens ...) with OUT_DIR/FILE.tmp.<its pid> on /dev/full
    local out=$1 file=$2; shift 2
    mkdir -p "$out"
    bash -c 'ln -s /dev/full "$1/$2.tmp.$$" && shift 2 && exec "$@"' _ "$out" "$file" "$@"
}
leftovers() { ls "$1" | grep '\.tmp\.' | tr '\n' ' '; }

# 1. results.json on a full device
out="$T/eval_full"
full "$out" results.json "$PATHENS" eval "$T/lm.ini" --quiet --set run.out="$out" 2>"$T/err1"; rc=$?
[ $rc = 3 ] && ok "eval, results.json on a full device: exit 3" || bad "eval, results.json on a full device: exit $rc (expected 3): $(head -2 "$T/err1")"
grep -q "results.json.tmp.*No space left on device" "$T/err1" && ok "the message names the file and the cause: $(head -1 "$T/err1")" \
    || bad "message lacks the file or the cause: $(head -2 "$T/err1")"
[ ! -e "$out/results.json" ] && ok "no results.json after the failed write" || bad "a results.json exists after the failed write"
[ -z "$(leftovers "$out")" ] && ok "no temporary file left in run.out" || bad "temporary files left: $(leftovers "$out")"
out="$T/eval_ok"
"$PATHENS" eval "$T/lm.ini" --quiet --set run.out="$out" 2>"$T/err0"; rc=$?
[ $rc = 0 ] && [ -s "$out/results.json" ] && ok "control: the same command on a normal folder: exit 0, results.json" \
    || bad "control run: exit $rc: $(head -2 "$T/err0")"

# 2. a later output file on a full device
out="$T/eval_full_csv"
full "$out" members.csv "$PATHENS" eval "$T/lm.ini" --quiet --set run.out="$out" 2>"$T/err2"; rc=$?
[ $rc = 3 ] && grep -q "members.csv.tmp.*No space left" "$T/err2" && ok "eval, members.csv on a full device: exit 3, named" \
    || bad "eval, members.csv on a full device: exit $rc: $(head -2 "$T/err2")"
[ -z "$(leftovers "$out")" ] || bad "temporary files left: $(leftovers "$out")"

# 3. training: the trained weights on a full device
cat >"$T/train.ini" <<I
[model]
config = $PATHENS_SRC/tests/arch/lm-tiny.json
tokenizer = bytes
[data]
path = $D/tinyshakespeare.txt
span = 0:0.1
[pathways]
scheme = unbiased
[train]
steps = 2
batch = 4
grad_chunks = 2
warmup = 1
checkpoint_minutes = 0
log_every = 1
I
out="$T/train_full"
full "$out" model.safetensors "$PATHENS" train "$T/train.ini" --quiet --set run.out="$out" 2>"$T/err3"; rc=$?
[ $rc = 3 ] && grep -q "model.safetensors.tmp.*No space left" "$T/err3" && ok "train, model.safetensors on a full device: exit 3, named" \
    || bad "train, model.safetensors on a full device: exit $rc (expected 3): $(head -2 "$T/err3")"
[ ! -e "$out/model.safetensors" ] && [ -z "$(leftovers "$out")" ] && ok "train: no model.safetensors, no temporary file" \
    || bad "train: left $(ls "$out" | tr '\n' ' ')"

[ $fails = 0 ] && echo "cli_exit3: all passed" || echo "cli_exit3: $fails failure(s)"
exit $((fails > 0))
