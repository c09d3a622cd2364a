#!/usr/bin/env bash
# submit-sweep.sh SWEEP.ini [extra sbatch options ...]: submit a `pathens sweep` as a SLURM job
# array, one array task per point (jobs/sweep-array.sbatch), at most MAXPAR at a time.
#
# WHAT TO EDIT: nothing here; set the environment instead:
#   PATHENS      the pathens binary (default: `pathens` on PATH, else build/pathens of the checkout)
#   MAXPAR       array tasks running at once (default 4): --array=0-(N-1)%MAXPAR
#   PATHENS_LOGS folder for the tasks' output files (default slurm-logs; made if missing)
#   SBATCH_SCRIPT the batch script (default jobs/sweep-array.sbatch beside this file; point it at
#                your edited copy)
# Run it, and later --status / --aggregate, from the same folder with SWEEP.ini spelled the same
# way (the tasks run there too, --chdir): relative paths in SWEEP.ini are joined to the INI path
# as given, and the point folders' hashes include them.
# Extra arguments go to sbatch before the script, so they override its #SBATCH lines:
#   jobs/submit-sweep.sh sweeps/ratio.ini --partition=short --time=00:30:00
#
# The first submission covers every point (--array=0-(N-1)%K). If some points are finished
# already (their DONE marker), only the others are submitted (--array=3,7,12%K): resubmitting the
# same sweep after failures or a cancelled array redoes just what is missing, resuming interrupted
# points from their journals. Prints the array job id and the commands to follow it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 SWEEP.ini [extra sbatch options ...]" >&2; exit 1; }
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
maxpar=${MAXPAR:-4}
logs=${PATHENS_LOGS:-slurm-logs}
command -v sbatch >/dev/null || { echo "submit-sweep: sbatch not found (SLURM client tools)" >&2; exit 2; }

# the number of points (this also validates every point's config: a typo fails here, not in a job)
n=$("$PATHENS" sweep "$sweep" --count) || exit $?
[ "$n" -gt 0 ] 2>/dev/null || { echo "submit-sweep: $sweep has no points" >&2; exit 2; }

# points still to do: failed or missing (possibly partial); running and done ones are skipped
st=$("$PATHENS" sweep "$sweep" --status || true)
todo=$(awk '$1 == "failed" || $1 == "missing" { for (i = 3; i <= NF; i++) print $i }' <<<"$st" |
       sed 's/(partial)//' | sort -n | paste -sd, -)
ndone=$(awk '$1 == "done" { print $2 }' <<<"$st")
nrun=$(awk '$1 == "running" { print $2 }' <<<"$st")
if [ -z "$todo" ]; then
    echo "submit-sweep: nothing to submit: ${ndone:-0} of $n points done, ${nrun:-0} running"
    echo "  $PATHENS sweep $sweep --status"
    echo "  $PATHENS sweep $sweep --aggregate"
    exit 0
fi
if [ "${ndone:-0}" = 0 ] && [ "${nrun:-0}" = 0 ]; then array="0-$((n - 1))"; else array="$todo"; fi

mkdir -p "$logs"
logs=$(realpath "$logs")
out=$(sbatch --parsable --array="$array%$maxpar" --chdir="$PWD" --output="$logs/sweep-%A_%a.out" "$@" "$script" "$sweep")
jid=${out%%;*}
[ -n "$jid" ] || { echo "submit-sweep: sbatch gave no job id" >&2; exit 3; }
echo "submitted job array $jid: $sweep (from $PWD), points $array of $n, at most $maxpar at a time"
echo "logs:    $logs/sweep-${jid}_<point>.out"
echo "follow:  squeue -j $jid"
echo "         $PATHENS sweep $sweep --status"
echo "results: $PATHENS sweep $sweep --aggregate     (sweep.csv, sweep.json, sweep_report.html)"
