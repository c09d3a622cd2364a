#!/usr/bin/env bash
# cli_eval.sh: the real `pathens` binary on the real stories260K checkpoint and data:
# help texts, inspect, eval outputs, exit codes, batch-size invariance, no half-written files.
# Every command's --help: exit 0, a worked example, only its own config keys; every example is run
# from a copy of the repository root (shipped configs) and must work; usage errors are said once
# and exit 1; the console summary labels standard errors and 95% intervals; printed paths have no
# "dir/.."; the progress line is not repeated; importance.csv has no "nan".
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}"
source "$PATHENS_SRC/tests/lib.sh"
need_data stories260K.bin stories260K_v1.bin tok512.bin tinystories_val.txt tinyshakespeare.txt
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
# updirs FILE: prints the words of FILE that are paths with a "dir/.." (a ".." after a name) and
# exits 0 when there is one; a leading "../" (relative to the current folder) is fine
updirs() {
    /usr/bin/python3 -c "
import re, sys
ws = re.split(r'[\s,;:()\'\"]+', open(sys.argv[1], encoding='utf-8', errors='replace').read())
bad = [w for w in ws if any(b == '..' and a not in ('..', '') for a, b in zip(w.split('/'), w.split('/')[1:]))]
print(' '.join(bad[:3])); sys.exit(0 if bad else 1)" "$1"
}

cfg="$PATHENS_SRC/configs/stories260k.ini"
D="$PATHENS_DATA_DIR"

# help and usage
expect_rc 0 "pathens --help" "$PATHENS" --help
grep -q "^example" "$T/out.txt" && grep -q "^  pathens eval " "$T/out.txt" && ok "pathens --help shows an example" || bad "pathens --help: no example"
expect_rc 0 "pathens eval --help" "$PATHENS" eval --help
grep -q "data.limit" "$T/out.txt" && ok "eval --help lists config keys" || bad "eval --help lacks config keys"
expect_rc 0 "pathens inspect --help" "$PATHENS" inspect --help
expect_rc 1 "unknown command" "$PATHENS" frobnicate
expect_rc 1 "eval without config" "$PATHENS" eval
expect_rc 1 "eval unknown option" "$PATHENS" eval "$cfg" --bogus

# every command's --help: usage line, a worked example of that command, exit 0
CMDS="inspect eval prune sweep train report version"
for c in $CMDS; do
    expect_rc 0 "pathens $c --help" "$PATHENS" "$c" --help
    cp "$T/out.txt" "$T/help_$c.txt"
    grep -q "^usage: pathens $c" "$T/help_$c.txt" && ok "$c --help: usage line" || bad "$c --help has no 'usage: pathens $c': $(head -2 "$T/help_$c.txt")"
    grep -q "^example" "$T/help_$c.txt" && grep -Eq "^  pathens $c( |\$)" "$T/help_$c.txt" \
        && ok "$c --help: an example of pathens $c" || bad "$c --help: no example section with a pathens $c line"
done
grep -q "(git " "$T/help_version.txt" && bad "version --help printed the version, not help" || ok "version --help prints help, not the version"
# only its own keys: eval lists its five sections and no train key; train lists train keys and none
# that only eval reads; the others list no key table at all
KEYRE='^(model|data|run|pathways|importance|train)\.[a-z_0-9]+ '
for k in data.limit run.batch pathways.members importance.ablation; do
    grep -q "^$k " "$T/help_eval.txt" || bad "eval --help lacks $k"
done
grep -q '^train\.' "$T/help_eval.txt" && bad "eval --help lists train keys: $(grep '^train\.' "$T/help_eval.txt" | head -2)" || ok "eval --help: its keys, no train.* key"
for k in train.lr train.steps model.config data.span pathways.ratio run.out; do
    grep -q "^$k " "$T/help_train.txt" || bad "train --help lacks $k"
done
grep -Eq '^(importance\.|run\.batch |run\.shard |pathways\.members |pathways\.combine |data\.mode )' "$T/help_train.txt" \
    && bad "train --help lists eval-only keys: $(grep -E '^(importance|run.batch|pathways.members)' "$T/help_train.txt" | head -2)" \
    || ok "train --help: train keys, none of eval's only"
