#!/usr/bin/env bash
# scaling.sh: weak-scaling efficiency of `pathens eval` over MPI ranks.
#   bench/scaling.sh [BUILD_DIR] [RANKS...]          default: build, 1 2
# W computing ranks (mpirun -n W; rank 0 computes beside coordinating) on W x BASE documents (BASE=200 by default),
# stories260K, 4 local members at ratio 4, 1 BLAS thread per rank, best of REPS runs (default 3).
# Efficiency(W) = T(1 rank) / T(W ranks): 1.0 is perfect weak scaling. Prints one line per W.
# On a bigger machine without apt, carry a bundle made by ../shared/tools/mpi-bundle.sh and set
# MPIRUN=OUTDIR/run.sh PATHENS=OUTDIR/bin/pathens.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}; shift || true
workers=("$@"); [ ${#workers[@]} -gt 0 ] || workers=(1 2)
BASE=${BASE:-200}; REPS=${REPS:-3}
MPIRUN=${MPIRUN:-mpirun}; PATHENS=${PATHENS:-$build/pathens}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
t1=""
printf "%-8s %-6s %-10s %-12s %-10s\n" ranks docs seconds docs/s efficiency
for w in "${workers[@]}"; do
    docs=$((BASE * w)); best=""
    for r in $(seq 1 "$REPS"); do
        rm -rf "$tmp/run"
        "$MPIRUN" -n "$w" "$PATHENS" eval configs/stories260k.ini --quiet --set data.limit=$docs \
            --set run.out="$tmp/run" --set importance.statistics=0 --set run.shard=${SHARD:-4} >/dev/null
        s=$(/usr/bin/python3 -c "import json; print(json.load(open('$tmp/run/timing.json'))['eval_seconds'])")
        best=$(/usr/bin/python3 -c "print(min(float('$s'), float('${best:-1e30}')))")
    done
    [ -n "$t1" ] || t1=$best
    printf "%-8s %-6s %-10.3f %-12.1f %-10.3f\n" "$w" "$docs" "$best" \
        "$(/usr/bin/python3 -c "print($docs / $best)")" "$(/usr/bin/python3 -c "print($t1 / $best)")"
done
