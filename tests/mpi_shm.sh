#!/usr/bin/env bash
# mpi_shm.sh: one copy of the converted weights per node (mpi/shm.c, docs/mpi.md "Converted weights").
# Random-weight Hugging Face folders from tests/hf_oracle.py: Qwen3 in BF16, GPT-NeoX in F16 (its
# fused q/k/v rows re-laid out in the converted block) and Qwen2 in F32 (nothing converted), each
# evaluated (byte tokens of 6 TinyStories documents, 3 members, one document per task) by the
# serial path and by 1, 2, 3 and 4 ranks (real mpirun, oversubscribed), and by 4 ranks with
# PATHENS_SHM_RANKS=2 (two copies) and =1 (a copy per rank):
#  - results.json is byte-identical in every run. With a shared block each rank of a node converts
#    only its piece of it, so a rank whose window were not the one its neighbours wrote would read
#    zeros for their tensors and give other numbers.
#  - timing.json says, per rank, what it holds: converted_bytes = 4 bytes per element of every F16 /
#    BF16 tensor of the folder (read from the safetensors headers here), shared with copy_ranks
#    ranks whose lowest rank is copy_leader: every rank of the node with 2+ ranks, pairs with
#    PATHENS_SHM_RANKS=2, nobody with 1 rank or PATHENS_SHM_RANKS=1, nobody for the F32 folder
#    (0 bytes: its tensors stay views into the mmap); a shared block is mapped read-only in every
#    rank but for its partial first and last pages (read_only_bytes); the start-up line says how
#    many copies.
#  - PATHENS_SHM_RANKS=x is refused (exit 1) with a message naming it; a window that cannot be made
#    (Open MPI's backing directory missing) ends the job with exit 3 and a message naming the ways
#    out, and PATHENS_SHM_RANKS=1 then runs.
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}" "${MPIEXEC:?}"
source "$PATHENS_SRC/tests/lib.sh"
need_data tinystories_val.txt
T="$PATHENS_TEST_TMP/mpi_shm"; rm -rf "$T"; mkdir -p "$T"
PY=/usr/bin/python3
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
export OPENBLAS_NUM_THREADS=1
unset PATHENS_SHM_RANKS

# expected converted bytes of a folder: 4 per element of every tensor not stored as F32
conv_bytes() {
    $PY - "$1" <<'PY'
import glob, json, struct, sys
n = 0
for f in glob.glob(sys.argv[1] + "/*.safetensors"):
    with open(f, "rb") as fh:
        h = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
    for k, v in h.items():
        if k != "__metadata__" and v["dtype"] != "F32":
            e = 1
            for d in v["shape"]: e *= d
            n += 4 * e
print(n)
PY
}

# check_timing NAME RUN_DIR RANKS BYTES SHARED_EXPECT: SHARED_EXPECT is, per rank, "leader/ranks" or
# "-" (its own copy), space-separated
check_timing() {
    local name=$1 dir=$2 n=$3 bytes=$4 want=$5
    local got
    got=$($PY - "$dir/timing.json" "$n" "$bytes" "$want" "$(getconf PAGESIZE)" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
n, nbytes, want, pg = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(), int(sys.argv[5])
pr = t.get("per_rank", [])
errs = []
if t.get("ranks") != n or len(pr) != n:
    errs.append(f"ranks {t.get('ranks')}, per_rank {len(pr)}, expected {n}")
for r, e in enumerate(pr):
    w = e.get("weights")
    if not w:
        errs.append(f"rank {r}: no weights"); continue
    if w["converted_bytes"] != nbytes:
        errs.append(f"rank {r}: converted_bytes {w['converted_bytes']}, expected {nbytes}")
    exp = want[r] if r < len(want) else "?"
    got = f"{w['copy_leader']}/{w['copy_ranks']}" if w["shared"] else "-"
    if not w["shared"] and (w["copy_ranks"] != 1 or w["copy_leader"] != r):
        got = f"-(leader {w['copy_leader']}, ranks {w['copy_ranks']})"
    if got != exp:
        errs.append(f"rank {r}: {got}, expected {exp}")
    # a shared block is read-only in every rank but for its first and last partial pages; a private one is not
    ro = w.get("read_only_bytes", -1)
    if (w["shared"] and not (nbytes - 2 * pg < ro <= nbytes and ro % pg == 0)) or (not w["shared"] and ro != 0):
        errs.append(f"rank {r}: read_only_bytes {ro} of {nbytes} (shared: {w['shared']})")
print("; ".join(errs) if errs else "ok")
PY
)
    [ "$got" = ok ] && ok "$name: timing.json per rank: $bytes converted bytes, copies [$want]" || bad "$name: timing.json: $got"
}

make_ini() { # make_ini NAME FOLDER
    printf '[model]\npath = %s\ntokenizer = bytes\n[data]\npath = %s/tinystories_val.txt\nlimit = 6\ncontext = 64\n[pathways]\nmembers = 3\nscheme = random-k\nratio = 3\n[run]\nshard = 1\nout = %s/run-%s\n' \
        "$2" "$PATHENS_DATA_DIR" "$T" "$1" > "$T/$1.ini"
}

run() { # run MODEL NAME RANKS [env...]: RANKS 0 = no mpirun; stderr kept in NAME.log
    local model=$1 name=$2 n=$3; shift 3
    local out="$T/run-$model"
    rm -rf "$out"
    if [ "$n" = 0 ]; then env "$@" "$PATHENS" eval "$T/$model.ini" > "$T/$name.log" 2>&1
    else env "$@" "$MPIEXEC" --oversubscribe -n "$n" "$PATHENS" eval "$T/$model.ini" > "$T/$name.log" 2>&1; fi
    local rc=$?
    if [ $rc != 0 ]; then bad "$name: exit $rc: $(tail -3 "$T/$name.log")"; return 1; fi
    mkdir -p "$T/$name" && cp "$out/results.json" "$out/timing.json" "$T/$name/"
}

