#!/usr/bin/env bash
# cli_prune.sh: importance in results.json and importance.csv, `pathens prune` plans within their
# budgets, `scheme = plan` evaluation, frontier.json with each plan's chance baseline (random sub-models at
# its FLOPs, paired unit by unit, the verdict printed); a run without head importance refused; the eval
# summary's heads only when distinguishable from 0 ("none distinguishable" for a ViT whose heads change
# nothing); bad plans refused; importance.csv has empty cells (never nan) for missing values; printed
# paths have dir/.. collapsed; usage errors exit 1.
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}"
source "$PATHENS_SRC/tests/lib.sh"
need_data stories260K.bin tok512.bin tinystories_val.txt
need_fashion
T="$PATHENS_TEST_TMP/cli_prune"; rm -rf "$T"; mkdir -p "$T"
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
json() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
cfg="$PATHENS_SRC/configs/stories260k.ini"

"$PATHENS" eval "$cfg" --set data.limit=24 --set pathways.scheme=head-drop --set pathways.ratio=2 \
    --set pathways.members=8 --set importance.ablation=2 --set importance.units=12 --set run.out="$T/run" 2>"$T/eval.err"; rc=$?
[ $rc = 0 ] && ok "eval with importance (drop-one passes) and ablation" || bad "eval exit $rc"
v=$(json "$T/run/results.json" "(lambda s: (s['method'], s['passes_heads'], s['ablation_passes_heads'], s['passes_layers_bands'] * 2 <= s['ablation_passes_layers_bands']))(d['importance']['sampled'])")
[ "$v" = "('drop-one', 20, 40, True)" ] && ok "drop-one passes: 20 for 40 heads, at most half for layers and bands" || bad "sampled: $v"
v=$(json "$T/run/results.json" "(lambda i: sorted(i['agreement']) == ['bands', 'heads', 'layers'] and i['agreement']['heads']['n'] == 40 and all(b['ablation'] is not None for b in i['bands_by_layer'] if b['band'] > 0) and all(b['sampled'] is None and b['ablation'] is None for b in i['bands_by_layer'] if b['band'] == 0))(d['importance'])")
[ "$v" = True ] && ok "agreement of heads, bands, layers; band ablations except band 0 (causal)" || bad "agreement / bands: $v"
v=$(json "$T/run/results.json" "'sampled vs ablation, 40 heads: Spearman %.3f, 95%% intervals containing the ablation value %.0f%% (20 drop-one passes vs 40)' % (d['importance']['agreement']['heads']['spearman'], 100 * d['importance']['agreement']['heads']['coverage'])")
grep -qF "$v" "$T/eval.err" && ok "summary: $v" || bad "summary lacks '$v': $(grep -i 'sampled\|importance' "$T/eval.err")"
v=$(json "$T/run/results.json" "(lambda i: i['n_layers'] == 5 and i['n_heads'] == 8 and len(i['heads']) == 40 and len(i['layers']) == 5 and all(h['sampled'] is not None and h['ablation'] is not None and abs(sum(h['attention']['mass_by_band']) - 1) < 1e-6 for h in i['heads']))(d['importance'])")
[ "$v" = True ] && ok "importance: 40 heads with sampled, ablation and attention mass summing to 1" || bad "importance object"
[ "$(grep -c '^head,' "$T/run/importance.csv")" = 40 ] && [ "$(grep -c '^layer,' "$T/run/importance.csv")" = 5 ] && ok "importance.csv rows" || bad "importance.csv"
grep -qi nan "$T/run/importance.csv" && bad "importance.csv has nan: $(grep -i nan "$T/run/importance.csv" | head -1)" || ok "importance.csv: no nan"
/usr/bin/python3 - "$T/run" <<'PY' && ok "importance.csv: every cell a number or empty, 13 per row; the values are results.json's" || bad "importance.csv cells"
import csv, json, math, sys
rows = list(csv.DictReader(open(sys.argv[1] + "/importance.csv")))
assert all(len(r) == 13 and None not in r for r in rows)
for r in rows:
    for k, v in r.items():
        if k != "kind" and v != "": assert math.isfinite(float(v)), (k, v)
