#!/usr/bin/env bash
# cli_sweep_report.sh: `pathens sweep` end to end on stories260K: a 2 x 2 grid (scheme = unbiased,
# local; ratio = 2, 4; 2 members each), its census, its aggregation into sweep.csv / sweep.json /
# sweep_report.html, resumption (a rerun skips every finished point) and byte-identical
# re-aggregation; then --count, --index out of range, an unknown key, and a half-finished sweep.
# The sweep report must be self-contained (no scripts, no external references), every inline SVG
# must parse as XML, and headless Chromium must render it to a PNG that is not blank (decoded here
# with zlib + struct). Chromium is required: the test fails, not skips, without it.
# sweep.csv / sweep.json name the paired difference ensemble_minus_dense and it is exactly
# results.json's ensemble - dense of each point (sign included); missing values are empty cells
# (never nan); tests/check_layout.py checks the page fits a 1200 and a 1400 px window with no
# overlapping labels.
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}"
source "$PATHENS_SRC/tests/lib.sh"
need_data stories260K.bin tok512.bin tinystories_val.txt
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || { echo "FAIL: chromium missing; the report is checked by rendering it (apt-get install chromium, see tools/deps.sh)"; exit 1; }
PY=/usr/bin/python3
T="$PATHENS_TEST_TMP/cli_sweep_report"; rm -rf "$T"; mkdir -p "$T"
D=$(cd "$PATHENS_DATA_DIR" && pwd)
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
json() { $PY -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
expect_rc() { # expect_rc RC DESC CMD...
    local want=$1 desc=$2; shift 2
    "$@" >"$T/out.txt" 2>"$T/err.txt"; local rc=$?
    if [ "$rc" = "$want" ]; then ok "$desc (exit $rc)"; else bad "$desc: exit $rc, wanted $want: $(tail -3 "$T/err.txt")"; fi
}

# a sweep INI from configs/stories260k.ini's values, with absolute paths; $1: file, $2: run.out,
# $3: the [pathways] lines
write_ini() {
    cat >"$1" <<EOF
; from $PATHENS_SRC/configs/stories260k.ini, with a grid of pathways settings
[model]
path = $D/stories260K.bin
tokenizer = $D/tok512.bin

[data]
path = $D/tinystories_val.txt
mode = documents
limit = 12

[run]
out = $2
batch = 16
shard = 4

[pathways]
sigma = 4
seed = 1234
$3
EOF
}

# ---- checkers (Python standard library only) ------------------------------------------------------
cp "$PATHENS_SRC/tests/check_html.py" "$T/check_html.py" # self-containment, SVGs, captions, units
cp "$PATHENS_SRC/tests/check_png.py" "$T/check_png.py" # decodes the screenshot, checks it is not blank
n_svgs() { $PY -c "import re,sys; print(len(re.findall(r'<svg\b', open(sys.argv[1]).read())))" "$1"; }

# ---- the 2 x 2 sweep ----------------------------------------------------------------------------
S="$T/sweep.ini"
write_ini "$S" "$T/sweep" "scheme = unbiased, local
ratio = 2, 4
members = 2"
expect_rc 0 "sweep --count" "$PATHENS" sweep "$S" --count
[ "$(cat "$T/out.txt")" = 4 ] && ok "--count prints 4" || bad "--count printed '$(cat "$T/out.txt")'"
expect_rc 1 "sweep --index 7 of 4 points (usage)" "$PATHENS" sweep "$S" --index 7
grep -q "0..3" "$T/err.txt" && ok "--index out of range names the valid range" || bad "--index 7 message: $(cat "$T/err.txt")"
expect_rc 1 "sweep --status before running (not all done)" "$PATHENS" sweep "$S" --status
grep -q "^missing     4" "$T/out.txt" && ok "--status: 4 missing before running" || bad "--status before: $(cat "$T/out.txt")"

expect_rc 0 "sweep runs the 4 points" "$PATHENS" sweep "$S" --quiet
n=$(ls "$T/sweep"/*/DONE 2>/dev/null | wc -l)
[ "$n" = 4 ] && ok "4 point folders with DONE" || bad "$n DONE markers, wanted 4"
for f in "$T/sweep"/*/config.json; do
    [ "$(json "$f" "d['run']['shard']")" = 4 ] || bad "$f: run.shard is not 4"
done
expect_rc 0 "sweep --status after running" "$PATHENS" sweep "$S" --status
grep -q "^done        4  0 1 2 3" "$T/out.txt" && ok "--status: 4 done" || bad "--status after: $(cat "$T/out.txt")"

expect_rc 0 "sweep --aggregate" "$PATHENS" sweep "$S" --aggregate
grep -q "aggregated 4 of 4 points" "$T/err.txt" && ok "--aggregate says 4 of 4" || bad "--aggregate: $(cat "$T/err.txt")"
[ "$(wc -l <"$T/sweep/sweep.csv")" = 5 ] && ok "sweep.csv: header + 4 lines" || bad "sweep.csv has $(wc -l <"$T/sweep/sweep.csv") lines"
[ "$(json "$T/sweep/sweep.json" "len(d['rows'])")" = 4 ] && ok "sweep.json: 4 rows" || bad "sweep.json rows: $(json "$T/sweep/sweep.json" "len(d['rows'])")"
[ "$(json "$T/sweep/sweep.json" "sorted(set((r['params']['pathways.scheme'], r['params']['pathways.ratio']) for r in d['rows']))")" = \
  "[('local', '2'), ('local', '4'), ('unbiased', '2'), ('unbiased', '4')]" ] && ok "sweep.json: the 4 (scheme, ratio) pairs" || bad "sweep.json params"
[ "$(json "$T/sweep/sweep.json" "sorted(r['metrics']['members'] for r in d['rows'])")" = "[2, 2, 2, 2]" ] && ok "sweep.json: K = 2 everywhere" || bad "sweep.json members"
H="$T/sweep/sweep_report.html"
if [ -s "$H" ]; then ok "sweep_report.html exists"; else bad "no sweep_report.html"; fi
ls "$T/sweep" | grep -q '\.tmp\.' && bad "temporary file left behind" || ok "no temporary file left"
if $PY "$T/check_html.py" "$H" >"$T/html.txt" 2>&1; then
    ok "sweep report: self-contained, every SVG well-formed XML, every figure captioned ($(grep '^plots' "$T/html.txt"))"
else
    bad "sweep report HTML checks: $(grep -v '^plots' "$T/html.txt" | head -5)"
fi
[ "$(n_svgs "$H")" -ge 2 ] && ok "sweep report: $(n_svgs "$H") SVGs" || bad "sweep report: $(n_svgs "$H") SVGs, wanted >= 2"
grep -q 'data-plot="sweep-ratio"' "$H" && grep -q 'data-plot="sweep-minus-dense"' "$H" && ok "sweep report: ratio and ensemble - dense plots" || bad "sweep report: plots missing"
grep -q "Ensemble &#8722; dense NLL vs number of members K (below 0: the ensemble is better)\|Ensemble − dense NLL vs number of members K (below 0: the ensemble is better)" "$H" \
    && ok "sweep report: section 3 says ensemble − dense and which side is better" || bad "sweep report: section 3 title: $(grep -o '<h2[^>]*>3\.[^<]*' "$H")"
grep -qiw "gain" "$H" && bad "sweep report still says 'gain': $(grep -oiw '.\{30\}gain.\{30\}' "$H" | head -2)" || ok "sweep report: no 'gain' wording"
# sweep.csv: ensemble_minus_dense (+ _lo, _hi) is results.json's ensemble.minus_dense of the point,
# i.e. ensemble - dense (here every NLL difference is > 0: the ensemble is worse), no nan cells
head -1 "$T/sweep/sweep.csv" | grep -q ',ensemble_minus_dense,ensemble_minus_dense_lo,ensemble_minus_dense_hi,' && ! head -1 "$T/sweep/sweep.csv" | grep -q ',gain' \
    && ok "sweep.csv: columns ensemble_minus_dense, _lo, _hi (no 'gain')" || bad "sweep.csv header: $(head -1 "$T/sweep/sweep.csv")"
$PY - "$T/sweep" <<'PY' && ok "sweep.csv and sweep.json: ensemble_minus_dense = results.json ensemble - dense (paired), with its sign and interval" || bad "ensemble_minus_dense does not match results.json"
import csv, json, os, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(d, 'sweep.csv'))))
js = {r['dir']: r['metrics'] for r in json.load(open(os.path.join(d, 'sweep.json')))['rows']}
assert len(rows) == 4
for r in rows:
    res = json.load(open(os.path.join(d, r['dir'], 'results.json')))
    md = res['ensemble']['minus_dense']
    v, lo, hi = float(r['ensemble_minus_dense']), float(r['ensemble_minus_dense_lo']), float(r['ensemble_minus_dense_hi'])
    assert v == md['mean'] and [lo, hi] == md['ci95'], (r, md)
    # it is ensemble minus dense, sign included: the (token-weighted) paired mean equals the
    # difference of the two NLLs per token
    diff = res['ensemble']['nll_per_token'] - res['dense']['nll_per_token']
    assert abs(v - diff) < 1e-9 and (v > 0) == (diff > 0), (v, diff)
    assert js[r['dir']]['ensemble_minus_dense'] == v and js[r['dir']]['ensemble_minus_dense_ci95'] == [lo, hi]
    assert 'gain' not in js[r['dir']]
