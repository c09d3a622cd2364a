#!/usr/bin/env bash
# cli_tokens.sh: [data] format = tokens on the real stories260K. A token file of the first 40
# TinyStories documents, each BOS + ids, written by tests/write_tokens.py (the llama2.c tokenizer of
# tests/oracle.py, not pathens' code), is evaluated with data.eos = 1: members.csv, curve.csv,
# per_example.msgpack and every figure of results.json are byte-identical to the text path on the
# same documents (also truncated at context 64, with a limit, and in uint32); without a tokenizer
# the nll figures are the same and bits per byte is null ("unknown" on the console); strided windows
# over a token stream equal text windows over the text it encodes.
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}"
source "$PATHENS_SRC/tests/lib.sh"
need_data stories260K.bin tok512.bin tinystories_val.txt
T="$PATHENS_TEST_TMP/cli_tokens"; rm -rf "$T"; mkdir -p "$T"
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
D="$PATHENS_DATA_DIR"
W="/usr/bin/python3 $PATHENS_SRC/tests/write_tokens.py $D/tok512.bin 512"
base=(eval "$PATHENS_SRC/configs/stories260k.ini" --set "model.path=$D/stories260K.bin" --set "model.tokenizer=$D/tok512.bin"
      --set pathways.members=2 --set run.per_example=1)
run() { # run NAME ARGS...: pathens eval into $T/NAME
    local name=$1; shift
    "$PATHENS" "${base[@]}" --quiet --set "run.out=$T/$name" "$@" >"$T/$name.out" 2>&1 || { bad "$name: exit $?"; cat "$T/$name.out"; }
}
# same A B [drop...]: every results.json block but config/data/pathens (and the dropped keys) equal,
# members.csv, curve.csv and per_example.msgpack byte-identical unless keys are dropped
same() {
    local a=$1 b=$2; shift 2
    /usr/bin/python3 - "$T/$a/results.json" "$T/$b/results.json" "$@" <<'PY' || return 1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3]); drop = set(sys.argv[3:])
def strip(x):
    if isinstance(x, dict): return {k: strip(v) for k, v in x.items() if k not in drop}
    if isinstance(x, list): return [strip(v) for v in x]
    return x
for k in ("config", "data", "pathens"): a.pop(k); b.pop(k)
if strip(a) != strip(b):
    for k in a:
        if strip(a[k]) != strip(b.get(k)): print("differs:", k)
    sys.exit(1)
PY
    [ $# -gt 0 ] && return 0
    for f in members.csv curve.csv per_example.msgpack; do cmp -s "$T/$a/$f" "$T/$b/$f" || { echo "differs: $f"; return 1; }; done
}

$W "$D/tinystories_val.txt" 40 "$T/docs16.bin" uint16 >/dev/null && $W "$D/tinystories_val.txt" 40 "$T/docs32.bin" uint32 >/dev/null \
    && ok "token files written (40 documents)" || bad "write_tokens.py"
[ "$(stat -c %s "$T/docs32.bin")" = $(($(stat -c %s "$T/docs16.bin") * 2)) ] && ok "uint32 file twice the uint16 one" || bad "file sizes"
tok=(--set data.format=tokens --set data.eos=1)

run text --set data.limit=40
run tok16 "${tok[@]}" --set "data.path=$T/docs16.bin"
same text tok16 && ok "uint16 token file = text path on the same 40 documents (results, members, curve, per_example)" || bad "uint16 token file differs from the text path"
/usr/bin/python3 -c "import json, sys; assert json.load(open(sys.argv[1]))['data']['kind'] == 'tokens'" "$T/tok16/results.json" && ok "results.json data.kind = tokens" || bad "data.kind"
run tok32 "${tok[@]}" --set data.dtype=uint32 --set "data.path=$T/docs32.bin"
same text tok32 && ok "uint32 token file = text path" || bad "uint32 token file differs"

run text_c64 --set data.limit=40 --set data.context=64
run tok_c64 "${tok[@]}" --set "data.path=$T/docs16.bin" --set data.context=64
same text_c64 tok_c64 && ok "documents truncated at context 64: identical" || bad "context 64 differs"
run text_l7 --set data.limit=7
run tok_l7 "${tok[@]}" --set "data.path=$T/docs16.bin" --set data.limit=7
same text_l7 tok_l7 && ok "data.limit = 7: identical" || bad "limit 7 differs"

# no tokenizer: the same nll figures, bytes unknown
"$PATHENS" "${base[@]}" --set "run.out=$T/notok" "${tok[@]}" --set "data.path=$T/docs16.bin" --set model.tokenizer=none \
    >"$T/notok.out" 2>&1 || { bad "no tokenizer: exit $?"; cat "$T/notok.out"; }
same text notok bits_per_byte bytes && ok "no tokenizer: every figure but the bytes identical" || bad "no tokenizer: figures differ"
/usr/bin/python3 -c "
import json, sys; r = json.load(open(sys.argv[1]))
assert r['dense']['bits_per_byte'] is None and r['dense']['bytes'] == 0, r['dense']
assert r['ensemble']['bits_per_byte'] is None
assert 'unknown' in r['data']['bytes'], r['data']" "$T/notok/results.json" \
    && ok "no tokenizer: bits_per_byte null, data.bytes says why" || bad "no tokenizer: bytes fields"
grep -q "bits/byte unknown" "$T/notok.out" && grep -q "bytes unknown (no tokenizer)" "$T/notok.out" \
    && ok "no tokenizer: the console says bits/byte unknown" || { bad "console bytes"; cat "$T/notok.out"; }

# windows: the first 3 documents as one paragraph; text windows (BOS + encode(file)) against the
# token stream of that one document, context 48, stride 20
/usr/bin/python3 -c "
import sys; t = open(sys.argv[1], encoding='utf-8').read().split('\n\n')
open(sys.argv[2], 'w', encoding='utf-8').write(' '.join(p.strip().replace('\n', ' ') for p in t[:3]))" \
    "$D/tinystories_val.txt" "$T/three.txt"
$W "$T/three.txt" 1 "$T/three.bin" >/dev/null || bad "write_tokens.py (windows)"
win=(--set data.mode=windows --set data.context=48 --set data.stride=20)
run text_win "${win[@]}" --set "data.path=$T/three.txt"
run tok_win "${win[@]}" --set data.format=tokens --set "data.path=$T/three.bin"
same text_win tok_win && ok "strided windows over a token stream = text windows" || bad "windows differ"
/usr/bin/python3 -c "
import json, sys; r = json.load(open(sys.argv[1])); assert r['data']['sequences'] > 3, r['data']" "$T/tok_win/results.json" \
    && ok "several windows" || bad "too few windows"

finish "$fails"