imp = json.load(open(sys.argv[1] + "/results.json"))["importance"]
heads = [r for r in rows if r["kind"] == "head"]
for r, h in zip(heads, imp["heads"]):
    # (results.json's numbers are cJSON's 15-17 digit text: equal to ~1e-15)
    assert math.isclose(float(r["ablation_delta"]), h["ablation"]["delta"], rel_tol=1e-13)
    assert math.isclose(float(r["sampled_delta"]), h["sampled"]["delta"], rel_tol=1e-13)
    assert r["band"] == r["band_lo"] == r["band_hi"] == r["attention_mass"] == ""
for r in rows:
    if r["kind"] == "layer": assert r["mean_distance"] == "" and r["sampled_delta"] != "" and r["ablation_delta"] != ""
    if r["kind"] == "band" and r["band"] != "0": assert r["sampled_delta"] != "" and r["ablation_delta"] != ""
PY

# members alone cannot identify heads: no sampled numbers, a note and a summary line that say so
"$PATHENS" eval "$cfg" --set data.limit=5 --set pathways.scheme=head-drop --set pathways.members=4 \
    --set run.out="$T/nodrop" 2>"$T/nodrop.err" || bad "eval without drop-one passes"
/usr/bin/python3 - "$T/nodrop/results.json" <<'PY' && ok "members only: sampled null everywhere, a note names importance.units" || bad "members-only sampled"
import json, sys
i = json.load(open(sys.argv[1]))["importance"]
assert i["sampled"]["method"] == "none" and "importance.units" in i["sampled"]["note"]
assert all(h["sampled"] is None for h in i["heads"]) and all(b["sampled"] is None for b in i["bands_by_layer"])
assert "agreement" not in i
PY
grep -q "head importance: not estimated: .*importance.units" "$T/nodrop.err" && ok "summary says why there is no head importance" \
    || bad "summary: $(grep -i importance "$T/nodrop.err")"

mkdir -p "$T/sub"
"$PATHENS" prune "$T/sub/../run" --budget 0.3 --budget 0.6 --evaluate 2>"$T/prune.err"; rc=$?
[ $rc = 0 ] && ok "prune --evaluate" || bad "prune exit $rc: $(tail -3 "$T/prune.err")"
grep -q "^plan $T/run/plan_0.3.json: " "$T/prune.err" && grep -q "^wrote $T/run/frontier.json" "$T/prune.err" && ! grep -q '/\.\./' "$T/prune.err" \
    && ok "prune prints its paths with dir/.. collapsed" || bad "prune paths: $(grep -E '^plan|^wrote|/\.\./' "$T/prune.err" | head -3)"
for b in 0.3 0.6; do
    v=$(json "$T/run/plan_$b.json" "d['format'] == 'pathens-plan' and d['flops_fraction'] <= $b + 1e-12 and len(d['heads']) == 40")
    [ "$v" = True ] && ok "plan_$b.json within its budget" || bad "plan_$b.json"
