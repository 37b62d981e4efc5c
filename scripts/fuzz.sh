#!/usr/bin/env bash
# Fuzzes every file reader that has a libFuzzer target: builds each tests/fuzz/fuzz_<name>.cpp with
# clang (libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer) and runs it for DURATION
# seconds (default 60), one target after the other. Exits non-zero at the first finding.
#
#   scripts/fuzz.sh [DURATION]
#
# Adding a target needs no edit here. In tests/fuzz/fuzz_<name>.cpp, say what it links:
#   // fuzz-sources: core/serialize.cpp core/tensor.cpp     (paths from the repository root)
#   // fuzz-libs: -lopenblas -fopenmp                        (optional)
# Seeds go in tests/fuzz/corpus/fuzz_<name>/ (read only), a dictionary in
# tests/fuzz/fuzz_<name>.dict (optional). What the fuzzer learns is kept between runs in
# build/fuzz/corpus/fuzz_<name>/; a crashing input is saved in build/fuzz/artifacts/ and can be
# replayed with `build/fuzz/fuzz_<name> <file>`. The CMake build never sees tests/fuzz/ (it
# globs tests/test_*.cpp only).
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-60}"
case "$duration" in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [DURATION_SECONDS]" >&2; exit 2 ;;
esac
build="${PAYLESS_FUZZ_BUILD:-build/fuzz}"
cxx="${PAYLESS_FUZZ_CXX:-}"
if [ -z "$cxx" ]; then
  for candidate in clang++ clang++-14; do
    command -v "$candidate" >/dev/null 2>&1 && { cxx=$candidate; break; }
  done
fi
[ -n "$cxx" ] || { echo "fuzz.sh: clang++ not found (install clang and libclang-rt-14-dev)" >&2; exit 1; }

# -O1 -g: fast enough to explore, readable stack traces. No recovery from UB: it must stop the run.
# PAYLESS_NO_BUFFER_CACHE: freed tensor buffers really are freed, so ASan sees a use after free.
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -DPAYLESS_NO_BUFFER_CACHE -I.)
mkdir -p "$build/artifacts" "$build/logs"

shopt -s nullglob
targets=(tests/fuzz/fuzz_*.cpp)
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no tests/fuzz/fuzz_*.cpp" >&2; exit 1; }

for source in "${targets[@]}"; do
  name=$(basename "$source" .cpp)
  read -r -a sources <<<"$(sed -n 's|^// fuzz-sources:||p' "$source" | head -n 1)"
  read -r -a libs <<<"$(sed -n 's|^// fuzz-libs:||p' "$source" | head -n 1)"
  if [ ${#sources[@]} -eq 0 ]; then
    echo "fuzz.sh: $source has no '// fuzz-sources:' line naming the sources it links" >&2
    exit 1
  fi
  # Rebuild when the target, or any source or header in the folders it links from, changed.
  folders=(tests/fuzz)
  for s in "${sources[@]}"; do folders+=("$(dirname "$s")"); done
  if [ ! -x "$build/$name" ] || [ -n "$(find "${folders[@]}" \( -name '*.cpp' -o -name '*.h' \) \
        -newer "$build/$name" -print -quit)" ]; then
    echo "== $name: building with $cxx"
    "$cxx" "${flags[@]}" "$source" "${sources[@]}" -o "$build/$name" "${libs[@]}"
  fi

  corpus="$build/corpus/$name"  # first corpus folder: where libFuzzer writes what it finds
  mkdir -p "$corpus"
  args=(-max_total_time="$duration" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$build/artifacts/$name-" "$corpus")
  [ -d "tests/fuzz/corpus/$name" ] && args+=("tests/fuzz/corpus/$name")
  [ -f "tests/fuzz/$name.dict" ] && args=(-dict="tests/fuzz/$name.dict" "${args[@]}")

  echo "== $name: fuzzing for ${duration}s (log: $build/logs/$name.log)"
  if ! "$build/$name" "${args[@]}" >"$build/logs/$name.log" 2>&1; then
    tail -n 80 "$build/logs/$name.log"
    echo "fuzz.sh: $name found a failure; the input is in $build/artifacts/" >&2
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' "$build/logs/$name.log" || true
  grep -E '^#[0-9]+[[:space:]]+DONE' "$build/logs/$name.log" | tail -n 1 || true
done
echo "== fuzzing: no findings"
