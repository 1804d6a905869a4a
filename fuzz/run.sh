#!/usr/bin/env bash
# Builds the fuzzers of the safetensors reader and of the flow loader with clang (libFuzzer +
# AddressSanitizer + UBSan), writes their seed corpora, and fuzzes each for half the given time. Exits
# non-zero on any finding (crash, sanitizer report, uncaught exception, timeout, out-of-memory) and
# prints the path of each offending input, saved in the output folder.
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
# so a size taken from the file without checking is reported as a finding. The saved findings of
# fuzz/regressions/<target>/ are replayed first, as part of the seed corpus (libFuzzer adds new
# inputs only to the first folder). A finding ends libFuzzer with a non-zero status and an input
# saved as <prefix>{crash,timeout,oom,leak}-<hash>: each fuzzer runs even if the other found
# something, and every saved input is listed with the command that replays it.
found=0
fuzz() {
  local target=$1 prefix=$2 status=0
  shift 2
  rm -f "$prefix"crash-* "$prefix"timeout-* "$prefix"oom-* "$prefix"leak-*
  "$out/${target}_fuzzer" -max_total_time="$half" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -dict="fuzz/$target.dict" -artifact_prefix="$prefix" -print_final_stats=1 "$@" \
    "fuzz/regressions/$target" || status=$?
  local inputs=()
  for file in "$prefix"crash-* "$prefix"timeout-* "$prefix"oom-* "$prefix"leak-*; do
    [[ -e $file ]] && inputs+=("$file")
  done
  if ((status != 0 || ${#inputs[@]} > 0)); then
    found=1
    echo "FUZZ FINDING: ${target}_fuzzer exited with status $status" >&2
    for file in "${inputs[@]}"; do
      echo "  input saved as $file; replay: $out/${target}_fuzzer $file" >&2
      echo "  once fixed, keep it: cp $file fuzz/regressions/$target/<what-it-is>.safetensors" >&2
    done
    ((${#inputs[@]} > 0)) || echo "  (no input saved: see the fuzzer's output above)" >&2
  fi
}
fuzz safetensors "$out/" "$out/corpus" "$out/seeds"
fuzz flow "$out/flow-" "$out/flow_corpus" "$out/flow_seeds"
if ((found)); then
  echo "fuzz/run.sh: FINDINGS above" >&2
  exit 1
fi
echo "fuzz/run.sh: no findings"
