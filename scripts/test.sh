#!/usr/bin/env bash
# The second command of the README, and what CI runs: install what the tests need, then
#  0. the Release build of scripts/run.sh (optimised builds warn differently),
#  1. a Debug build (-Werror) and every test (cmocka unit tests and the integration tests
#     that drive the real binary with the OpenTelemetry JS SDK),
#  2. the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer,
#  3. a short libFuzzer run of every fuzz target (FUZZ_SECONDS each, default 30),
#  4. the clang-format check.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc)
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

./scripts/install-deps.sh --test
(cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)

echo "== format check"
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
clang-format --dry-run -Werror $files

echo "== release build (what the README's first command builds)"
cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release -DTH_TESTS=OFF >/dev/null
cmake --build build-rel -j"$jobs"

echo "== debug build and tests"
cmake -S . -B build-debug -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-debug -j"$jobs"
ctest --test-dir build-debug --output-on-failure -j"$jobs"

echo "== ASan + UBSan build and tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTH_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
# TH_SANITIZED tells the integration tests that memory figures are inflated by ASan's
# shadow memory and quarantine, so RSS bounds are not asserted in this run.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  LSAN_OPTIONS=suppressions="$root/tests/lsan.supp" TH_SANITIZED=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

echo "== fuzz targets, ${FUZZ_SECONDS}s each"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DTH_FUZZ=ON -DTH_TESTS=OFF \
  -DCMAKE_C_COMPILER=clang >/dev/null
cmake --build build-fuzz -j"$jobs"
passed=0
failed=0
for dir in tests/fuzz/*/; do
  name=$(basename "$dir")
  bin=build-fuzz/tests/fuzz_$name
  [[ -x $bin ]] || continue
  work=$(mktemp -d)
  cp -r "$dir"corpus/. "$work"/ 2>/dev/null || true
  dict=()
  [[ -f $dir$name.dict ]] && dict=(-dict="$dir$name.dict")
  if "$bin" "$work" "${dict[@]}" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 \
       -artifact_prefix="$root/build-fuzz/$name-" >"build-fuzz/$name.log" 2>&1; then
    echo "fuzz_$name: ok ($(grep -c '' "build-fuzz/$name.log") log lines)"
    passed=$((passed + 1))
  else
    echo "fuzz_$name: FAILED"; tail -40 "build-fuzz/$name.log"
    failed=$((failed + 1))
  fi
  rm -rf "$work"
done
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
