#!/usr/bin/env bash
# Installs what is missing, builds knead's tests (Release) and runs the whole suite with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
knead_install_deps
build=${KNEAD_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DKNEAD_BUILD_BENCHMARKS=OFF -DKNEAD_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)"
