#!/usr/bin/env bash
# Installs what is missing, builds knead's tests and the knead command-line tool (Release) and runs the
# whole suite with CTest (the tool's own test, tools/knead/tool_test.sh, included).
# The tests are built as one program per folder of tests/ (KNEAD_TEST_PROGRAMS=per-folder, about
# half the build time of one program per source file; tests/CMakeLists.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
knead_install_deps
build=${KNEAD_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DKNEAD_BUILD_BENCHMARKS=OFF -DKNEAD_BUILD_EXAMPLES=OFF \
  -DKNEAD_TEST_PROGRAMS=per-folder >/dev/null
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)"
