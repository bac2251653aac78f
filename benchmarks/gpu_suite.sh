#!/usr/bin/env bash
# The GPU measurements, as one short script for a lent GPU machine (see benchmarks/RESULTS.md).
# Usage: OUT=/some/folder bash benchmarks/gpu_suite.sh [WEIGHTS.pt]
# Expects a Python with torch+CUDA; wheels in .whl/ (Ultralytics & co.) are installed to /tmp/site first.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
WEIGHTS=${1:-}
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || exit 1
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, ultralytics; print('torch', torch.__version__, 'ultralytics', ultralytics.__version__)" | tee -a "$OUT/gpu.txt"
w=()
[ -n "$WEIGHTS" ] && w=(--weights "$WEIGHTS")
step() {  # name, time limit (s), command...
  local name=$1 limit=$2; shift 2
  echo "=== $name"
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log" | grep -vE "^\s*(Epoch|[0-9]+/[0-9]+)\s" | tail -40
}
# Every engine the GPU host runs (torch fp32/fp16; TensorRT fp16/fp32 where `tensorrt` imports;
# ONNX Runtime where it has its CUDA provider) and the measured `auto` choice, side by side.
python3 -c "import tensorrt" 2>/dev/null && echo "tensorrt: installed" || echo "tensorrt: absent (engine not measured)"
step predict 120 python3 benchmarks/predict.py --device cuda "${w[@]}" --images 64 --batch-sizes 32 --letterbox host,device --json "$OUT/predict.json"
step sliced 120 python3 benchmarks/sliced.py --device cuda "${w[@]}" --frames 4 --batch-size 32 --letterbox host,device --json "$OUT/sliced.json"
step serve 100 python3 benchmarks/serve.py --device cuda "${w[@]}" --requests 320 --duration-s 30 --json "$OUT/serve.json"
step train 180 python3 benchmarks/train_throughput.py --device cuda --images 256 --imgsz 640 --epochs 2 --batch 32 --json "$OUT/train.json"
ls -la "$OUT"
