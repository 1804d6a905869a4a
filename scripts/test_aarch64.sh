#!/usr/bin/env bash
# Cross-compiles knead's tests for aarch64 (ARM64) Linux with Debian's g++-aarch64-linux-gnu and runs
# the whole suite under qemu-user with CTest (cmake/toolchains/aarch64-linux-gnu.cmake). Installs what
# is missing; prints the wall time of the build and of the test run; exits non-zero on any failure.
# Build directory: $KNEAD_AARCH64_BUILD_DIR, build-aarch64 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
qemu=qemu-user
command -v qemu-aarch64-static >/dev/null && qemu=qemu-user-static
knead_install_deps g++-aarch64-linux-gnu "$qemu"

build=${KNEAD_AARCH64_BUILD_DIR:-build-aarch64}
cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake -DCMAKE_BUILD_TYPE=Release \
  -DKNEAD_BUILD_BENCHMARKS=OFF -DKNEAD_BUILD_EXAMPLES=OFF -DKNEAD_BUILD_TOOLS=OFF -DKNEAD_TEST_PROGRAMS=per-folder >/dev/null

start=$SECONDS
cmake --build "$build" -j2
build_seconds=$((SECONDS - start))

# Emulation is several times slower than the host: each test may take up to 30 minutes.
start=$SECONDS
status=0
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" --timeout 1800 --no-tests=error || status=$?
test_seconds=$((SECONDS - start))
echo "aarch64: build ${build_seconds} s, tests under qemu ${test_seconds} s (wall time)"
exit $status