same() { # same REF NAME
    cmp -s "$T/$1/results.json" "$T/$2/results.json" && ok "$2: results.json byte-identical to $1" ||
        bad "$2: results.json differs from $1: $(diff "$T/$1/results.json" "$T/$2/results.json" | head -4)"
}

line() { # line NAME PATTERN: the start-up line on the converted weights
    grep -q -- "$2" "$T/$1.log" && ok "$1: prints '$2'" || bad "$1: no '$2' in its output: $(grep weights: "$T/$1.log")"
}

for v in "qwen3 base" "gpt_neox parallel" "qwen2 base"; do
    set -- $v
    $PY "$PATHENS_SRC/tests/hf_oracle.py" make "$1" "$2" "$T/$1" || { bad "hf_oracle.py make $v"; continue; }
    make_ini "$1" "$T/$1"
done
for m in qwen3 gpt_neox; do
    bytes=$(conv_bytes "$T/$m")
    [ "$bytes" -gt 0 ] || bad "$m: no F16/BF16 tensor in the folder"
    mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
    run $m $m-serial 0 || continue
    run $m $m-n1 1 && same $m-serial $m-n1 && check_timing $m-n1 "$T/$m-n1" 1 "$bytes" "-"
    line $m-n1 "weights: $mb MB converted to float32, 1 copy for 1 rank$"
    run $m $m-n2 2 && same $m-serial $m-n2 && check_timing $m-n2 "$T/$m-n2" 2 "$bytes" "0/2 0/2"
    line $m-n2 "weights: $mb MB converted to float32, 1 copy for 2 ranks (MPI shared memory, 2 ranks per copy)"
    run $m $m-n4 4 && same $m-serial $m-n4 && check_timing $m-n4 "$T/$m-n4" 4 "$bytes" "0/4 0/4 0/4 0/4"
    line $m-n4 "weights: $mb MB converted to float32, 1 copy for 4 ranks (MPI shared memory, 4 ranks per copy)"
    run $m $m-n4-pairs 4 PATHENS_SHM_RANKS=2 && same $m-serial $m-n4-pairs &&
        check_timing $m-n4-pairs "$T/$m-n4-pairs" 4 "$bytes" "0/2 0/2 2/2 2/2"
    line $m-n4-pairs "2 copies for 4 ranks (MPI shared memory, 2 ranks per copy)"
done
# three ranks (pieces of unequal tensors) and a copy per rank, on the BF16 model
run qwen3 qwen3-n3 3 && same qwen3-serial qwen3-n3 && check_timing qwen3-n3 "$T/qwen3-n3" 3 "$(conv_bytes "$T/qwen3")" "0/3 0/3 0/3"
run qwen3 qwen3-n4-own 4 PATHENS_SHM_RANKS=1 && same qwen3-serial qwen3-n4-own &&
    check_timing qwen3-n4-own "$T/qwen3-n4-own" 4 "$(conv_bytes "$T/qwen3")" "- - - -"
line qwen3-n4-own "4 copies for 4 ranks (one per rank"
# F32: nothing converted, nothing shared, no line
[ "$(conv_bytes "$T/qwen2")" = 0 ] || bad "qwen2 base is expected to be stored in F32"
run qwen2 qwen2-serial 0 && run qwen2 qwen2-n2 2 && same qwen2-serial qwen2-n2 &&
    check_timing qwen2-n2 "$T/qwen2-n2" 2 0 "- -"
grep -q "weights:" "$T/qwen2-n2.log" && bad "qwen2-n2: a weights line for an F32 model" || ok "qwen2-n2: no weights line (F32: views into the mmap)"
# a bad PATHENS_SHM_RANKS
rm -rf "$T/run-qwen3"
PATHENS_SHM_RANKS=x "$MPIEXEC" --oversubscribe -n 2 "$PATHENS" eval "$T/qwen3.ini" > "$T/bad.log" 2>&1
rc=$?
[ $rc = 1 ] && grep -q "PATHENS_SHM_RANKS='x' is not a whole number" "$T/bad.log" && ok "PATHENS_SHM_RANKS=x: exit 1 naming it" ||
    bad "PATHENS_SHM_RANKS=x: exit $rc, $(tail -2 "$T/bad.log")"
# no room for the window (a backing directory that does not exist): exit 3 with the ways out, one of
# which (a copy per rank) then runs
rm -rf "$T/run-qwen3"
timeout 120 "$MPIEXEC" --oversubscribe -n 2 --mca osc_sm_backing_directory "$T/no-such-dir" "$PATHENS" eval "$T/qwen3.ini" \
    > "$T/nodir.log" 2>&1
rc=$?
[ $rc = 3 ] && grep -q "MPI_Win_allocate_shared failed for the converted weights" "$T/nodir.log" &&
    grep -q "PATHENS_SHM_RANKS=1" "$T/nodir.log" && ok "no room for the window: exit 3 saying how to avoid it" ||
    bad "no room for the window: exit $rc, $(grep -m2 error "$T/nodir.log")"
run qwen3 qwen3-nodir-own 2 PATHENS_SHM_RANKS=1 OMPI_MCA_osc_sm_backing_directory="$T/no-such-dir" &&
    same qwen3-serial qwen3-nodir-own
[ "$fails" = 0 ] || exit 1
echo "all mpi_shm checks passed"
