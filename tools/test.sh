#!/usr/bin/env bash
# test.sh: the whole test suite, the command the README and CI run.
#   1. Release build (PATHENS_WITH_MPI=ON), every CTest entry;
#   2. AddressSanitizer + UndefinedBehaviorSanitizer build of the serial core
#      (PATHENS_WITH_MPI=OFF), every CTest entry.
# Tests read real data from ../shared/data and fail (never skip) if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPATHENS_SANITIZE=ON -DPATHENS_WITH_MPI=OFF
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"
echo "pathens: all tests passed (Release + ASan/UBSan)"
