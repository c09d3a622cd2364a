#!/usr/bin/env bash
# mpi_images.sh: image classifiers on the distributed path. A random ViT (pathens_mkmodel) on 400
# real Fashion-MNIST test images, 4 members, importance statistics and ablations, per-example
# values: results.json, curve.csv, members.csv, importance.csv and per_example.msgpack are
# byte-identical for the serial path (no mpirun) and 1, 2, 3, 4 ranks (real mpirun,
# oversubscribed); members split over tasks (run.member_block) give the same numbers; the logit
# combination too. Resume: kill -9 of the coordinator mid-run, and SIGTERM (exit 75), then a
# rerun with another rank count finishes with byte-identical files.
# PATHENS_NOMPI = a pathens built with -DPATHENS_WITH_MPI=OFF (tests/CMakeLists.txt sets it: the
# nompi_build fixture), compared as well: the serial results of both builds are byte-identical.
set -u
: "${PATHENS:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}" "${MPIEXEC:?}"
export PATHENS_FASHION_DIR="${PATHENS_FASHION_DIR:-/usr/share/datasets/fashion-mnist}"
FASHION=$PATHENS_FASHION_DIR
WRITER="${PATHENS_TEST_WRITER:-$(dirname "$PATHENS")/tests/pathens_mkmodel}"
source "$PATHENS_SRC/tests/lib.sh"
need_fashion
[ -x "$WRITER" ] || { echo "FAIL: pathens_mkmodel not found at $WRITER (build it, or set PATHENS_TEST_WRITER)"; exit 1; }
T="$PATHENS_TEST_TMP/mpi_images"; rm -rf "$T"; mkdir -p "$T"
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
export OPENBLAS_NUM_THREADS=1
"$WRITER" vit "$T/vit" --seed 5 >/dev/null || { echo "FAIL: pathens_mkmodel vit"; exit 1; }
printf '[model]\npath = %s/vit/model.safetensors\ntokenizer = none\n[data]\npath = %s/t10k-images-idx3-ubyte.gz\n[pathways]\nmembers = 4\nscheme = unbiased\nratio = 2\n[importance]\nstatistics = 1\nablation = 1\n[run]\nper_example = 1\nbatch = 8\n' \
    "$T" "$FASHION" >"$T/vit.ini"
out="$T/run" # the same run.out every time: it is echoed in results.json
FILES="results.json curve.csv members.csv importance.csv per_example.msgpack"
args=(eval "$T/vit.ini" --quiet --set data.limit=400 --set run.shard=23 --set run.out="$out")
run() { # run NAME RANKS [extra args]: RANKS 0 = no mpirun, "nompi" = the MPI-less build
    local name=$1 n=$2; shift 2
    rm -rf "$out"
    if [ "$n" = 0 ]; then "$PATHENS" "${args[@]}" "$@"
    elif [ "$n" = nompi ]; then "$PATHENS_NOMPI" "${args[@]}" "$@"
    else "$MPIEXEC" --oversubscribe -n "$n" "$PATHENS" "${args[@]}" "$@"; fi
    local rc=$?
    [ $rc = 0 ] || { bad "$name: exit $rc"; return 1; }
    mkdir -p "$T/$name"
    for f in $FILES; do cp "$out/$f" "$T/$name/" 2>/dev/null || bad "$name: no $f"; done
}
same() { # same A B WHAT: every file byte-identical
    local f diffs=""
    for f in $FILES; do cmp -s "$T/$1/$f" "$T/$2/$f" || diffs="$diffs $f"; done
    [ -z "$diffs" ] && ok "$3: $FILES byte-identical" || bad "$3: differ:$diffs $(diff "$T/$1/results.json" "$T/$2/results.json" | head -4)"
}
t0=$(date +%s)

# 1. serial and 1..4 ranks
run serial 0
rank0_computes() { # timing.json of the run just done on $1 ranks: rank 0 computed tasks too, all counted
    local v
    v=$(/usr/bin/python3 -c "
import json,sys
d=json.load(open(sys.argv[1])); r=d['per_rank']
print(len(r)==int(sys.argv[2]) and r[0]['tasks']>0 and r[0]['compute_seconds']>0 and r[0]['role']=='coordinator+worker'
      and sum(x['tasks'] for x in r)==18 or [(x['rank'],x['role'],x['tasks'],x['compute_seconds']) for x in r])" "$out/timing.json" "$1" 2>&1)
    [ "$v" = True ] && ok "$1 ranks: rank 0 computes tasks too (timing.json per_rank[0].tasks > 0; 18 tasks in all)" \
        || bad "$1 ranks: timing.json per_rank (rank, role, tasks, compute s): $v"
}
for n in 1 2 3 4; do
    run "n$n" "$n" && same serial "n$n" "$n ranks vs serial"
    case $n in 2|4) rank0_computes "$n";; esac
