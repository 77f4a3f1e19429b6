#!/usr/bin/env bash
# The first command of the README: install what is needed, build a release binary and run
# Tracehouse on its embedded default config (or pass your own: ./scripts/run.sh --config F).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTH_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)"
exec ./build/tracehouse "$@"