for c in inspect prune sweep report version; do
    grep -Eq "$KEYRE" "$T/help_$c.txt" && bad "$c --help lists config keys: $(grep -E "$KEYRE" "$T/help_$c.txt" | head -1)" || ok "$c --help: no key table"
done

# usage errors: exit 1, said once (one message naming the option, one pointer to --help)
usage_once() { # usage_once DESC PHRASE CMD...
    local desc=$1 phrase=$2; shift 2
    expect_rc 1 "$desc" "$@"
    local n; n=$(grep -c -- "$phrase" "$T/err.txt")
    [ "$n" = 1 ] && [ "$(wc -l <"$T/err.txt")" = 2 ] && grep -q "^Run 'pathens.* --help' for usage" "$T/err.txt" \
        && ok "$desc: said once" || bad "$desc: not one message naming '$phrase' and one line pointing to --help: $(cat "$T/err.txt")"
}
usage_once "inspect unknown option" "--bogus" "$PATHENS" inspect "$D/stories260K.bin" --bogus
usage_once "eval unknown option" "--bogus" "$PATHENS" eval "$cfg" --bogus
usage_once "prune unknown option" "--bogus" "$PATHENS" prune "$T" --bogus
usage_once "sweep unknown option" "--bogus" "$PATHENS" sweep "$T/none.ini" --bogus
usage_once "train unknown option" "--bogus" "$PATHENS" train "$cfg" --bogus
usage_once "report unknown option" "--bogus" "$PATHENS" report "$T" --bogus
usage_once "version unknown option" "--bogus" "$PATHENS" version --bogus
usage_once "unknown command" "frobnicate" "$PATHENS" frobnicate
# missing or malformed arguments: exit 1 before anything is read
usage_once "eval --threads without a value" "--threads" "$PATHENS" eval "$cfg" --threads
usage_once "eval --threads abc" "--threads" "$PATHENS" eval "$cfg" --threads abc
usage_once "sweep --threads abc" "--threads" "$PATHENS" sweep "$T/none.ini" --threads abc
usage_once "sweep --index -3" "--index" "$PATHENS" sweep "$T/none.ini" --index -3
usage_once "sweep --set without a value" "--set" "$PATHENS" sweep "$T/none.ini" --set
usage_once "prune --budget abc" "--budget" "$PATHENS" prune "$T" --budget abc
usage_once "prune --budget without a value" "--budget" "$PATHENS" prune "$T" --budget
usage_once "inspect --format without a value" "--format" "$PATHENS" inspect "$D/stories260K.bin" --format
usage_once "report --out without a value" "--out" "$PATHENS" report "$T" --out

