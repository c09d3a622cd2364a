#!/usr/bin/env bash
# cli_pathways.sh: `pathens eval` with a self-ensemble on the real stories260K and on a random ViT
# over Fashion-MNIST: outputs (results.json keys, members.csv, curve.csv, per_example.msgpack),
# invariants visible from the CLI, and bad [pathways] configs.
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}" "${PATHENS_TEST_WRITER:?}" "${PATHENS_FASHION_DIR:?}"
source "$PATHENS_SRC/tests/lib.sh"
need_fashion
lm=1; have_data stories260K.bin tok512.bin tinystories_val.txt || lm=0 # without them, lm_part is skipped
T="$PATHENS_TEST_TMP/cli_pathways"; rm -rf "$T"; mkdir -p "$T"
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
json() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
cfg="$PATHENS_SRC/configs/stories260k.ini"
common=(--set data.limit=30 --quiet)

lm_part() { # stories260K on TinyStories
"$PATHENS" eval "$cfg" "${common[@]}" --set pathways.members=3 --set pathways.scheme=local --set pathways.ratio=4 \
    --set run.per_example=1 --set run.out="$T/a"; rc=$?
[ $rc = 0 ] && ok "ensemble eval runs" || bad "ensemble eval exit $rc"
for k in dense ensemble member_mean members curve; do
    [ "$(json "$T/a/results.json" "'$k' in d")" = True ] && ok "results.json has $k" || bad "results.json lacks $k"
done
v=$(json "$T/a/results.json" "len(d['members']) == 3 and len(d['curve']) == 3 and d['curve'][2]['nll_per_token'] == d['ensemble']['nll_per_token']")
[ "$v" = True ] && ok "3 members, curve ends at the ensemble" || bad "members/curve shape"
v=$(json "$T/a/results.json" "d['ensemble']['nll_per_token'] <= d['member_mean']['nll_per_token'] and all(0 < m['kept_fraction'] < 1 for m in d['members'])")
[ "$v" = True ] && ok "mixture <= mean member; kept fraction in (0, 1)" || bad "mixture/kept"
v=$(json "$T/a/results.json" "(lambda e: e['ci95'][0] < e['mean'] < e['ci95'][1])(d['ensemble']['minus_dense'])")
[ "$v" = True ] && ok "paired difference with a 95% interval" || bad "minus_dense"
[ "$(head -1 "$T/a/members.csv" | cut -d, -f1)" = member ] && [ "$(wc -l <"$T/a/members.csv")" = 4 ] && ok "members.csv: header + 3 rows" || bad "members.csv"
[ "$(wc -l <"$T/a/curve.csv")" = 4 ] && ok "curve.csv: header + 3 rows" || bad "curve.csv"
v=$(/usr/bin/python3 - "$T/a/per_example.msgpack" <<'PY'
import sys
# minimal MessagePack check without third-party modules: top-level array of 30 maps
b = open(sys.argv[1], 'rb').read()
t = b[0]
n = t & 0x0f if 0x90 <= t <= 0x9f else (int.from_bytes(b[1:3], 'big') if t == 0xdc else -1)
print(n == 30 and (b[1 if t <= 0x9f else 3] & 0xf0) == 0x80)
PY
)
[ "$v" = True ] && ok "per_example.msgpack: an array of 30 records" || bad "per_example.msgpack"

# the same config twice gives the same bytes; the batch size changes nothing
"$PATHENS" eval "$cfg" "${common[@]}" --set pathways.members=3 --set pathways.scheme=local --set pathways.ratio=4 \
    --set run.per_example=1 --set run.out="$T/b" --set run.batch=3
cmp -s "$T/a/per_example.msgpack" "$T/b/per_example.msgpack" && ok "per-example bytes identical at batch 16 and 3" || bad "batch changed per-example bytes"
a=$(json "$T/a/results.json" "[d[k] for k in ('dense','ensemble','members','curve')]")
b=$(json "$T/b/results.json" "[d[k] for k in ('dense','ensemble','members','curve')]")
[ "$a" = "$b" ] && ok "results identical at batch 16 and 3" || bad "batch changed results"

# ratio 1 equals dense for every scheme, logit combination too
for s in unbiased local random-k window head-drop; do
    "$PATHENS" eval "$cfg" "${common[@]}" --set pathways.members=2 --set pathways.scheme=$s --set pathways.ratio=1 \
        --set pathways.combine=logit --set run.out="$T/r1_$s"
    v=$(json "$T/r1_$s/results.json" "d['ensemble']['nll_per_token'] == d['dense']['nll_per_token'] and d['members'][1]['kl_from_dense'] == 0")
    [ "$v" = True ] && ok "$s ratio 1 = dense exactly" || bad "$s ratio 1 differs from dense"
done
}
if [ $lm = 1 ]; then lm_part; else echo "skip the stories260K part: data/ lacks its files (tools/fetch-data.sh)"; fi

# image classifier: a random ViT on Fashion-MNIST, with ECE and the accuracy difference
"$PATHENS_TEST_WRITER" vit "$T/vit" --seed 3 >/dev/null || bad "mkmodel vit"
printf '[model]\npath = vit/model.safetensors\ntokenizer = none\n[data]\npath = %s/t10k-images-idx3-ubyte.gz\nlimit = 200\n[run]\nout = vitrun\n[pathways]\nmembers = 4\nscheme = unbiased\nratio = 2\n' \
    "$PATHENS_FASHION_DIR" >"$T/vit.ini"
"$PATHENS" eval "$T/vit.ini" --quiet; rc=$?
[ $rc = 0 ] && ok "ViT ensemble eval runs" || bad "ViT eval exit $rc"
v=$(json "$T/vitrun/results.json" "d['dense']['examples'] == 200 and 'ece' in d['ensemble'] and 'accuracy_minus_dense' in d['ensemble'] and d['ensemble']['nll'] <= sum(m['nll'] for m in d['members']) / 4 + 1e-12")
[ "$v" = True ] && ok "ViT: 200 images, ECE, paired accuracy difference, mixture <= mean member" || bad "ViT results: $(head -c 600 "$T/vitrun/results.json")"

# bad [pathways] values: exit 2, the key named
for kv in pathways.scheme=sparse pathways.ratio=0.5 pathways.members=-1 pathways.keep=2 pathways.lambda=0 pathways.granularity=token; do
    "$PATHENS" eval "$cfg" --set "$kv" --quiet 2>"$T/err.txt"; rc=$?
    key=${kv%%=*}
    [ $rc = 2 ] && grep -q "$key" "$T/err.txt" && ok "bad $kv: exit 2 naming $key" || bad "bad $kv: exit $rc, $(cat "$T/err.txt")"
done

echo "$fails failure(s)"
finish $fails
