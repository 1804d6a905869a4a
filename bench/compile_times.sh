#!/usr/bin/env bash
# Compile time of a one-line program `#include <H>\nint main() {}` for each header H: the best wall
# time of N compilations (one compiler process at a time, so one core; -O2 -std=c++20) and the
# number of preprocessed lines (-E | wc -l). With no arguments it measures knead's umbrellas, MAF's
# header alone, and the heaviest things they include, to show what dominates. Prints two Markdown
# tables (bench/README.md, "Compile times"): the times, and each knead header's preprocessed lines
# by where they come from (Eigen, nlohmann-json, the compiler's intrinsics headers such as
# <immintrin.h>, the C++ standard library, knead, the C library).
#
#   bench/compile_times.sh                       # the default list, best of 3, g++
#   CXX=clang++ RUNS=5 bench/compile_times.sh knead/core.hpp Eigen/Core
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cxx=${CXX:-g++}
runs=${RUNS:-3}
eigen=$(pkg-config --cflags eigen3 2>/dev/null || echo -I/usr/include/eigen3)
flags=(-std=c++20 -O2 -I"$root/include")
read -r -a eigen_flags <<<"$eigen"
flags+=("${eigen_flags[@]}")
if [ $# -gt 0 ]; then
  headers=("$@")
else
  headers=(knead/core.hpp knead/io.hpp knead/train.hpp knead/knead.hpp knead/bijectors/maf.hpp
           knead/core/bijector.hpp Eigen/Core immintrin.h nlohmann/json.hpp random iostream)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "$($cxx --version | head -n 1); flags: ${flags[*]/#-I$root\//-I} -c; best of $runs; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| \`#include <…>\` | preprocessed lines | compile, s (best of $runs) |"
echo "|---|---:|---:|"
for header in "${headers[@]}"; do
  printf '#include <%s>\nint main() {}\n' "$header" >"$work/one.cpp"
  lines=$($cxx "${flags[@]}" -E "$work/one.cpp" | wc -l)
  best=""
  for _ in $(seq "$runs"); do
    start=$(date +%s%N)
    $cxx "${flags[@]}" -c "$work/one.cpp" -o "$work/one.o"
    end=$(date +%s%N)
    ms=$(((end - start) / 1000000))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  printf '| `%s` | %d | %d.%02d |\n' "$header" "$lines" $((best / 1000)) $((best % 1000 / 10))
done

# Preprocessed lines by origin: the line markers of -E output name the file each line comes from.
echo
echo "| \`#include <…>\` | Eigen | nlohmann-json | intrinsics | C++ library | knead | C library, other |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for header in "${headers[@]}"; do
  case "$header" in knead/*) ;; *) continue ;; esac
  printf '#include <%s>\nint main() {}\n' "$header" >"$work/one.cpp"
  $cxx "${flags[@]}" -E "$work/one.cpp" | awk -v header="$header" '
    /^# [0-9]+ "/ {
      file = $3
      if (file ~ /eigen3\//) origin = 1
      else if (file ~ /nlohmann\//) origin = 2
      else if (file ~ /gcc\/.*\/include\/[a-z0-9_]*intrin\.h"$/) origin = 3
      else if (file ~ /\/c\+\+\//) origin = 4
      else if (file ~ /include\/knead\//) origin = 5
      else origin = 6
      next
    }
    { lines[origin]++ }
    END { printf "| `%s` | %d | %d | %d | %d | %d | %d |\n", header, lines[1], lines[2], lines[3], lines[4], lines[5], lines[6] }'
done
