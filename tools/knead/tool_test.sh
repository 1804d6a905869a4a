#!/usr/bin/env bash
# Tests of the knead command-line tool, run by CTest: tool_test.sh path/to/knead
#
# - fit → log-prob on a 2-D Gaussian whose density is known in closed form: the model's mean NLL
#   on fresh rows is within 0.02 nats of the true density's, also with --actnorm and --mixing lu;
# - the model's density in data units integrates to 1 over a grid (the whitening's log-det is part
#   of the model);
# - an untrained model (--epochs 0) is the full-covariance Gaussian of the training rows: its test
#   NLL equals the closed form computed here in awk, with --preprocess whiten (the default);
# - sample → log-prob: the model's NLL of its own samples is near the Gaussian's entropy;
# - inspect names the columns and the preprocessing; plot writes a PNG;
# - Ctrl-C saves the best model and exits 130; --resume ends bit for bit as an uninterrupted run;
# - .npy in and out, and a ;-separated table with a comment line, give the same scores as CSV;
# - log-prob --skip-invalid leaves out (and lists by line) unreadable, NaN, infinite and ragged rows
#   of a CSV file and NaN and infinite rows of a .npy file (listed by row); without it each is an
#   error naming the line or row;
# - fit --dequantize on integer data of a known distribution: log-prob's bound is within a tolerance
#   below the true mean log probability; samples are integers; a non-integer value is an error;
# - bad input (a constant column, a ragged row, an empty file, a non-number, NaN, an unknown
#   column, a missing file): exit 1, one line naming the file/line/column, no model file left;
#   usage errors exit 2, also in one line;
# - --logit on a 2-D logit-normal table (closed-form density): the mean NLL on fresh rows is within
#   0.02 nats of the truth, the density integrates to 1 over the bounded box, every sample lies
#   strictly inside the bounds, inspect shows them; rows on or outside a bound exit 1 naming the
#   file, line, column and value (fit and log-prob); bad bounds and unknown columns exit 2.
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
# --version prints the project's version (CMakeLists.txt), which model files record too
version=$(sed -n 's/^project(knead VERSION \([0-9.]*\).*/\1/p' "$(dirname "$0")/../../CMakeLists.txt")
[ -n "$version" ] && [ "$("$knead" --version)" = "$version" ] ||
  fail "--version printed '$("$knead" --version)', the project's version is '$version'"
grep -q "\"knead_version\": \"$version\"" "$work/summary.json" || fail "the summary does not record version $version"

"$knead" log-prob "$work/model.safetensors" "$work/test.csv" -o "$work/log_prob.csv" 2>"$work/log_prob.err"
[ "$(wc -l <"$work/log_prob.csv")" -eq 2001 ] || fail "log-prob wrote $(wc -l <"$work/log_prob.csv") lines, expected 2001"
grep -q "NLL .* ± .* nats" "$work/log_prob.err" || fail "log-prob printed no mean NLL: $(cat "$work/log_prob.err")"
# one row has no standard error: said in words, not as "± inf"
head -2 "$work/test.csv" >"$work/one_row.csv"
"$knead" log-prob "$work/model.safetensors" "$work/one_row.csv" -o "$work/one_row_lp.csv" 2>"$work/one_row.err"
grep -q "one row: no standard error" "$work/one_row.err" && ! grep -q "inf" "$work/one_row.err" ||
  fail "log-prob of one row printed: $(cat "$work/one_row.err")"
model_nll=$(awk -F, 'NR > 1 { s -= $1; n++ } END { printf "%.6f\n", s / n }' "$work/log_prob.csv")
truth=$(true_mean_nll "$work/test.csv")
echo "test NLL: model $model_nll, true density $truth"
close_to "$model_nll" "$truth" 0.02 "the fitted model's test NLL"