done
v=$(json "$T/run/frontier.json" "len(d['plans']) == 2 and d['dense']['flops_fraction'] == 1 and len(d['samples']) == 8 and all(p['flops_fraction'] <= 1 for p in d['plans'])")
[ "$v" = True ] && ok "frontier.json: 2 plans, dense, 8 samples" || bad "frontier.json"
v=$(json "$T/run/plan_0.6/results.json" "d['config']['pathways']['scheme'] == 'plan' and len(d['members']) == 1 and d['members'][0]['kept_fraction'] < 0.7")
[ "$v" = True ] && ok "plan evaluated as one static member" || bad "plan run"
# judged against chance: 4 head-drop sub-models (the run's scheme) at ratio 1 / the plan's measured FLOPs, paired
/usr/bin/python3 - "$T/run" "$T/prune.err" <<'PY2' && ok "frontier.json: a chance curve at the plans' FLOPs, plan - chance paired, the verdict printed" || bad "chance baseline"
import json, math, re, sys
d, err = sys.argv[1], open(sys.argv[2]).read()
f = json.load(open(d + "/frontier.json"))
assert len(f["chance"]) == 2 and [c["budget"] for c in f["chance"]] == [0.3, 0.6], f.get("chance")
for p, c in zip(f["plans"], f["chance"]):
    assert c["scheme"] == "head-drop" and c["members"] == 4 and len(c["member_values"]) == 4
    assert math.isclose(c["ratio"], 1 / p["flops_fraction"], rel_tol=1e-12), (c["ratio"], p["flops_fraction"])
    cr = json.load(open("%s/%s/results.json" % (d, c["run"])))
    pw = cr["config"]["pathways"]
    assert pw["scheme"] == "head-drop" and pw["keep"] == 0 and math.isclose(pw["ratio"], c["ratio"], rel_tol=1e-12)
    assert len(cr["members"]) == 4 and cr["dense"] == json.load(open(d + "/results.json"))["dense"], "same units"
    # the chance value is the members' mean (nats over the same tokens), the paired mean is plan - chance
    assert math.isclose(c["value"], cr["member_mean"]["nll_per_token"], rel_tol=1e-12)
    assert math.isclose(c["flops_fraction"], sum(m["kept_fraction"] for m in cr["members"]) / 4, rel_tol=1e-12)
    m = p["minus_chance"]
    assert math.isclose(m["mean"], p["value"] - c["value"], rel_tol=1e-9, abs_tol=1e-12) and m["units"] == 24
    lo, hi = m["ci95"]
    assert lo < m["mean"] < hi
    want = "beat chance" if hi < 0 else "lost to chance" if lo > 0 else "indistinguishable from chance"
    assert m["verdict"] == want, (m, want)
    line = [l for l in err.splitlines() if l.startswith("  budget %g: plan %.4f at %.3f" % (p["budget"], p["value"], p["flops_fraction"]))]
    assert len(line) == 1, err
    assert "chance %.4f at %.3f (4 head-drop sub-models" % (c["value"], c["flops_fraction"]) in line[0], line[0]
    tail = {"beat chance": "importance plan beat chance by %.4f [%.4f, %.4f]" % (-m["mean"], -hi, -lo),
            "lost to chance": "importance plan did not beat chance: it is worse by %.4f [%.4f, %.4f]" % (m["mean"], lo, hi),
            "indistinguishable from chance": "indistinguishable from chance: plan - chance %+.4f [%+.4f, %+.4f]" % (m["mean"], lo, hi)}[want]
    assert line[0].endswith(tail), (line[0], tail)
PY2
"$PATHENS" prune "$T/run" --budget 0.3 --evaluate --chance-members 0 --quiet 2>"$T/err"; rc=$?
v=$(json "$T/run/frontier.json" "'chance' not in d and 'minus_chance' not in d['plans'][0]")
[ $rc = 0 ] && [ "$v" = True ] && [ ! -s "$T/err" ] && ok "--chance-members 0: no chance baseline" || bad "--chance-members 0: $rc $v $(cat "$T/err")"
"$PATHENS" prune "$T/run" --budget 0.3 --chance-scheme dense 2>"$T/err"; rc=$?
[ $rc = 1 ] && grep -q "'dense'" "$T/err" && ok "--chance-scheme dense: usage error" || bad "--chance-scheme dense: $rc $(cat "$T/err")"
# a run without any head importance (members only): a plan would keep nothing; refused, naming the fix
"$PATHENS" prune "$T/nodrop" --budget 0.5 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "no head has an importance estimate.*importance.units" "$T/err" && [ ! -e "$T/nodrop/plan_0.5.json" ] \
    && ok "prune of a run without importance: exit 2, no plan written" || bad "prune without importance: $rc $(cat "$T/err")"

