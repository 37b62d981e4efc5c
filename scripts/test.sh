#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what is missing, builds the
# release and the sanitizer (ASan + UBSan) configurations, runs the unit tests under the
# sanitizers, fuzzes the file readers briefly, and runs every test of the release build with
# ctest. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/install_deps.sh

echo "== release build"
cmake --preset release >/dev/null
cmake --build --preset release -j"$jobs"

echo "== sanitizer build (ASan + UBSan) and unit tests"
cmake --preset asan >/dev/null
cmake --build --preset asan -j"$jobs" --target payless_tests
# [slow] cases (end-to-end training) are run by the release build below; under the sanitizers
# they would take many minutes and add nothing the unit tests do not already cover.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 OMP_WAIT_POLICY=PASSIVE \
  build/asan/payless_tests "~[slow]" --reporter compact

if command -v clang++ >/dev/null 2>&1 && [ -x scripts/fuzz.sh ]; then
  echo "== fuzzing the file readers"
  scripts/fuzz.sh "${PAYLESS_FUZZ_SECONDS:-20}"
fi

echo "== release tests"
ctest --preset release -j"$jobs"