# The same fit with an ActNorm after each layer: set from the first batch, saved as initialised
# (inspect lists it), and as close to the true density.
"$knead" fit "$work/train.csv" -o "$work/actnorm.safetensors" --layers 3 --hidden 32,32 --epochs 40 --lr 3e-3 \
  --actnorm --quiet
"$knead" inspect "$work/actnorm.safetensors" >"$work/actnorm_inspect.txt"
grep -q "flow: 3 maf layers with an ActNorm after each" "$work/actnorm_inspect.txt" || fail "inspect of an --actnorm model: $(cat "$work/actnorm_inspect.txt")"
"$knead" log-prob "$work/actnorm.safetensors" "$work/test.csv" -o "$work/actnorm_log_prob.csv" 2>/dev/null
actnorm_nll=$(awk -F, 'NR > 1 { s -= $1; n++ } END { printf "%.6f\n", s / n }' "$work/actnorm_log_prob.csv")
echo "test NLL with --actnorm: model $actnorm_nll, true density $truth"
close_to "$actnorm_nll" "$truth" 0.02 "the --actnorm model's test NLL"

# The same fit mixing with learnable LuLinear layers instead of the reversals: inspect says so, and
# the model is as close to the true density.
"$knead" fit "$work/train.csv" -o "$work/lu.safetensors" --layers 3 --hidden 32,32 --epochs 40 --lr 3e-3 \
  --mixing lu --quiet
"$knead" inspect "$work/lu.safetensors" >"$work/lu_inspect.txt"
grep -q "flow: 3 maf layers, mixed by LuLinear layers" "$work/lu_inspect.txt" || fail "inspect of a --mixing lu model: $(cat "$work/lu_inspect.txt")"
"$knead" log-prob "$work/lu.safetensors" "$work/test.csv" -o "$work/lu_log_prob.csv" 2>/dev/null
lu_nll=$(awk -F, 'NR > 1 { s -= $1; n++ } END { printf "%.6f\n", s / n }' "$work/lu_log_prob.csv")
echo "test NLL with --mixing lu: model $lu_nll, true density $truth"
close_to "$lu_nll" "$truth" 0.02 "the --mixing lu model's test NLL"

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
  [ "$(wc -l <"$work/err.txt")" -eq 1 ] || fail "'$*' printed $(wc -l <"$work/err.txt") lines, not one: $(cat "$work/err.txt")"
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
expect_error 2 "--mixing: glow not in {permute,lu}" fit "$work/train.csv" -o "$work/bad.safetensors" --mixing glow
expect_error 2 "unknown command .bogus-command." bogus-command

# --logit: share = σ(y₁) in (0, 1) and angle = −180 + 360 σ(y₂) in (−180, 180), with (y₁, y₂) normal,
# mean 0, Σ = [[1, 0.8], [0.8, 1]] (det 0.36): y = logit of each column, so
#   log p(x) = log N(y; 0, Σ) − log(s (1 − s)) + log 360 − log((a + 180)(180 − a)).
bounded() {  # bounded ROWS SEED
  awk -v n="$1" -v seed="$2" 'BEGIN {
    srand(seed); pi = atan2(0, -1); print "share,angle"
    for (i = 0; i < n; i++) {
      u1 = 1 - rand(); u2 = rand(); r = sqrt(-2 * log(u1))
      z1 = r * cos(2 * pi * u2); z2 = r * sin(2 * pi * u2)
      printf "%.9g,%.9g\n", 1 / (1 + exp(-z1)), -180 + 360 / (1 + exp(-(0.8 * z1 + 0.6 * z2)))
    } }'
}
bounded_true_mean_nll() {
  awk -F, 'NR > 1 {
    s = $1; a = $2; p = (a + 180) / 360
    y1 = log(s / (1 - s)); y2 = log(p / (1 - p))
    q = (y1 * y1 - 1.6 * y1 * y2 + y2 * y2) / 0.36
    lp = -0.5 * q - log(2 * atan2(0, -1)) - 0.5 * log(0.36) - log(s * (1 - s)) + log(360) - log((a + 180) * (180 - a))
    t -= lp; n++
  } END { printf "%.6f\n", t / n }' "$1"
}
bounded 4000 5 >"$work/bounded_train.csv"
bounded 2000 6 >"$work/bounded_test.csv"
# COLUMN by name and by position; --logit before DATA takes one value, not DATA
"$knead" fit --logit share=0:1 "$work/bounded_train.csv" --logit 2=-180:180 -o "$work/bounded.safetensors" \
  --layers 3 --hidden 32,32 --epochs 40 --lr 3e-3 --quiet