PY
grep -q 'NLL (nats/token)' "$H" && grep -q 'ensemble size K (members)' "$H" && ok "sweep report: axis labels with units" || bad "sweep report: axis labels"
# the numbers in the table are those of sweep.json (ensemble - dense with a sign and U+2212)
rows_ok=1
for i in 0 1 2 3; do
    v=$(json "$T/sweep/sweep.json" "('%+.4f' % d['rows'][$i]['metrics']['ensemble_minus_dense']).replace('-', '\u2212')")
    e=$(json "$T/sweep/sweep.json" "'%.4f' % d['rows'][$i]['metrics']['ensemble']")
    dir=$(json "$T/sweep/sweep.json" "d['rows'][$i]['dir']")
    grep -q "$v" "$H" && grep -q ">$e<" "$H" && grep -q "$dir" "$H" || { bad "row $i: ensemble - dense $v / ensemble $e / dir $dir not in the table"; rows_ok=0; }
done
[ $rows_ok = 1 ] && ok "table rows match sweep.json (dir, ensemble, ensemble - dense)"
grep -q 'local, ρ = 4' "$H" && grep -q '>unbiased<' "$H" && ok "legends: schemes and (scheme, ratio) pairs" || bad "legend labels"
grep -q 'K was not varied' "$H" && ok "ensemble - dense plot: a single K is said so" || bad "ensemble - dense plot: no single-K remark"

