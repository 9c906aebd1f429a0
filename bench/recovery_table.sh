#!/usr/bin/env bash
# Accuracy recovery table on the Fashion-MNIST fixtures (8 bits, esp32s3 and esp32p4): float,
# PTQ (the target's default calibrator), PTQ + each pass alone, and combinations; top-1 on the
# 10 000-image test set and the wall time of the quantize command. Prints one line per cell.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
D=/usr/share/datasets/fashion-mnist
declare -A CFG=(
  [ptq]=""
  [bias_correction]="bias_correction: true"
  [equalization]="equalization: true
equalization_setting: {opt_level: 2, relu6_to_relu: true}"
  [mixed_precision_k1]="mixed_precision: {auto_promote: 1}"
  [tqt]="tqt_optimization: true
tqt_optimization_setting: {lr: 1.25e-4}"
  [adaround]="blockwise_reconstruction: true
blockwise_reconstruction_setting: {steps: 1000}"
  [bias_correction+tqt]="bias_correction: true
tqt_optimization: true
tqt_optimization_setting: {lr: 1.25e-4}"
)
ORDER="ptq equalization bias_correction mixed_precision_k1 tqt adaround bias_correction+tqt"
for m in fmnist_mobilenet fmnist_resnet; do
  for t in esp32s3 esp32p4; do
    for name in $ORDER; do
      set_file=$(mktemp --suffix=.yaml); out=$(mktemp -d)
      printf '%s\nanalysis: {layerwise: false}\n' "${CFG[$name]}" > "$set_file"
      start=$(date +%s%N)
      "$BUILD/edgequant" quantize tests/fixtures/fashion/$m.onnx -t $t -c $D/train-images-idx3-ubyte.gz -s "$set_file" -o "$out" > /dev/null 2>&1
      ms=$(( ($(date +%s%N) - start) / 1000000 ))
      line=$("$BUILD/edgequant" evaluate tests/fixtures/fashion/$m.onnx -q "$out" -d $D/t10k-images-idx3-ubyte.gz)
      f=$(echo "$line" | awk '/^float/{print $2}'); q=$(echo "$line" | awk '/^quantized/{print $2}')
      printf 'RECOVERY %-17s %-8s %-20s float %6s  quantized %6s  quantize %d.%01d s\n' $m $t $name "$f" "$q" $((ms / 1000)) $((ms % 1000 / 100))
      rm -rf "$set_file" "$out"
    done
  done
done