"$knead" log-prob "$work/bounded.safetensors" "$work/bounded_test.csv" -o "$work/bounded_lp.csv" 2>/dev/null
model_nll=$(awk -F, 'NR > 1 { s -= $1; n++ } END { printf "%.6f\n", s / n }' "$work/bounded_lp.csv")
truth=$(bounded_true_mean_nll "$work/bounded_test.csv")
echo "--logit test NLL: model $model_nll, true density $truth"
# Model and truth share each row's logit log-Jacobian exactly, so they differ by the fit of a 2-D
# Gaussian in logit units: the tolerance of the Gaussian test above.
close_to "$model_nll" "$truth" 0.02 "the --logit model's test NLL"

# ∫ p over (0, 1) × (−180, 180) on a 200 × 200 midpoint grid, in data units.
awk 'BEGIN { print "share,angle"; for (i = 0; i < 200; i++) for (j = 0; j < 200; j++)
  printf "%.9g,%.9g\n", (i + 0.5) * 0.005, -180 + (j + 0.5) * 1.8 }' >"$work/bounded_grid.csv"
"$knead" log-prob "$work/bounded.safetensors" "$work/bounded_grid.csv" -o "$work/bounded_grid_lp.csv" 2>/dev/null
integral=$(awk -F, 'NR > 1 { s += exp($1) * 0.005 * 1.8 } END { printf "%.6f\n", s }' "$work/bounded_grid_lp.csv")
echo "integral of the --logit model's density over its box: $integral"
close_to "$integral" 1 0.01 "the --logit density's integral in data units"

"$knead" sample "$work/bounded.safetensors" -n 20000 --seed 4 -o "$work/bounded_samples.csv"
awk -F, 'NR > 1 && !($1 > 0 && $1 < 1 && $2 > -180 && $2 < 180) { print "line " NR ": " $0; bad = 1 }
  END { exit bad }' "$work/bounded_samples.csv" >"$work/outside.txt" ||
  fail "samples outside the --logit bounds: $(head -3 "$work/outside.txt")"
"$knead" inspect "$work/bounded.safetensors" >"$work/bounded_inspect.txt"
grep -q "^logit: share in (0, 1), angle in (-180, 180)$" "$work/bounded_inspect.txt" ||
  fail "inspect shows no logit bounds: $(cat "$work/bounded_inspect.txt")"

# Rows on or outside a bound (after a comment line, so that line ≠ row + 1): exit 1 with the place.
printf 'share,angle\n# a comment\n0.5,0\n0.2,10\n1,5\n0.3,3\n' >"$work/on_bound.csv"
expect_error 1 "knead fit: '.*/on_bound.csv' line 5, column 'share': the value 1 is not inside the --logit interval (0, 1)" \
  fit "$work/on_bound.csv" --logit share=0:1 -o "$work/bad.safetensors"
printf 'share,angle\n0.5,0\n0.2,180.5\n' >"$work/outside.csv"
expect_error 1 "/outside.csv' line 3, column 'angle': the value 180.5 is not inside" \
  fit "$work/bounded_train.csv" --logit share=0:1 --logit angle=-180:180 --val "$work/outside.csv" -o "$work/bad.safetensors"
expect_error 1 "knead log-prob: '.*/outside.csv' line 3, column 'angle': the value 180.5" \
  log-prob "$work/bounded.safetensors" "$work/outside.csv"
