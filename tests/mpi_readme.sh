#!/usr/bin/env bash
# mpi_readme.sh: the README's quick start, run as written, gives the figures the README quotes.
# Both the command (its config file) and the figures ("it prints dense A [lo, hi], ensemble B,
# gain G [lo, hi]") are parsed from README.md itself, so the README cannot drift from the shipped
# model: `mpirun -n 2 pathens eval <that config>` (run.out moved to the test folder), then the
# dense accuracy and its 95% interval, the ensemble accuracy and the paired gain with its interval
# must round to the quoted 4 decimals in results.json and be what the summary prints.
# About 2.5 minutes on 2 cores (CTest labels mpi and readme).
set -u
: "${PATHENS:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}" "${MPIEXEC:?}"
source "$PATHENS_SRC/tests/lib.sh"
need_fashion
T="$PATHENS_TEST_TMP/mpi_readme"; rm -rf "$T"; mkdir -p "$T"
PY=/usr/bin/python3
README="$PATHENS_SRC/README.md"
# the quick start's eval command and the quoted figures
parsed=$($PY - "$README" <<'PY'
import re, sys
t = open(sys.argv[1], encoding="utf-8").read()
qs = t[t.index("## Quick start"):]
cmd = re.search(r"mpirun -n (\d+) [^\n]*?pathens eval (\S+\.ini)", qs)
num = r"([−-]?\d+\.\d+)"
fig = re.search(r"prints\s+dense\s+" + num + r"\s+\[" + num + r",\s+" + num + r"\],\s+ensemble\s+" + num +
                r",\s+ensemble\s+[−-]\s+dense\s+" + num + r"\s+\[" + num + r",\s+" + num + r"\]", qs)
if not cmd or not fig:
    print("FAIL: README.md quick start: no 'mpirun -n N ... pathens eval CONFIG.ini' command or no "
          "'prints dense A [lo, hi], ensemble B, ensemble − dense G [lo, hi]' sentence")
    sys.exit(1)
print(cmd.group(1), cmd.group(2), *(g.replace("−", "-") for g in fig.groups()))
PY
) || { echo "$parsed"; exit 1; }
read -r ranks config want <<<"$parsed"
echo "README: mpirun -n $ranks ... pathens eval $config; quoted: $want"
out="$T/run"
cd "$PATHENS_SRC" || exit 1
t0=$(date +%s)
"$MPIEXEC" --oversubscribe -n "$ranks" "$PATHENS" eval "$config" --set run.out="$out" >"$T/out" 2>&1; rc=$?
echo "$(( $(date +%s) - t0 )) s"
[ $rc = 0 ] || { echo "FAIL: the quick start's run: exit $rc: $(tail -5 "$T/out")"; exit 1; }
$PY - "$out/results.json" "$T/out" $want <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
printed = open(sys.argv[2]).read()
want = sys.argv[3:]
num = r"([+-]?\d+\.\d+)"
m = [re.search(r"dense accuracy\s+" + num + r"\s+95% CI \[" + num + ", " + num + r"\]", printed),
     re.search(r"ensemble accuracy\s+" + num, printed),
     re.search(r"ensemble - dense\s+" + num + r"\s+95% CI \[" + num + ", " + num + r"\]", printed)]
shown = [g for x in m for g in (x.groups() if x else [])]
if len(shown) != 7:
    print("FAIL the printed summary lacks the lines 'dense accuracy A 95% CI [lo, hi]', 'ensemble accuracy B', "
          "'ensemble - dense G 95% CI [lo, hi]'")
    sys.exit(1)
e = d["ensemble"]
got = [d["dense"]["accuracy"], *d["dense"]["accuracy_ci95"], e["accuracy"], e["accuracy_minus_dense"]["mean"],
       *e["accuracy_minus_dense"]["ci95"]]
names = ["dense accuracy", "dense ci95 low", "dense ci95 high", "ensemble accuracy", "gain", "gain ci95 low",
         "gain ci95 high"]
fails = 0
for n, g, w in zip(names, got, want):
    r = f"{g:.4f}"
    if r == "-0.0000": r = "0.0000"
    good = r == w
    fails += not good
    print(f"{'ok  ' if good else 'FAIL'} {n}: results.json {g!r} -> {r}, README {w}")
    if shown[names.index(n)] != w:
        fails += 1
        print(f"FAIL {n}: the summary prints {shown[names.index(n)]}, README {w}")
print("mpi_readme:", "all passed" if not fails else f"{fails} failure(s)")
sys.exit(1 if fails else 0)
PY
