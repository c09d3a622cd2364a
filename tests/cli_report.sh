#!/usr/bin/env bash
# cli_report.sh: `pathens report` on real runs: stories260K with a 4-member self-ensemble (then with the
# frontier.json of a real `pathens prune --evaluate`), stories260K dense only, and a random ViT on
# Fashion-MNIST. Each report.html must be self-contained (no scripts, no external references), every
# inline SVG must parse as XML, every figure must have a caption, and headless Chromium must render
# the page to a PNG that is not blank (decoded here with zlib + struct). Chromium is required: the
# test fails, not skips, without it. Plus exit codes and messages for bad inputs.
# The page title names the run and the model; tests/check_layout.py lays each page out in Chromium at
# 1200 and 1400 px and checks no table overflows and no SVG label overlaps another or a legend (the
# shipped 4-head Fashion-MNIST ViT with ablations is the heatmap case that overlapped).
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}" "${PATHENS_TEST_WRITER:?}" "${PATHENS_FASHION_DIR:?}"
source "$PATHENS_SRC/tests/lib.sh"
need_data stories260K.bin tok512.bin tinystories_val.txt
need_fashion
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || { echo "FAIL: chromium missing; the report is checked by rendering it (apt-get install chromium, see tools/deps.sh)"; exit 1; }
PY=/usr/bin/python3
T="$PATHENS_TEST_TMP/cli_report"; rm -rf "$T"; mkdir -p "$T"
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
json() { $PY -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
expect_rc() { # expect_rc RC DESC CMD...
    local want=$1 desc=$2; shift 2
    "$@" >"$T/out.txt" 2>"$T/err.txt"; local rc=$?
    if [ "$rc" = "$want" ]; then ok "$desc (exit $rc)"; else bad "$desc: exit $rc, wanted $want: $(cat "$T/err.txt")"; fi
}

# ---- checkers (Python standard library only) ------------------------------------------------------
cp "$PATHENS_SRC/tests/check_html.py" "$T/check_html.py" # self-containment, SVGs, captions, units
cp "$PATHENS_SRC/tests/check_png.py" "$T/check_png.py" # decodes the screenshot, checks it is not blank

# check_report DIR DESC WANT_PLOTS...: run the HTML checks; every WANT plot kind must be present
check_report() {
    local dir=$1 desc=$2; shift 2
    if ! $PY "$T/check_html.py" "$dir/report.html" >"$T/html.txt" 2>&1; then
        bad "$desc: HTML checks: $(grep -v '^plots\|^notes' "$T/html.txt" | head -5)"; return
    fi
    ok "$desc: self-contained, every SVG well-formed XML, every figure captioned ($(grep '^plots' "$T/html.txt"))"
    local plots; plots=" $(sed -n 's/^plots: //p' "$T/html.txt") "
    for k in "$@"; do
        [[ "$plots" == *" $k "* ]] && ok "$desc: has the $k plot" || bad "$desc: no $k plot (plots:$plots)"
    done
}
n_svgs() { $PY -c "import re,sys; print(len(re.findall(r'<svg\b', open(sys.argv[1]).read())))" "$1"; }
# screenshot HTML PNG: headless Chromium, fresh profile, no network features
screenshot() {
    local prof; prof=$(mktemp -d "$T/chrome-profile.XXXXXX")
    timeout 180 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
        --user-data-dir="$prof" --screenshot="$2" --window-size=1200,2400 "file://$1" >"$T/chrome.log" 2>&1
    local rc=$?; rm -rf "$prof"; return $rc
}
check_layout() { # check_layout HTML DESC: geometry at two window widths
    for w in 1200 1400; do
        if $PY "$PATHENS_SRC/tests/check_layout.py" "$CHROMIUM" "$1" $w >"$T/layout.txt" 2>&1; then ok "$2: $(cat "$T/layout.txt")"
        else bad "$2: layout at $w px: $(head -3 "$T/layout.txt")"; fi
    done
}
check_render() { # check_render HTML PNG DESC
    screenshot "$1" "$2"; local rc=$?
    if [ $rc != 0 ] || [ ! -s "$2" ]; then bad "$3: chromium exit $rc, no screenshot: $(tail -3 "$T/chrome.log")"; return; fi
    if $PY "$T/check_png.py" "$2" 1200 2400 >"$T/png.txt" 2>&1; then ok "$3: rendered by chromium, not blank: $(cat "$T/png.txt")"
    else bad "$3: screenshot $2: $(tail -2 "$T/png.txt")"; fi
}

cfg="$PATHENS_SRC/configs/stories260k.ini"

# ---- usage ------------------------------------------------------------------------------------------
expect_rc 0 "report --help" "$PATHENS" report --help
grep -q "RUN_DIR" "$T/out.txt" && ok "report --help shows the usage" || bad "report --help: $(cat "$T/out.txt")"
expect_rc 0 "pathens --help" "$PATHENS" --help
grep -q "report RUN_DIR" "$T/out.txt" && ok "pathens --help lists report" || bad "pathens --help lacks report"
expect_rc 1 "report without RUN_DIR" "$PATHENS" report
expect_rc 1 "report with an unknown option" "$PATHENS" report "$T" --bogus

# ---- a real 4-member self-ensemble on stories260K -------------------------------------------------
"$PATHENS" eval "$cfg" --set data.limit=20 --set pathways.members=4 --set importance.units=10 --set run.out="$T/run" --quiet; rc=$?
[ $rc = 0 ] && ok "eval with 4 members" || bad "eval exit $rc"
expect_rc 0 "report on the real run" "$PATHENS" report "$T/run"
grep -q "wrote $T/run/report.html" "$T/err.txt" && ok "report says what it wrote" || bad "report stderr: $(cat "$T/err.txt")"
[ -s "$T/run/report.html" ] && ok "report.html exists" || bad "no report.html"
ls "$T/run" | grep -q '\.tmp\.' && bad "temporary file left behind" || ok "no temporary file left"
has_imp=$(json "$T/run/results.json" "'importance' in d")
[ "$has_imp" = True ] && ok "real run: results.json has \"importance\"" || bad "real run: results.json has no \"importance\""
check_report "$T/run" "real run" curve histogram heatmap distance-profile mean-distance
grep -q "Sampled importance without ablations to compare it with" "$T/run/report.html" \
    && ok "real run: sampled importance (drop-one) without ablations: a note instead of the agreement plot" \
    || bad "real run: no note about the missing ablations"
[ "$(n_svgs "$T/run/report.html")" -ge 3 ] && ok "real run: at least 3 SVGs" || bad "real run: $(n_svgs "$T/run/report.html") SVGs"
grep -q 'No frontier.json' "$T/run/report.html" && ok "no frontier.json: a note instead of the plot" || bad "frontier note missing"
# the numbers in the table are those of results.json
v=$(json "$T/run/results.json" "'%.4f' % d['dense']['nll_per_token']")
grep -q ">$v " "$T/run/report.html" && ok "table shows dense NLL $v" || bad "dense NLL $v not in the table"
v=$(json "$T/run/results.json" "('%+.4f' % d['ensemble']['minus_dense']['mean']).replace('-', '\u2212')")
grep -q "$v" "$T/run/report.html" && ok "table shows ensemble - dense $v" || bad "ensemble - dense $v not in the table"
grep -q "members = 4" "$T/run/report.html" && grep -q "scheme = local" "$T/run/report.html" && ok "header shows the pathways config" || bad "pathways config missing from the header"
check_render "$T/run/report.html" "$T/shot.png" "real run"
check_layout "$T/run/report.html" "real run"
# the uniform-attention reference: one dashed curve per layer panel; the captions name T (the run's mean length)
$PY - "$T/run" <<'PY2' && ok "distance plots: the uniform-attention reference at T = the run's mean length, causal formula" || bad "uniform reference"
import html, json, re, sys
d = sys.argv[1]
r = json.load(open(d + "/results.json"))
T = round(r["dense"]["tokens"] / r["dense"]["units"]) + 1
page = html.unescape(open(d + "/report.html").read())
L = r["importance"]["n_layers"]
panels = re.findall(r'data-plot="distance-profile".*?</svg>', page, re.S)
assert len(panels) == L and all('stroke="#222222"' in p and 'stroke-dasharray="4 3"' in p for p in panels), "a dashed reference per layer"
assert "uniform attention (reference)" in page
assert "of a sequence of T = %d tokens (the run's mean length" % T in page, T
assert "Dashed line: uniform attention, %.2f tokens (causal: (T\u2212" % ((T - 1) / 4) in page, (T - 1) / 4
PY2
# the title: run name (run.out's folder) and model, not the checkpoint's file name alone
grep -q "<title>run (model stories260K.bin) (pathens report)</title>" "$T/run/report.html" \
    && grep -q "<h1>pathens report: run (model stories260K.bin)</h1>" "$T/run/report.html" \
    && ok "title and heading: run (model stories260K.bin)" || bad "title: $(grep -o '<title>[^<]*' "$T/run/report.html" | head -1)"
# deterministic: the same inputs give the same bytes
"$PATHENS" report "$T/run" --out "$T/again.html" --quiet
cmp -s "$T/run/report.html" "$T/again.html" && ok "--out FILE; same inputs, same bytes" || bad "--out or determinism"

# ---- the same run plus a real frontier.json from `pathens prune --evaluate` ----------------------
cp -r "$T/run" "$T/runp" && rm -f "$T/runp/report.html"
if "$PATHENS" prune "$T/runp" --budget 0.25 --budget 0.5 --evaluate --quiet >"$T/prune.txt" 2>&1 && [ -s "$T/runp/frontier.json" ]; then
    expect_rc 0 "report with frontier.json" "$PATHENS" report "$T/runp" --quiet
    check_report "$T/runp" "run with a real frontier.json" curve histogram frontier
    check_layout "$T/runp/report.html" "run with a real frontier.json"
    # each plan's chance baseline drawn (orange diamonds) and plan - chance per budget in the caption
    $PY - "$T/runp" <<'PY2' && ok "frontier: the chance curve and plan - chance of frontier.json in the caption" || bad "frontier chance"
import html, json, re, sys
d = sys.argv[1]
f = json.load(open(d + "/frontier.json"))
page = html.unescape(open(d + "/report.html").read())
svg = page[page.index('data-plot="frontier"'):]
svg = svg[:svg.index("</svg>")]
assert len(f["chance"]) == 2 and "chance (4 local)" in svg, "legend names the chance baseline"
assert svg.count("#d9711c") >= 1 + 2 * 2, "an orange line, two bars and two diamonds"
cap = re.search(r"<figcaption>NLL \(nats/token\) against the attention FLOPs[^<]*<? 0[^<]*", page).group(0)
s = lambda v: ("%+.4f" % v).replace("-", "\u2212")
for p in f["plans"]:
    m = p["minus_chance"]
    want = "budget %g: plan \u2212 chance %s [%s, %s]" % (p["budget"], s(m["mean"]), s(m["ci95"][0]), s(m["ci95"][1]))
    assert want in cap, (want, cap)
n = sum(p["minus_chance"]["verdict"] == "beat chance" for p in f["plans"])
assert "The importance plan beat chance at %d of 2 budgets" % n in cap, cap
PY2
else
    bad "pathens prune --evaluate gave no frontier.json: $(tail -3 "$T/prune.txt")"
fi

# ---- dense only (members = 0): notes instead of plots ----------------------------------------------
"$PATHENS" eval "$cfg" --set data.limit=10 --set pathways.members=0 --set run.out="$T/dense" --quiet || bad "dense eval"
expect_rc 0 "report on a members = 0 run" "$PATHENS" report "$T/dense" --quiet
check_report "$T/dense" "members = 0"
grep -q 'No ensemble-size curve' "$T/dense/report.html" && grep -q 'No member histogram' "$T/dense/report.html" \
    && ok "members = 0: notes instead of the curve and the histogram" || bad "members = 0: notes missing"
grep -q 'data-plot="curve"\|data-plot="histogram"' "$T/dense/report.html" && bad "members = 0 drew a curve/histogram" || ok "members = 0: no curve or histogram SVG"

# ---- a real image classifier (random ViT, Fashion-MNIST) ------------------------------------------
"$PATHENS_TEST_WRITER" vit "$T/vit" --seed 3 >/dev/null || bad "mkmodel vit"
printf '[model]\npath = vit/model.safetensors\ntokenizer = none\n[data]\npath = %s/t10k-images-idx3-ubyte.gz\nlimit = 100\n[run]\nout = vitrun\n[pathways]\nmembers = 3\nscheme = unbiased\nratio = 2\n' \
    "$PATHENS_FASHION_DIR" >"$T/vit.ini"
"$PATHENS" eval "$T/vit.ini" --quiet || bad "ViT eval"
expect_rc 0 "report on a classifier run" "$PATHENS" report "$T/vitrun" --quiet
check_report "$T/vitrun" "classifier" curve histogram
v=$($PY -c "n = 17; print('%.2f' % ((n * n - 1) / (3 * n)))")
grep -q "Dashed line: uniform attention, $v positions (bidirectional" "$T/vitrun/report.html" \
    && ok "classifier: uniform reference over the 16 patches + CLS, (T^2-1)/(3T) = $v" || bad "classifier: uniform reference $v missing"
grep -q 'accuracy (fraction correct)' "$T/vitrun/report.html" && grep -q 'nats/image' "$T/vitrun/report.html" \
    && ok "classifier: accuracy and NLL per image plotted" || bad "classifier axes"
grep -q "<title>vitrun (model vit/model.safetensors) (pathens report)</title>" "$T/vitrun/report.html" \
    && ok "classifier title: the run and the model's folder/file (model.safetensors alone says nothing)" \
    || bad "classifier title: $(grep -o '<title>[^<]*' "$T/vitrun/report.html" | head -1)"

# ---- the shipped ViT (4 layers x 4 heads) with head ablations: the heatmap's colour bar and legend --
mkdir -p "$T/sub"
"$PATHENS" eval "$PATHENS_SRC/configs/fashion-vit.ini" --set data.limit=120 --set pathways.members=2 \
    --set run.out="$T/sub/../fv" --quiet || bad "eval of models/fashion-vit"
check_report "$T/fv" "shipped ViT with ablations" curve histogram heatmap importance-agreement
# the sampled-vs-ablation plot: one panel of 16 heads; its caption quotes results.json's agreement
/usr/bin/python3 - "$T/fv" <<'PY' && ok "sampled vs ablation: 16 heads, Spearman and coverage of results.json in the caption" \
    || bad "sampled vs ablation plot"
import html, json, re, sys
d = sys.argv[1]
a = json.load(open(d + "/results.json"))["importance"]["agreement"]["heads"]
page = html.unescape(open(d + "/report.html").read())
assert page.count('data-plot="importance-agreement"') == 1, "one panel (no band ablations)"
cap = re.search(r"<figcaption>Left, each head:[^<]*", page).group(0)
assert "Spearman rank correlation %.3f over 16 heads" % a["spearman"] in cap, cap
assert "%d of 16 intervals contain the ablation value" % round(a["coverage"] * 16) in cap, cap
svg = page[page.index('data-plot="importance-agreement"'):]
svg = svg[:svg.index("</svg>")]
assert len(re.findall(r"<circle", svg)) >= 16, "a marker per head"
PY
grep -q "<title>fv (model fashion-vit/model.safetensors) (pathens report)</title>" "$T/fv/report.html" \
    && ok "shipped ViT title: fv (model fashion-vit/model.safetensors)" || bad "shipped ViT title: $(grep -o '<title>[^<]*' "$T/fv/report.html" | head -1)"
grep -q '/\.\./' "$T/fv/report.html" && bad "shipped ViT page shows a path with /../: $(grep -o '[^>]*/\.\./[^<]*' "$T/fv/report.html" | head -2)" \
    || ok "shipped ViT page: paths shown without dir/.."
check_layout "$T/fv/report.html" "shipped ViT with ablations"
check_render "$T/fv/report.html" "$T/shot_fv.png" "shipped ViT with ablations"

# ---- SCHEMA FIXTURE (not a substitute for the real run above): a copy of the real results.json with
# a hand-made "importance" object (sampled/ablation/null mixes, a null attention entry) and a
# hand-made frontier.json, to cover every branch of the heatmap, distance and frontier code.
mkdir -p "$T/fixture"
$PY - "$T/run/results.json" "$T/fixture" <<'PY'
import json, sys, math, os
d = json.load(open(sys.argv[1])); out = sys.argv[2]
a = d['model']['architecture']; L, H, S = a['n_layers'], a['n_heads'], a['seq_len']
bands, lo = [{"band": 0, "lo": 0, "hi": 0}], 1
while lo < S: bands.append({"band": len(bands), "lo": lo, "hi": min(2 * lo - 1, S - 1)}); lo *= 2
nb, heads = len(bands), []
for l in range(L):
    for h in range(H):
        w = [math.exp(-abs(b - (l * 0.7 + h * 0.3) % (nb - 1))) for b in range(nb)]; m = [x / sum(w) for x in w]
        dl = 0.03 * math.sin(1.7 * l + h) / (l + 1); se = 0.004 + 0.002 * (h % 3)
        est = {"delta": dl, "stderr": se, "units": 20}
        abl = {"delta": dl * 1.1, "stderr": se, "ci95": [dl * 1.1 - 1.96 * se, dl * 1.1 + 1.96 * se]}
        heads.append({"layer": l, "head": h, "sampled": None if (l, h) in ((0, 1), (2, 3)) else est,
                      "ablation": None if (l, h) == (1, 1) else abl,
                      "attention": None if (l, h) == (3, 0) else
                          {"mean_distance": sum(mi * (bd['lo'] + bd['hi']) / 2 for mi, bd in zip(m, bands)), "entropy": 1.0, "mass_by_band": m}})
heads[H + 1]["sampled"] = None  # layer 1 head 1: no estimate at all
d['importance'] = {"n_layers": L, "n_heads": H, "metric": "nll_per_token", "bands": bands, "heads": heads,
    "layers": [{"layer": l, "ablation": {"delta": 0.3 / (l + 1), "stderr": 0.02, "ci95": [0.3 / (l + 1) - 0.04, 0.3 / (l + 1) + 0.04]}} for l in range(L)],
    "bands_by_layer": [{"layer": l, "band": b, "sampled": None, "attention_mass": None} for l in range(L) for b in range(nb)]}
d['config']['model']['path'] = '/models/<b>"x" & y\'s</b>/stories260K.bin'  # must come out escaped
json.dump(d, open(os.path.join(out, 'results.json'), 'w'), indent=1)
v, ci = d['dense']['nll_per_token'], d['dense']['nll_per_token_ci95']
json.dump({"metric": "nll_per_token", "dense": {"flops_fraction": 1.0, "value": v, "ci95": ci},
           "plans": [{"budget": f, "flops_fraction": f, "value": v + 0.4 * (1 - f) ** 2, "ci95": [v + 0.4 * (1 - f) ** 2 - 0.05, v + 0.4 * (1 - f) ** 2 + 0.05], "plan": "plan_%g.json" % f} for f in (0.5, 0.25, 0.75)],
           "samples": [{"label": "unbiased rho=4 member %d" % i, "flops_fraction": 0.25, "value": v + 0.3 + 0.01 * i} for i in range(4)]},
          open(os.path.join(out, 'frontier.json'), 'w'))
PY
expect_rc 0 "report on the schema fixture" "$PATHENS" report "$T/fixture" --quiet
check_report "$T/fixture" "schema fixture" curve histogram heatmap distance-profile mean-distance frontier
v=$($PY -c "import re,sys; print(len(re.findall(r'data-plot=\"distance-profile\"', open(sys.argv[1]).read())))" "$T/fixture/report.html")
[ "$v" = "$(json "$T/fixture/results.json" "d['importance']['n_layers']")" ] && ok "schema fixture: one distance panel per layer" || bad "schema fixture: $v distance panels"
grep -q 'url(#pe-hatch)' "$T/fixture/report.html" && ok "schema fixture: weak cells hatched" || bad "schema fixture: no hatched cells"
grep -q 'whole layer' "$T/fixture/report.html" && ok "schema fixture: layer ablation table" || bad "schema fixture: no layer table"
grep -q '&lt;b&gt;&quot;x&quot; &amp; y&#39;s&lt;/b&gt;' "$T/fixture/report.html" && ! grep -q '<b>"x"' "$T/fixture/report.html" \
    && ok "text is HTML-escaped" || bad "model path not escaped"
check_render "$T/fixture/report.html" "$T/shot_fixture.png" "schema fixture"
check_layout "$T/fixture/report.html" "schema fixture"

# ---- bad inputs: exit 2, the file and the field named, nothing written ----------------------------
expect_rc 2 "report on a missing folder" "$PATHENS" report "$T/nope"
grep -q "$T/nope" "$T/err.txt" && ok "missing folder named" || bad "message: $(cat "$T/err.txt")"
mkdir -p "$T/empty"
expect_rc 2 "report without results.json" "$PATHENS" report "$T/empty"
grep -q "results.json" "$T/err.txt" && ok "missing results.json named" || bad "message: $(cat "$T/err.txt")"
mkdir -p "$T/broken" && head -c 300 "$T/run/results.json" >"$T/broken/results.json"
expect_rc 2 "report on truncated JSON" "$PATHENS" report "$T/broken"
grep -q "results.json: not valid JSON" "$T/err.txt" && ok "malformed JSON named" || bad "message: $(cat "$T/err.txt")"
[ -e "$T/broken/report.html" ] && bad "report.html written for bad input" || ok "nothing written for bad input"
mkdir -p "$T/nodense" "$T/nocurveci" "$T/badimp" "$T/badfrontier"
json "$T/run/results.json" "json.dump({k: v for k, v in d.items() if k != 'dense'}, open('$T/nodense/results.json', 'w'))" >/dev/null
expect_rc 2 "results.json without dense" "$PATHENS" report "$T/nodense"
grep -q "field 'dense'" "$T/err.txt" && ok "missing field dense named" || bad "message: $(cat "$T/err.txt")"
json "$T/run/results.json" "(d['curve'][1].pop('nll_per_token_ci95'), json.dump(d, open('$T/nocurveci/results.json', 'w')))" >/dev/null
expect_rc 2 "curve entry without its interval" "$PATHENS" report "$T/nocurveci"
grep -q "field 'curve\[1\].nll_per_token_ci95' is missing" "$T/err.txt" && ok "missing curve[1].nll_per_token_ci95 named" || bad "message: $(cat "$T/err.txt")"
json "$T/fixture/results.json" "(d['importance']['heads'][2].__setitem__('layer', 99), json.dump(d, open('$T/badimp/results.json', 'w')))" >/dev/null
expect_rc 2 "importance head with a layer out of range" "$PATHENS" report "$T/badimp"
grep -q "importance.heads\[2\].layer" "$T/err.txt" && ok "bad importance.heads[2].layer named" || bad "message: $(cat "$T/err.txt")"
cp "$T/run/results.json" "$T/badfrontier/" && echo '{"metric": "nll_per_token", "dense": {"value": 1}, "plans": []}' >"$T/badfrontier/frontier.json"
expect_rc 2 "frontier.json without dense.flops_fraction" "$PATHENS" report "$T/badfrontier"
grep -q "frontier.json: field 'dense.flops_fraction'" "$T/err.txt" && ok "frontier.json field named" || bad "message: $(cat "$T/err.txt")"

echo "screenshots: $T/shot.png (real run), $T/shot_fixture.png (schema fixture), $T/shot_fv.png (shipped ViT)"
echo "$fails failure(s)"
[ "$fails" = 0 ]
