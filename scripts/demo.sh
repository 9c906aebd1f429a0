#!/usr/bin/env bash
# The main job on a shipped example: install, build, then look at and run a torch-exported model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh build
M=tests/fixtures/models
./build/edgequant info $M/mobilenetv2_style_op13.onnx
./build/edgequant run $M/mobilenetv2_style_op13.onnx --input $M/mobilenetv2_style_input.npy --output build/demo_output.npz
