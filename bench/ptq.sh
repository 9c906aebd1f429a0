#!/usr/bin/env bash
# PTQ benchmark on the MobileNetV2 architecture: 32 batches of 32 (the issue's figure), then
# peak memory with 8 vs 64 calibration batches (streaming observers: it should stay flat).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
[ -f "$BUILD/bench/mobilenet_v2.onnx" ] || /usr/bin/python3 bench/float_throughput.py --build "$BUILD" > /dev/null
"$BUILD/bench/bench_ptq" "$BUILD/bench/mobilenet_v2.onnx" --calib-steps 32 --batch 32
for steps in 8 64; do
  echo "--- $steps calibration batches (analysis 32 samples)"
  "$BUILD/bench/bench_ptq" "$BUILD/bench/mobilenet_v2.onnx" --calib-steps "$steps" --batch 32 | grep -E "calibration /|peak_rss"
done
