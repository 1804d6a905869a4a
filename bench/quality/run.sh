#!/usr/bin/env bash
# Test NLL of `knead fit` on public real tables shipped in Debian packages: the tool's defaults,
# a full-covariance Gaussian (closed form) and a small sweep (README.md, "Real data").
#
#   bench/quality/run.sh                  # all tables, the full sweep
#   TABLES="faithful sonar" SWEEP_LAYERS="3 8" bench/quality/run.sh
#
# Environment: KNEAD (the binary, default build/tools/knead), WORK (default build/quality; the
# data and every run's files go there, never into the repository), TABLES, SWEEP_LAYERS,
# SWEEP_HIDDEN (comma-separated sizes per entry), SWEEP_LR, SEEDS, JOBS (runs at once, default 2),
# EPOCHS_<table> (e.g. EPOCHS_diamonds=30: an epoch limit for every run on that table).
# Finished runs (their summary JSON exists) are not run again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
KNEAD=${KNEAD:-$root/build/tools/knead}
WORK=${WORK:-$root/build/quality}
TABLES=${TABLES:-faithful sonar satellite diamonds movielens}
SWEEP_LAYERS=${SWEEP_LAYERS:-3 5 8}
SWEEP_HIDDEN=${SWEEP_HIDDEN:-64,64 128,128 256,256}
SWEEP_LR=${SWEEP_LR:-1e-3 3e-4}
SEEDS=${SEEDS:-0}
JOBS=${JOBS:-2}
PYTHON=/usr/bin/python3  # Debian's, with python3-numpy

need=()
for p in r-base-core r-cran-mlbench r-cran-ggplot2 r-cran-dslabs python3-numpy; do
  dpkg -s "$p" > /dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi
[[ -x $KNEAD ]] || { echo "no knead binary at $KNEAD (cmake --build build --target knead_tool)" >&2; exit 1; }

mkdir -p "$WORK"
cd "$WORK"
Rscript "$here/extract.R" .
# shellcheck disable=SC2086
"$PYTHON" "$here/prepare.py" . $TABLES

jobs_file=$WORK/jobs.txt
: > "$jobs_file"
for t in $TABLES; do
  mkdir -p "$t/runs"
  epochs_var=EPOCHS_$t
  extra=""
  [[ -n ${!epochs_var:-} ]] && extra="--epochs ${!epochs_var}"
  for s in $SEEDS; do
    echo "$t defaults_s$s --seed $s $extra" >> "$jobs_file"
    for l in $SWEEP_LAYERS; do
      for h in $SWEEP_HIDDEN; do
        for r in $SWEEP_LR; do
          # the tool's defaults are run once, as "defaults"
          [[ $l == 5 && $h == 128,128 && $r == 1e-3 ]] && continue
          echo "$t L${l}_H${h}_lr${r}_s$s --layers $l --hidden $h --lr $r --seed $s $extra" >> "$jobs_file"
        done
      done
    done
  done
done

run_one() {
  local t=$1 tag=$2
  shift 2
  local out=$WORK/$t/runs/$tag
  [[ -f $out.json ]] && return 0
  "$KNEAD" fit "$WORK/$t/train.csv" -o "$out.safetensors" --test "$WORK/$t/test.csv" \
    --summary "$out.json.tmp" --threads 1 --quiet "$@" 2> "$out.log" && mv "$out.json.tmp" "$out.json"
  echo "$t $tag: $(grep '^test NLL' "$out.log" || echo FAILED)"
}
export -f run_one
export KNEAD WORK
sed 's/ *$//' "$jobs_file" | xargs -P "$JOBS" -L 1 bash -c 'run_one "$@" || true' _

# shellcheck disable=SC2086
"$PYTHON" "$here/report.py" . $TABLES
