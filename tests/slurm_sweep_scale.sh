#!/usr/bin/env bash
# slurm_sweep_scale.sh: a 2,500-point sweep through jobs/submit-sweep.sh on a real SLURM
# (slurmctld + slurmd on localhost, tools/slurm_up.sh with MaxArraySize=1001), issue 13 item 6.
#   (a) the reference: the same 2,500 points computed locally without SLURM (4 processes over
#       `pathens sweep --index A-B` ranges, into another run.out), then --aggregate;
#   (b) submit-sweep.sh --points-per-task 20 --max-running 8: one array of 125 tasks, at most 8
#       running (checked while it runs). Tasks are preempted mid-range, once pathens has started
#       their points and before the 9th of 20: one by USR1 to its batch script (the template
#       checkpoints and requeues it), one by `scontrol requeue` (both must finish by themselves), and
#       three by `scancel` (SIGTERM: CANCELLED, the rest of their points left missing), one in each
#       range of 1,001 points (points < 1001, 1001-2001, >= 2002);
#   (c) submit-sweep.sh --points-per-task 1 again: only the missing points are submitted, one per
#       task, as several arrays because their task ids must stay below MaxArraySize (points >= 1001
#       go to arrays with an offset), chained with afterany; all COMPLETED;
#   (d) --status: 2,500 done; --aggregate: sweep.json and sweep.csv byte-identical to (a).
# Tiny evaluations: a random GPT of pathens_mkmodel, one 32-byte window, 2 members. About 3 minutes.
# FAILS (never skips) without the SLURM packages.
set -u
: "${PATHENS:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}"
source "$PATHENS_SRC/tests/lib.sh"
for b in slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
    command -v "$b" >/dev/null || {
        echo "FAIL: $b not found: install the SLURM packages (slurmctld slurmd slurm-client, tools/deps.sh)"; exit 1; }
done
MK=${PATHENS_TEST_WRITER:-$(dirname "$PATHENS")/tests/pathens_mkmodel}
T="$PATHENS_TEST_TMP/slurm_sweep_scale"
"$PATHENS_SRC/tools/slurm_down.sh" "$T/slurm" >/dev/null 2>&1   # leftovers of an interrupted earlier run
rm -rf "$T"; mkdir -p "$T/logs"
T=$(cd "$T" && pwd)
S="$T/slurm"
JOBS="$PATHENS_SRC/jobs"
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
export OPENBLAS_NUM_THREADS=1 SLURM_CONF="$S/slurm.conf" SLURM_UP_PORT=${SLURM_UP_PORT:-26837}
export PATHENS
t_start=$(date +%s)
cleanup() {
    if [ "$fails" != 0 ]; then
        for f in "$S"/log/slurmctld.log "$S"/log/slurmd.log; do [ -e "$f" ] && { echo "--- tail $f"; tail -15 "$f"; }; done
    fi
    "$PATHENS_SRC/tools/slurm_down.sh" "$S" >/dev/null 2>&1
}
trap cleanup EXIT
job_state() { squeue -h -r -t all -j "$1" -o '%T' 2>/dev/null | head -1; }
# wait_job IDS TIMEOUT: wait until every task of the jobs (arrays) IDS (comma-separated) has ended;
# requeued tasks held for SLURM's requeue delay (Reason=BeginTime) are released at once
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
        sleep 0.5
    done
    echo "timeout: $line"; return 1
}

# ---- the sweep: 50 ratios x 50 seeds = 2,500 tiny points ---------------------------------------
"$MK" gpt "$T/model" >/dev/null || { echo "FAIL: pathens_mkmodel ($MK)"; exit 1; }
/usr/bin/python3 -c "
import random; random.seed(1); w = 'the a cat dog sat on mat and ran far'.split()
open('$T/text.txt', 'w').write(' '.join(random.choice(w) for _ in range(200)) + '\n')"
ini="$T/sweep.ini"
cat >"$ini" <<EOF
; slurm_sweep_scale.sh: 2,500 points (ratio x seed), one 32-byte window each; the lists go on over
; indented lines
[model]
path = $T/model/model.safetensors
tokenizer = bytes
[data]
path = $T/text.txt
mode = windows
context = 32
limit = 1
[run]
out = $T/sweep
[importance]
statistics = 0
[pathways]
members = 2
ratio = $(seq -s ', ' 1 25),
    $(seq -s ', ' 26 50)
