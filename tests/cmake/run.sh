#!/usr/bin/env bash
# Packaging checks: install knead into a prefix, build a consumer with find_package, build one
# with add_subdirectory, and compile against the pkg-config file.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake -S "$root" -B "$work/build" -DKNEAD_BUILD_TESTS=OFF -DKNEAD_BUILD_BENCHMARKS=OFF -DKNEAD_BUILD_EXAMPLES=OFF \
  -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
cmake --install "$work/build" >/dev/null
cmake -S "$root/tests/cmake/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
"$work/consumer/consumer"
cmake -S "$root/tests/cmake/subdirectory" -B "$work/subdirectory" -DKNEAD_SOURCE_DIR="$root" >/dev/null
cmake --build "$work/subdirectory" >/dev/null
"$work/subdirectory/consumer"
if ! PKG_CONFIG_PATH="$work/prefix/share/pkgconfig" pkg-config --print-requires knead | grep -q '^nlohmann_json'; then
  echo "packaging: knead.pc does not require nlohmann_json" >&2
  exit 1
fi
PKG_CONFIG_PATH="$work/prefix/share/pkgconfig" g++ "$root/tests/cmake/main.cpp" -o "$work/pc-consumer" \
  $(PKG_CONFIG_PATH="$work/prefix/share/pkgconfig" pkg-config --cflags knead)
"$work/pc-consumer"
echo "packaging: install/find_package, add_subdirectory and pkg-config consumers passed"
