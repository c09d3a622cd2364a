#!/usr/bin/env bash
# bench_gpt2.sh: a GPT-2-small-shaped self-ensemble evaluation, pathens vs the PyTorch peer
# (bench/gpt2_peer.py): peak RSS, tokens/s, and pathens' dense pass against the sgemm ceiling
# (bench_lmhead ceiling). 1 thread each.
#
#   bench/bench_gpt2.sh [BUILD_DIR]          (default build/; builds nothing)
#   env: GPT2_DIR   folder of the model (written by bench/gpt2_model.py when it has no
#                   model.safetensors; default a temporary folder, removed at the end)
#        WINDOWS (4), MEMBERS (2), RATIO (4), PYTHON (/usr/bin/python3),
#        PARTS   "pathens dense peer ceiling" (any subset, in that order)
#
# The run: 124M parameters (vocab 50,257, width 768, 12 layers, 12 heads, context 1024), random
# F32 weights in HF GPT-2 layout; data/tinystories_val.txt as bytes (tokenizer = bytes), WINDOWS
# windows of 1024 tokens (stride = context: every prediction scored); dense + MEMBERS unbiased
# rho = RATIO members, combine = prob, importance statistics on (the default).
# tokens/s = scored tokens x (1 + K) / evaluation seconds (pathens: timing.json eval_seconds;
# peer: its evaluation loop). On a shared machine wall time includes waiting for a core, so the
# script also prints process CPU seconds (user + sys, from /usr/bin/time -v, loading included).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-build}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
WINDOWS="${WINDOWS:-4}"
MEMBERS="${MEMBERS:-2}"
RATIO="${RATIO:-4}"
PYTHON="${PYTHON:-/usr/bin/python3}"
PARTS="${PARTS:-pathens dense peer ceiling}"
DATA="$ROOT/data/tinystories_val.txt"

for exe in pathens bench_lmhead; do
    [ -x "$BUILD/$exe" ] || { echo "bench_gpt2: $BUILD/$exe not found; build first (cmake --build build)" >&2; exit 1; }