seed = $(seq -s ', ' 1 50)
EOF
N=$("$PATHENS" sweep "$ini" --count)
[ "$N" = 2500 ] && ok "sweep of $N points (continued list lines read as one list)" || bad "point count $N, wanted 2500"

# ---- (a) the reference, locally, in the background while SLURM starts and runs (b) -------------
t0=$(date +%s)
for r in 0-624 625-1249 1250-1874 1875-2499; do
    "$PATHENS" sweep "$ini" --set run.out="$T/ref" --index "$r" --quiet >"$T/ref-$r.log" 2>&1 &
done

# ---- SLURM up: MaxArraySize 1001, 8 CPUs (the tasks mostly wait on I/O) -------------------------
if SLURM_UP_CPUS=8 SLURM_UP_EXTRA=$'MaxArraySize=1001\nSlurmdParameters=config_overrides' \
    "$PATHENS_SRC/tools/slurm_up.sh" "$S" >"$T/slurm_up.log" 2>&1; then ok "slurm up: $(tail -1 "$T/slurm_up.log")"
else bad "slurm_up.sh failed: $(tail -5 "$T/slurm_up.log")"; exit 1; fi
[ "$(scontrol show config | awk '$1 == "MaxArraySize" { print $3 }')" = 1001 ] && ok "scontrol show config: MaxArraySize = 1001" ||
    bad "MaxArraySize: $(scontrol show config | grep MaxArraySize)"

# ---- (b) one array of 125 tasks x 20 points, throttled to 8, tasks preempted and cancelled -------
cd "$T"
PATHENS_LOGS="$T/logs" "$JOBS/submit-sweep.sh" --points-per-task 20 --max-running 8 "$ini" >"$T/submit1.out" 2>&1 ||
    bad "(b) submit-sweep.sh: $(cat "$T/submit1.out")"
J=$(grep -o 'submitted job array [0-9]*' "$T/submit1.out" | grep -o '[0-9]*$')
[ -n "$J" ] && [ "$(grep -c 'submitted job array' "$T/submit1.out")" = 1 ] && grep -q "task ids 0-124 (offset 0), points 0-2499 of 2500, 20 per task, at most 8" "$T/submit1.out" &&
    ok "(b) $(grep 'submitted job array' "$T/submit1.out")" || { bad "(b) submit: $(cat "$T/submit1.out")"; exit 1; }
