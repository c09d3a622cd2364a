#!/usr/bin/env bash
# bench/bench_pss.sh BUILD_DIR [MODEL_DIR]: memory per rank of `pathens eval` on a BF16 model, with
# the converted weights in one MPI shared window per node (mpi/shm.c) and without
# (PATHENS_SHM_RANKS=1: every rank converts its own copy, the code path of every release before).
# The model: a random-weight Llama folder in BF16 (hidden 768, 8 layers, 12 heads, MLP 2048,
# vocabulary 32000, untied head: 106M parameters, a 212 MB file, 425 MB once converted to float32),
# written by tests/hf_oracle.py's safetensors writer into MODEL_DIR (default
# ${TMPDIR:-/tmp}/pathens-bench-pss-llama, made once and reused; never committed). Each run: byte
# tokens of 8 TinyStories documents (data/tinystories_val.txt), context 64, 1 member, one document
# per task. While it runs, /proc/PID/smaps_rollup of every rank is read every 0.1 s (all ranks at
# one moment = a sample); printed is the sample with the largest sum of Pss over the ranks (Pss: a
# process's share of every page it maps; a page mapped by 4 processes counts 1/4 in each, so the sum
# is what the node holds for the job): each rank's Pss, the sums of Pss and Rss, and the Pss split
# into anonymous, file (the checkpoint's mmap) and shmem (the window). The results.json of the three runs must be byte-identical (checked).
# Heavy: 4 ranks of a 106M model; run it niced on a quiet machine.
set -euo pipefail
BUILD=${1:?usage: bench/bench_pss.sh BUILD_DIR [MODEL_DIR]}
SRC=$(cd "$(dirname "$0")/.." && pwd)
PATHENS=$(cd "$BUILD" && pwd)/pathens
MODEL=${2:-${TMPDIR:-/tmp}/pathens-bench-pss-llama}
DATA=$SRC/data/tinystories_val.txt
[ -r "$DATA" ] || { echo "bench_pss: $DATA is missing: run tools/fetch-data.sh" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ ! -r "$MODEL/model.safetensors" ]; then
    echo "writing the BF16 model to $MODEL (once)" >&2
    mkdir -p "$MODEL"
    /usr/bin/python3 - "$SRC/tests" "$MODEL" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import torch
import hf_oracle as H
p = dict(C=768, L=8, NH=12, NKV=12, I=2048, V=32000, P=256, dtype="BF16", shards=1, tied=False,
         theta=10000.0, scaling=None)
cfg = H.make_config("llama", p)
gen = torch.Generator().manual_seed(7)
tensors = [(n, (1.0 + 0.1 * torch.randn(s, generator=gen)) if k == "norm" else 0.02 * torch.randn(s, generator=gen))
           for n, s, k in H.family_tensors(cfg)]
import json, os
with open(os.path.join(sys.argv[2], "config.json"), "w") as f:
    json.dump(cfg, f, indent=2)
H.write_weights(sys.argv[2], tensors, {n: "BF16" for n, _ in tensors}, 1)
print(f"{sum(t.numel() for _, t in tensors)} parameters", file=sys.stderr)
PY
fi
printf '[model]\npath = %s\ntokenizer = bytes\n[data]\npath = %s\nlimit = 8\ncontext = 64\n[pathways]\nmembers = 1\nscheme = random-k\nratio = 2\n[run]\nshard = 1\n' \
    "$MODEL" "$DATA" > "$TMP/pss.ini"

# run NAME RANKS [env...]: the eval under mpirun, its ranks' smaps_rollup sampled until it exits
run() {
    local name=$1 n=$2; shift 2
    rm -rf "$TMP/run" # the same run.out every time: results.json echoes it
    env "$@" mpirun --oversubscribe -n "$n" "$PATHENS" eval "$TMP/pss.ini" --set run.out="$TMP/run" \
        > "$TMP/$name.log" 2>&1 &
    local pid=$!
    /usr/bin/python3 - "$pid" "$name" "$n" > "$TMP/$name.pss" <<'PY'
import os, sys, time
mp, name, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
keys = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem")
best, best_sum = None, -1  # the sample (every rank at one moment) with the largest sum of Pss
def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            if int(st.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out
while os.path.exists(f"/proc/{mp}") and open(f"/proc/{mp}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
    snap = []
    for c in children(mp):
        try:
            if os.readlink(f"/proc/{c}/exe").endswith("/pathens"):
                v = dict.fromkeys(keys, 0)
                for line in open(f"/proc/{c}/smaps_rollup"):
                    k, _, rest = line.partition(":")
                    if k in keys:
                        v[k] = int(rest.split()[0])
                snap.append(v)
        except OSError:
            pass
    if len(snap) == n and sum(v["Pss"] for v in snap) > best_sum:
        best, best_sum = snap, sum(v["Pss"] for v in snap)
    time.sleep(0.1)
if best is None:
    print(f"| {name} | {n} | never sampled all {n} ranks at once | | | |")
    sys.exit()
ranks = sorted(best, key=lambda p: -p["Pss"])
mb = lambda k: k / 1024.0
per = " / ".join(f"{mb(p['Pss']):.0f}" for p in ranks)
tot = lambda k: sum(p[k] for p in ranks)
print(f"| {name} | {n} | {per} | {mb(tot('Pss')):.0f} | {mb(tot('Rss')):.0f} | "
      f"{mb(tot('Pss_Anon')):.0f} / {mb(tot('Pss_File')):.0f} / {mb(tot('Pss_Shmem')):.0f} |")
PY
    wait "$pid" || { echo "bench_pss: $name failed:" >&2; tail -5 "$TMP/$name.log" >&2; exit 1; }
    cat "$TMP/$name.pss"
    cp "$TMP/run/results.json" "$TMP/$name.json"
}
echo "| run | ranks | Pss per rank (MiB) | sum of Pss (MiB) | sum of Rss (MiB) | Pss anon / file / shmem (MiB) |"
echo "|---|---|---|---|---|---|"
run "1 rank" 1
run "4 ranks, a copy per rank (PATHENS_SHM_RANKS=1)" 4 PATHENS_SHM_RANKS=1
run "4 ranks, one shared copy" 4
grep -h "weights:" "$TMP"/*.log | sed 's/^ */    /' >&2
for r in "4 ranks, a copy per rank (PATHENS_SHM_RANKS=1)" "4 ranks, one shared copy"; do
    cmp -s "$TMP/1 rank.json" "$TMP/$r.json" || { echo "bench_pss: results.json of '$r' differs from 1 rank" >&2; exit 1; }
done
echo "results.json byte-identical in the three runs" >&2
