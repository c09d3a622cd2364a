#!/usr/bin/env bash
# cli_sweep_scale.sh: big sweeps without SLURM (issue 13, item 6; the real SLURM run is
# slurm_sweep_scale.sh). A random tiny GPT (pathens_mkmodel), one 32-byte window per point.
#   - a list may go on over indented lines (it used to become a second list, multiplying the grid);
#     a line longer than the INI reader takes is refused (it used to be cut silently);
#   - --index A-B runs a range (past the end: up to the last point); bad ranges are usage errors;
#   - --status of a 20,000-point grid lists every index (the lists were cut at 64 KB);
#   - a signal between points of a range stops the sweep with exit 75 before the next point (it used
#     to go on), and a rerun finishes the range;
#   - jobs/submit-sweep.sh --dry-run: the arrays for MaxArraySize 1001 (task ids below it, offsets,
#     afterany chain, --points-per-task units, only the units still to do); jobs/sweep-array.sbatch
#     run as SLURM would run array tasks (SLURM_ARRAY_TASK_ID + the exported offset and K) does
#     exactly the points of its unit.
set -u
: "${PATHENS:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}" "${PATHENS_TEST_WRITER:?}"
source "$PATHENS_SRC/tests/lib.sh"
T="$PATHENS_TEST_TMP/cli_sweep_scale"; rm -rf "$T"; mkdir -p "$T"
T=$(cd "$T" && pwd)
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
"$PATHENS_TEST_WRITER" gpt "$T/model" >/dev/null || { echo "FAIL: pathens_mkmodel"; exit 1; }
printf 'the cat sat on the mat and the dog ran far away from the cat\n' >"$T/text.txt"
head_ini() { # head_ini OUT: the common part of the sweep files
    printf '[model]\npath = %s/model/model.safetensors\ntokenizer = bytes\n[data]\npath = %s/text.txt\n' "$T" "$T"
    printf 'mode = windows\ncontext = 32\nlimit = 1\n[run]\nout = %s/%s\n[importance]\nstatistics = 0\n[pathways]\nmembers = 1\n' "$T" "$1"
}
status_list() { awk -v k="$2" '$1 == k { for (i = 3; i <= NF; i++) printf "%s%s", (i > 3 ? " " : ""), $i; print "" }' "$1"; }

# ---- list syntax -------------------------------------------------------------------------------
{ head_ini cont; printf 'ratio = 1, 2, 3,\n    4\nseed = 1, 2, 3\n'; } >"$T/cont.ini"
n=$("$PATHENS" sweep "$T/cont.ini" --count 2>&1)
[ "$n" = 12 ] && ok "a list continued on an indented line: 4 x 3 = 12 points" || bad "continued list: $n points, wanted 12 (9: read as two lists)"
{ head_ini long; echo "seed = $(seq -s ', ' 1 60)"; } >"$T/long.ini"
"$PATHENS" sweep "$T/long.ini" --count >"$T/out.txt" 2>&1; rc=$?
[ $rc = 2 ] && grep -q "long.ini: line 15 is longer than 199 characters.*indented" "$T/out.txt" &&
    ok "a 230-character line is refused (exit 2): $(cut -c1-120 "$T/out.txt")" || bad "long line: exit $rc: $(cat "$T/out.txt")"
{ head_ini long2; echo "seed = $(seq -s ', ' 1 30),"; echo "   $(seq -s ', ' 31 60)"; } >"$T/long2.ini"
[ "$("$PATHENS" sweep "$T/long2.ini" --count 2>&1)" = 60 ] && ok "the same 60 values over two lines: 60 points" || bad "60 values over two lines"

# ---- --index ranges ----------------------------------------------------------------------------
{ head_ini rng; echo "seed = $(seq -s ', ' 1 12)"; } >"$T/rng.ini"
"$PATHENS" sweep "$T/rng.ini" --index 3-5 --quiet && "$PATHENS" sweep "$T/rng.ini" --index 10-99 --quiet ||
    bad "--index ranges failed"
"$PATHENS" sweep "$T/rng.ini" --status >"$T/st.txt"
[ "$(status_list "$T/st.txt" done)" = "3 4 5 10 11" ] && ok "--index 3-5 and 10-99 (cut at the last point, 11) ran points 3 4 5 10 11" ||
    bad "--index ranges: $(cat "$T/st.txt")"
