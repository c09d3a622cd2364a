#!/usr/bin/env bash
# bench_sweep.sh: `pathens sweep --count / --status / --aggregate` on a finished 10,000-point sweep
# (issue 13, item 6: --status < 2 s, --aggregate < 30 s), against a baseline binary on the same points.
#
#   bench/bench_sweep.sh [DIR]       (default DIR: /tmp/pathens-bench-sweep; kept between runs)
#
# Environment: PATHENS (default build/pathens), PATHENS_MKMODEL (default build/tests/pathens_mkmodel),
# BASELINE (an older pathens binary to time on the same points, e.g. one built from main; optional:
# it must hash points the same way, i.e. have the same config keys), REPS (default 3), JOBS
# (processes filling the sweep, default 3).
# DIR gets a random tiny GPT (pathens_mkmodel gpt), a 2 KB text and sweep.ini: 50 ratios x 50 seeds x
# 2 schemes x 2 combinations = 10,000 points of 1 window each, 2 members. The points are computed
# once (JOBS processes, `--index A-B`; several minutes), then every command is timed REPS times
# (median wall clock and median CPU time, user + sys: on a shared machine the wall clock is mostly
# waiting for a core). `pathens version` is timed too: the start-up every command pays (with an MPI
# build, MPI_Init of a singleton, when it is not skipped). Prints a Markdown table for
# docs/performance.md.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
D=${1:-/tmp/pathens-bench-sweep}
P=$(realpath "${PATHENS:-$src/build/pathens}")
MK=${PATHENS_MKMODEL:-$src/build/tests/pathens_mkmodel}
REPS=${REPS:-3}
JOBS=${JOBS:-3}
mkdir -p "$D"
cd "$D"
[ -s model/model.safetensors ] || "$MK" gpt model >/dev/null
[ -s text.txt ] || /usr/bin/python3 -c "
import random; random.seed(1); w = 'the a cat dog sat on mat and ran far'.split()
open('text.txt', 'w').write(' '.join(random.choice(w) for _ in range(400)) + '\n')"
{
    echo "; bench_sweep.sh: 10,000 tiny points (ratio x seed x scheme x combine) of a random gpt model"
    printf '[model]\npath = model/model.safetensors\ntokenizer = bytes\n'
    printf '[data]\npath = text.txt\nmode = windows\ncontext = 32\nlimit = 1\n'
    printf '[run]\nout = points\n[importance]\nstatistics = 0\n[pathways]\nmembers = 2\n'
    echo "ratio = $(seq -s ', ' 1 50)"
    echo "seed = $(seq -s ', ' 1 50)"
    printf 'scheme = unbiased, local\ncombine = prob, logit\n'
} >sweep.ini
n=$("$P" sweep sweep.ini --count)
if ! "$P" sweep sweep.ini --status >/dev/null; then
    echo "computing the $n points with $JOBS processes (once; several minutes) ..." >&2
    per=$(( (n + JOBS - 1) / JOBS ))
    for j in $(seq 0 $((JOBS - 1))); do
        nice "$P" sweep sweep.ini --quiet --index "$((j * per))-$((j * per + per - 1))" >"fill-$j.log" 2>&1 &
    done
    wait
    "$P" sweep sweep.ini --status >/dev/null || { echo "bench_sweep: points missing after the fill (fill-*.log)" >&2; exit 1; }
fi

# median wall seconds and median CPU seconds (user + sys) of REPS runs of a command: "wall / cpu"
tmed() {
    local w=() c=()
    for _ in $(seq 1 "$REPS"); do
        /usr/bin/time -f '%e %U %S' -o "$D/time.txt" "$@" >/dev/null 2>&1 || true
        read -r e u s <"$D/time.txt"
        w+=("$e"); c+=("$(echo "$u + $s" | bc)")
    done
    local mw mc
    mw=$(printf '%s\n' "${w[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }')
    mc=$(printf '%s\n' "${c[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }')
    echo "$mw / $mc"
}
row() { # row BINARY LABEL
    local b=$1
    printf '| %s | %s | %s | %s | %s |\n' "$2" "$(tmed "$b" version)" "$(tmed "$b" sweep sweep.ini --count)" \
        "$(tmed "$b" sweep sweep.ini --status)" "$(tmed "$b" sweep sweep.ini --aggregate)"
}
rows=$(row "$P" "$P"; [ -z "${BASELINE:-}" ] || row "$BASELINE" "$BASELINE (baseline)")
"$P" sweep sweep.ini --aggregate >/dev/null 2>&1
echo "10,000-point sweep in $D ($(($(wc -l <points/sweep.csv) - 1)) rows aggregated), $(nproc) cores, load average" \
     "$(cut -d' ' -f1 /proc/loadavg); median of $REPS runs: wall seconds / CPU seconds (user + sys)"
echo
echo "| binary | version (start-up) | --count | --status | --aggregate |"
echo "|---|---|---|---|---|"
echo "$rows"
echo
echo "sweep.json $(du -k points/sweep.json | cut -f1) KB, sweep_report.html $(du -k points/sweep_report.html | cut -f1) KB"
