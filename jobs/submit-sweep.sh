#!/usr/bin/env bash
# submit-sweep.sh [--points-per-task K] [--max-running N] [--dry-run] SWEEP.ini [extra sbatch options ...]
# Submit a `pathens sweep` as SLURM job arrays (jobs/sweep-array.sbatch): array task t of an array
# with offset O runs the points of unit u = O + t, i.e. points u*K .. u*K+K-1 (`pathens sweep
# SWEEP.ini --index A-B`; K = 1: point u alone). A sweep of more units than SLURM's MaxArraySize
# (read from `scontrol show config`; 1001 by default) is split into several arrays, each with task
# ids below MaxArraySize; each array after the first depends on the one before (afterany), so at
# most N tasks of the submission run at once (--array=...%N).
#
# Options (before SWEEP.ini):
#   --points-per-task K  points run one after the other by each array task (default 1); use K > 1
#                        when a point takes seconds: a job's start-up costs about a second
#   --max-running N      array tasks running at once (default: $MAXPAR, else 4)
#   --dry-run            print the sbatch commands instead of running them (no SLURM needed)
# Environment:
#   PATHENS        the pathens binary (default: `pathens` on PATH, else build/pathens of the checkout)
#   MAXPAR         default of --max-running
#   MAX_ARRAY_SIZE SLURM's MaxArraySize (default: from `scontrol show config`, else 1001)
#   PATHENS_LOGS   folder for the tasks' output files (default slurm-logs; made if missing)
#   SBATCH_SCRIPT  the batch script (default jobs/sweep-array.sbatch beside this file; point it at
#                  your edited copy)
# Run it, and later --status / --aggregate, from the same folder with SWEEP.ini spelled the same
# way (the tasks run there too, --chdir): relative paths in SWEEP.ini are joined to the INI path
# as given, and the point folders' hashes include them.
# Extra arguments go to sbatch before the script, so they override its #SBATCH lines:
#   jobs/submit-sweep.sh --points-per-task 10 sweeps/ratio.ini --partition=short --time=00:30:00
#
# Only what is left is submitted: the units holding a failed or missing point (its DONE marker
# absent); units holding a running point are left out (resubmit once they end). Resubmitting the
# same sweep after failures, preemption or a cancelled array redoes just what is missing,
# resuming interrupted points from their journals. Prints the array job ids and how to follow them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() { echo "usage: $0 [--points-per-task K] [--max-running N] [--dry-run] SWEEP.ini [extra sbatch options ...]" >&2; exit 1; }
ppt=1
maxpar=${MAXPAR:-4}
dry=0
while [ $# -gt 0 ]; do
    case $1 in
        --points-per-task) [ $# -ge 2 ] || usage; ppt=$2; shift 2 ;;
        --points-per-task=*) ppt=${1#*=}; shift ;;
        --max-running) [ $# -ge 2 ] || usage; maxpar=$2; shift 2 ;;
        --max-running=*) maxpar=${1#*=}; shift ;;
        --dry-run) dry=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "submit-sweep: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || usage
[[ $ppt =~ ^[1-9][0-9]*$ ]] || { echo "submit-sweep: --points-per-task needs an integer >= 1, not '$ppt'" >&2; exit 1; }
[[ $maxpar =~ ^[1-9][0-9]*$ ]] || { echo "submit-sweep: --max-running (MAXPAR) needs an integer >= 1, not '$maxpar'" >&2; exit 1; }
[ -r "$1" ] || { echo "submit-sweep: cannot read $1" >&2; exit 2; }
# keep SWEEP.ini as given and run the tasks in this folder: the point folders' hashes include the
# resolved file paths, which pathens joins to the INI path as spelled (configs/../data/x.bin), so
# --status and --aggregate find the points only with the same spelling from the same folder
sweep=$1
shift
if [ -z "${PATHENS:-}" ]; then
    PATHENS=$(command -v pathens || true)
    [ -n "$PATHENS" ] || PATHENS="$here/../build/pathens"
fi
[ -x "$PATHENS" ] || PATHENS=$(command -v "$PATHENS" || true)
[ -n "$PATHENS" ] && [ -x "$PATHENS" ] || { echo "submit-sweep: no pathens binary; set PATHENS=/path/to/pathens" >&2; exit 2; }
PATHENS=$(realpath "$PATHENS")
export PATHENS                                    # the array tasks use the same binary
script=${SBATCH_SCRIPT:-$here/sweep-array.sbatch}
logs=${PATHENS_LOGS:-slurm-logs}
[ "$dry" = 1 ] || command -v sbatch >/dev/null || { echo "submit-sweep: sbatch not found (SLURM client tools)" >&2; exit 2; }
if [ -z "${MAX_ARRAY_SIZE:-}" ]; then
    MAX_ARRAY_SIZE=$(scontrol show config 2>/dev/null | awk '$1 == "MaxArraySize" { print $3 }' || true)
    [ -n "$MAX_ARRAY_SIZE" ] || MAX_ARRAY_SIZE=1001   # SLURM's default