done
[ -r "$DATA" ] || { echo "bench_gpt2: $DATA missing; run tools/fetch-data.sh" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench_gpt2: /usr/bin/time missing (Debian package time)" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/bench_gpt2.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
GPT2_DIR="${GPT2_DIR:-$TMP/gpt2}"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

if [ ! -f "$GPT2_DIR/model.safetensors" ]; then
    "$PYTHON" "$ROOT/bench/gpt2_model.py" "$GPT2_DIR"
fi

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
[pathways]
scheme = unbiased
ratio = $RATIO
members = $MEMBERS
EOF

json_get() { "$PYTHON" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
tv() { sed -n "s/^[[:space:]]*$2: //p" "$1"; } # a field of /usr/bin/time -v's report
cpu_of() { echo "$(tv "$1" 'User time (seconds)') + $(tv "$1" 'System time (seconds)')" | bc -l; }

echo "bench_gpt2: $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1), 1 thread," \
     "$WINDOWS windows of 1024, K=$MEMBERS unbiased rho=$RATIO; load average $(cut -d' ' -f1-3 /proc/loadavg)"

run_pathens() { # run_pathens NAME MEMBERS
    /usr/bin/time -v -o "$TMP/$1.time" "$BUILD/pathens" eval "$TMP/gpt2.ini" --set run.out="$TMP/$1" \
        --set pathways.members="$2" --threads 1 --quiet
    local es ec tok cpu rss
    es=$(json_get "$TMP/$1/timing.json" 'd["eval_seconds"]')
    ec=$(json_get "$TMP/$1/timing.json" 'd["eval_cpu_seconds"]') # the evaluation's CPU, loading excluded
    tok=$(json_get "$TMP/$1/results.json" 'd["dense"]["tokens"]')
    cpu=$(cpu_of "$TMP/$1.time")
    rss=$(tv "$TMP/$1.time" 'Maximum resident set size (kbytes)')
    printf '%-8s eval %.2f s wall / %.2f s CPU, process %.2f s CPU, peak RSS %.3f GB, %d scored tokens, %.1f tokens/s (wall), %.1f tokens/CPU-s, dense NLL %s\n' \
        "$1" "$es" "$ec" "$cpu" "$(echo "$rss / 1000000" | bc -l)" "$tok" "$(echo "$tok * (1 + $2) / $es" | bc -l)" \
        "$(echo "$tok * (1 + $2) / $cpu" | bc -l)" "$(json_get "$TMP/$1/results.json" 'd["dense"]["nll_per_token"]')"
    eval "${1}_ES=$es ${1}_EC=$ec ${1}_CPU=$cpu ${1}_TOK=$tok ${1}_RSS=$rss"
}

case " $PARTS " in *" pathens "*) run_pathens pathens "$MEMBERS" ;; esac
case " $PARTS " in *" dense "*) run_pathens dense 0 ;; esac
if case " $PARTS " in *" peer "*) true ;; *) false ;; esac; then
    REF=""
    [ -n "${pathens_ES:-}" ] && REF="--ref-nll $(json_get "$TMP/pathens/results.json" 'd["dense"]["nll_per_token"]')"
    /usr/bin/time -v -o "$TMP/peer.time" "$PYTHON" "$ROOT/bench/gpt2_peer.py" --model "$GPT2_DIR" --data "$DATA" \
        --windows "$WINDOWS" --members "$MEMBERS" --ratio "$RATIO" $REF | tee "$TMP/peer.out"
    PEER_TPS=$(sed -n 's/^PEER_TOKENS_PER_SECOND //p' "$TMP/peer.out")
    PEER_CPU=$(cpu_of "$TMP/peer.time")
    PEER_RSS=$(tv "$TMP/peer.time" 'Maximum resident set size (kbytes)')
    printf 'peer     process %.2f s CPU, peak RSS %.3f GB, %.1f tokens/s (wall), %.1f tokens/CPU-s\n' "$PEER_CPU" \
        "$(echo "$PEER_RSS / 1000000" | bc -l)" "$PEER_TPS" "$(echo "$WINDOWS * 1023 * (1 + $MEMBERS) / $PEER_CPU" | bc -l)"
    if [ -n "${pathens_ES:-}" ]; then
        printf 'RATIO pathens / PyTorch: %.2fx tokens/s (wall), %.2fx tokens per CPU second; peak RSS %.3f vs %.3f GB\n' \
            "$(echo "$pathens_TOK * (1 + $MEMBERS) / $pathens_ES / $PEER_TPS" | bc -l)" \
            "$(echo "$PEER_CPU / $pathens_CPU" | bc -l)" "$(echo "$pathens_RSS / 1000000" | bc -l)" \
            "$(echo "$PEER_RSS / 1000000" | bc -l)"
    fi
fi
if case " $PARTS " in *" ceiling "*) true ;; *) false ;; esac; then
    "$BUILD/bench_lmhead" ceiling 768 12 50257 1024 "$WINDOWS" 12 | tee "$TMP/ceiling.out"
    if [ -n "${dense_ES:-}" ]; then
        CW=$(sed -n 's/^CEILING_WALL_SECONDS //p' "$TMP/ceiling.out")
        CC=$(sed -n 's/^CEILING_CPU_SECONDS //p' "$TMP/ceiling.out")
        printf 'DENSE PASS vs sgemm ceiling: %.0f%% (wall: ceiling %.2f s / eval %.2f s), %.0f%% (CPU: ceiling %.2f s / eval %.2f s, loading excluded), %.0f%% (CPU: ceiling / process %.2f s, loading included)\n' \
            "$(echo "100 * $CW / $dense_ES" | bc -l)" "$CW" "$dense_ES" "$(echo "100 * $CC / $dense_EC" | bc -l)" "$CC" "$dense_EC" \
            "$(echo "100 * $CC / $dense_CPU" | bc -l)" "$dense_CPU"
    fi
fi
