#!/usr/bin/env bash
# Quantization-aware training on the Fashion-MNIST fixtures: per case, float top-1, PTQ (the
# target's default calibration), TQT (label-free, block-wise, default tqt_optimization_setting),
# then QAT with labels (--loss ce) and QAT by distillation from the float model (--loss distill,
# labels unused), 3 epochs over the 60 000 training images, the 10 000 test images as validation.
# For each QAT row the kept epoch's float / fake-quant / integer-runtime top-1 (the integer number
# is the integer runtime on the integer program, what ships) and seconds per training epoch.
# Then the speed figure: EdgeQuant's QAT epoch on fmnist_resnet against a plain float training
# epoch of the same network in PyTorch eager (bench/qat_reference.py), measured in this run.
# Usage: bash bench/qat_table.sh [BUILD_DIR] [CASES]  (CASES: all | quick | speed; all is about an hour)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
CASES=${2:-all}
D=/usr/share/datasets/fashion-mnist
TRAIN=$D/train-images-idx3-ubyte.gz
VAL=$D/t10k-images-idx3-ubyte.gz
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
printf 'weight_bits: 4\n' > "$OUT/w4.yaml"
printf 'weight_bits: 2\n' > "$OUT/w2.yaml"
printf 'tqt_optimization: true\n' > "$OUT/tqt.yaml"
printf 'weight_bits: 4\ntqt_optimization: true\n' > "$OUT/w4-tqt.yaml"
printf 'weight_bits: 2\ntqt_optimization: true\n' > "$OUT/w2-tqt.yaml"
printf '%-30s %6s %6s %6s  %-24s %6s  %-24s %6s\n' case float PTQ TQT "QAT ce (float/fq/int)" "s/ep" \
  "QAT distill (float/fq/int)" "s/ep"
qat() {  # dir model target loss lr [setting]
  local extra=()
  [ -n "${6:-}" ] && extra=(-s "$6")
  "$BUILD/edgequant" train "tests/fixtures/fashion/$2.onnx" -t "$3" --train "$TRAIN" --val "$VAL" --epochs 3 \
    --loss "$4" --lr "$5" "${extra[@]}" -o "$1" > "$1.log"
}
row() {  # name model target lr [bits]
  local name=$1 model=$2 target=$3 lr=$4 bits=${5:-}
  local s="" st="$OUT/tqt.yaml"
  [ -n "$bits" ] && s="$OUT/$bits.yaml" && st="$OUT/$bits-tqt.yaml"
  local key=${name// /_}
  qat "$OUT/$key-ce" "$model" "$target" ce "$lr" "$s"
  qat "$OUT/$key-kd" "$model" "$target" distill "$lr" "$s"
  "$BUILD/edgequant" quantize "tests/fixtures/fashion/$model.onnx" -t "$target" -c "$TRAIN" -s "$st" \
    -o "$OUT/$key-tqt" > "$OUT/$key-tqt.log"
  local tqt
  tqt=$("$BUILD/edgequant" evaluate "tests/fixtures/fashion/$model.onnx" -q "$OUT/$key-tqt" -d "$VAL" 2>/dev/null |
    awk '/^quantized/ {print $2}')
  /usr/bin/python3 - "$OUT/$key-ce/qat.json" "$OUT/$key-kd/qat.json" "$name" "$tqt" <<'PY'
import json, sys
def load(p):
    h = json.load(open(p))
    e = {x["epoch"]: x for x in h["epochs"]}
    k = e[h["kept_epoch"]]
    secs = [x["seconds"] for x in h["epochs"] if x["epoch"] > 0]
    return e[0], k, sum(secs) / len(secs)
p0, ce, ce_s = load(sys.argv[1])
_, kd, kd_s = load(sys.argv[2])
f = lambda k: f'{k["float_top1"]:.2f}/{k["fake_quant_top1"]:.2f}/{k["integer_top1"]:.2f}'
print(f'{sys.argv[3]:<30} {p0["float_top1"]:6.2f} {p0["integer_top1"]:6.2f} {float(sys.argv[4]):6.2f}  '
      f'{f(ce):<24} {ce_s:6.1f}  {f(kd):<24} {kd_s:6.1f}')
PY
}
if [ "$CASES" = speed ]; then :; else row "fmnist_resnet esp32s3" fmnist_resnet esp32s3 1e-4; fi
if [ "$CASES" = all ]; then
  row "fmnist_resnet esp32p4" fmnist_resnet esp32p4 1e-4
  row "fmnist_resnet ti-npu W4A8" fmnist_resnet ti-npu 1e-3 w4
  row "fmnist_resnet ti-npu W2A8" fmnist_resnet ti-npu 1e-3 w2
  row "fmnist_mobilenet esp32s3" fmnist_mobilenet esp32s3 1e-4
  row "fmnist_mobilenet esp32p4" fmnist_mobilenet esp32p4 1e-4
fi
echo
# Speed, back to back: one QAT training epoch (no validation) and one plain float epoch in PyTorch.
"$BUILD/edgequant" train tests/fixtures/fashion/fmnist_resnet.onnx -t esp32s3 --train "$TRAIN" --epochs 1 \
  -o "$OUT/speed" > "$OUT/speed.log"
/usr/bin/python3 bench/qat_reference.py tests/fixtures/fashion/fmnist_resnet.onnx --data "$TRAIN" > "$OUT/ref.txt"
/usr/bin/python3 - "$OUT/speed/qat.json" "$OUT/ref.txt" <<'PY'
import json, sys
eq = json.load(open(sys.argv[1]))["epochs"][-1]["seconds"]
ref = float(next(l.split()[1] for l in open(sys.argv[2]) if l.startswith("reference_float_epoch_s")))
print(f"fmnist_resnet, 60000 images, batch 64, 2 threads: EdgeQuant QAT epoch (esp32s3) {eq:.1f} s, "
      f"PyTorch eager float epoch {ref:.1f} s: QAT / float = {eq / ref:.2f}x")
PY
