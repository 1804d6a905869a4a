#!/usr/bin/env bash
# Packaging checks. knead's three targets: knead::core (knead/core.hpp, Eigen only), knead::io
# (knead/io.hpp, + nlohmann-json) and knead::knead (knead/knead.hpp, everything). This script
# - installs knead into a prefix and builds consumers with find_package: knead::knead and knead::io
#   (consumer/), and knead::core with COMPONENTS core and nlohmann-json disabled (core_consumer/);
# - installs knead configured with -DKNEAD_IO=OFF and nlohmann-json disabled, builds the core
#   consumer against it, and checks that the io component is then reported missing;
# - checks that configuring knead without nlohmann-json (and KNEAD_IO on) fails with a clear error;
# - builds a knead::knead and a knead::core consumer with add_subdirectory (subdirectory/);
# - compiles against the pkg-config modules knead-core and knead.
# The knead::core programs compile with a stand-in nlohmann/json.hpp that stops the build
# (no_nlohmann_json/) first on their include path.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tests/cmake"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
no_options=(-DKNEAD_BUILD_TESTS=OFF -DKNEAD_BUILD_BENCHMARKS=OFF -DKNEAD_BUILD_EXAMPLES=OFF -DKNEAD_BUILD_TOOLS=OFF)
fail() {
  echo "packaging: $*" >&2
  exit 1
}

echo "packaging: install, find_package(knead) (knead::knead, knead::io)"
cmake -S "$root" -B "$work/build" "${no_options[@]}" -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
cmake --install "$work/build" >/dev/null
cmake -S "$here/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
"$work/consumer/consumer"
"$work/consumer/io_consumer"
echo "packaging: find_package(knead COMPONENTS core) does not look for nlohmann-json"
cmake -S "$here/core_consumer" -B "$work/core_consumer_full" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null

echo "packaging: install with -DKNEAD_IO=OFF and no nlohmann-json, find_package(knead COMPONENTS core) (knead::core)"
cmake -S "$root" -B "$work/build-core" --no-warn-unused-cli -DKNEAD_IO=OFF -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON \
  -DCMAKE_INSTALL_PREFIX="$work/prefix-core" >/dev/null
cmake --install "$work/build-core" >/dev/null
[ ! -e "$work/prefix-core/share/pkgconfig/knead.pc" ] || fail "-DKNEAD_IO=OFF installed knead.pc"
cmake -S "$here/core_consumer" -B "$work/core_consumer" -DCMAKE_PREFIX_PATH="$work/prefix-core" >/dev/null
cmake --build "$work/core_consumer" >/dev/null
"$work/core_consumer/core_consumer"
if cmake -S "$here/consumer" -B "$work/consumer-no-io" -DCMAKE_PREFIX_PATH="$work/prefix-core" >"$work/log" 2>&1; then
  fail "find_package(knead) with io found a knead installed without knead::io"
fi
grep -q "installed without knead::io" "$work/log" || fail "no clear message for the missing io component: $(cat "$work/log")"

echo "packaging: configuring without nlohmann-json and KNEAD_IO on fails clearly"
if cmake -S "$root" -B "$work/build-no-json" "${no_options[@]}" -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON \
  >"$work/log" 2>&1; then
  fail "knead configured without nlohmann-json although KNEAD_IO is on"
fi
grep -q "need nlohmann-json 3.9 or newer" "$work/log" || fail "no clear configure error: $(cat "$work/log")"

echo "packaging: add_subdirectory (knead::knead, knead::core)"
cmake -S "$here/subdirectory" -B "$work/subdirectory" -DKNEAD_SOURCE_DIR="$root" >/dev/null
cmake --build "$work/subdirectory" >/dev/null
"$work/subdirectory/consumer"
"$work/subdirectory/core_consumer"

echo "packaging: pkg-config (knead-core, knead)"
export PKG_CONFIG_PATH="$work/prefix/share/pkgconfig"
pkg-config --print-requires knead | grep -q '^nlohmann_json' || fail "knead.pc does not require nlohmann_json"
pkg-config --print-requires knead | grep -q '^knead-core' || fail "knead.pc does not require knead-core"
! pkg-config --print-requires knead-core | grep -q nlohmann || fail "knead-core.pc requires nlohmann_json"
# shellcheck disable=SC2046  # pkg-config prints several flags
g++ -I"$here/no_nlohmann_json" "$here/core_main.cpp" -o "$work/pc-core-consumer" $(pkg-config --cflags knead-core)
"$work/pc-core-consumer"
# shellcheck disable=SC2046
g++ "$here/main.cpp" -o "$work/pc-consumer" $(pkg-config --cflags knead)
"$work/pc-consumer"
echo "packaging: find_package, -DKNEAD_IO=OFF, add_subdirectory and pkg-config consumers of knead::core, knead::io and knead::knead passed"