# resume: every point is done already; re-aggregation gives the same bytes
cp "$T/sweep/sweep.json" "$T/sweep.json.1"; cp "$H" "$T/report.html.1"
expect_rc 0 "rerun of the finished sweep" "$PATHENS" sweep "$S"
n=$(grep -c "done already" "$T/err.txt")
[ "$n" = 4 ] && ok "rerun: 'done already' for all 4 points" || bad "rerun: $n 'done already' lines: $(cat "$T/err.txt")"
expect_rc 0 "re-aggregation" "$PATHENS" sweep "$S" --aggregate
cmp -s "$T/sweep/sweep.json" "$T/sweep.json.1" && ok "sweep.json byte-identical after re-aggregation" || bad "sweep.json changed"
cmp -s "$H" "$T/report.html.1" && ok "sweep_report.html byte-identical after re-aggregation" || bad "sweep_report.html changed"

# render it
prof=$(mktemp -d "$T/chrome-profile.XXXXXX")
timeout 180 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
    --user-data-dir="$prof" --screenshot="$T/shot.png" --window-size=1200,1800 "file://$H" >"$T/chrome.log" 2>&1
rc=$?; rm -rf "$prof"
if [ $rc != 0 ] || [ ! -s "$T/shot.png" ]; then bad "chromium exit $rc, no screenshot: $(tail -3 "$T/chrome.log")"
elif $PY "$T/check_png.py" "$T/shot.png" 1200 1800 >"$T/png.txt" 2>&1; then ok "rendered by chromium, not blank: $(cat "$T/png.txt")"
else bad "screenshot $T/shot.png: $(tail -2 "$T/png.txt")"; fi
for w in 1200 1400; do
    $PY "$PATHENS_SRC/tests/check_layout.py" "$CHROMIUM" "$H" $w >"$T/layout.txt" 2>&1 && ok "$(cat "$T/layout.txt")" \
        || bad "sweep report layout at $w px: $(head -3 "$T/layout.txt")"
done

