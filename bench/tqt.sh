#!/usr/bin/env bash
# TQT wall time: the Fashion-MNIST fixture models with ESP-PPQ's reference settings (500 steps,
# block size 4, batch 32; ESP-PPQ takes 56-67 s for these on this machine), then the
# MobileNetV2-architecture benchmark model at batch 32 with a few steps per block (steps/s per
# block, total time, thread count, cache size).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
D=/usr/share/datasets/fashion-mnist
SET=$(mktemp --suffix=.yaml)
printf 'tqt_optimization: true\ntqt_optimization_setting: {steps: 500, block_size: 4, lr: 1.25e-4}\nanalysis: {layerwise: false}\n' > "$SET"
for m in fmnist_mobilenet fmnist_resnet; do
  echo "--- $m, esp32s3"
  /usr/bin/time -f "wall %e s (whole quantize command)" "$BUILD/edgequant" quantize tests/fixtures/fashion/$m.onnx \
    -t esp32s3 -c $D/train-images-idx3-ubyte.gz --batch-size 32 -s "$SET" -o "$(mktemp -d)" 2>&1 | grep -E "^tqt:|^wall"
done
rm -f "$SET"
[ -f "$BUILD/bench/mobilenet_v2.onnx" ] || /usr/bin/python3 bench/float_throughput.py --build "$BUILD" > /dev/null
echo "--- mobilenet_v2 (224x224), esp32p4, 8 calibration batches of 32, 20 TQT steps per block"
"$BUILD/bench/bench_ptq" "$BUILD/bench/mobilenet_v2.onnx" --calib-steps 8 --batch 32 --analysis-samples 32 --tqt-steps 20 | grep -E "^tqt|peak_rss"
