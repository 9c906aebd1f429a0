#!/usr/bin/env bash
# `edgequant convert` on the Fashion-MNIST fixtures: per model and mode, the file size against the
# float model's and the written file's top-1 and output SQNR against the float model on the
# 10 000 test images (the file is read back and run as written). No timing.
# Usage: bash bench/convert_table.sh [BUILD_DIR] [LIMIT] [MODELS]  (LIMIT 0: all 10 000; about 25 min)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
LIMIT=${2:-0}
MODELS=${3:-fmnist_mobilenetv2 fmnist_mobilenet fmnist_resnet}
DATA=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
printf '%-20s %-34s %9s %9s %7s %7s %8s %9s\n' model mode float_B file_B size% top1_f top1_c "SQNR dB"
for model in $MODELS; do
  while read -r label args; do
    # shellcheck disable=SC2086
    "$BUILD/edgequant" convert "tests/fixtures/fashion/$model.onnx" $args --eval "$DATA" --limit "$LIMIT" \
      -o "$OUT/c" > "$OUT/log" 2>&1 || { echo "$model $label: FAILED"; cat "$OUT/log"; continue; }
    /usr/bin/python3 - "$model" "$label" "$OUT/log" <<'PY'
import re, sys
model, label, log = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
size = re.search(r"size: (\d+) bytes \(float model\) -> (\d+) bytes \(([\d.]+)%\)", log)
top = re.search(r"top-1: float ([\d.]+), \S+ ([\d.]+)", log)
sqnr = re.search(r"SQNR ([\d.inf-]+) dB", log)
print(f"{model:20s} {label:34s} {size[1]:>9s} {size[2]:>9s} {size[3]:>7s} {top[1]:>7s} {top[2]:>8s} {sqnr[1]:>9s}")
PY
  done <<'CASES'
dynamic                            --mode dynamic
dynamic_full_range                 --mode dynamic --full-range
float16                            --mode float16
weight-only_int8                   --mode weight-only
weight-only_int8_block32           --mode weight-only --block-size 32
weight-only_int4                   --mode weight-only --weight-bits 4
weight-only_int4_block32           --mode weight-only --weight-bits 4 --block-size 32
weight-only_int4_block32_symmetric --mode weight-only --weight-bits 4 --block-size 32 --weight-scheme symmetric
CASES
done