# ---- three swept keys (scheme x ratio x members), as in docs/sweeps.md: the table still fits ------
write_ini "$T/three.ini" "$T/three" "scheme = unbiased, local
ratio = 2, 4
members = 1, 2"
sed -i 's/^limit = 12/limit = 4/' "$T/three.ini"
expect_rc 0 "a 2 x 2 x 2 sweep" "$PATHENS" sweep "$T/three.ini" --quiet
expect_rc 0 "its aggregation" "$PATHENS" sweep "$T/three.ini" --aggregate
for w in 1200 1400; do
    $PY "$PATHENS_SRC/tests/check_layout.py" "$CHROMIUM" "$T/three/sweep_report.html" $w >"$T/layout.txt" 2>&1 && ok "3 swept keys: $(cat "$T/layout.txt")" \
        || bad "3-key sweep report layout at $w px: $(head -3 "$T/layout.txt")"
done

# ---- a dense-only point (members = 0): its missing values are empty cells in sweep.csv, null in sweep.json;
# the printed folder has dir/.. collapsed
mkdir -p "$T/sub"
write_ini "$T/zero.ini" "$T/sub/../zero" "scheme = local
ratio = 2, 4
members = 0"
expect_rc 0 "a members = 0 sweep" "$PATHENS" sweep "$T/zero.ini" --quiet
expect_rc 0 "its aggregation" "$PATHENS" sweep "$T/zero.ini" --aggregate
grep -q "into $T/zero/sweep.csv" "$T/err.txt" && ok "--aggregate prints the folder with dir/.. collapsed" || bad "--aggregate: $(cat "$T/err.txt")"
grep -qi nan "$T/zero/sweep.csv" && bad "sweep.csv has nan: $(grep -i nan "$T/zero/sweep.csv" | head -1)" || ok "sweep.csv: no nan"
$PY - "$T/zero" <<'PY' && ok "members = 0: ensemble, member_mean, ensemble_minus_dense, kept_fraction are empty cells / null; dense is there" || bad "members = 0 sweep.csv/json cells"
import csv, json, os, sys
rows = list(csv.DictReader(open(os.path.join(sys.argv[1], 'sweep.csv'))))
assert len(rows) == 2
for r in rows:
    assert float(r['dense']) > 0
    for k in ('member_mean', 'ensemble', 'ensemble_lo', 'ensemble_hi', 'ensemble_minus_dense', 'ensemble_minus_dense_lo', 'ensemble_minus_dense_hi', 'kept_fraction'):
        assert r[k] == '', (k, r[k])
for r in json.load(open(os.path.join(sys.argv[1], 'sweep.json')))['rows']:
    assert r['metrics']['ensemble_minus_dense'] is None and r['metrics']['ensemble'] is None
PY

# ---- an unknown key: exit 2 before running anything -----------------------------------------------
write_ini "$T/bad.ini" "$T/badsweep" "scheme = unbiased, local
ratio = 2
members = 2
bogus = 1, 2"
expect_rc 2 "sweep with an unknown key" "$PATHENS" sweep "$T/bad.ini" --quiet
grep -q "bogus" "$T/err.txt" && ok "unknown key named" || bad "unknown key message: $(cat "$T/err.txt")"
[ -e "$T/badsweep" ] && bad "the bad sweep created $T/badsweep" || ok "nothing run for the bad sweep"

# ---- a half-finished sweep: --status exits 1, the report says what is missing ----------------------
write_ini "$T/half.ini" "$T/half" "scheme = local
ratio = 2
members = 1, 2"
expect_rc 0 "sweep --index 1 only" "$PATHENS" sweep "$T/half.ini" --index 1 --quiet
expect_rc 1 "--status of a half-finished sweep" "$PATHENS" sweep "$T/half.ini" --status
grep -q "^done        1  1" "$T/out.txt" && grep -q "^missing     1  0" "$T/out.txt" && ok "--status: 1 done, 1 missing" || bad "--status: $(cat "$T/out.txt")"
expect_rc 0 "--aggregate of a half-finished sweep" "$PATHENS" sweep "$T/half.ini" --aggregate
[ "$(json "$T/half/sweep.json" "(d['points'], d['done'], len(d['rows']))")" = "(2, 1, 1)" ] && ok "sweep.json: 2 points, 1 done, 1 row" || bad "half sweep.json"
$PY "$T/check_html.py" "$T/half/sweep_report.html" >"$T/html.txt" 2>&1 && ok "half sweep report passes the HTML checks" || bad "half report: $(head -3 "$T/html.txt")"
grep -q "1 of 2 points are not finished" "$T/half/sweep_report.html" && ok "half sweep report: the missing point is noted" || bad "half report: no note"

echo "screenshot: $T/shot.png"
echo "$fails failure(s)"
[ "$fails" = 0 ]