expect_error 2 "LOW must be below HIGH, got 1 and 0" fit "$work/bounded_train.csv" --logit share=1:0 -o "$work/bad.safetensors"
expect_error 2 "is not COLUMN=LOW:HIGH" fit "$work/bounded_train.csv" --logit share=0 -o "$work/bad.safetensors"
expect_error 2 "the bound 'inf' is not a finite number" fit "$work/bounded_train.csv" --logit share=0:inf -o "$work/bad.safetensors"
expect_error 2 "share=0:1e+300: Sigmoid: dimension 0 has the interval (0, inf)" \
  fit "$work/bounded_train.csv" --logit share=0:1e300 -o "$work/bad.safetensors"  # beyond float
expect_error 2 "knead fit: --logit gamma=0:1: no column 'gamma'" \
  fit "$work/bounded_train.csv" --logit gamma=0:1 -o "$work/bad.safetensors"
expect_error 2 "knead fit: --logit angle=-180:180: column 'angle' is not modelled" \
  fit "$work/bounded_train.csv" --columns share --logit angle=-180:180 -o "$work/bad.safetensors"
expect_error 2 "column 'share' has two intervals" \
  fit "$work/bounded_train.csv" --logit share=0:1 --logit 1=0:2 -o "$work/bad.safetensors"
# log-prob --skip-invalid: rows that cannot be scored are left out and listed by line; the scored rows
# keep their line numbers (first output column) and score exactly as the same rows of a clean file.
# Without the option the first bad row is the error and nothing is written.
{
  echo "alpha,beta"
  echo "3.5,-1.25"  # line 2
  echo "3,x4"       # line 3: not a number
  echo "2.5"        # line 4: too few fields
  echo "nan,1"      # line 5: NaN
  echo "inf,1"      # line 6: infinite
  echo "4,-0.5"     # line 7
  echo "1,2,3"      # line 8: too many fields
  echo "1,"         # line 9: an empty field
  echo "2,-1"       # line 10
} >"$work/invalid.csv"
printf 'alpha,beta\n3.5,-1.25\n4,-0.5\n2,-1\n' >"$work/valid.csv"
rm -f "$work/scored.csv"
expect_error 1 "invalid.csv' line 3: cannot read 'x4' in column 2" \
  log-prob "$work/model.safetensors" "$work/invalid.csv" -o "$work/scored.csv"
[ ! -e "$work/scored.csv" ] || fail "log-prob wrote output for a table with a bad row"
printf 'alpha,beta\n3.5,-1.25\nnan,1\n' >"$work/nan_row.csv"
expect_error 1 "line 3: column 1 has the non-finite value 'nan'" log-prob "$work/model.safetensors" "$work/nan_row.csv"
"$knead" log-prob "$work/model.safetensors" "$work/invalid.csv" --skip-invalid -o "$work/scored.csv" \
  --summary "$work/skipped.json" 2>"$work/skipped.err"
"$knead" log-prob "$work/model.safetensors" "$work/valid.csv" -o "$work/clean.csv" 2>/dev/null
[ "$(head -1 "$work/scored.csv")" = "line,log_prob" ] || fail "--skip-invalid output header: $(head -1 "$work/scored.csv")"
[ "$(cut -d, -f1 "$work/scored.csv" | tail -n +2 | tr '\n' ' ')" = "2 7 10 " ] ||
  fail "--skip-invalid scored lines $(cut -d, -f1 "$work/scored.csv" | tail -n +2 | tr '\n' ' '), expected 2 7 10"
cut -d, -f2 "$work/scored.csv" | tail -n +2 | cmp -s - <(tail -n +2 "$work/clean.csv") ||
  fail "the rows kept by --skip-invalid score differently from the same rows of a clean file"
for reason in "line 3: cannot read 'x4'" "line 4: expected 2 fields, got 1" "line 5: column 1 has the non-finite" \
  "line 6: column 1 has the non-finite" "line 8: expected 2 fields, got 3"; do
  grep -q "$reason" "$work/skipped.err" || fail "--skip-invalid did not report '$reason': $(cat "$work/skipped.err")"
