#!/usr/bin/env bash
# Bit-width search under a budget on the ResNet-style Fashion-MNIST fixture for ti-npu (weights
# 2/4/8 bits, activations 8): uniform W2/W4/W8 against the searched allocations at an average of
# 3, 4 and 6 weight bits, by both sensitivities (hessian, measured). Per row: the average weight
# bits and parameter bytes the allocation takes, PTQ top-1 on the 10 000 test images (the target's
# calibration; bias correction on every row, so the 8-bit row gets it too), and with `qat` the
# kept epoch of 3 QAT epochs after it for the uniform and hessian rows (labels, lr 1e-3;
# float / fake-quant / integer runtime).
# Usage: bash bench/bitwidth_table.sh [BUILD_DIR] [ptq|qat]   (ptq: 5 minutes; qat: about 40 on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
MODE=${2:-ptq}
D=/usr/share/datasets/fashion-mnist
TRAIN=$D/train-images-idx3-ubyte.gz
VAL=$D/t10k-images-idx3-ubyte.gz
MODEL=tests/fixtures/fashion/fmnist_resnet.onnx
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
setting() {  # name body
  printf 'analysis: {samples: 256}\nbias_correction: true\n%s\n' "$2" > "$OUT/$1.yaml"
}
setting w2 'weight_bits: 2'
setting w4 'weight_bits: 4'
setting w8 'weight_bits: 8'
printf '%-22s %6s %9s %7s  %-20s %6s\n' row "bits" "param B" "PTQ" "QAT (float/fq/int)" "s"
row() {  # key label
  local key=$1 label=$2 t0 t1
  t0=$(date +%s.%N)
  "$BUILD/edgequant" quantize "$MODEL" -t ti-npu -c "$TRAIN" -s "$OUT/$key.yaml" --format qdq -o "$OUT/$key" \
    > "$OUT/$key.log" 2>&1
  t1=$(date +%s.%N)
  local ptq
  ptq=$("$BUILD/edgequant" evaluate "$MODEL" -q "$OUT/$key" -d "$VAL" 2>/dev/null | awk '/^quantized/ {print $2}')
  local qat="-"
  if [ "$MODE" = qat ] && [ "${key#measured}" = "$key" ]; then
    "$BUILD/edgequant" train "$MODEL" -t ti-npu --train "$TRAIN" --val "$VAL" --epochs 3 --loss ce --lr 1e-3 \
      -s "$OUT/$key.yaml" --format qdq -o "$OUT/$key-qat" > "$OUT/$key-qat.log" 2>&1
    qat=$(/usr/bin/python3 -c "
import json, sys
h = json.load(open(sys.argv[1])); k = {e['epoch']: e for e in h['epochs']}[h['kept_epoch']]
print(f\"{k['float_top1']:.2f}/{k['fake_quant_top1']:.2f}/{k['integer_top1']:.2f}\")" "$OUT/$key-qat/qat.json")
  fi
  # The allocation: from mixed_precision.json when searched, else every weight at the uniform width.
  /usr/bin/python3 - "$OUT/$key" "$label" "$ptq" "$qat" "$t0" "$t1" <<'PY'
import json, os, sys
d, label, ptq, qat, t0, t1 = sys.argv[1:]
mp = os.path.join(d, "mixed_precision.json")
if os.path.exists(mp):
    c = json.load(open(mp))["chosen"]
    bits, nbytes = f'{c["avg_weight_bits"]:.2f}', str(c["param_bytes"])
else:
    bits, nbytes = label.split("W")[-1], "-"
print(f"{label:<22} {bits:>6} {nbytes:>9} {float(ptq):7.2f}  {qat:<20} {float(t1) - float(t0):6.1f}")
PY
}
row w2 "uniform W2"
row w4 "uniform W4"
row w8 "uniform W8"
for m in hessian measured; do
  for b in 3 4 6; do
    setting "$m$b" "mixed_precision: {method: $m, budget: {avg_weight_bits: $b}}"
    row "$m$b" "$m avg $b"
  done
done
