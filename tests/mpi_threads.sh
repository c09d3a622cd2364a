#!/usr/bin/env bash
# mpi_threads.sh: ranks x threads change no number. stories260K on TinyStories documents (3 local
# members, importance statistics) and a random ViT on 120 Fashion-MNIST images (3 members,
# ablations): results.json, members.csv, curve.csv, per_example.msgpack (and importance.csv)
# byte-identical for the serial binary on 1 thread and for mpirun -n 2 with --threads 2 (rank 0's
# compute thread runs its tasks on 2 threads beside the coordinator thread) and -n 3 with
# --threads 3 with members split over tasks. The start-up line says "2 ranks x 2 threads".
# The stories part needs data/ (tools/fetch-data.sh), the ViT part Debian's Fashion-MNIST.
set -u
: "${PATHENS:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}" "${PATHENS_DATA_DIR:?}" "${MPIEXEC:?}"
export PATHENS_FASHION_DIR="${PATHENS_FASHION_DIR:-/usr/share/datasets/fashion-mnist}"
WRITER="${PATHENS_TEST_WRITER:-$(dirname "$PATHENS")/tests/pathens_mkmodel}"
source "$PATHENS_SRC/tests/lib.sh"
[ -x "$WRITER" ] || { echo "FAIL: pathens_mkmodel not found at $WRITER (build it, or set PATHENS_TEST_WRITER)"; exit 1; }
T="$PATHENS_TEST_TMP/mpi_threads"; rm -rf "$T"; mkdir -p "$T"
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive # waiting threads sleep: 2-3 ranks x 2-3 threads share 2 cores
D=$PATHENS_DATA_DIR
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
out="$T/run" # the same run.out every time: it is echoed in results.json

run() { # run NAME RANKS THREADS CONFIG [--set ...]: RANKS 0 = no mpirun
    local name=$1 n=$2 t=$3 cfg=$4; shift 4
    rm -rf "$out"
    if [ "$n" = 0 ]; then "$PATHENS" eval "$cfg" --threads "$t" --set run.out="$out" --set run.per_example=1 "$@" 2>"$T/$name.err"
    else "$MPIEXEC" --oversubscribe -n "$n" "$PATHENS" eval "$cfg" --threads "$t" --set run.out="$out" \
        --set run.per_example=1 "$@" 2>"$T/$name.err"; fi
    local rc=$?
    [ $rc = 0 ] || { bad "$name: exit $rc: $(tail -3 "$T/$name.err")"; return 1; }
    mkdir -p "$T/$name"
    cp "$out"/* "$T/$name/"
}
same() { # same A B WHAT FILES
    local f diffs=""
    for f in $4; do cmp -s "$T/$1/$f" "$T/$2/$f" || diffs="$diffs $f"; done
    [ -z "$diffs" ] && ok "$3: $4 byte-identical" || bad "$3: differ:$diffs $(diff "$T/$1/results.json" "$T/$2/results.json" | head -4)"
}
FILES="results.json members.csv curve.csv per_example.msgpack importance.csv"

if have_data stories260K.bin tok512.bin tinystories_val.txt; then
    printf '[model]\npath = %s/stories260K.bin\ntokenizer = %s/tok512.bin\n[data]\npath = %s/tinystories_val.txt\nmode = documents\nlimit = 30\n[run]\nbatch = 4\nshard = 5\n[pathways]\nscheme = local\nratio = 4\nmembers = 3\n[importance]\nstatistics = 1\n' \
        "$D" "$D" "$D" >"$T/stories.ini"
    run s_serial 0 1 "$T/stories.ini"
    run s_n2t2 2 2 "$T/stories.ini"
    same s_serial s_n2t2 "stories260K: 2 ranks x 2 threads against the serial binary on 1 thread" "$FILES"
    grep -q "2 ranks x 2 threads" "$T/s_n2t2.err" && ok "start-up line: 2 ranks x 2 threads" \
        || bad "start-up line: $(head -1 "$T/s_n2t2.err")"
    run s_serial_mb 0 1 "$T/stories.ini" --set run.member_block=1 # run.member_block is echoed in results.json
    run s_n3t3 3 3 "$T/stories.ini" --set run.member_block=1
    same s_serial_mb s_n3t3 "stories260K: 3 ranks x 3 threads, members split over tasks, against serial x 1" "$FILES"
fi

if [ -r "$PATHENS_FASHION_DIR/t10k-images-idx3-ubyte.gz" ]; then
    "$WRITER" vit "$T/vit" --seed 5 >/dev/null || bad "pathens_mkmodel vit"
    printf '[model]\npath = %s/vit/model.safetensors\ntokenizer = none\n[data]\npath = %s/t10k-images-idx3-ubyte.gz\nlimit = 120\n[run]\nbatch = 7\nshard = 25\n[pathways]\nmembers = 3\nscheme = unbiased\nratio = 2\n[importance]\nstatistics = 1\nablation = 1\n' \
        "$T" "$PATHENS_FASHION_DIR" >"$T/vit.ini"
    run v_serial 0 1 "$T/vit.ini"
    run v_n2t2 2 2 "$T/vit.ini"
    same v_serial v_n2t2 "ViT: 2 ranks x 2 threads against the serial binary on 1 thread" "$FILES"
else
    PATHENS_MISSING+=("$PATHENS_FASHION_DIR/t10k-images-idx3-ubyte.gz (Debian's dataset-fashion-mnist)")
fi
finish "$fails"
