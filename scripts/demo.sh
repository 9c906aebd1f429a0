#!/usr/bin/env bash
# The main job on a shipped example: install, build, quantize the committed Fashion-MNIST
# MobileNet-style model for ESP32-P4 (calibrating on Debian's Fashion-MNIST training images),
# then print float vs quantized top-1 on the 10 000-image test set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh build
DATA=/usr/share/datasets/fashion-mnist
MODEL=tests/fixtures/fashion/fmnist_mobilenet.onnx
./build/edgequant info "$MODEL"
./build/edgequant quantize "$MODEL" --target esp32p4 --calib "$DATA/train-images-idx3-ubyte.gz" \
  --calib-steps 32 --batch-size 32 --out build/demo_esp32p4
./build/edgequant evaluate "$MODEL" --quantized build/demo_esp32p4 --data "$DATA/t10k-images-idx3-ubyte.gz"
