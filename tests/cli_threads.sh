#!/usr/bin/env bash
# cli_threads.sh: threads per rank (--threads N) change no number. The same evaluation with
# --threads 1, 2, 3 and 4 writes byte-identical results.json, members.csv, curve.csv,
# importance.csv (where written) and per_example.msgpack:
#   (a) stories260K (llama2.c: RMSNorm, RoPE, SwiGLU, GQA) on TinyStories documents of varied
#       length, batch 5 (not a multiple of the threads), 3 local members, importance statistics
#       and drop-one passes (the ablation head);
#   (b) the logit combination (each thread's running logit sums) on windows of 320 tokens, two
#       projection tasks each;
#   (c) a random GPT-style model (pathens_mkmodel gpt: LayerNorm, GELU-tanh, learned positions)
#       on byte windows, random-k members;
#   (d) a random ViT (pathens_mkmodel vit: GELU, bidirectional, CLS head) on 120 real
#       Fashion-MNIST images, unbiased members, importance statistics and ablations.
# And: the start-up line says "1 rank x 3 threads"; timing.json holds "threads"; --threads 0 and
# --threads 1025 are usage errors (exit 1); prune --evaluate --threads 3 writes the frontier.json
# of --threads 1. (a)-(c) need data/ (tools/fetch-data.sh), (d) Debian's
# Fashion-MNIST. Under a loaded machine OpenMP threads that spin while they wait take the cores
# from the ones working: the test waits passively (OMP_WAIT_POLICY=passive, docs/mpi.md).
set -u
: "${PATHENS:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}" "${PATHENS_DATA_DIR:?}"
export PATHENS_FASHION_DIR="${PATHENS_FASHION_DIR:-/usr/share/datasets/fashion-mnist}"
WRITER="${PATHENS_TEST_WRITER:-$(dirname "$PATHENS")/tests/pathens_mkmodel}"
source "$PATHENS_SRC/tests/lib.sh"
[ -x "$WRITER" ] || { echo "FAIL: pathens_mkmodel not found at $WRITER (build it, or set PATHENS_TEST_WRITER)"; exit 1; }
T="$PATHENS_TEST_TMP/cli_threads"; rm -rf "$T"; mkdir -p "$T"
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
D=$PATHENS_DATA_DIR
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
out="$T/run" # the same run.out every time: it is echoed in results.json
FILES="results.json members.csv curve.csv per_example.msgpack"

