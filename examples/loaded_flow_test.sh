#!/usr/bin/env bash
# Loading saved flows from the command line. train_2d --load: summary.json describes the loaded flow
# (its kind, base, layers, hidden sizes and parameter count, read from the file), not the command line's
# --flow/--layers/--hidden; a flow without parameters (here a file holding one Permute) is
# evaluated and drawn with --steps 0. distill_iaf --load-teacher takes a float file (train_2d's
# default precision) for its double teacher, and never advises a C++ option.
# Usage: loaded_flow_test.sh TRAIN_2D DISTILL_IAF
set -euo pipefail
program=$1
distill=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() {
  echo "FAILED: $*" >&2
  exit 1
}
# the value of a key of summary.json (written with indentation): a number, a string or an array
value() { tr -d ' \n' <"$1" | grep -o "\"$2\":\(\[[^]]*\]\|\"[^\"]*\"\|[^,}]*\)" | head -n 1 | cut -d: -f2-; }
expect() {
  local got
  got=$(value "$1" "$2")
  [[ $got == "$3" ]] || fail "$1: \"$2\" is $got, expected $3"
}

# A RealNVP of 2 layers of hidden sizes 8,8, loaded with the command line's defaults (maf, 4, 128,128).
"$program" --flow realnvp --layers 2 --hidden 8,8 --steps 20 --train-size 500 --quiet --out "$dir/saved" \
  >/dev/null
"$program" --load "$dir/saved/model.safetensors" --steps 0 --train-size 500 --quiet --out "$dir/loaded" \
  >/dev/null
expect "$dir/loaded/summary.json" flow '"realnvp"'
expect "$dir/loaded/summary.json" layers 2
expect "$dir/loaded/summary.json" hidden '[8,8]'
expect "$dir/loaded/summary.json" batchnorm false
expect "$dir/loaded/summary.json" parameters "$(value "$dir/saved/summary.json" parameters)"
expect "$dir/loaded/summary.json" steps 0

# A mixture base: summary.json names it, and the loaded flow has it (the same parameters and NLL).
"$program" --flow maf --layers 1 --hidden 8 --base mog:3 --steps 20 --train-size 500 --quiet --out "$dir/mog" \
  >/dev/null
expect "$dir/mog/summary.json" base '"mog:3"'
"$program" --load "$dir/mog/model.safetensors" --steps 0 --train-size 500 --quiet --out "$dir/mog_loaded" >/dev/null
expect "$dir/mog_loaded/summary.json" base '"mog:3"'
expect "$dir/mog_loaded/summary.json" parameters "$(value "$dir/mog/summary.json" parameters)"
expect "$dir/mog_loaded/summary.json" test_nll "$(value "$dir/mog/summary.json" test_nll)"

# A flow with no parameters: one Permute of the two dimensions, written by hand (docs/format.md).
arch='{\"dim\":2,\"base\":{\"type\":\"StandardNormal\",\"dim\":2},\"bijector\":{\"type\":\"Chain\",\"dim\":2,\"parts\":[{\"type\":\"Permute\",\"dim\":2,\"permutation\":[1,0]}]}}'
header="{\"__metadata__\":{\"format\":\"knead.flow\",\"knead.format_version\":\"1\",\"knead.scalar\":\"F32\",\"knead.flow\":\"$arch\"}}"
n=${#header}
{
  for i in 0 1 2 3 4 5 6 7; do printf "\\$(printf %03o $(((n >> (8 * i)) & 255)))"; done
  printf '%s' "$header"
} >"$dir/permute.safetensors"
"$program" --load "$dir/permute.safetensors" --steps 0 --train-size 500 --quiet --out "$dir/permute" \
  >/dev/null || fail "a flow without parameters was not evaluated with --steps 0"
expect "$dir/permute/summary.json" parameters 0
expect "$dir/permute/summary.json" layers 0
expect "$dir/permute/summary.json" hidden '[]'
for f in summary.json samples.png density.png model.safetensors; do
  [[ -s $dir/permute/$f ]] || fail "no $f for the flow without parameters"
done
# Training it is refused with a message for the command line.
if "$program" --load "$dir/permute.safetensors" --steps 5 --quiet --out "$dir/train" 2>"$dir/err.txt"; then
  fail "training a flow without parameters succeeded"
fi
grep -q -- "--steps 0" "$dir/err.txt" || fail "the refusal does not say what to do: $(cat "$dir/err.txt")"

# distill_iaf's teacher is double; a float MAF saved by train_2d is its teacher as it is.
"$program" --flow maf --layers 1 --hidden 8 --steps 5 --train-size 500 --quiet --out "$dir/maf" >/dev/null
"$distill" --load-teacher "$dir/maf/model.safetensors" --student-layers 1 --student-hidden 8 --warmup-steps 2 \
  --student-steps 2 --train-size 500 --quiet --out "$dir/distill" >/dev/null 2>"$dir/err.txt" ||
  fail "distill_iaf refused a float teacher: $(cat "$dir/err.txt")"
if grep -q "ScalarConversion" "$dir/err.txt"; then fail "distill_iaf advises a C++ option: $(cat "$dir/err.txt")"; fi
echo "passed"
