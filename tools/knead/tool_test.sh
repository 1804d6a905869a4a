#!/usr/bin/env bash
# Tests of the knead command-line tool, run by CTest: tool_test.sh path/to/knead
#
# - fit → log-prob on a 2-D Gaussian whose density is known in closed form: the model's mean NLL
#   on fresh rows is within 0.02 nats of the true density's;
# - the model's density in data units integrates to 1 over a grid (the whitening's log-det is part
#   of the model);
# - an untrained model (--epochs 0) is the full-covariance Gaussian of the training rows: its test
#   NLL equals the closed form computed here in awk, with --preprocess whiten (the default);
# - sample → log-prob: the model's NLL of its own samples is near the Gaussian's entropy;
# - inspect names the columns and the preprocessing; plot writes a PNG;
# - Ctrl-C saves the best model and exits 130; --resume ends bit for bit as an uninterrupted run;
# - .npy in and out, and a ;-separated table with a comment line, give the same scores as CSV;
# - bad input (a constant column, a ragged row, an empty file, a non-number, NaN, an unknown
#   column, a missing file): exit 1, one line naming the file/line/column, no model file left;
#   usage errors exit 2.
set -euo pipefail
knead=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "tool_test: $*" >&2
  exit 1
}

# x = μ + L z with μ = (3, −1), L = [[2, 0], [0.6, 0.8]]: Σ = L Lᵀ = [[4, 1.2], [1.2, 1]], det Σ = 2.56.
# Box–Muller on awk's seeded rand(); `truth` appends log N(x; μ, Σ) as a third column.
gaussian() {  # gaussian ROWS SEED
  awk -v n="$1" -v seed="$2" 'BEGIN {
    srand(seed); pi = atan2(0, -1); print "alpha,beta"
    for (i = 0; i < n; i++) {
      u1 = 1 - rand(); u2 = rand(); r = sqrt(-2 * log(u1))
      z1 = r * cos(2 * pi * u2); z2 = r * sin(2 * pi * u2)
      printf "%.9g,%.9g\n", 3 + 2 * z1, -1 + 0.6 * z1 + 0.8 * z2
    } }'
}
true_mean_nll() {  # the mean of −log N(x; μ, Σ) over the rows of a CSV with a header
  awk -F, 'NR > 1 {
    a = $1 - 3; b = $2 + 1
    # Σ⁻¹ = [[1, −1.2], [−1.2, 4]] / 2.56
    q = (a * a - 2.4 * a * b + 4 * b * b) / 2.56
    s += 0.5 * q + log(2 * atan2(0, -1)) + 0.5 * log(2.56); n++
  } END { printf "%.6f\n", s / n }' "$1"
}
mean_of() { awk -F, 'NR > 1 { s += $1; n++ } END { printf "%.6f\n", s / n }' "$1"; }
close_to() {  # close_to A B TOLERANCE WHAT
  awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }' ||
    fail "$4: $1 is not within $3 of $2"
}

gaussian 4000 1 >"$work/train.csv"
gaussian 2000 2 >"$work/test.csv"
"$knead" fit "$work/train.csv" -o "$work/model.safetensors" --layers 3 --hidden 32,32 --epochs 40 --lr 3e-3 \
  --test "$work/test.csv" --summary "$work/summary.json" --loss-plot "$work/loss.png" --quiet
[ -s "$work/model.safetensors" ] || fail "fit wrote no model"
grep -q '"test"' "$work/summary.json" || fail "the summary has no test score"
[ "$(head -c 4 "$work/loss.png" | od -An -tx1 | tr -d ' \n')" = "89504e47" ] || fail "fit wrote no loss plot"

"$knead" log-prob "$work/model.safetensors" "$work/test.csv" -o "$work/log_prob.csv" 2>"$work/log_prob.err"
[ "$(wc -l <"$work/log_prob.csv")" -eq 2001 ] || fail "log-prob wrote $(wc -l <"$work/log_prob.csv") lines, expected 2001"
grep -q "NLL .* ± .* nats" "$work/log_prob.err" || fail "log-prob printed no mean NLL: $(cat "$work/log_prob.err")"
model_nll=$(awk -F, 'NR > 1 { s -= $1; n++ } END { printf "%.6f\n", s / n }' "$work/log_prob.csv")
truth=$(true_mean_nll "$work/test.csv")
echo "test NLL: model $model_nll, true density $truth"
close_to "$model_nll" "$truth" 0.02 "the fitted model's test NLL"

# ∫ p over [−7, 13] × [−6, 4] (beyond 5 σ in each direction) on a 200 × 200 grid, in data units.
awk 'BEGIN { print "alpha,beta"; for (i = 0; i < 200; i++) for (j = 0; j < 200; j++)
  printf "%.9g,%.9g\n", -7 + (i + 0.5) * 0.1, -6 + (j + 0.5) * 0.05 }' >"$work/grid.csv"
