#!/usr/bin/env bash
# bench_ensemble.sh: self-ensemble evaluation throughput, pathens vs the PyTorch peer
# (bench/ensemble_peer.py), same model, same documents, same members and ratio, 1 thread each.
#
#   bench/bench_ensemble.sh [BUILD_DIR]      (default build/, relative to the repository root;
#                                            builds nothing)
#   env: LIMIT (documents, default 60), MEMBERS (4), RATIO (4), SCHEME (unbiased; or random-k,
#        lambda = inf), PYTHON (/usr/bin/python3),
#        REPS (runs of each side, fastest counts; default 3),
#        PATHENS_EXTRA (more pathens eval arguments, e.g. "--set importance.statistics=0")
#
# tokens/s on both sides = scored tokens x (1 + K) / evaluation seconds (pathens: timing.json's
# eval_seconds, model and data loading excluded; PyTorch: the evaluation loop, loading excluded),
# in wall time and in CPU time of the process (timing.json's eval_cpu_seconds; process_time).
# Goals: pathens >= 3x the PyTorch peer (unbiased); >= 8x with SCHEME=random-k (issue 13).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-build}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
LIMIT="${LIMIT:-60}"
MEMBERS="${MEMBERS:-4}"
RATIO="${RATIO:-4}"
SCHEME="${SCHEME:-unbiased}"
case "$SCHEME" in unbiased|random-k) ;; *) echo "bench_ensemble: SCHEME=$SCHEME: use unbiased or random-k" >&2; exit 1 ;; esac
PYTHON="${PYTHON:-/usr/bin/python3}"
REPS="${REPS:-3}"
PATHENS_EXTRA="${PATHENS_EXTRA:-}"

for exe in pathens dump_tokens; do
    if [ ! -x "$BUILD/$exe" ]; then
        echo "bench_ensemble: $BUILD/$exe not found; build first (cmake -S . -B build && cmake --build build)" >&2
        exit 1
    fi
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/bench_ensemble.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

json_get() { # json_get FILE python-expression-on-d
    "$PYTHON" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}

echo "bench_ensemble: $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1), 1 thread," \
     "$LIMIT documents, K=$MEMBERS members, $SCHEME rho=$RATIO${PATHENS_EXTRA:+, pathens $PATHENS_EXTRA}"

# ---- pathens (best of REPS runs by eval_seconds) -----------------------------------------------
best=""
for r in $(seq 1 "$REPS"); do
    out="$TMP/run$r"
    t0=$(date +%s.%N)
    "$BUILD/pathens" eval "$ROOT/configs/stories260k.ini" --set data.limit="$LIMIT" \
        --set pathways.members="$MEMBERS" --set pathways.ratio="$RATIO" --set pathways.scheme="$SCHEME" \
        --set run.out="$out" --threads 1 --quiet $PATHENS_EXTRA
    t1=$(date +%s.%N)
    es=$(json_get "$out/timing.json" 'd["eval_seconds"]')
    echo "  pathens run $r: eval $(printf %.3f "$es") s (process wall $(echo "$t1 - $t0" | bc -l | sed 's/^\./0./' | cut -c1-6) s)"
    if [ -z "$best" ] || [ "$(echo "$es < $(json_get "$best/timing.json" 'd["eval_seconds"]')" | bc -l)" = 1 ]; then
        best="$out"
    fi
done
P_EVAL=$(json_get "$best/timing.json" 'd["eval_seconds"]')
P_CORE=$(json_get "$best/timing.json" 'd["openblas_core"]')
P_TOK=$(json_get "$best/results.json" 'd["dense"]["tokens"]')
P_DENSE=$(json_get "$best/results.json" 'repr(d["dense"]["nll_per_token"])')
P_ENS=$(json_get "$best/results.json" 'repr(d["ensemble"]["nll_per_token"])')
P_MM=$(json_get "$best/results.json" 'repr(d["member_mean"]["nll_per_token"])')
P_TPS=$("$PYTHON" -c "print($P_TOK * (1 + $MEMBERS) / $P_EVAL)")
P_CPU=$(json_get "$best/timing.json" 'd["eval_cpu_seconds"]')
P_CTPS=$("$PYTHON" -c "print($P_TOK * (1 + $MEMBERS) / $P_CPU)")

# ---- PyTorch peer on the same documents ----------------------------------------------------------
"$BUILD/dump_tokens" --limit "$LIMIT" > "$TMP/tokens.txt"
"$PYTHON" "$ROOT/bench/ensemble_peer.py" --tokens "$TMP/tokens.txt" --members "$MEMBERS" --ratio "$RATIO" --scheme "$SCHEME" \
    --threads 1 --reps "$REPS" --ref-nll "$P_DENSE" | tee "$TMP/peer.txt"
T_TPS=$(sed -n 's/^PEER_TOKENS_PER_SECOND //p' "$TMP/peer.txt")
T_DENSE=$(sed -n 's/^PEER_DENSE_NLL //p' "$TMP/peer.txt")
T_CTPS=$(sed -n 's/^PEER_TOKENS_PER_CPU_SECOND //p' "$TMP/peer.txt")

"$PYTHON" - "$P_TOK" "$MEMBERS" "$P_EVAL" "$P_TPS" "$T_TPS" "$P_DENSE" "$T_DENSE" "$P_MM" "$P_ENS" "$P_CORE" "$SCHEME" "$P_CTPS" "$T_CTPS" <<'EOF'
import sys
tok, K, ev, ptps, ttps, pd, td, pmm, pens, core, scheme, pc, tc = sys.argv[1:]
tok, K, ev, ptps, ttps, pd, td = int(float(tok)), int(K), float(ev), float(ptps), float(ttps), float(pd), float(td)
print()
print(f"| side | scored tokens | K | tokens/s (tokens x (1+K) / s) | dense NLL |")
print(f"|---|---|---|---|---|")
print(f"| pathens (OpenBLAS {core}, 1 thread) | {tok} | {K} | {ptps:,.0f} | {pd:.7f} |")
print(f"| PyTorch peer (1 thread) | {tok} | {K} | {ttps:,.0f} | {td:.7f} |")
print()
print(f"pathens: eval {ev:.3f} s; member mean NLL {float(pmm):.7f}, ensemble NLL {float(pens):.7f}")
print(f"dense NLL |pathens - PyTorch| = {abs(pd - td):.2e} ({'ok' if abs(pd - td) < 1e-5 else 'MISMATCH'} at 1e-5)")
r = ptps / ttps
goal = 8 if scheme == "random-k" else 3
rc = float(pc) / float(tc)
print(f"ratio pathens / PyTorch: {r:.2f}x tokens/s (wall), {rc:.2f}x tokens per CPU second "
      f"(pathens {float(pc):,.0f}, PyTorch {float(tc):,.0f})  (goal >= {goal}x: {'met' if min(r, rc) >= goal else 'NOT met'})")
EOF
