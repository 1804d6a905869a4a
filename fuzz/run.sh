#!/usr/bin/env bash
# Builds the fuzzers of the safetensors reader and of the flow loader with clang (libFuzzer +
# AddressSanitizer + UBSan), writes their seed corpora, and fuzzes each for half the given time. Exits non-zero on any finding (crash, sanitizer report,
# uncaught exception, timeout, out-of-memory); the offending input is saved in the output folder.
# Usage: fuzz/run.sh [seconds, default 60]      Output folder: $KNEAD_FUZZ_DIR or build-fuzz/
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
out=${KNEAD_FUZZ_DIR:-build-fuzz}
source scripts/deps.sh
knead_install_deps clang libclang-rt-14-dev
cxx=${KNEAD_FUZZ_CXX:-clang++}

# Eigen and nlohmann-json as system headers, so -Werror covers only knead's own code.
read -r -a eigen <<<"$(pkg-config --cflags eigen3 | sed 's/-I/-isystem /g')"
# -Wno-unused-lambda-capture: clang 14 wrongly flags the [this] captures of Chain (chain.hpp), which
# call member templates.
flags=(-std=c++20 -g -O1 -Iinclude "${eigen[@]}" -Wall -Wextra -Wpedantic -Werror -Wno-unused-lambda-capture)
mkdir -p "$out/corpus" "$out/flow_corpus"
rm -rf "$out/seeds" "$out/flow_seeds"

"$cxx" "${flags[@]}" fuzz/make_corpus.cpp -o "$out/make_corpus"
"$out/make_corpus" "$out/seeds" "$out/flow_seeds"
for target in safetensors flow; do
  "$cxx" "${flags[@]}" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
    "fuzz/${target}_fuzzer.cpp" -o "$out/${target}_fuzzer"
done
half=$(( (seconds + 1) / 2 ))

# -timeout: an input taking over 10 s counts as a hang; -rss_limit_mb also caps single allocations,
# so a size taken from the file without checking is reported as a finding.
"$out/safetensors_fuzzer" -max_total_time="$half" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -dict=fuzz/safetensors.dict -artifact_prefix="$out/" -print_final_stats=1 "$out/corpus" "$out/seeds"
"$out/flow_fuzzer" -max_total_time="$half" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -dict=fuzz/flow.dict -artifact_prefix="$out/flow-" -print_final_stats=1 "$out/flow_corpus" "$out/flow_seeds"