done
grep -q "skipped 6 rows" "$work/skipped.err" || fail "--skip-invalid miscounted: $(cat "$work/skipped.err")"
grep -q "and 1 more" "$work/skipped.err" || fail "--skip-invalid listed more than the first five on stderr"
grep -q '"skipped_rows": 6' "$work/skipped.json" || fail "the summary does not count the skipped rows"
grep -q '"line": 9' "$work/skipped.json" || fail "the summary does not list every skipped row"
grep -q "empty field in column 2" "$work/skipped.json" || fail "the summary lacks the reason of line 9"
# The same rows in a .npy file (float64, 5 × 2) with a NaN in row 2 and an infinity in row 4:
# --skip-invalid leaves those out and numbers the others by their rows in the file.
npy_f8() {  # npy_f8 FILE ROWS COLS VALUE_BITS... (each value's IEEE bits as 16 hex digits)
  local file=$1 rows=$2 cols=$3
  shift 3
  local dict="{'descr': '<f8', 'fortran_order': False, 'shape': ($rows, $cols), }"
  local padded=$(((10 + ${#dict} + 1 + 63) / 64 * 64 - 10))
  {
    printf '\x93NUMPY\x01\x00'
    printf "\\x$(printf %02x $((padded % 256)))\\x$(printf %02x $((padded / 256)))"
    printf '%-*s\n' $((padded - 1)) "$dict"
    for bits in "$@"; do  # little-endian: the last byte first
      printf "\\x${bits:14:2}\\x${bits:12:2}\\x${bits:10:2}\\x${bits:8:2}\\x${bits:6:2}\\x${bits:4:2}\\x${bits:2:2}\\x${bits:0:2}"
    done
  } >"$file"
}
# 3.5, −1.25 | NaN, 1 | 4, −0.5 | 1, +inf | 2, −1
npy_f8 "$work/invalid.npy" 5 2 400c000000000000 bff4000000000000 7ff8000000000000 3ff0000000000000 \
  4010000000000000 bfe0000000000000 3ff0000000000000 7ff0000000000000 4000000000000000 bff0000000000000
expect_error 1 "invalid.npy': row 2, column 1 has the non-finite value nan" \
  log-prob "$work/model.safetensors" "$work/invalid.npy"
"$knead" log-prob "$work/model.safetensors" "$work/invalid.npy" --skip-invalid -o "$work/scored_npy.csv" \
  2>"$work/skipped_npy.err"
[ "$(head -1 "$work/scored_npy.csv")" = "row,log_prob" ] || fail ".npy --skip-invalid header: $(head -1 "$work/scored_npy.csv")"
[ "$(cut -d, -f1 "$work/scored_npy.csv" | tail -n +2 | tr '\n' ' ')" = "1 3 5 " ] ||
  fail ".npy --skip-invalid scored rows $(cut -d, -f1 "$work/scored_npy.csv" | tail -n +2 | tr '\n' ' '), expected 1 3 5"
cut -d, -f2 "$work/scored_npy.csv" | tail -n +2 | cmp -s - <(tail -n +2 "$work/clean.csv") ||
  fail "the rows kept from a .npy by --skip-invalid score differently from the same rows of a clean file"
for reason in "row 2: column 1 has the non-finite value nan" "row 4: column 2 has the non-finite value inf"; do
  grep -q "$reason" "$work/skipped_npy.err" || fail ".npy --skip-invalid did not report '$reason': $(cat "$work/skipped_npy.err")"
done
printf 'alpha,beta\nx,1\n' >"$work/all_bad.csv"
expect_error 1 "no row can be scored" log-prob "$work/model.safetensors" "$work/all_bad.csv" --skip-invalid

# --dequantize on integer data of a known distribution: a ~ Poisson(4) and b = a + c, c ~ Poisson(3),
# so P(a, b) = Pois(a; 4) Pois(b − a; 3). Poisson draws by multiplying uniforms (Knuth).
poisson_pairs() {  # poisson_pairs ROWS SEED
  awk -v n="$1" -v seed="$2" '
    function poisson(l,   k, p) { k = 0; p = rand(); while (p > exp(-l)) { k++; p *= rand() } return k }
    BEGIN { srand(seed); print "a,b"; for (i = 0; i < n; i++) { a = poisson(4); printf "%d,%d\n", a, a + poisson(3) } }'
}
true_mean_log_probability() {  # the mean of log P(a, b) over the rows of a CSV with a header
  awk -F, 'function log_poisson(k, l,   f, i) { f = 0; for (i = 2; i <= k; i++) f += log(i); return k * log(l) - l - f }
    NR > 1 { s += log_poisson($1, 4) + log_poisson($2 - $1, 3); n++ } END { printf "%.6f\n", s / n }' "$1"
}
poisson_pairs 4000 5 >"$work/counts.csv"
poisson_pairs 2000 6 >"$work/counts_test.csv"
"$knead" fit "$work/counts.csv" -o "$work/counts.safetensors" --dequantize auto --layers 3 --hidden 32,32 \
  --epochs 40 --lr 3e-3 --quiet 2>"$work/dequantize.err"
grep -q "dequantising 'a', 'b'" "$work/dequantize.err" || fail "fit --dequantize auto: $(cat "$work/dequantize.err")"
"$knead" inspect "$work/counts.safetensors" | grep -q "dequantised: 'a', 'b'" || fail "inspect names no dequantised column"
"$knead" log-prob "$work/counts.safetensors" "$work/counts_test.csv" -o "$work/counts_lp.csv" \
  --summary "$work/counts.json" 2>"$work/counts_lp.err"
grep -q "lower bound on the log probability" "$work/counts_lp.err" || fail "log-prob does not say what it reports"
grep -q '"samples": 16' "$work/counts.json" || fail "the summary does not record the dequantisation"
bound=$(mean_of "$work/counts_lp.csv")
truth=$(true_mean_log_probability "$work/counts_test.csv")
echo "dequantised model: mean log-probability bound $bound, true mean log probability $truth"
# The mean bound is E[L_16] ≤ E[log P_model] ≤ E[log P_true] (Gibbs) up to the test rows' sampling
# error: measured (seed 5/6, 3 MAF layers) 0.019 below, with a standard error of 0.0024 over the
# 2000 rows. 0.05 allows for the fit's own error (as the Gaussian's 0.02 above); a much worse model
# fails it, and so would the K = 1 bound of this fit (0.057 below).
awk -v b="$bound" -v t="$truth" 'BEGIN { exit !(b < t) }' || fail "the bound $bound is above the true mean log probability $truth"
close_to "$bound" "$truth" 0.05 "the dequantised model's mean log-probability bound"
# the bound tightens with K: E[L_1] ≤ E[L_16]
"$knead" log-prob "$work/counts.safetensors" "$work/counts_test.csv" -o "$work/counts_lp1.csv" \
  --dequantize-samples 1 2>/dev/null
bound_1=$(mean_of "$work/counts_lp1.csv")
awk -v a="$bound_1" -v b="$bound" 'BEGIN { exit !(a < b) }' || fail "the K = 1 bound $bound_1 is not below the K = 16 bound $bound"
"$knead" sample "$work/counts.safetensors" -n 4000 --seed 7 -o "$work/counts_samples.csv"
awk -F, 'NR > 1 && ($1 != int($1) || $2 != int($2)) { bad = 1 } END { exit bad }' "$work/counts_samples.csv" ||
  fail "the samples of a dequantised model are not integers"
below_zero=$(awk -F, 'NR > 1 && $1 < 0 { k++ } END { printf "%d\n", k }' "$work/counts_samples.csv")
[ "$below_zero" -le 40 ] || fail "$below_zero of 4000 samples of a Poisson column are negative"
close_to "$(mean_of "$work/counts_samples.csv")" 4 0.15 "the mean of the samples' Poisson(4) column"

# the noise is fresh every epoch and drawn from --seed and the epoch: a run interrupted and resumed
# from its checkpoint ends as the uninterrupted one
run=(fit "$work/counts.csv" --dequantize a,b --layers 2 --hidden 16 --epochs 4 --checkpoint-every 1 --quiet)
"$knead" "${run[@]}" -o "$work/counts_whole.safetensors" 2>/dev/null
set +e
KNEAD_TEST_INTERRUPT_AT_STEP=40 "$knead" "${run[@]}" -o "$work/counts_cut.safetensors" 2>/dev/null
status=$?
set -e
[ "$status" -eq 130 ] || fail "an interrupted dequantising fit exited $status, expected 130"
"$knead" "${run[@]}" -o "$work/counts_cut.safetensors" --resume "$work/counts_cut.safetensors.checkpoint" 2>/dev/null
"$knead" log-prob "$work/counts_whole.safetensors" "$work/counts_test.csv" -o "$work/counts_whole.csv" 2>/dev/null
"$knead" log-prob "$work/counts_cut.safetensors" "$work/counts_test.csv" -o "$work/counts_resumed.csv" 2>/dev/null
cmp -s "$work/counts_whole.csv" "$work/counts_resumed.csv" ||
  fail "a resumed dequantising fit differs from the uninterrupted one"

# a dequantised column must hold integers: in fit (named explicitly) and in log-prob
printf 'a,b\n1,2\n3,4.5\n' >"$work/half.csv"
expect_error 1 "half.csv' line 3, column 'b' (2): 4.5 is not an integer" \
  fit "$work/half.csv" --dequantize a,b -o "$work/bad.safetensors"
expect_error 1 "no column 'c'" fit "$work/half.csv" --dequantize c -o "$work/bad.safetensors"
expect_error 1 "half.csv' line 3, column 'b' (2): 4.5" log-prob "$work/counts.safetensors" "$work/half.csv"
"$knead" log-prob "$work/counts.safetensors" "$work/half.csv" --skip-invalid -o "$work/half_lp.csv" 2>"$work/half.err"
grep -q "line 3: column 2 ('b') is dequantised and 4.5 is not an integer" "$work/half.err" ||
  fail "log-prob --skip-invalid: $(cat "$work/half.err")"
[ "$(wc -l <"$work/half_lp.csv")" -eq 2 ] || fail "log-prob --skip-invalid kept $(($(wc -l <"$work/half_lp.csv") - 1)) rows, expected 1"

# --skip-invalid leaves out rows outside a --logit interval too; --logit and --dequantize are not combined
printf 'share,angle\n0.5,0\n1.5,10\n0.25,-90\n' >"$work/bounded_mixed.csv"
"$knead" log-prob "$work/bounded.safetensors" "$work/bounded_mixed.csv" --skip-invalid -o "$work/bounded_mixed_lp.csv" \
  2>"$work/bounded_mixed.err"
[ "$(cut -d, -f1 "$work/bounded_mixed_lp.csv" | tail -n +2 | tr '\n' ' ')" = "2 4 " ] ||
  fail "--skip-invalid kept lines $(cut -d, -f1 "$work/bounded_mixed_lp.csv" | tail -n +2 | tr '\n' ' ') of a --logit model, expected 2 4"
grep -q "line 3.*not inside the --logit interval" "$work/bounded_mixed.err" ||
  fail "--skip-invalid did not say why line 3 was left out: $(cat "$work/bounded_mixed.err")"
expect_error 2 "--logit and --dequantize cannot be used together" \
  fit "$work/counts.csv" --logit a=-1:100 --dequantize b -o "$work/bad.safetensors"
echo "tool_test: all passed"
