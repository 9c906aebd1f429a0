#!/usr/bin/env bash
# TQT speed against a PyTorch-eager reference of the same block loop, both run here, now:
# the two Fashion-MNIST fixtures with ESP-PPQ's settings (500 steps per block, block size 4,
# batch 32, esp32s3), then the MobileNetV2-architecture model (224x224, batch 32, 8 cached
# batches, 20 steps per block, esp32p4). Per block: steps/s of both, FLOPs per step, EdgeQuant's
# GFLOP/s and its fraction of this machine's fp32 peak (a 2048^3 GEMM measured in the same run);
# then the TQT pass time of both and their ratio (bench/tqt_reference.py).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-$(nproc)}
D=/usr/share/datasets/fashion-mnist
SET=$(mktemp --suffix=.yaml)
LOG=$(mktemp)
OUT=$(mktemp -d)
trap 'rm -rf "$SET" "$LOG" "$OUT"' EXIT
printf 'tqt_optimization: true\ntqt_optimization_setting: {steps: 500, block_size: 4, lr: 1.25e-4}\nanalysis: {layerwise: false}\n' > "$SET"
for m in fmnist_mobilenet fmnist_resnet; do
  echo "--- $m, esp32s3, 500 steps per block, batch 32"
  "$BUILD/edgequant" quantize tests/fixtures/fashion/$m.onnx -t esp32s3 -c $D/train-images-idx3-ubyte.gz \
    --batch-size 32 -s "$SET" -o "$OUT/$m" > "$LOG" 2>&1
  /usr/bin/python3 bench/tqt_reference.py tests/fixtures/fashion/$m.onnx --data $D/train-images-idx3-ubyte.gz \
    --steps 500 --lr 1.25e-4 --threads "$THREADS" --eq-log "$LOG" | grep -v "^reference_block"
done
[ -f "$BUILD/bench/mobilenet_v2.onnx" ] || /usr/bin/python3 bench/float_throughput.py --build "$BUILD" > /dev/null
echo "--- mobilenet_v2 (224x224), esp32p4, 8 cached batches of 32, 20 steps per block"
"$BUILD/bench/bench_ptq" "$BUILD/bench/mobilenet_v2.onnx" --calib-steps 8 --batch 32 --analysis-samples 32 \
  --tqt-steps 20 > "$LOG" 2>&1
grep -E "^peak_rss" "$LOG" || true
/usr/bin/python3 bench/tqt_reference.py "$BUILD/bench/mobilenet_v2.onnx" --data random --batches 8 --steps 20 \
  --lr 1e-5 --threads "$THREADS" --eq-log "$LOG" | grep -v "^reference_block"
