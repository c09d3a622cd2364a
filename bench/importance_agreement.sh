#!/usr/bin/env bash
# importance_agreement.sh: does the sampled (drop-one) importance agree with single-component
# ablation, and at what cost? For stories260K on 300 TinyStories documents
# (configs/stories260k-importance.ini) and the shipped ViT on 2,000 Fashion-MNIST test images
# (configs/fashion-vit.ini), one `pathens eval` each with importance.ablation = 2 (every head,
# layer and (layer, distance band) also dropped alone on every unit: the reference) prints
#   - Spearman rank correlation of sampled and ablation importance over the heads (and the bands),
#   - coverage: the share of the sampled 95% intervals that contain the ablation value,
#   - the passes the sampled estimate used against the ablation's.
# The sampled numbers are those the configs give by themselves (the ablations add passes, they
# change none of the sampled ones: each pass is a function of the model, the unit and the design).
#
#   bench/importance_agreement.sh [BUILD_DIR]     (default build/; builds nothing)
#   env: STORIES_LIMIT (documents, default 300), VIT_LIMIT (images, default 2000),
#        PATHENS_EXTRA (more pathens eval arguments, e.g. "--set importance.units=100"),
#        KEEP (a folder to keep the runs in; default: a temporary one, removed)
# Goals (issue 15): Spearman >= 0.85 over heads, coverage >= 90%, passes <= half of ablation's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-build}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
STORIES_LIMIT="${STORIES_LIMIT:-300}"
VIT_LIMIT="${VIT_LIMIT:-2000}"
PATHENS_EXTRA="${PATHENS_EXTRA:-}"
PYTHON="${PYTHON:-/usr/bin/python3}"
if [ ! -x "$BUILD/pathens" ]; then
    echo "importance_agreement: $BUILD/pathens not found; build first (cmake -S . -B build && cmake --build build)" >&2
    exit 1
fi
for f in stories260K.bin tok512.bin tinystories_val.txt; do
    [ -s "$ROOT/data/$f" ] || { echo "importance_agreement: data/$f missing: run tools/fetch-data.sh" >&2; exit 1; }
done
OUT="${KEEP:-}"
if [ -z "$OUT" ]; then OUT="$(mktemp -d "${TMPDIR:-/tmp}/pe-impagree.XXXXXX")"; trap 'rm -rf "$OUT"' EXIT; fi
mkdir -p "$OUT"

run() { # run NAME CONFIG LIMIT: one eval with the reference ablations
    local cmd=("$BUILD/pathens" eval "configs/$2" --quiet --set data.limit="$3" --set importance.ablation=2
               --set pathways.members=0 --set run.out="$OUT/$1")
    # shellcheck disable=SC2206
    cmd+=($PATHENS_EXTRA)
    echo "\$ ${cmd[*]}" | sed "s|$BUILD/|build/|; s|$OUT/|OUT/|"
    (cd "$ROOT" && "${cmd[@]}")
}
run stories stories260k-importance.ini "$STORIES_LIMIT"
run vit fashion-vit.ini "$VIT_LIMIT"

"$PYTHON" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
ok = True
print("%-30s %-6s | %-9s %-9s %-9s | %-9s %-9s %-9s | %-12s" % ("model", "units", "heads rho", "coverage", "passes",
      "bands rho", "coverage", "layers rho", "passes l+b"))
for name, label in (("stories", "stories260K, %d documents"), ("vit", "fashion-vit, %d images")):
    r = json.load(open("%s/%s/results.json" % (out, name)))
    i, n = r["importance"], r["data"].get("sequences", r["data"].get("images"))
    s, a = i["sampled"], i.get("agreement", {})
    h, b, l = a.get("heads", {}), a.get("bands", {}), a.get("layers", {})
    fmt = lambda x: "n/a" if x is None else "%.3f" % x
    print("%-30s %-6s | %-9s %-9s %-9s | %-9s %-9s %-9s | %-12s" % (
        label % n, r["config"]["importance"]["units"], fmt(h.get("spearman")), fmt(h.get("coverage")),
        "%d of %d" % (s["passes_heads"], s["ablation_passes_heads"]), fmt(b.get("spearman")), fmt(b.get("coverage")),
        fmt(l.get("spearman")), "%d of %d" % (s["passes_layers_bands"], s["ablation_passes_layers_bands"])))
    good = (h.get("spearman") or 0) >= 0.85 and (h.get("coverage") or 0) >= 0.90 and \
        2 * s["passes_heads"] <= s["ablation_passes_heads"] and 2 * s["passes_layers_bands"] <= s["ablation_passes_layers_bands"]
    print("  heads: %d, coverage %d of %d; %s" % (h.get("n", 0), round((h.get("coverage") or 0) * h.get("n", 0)), h.get("n", 0),
          "meets the goals (Spearman >= 0.85, coverage >= 90%, <= half the passes)" if good else "MISSES the goals"))
    ok = ok and good
sys.exit(0 if ok else 1)
PY
