#!/usr/bin/env bash
# results_stories.sh: the docs/results.md grid on stories260K / tinystories_val.txt:
# schemes x ratio in {2, 4, 8}, one K = 16 run per point (K = 1 and 4 are points of its
# ensemble-size curve), printed as a markdown table with 95% intervals.
#   bench/results_stories.sh [BUILD_DIR] [LIMIT] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}; limit=${2:-800}; out=${3:-runs/results_stories}
mkdir -p "$out"
for scheme in unbiased local random-k window head-drop; do
    for ratio in 2 4 8; do
        k=16; [ "$scheme" = window ] && k=1   # deterministic: every member is the same sub-model
        dir="$out/$scheme-r$ratio"
        [ -f "$dir/results.json" ] && continue
        OPENBLAS_NUM_THREADS=1 "$build/pathens" eval configs/stories260k.ini --quiet \
            --set data.limit="$limit" --set pathways.scheme="$scheme" --set pathways.ratio="$ratio" \
            --set pathways.members=$k --set pathways.lambda=16 --set run.out="$dir"
    done
done
/usr/bin/python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def ci(o, key='nll_per_token'):
    lo, hi = o[key + '_ci95']
    return f"{o[key]:.4f} [{lo:.4f}, {hi:.4f}]"
rows = []
dense = None
for scheme in ['unbiased', 'local', 'random-k', 'window', 'head-drop']:
    for ratio in [2, 4, 8]:
        d = json.load(open(os.path.join(out, f'{scheme}-r{ratio}', 'results.json')))
        dense = d['dense']
        K = len(d['curve'])
        pick = lambda k: d['curve'][min(k, K) - 1]
        md = d['ensemble']['minus_dense']
        kept = sum(m['kept_fraction'] for m in d['members']) / len(d['members'])
        rows.append(f"| {scheme} | {ratio} | {kept:.3f} | {ci(d['member_mean'])} | {ci(pick(1))} | {ci(pick(4))} | "
                    f"{ci(pick(16))} | {md['mean']:+.4f} [{md['ci95'][0]:+.4f}, {md['ci95'][1]:+.4f}] |")
print(f"dense: {ci(dense)} nats/token over {dense['tokens']} tokens, {dense['units']} documents\n")
print("| scheme | ρ | kept fraction | mean member | K = 1 | K = 4 | K = 16 | K = 16 minus dense |")
print("|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
PY
