#!/usr/bin/env bash
# bench_threads.sh: threads per rank (--threads N) on a GPT-2-small-shaped evaluation: tokens/s
# at each thread count, as ratios against --threads 1 run by this script, and a check that the
# results.json of every count is byte-identical to the 1-thread one.
#
#   bench/bench_threads.sh [BUILD_DIR]          (default build/; builds nothing)
#   env: THREADS  thread counts, the first is the baseline (default "1 2")
#        WINDOWS  windows of 1024 tokens (default 2), MEMBERS (default 0: the dense pass)
#        BASE     another pathens binary to time at --threads 1 as well (e.g. the build of the
#                 commit before the threads, to see what the 192-row projection tasks cost)
#        GPT2_DIR folder of the model (written by bench/gpt2_model.py when it has no
#                 model.safetensors; default a temporary folder, removed at the end)
#
# The model: bench/gpt2_model.py (124M parameters, vocab 50,257, width 768, 12 layers, 12 heads,
# context 1024, random F32 weights, HF GPT-2 layout); data/tinystories_val.txt as bytes, WINDOWS
# windows of 1024 (every prediction scored), run.batch 8 (all windows in one forward batch).
# tokens/s = scored tokens x (1 + MEMBERS) / timing.json eval_seconds (wall). On a shared machine
# wall time includes waiting for a core: the script prints the load average and the process CPU
# seconds (user + sys, /usr/bin/time) too. OMP_WAIT_POLICY=passive unless set (docs/mpi.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-build}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
THREADS="${THREADS:-1 2}"
WINDOWS="${WINDOWS:-2}"
MEMBERS="${MEMBERS:-0}"
PYTHON="${PYTHON:-/usr/bin/python3}"
DATA="$ROOT/data/tinystories_val.txt"
[ -x "$BUILD/pathens" ] || { echo "bench_threads: $BUILD/pathens not found; build first (cmake --build build)" >&2; exit 1; }
[ -r "$DATA" ] || { echo "bench_threads: $DATA missing; run tools/fetch-data.sh" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench_threads: /usr/bin/time missing (Debian package time)" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/bench_threads.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
GPT2_DIR="${GPT2_DIR:-$TMP/gpt2}"
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
[ -f "$GPT2_DIR/model.safetensors" ] || "$PYTHON" "$ROOT/bench/gpt2_model.py" "$GPT2_DIR" >/dev/null

cat > "$TMP/gpt2.ini" <<EOF
[model]
path = $GPT2_DIR/model.safetensors
tokenizer = bytes
[data]
path = $DATA
mode = windows
limit = $WINDOWS
[run]
out = $TMP/run
batch = 8
[pathways]
scheme = unbiased
ratio = 4
members = $MEMBERS
[importance]
statistics = 0
EOF

json_get() { "$PYTHON" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
tv() { sed -n "s/^[[:space:]]*$2: //p" "$1"; }
echo "bench_threads: $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) cores," \
     "$WINDOWS windows of 1024, members $MEMBERS; load average $(cut -d' ' -f1-3 /proc/loadavg)"

base_tps=""
run_one() { # run_one NAME BINARY THREADS: one evaluation into $TMP/run, its results.json kept as $TMP/NAME.json
    rm -rf "$TMP/run"
    /usr/bin/time -v -o "$TMP/$1.time" "$2" eval "$TMP/gpt2.ini" --threads "$3" --quiet
    cp "$TMP/run/results.json" "$TMP/$1.json"
    local es tok cpu tps same="-"
    es=$(json_get "$TMP/run/timing.json" 'd["eval_seconds"]')
    tok=$(json_get "$TMP/$1.json" 'd["dense"]["tokens"]')
    cpu=$(echo "$(tv "$TMP/$1.time" 'User time (seconds)') + $(tv "$TMP/$1.time" 'System time (seconds)')" | bc -l)
    tps=$(echo "$tok * (1 + $MEMBERS) / $es" | bc -l)
    [ -n "$base_tps" ] || { base_tps=$tps; base_name=$1; }
    # every number (dense, members, ensemble, curve) equal to the baseline run's; the version and
    # git commit may differ (BASE)
    [ "$1" != "$base_name" ] && same=$("$PYTHON" -c "
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
print('yes' if all(a.get(k) == b.get(k) for k in ('dense', 'ensemble', 'member_mean', 'members', 'curve')) else 'NO')" \
        "$TMP/$base_name.json" "$TMP/$1.json")
    printf '%-6s --threads %-2s eval %7.2f s wall, process %7.2f s CPU, %7.1f tokens/s, ratio %.2fx vs %s; numbers = %s: %s; load %s\n' \
        "$1" "$3" "$es" "$cpu" "$tps" "$(echo "$tps / $base_tps" | bc -l)" "$base_name" "$base_name" "$same" \
        "$(cut -d' ' -f1 /proc/loadavg)"
}
for t in $THREADS; do run_one "t$t" "$BUILD/pathens" "$t"; done
[ -z "${BASE:-}" ] || run_one base "$BASE" 1