# the summary lists only heads whose 95% interval lies above 0, ranked, with the interval
/usr/bin/python3 - "$T/run/results.json" "$T/eval.err" <<'PY2' && ok "summary: only distinguishable heads, ranked by estimate, with their intervals" || bad "summary heads"
import json, re, sys
heads = json.load(open(sys.argv[1]))["importance"]["heads"]
err = open(sys.argv[2]).read()
pos = sorted((h for h in heads if h["ablation"]["ci95"][0] > 0), key=lambda h: -h["ablation"]["delta"])
assert 0 < len(pos) < 40, len(pos)  # some heads of stories260K are not distinguishable on 24 documents
assert "most important heads (%d of 40 distinguishable from 0 at 24 units" % len(pos) in err, err
got = re.findall(r"^    layer (\d+) head (\d+): ([-+]\S+) \[([-+]\S+), ([-+]\S+)\]$", err, re.M)
want = [(str(h["layer"]), str(h["head"]), "%+.4f" % h["ablation"]["delta"], "%+.4f" % h["ablation"]["ci95"][0],
         "%+.4f" % h["ablation"]["ci95"][1]) for h in pos[:5]]
assert got == want, (got, want)
PY2
# a model whose heads can change nothing (every attention output projection zero): none distinguishable
"$PATHENS_TEST_WRITER" vit "$T/vit0" --seed 3 >/dev/null || bad "mkmodel vit"
/usr/bin/python3 - "$T/vit0/model.safetensors" <<'PY2' || bad "zeroing attn.wo"
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
for k, t in h.items():
    if k.endswith("attn.wo.weight"):
        s, e = t["data_offsets"]
        b[8 + n + s:8 + n + e] = bytes(e - s)
open(sys.argv[1], "wb").write(b)
PY2
printf '[model]\npath = vit0/model.safetensors\ntokenizer = none\n[data]\npath = %s/t10k-images-idx3-ubyte.gz\nlimit = 40\n[run]\nout = vit0run\n[importance]\nablation = 1\n' \
    "$PATHENS_FASHION_DIR" >"$T/vit0.ini"
"$PATHENS" eval "$T/vit0.ini" 2>"$T/vit0.err"; rc=$?
[ $rc = 0 ] && grep -q "^  most important heads: none distinguishable at 40 units" "$T/vit0.err" && ! grep -q "^    layer" "$T/vit0.err" \
    && ok "zero-effect heads: 'none distinguishable at 40 units'" || bad "zero-effect heads ($rc): $(grep -A2 'most important' "$T/vit0.err")"

# bad plans
"$PATHENS" eval "$cfg" --quiet --set data.limit=5 --set pathways.scheme=plan --set run.out="$T/bad1" 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "pathways.plan" "$T/err" && ok "scheme = plan without a plan: exit 2" || bad "missing plan: $rc $(cat "$T/err")"
printf '{"format": "pathens-plan", "version": 1, "n_layers": 2, "n_heads": 8, "heads": []}' >"$T/wrong.json"
"$PATHENS" eval "$cfg" --quiet --set data.limit=5 --set pathways.scheme=plan --set pathways.plan="$T/wrong.json" \
    --set run.out="$T/bad2" 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "5 x 8" "$T/err" && ok "plan for another model: exit 2" || bad "wrong plan: $rc $(cat "$T/err")"
"$PATHENS" prune "$T/nope" --budget 0.5 2>/dev/null; rc=$?
[ $rc = 2 ] && ok "prune on a missing run: exit 2" || bad "prune missing run exit $rc"
"$PATHENS" prune "$T/run" --budget 2 2>"$T/err"; rc=$?
[ $rc = 1 ] && ok "prune --budget 2: usage error" || bad "budget 2 exit $rc"
grep -q "'2'" "$T/err" && [ "$(wc -l <"$T/err")" = 2 ] && ok "prune --budget 2: names the value, said once" || bad "budget 2 message: $(cat "$T/err")"
"$PATHENS" prune "$T/run" 2>"$T/err"; rc=$?
[ $rc = 1 ] && grep -q -- "--budget" "$T/err" && ok "prune without --budget: usage error naming --budget" || bad "no budget: exit $rc $(cat "$T/err")"

echo "$fails failure(s)"
[ "$fails" = 0 ]
