#!/usr/bin/env bash
# The full suite (CI's command) under a 2-core CPU load, N times in a row from clean clones of REV;
# stops at the first failing run. Each run: git clone, stress-ng --cpu 2 beside `CI=true bash .ci/run`.
# Logs: /tmp/loaded-suite-REV-I.log; one summary line per run appended to /tmp/loaded-suite.summary.
# Usage (as root, from a checkout): bench/loaded_suite.sh REV [N=3]
set -u
rev=${1:?usage: bench/loaded_suite.sh REV [N]} n=${2:-3}
repo=$(git rev-parse --show-toplevel) || exit 2
command -v stress-ng >/dev/null || { echo "stress-ng is not installed (apt-get install stress-ng)" >&2; exit 2; }
for i in $(seq 1 "$n"); do
  dir=$(mktemp -d /tmp/loaded-suite.XXXXXX) log=/tmp/loaded-suite-$rev-$i.log
  git clone -q "$repo" "$dir/src" && git -C "$dir/src" checkout -q "$rev" || exit 2
  stress-ng --cpu 2 --timeout 3600 >/dev/null 2>&1 &
  stress=$!
  start=$(date -u +%H:%M:%S)
  (cd "$dir/src" && CI=true bash .ci/run) >"$log" 2>&1
  rc=$?
  kill "$stress" 2>/dev/null
  wait "$stress" 2>/dev/null
  summary=$(grep -E ' in [0-9.]+s' "$log" | tail -n 1)
  echo "$rev run $i $start-$(date -u +%H:%M:%S) rc=$rc $summary" | tee -a /tmp/loaded-suite.summary
  rm -rf "$dir"
  [ "$rc" -eq 0 ] || exit "$rc"
done
