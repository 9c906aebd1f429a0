#!/usr/bin/env bash
# The tflite-int8 deployable files of the fixtures: `.tflite` (int8 ends, TFLite Micro's usual
# file) next to the ONNX QDQ file of the same quantization and the float model, in bytes. How
# close LiteRT's outputs are to the integer runtime and the simulation is the test's line per
# fixture (`build/tests/test_ort --gtest_filter='*TfliteInLiteRt*'`). No timing.
# Usage: bash bench/tflite_table.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
FASHION=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
printf '%-24s %10s %10s %10s %7s\n' model float_B qdq_B tflite_B tflite/qdq
for stem in fashion/fmnist_mobilenet fashion/fmnist_resnet fashion/fmnist_mobilenetv2 models/mobilenetv2_style_op13 \
  models/resnet_style_op13 models/batchnorm_op13 models/detection_head_op13 models/windows_op13 \
  models/temporal_conv_op13 models/causal_tcn_op13; do
  model=tests/fixtures/$stem.onnx
  data=$FASHION
  [[ $stem == models/* ]] && data=tests/fixtures/${stem%_op*}_input.npy
  for fmt in qdq tflite; do
    "$BUILD/edgequant" quantize "$model" -t tflite-int8 -c "$data" --calib-steps 1 --batch-size 16 --format "$fmt" \
      -o "$OUT/$fmt" > "$OUT/log" 2>&1 || { echo "$stem $fmt: FAILED"; tail -3 "$OUT/log"; continue 2; }
  done
  f=$(stat -c %s "$model") q=$(stat -c %s "$OUT/qdq/model.qdq.onnx") t=$(stat -c %s "$OUT/tflite/model.tflite")
  printf '%-24s %10d %10d %10d %7.2f\n' "$(basename "$stem")" "$f" "$q" "$t" "$(awk -v t="$t" -v q="$q" 'BEGIN { print t / q }')"
done
