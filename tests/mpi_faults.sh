#!/usr/bin/env bash
# mpi_faults.sh: runs that survive. Under a real mpirun (3 ranks):
#   kill -9 of a worker, and separately of the coordinator, mid-run: the rerun finishes and its
#   results.json is byte-identical to an uninterrupted run;
#   SIGTERM to the coordinator (and SIGUSR1 to mpirun, which forwards it) gives exit 75, and
#   the rerun completes with identical bytes;
#   a corrupted journal (flipped byte, truncated tail, a different config) is detected: damaged
#   records are redone, a foreign journal is refused.
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}" "${MPIEXEC:?}"
source "$PATHENS_SRC/tests/lib.sh"
need_data stories260K.bin tok512.bin tinystories_val.txt
T="$PATHENS_TEST_TMP/mpi_faults"; rm -rf "$T"; mkdir -p "$T"
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
out="$T/run"
loud=(eval "$PATHENS_SRC/configs/stories260k.ini" --set data.limit=240 --set run.shard=4
      --set pathways.members=4 --set run.out="$out")
args=("${loud[@]}" --quiet)
export OPENBLAS_NUM_THREADS=1

# the reference: one uninterrupted run
"$MPIEXEC" -n 3 "$PATHENS" "${args[@]}" || bad "reference run failed"
cp "$out/results.json" "$T/ref.json"
tasks=$(( (240 + 3) / 4 ))

journal_records() { # number of task records in the journal (from its framing)
    /usr/bin/python3 - "$out/journal.msgpack" <<'PY'
import struct, sys
try: b = open(sys.argv[1], 'rb').read()
except OSError: print(0); sys.exit()
n, p = 0, 0
while p + 12 <= len(b) and b[p:p+4] == b'PJR1':
    l = struct.unpack('<I', b[p+4:p+8])[0]
    if p + 12 + l > len(b): break
    n += 1; p += 12 + l
print(max(n - 1, 0))
PY
}
wait_records() { # wait until the journal holds at least $1 task records (or the job ended)
    for i in $(seq 1 400); do
        [ "$(journal_records)" -ge "$1" ] && return 0
        kill -0 "$job" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
rank_pids() { pgrep -P "$job" -f "$PATHENS" | sort -n; } # the ranks are mpirun's children
resume_and_compare() { # resume_and_compare WHAT
    "$MPIEXEC" -n 2 "$PATHENS" "${args[@]}"; local rc=$?
    [ $rc = 0 ] || { bad "$1: rerun exit $rc"; return; }
    cmp -s "$T/ref.json" "$out/results.json" && ok "$1: rerun finished with byte-identical results.json" \
        || bad "$1: results differ: $(diff "$T/ref.json" "$out/results.json" | head -4)"
}

# 1. kill -9 of a worker mid-run
rm -rf "$out"
"$MPIEXEC" -n 3 "$PATHENS" "${args[@]}" 2>"$T/err1" & job=$!
if wait_records 3; then
    coord=$(cat "$out/coordinator.pid" 2>/dev/null)
    victim=$(rank_pids | grep -vx "$coord" | head -1)
    kill -9 "$victim" && ok "killed worker pid $victim after $(journal_records) of $tasks tasks"
else bad "run 1 ended before 3 tasks were journaled"; fi
wait "$job"; rc=$?
[ $rc != 0 ] && ok "mpirun reports the dead worker (exit $rc)" || bad "mpirun exit 0 after a killed worker"
[ "$(journal_records)" -lt "$tasks" ] && ok "the run was interrupted ($(journal_records) of $tasks tasks journaled)" \
    || bad "every task finished before the kill"
resume_and_compare "worker kill -9"

# 2. kill -9 of the coordinator mid-run
rm -rf "$out"
"$MPIEXEC" -n 3 "$PATHENS" "${args[@]}" 2>"$T/err2" & job=$!
if wait_records 3; then kill -9 "$(cat "$out/coordinator.pid")" && ok "killed the coordinator after $(journal_records) tasks"
else bad "run 2 ended before 3 tasks were journaled"; fi
wait "$job"
resume_and_compare "coordinator kill -9"

# 3. SIGTERM to the coordinator: exit 75, journal flushed
rm -rf "$out"
"$MPIEXEC" -n 3 "$PATHENS" "${args[@]}" 2>"$T/err3" & job=$!
wait_records 2 && kill -TERM "$(cat "$out/coordinator.pid")"
wait "$job"; rc=$?
[ $rc = 75 ] && ok "SIGTERM to the coordinator: exit 75" || bad "SIGTERM gave exit $rc"
[ ! -e "$out/results.json" ] && ok "no results.json from the stopped run" || bad "results.json after a checkpoint"
resume_and_compare "SIGTERM checkpoint"

# 4. SIGUSR1 to mpirun (what SLURM's --signal sends): forwarded, exit 75
rm -rf "$out"
"$MPIEXEC" -n 3 "$PATHENS" "${args[@]}" 2>"$T/err4" & job=$!
wait_records 2 && kill -USR1 "$job"
wait "$job"; rc=$?
[ $rc = 75 ] && ok "SIGUSR1 to mpirun: exit 75" || bad "SIGUSR1 gave exit $rc"
resume_and_compare "SIGUSR1 checkpoint"

# 5. serial (no mpirun) SIGTERM
rm -rf "$out"
"$PATHENS" "${args[@]}" & job=$!
wait_records 2 && kill -TERM "$job"
wait "$job"; rc=$?
[ $rc = 75 ] && ok "serial SIGTERM: exit 75" || bad "serial SIGTERM gave exit $rc"
resume_and_compare "serial checkpoint, resumed by 2 ranks"

# 6. a corrupted journal: a flipped byte in a record, then a truncated tail
cp "$out/journal.msgpack" "$T/journal.good"
size=$(stat -c %s "$T/journal.good")
/usr/bin/python3 - "$out/journal.msgpack" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read())
i = len(b) // 2; b[i] ^= 0xFF            # flip one byte in the middle of some record's payload
open(p, 'wb').write(bytes(b))
PY
"$MPIEXEC" -n 3 "$PATHENS" "${loud[@]}" 2>"$T/err6"; rc=$?
grep -q "damaged records dropped" "$T/err6" && ok "flipped byte detected: $(grep -o '[0-9]* damaged records dropped' "$T/err6")" \
    || bad "flipped byte not reported: $(tail -3 "$T/err6")"
[ $rc = 0 ] && cmp -s "$T/ref.json" "$out/results.json" && ok "flipped byte: damaged records redone, identical results" \
    || bad "flipped byte: exit $rc or different results"
head -c $((size - 7)) "$T/journal.good" >"$out/journal.msgpack"
"$PATHENS" "${loud[@]}" 2>"$T/err7"; rc=$?
grep -q "1 damaged records dropped" "$T/err7" && ok "torn tail detected and dropped" || bad "torn tail: $(tail -3 "$T/err7")"
[ $rc = 0 ] && cmp -s "$T/ref.json" "$out/results.json" && ok "torn tail: redone, identical results" || bad "torn tail: exit $rc"

# 7. a different config is refused, and nothing is overwritten
cp "$out/results.json" "$T/before.json"
"$PATHENS" "${args[@]}" --set pathways.members=5 2>"$T/err8"; rc=$?
[ $rc = 2 ] && grep -q "different config" "$T/err8" && ok "journal of another config refused (exit 2)" \
    || bad "foreign journal: exit $rc: $(cat "$T/err8")"
cmp -s "$T/before.json" "$out/results.json" && ok "results.json untouched by the refused run" || bad "results changed"

echo "$fails failure(s)"
[ "$fails" = 0 ]