usr1=""; rq=""; cancelled=(); maxrun=0
declare -A seen=()
# region of unit u (points 20u .. 20u+19): the array of a later one-point-per-task submission that
# would hold them (point / 1001), -1 when they straddle two
region() { local a=$(( $1 * 20 / 1001 )) b=$(( ($1 * 20 + 19) / 1001 )); [ "$a" = "$b" ] && echo "$a" || echo -1; }
for _ in $(seq 1 3000); do
    squeue -h -r -t pending -j "$J" -o '%i %r' 2>/dev/null | while read -r tid reason; do
        [ "$reason" = BeginTime ] && scontrol update JobId="$tid" StartTime=now 2>/dev/null
    done
    running=$(squeue -h -r -t running -j "$J" -o '%i' 2>/dev/null)
    nrun=$(grep -c . <<<"$running")
    [ "$nrun" -gt "$maxrun" ] && maxrun=$nrun
    [ -n "$usr1" ] && [ -n "$rq" ] && [ "${#cancelled[@]}" = 3 ] && [ "$(date +%s)" -gt $((t0 + 5)) ] && break
    if [ -z "$running" ]; then
        [ "$(squeue -h -r -t pending,running,completing -j "$J" 2>/dev/null | grep -c .)" = 0 ] && break
        sleep 0.2; continue
    fi
    for tid in $running; do
        u=${tid#*_}; [ -n "${seen[$u]:-}" ] && continue
        # mid-range: pathens has started the unit's points (so the template's traps are set) and is
        # at most at its 8th of 20 (each takes tens of ms; the signal lands before the last)
        d=$(grep -c '^sweep point ' "$T/logs/sweep-${J}_$u.out" 2>/dev/null)
        [ "${d:-0}" -ge 1 ] && [ "$d" -le 8 ] || continue
        r=$(region "$u")
        if [ -z "$usr1" ] && [ "$r" = 0 ]; then
            usr1=$u; seen[$u]=1; timeout 3 scancel --batch --signal=USR1 "$tid" >>"$T/scancel.log" 2>&1 &
        elif [ -z "$rq" ] && [ "$r" = 0 ]; then
            rq=$u; seen[$u]=1; scontrol requeue "$tid" || bad "(b) scontrol requeue $tid"
        elif [ "$r" -ge 0 ] && [ -z "${cancelled[$r]:-}" ] && [ -n "$rq" ]; then
            cancelled[$r]=$u; seen[$u]=1; scancel "$tid" || bad "(b) scancel $tid"
        fi
    done
    sleep 0.1
done
states=$(wait_job "$J" 300) && ok "(b) array $J ended: $states" || bad "(b) array $J: $states"
[ "$maxrun" -ge 2 ] && [ "$maxrun" -le 8 ] && ok "(b) at most $maxrun tasks running at once (throttle %8)" || bad "(b) $maxrun tasks ran at once"
for what in usr1 rq; do
    u=${!what}
    if [ -z "$u" ]; then bad "(b) no task caught mid-range for $what"; continue; fi
    l="$T/logs/sweep-${J}_$u.out"
    if [ "$what" = usr1 ] && ! { grep -q "USR1 (preemption warning)" "$l" && grep -q "requeueing ${J}_$u" "$l"; }; then
        bad "(b) task $u: no USR1 requeue in its log"
    fi
    [ "$(job_state "${J}_$u")" = COMPLETED ] && [ "$(grep -c 'restart 1,' "$l")" -ge 1 ] &&
        ok "(b) task $u ($what mid-range) requeued, restarted and COMPLETED" ||
        bad "(b) task $u ($what): $(job_state "${J}_$u"), log: $(tail -3 "$l")"
done
[ "${#cancelled[@]}" = 3 ] && ok "(b) cancelled mid-range, one in each third of the sweep (points < 1001, 1001-2001, >= 2002): tasks ${cancelled[*]}" ||
    bad "(b) cancelled ${#cancelled[@]} tasks (${cancelled[*]:-none}), wanted 3"
"$PATHENS" sweep "$ini" --status >"$T/status1.out" 2>&1
for u in "${cancelled[@]}"; do
    left=$(awk -v a=$(( u * 20 )) -v b=$(( u * 20 + 19 )) '$1 == "missing" || $1 == "failed" {
        for (i = 3; i <= NF; i++) { p = $i; sub(/\(partial\)/, "", p); if (p + 0 >= a && p + 0 <= b) n++ } } END { print n + 0 }' "$T/status1.out")
    [ "$(job_state "${J}_$u")" = CANCELLED ] && [ "$left" -ge 1 ] && ok "(b) cancelled task $u: CANCELLED, $left of its 20 points left" ||
        bad "(b) cancelled task $u: $(job_state "${J}_$u"), $left points left: $(tail -2 "$T/logs/sweep-${J}_$u.out")"
done
miss=$(awk '$1 == "missing" { print $2 }' "$T/status1.out")
[ "$(awk '$1 == "failed" { print $2 }' "$T/status1.out")" = 0 ] && [ "${miss:-0}" -ge 3 ] && [ "$miss" -le 57 ] &&
    ok "(b) $miss points missing after the first submission, none failed" || bad "(b) after the first submission: $(cut -c1-100 "$T/status1.out")"
echo "     (b) took $(( $(date +%s) - t0 )) s"

# ---- (c) resubmission, one point per task: several arrays within MaxArraySize --------------------
t1=$(date +%s)
PATHENS_LOGS="$T/logs" "$JOBS/submit-sweep.sh" --points-per-task 1 --max-running 8 "$ini" >"$T/submit2.out" 2>&1 ||
    bad "(c) resubmit: $(cat "$T/submit2.out")"
ids=$(grep -o 'submitted job array [0-9]*' "$T/submit2.out" | grep -o '[0-9]*$' | paste -sd, -)
narr=$(grep -c 'submitted job array' "$T/submit2.out")
offs=$(grep -o '(offset [0-9]*)' "$T/submit2.out" | grep -o '[0-9]*' | paste -sd' ' -)
[ "$narr" = 3 ] && [ "$offs" = "0 1001 2002" ] && [ "$(grep -c ', after ' "$T/submit2.out")" = 2 ] &&
    ok "(c) $narr arrays, offsets $offs, each after the one before: $(grep -o 'task ids [^ ]*' "$T/submit2.out" | paste -sd';' -)" ||
    bad "(c) arrays: $(cat "$T/submit2.out")"
maxid=$(grep -o 'task ids [0-9,-]*' "$T/submit2.out" | grep -o '[0-9]*' | sort -n | tail -1)
[ "${maxid:-9999}" -le 1000 ] && ok "(c) every task id <= 1000 (MaxArraySize 1001)" || bad "(c) task id $maxid"
states=$(wait_job "$ids" 240) && ok "(c) arrays $ids ended: $states" || bad "(c) arrays $ids: $states"
[ -z "$(squeue -h -r -t all -j "$ids" -o '%T' | grep -v '^COMPLETED$')" ] && ok "(c) every resubmitted task COMPLETED" ||
    bad "(c) states: $(squeue -h -r -t all -j "$ids" -o '%i=%T' | grep -v COMPLETED | head -5 | tr '\n' ' ')"
n2=$(squeue -h -r -t all -j "$ids" -o '%i' | grep -c .)
[ "$n2" = "$miss" ] && ok "(c) $n2 tasks: exactly the $miss missing points" || bad "(c) $n2 tasks for $miss missing points"
echo "     (c) took $(( $(date +%s) - t1 )) s"

# ---- (d) the reference is done; --status, --aggregate byte-identical -----------------------------
wait
"$PATHENS" sweep "$ini" --set run.out="$T/ref" --status >/dev/null && "$PATHENS" sweep "$ini" --set run.out="$T/ref" --aggregate 2>/dev/null &&
    ok "(a) local reference: 2,500 points done and aggregated" || bad "(a) reference: $(tail -3 "$T"/ref-*.log)"
"$PATHENS" sweep "$ini" --status >"$T/status2.out" 2>&1 && grep -qE '^done +2500 ' "$T/status2.out" &&
    ok "(d) --status: 2500 done (exit 0)" || bad "(d) --status: $(cut -c1-100 "$T/status2.out")"
"$PATHENS" sweep "$ini" --aggregate 2>"$T/agg.err" || bad "(d) aggregate: $(cat "$T/agg.err")"
cmp -s "$T/ref/sweep.json" "$T/sweep/sweep.json" && cmp -s "$T/ref/sweep.csv" "$T/sweep/sweep.csv" &&
    [ "$(($(wc -l <"$T/sweep/sweep.csv") - 1))" = 2500 ] &&
    ok "(d) sweep.json and sweep.csv (2,500 rows) byte-identical to the local run" ||
    bad "(d) sweep differs: $(diff "$T/ref/sweep.csv" "$T/sweep/sweep.csv" | head -4)"

pids=$(cat "$S/slurmctld.pid" "$S/slurmd.pid" 2>/dev/null)
"$PATHENS_SRC/tools/slurm_down.sh" "$S" >"$T/slurm_down.log" 2>&1 && [ -n "$pids" ] && ! kill -0 $pids 2>/dev/null &&
    ok "slurm down" || bad "slurm_down.sh: $(cat "$T/slurm_down.log")"
echo "total $(( $(date +%s) - t_start )) s; $fails failure(s)"
[ "$fails" = 0 ]