done
if [ -n "${PATHENS_NOMPI:-}" ] && run nompi nompi; then # another build: its git_commit line may differ
    sed -i '/"git_commit":/d' "$T/nompi/results.json"; mkdir -p "$T/serial_nc"; cp "$T/serial/"* "$T/serial_nc/"
    sed -i '/"git_commit":/d' "$T/serial_nc/results.json"
    same serial_nc nompi "MPI-less build vs serial (results.json without git_commit)"
fi
v=$(/usr/bin/python3 -c "
import json,sys
d=json.load(open(sys.argv[1])); h=d['importance']['heads']
print(d['dense']['examples']==400 and len(d['members'])==4 and 'ece' in d['ensemble'] and
      all('ablation' in x and 'sampled' in x and 'attention' in x for x in h))" "$T/serial/results.json" 2>&1)
[ "$v" = True ] && ok "the compared results hold 400 images, 4 members, ECE, sampled + attention + ablation importance" \
    || bad "results lack what is compared: $v"

# 2. members split over tasks (2 of 4 per task): byte-identical for any rank count, and the
#    numbers of the unsplit run
run split_serial 0 --set run.member_block=2
for n in 2 3; do run "split_n$n" "$n" --set run.member_block=2 && same split_serial "split_n$n" "member blocks, $n ranks vs serial"; done
v=$(/usr/bin/python3 -c "
import json,sys
a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
print([k for k in a if k != 'config' and a[k] != b[k]] or True)" "$T/serial/results.json" "$T/split_n3/results.json")
[ "$v" = True ] && ok "split members give exactly the unsplit numbers" || bad "split and unsplit differ in: $v"
for f in curve.csv members.csv importance.csv per_example.msgpack; do
    cmp -s "$T/serial/$f" "$T/split_n3/$f" || bad "split members: $f differs from the unsplit run"
done

# 3. the logit combination (members in one task)
run logit_serial 0 --set pathways.combine=logit
run logit_n3 3 --set pathways.combine=logit && same logit_serial logit_n3 "logit combination, 3 ranks vs serial"

# 4. resume: a larger run, kill -9 of the coordinator mid-run, then SIGTERM (exit 75)
args=(eval "$T/vit.ini" --quiet --set data.limit=1500 --set run.shard=15 --set importance.ablation=0
      --set run.out="$out")
tasks=100
run big_ref 0
wait_records() { # until the journal holds at least $1 task records (or the job ended)
    for i in $(seq 1 600); do
        [ "$(journal_records)" -ge "$1" ] && return 0
        kill -0 "$job" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
resume() { # resume WHAT RANKS
    "$MPIEXEC" --oversubscribe -n "$2" "$PATHENS" "${args[@]}"; local rc=$?
    [ $rc = 0 ] || { bad "$1: rerun exit $rc"; return; }
    mkdir -p "$T/$1"; for f in $FILES; do cp "$out/$f" "$T/$1/" 2>/dev/null; done
    same big_ref "$1" "$1: rerun on $2 ranks vs an uninterrupted serial run"
}
rm -rf "$out"
"$MPIEXEC" --oversubscribe -n 2 "$PATHENS" "${args[@]}" 2>"$T/err_kill" & job=$!
if wait_records 4; then kill -9 "$(cat "$out/coordinator.pid")" && ok "killed the coordinator (kill -9) after $(journal_records) tasks"
else bad "the run ended before 4 tasks were journaled"; fi
wait "$job"; rc=$?
[ $rc != 0 ] && ok "mpirun reports the dead coordinator (exit $rc)" || bad "mpirun exit 0 after kill -9"
k=$(journal_records)
[ "$k" -lt "$tasks" ] && ok "the run was interrupted ($k of $tasks tasks journaled)" || bad "every task finished before the kill"
[ ! -e "$out/results.json" ] && ok "no results.json from the killed run" || bad "results.json after kill -9"
resume "coordinator_kill" 3

rm -rf "$out"
"$MPIEXEC" --oversubscribe -n 3 "$PATHENS" "${args[@]}" 2>"$T/err_term" & job=$!
wait_records 3 && kill -TERM "$(cat "$out/coordinator.pid")"
wait "$job"; rc=$?
[ $rc = 75 ] && ok "SIGTERM to the coordinator: exit 75 after $(journal_records) of $tasks tasks" || bad "SIGTERM gave exit $rc"
resume "sigterm" 2

echo "$(( $(date +%s) - t0 )) s, $fails failure(s)"
[ "$fails" = 0 ]
