#!/usr/bin/env bash
# oracle_runs.sh LAUNCHER...: the numbers a user sees, checked against independent oracles.
# Sourced-free helper of cli_oracle.sh (LAUNCHER serial: the binary as is, no mpirun) and
# mpi_oracle.sh (mpi1, mpi3: real mpirun with 1 and 3 ranks; nompi: $PATHENS_NOMPI, a build
# with -DPATHENS_WITH_MPI=OFF). Every run goes through `pathens eval` (in the MPI build that is
# mpi/dist.c, also without mpirun) and is checked by tests/oracle.py, which recomputes from the
# model files alone (PyTorch forward, its own tokenizer, its own copy of the pathway sampler):
#   lm   stories260K on the first 12 TinyStories documents, shards of 5 (two full shards and a
#        short one), 4 unbiased members: dense, every member, member_mean, the curve, the
#        ensemble, KL, top-1 agreement, kept connections, minus_dense (sign and stderr), and the
#        per-document per_example.msgpack; the same with members split over tasks
#        (run.member_block = 2) and with combine = logit;
#        ratio 1: the default prob ensemble equals dense, member for member, exactly;
#        window (a static scheme), 3 members: identical members mix to themselves, exactly;
#        golden: the text of golden/stories260K_lily.txt, dense NLL = llama2.c's run.c value.
#   vit  the shipped models/fashion-vit on 300 Fashion-MNIST test images, 4 unbiased members:
#        accuracy, NLL, ECE of dense, members, curve and ensemble, KL, agreement,
#        nll_minus_dense / accuracy_minus_dense, per-image per_example.msgpack; the same with
#        run.member_block = 2 (the coordinator mixes the staged class probabilities) and with
#        combine = logit.
# ORACLE_PARTS (default "lm vit") restricts the parts: lm, vit (all of their parts), or some of
# lm_main lm_split lm_logit lm_r1 lm_window lm_replay lm_golden vit_main vit_split vit_logit
# (the mutation check runs the one part that kills a mutant).
set -u
: "${PATHENS:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}" "${PATHENS_DATA_DIR:?}"
source "$PATHENS_SRC/tests/lib.sh"
need_data stories260K.bin tok512.bin tinystories_val.txt
need_fashion
FASHION=$PATHENS_FASHION_DIR
PY=/usr/bin/python3
ORACLE="$PY $PATHENS_SRC/tests/oracle.py"
launchers=("$@")
[ ${#launchers[@]} -gt 0 ] || { echo "usage: oracle_runs.sh serial|mpi1|mpi3|nompi ..."; exit 2; }
T="$PATHENS_TEST_TMP/oracle_$(printf '%s_' "${launchers[@]}")"; rm -rf "$T"; mkdir -p "$T"
fails=0
selected=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
export OPENBLAS_NUM_THREADS=1
$PY -c "import torch" 2>/dev/null || { echo "FAIL: PyTorch not importable by $PY (python3-torch, tools/deps.sh)"; exit 1; }

launch() { # launch LAUNCHER ARGS...: pathens through that launcher
    local l=$1; shift
    case $l in
    serial) "$PATHENS" "$@" ;;
    mpi1) "${MPIEXEC:?}" --oversubscribe -n 1 "$PATHENS" "$@" ;;
    mpi3) "${MPIEXEC:?}" --oversubscribe -n 3 "$PATHENS" "$@" ;;
    nompi) "${PATHENS_NOMPI:?}" "$@" ;;
    *) echo "unknown launcher $l"; return 2 ;;
    esac
}
dirs=()
runall() { # runall NAME CONFIG [--set ...]: every launcher; dirs = the run folders that exist
    local name=$1 ini=$2 l rc; shift 2
    dirs=()
    selected=$((selected + 1))
    for l in "${launchers[@]}"; do
        local out="$T/$name-$l"
        launch "$l" eval "$ini" --quiet --set run.out="$out" "$@" 2>"$out.err"; rc=$?
        if [ $rc = 0 ] && [ -f "$out/results.json" ]; then dirs+=("$out")
        else bad "$name ($l): exit $rc: $(head -3 "$out.err")"; fi
    done
    [ ${#dirs[@]} -gt 0 ]
}
t0=$(date +%s)
oracle() { # oracle WHAT MODE ARGS...: tests/oracle.py over $dirs
    local what=$1; shift
    if $ORACLE "$@" "${dirs[@]}" >"$T/oracle.out" 2>&1; then ok "$what: oracle agrees ($(grep -c '^ok' "$T/oracle.out") run(s))"
    else bad "$what: the oracle disagrees:"; head -25 "$T/oracle.out"; fi
}
json() { $PY -c "import json,sys; d=json.load(open(sys.argv[1]+'/results.json')); print($2)" "$1"; } # json DIR EXPR

parts=${ORACLE_PARTS:-lm vit}
want() { # want PART: in ORACLE_PARTS, itself or its group (lm_x: lm)
    local p
    for p in $parts; do [ "$p" = "$1" ] || [ "$p" = "${1%%_*}" ] && return 0; done
    return 1
}
D=$PATHENS_DATA_DIR
if want lm_main || want lm_split || want lm_logit || want lm_r1 || want lm_window || want lm_replay || want lm_golden; then
    LM=(--model "$D/stories260K.bin" --tokenizer "$D/tok512.bin" --text "$D/tinystories_val.txt")
    printf '[model]\npath = %s\ntokenizer = %s\n[data]\npath = %s\nlimit = 12\n[run]\nshard = 5\nbatch = 4\nper_example = 1\n[pathways]\nscheme = unbiased\nratio = 4\nmembers = 4\nseed = 77\n' \
        "$D/stories260K.bin" "$D/tok512.bin" "$D/tinystories_val.txt" >"$T/lm.ini"
    d1=()
    want lm_main && runall lm "$T/lm.ini" && d1=("${dirs[@]}")
    want lm_split && runall lm_split "$T/lm.ini" --set run.member_block=2 && d1+=("${dirs[@]}")
    dirs=("${d1[@]}")
    [ ${#dirs[@]} -gt 0 ] && oracle "lm: 12 documents, 4 unbiased members (in one task / split over tasks)" lm "${LM[@]}"
    want lm_logit && runall lm_logit "$T/lm.ini" --set pathways.combine=logit --set pathways.members=3 && oracle "lm: combine = logit" lm "${LM[@]}"
    # ratio 1: every member is the dense model, so is their mixture (bit for bit)
    if want lm_r1 && runall lm_r1 "$T/lm.ini" --set pathways.ratio=1 --set pathways.members=3 --set data.limit=4; then
        oracle "lm: ratio 1" lm "${LM[@]}"
        for d in "${dirs[@]}"; do
            v=$(json "$d" "[k for k in ('nll_per_token','nll_per_token_stderr','tokens') if not (d['ensemble'][k]==d['dense'][k] and abs(d['member_mean'][k]-d['dense'][k])<=1e-12*d['dense'][k] and all(m[k]==d['dense'][k] for m in d['members']+d['curve']))] or (d['ensemble']['minus_dense']['mean']==0 and 'same')")
            [ "$v" = same ] && ok "lm ratio 1 ($(basename "$d")): ensemble, members, curve = dense exactly (member_mean to 1e-12); minus_dense 0" \
                || bad "lm ratio 1 ($(basename "$d")): differ from dense in: $v"
        done
    fi
    # window: deterministic, so 3 members are one sub-model; their mixture is that sub-model
    if want lm_window && runall lm_window "$T/lm.ini" --set pathways.scheme=window --set pathways.members=3 --set data.limit=4; then
        oracle "lm: window (static) members" lm "${LM[@]}"
        for d in "${dirs[@]}"; do
            v=$(json "$d" "[k for k in ('nll_per_token','nll_per_token_stderr','kl_from_dense','top1_agreement') if not all(abs(m[k]-d['members'][0][k])<=1e-12*abs(m[k]) for m in d['members'])] + [k for k in ('nll_per_token','nll_per_token_stderr') if not all(abs(x[k]-d['members'][0][k])<=1e-12*x[k] for x in d['curve']+[d['ensemble'],d['member_mean']])] or 'same'")
            [ "$v" = same ] && ok "lm window ($(basename "$d")): 3 identical members, ensemble = curve = member_mean = member" \
                || bad "lm window ($(basename "$d")): identical members do not mix to themselves: $v"
        done
    fi
    # journal replay: a run that finished every task but could not write results.json (exit 3,
    # /dev/full under its temporary name) keeps its journal; cut to its header and the first 2 of
    # its 3 task records, a rerun (the last launcher of this build) replays those 2, computes only the third,
    # and gives what the oracle computes
    out="$T/lm_replay"; mkdir -p "$out"
    want lm_replay && bash -c 'ln -s /dev/full "$1/results.json.tmp.$$" && shift && exec "$@"' _ "$out" "$PATHENS" eval "$T/lm.ini" \
        --quiet --set run.out="$out" 2>"$out.err0"; rc=$?
    if ! want lm_replay; then :
    elif selected=$((selected + 1)); [ $rc = 3 ] && [ -f "$out/journal.msgpack" ]; then
        kept=$($PY - "$out/journal.msgpack" 2 <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
p, recs = 0, []
while p + 12 <= len(b) and b[p:p + 4] == b"PJR1":
    n = struct.unpack("<I", b[p + 4:p + 8])[0]
    recs.append(b[p:p + 12 + n]); p += 12 + n
keep = 1 + int(sys.argv[2])  # the header, then task records
open(sys.argv[1], "wb").write(b"".join(recs[:keep]))
print(len(recs[:keep]) - 1, len(recs) - 1)
PY
)
        read -r k total <<<"$kept"
        l=serial; for x in "${launchers[@]}"; do [ "$x" = nompi ] || l=$x; done # the last one of this build
        launch "$l" eval "$T/lm.ini" --quiet --set run.out="$out" 2>"$out.err1"; rc=$?
        if [ $rc = 0 ] && [ "$total" = 3 ] && [ "$k" = 2 ]; then
            v=$($PY -c "import json,sys; t=json.load(open(sys.argv[1])); print(t['tasks_replayed_from_journal'], sum(r['tasks'] for r in t['per_rank']))" "$out/timing.json")
            [ "$v" = "2 1" ] && ok "journal replay ($l): 2 of 3 tasks replayed from the journal, 1 computed" \
                || bad "journal replay ($l): replayed / computed tasks = $v, expected 2 / 1"
            dirs=("$out"); oracle "lm: a rerun that replays 2 journaled tasks" lm "${LM[@]}"
        else bad "journal replay ($l): rerun exit $rc, journal cut to $k of $total task records: $(head -2 "$out.err1")"; fi
    elif [ $rc = 3 ] && ! ldd "$PATHENS" 2>/dev/null | grep -q libmpi; then
        echo "SKIP journal replay: an MPI-less build keeps no journal"
    elif [ $rc = 3 ]; then bad "journal replay: the failed run (exit 3) left no $out/journal.msgpack to resume from"
    else bad "journal replay: the run with results.json on /dev/full: exit $rc (expected 3): $(head -2 "$out.err0")"; fi
    # llama2.c's own reference values (data/golden, made by run.c)
    G="$D/golden/stories260K_lily.txt"
    if ! want lm_golden; then :
    elif [ -r "$G" ]; then
        $ORACLE text "$G" "$T/lily.txt"
        if runall golden "$T/lm.ini" --set data.path="$T/lily.txt" --set pathways.members=0; then
            if $ORACLE golden "$G" "${dirs[@]}" >"$T/golden.out"; then ok "llama2.c's reference NLL: $(head -1 "$T/golden.out" | cut -c6-)"
            else bad "golden:"; cat "$T/golden.out"; fi
        fi
    else
        [ "${CI:-}" = true ] && bad "$G missing under CI" || echo "SKIP golden: $G missing (tools/fetch-data.sh)"
    fi
fi
if want vit_main || want vit_split || want vit_logit; then
    VIT=(--model "$PATHENS_SRC/models/fashion-vit" --images "$FASHION/t10k-images-idx3-ubyte.gz")
    printf '[model]\npath = %s/models/fashion-vit/model.safetensors\n[data]\npath = %s/t10k-images-idx3-ubyte.gz\nlimit = 300\n[run]\nshard = 64\nbatch = 32\nper_example = 1\n[pathways]\nscheme = unbiased\nratio = 4\nmembers = 4\nseed = 1234\n[importance]\nablation = 1\n' \
        "$PATHENS_SRC" "$FASHION" >"$T/vit.ini"
    d1=()
    want vit_main && runall vit "$T/vit.ini" && d1=("${dirs[@]}")
    want vit_split && runall vit_split "$T/vit.ini" --set run.member_block=2 --set importance.ablation=0 && d1+=("${dirs[@]}")
    dirs=("${d1[@]}")
    [ ${#dirs[@]} -gt 0 ] && oracle "vit: 300 images, 4 unbiased members (in one task / split over tasks)" vit "${VIT[@]}"
    want vit_logit && runall vit_logit "$T/vit.ini" --set pathways.combine=logit --set data.limit=100 --set importance.ablation=0 && oracle "vit: combine = logit" vit "${VIT[@]}"
fi
[ $selected -gt 0 ] || bad "ORACLE_PARTS=$parts selected nothing to check"
echo "$(( $(date +%s) - t0 )) s, $selected configuration(s), $fails failure(s)"
[ "$fails" = 0 ]
