#!/usr/bin/env bash
# cli_eval.sh: the real `pathens` binary on the real stories260K checkpoint and data:
# help texts, inspect, eval outputs, exit codes, batch-size invariance, no half-written files.
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}"
source "$PATHENS_SRC/tests/lib.sh"
need_data stories260K.bin stories260K_v1.bin tok512.bin tinystories_val.txt
T="$PATHENS_TEST_TMP/cli_eval"; rm -rf "$T"; mkdir -p "$T"
fails=0
ok()   { echo "ok   $*"; }
bad()  { echo "FAIL $*"; fails=$((fails + 1)); }
expect_rc() { # expect_rc RC DESC CMD...
    local want=$1 desc=$2; shift 2
    "$@" >"$T/out.txt" 2>"$T/err.txt"; local rc=$?
    if [ "$rc" = "$want" ]; then ok "$desc (exit $rc)"; else bad "$desc: exit $rc, wanted $want"; cat "$T/err.txt"; fi
}
json() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

cfg="$PATHENS_SRC/configs/stories260k.ini"
D="$PATHENS_DATA_DIR"

# help and usage
expect_rc 0 "pathens --help" "$PATHENS" --help
expect_rc 0 "pathens eval --help" "$PATHENS" eval --help
grep -q "data.limit" "$T/out.txt" && ok "eval --help lists config keys" || bad "eval --help lacks config keys"
expect_rc 0 "pathens inspect --help" "$PATHENS" inspect --help
expect_rc 1 "unknown command" "$PATHENS" frobnicate
expect_rc 1 "eval without config" "$PATHENS" eval
expect_rc 1 "eval unknown option" "$PATHENS" eval "$cfg" --bogus

# inspect: both llama2.c formats
for f in stories260K.bin stories260K_v1.bin; do
    expect_rc 0 "inspect $f" "$PATHENS" inspect "$D/$f"
    grep -q "^parameters: 260032$" "$T/out.txt" && ok "$f: 260032 parameters" || bad "$f: parameter count"
    grep -Eq "layers.4.mlp.w3.weight +F32 +\[172, 64\]" "$T/out.txt" && ok "$f: lists tensors with dtype and shape" \
        || bad "$f: tensor listing"
done
head -c 50000 "$D/stories260K.bin" >"$T/trunc.bin"
expect_rc 2 "inspect truncated llama2.c file" "$PATHENS" inspect "$T/trunc.bin"
grep -q "truncated" "$T/err.txt" && ok "message says truncated" || bad "message: $(cat "$T/err.txt")"

# eval: results.json content
out="$T/run1"
expect_rc 0 "eval stories260k limit 40" "$PATHENS" eval "$cfg" --set data.limit=40 --set run.out="$out" --quiet
[ -f "$out/results.json" ] && ok "results.json written" || bad "no results.json"
[ -z "$(ls "$out" | grep tmp)" ] && ok "no temporary files left" || bad "temporary files left: $(ls "$out")"
for key in nll_per_token perplexity bits_per_token bits_per_byte tokens bytes; do
    v=$(json "$out/results.json" "d['dense']['$key']") && [ "$v" != "None" ] && ok "dense.$key = $v" || bad "dense.$key missing"
done
v=$(json "$out/results.json" "abs(d['dense']['perplexity'] - __import__('math').exp(d['dense']['nll_per_token'])) < 1e-9")
[ "$v" = "True" ] && ok "perplexity = exp(nll)" || bad "perplexity != exp(nll)"
v=$(json "$out/results.json" "d['config']['data']['limit'] == 40 and d['pathens']['version'] != '' and len(d['pathens']['git_commit']) > 0")
[ "$v" = "True" ] && ok "resolved config, version and commit echoed" || bad "config echo"
v=$(json "$out/results.json" "'seconds' not in open(sys.argv[1]).read()")
[ "$v" = "True" ] && ok "no timings in results.json" || bad "timings leaked into results.json"
[ -f "$out/timing.json" ] && ok "timing.json written" || bad "no timing.json"

# batch size never changes a number; v1 file gives the same numbers as v0
"$PATHENS" eval "$cfg" --set data.limit=40 --set run.out="$T/run2" --set run.batch=1 --quiet
"$PATHENS" eval "$cfg" --set data.limit=40 --set run.out="$T/run3" --set run.batch=7 \
    --set model.path="$D/stories260K_v1.bin" --quiet
a=$(json "$out/results.json" "d['dense']"); b=$(json "$T/run2/results.json" "d['dense']"); c=$(json "$T/run3/results.json" "d['dense']")
[ "$a" = "$b" ] && ok "batch 16 and batch 1 give identical numbers" || bad "batch size changed results: $a vs $b"
[ "$a" = "$c" ] && ok "v1 file at batch 7 gives identical numbers" || bad "v0/v1 differ: $a vs $c"

# windows mode
expect_rc 0 "eval windows mode" "$PATHENS" eval "$cfg" --set data.mode=windows --set data.context=128 \
    --set data.stride=64 --set data.limit=20 --set run.out="$T/win" --quiet
v=$(json "$T/win/results.json" "d['data']['mode'] == 'windows' and d['dense']['tokens'] == 128 - 1 + 19 * 64")
[ "$v" = "True" ] && ok "windows: 20 windows of 128 / stride 64 score 127 + 19*64 tokens" || bad "windows token count: $(json "$T/win/results.json" "d['dense']")"

# bad input: each a clear message and exit 2, and no results.json
expect_rc 2 "missing data file" "$PATHENS" eval "$cfg" --set data.path="$T/nope.txt" --set run.out="$T/bad1" --quiet
grep -q "nope.txt" "$T/err.txt" && ok "message names the missing file" || bad "message: $(cat "$T/err.txt")"
[ ! -e "$T/bad1/results.json" ] && ok "no results.json after failure" || bad "results.json after failure"
expect_rc 2 "missing model file" "$PATHENS" eval "$cfg" --set model.path="$T/nope.bin" --quiet
printf '[model]\npath = x\nbogus = 1\n' >"$T/bad.ini"
expect_rc 2 "unknown config key" "$PATHENS" eval "$T/bad.ini"
grep -q "bogus" "$T/err.txt" && ok "message names the key" || bad "message: $(cat "$T/err.txt")"
expect_rc 2 "malformed --set" "$PATHENS" eval "$cfg" --set nodot
expect_rc 2 "bad integer" "$PATHENS" eval "$cfg" --set run.batch=abc
expect_rc 2 "context beyond the model" "$PATHENS" eval "$cfg" --set data.context=4096 --quiet

echo "$fails failure(s)"
[ "$fails" = 0 ]