run() { # run NAME THREADS CONFIG [--set ...]: files of the run copied to $T/NAME
    local name=$1 t=$2 cfg=$3; shift 3
    rm -rf "$out"
    "$PATHENS" eval "$cfg" --threads "$t" --set run.out="$out" --set run.per_example=1 "$@" 2>"$T/$name.err"
    local rc=$?
    [ $rc = 0 ] || { bad "$name: exit $rc: $(tail -3 "$T/$name.err")"; return 1; }
    mkdir -p "$T/$name"
    cp "$out"/* "$T/$name/"
}
same_all() { # same_all WHAT PREFIX FILES: PREFIX1's files against PREFIX2..4's
    local what=$1 p=$2 files=$3 t f diffs
    for t in 2 3 4; do
        diffs=""
        for f in $files; do cmp -s "$T/${p}1/$f" "$T/$p$t/$f" || diffs="$diffs $f"; done
        [ -z "$diffs" ] && ok "$what: --threads $t gives $files byte-identical to --threads 1" \
            || bad "$what: --threads $t differs from 1 in:$diffs $(diff "$T/${p}1/results.json" "$T/$p$t/results.json" | head -4)"
    done
}

# usage errors
for v in 0 1025 x; do
    "$PATHENS" eval "$PATHENS_SRC/configs/stories260k.ini" --threads "$v" >"$T/usage.out" 2>&1
    rc=$?
    [ $rc = 1 ] && grep -q -- "--threads" "$T/usage.out" && ok "--threads $v: usage error (exit 1) naming --threads" \
        || bad "--threads $v: exit $rc: $(head -2 "$T/usage.out")"
done

if have_data stories260K.bin tok512.bin tinystories_val.txt; then
    printf '[model]\npath = %s/stories260K.bin\ntokenizer = %s/tok512.bin\n[data]\npath = %s/tinystories_val.txt\nmode = documents\nlimit = 24\n[run]\nbatch = 5\n[pathways]\nscheme = local\nratio = 4\nmembers = 3\n[importance]\nstatistics = 1\nunits = 2\n' \
        "$D" "$D" "$D" >"$T/stories.ini"
    for t in 1 2 3 4; do run s$t $t "$T/stories.ini"; done
    same_all "(a) stories260K, 3 members, importance" s "$FILES importance.csv"
    grep -q "1 rank x 3 threads" "$T/s3.err" && ok "start-up line: 1 rank x 3 threads" || bad "start-up line: $(head -1 "$T/s3.err")"
    grep -q '"threads":[[:space:]]*3' "$T/s3/timing.json" && ok "timing.json: threads 3" || bad "timing.json has no threads 3"
    # the CPU seconds of the two phases: positive, and at most wall x threads (+ clock slack)
    cpu=$(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
ok = 0 < d["eval_cpu_seconds"] <= d["eval_seconds"] * d["threads"] + 0.05 and 0 < d["load_cpu_seconds"] <= d["load_seconds"] + 0.05
print("ok" if ok else "eval %.3f s CPU / %.3f s wall, load %.3f / %.3f" % (d["eval_cpu_seconds"], d["eval_seconds"], d["load_cpu_seconds"], d["load_seconds"]))' "$T/s3/timing.json" 2>&1)
    [ "$cpu" = ok ] && ok "timing.json: eval_cpu_seconds and load_cpu_seconds within wall x threads" || bad "timing.json CPU seconds: $cpu"
    # prune --evaluate --threads: the plans' evaluations are the same for 1 and 3 threads
    for t in 1 3; do
        cp -r "$T/s$t" "$T/prune$t"
        "$PATHENS" prune "$T/prune$t" --budget 0.5 --evaluate --threads $t --quiet || bad "prune --threads $t: exit $?"
    done
    cmp -s "$T/prune1/frontier.json" "$T/prune3/frontier.json" && ok "prune --evaluate --threads 3: frontier.json byte-identical to 1" \
        || bad "prune --threads 3 differs: $(diff "$T/prune1/frontier.json" "$T/prune3/frontier.json" | head -4)"
    "$PATHENS" prune "$T/prune1" --budget 0.5 --threads 0 >"$T/usage.out" 2>&1
    rc=$?
    [ $rc = 1 ] && grep -q -- "--threads" "$T/usage.out" && ok "prune --threads 0: usage error (exit 1)" || bad "prune --threads 0: exit $rc"
    for t in 1 2 3 4; do run l$t $t "$T/stories.ini" --set pathways.combine=logit --set importance.statistics=0 \
        --set importance.units=0 --set data.mode=windows --set data.context=320 --set data.limit=7; done
    # windows of 320 tokens: each sequence is two projection tasks (192 + 128 rows, MODEL_MATMUL_ROWS)
    per=$(/usr/bin/python3 -c "import json; d=json.load(open('$T/l1/results.json'))['dense']; print(d['tokens'] / d['units'])" 2>&1)
    [ "$per" = 319.0 ] && ok "(b) 7 windows of 320 tokens (319 scored each): sequences longer than one 192-row task" \
        || bad "(b) scored tokens per window: $per, not 319"
    same_all "(b) stories260K, logit combination" l "$FILES"
    "$WRITER" gpt "$T/gpt" --seed 3 >/dev/null || bad "pathens_mkmodel gpt"
    printf '[model]\npath = %s/gpt/model.safetensors\ntokenizer = bytes\n[data]\npath = %s/tinystories_val.txt\nmode = windows\nlimit = 11\n[run]\nbatch = 4\n[pathways]\nscheme = random-k\nratio = 3\nmembers = 2\n' \
        "$T" "$D" >"$T/gpt.ini"
    for t in 1 2 3 4; do run g$t $t "$T/gpt.ini"; done
    same_all "(c) GPT-style model, random-k members" g "$FILES"
fi

if [ -r "$PATHENS_FASHION_DIR/t10k-images-idx3-ubyte.gz" ]; then
    "$WRITER" vit "$T/vit" --seed 5 >/dev/null || bad "pathens_mkmodel vit"
    printf '[model]\npath = %s/vit/model.safetensors\ntokenizer = none\n[data]\npath = %s/t10k-images-idx3-ubyte.gz\nlimit = 120\n[run]\nbatch = 7\n[pathways]\nmembers = 3\nscheme = unbiased\nratio = 2\n[importance]\nstatistics = 1\nablation = 1\n' \
        "$T" "$PATHENS_FASHION_DIR" >"$T/vit.ini"
    for t in 1 2 3 4; do run v$t $t "$T/vit.ini"; done
    same_all "(d) ViT on Fashion-MNIST, importance and ablations" v "$FILES importance.csv"
else
    PATHENS_MISSING+=("$PATHENS_FASHION_DIR/t10k-images-idx3-ubyte.gz (Debian's dataset-fashion-mnist)")
fi
finish "$fails"
