#!/usr/bin/env bash
# run_fuzz.sh: the CTest entries of tests/fuzz (label "fuzz").
#   run_fuzz.sh replay HARNESS CORPUS_DIR [SEED...]                every corpus file (and seed) once
#   run_fuzz.sh fuzz   HARNESS CORPUS_DIR SECONDS WORK [SEED...]   fuzz for SECONDS from the corpus
# SEED: a file of data/ (tools/fetch-data.sh) used as a seed without being copied into the corpus;
# an absent one is left out with a note, or fails under CI=true.
# Fails on any crash, sanitizer report (ASan, UBSan), leak, timeout (10 s for one input), the
# harness' own oracle (fuzz_util.h) or an allocation over 2 GB, naming each input and its report.
# New inputs, crash files and libFuzzer's log go under WORK (never into the committed corpus).
set -euo pipefail
mode=$1 bin=$2 corpus=$3
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OPENBLAS_NUM_THREADS=1 # one core per fuzzer (ctest -j2 runs two)
opts=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048)
# the harnesses' scratch folders (fuzz_util.c) go here, not /dev/shm: a crashing input leaves its own
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pathens-fuzz-run.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export PATHENS_FUZZ_TMP=$tmp
name=$(basename "$bin")
seeds_from() { # seeds_from SEED...: the readable ones into the array seeds
    seeds=()
    local f
    for f in "$@"; do
        if [ -r "$f" ]; then seeds+=("$f")
        elif [ "${CI:-}" = true ]; then echo "FAIL $name: seed $f is missing (CI=true; run tools/fetch-data.sh)" >&2; exit 1
        else echo "$name: seed $f is missing, left out (tools/fetch-data.sh fills data/)"; fi
    done
}
# first line of the report an input gives (for the summary)
why() { "$bin" "${opts[@]}" "$1" 2>&1 | grep -m1 -E 'runtime error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|fuzz oracle|SUMMARY' | cut -c1-240; }
case $mode in
replay)
    seeds_from "${@:4}"
    mapfile -t files < <(find "$corpus" -type f | LC_ALL=C sort)
    files+=("${seeds[@]}")
    [ "${#files[@]}" -gt 0 ] || { echo "run_fuzz.sh: no corpus files in $corpus" >&2; exit 1; }
    echo "$name: replaying ${#files[@]} corpus files of $corpus, one process each"
    bad=0
    for f in "${files[@]}"; do
        # the readers' own error messages are expected: keep only libFuzzer's lines and reports
        if ! out=$("$bin" "${opts[@]}" -close_fd_mask=3 "$f" 2>&1); then
            bad=$((bad + 1))
            echo "FAIL $f: $(echo "$out" | grep -m1 -E 'runtime error|ERROR: |fuzz oracle|SUMMARY' | cut -c1-240)"
        fi
    done
    if [ "$bad" -gt 0 ]; then
        echo "FAIL $name: $bad of ${#files[@]} corpus files crashed it; full report: $bin FILE" >&2
        exit 1
    fi
    ;;
fuzz)
    secs=$4 work=$5
    seeds_from "${@:6}"
    rm -rf "$work"
    mkdir -p "$work/new" "$work/crashes"
    [ "${#seeds[@]}" = 0 ] || cp "${seeds[@]}" "$work/new/" # libFuzzer starts from new/ and the corpus
    # fork mode keeps fuzzing after a finding (the corpus may hold reproducers of known findings
    # whose fixes are not in yet); every finding is a file in crashes/ and fails the test
    "$bin" "${opts[@]}" -close_fd_mask=3 -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
        -max_total_time="$secs" -artifact_prefix="$work/crashes/" "$work/new" "$corpus" >"$work/log.txt" 2>&1 || true
    grep -E '^#[0-9]+: cov' "$work/log.txt" | tail -1 || true
    mapfile -t found < <(find "$work/crashes" -type f | LC_ALL=C sort)
    if ! grep -q -E '^#[0-9]+: cov|INFO: fuzzing done|DONE' "$work/log.txt"; then
        echo "FAIL $name: libFuzzer did not run; its log:" >&2
        tail -20 "$work/log.txt" >&2
        exit 1
    fi
    if [ "${#found[@]}" -gt 0 ]; then
        echo "FAIL $name: ${#found[@]} finding(s) in $secs s, saved under $work/crashes/:" >&2
        for f in "${found[@]:0:10}"; do echo "  $(basename "$f"): $(why "$f")" >&2; done
        echo "replay: $bin FILE; minimise: $bin -minimize_crash=1 -runs=20000 FILE" >&2
        exit 1
    fi
    ;;
*)
    echo "usage: run_fuzz.sh replay HARNESS CORPUS_DIR | fuzz HARNESS CORPUS_DIR SECONDS WORK" >&2
    exit 1
    ;;
esac
