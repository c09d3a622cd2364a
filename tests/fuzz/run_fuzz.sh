#!/usr/bin/env bash
# run_fuzz.sh: the CTest entries of tests/fuzz (label "fuzz").
#   run_fuzz.sh replay HARNESS CORPUS_DIR                every corpus file once
#   run_fuzz.sh fuzz   HARNESS CORPUS_DIR SECONDS WORK   fuzz for SECONDS from the corpus
# Fails on any crash, sanitizer report (ASan, UBSan), leak, timeout (10 s for one input), the
# harness' own oracle (fuzz_util.h) or an allocation over 2 GB. New inputs and crash files go
# under WORK (never into the committed corpus); the message says how to replay a crash.
set -euo pipefail
mode=$1 bin=$2 corpus=$3
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OPENBLAS_NUM_THREADS=1 # one core per fuzzer (ctest -j2 runs two)
opts=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048)
name=$(basename "$bin")
case $mode in
replay)
    mapfile -t files < <(find "$corpus" -type f | LC_ALL=C sort)
    [ "${#files[@]}" -gt 0 ] || { echo "run_fuzz.sh: no corpus files in $corpus" >&2; exit 1; }
    echo "$name: replaying ${#files[@]} corpus files of $corpus"
    # the readers' own error messages are expected here: keep only libFuzzer's lines and reports
    if ! "$bin" "${opts[@]}" -close_fd_mask=3 "${files[@]}"; then
        echo "FAIL $name: a corpus file crashed it (see the report above: the file is named on the" \
             "'Running:' line before it); replay one with: $bin FILE" >&2
        exit 1
    fi
    ;;
fuzz)
    secs=$4 work=$5
    rm -rf "$work"
    mkdir -p "$work/new" "$work/crashes"
    if ! "$bin" "${opts[@]}" -close_fd_mask=3 -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$work/crashes/" "$work/new" "$corpus"; then
        echo "FAIL $name: a finding, saved under $work/crashes/:" >&2
        ls -l "$work/crashes" >&2 || true
        echo "replay with: $bin $work/crashes/FILE (minimise: $bin -minimize_crash=1 -runs=10000 FILE)" >&2
        exit 1
    fi
    ;;
*)
    echo "usage: run_fuzz.sh replay HARNESS CORPUS_DIR | fuzz HARNESS CORPUS_DIR SECONDS WORK" >&2
    exit 1
    ;;
esac
