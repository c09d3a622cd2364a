#!/usr/bin/env bash
# mpi_determinism.sh: results.json is byte-identical for 1, 2, 3 and 4 ranks (real mpirun,
# oversubscribed) and equal to the serial code path run with the same OPENBLAS_NUM_THREADS (1 and 2).
# Between 1 and 2 BLAS threads OpenBLAS itself may round differently on some CPUs (Zen: 2e-8
# relative in the dense NLL), so that pair is compared to 1e-6 relative, not byte for byte.
set -u
: "${PATHENS:?}" "${PATHENS_DATA_DIR:?}" "${PATHENS_SRC:?}" "${PATHENS_TEST_TMP:?}" "${MPIEXEC:?}"
source "$PATHENS_SRC/tests/lib.sh"
need_data stories260K.bin tok512.bin tinystories_val.txt
T="$PATHENS_TEST_TMP/mpi_determinism"; rm -rf "$T"; mkdir -p "$T"
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
out="$T/run" # the same run.out every time: it is echoed in results.json
args=(eval "$PATHENS_SRC/configs/stories260k.ini" --quiet --set data.limit=40 --set run.shard=3
      --set pathways.members=3 --set pathways.scheme=random-k --set pathways.ratio=3 --set run.out="$out")
run() { # run NAME RANKS THREADS
    rm -rf "$out"
    if [ "$2" = 0 ]; then
        OPENBLAS_NUM_THREADS=$3 "$PATHENS" "${args[@]}"
    else
        OPENBLAS_NUM_THREADS=$3 "$MPIEXEC" -n "$2" "$PATHENS" "${args[@]}"
    fi
    local rc=$?
    [ $rc = 0 ] && cp "$out/results.json" "$T/$1.json" || bad "$1: exit $rc"
}
run serial 0 1
run serial_t2 0 2
for n in 1 2 3 4; do
    for t in 1 2; do
        run "n${n}_t$t" "$n" "$t"
        ref=serial; [ "$t" = 2 ] && ref=serial_t2
        cmp -s "$T/$ref.json" "$T/n${n}_t$t.json" && ok "$n ranks x $t BLAS threads: results.json byte-identical to serial x $t" \
            || bad "$n ranks x $t threads differs: $(diff "$T/$ref.json" "$T/n${n}_t$t.json" | head -5)"
    done
done
v=$(/usr/bin/python3 -c "
import json,sys
def flat(x, p=''):
    if isinstance(x, dict):
        for k, v in x.items(): yield from flat(v, p + '/' + k)
    elif isinstance(x, list):
        for i, v in enumerate(x): yield from flat(v, p + '/' + str(i))
    else: yield p, x
# sampled head importance is a discontinuous statistic of per-member outcomes (a rounding flip moves
# it by whole units: issue 15), so it is left out of the tolerance comparison
keep=('/dense/', '/ensemble/', '/member_mean/', '/members/', '/curve/')
a=dict(kv for kv in flat(json.load(open(sys.argv[1]))) if kv[0].startswith(keep))
b=dict(kv for kv in flat(json.load(open(sys.argv[2]))) if kv[0].startswith(keep))
bad=[k for k in a if k not in b or (isinstance(a[k], float) and abs(a[k]-b[k]) > 1e-6*max(1.0, abs(a[k]))) or (not isinstance(a[k], float) and a[k] != b[k] and not k.startswith('/config/run/threads'))]
print(len(a), bad[:5])" "$T/serial.json" "$T/serial_t2.json")
case "$v" in *" []") ok "1 vs 2 BLAS threads: every number within 1e-6 relative ($v)";; *) bad "1 vs 2 BLAS threads: $v";; esac
grep -q '"ensemble"' "$T/serial.json" && ok "the compared results hold an ensemble" || bad "no ensemble in results"

# members of one shard split over tasks (run.member_block = 2 of 3): any rank count gives the bytes
# of the serial run of that config, and every number equals the unsplit run's
args+=(--set run.member_block=2)
run split_serial 0 1
for n in 1 3 4; do
    run "split_n$n" "$n" 1
    cmp -s "$T/split_serial.json" "$T/split_n$n.json" && ok "member blocks, $n ranks: byte-identical to serial" \
        || bad "member blocks, $n ranks differ: $(diff "$T/split_serial.json" "$T/split_n$n.json" | head -5)"
done
v=$(/usr/bin/python3 -c "
import json,sys
a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
print(all(a[k]==b[k] for k in ('dense','ensemble','member_mean','members','curve','importance')))" "$T/serial.json" "$T/split_n3.json")
[ "$v" = True ] && ok "split members give exactly the unsplit numbers" || bad "split and unsplit numbers differ"
echo "$fails failure(s)"
[ "$fails" = 0 ]