"$knead" log-prob "$work/model.safetensors" "$work/grid.csv" -o "$work/grid_log_prob.csv" 2>/dev/null
integral=$(awk -F, 'NR > 1 { s += exp($1) * 0.1 * 0.05 } END { printf "%.6f\n", s }' "$work/grid_log_prob.csv")
echo "integral of the density over the grid: $integral"
close_to "$integral" 1 0.01 "the density's integral in data units"

"$knead" sample "$work/model.safetensors" -n 4000 --seed 3 -o "$work/samples.csv"
[ "$(head -1 "$work/samples.csv")" = "alpha,beta" ] || fail "samples lack the column names: $(head -1 "$work/samples.csv")"
"$knead" log-prob "$work/model.safetensors" "$work/samples.csv" -o "$work/sample_log_prob.csv" 2>/dev/null
entropy=$(awk 'BEGIN { printf "%.6f\n", log(2 * atan2(0, -1)) + 1 + 0.5 * log(2.56) }')
self_nll=$(awk -F, 'NR > 1 { s -= $1; n++ } END { printf "%.6f\n", s / n }' "$work/sample_log_prob.csv")
echo "NLL of the model's own samples: $self_nll; entropy of the Gaussian: $entropy"
close_to "$self_nll" "$entropy" 0.06 "the model's NLL of its own samples"
sample_mean=$(awk -F, 'NR > 1 { s += $1; n++ } END { printf "%.6f\n", s / n }' "$work/samples.csv")
close_to "$sample_mean" 3 0.1 "the mean of the samples' first column"

# .npy out and in; a semicolon-separated copy of the test table with a comment line scores the same.
"$knead" sample "$work/model.safetensors" -n 500 --seed 3 -o "$work/samples.npy"
"$knead" log-prob "$work/model.safetensors" "$work/samples.npy" -o "$work/from_npy.csv" 2>/dev/null
# 9 significant digits give back the same float, so both inputs are the same numbers.
head -501 "$work/sample_log_prob.csv" | cmp -s - "$work/from_npy.csv" ||
  fail "the same samples scored differently from .npy and from CSV"
{ echo "# a comment"; tr ',' ';' <"$work/test.csv"; } >"$work/test_semicolon.csv"
"$knead" log-prob "$work/model.safetensors" "$work/test_semicolon.csv" -o "$work/semicolon.csv" 2>/dev/null
cmp -s "$work/semicolon.csv" "$work/log_prob.csv" || fail "a ;-separated table with a comment scored differently"

"$knead" inspect "$work/model.safetensors" >"$work/inspect.txt"
grep -q "columns (2): alpha, beta" "$work/inspect.txt" || fail "inspect: $(cat "$work/inspect.txt")"
grep -q "preprocessing: whiten (mean .*log|det L|" "$work/inspect.txt" || fail "inspect names no preprocessing"

