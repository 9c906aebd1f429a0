#!/usr/bin/env bash
# Deployable files per fixture model and target: float ONNX bytes, .espdl bytes and its overhead
# beyond parameter bytes and embedded test values (header, FlatBuffer tables, names, value infos,
# alignment), and the sizes of the QDQ and TI files. Figures only (the exactness checks are tests:
# test_runtime, test_ort, oracle.espdl_fixtures). Usage: bash bench/deploy_table.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
EQ=$B/edgequant
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
F=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
M=tests/fixtures/models
printf "%-24s %-8s %9s %9s %9s %9s %9s\n" model target onnx espdl params test_vals overhead
for c in "fashion/fmnist_mobilenet $F" "fashion/fmnist_resnet $F" "models/mobilenetv2_style_op13 $M/mobilenetv2_style_input.npy" \
         "models/resnet_style_op13 $M/resnet_style_input.npy" "models/detection_head_op13 $M/detection_head_input.npy" \
         "models/batchnorm_op13 $M/batchnorm_input.npy"; do
  read -r model data <<<"$c"
  for t in esp32p4 esp32s3 c ort-int8 ti-npu; do
    o=$W/$(basename "$model")-$t
    "$EQ" quantize "tests/fixtures/$model.onnx" -t "$t" -c "$data" --calib-steps 1 --batch-size 8 -o "$o" >/dev/null 2>&1 || true
    onnx=$(stat -c %s "tests/fixtures/$model.onnx")
    if [ -f "$o/model.espdl" ]; then
      esp=$(stat -c %s "$o/model.espdl")
      params=$(grep '^memory: parameters' "$o/model.info" | awk '{print $3}')
      # Test values: the graph inputs' and outputs' codes (dtype bytes x elements, 16-byte padded).
      tv=$(awk '/^inputs:/{s=1;next} /^nodes/{s=0} s && NF>=4 {d=$2; sub(/\[/,"",$3); sub(/\]/,"",$3); n=split($3,a,","); e=1; for(i=1;i<=n;i++) e*=a[i]; b=(d=="int16")?2:(d=="float32")?4:1; t+=int((e*b+15)/16)*16} /^outputs:/{s=1} END{print t+0}' "$o/model.info")
      printf "%-24s %-8s %9s %9s %9s %9s %9s\n" "$(basename "$model")" "$t" "$onnx" "$esp" "$params" "$tv" $((esp - params - tv))
    else
      f=$(ls "$o"/model.qdq.onnx "$o"/model.ti.onnx 2>/dev/null | head -1 || true)
      printf "%-24s %-8s %9s %9s %9s %9s %9s\n" "$(basename "$model")" "$t" "$onnx" "$(basename "$f"):$(stat -c %s "$f")" - - -
    fi
  done
done
