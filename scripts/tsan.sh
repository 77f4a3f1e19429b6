#!/usr/bin/env bash
# The test suite under ThreadSanitizer, run by hand (not in .ci/run: TSan runs the servers
# 5-15 times slower, and the overload and browser tests measure time and memory):
#   scripts/tsan.sh [ctest args...]      e.g. scripts/tsan.sh -R 'unit|it.faults'
# Builds build-tsan (Debug, -O1, gcc's -fsanitize=thread) and runs ctest there. A race makes
# a unit test fail, and makes tracehouse exit with 66 at shutdown, which the integration
# tests' clean-stop check reports. tests/tsan.supp says what is suppressed, and why.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="-fsanitize=thread -O1 -g" \
  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread >/dev/null
cmake --build build-tsan -j"$(nproc)"
if [[ $# -eq 0 ]]; then
  set -- -E 'it\.(overload|webui|ui_serve)'
fi
TSAN_OPTIONS="suppressions=$root/tests/tsan.supp second_deadlock_stack=1 history_size=4" \
  TH_SANITIZED=1 ctest --test-dir build-tsan --output-on-failure -j"$(nproc)" "$@"