fi
[[ $MAX_ARRAY_SIZE =~ ^[1-9][0-9]*$ ]] || { echo "submit-sweep: MaxArraySize '$MAX_ARRAY_SIZE' is not a positive integer" >&2; exit 2; }

# the number of points (this also validates every point's config: a typo fails here, not in a job)
n=$("$PATHENS" sweep "$sweep" --count) || exit $?
[ "$n" -gt 0 ] 2>/dev/null || { echo "submit-sweep: $sweep has no points" >&2; exit 2; }

# the arrays: lines "OFFSET RANGES" (ranges of task ids, each < MaxArraySize) of the units that hold
# a failed or missing point and no running one
st=$("$PATHENS" sweep "$sweep" --status || true)
ndone=$(awk '$1 == "done" { print $2 }' <<<"$st")
nrun=$(awk '$1 == "running" { print $2 }' <<<"$st")
plan=$(awk -v K="$ppt" -v M="$MAX_ARRAY_SIZE" '
    $1 == "running" { for (i = 3; i <= NF; i++) busy[int($i / K)] = 1 }
    $1 == "failed" || $1 == "missing" {
        for (i = 3; i <= NF; i++) { p = $i; sub(/\(partial\)/, "", p); u = int(p / K); todo[u] = 1; if (u > top) top = u }
    }
    END {
        n = 0; left = 0
        for (u = 0; u <= top; u++) if (u in todo) { if (u in busy) left++; else units[n++] = u }   # in order
        if (left) printf "left %d\n", left
        i = 0
        while (i < n) {
            off = int(units[i] / M) * M; s = ""
            while (i < n && units[i] < off + M) {
                a = units[i]; b = a
                while (i + 1 < n && units[i + 1] == b + 1 && units[i + 1] < off + M) { i++; b = units[i] }
                s = s (s == "" ? "" : ",") (a == b ? a - off : (a - off) "-" (b - off)); i++
            }
            printf "array %d %s\n", off, s
        }
    }' <<<"$st")
left=$(awk '$1 == "left" { print $2 }' <<<"$plan")
[ -n "$left" ] && echo "submit-sweep: $left task(s) left out: they hold a running point; resubmit once it ends"
if ! grep -q '^array ' <<<"$plan"; then
    echo "submit-sweep: nothing to submit: ${ndone:-0} of $n points done, ${nrun:-0} running"
    echo "  $PATHENS sweep $sweep --status"
    echo "  $PATHENS sweep $sweep --aggregate"
    exit 0
fi

if [ "$dry" = 0 ]; then mkdir -p "$logs"; logs=$(realpath "$logs"); fi
ids=()
prev=""
while read -r _ off ranges; do
    dep=()
    [ -n "$prev" ] && dep=(--dependency="afterany:$prev")
    cmd=(sbatch --parsable --array="$ranges%$maxpar" "${dep[@]}" --chdir="$PWD" --output="$logs/sweep-%A_%a.out"
         --export="ALL,PATHENS_SWEEP_OFFSET=$off,PATHENS_POINTS_PER_TASK=$ppt" "$@" "$script" "$sweep")
    first=$((off * ppt)); last=$(( (off + MAX_ARRAY_SIZE) * ppt - 1 )); [ "$last" -lt "$n" ] || last=$((n - 1))
    if [ "$dry" = 1 ]; then
        echo "${cmd[*]}"
        jid="DRY$off"
    else
        out=$("${cmd[@]}")
        jid=${out%%;*}
        [ -n "$jid" ] || { echo "submit-sweep: sbatch gave no job id" >&2; exit 3; }
    fi
    echo "submitted job array $jid: $sweep (from $PWD), task ids $ranges (offset $off), points $first-$last of $n," \
         "$ppt per task, at most $maxpar at a time${prev:+, after $prev}"
    ids+=("$jid")
    prev=$jid
done < <(grep '^array ' <<<"$plan")
all=$(IFS=,; echo "${ids[*]}")
echo "arrays:  ${#ids[@]} (MaxArraySize $MAX_ARRAY_SIZE, $ppt point(s) per task)"
echo "logs:    $logs/sweep-<array job>_<task id>.out (task id t of an array with offset O runs points (O+t)*$ppt ..)"
echo "follow:  squeue -j $all"
echo "         $PATHENS sweep $sweep --status"
echo "results: $PATHENS sweep $sweep --aggregate     (sweep.csv, sweep.json, sweep_report.html)"
