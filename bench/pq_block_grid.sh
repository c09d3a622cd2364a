#!/usr/bin/env bash
# pq_block_grid.sh: the per-query attention's block shape (src/kernels.c: PQ_QBLOCK queries per
# block x PQ_CHUNK_FLOATS floats of K or V rows per key chunk) timed for random-k lambda = inf:
# one bench_attention build per shape (build-pqgrid/Q_C, -DPQ_QBLOCK=Q -DPQ_CHUNK_FLOATS=C), then
# ROUNDS rounds that run every shape in turn (interleaved, so a drift of the machine hits all
# alike), T 1024 and 2048, causal and not, rho 2/4/8, thread CPU time, --no-dense; prints each
# point's median ms relative to the shipped shape 64_4096 (docs/performance.md, "Where item 5
# stops"). Every shape computes the same bits (the tests hold for any PQ_QBLOCK in 1..64).
#   bench/pq_block_grid.sh [ROUNDS (3)] [SHAPES ("64_4096 32_4096 16_4096 64_2048 32_2048 16_2048")]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shapes=${2:-"64_4096 32_4096 16_4096 64_2048 32_2048 16_2048"}
case " $shapes " in *" 64_4096 "*) ;; *) echo "pq_block_grid.sh: SHAPES must include the shipped 64_4096" >&2; exit 1 ;; esac
out=build-pqgrid; mkdir -p "$out"
for s in $shapes; do
    q=${s%_*} c=${s#*_}
    cmake -S . -B "$out/$s" -DCMAKE_BUILD_TYPE=Release -DPATHENS_WITH_MPI=OFF \
        -DCMAKE_C_FLAGS="-DPQ_QBLOCK=$q -DPQ_CHUNK_FLOATS=$c" >/dev/null
    cmake --build "$out/$s" -j2 --target bench_attention >/dev/null
done
export OPENBLAS_NUM_THREADS=1
raw="$out/grid.txt"; : >"$raw"
for r in $(seq 1 "$rounds"); do
    for s in $shapes; do
        for T in 1024 2048; do
            for c in 0 1; do
                "$out/$s/bench_attention" --cpu --T $T --causal $c --scheme 'random-k(l=inf' --reps 5 --min-time 0.2 \
                    --no-dense | awk -v s="$s" -F'|' '/^\| random-k/ && $5 + 0 > 1 { print s, $3 + 0, $4 + 0, $5 + 0, $6 + 0 }' >>"$raw"
            done
        done
    done
done
/usr/bin/python3 - "$raw" $shapes <<'PY'
import collections, statistics, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    s, c, T, rho, ms = line.split()
    d[(s, c, T, rho)].append(float(ms))
shapes = sys.argv[2:]
print("median ms relative to 64_4096 (queries per block _ floats per key chunk)")
print("| causal | T | rho | " + " | ".join(shapes) + " | 64_4096 ms |")
print("|---" * (len(shapes) + 4) + "|")
for k in sorted({k[1:] for k in d}, key=lambda k: (k[0], int(k[1]), int(k[2]))):
    base = statistics.median(d[("64_4096",) + k])
    cells = " | ".join(f"{statistics.median(d[(s,) + k]) / base:.3f}" for s in shapes)
    print(f"| {k[0]} | {k[1]} | {k[2]} | {cells} | {base:.1f} |")
PY
