#!/usr/bin/env bash
# The learning margin's seeds side by side, each on its own two cores (a machine with many cores,
# e.g. a lent GPU machine's CPU with the GPU hidden), so ten seeds take the time of one.
# Usage: OUT=folder bash benchmarks/learning_margin_parallel.sh FIRST_CORE SEED [SEED ...]
set -u
OUT=${OUT:-/tmp/margin-out}
mkdir -p "$OUT"
core=$1
shift
for seed in "$@"; do
  CUDA_VISIBLE_DEVICES="" PYTHONUNBUFFERED=1 taskset -c "$core,$((core + 1))" \
    timeout "${MARGIN_LIMIT_S:-540}" python3 benchmarks/learning_margin.py --only "$seed" \
    --json "$OUT/margin-$seed.json" >"$OUT/margin-$seed.log" 2>&1 &
  core=$((core + 2))
done
wait
grep -h "^seed" "$OUT"/margin-*.log
python3 benchmarks/learning_margin.py --merge "$OUT"/margin-*.json