# every worked example runs from the repository root on the shipped configs: a copy of configs/
# (their run.out is ../runs/...), models/ and the data where configs/ expects it (../data, the repo's data/)
R="$T/root"; mkdir -p "$R"
cp -r "$PATHENS_SRC/configs" "$R/configs" && ln -s "$PATHENS_SRC/models" "$R/models" && ln -s "$(cd "$D" && pwd)" "$R/data"
for c in inspect eval prune report sweep train version; do # prune and report use the eval example's run
    i=0
    while read -r line; do
        i=$((i + 1))
        # shellcheck disable=SC2086 # the example's words, as a shell would split them
        (cd "$R" && "$PATHENS" ${line#pathens }) >"$T/ex_${c}_$i.txt" 2>&1; rc=$?
        [ $rc = 0 ] && ok "example: $line" || bad "example '$line' exit $rc: $(tail -3 "$T/ex_${c}_$i.txt")"
        u=$(updirs "$T/ex_${c}_$i.txt") && bad "example '$line' printed paths with dir/..: $u"
    done < <(sed -n '/^example/,/^$/p' "$T/help_$c.txt" | sed -n 's/^  \(pathens .*\)/\1/p')
    [ $i -gt 0 ] || bad "no example lines in $c --help"
done
for f in runs/stories260k/results.json runs/stories260k/report.html runs/stories260k/frontier.json \
         runs/sweep-stories260k/sweep.csv runs/shakespeare-char-train/model.safetensors; do
    [ -s "$R/$f" ] && ok "examples wrote $f" || bad "examples did not write $f"
done
grep -q "wrote runs/stories260k/results.json" "$T/ex_eval_1.txt" && ok "eval example: 'wrote runs/stories260k/results.json' (configs/.. collapsed)" \
    || bad "eval example: $(grep wrote "$T/ex_eval_1.txt")"

# the console summary of a run with members: every "±" is called a standard error, every bracketed
# interval a 95% CI; the LM's ensemble - dense line with its sign rule; the progress line once;
# printed paths with dir/.. collapsed; importance.csv with empty cells, never "nan"
mkdir -p "$T/sub"
expect_rc 0 "eval with members, one task (summary)" "$PATHENS" eval "$cfg" --set data.limit=10 --set run.out="$T/sub/../sum"
grep -q "±" "$T/err.txt" && ! grep "±" "$T/err.txt" | grep -vq "standard error" && ok "every ± is labelled 'standard error'" \
    || bad "± without 'standard error': $(grep "±" "$T/err.txt" | grep -v "standard error" | head -2)"
grep '\[[-+0-9]' "$T/err.txt" | grep -v "tasks, " | grep -vq "95% CI" && bad "an interval without '95% CI': $(grep '\[[-+0-9]' "$T/err.txt" | grep -v "95% CI" | grep -v tasks | head -2)" \
    || ok "every bracketed interval is labelled '95% CI'"
grep -q "^  ensemble - dense .*95% CI.*< 0: the ensemble has the lower NLL" "$T/err.txt" && ok "summary: ensemble - dense of the LM, with its sign rule" \
    || bad "summary lacks the LM's ensemble - dense line: $(sed -n '/^summary/,$p' "$T/err.txt")"
n=$(grep -c "tasks, 100%\]" "$T/err.txt")
# (builds without MPI evaluate in one pass and print no progress line)
[ "$n" -le 1 ] && ok "the 100% progress line is printed at most once ($n)" || bad "100% progress line $n times: $(grep 'tasks, ' "$T/err.txt")"
u=$(updirs "$T/err.txt") && bad "printed paths with dir/..: $u" || ok "no dir/.. in printed paths"
grep -q "wrote $T/sum/results.json" "$T/err.txt" && grep -q "report: $T/sum/report.html" "$T/err.txt" \
    && ok "printed run folder is $T/sum" || bad "printed paths: $(grep -E 'wrote|report:' "$T/err.txt")"
[ -s "$T/sum/importance.csv" ] && ! grep -qi "nan" "$T/sum/importance.csv" && ok "importance.csv: no nan (missing values are empty cells)" \
    || bad "importance.csv: $(grep -i nan "$T/sum/importance.csv" | head -2)"
/usr/bin/python3 - "$T/sum" <<'PY' && ok "importance.csv: 13 cells in every row; ablation and sampled cells empty without ablation and drop-one passes" || bad "importance.csv cells"
import csv, sys
rows = list(csv.reader(open(sys.argv[1] + "/importance.csv")))
assert all(len(r) == 13 for r in rows), set(len(r) for r in rows)
h = rows[0]
heads = [dict(zip(h, r)) for r in rows[1:] if r[0] == "head"]
assert heads and all(x["ablation_delta"] == "" and x["sampled_delta"] == "" for x in heads)  # members alone: no sampled numbers (issue 15)
PY

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
expect_rc 1 "malformed --set (a usage error)" "$PATHENS" eval "$cfg" --set nodot
expect_rc 2 "bad integer" "$PATHENS" eval "$cfg" --set run.batch=abc
expect_rc 2 "context beyond the model" "$PATHENS" eval "$cfg" --set data.context=4096 --quiet

echo "$fails failure(s)"
[ "$fails" = 0 ]