# --epochs 0: the flow starts as the identity, so the model is N(μ, Σ) with the training rows'
# maximum-likelihood μ and Σ (--val keeps every row of train.csv for training). The closed form:
# NLL(x) = ½ (x − μ)ᵀ Σ⁻¹ (x − μ) + log 2π + ½ log det Σ in 2-D.
"$knead" fit "$work/train.csv" -o "$work/gaussian.safetensors" --val "$work/test.csv" --epochs 0 --quiet
"$knead" log-prob "$work/gaussian.safetensors" "$work/test.csv" -o "$work/gaussian_log_prob.csv" 2>/dev/null
gaussian_model_nll=$(awk -F, 'NR > 1 { s -= $1; n++ } END { printf "%.6f\n", s / n }' "$work/gaussian_log_prob.csv")
gaussian_truth=$(awk -F, 'FNR == 1 { next }
  NR == FNR { n++; sa += $1; sb += $2; saa += $1 * $1; sbb += $2 * $2; sab += $1 * $2; next }
  !ready { ma = sa / n; mb = sb / n; caa = saa / n - ma * ma; cbb = sbb / n - mb * mb; cab = sab / n - ma * mb
           det = caa * cbb - cab * cab; ready = 1 }
  { a = $1 - ma; b = $2 - mb; q = (cbb * a * a - 2 * cab * a * b + caa * b * b) / det
    t += 0.5 * q + log(2 * atan2(0, -1)) + 0.5 * log(det); m++ }
  END { printf "%.6f\n", t / m }' "$work/train.csv" "$work/test.csv")
echo "untrained model's test NLL $gaussian_model_nll; the training rows' Gaussian, closed form: $gaussian_truth"
close_to "$gaussian_model_nll" "$gaussian_truth" 0.001 "the untrained whitened model's test NLL"
# A duplicated column makes the covariance singular: whitening adds a ridge and says so in one line.
awk -F, 'NR == 1 { print $0 ",alpha_again"; next } { print $0 "," $1 }' "$work/train.csv" >"$work/duplicated.csv"
"$knead" fit "$work/duplicated.csv" -o "$work/duplicated.safetensors" --epochs 1 --quiet 2>"$work/duplicated.err"
grep -q "^knead fit: .*singular.*whitening with covariance + 1e-.* x its diagonal$" "$work/duplicated.err" ||
  fail "no ridge reported for a duplicated column: $(cat "$work/duplicated.err")"
"$knead" inspect "$work/duplicated.safetensors" | grep -q "ridge 1e-" || fail "inspect shows no ridge"
"$knead" fit "$work/train.csv" -o "$work/standardized.safetensors" --val "$work/test.csv" --epochs 0 \
  --preprocess standardize --quiet
"$knead" inspect "$work/standardized.safetensors" | grep -q "preprocessing: standardize (mean" ||
  fail "inspect does not name standardize"
grep -q "data_crc32" "$work/inspect.txt" || fail "inspect shows no data hash"

"$knead" plot "$work/model.safetensors" "$work/test.csv" -o "$work/corner.png"
[ "$(head -c 8 "$work/corner.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "plot wrote no PNG"

# Ctrl-C (here raised after step 70 by the test hook KNEAD_TEST_INTERRUPT_AT_STEP, through the same
# handler) saves the best model so far and exits 130; --resume from the checkpoint of the last
# finished epoch ends exactly as the uninterrupted run: the same log densities to the last digit.
run=(fit "$work/train.csv" --layers 2 --hidden 16 --epochs 8 --checkpoint-every 1 --quiet)
"$knead" "${run[@]}" -o "$work/whole.safetensors"
set +e
KNEAD_TEST_INTERRUPT_AT_STEP=70 "$knead" "${run[@]}" -o "$work/cut.safetensors" 2>"$work/cut.err"
status=$?
set -e
[ "$status" -eq 130 ] || fail "an interrupted fit exited $status, expected 130: $(cat "$work/cut.err")"
"$knead" inspect "$work/cut.safetensors" | grep -q "interrupted: true" || fail "the interrupted model is not marked"
"$knead" "${run[@]}" -o "$work/cut.safetensors" --resume "$work/cut.safetensors.checkpoint"
"$knead" log-prob "$work/whole.safetensors" "$work/test.csv" -o "$work/whole.csv" 2>/dev/null
"$knead" log-prob "$work/cut.safetensors" "$work/test.csv" -o "$work/resumed.csv" 2>/dev/null
cmp -s "$work/whole.csv" "$work/resumed.csv" || fail "the resumed run differs from the uninterrupted one"

# Bad input: exit 1, one line naming what and where, and no model file.
expect_error() {  # expect_error STATUS PATTERN ARGS...
  local status=$1 pattern=$2
  shift 2
  rm -f "$work/bad.safetensors"
  set +e
  "$knead" "$@" >"$work/out.txt" 2>"$work/err.txt"
  local got=$?
  set -e
  [ "$got" -eq "$status" ] || fail "'$*' exited $got, expected $status: $(cat "$work/err.txt")"
  grep -q -- "$pattern" "$work/err.txt" || fail "'$*': the message '$(cat "$work/err.txt")' lacks '$pattern'"
  [ ! -e "$work/bad.safetensors" ] || fail "'$*' left a model file"
}
printf 'a,b\n1,5\n2,5\n3,5\n' >"$work/constant.csv"
expect_error 1 "column 'b' .* is constant" fit "$work/constant.csv" -o "$work/bad.safetensors"
printf 'a,b\n1,2\n3\n' >"$work/ragged.csv"
expect_error 1 "line 3" fit "$work/ragged.csv" -o "$work/bad.safetensors"
: >"$work/empty.csv"
expect_error 1 "empty" fit "$work/empty.csv" -o "$work/bad.safetensors"
printf 'a,b\n1,2\n3,x4\n' >"$work/word.csv"
expect_error 1 "line 3.*column 2" fit "$work/word.csv" -o "$work/bad.safetensors"
printf 'a,b\n1,2\n3,nan\n' >"$work/nan.csv"
expect_error 1 "line 3" fit "$work/nan.csv" -o "$work/bad.safetensors"
expect_error 1 "no column 'gamma'" fit "$work/train.csv" --columns alpha,gamma -o "$work/bad.safetensors"
expect_error 1 "no file" fit "$work/missing.csv" -o "$work/bad.safetensors"
expect_error 1 "knead log-prob: .*missing.safetensors" log-prob "$work/missing.safetensors" "$work/test.csv"
expect_error 1 "knead plot: " plot "$work/model.safetensors" "$work/test.csv" -o "$work/no/such/dir/corner.png"
expect_error 2 "required" fit "$work/train.csv"
expect_error 2 "--lr" fit "$work/train.csv" -o "$work/bad.safetensors" --lr 0
expect_error 2 "" bogus-command
echo "tool_test: all passed"
