#!/usr/bin/env bash
# An example program that cannot write its outputs (here: a disk that takes no more than 1 KiB per
# file, `ulimit -f 1` with SIGXFSZ ignored, so write() fails with EFBIG as on a full disk) must exit
# non-zero with a message and leave no output file behind, not even a partial or temporary one.
# Usage: write_failure_test.sh PROGRAM [ARGUMENTS…]; "OUT" among the arguments is replaced by a
# fresh output folder.
set -uo pipefail
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
args=()
for a in "${@:2}"; do args+=("${a//OUT/$out}"); done
(
  trap '' XFSZ
  ulimit -f 1
  exec "$1" "${args[@]}"
) >"$out.log" 2>&1
status=$?
message=$(tail -n 3 "$out.log")
rm -f "$out.log"
failed=0
if ((status == 0)); then
  echo "FAILED: $1 exited with status 0 although its outputs could not be written" >&2
  failed=1
fi
if [[ -z $message ]]; then
  echo "FAILED: $1 printed no message" >&2
  failed=1
fi
left=$(find "$out" -type f)
if [[ -n $left ]]; then
  echo "FAILED: $1 left files behind:" >&2
  find "$out" -type f -printf '  %p (%s bytes)\n' >&2
  failed=1
fi
((failed)) && exit 1
echo "ok: $1 exited with status $status: $message"
