#!/usr/bin/env bash
# The tflite-int8 deployable files of the fixtures: `.tflite` (int8 ends, TFLite Micro's usual
# file) next to the ONNX QDQ file of the same quantization and the float model, in bytes. How
# close LiteRT's outputs are to the integer runtime and the simulation is the test's line per
# fixture (`build/tests/test_ort --gtest_filter='*TfliteInLiteRt*'`). No timing.
# Then top-1 on the Fashion-MNIST test images: float, simulated, and the .tflite run by LiteRT.
# Usage: [LIMIT=N] bash bench/tflite_table.sh [BUILD_DIR]   (about 5 min with all 10 000 images)
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

# Top-1 on the Fashion-MNIST test images (first LIMIT, default 10 000): the float model and the
# simulation (`edgequant evaluate`), and the `.tflite` file (float32 ends) run by LiteRT.
LIMIT=${LIMIT:-10000}
TEST=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
/usr/bin/python3 - "$TEST" "$LIMIT" "$OUT/test.npy" <<'PY'
import gzip, sys
import numpy as np
path, limit, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
x = np.frombuffer(gzip.open(path).read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)[:limit]
np.save(out, (x / 255.0).astype(np.float32))  # EdgeQuant's IDX preprocessing: pixel / 255, NHWC
PY
echo
printf '%-20s %8s %8s %8s %10s\n' model float simulated tflite "samples"
for model in fmnist_mobilenet fmnist_resnet fmnist_mobilenetv2; do
  "$BUILD/edgequant" quantize "tests/fixtures/fashion/$model.onnx" -t tflite-int8 -c "$FASHION" --calib-steps 8 \
    --batch-size 32 -s <(printf 'export: {tflite_io: float32}\n') -o "$OUT/acc" > "$OUT/log" 2>&1 ||
    { echo "$model: FAILED"; tail -3 "$OUT/log"; continue; }
  "$BUILD/edgequant" evaluate "tests/fixtures/fashion/$model.onnx" -q "$OUT/acc" -d "$TEST" --limit "$LIMIT" \
    > "$OUT/eval" 2>&1
  node tools/tflite_run.js --each "$OUT/acc/model.tflite" "$OUT/lite" "$OUT/test.npy" > /dev/null
  /usr/bin/python3 - "$model" "$OUT/eval" "$OUT/lite.0.npy" "${TEST/images-idx3/labels-idx1}" "$LIMIT" <<'PY'
import gzip, re, sys
import numpy as np
model, ev, lite, labels, limit = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3], sys.argv[4], int(sys.argv[5])
f = re.search(r"float\s+([\d.]+)", ev)[1]
q = re.search(r"quantized\s+([\d.]+)", ev)[1]
y = np.frombuffer(gzip.open(labels).read(), np.uint8, offset=8)[:limit]
o = np.load(lite)
print(f"{model:20s} {f:>8s} {q:>8s} {100 * (o.argmax(1) == y).mean():8.2f} {len(y):10d}")
PY
done