# every point of a range past the end is checked before any runs (a bad point 1 of 0-99 used to run unchecked)
{ head_ini bad; echo "ratio = 2, 0.5"; } >"$T/badpt.ini"
"$PATHENS" sweep "$T/badpt.ini" --index 0-99 --quiet >"$T/out.txt" 2>&1; rc=$?
[ $rc = 2 ] && grep -q "sweep point 1: .*pathways.ratio = 0.5 is out of range" "$T/out.txt" &&
    [ -z "$(ls "$T/bad" 2>/dev/null)" ] && ok "--index 0-99 with a bad point 1: exit 2 naming it, nothing run" ||
    bad "--index 0-99 with a bad point 1: exit $rc: $(cat "$T/out.txt"); run folder: $(ls "$T/bad" 2>/dev/null)"
for a in 5-3 3- -3 3-x; do
    "$PATHENS" sweep "$T/rng.ini" --index "$a" >"$T/out.txt" 2>&1; rc=$?
    [ $rc = 1 ] && grep -q -- "--index needs a point number" "$T/out.txt" || bad "--index $a: exit $rc: $(cat "$T/out.txt")"
done
"$PATHENS" sweep "$T/rng.ini" --index 12-13 >"$T/out.txt" 2>&1; rc=$?
[ $rc = 1 ] && grep -q -- "--index 12 but the sweep has 12 points" "$T/out.txt" && ok "bad ranges are usage errors (exit 1)" ||
    bad "--index 12-13: exit $rc"

# ---- --status lists every index of a 20,000-point grid ------------------------------------------
{ head_ini big; echo "seed = $(seq -s ', ' 1 50)"; echo "ratio = $(seq -s ', ' 1 50)"; echo "sigma = $(seq -s ', ' 1 8)"; } >"$T/big.ini"
"$PATHENS" sweep "$T/big.ini" --status >"$T/big.txt"; rc=$?
m=$(status_list "$T/big.txt" missing | wc -w)
[ $rc = 1 ] && [ "$m" = 20000 ] && [ "$(status_list "$T/big.txt" missing | awk '{ print $NF }')" = 19999 ] &&
    ok "--status of 20,000 points: all 20,000 missing indices listed (exit 1)" || bad "--status big: exit $rc, $m indices"

# ---- a signal between points stops the range ----------------------------------------------------
{ head_ini sig; echo "seed = $(seq -s ', ' 1 40)"; } >"$T/sig.ini"
"$PATHENS" sweep "$T/sig.ini" --index 0-39 --quiet 2>"$T/sig.err" &
pid=$!
for _ in $(seq 1 400); do
    [ "$(find "$T/sig" -name DONE 2>/dev/null | wc -l)" -ge 2 ] && break
    sleep 0.05
done
kill -USR1 "$pid"; wait "$pid"; rc=$?
"$PATHENS" sweep "$T/sig.ini" --status >"$T/st.txt"
d=$(awk '$1 == "done" { print $2 }' "$T/st.txt")
[ $rc = 75 ] && [ "$d" -lt 40 ] && grep -qE "stopped|SIGUSR1" "$T/sig.err" &&
    ok "USR1 during a 40-point range: exit 75 with $d points done ($(tail -1 "$T/sig.err" | cut -c1-90))" ||
    bad "USR1 during a range: exit $rc, $d done: $(cat "$T/sig.err")"
"$PATHENS" sweep "$T/sig.ini" --index 0-39 --quiet 2>/dev/null && "$PATHENS" sweep "$T/sig.ini" --status >/dev/null &&
    ok "the rerun finishes the range" || bad "rerun after the signal"

