#!/usr/bin/env bash
# Installs what is missing, builds the examples (Release) and trains a MAF on Two Moons.
# Pictures and summary.json land in out/moons/. Extra arguments go to train_2d.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
knead_install_deps
build=${KNEAD_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target train_2d
"$build/examples/train_2d" --dataset moons --flow maf --layers 4 --out out/moons "$@"