# ---- submit-sweep.sh --dry-run: arrays within MaxArraySize --------------------------------------
{ head_ini sub; echo "seed = $(seq -s ', ' 1 50)"; echo "ratio = $(seq -s ', ' 1 50)"; } >"$T/sub.ini"
sub() { MAX_ARRAY_SIZE=1001 PATHENS_LOGS="$T/logs" "$PATHENS_SRC/jobs/submit-sweep.sh" --dry-run "$@" >"$T/sub.txt" 2>&1; }
arrays() { grep '^sbatch ' "$T/sub.txt" | grep -o -- '--array=[^ ]*' | cut -d= -f2 | paste -sd' ' -; }
offsets() { grep '^sbatch ' "$T/sub.txt" | grep -o 'PATHENS_SWEEP_OFFSET=[0-9]*' | cut -d= -f2 | paste -sd' ' -; }
sub --max-running 6 "$T/sub.ini" || bad "submit-sweep --dry-run: $(cat "$T/sub.txt")"
[ "$(arrays)" = "0-1000%6 0-1000%6 0-497%6" ] && [ "$(offsets)" = "0 1001 2002" ] &&
    [ "$(grep -c -- '--dependency=afterany:DRY' "$T/sub.txt")" = 2 ] && grep -q "MaxArraySize 1001" "$T/sub.txt" &&
    ok "2,500 points, 1 per task: arrays $(arrays), offsets $(offsets), chained afterany" || bad "dry run: $(cat "$T/sub.txt")"
sub --points-per-task 3 "$T/sub.ini"
[ "$(arrays)" = "0-833%4" ] && grep -q "PATHENS_POINTS_PER_TASK=3" "$T/sub.txt" && ok "--points-per-task 3: one array of 834 tasks (%4 by default)" ||
    bad "K=3: $(cat "$T/sub.txt")"
sub --points-per-task 0 "$T/sub.ini"; rc=$?
[ $rc = 1 ] && grep -q "points-per-task needs an integer" "$T/sub.txt" && ok "--points-per-task 0: usage error" || bad "K=0: exit $rc"
# run points 0-9, 1500-1509 and 2495-2499 (--index ranges), then only the rest is submitted
for r in 0-9 1500-1509 2495-2499; do "$PATHENS" sweep "$T/sub.ini" --index $r --quiet || bad "--index $r"; done
sub "$T/sub.ini"
[ "$(arrays)" = "10-1000%4 0-498,509-1000%4 0-492%4" ] && ok "after points 0-9, 1500-1509, 2495-2499: $(arrays)" ||
    bad "sparse resubmission: $(arrays)"
sub --points-per-task 10 "$T/sub.ini"
[ "$(arrays)" = "1-149,151-249%4" ] && ok "the same, 10 per task: whole units done are left out: $(arrays)" || bad "sparse K=10: $(arrays)"

# ---- sweep-array.sbatch as SLURM runs an array task: offset + task id, K points ------------------
PATHENS="$PATHENS" SLURM_ARRAY_JOB_ID=7 SLURM_JOB_ID=8 SLURM_ARRAY_TASK_ID=2 PATHENS_SWEEP_OFFSET=1001 PATHENS_POINTS_PER_TASK=1 \
    bash "$PATHENS_SRC/jobs/sweep-array.sbatch" "$T/sub.ini" --quiet >"$T/task.txt" 2>&1 || bad "sweep-array.sbatch: $(cat "$T/task.txt")"
PATHENS="$PATHENS" SLURM_ARRAY_JOB_ID=7 SLURM_JOB_ID=9 SLURM_ARRAY_TASK_ID=248 PATHENS_SWEEP_OFFSET=1 PATHENS_POINTS_PER_TASK=10 \
    bash "$PATHENS_SRC/jobs/sweep-array.sbatch" "$T/sub.ini" --quiet >>"$T/task.txt" 2>&1 || bad "sweep-array.sbatch K=10: $(cat "$T/task.txt")"
"$PATHENS" sweep "$T/sub.ini" --status >"$T/st.txt"
[ "$(status_list "$T/st.txt" done | tr ' ' '\n' | awk '$1 >= 10 && $1 < 1500 || $1 >= 1510 && $1 < 2495' | paste -sd' ' -)" = \
  "1003 $(seq -s ' ' 2490 2494)" ] && grep -q "point 2490-2499 of" "$T/task.txt" &&
    ok "array task 2 at offset 1001 ran point 1003; task 248 at offset 1, 10 per task, ran points 2490-2499" ||
    bad "sweep-array.sbatch points: $(status_list "$T/st.txt" done | cut -c1-200); $(grep point "$T/task.txt")"

finish "$fails"
