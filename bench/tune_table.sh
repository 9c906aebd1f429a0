#!/usr/bin/env bash
# The tuner on the Fashion-MNIST fixtures (shipped playbook, budget 12, 10 000 test images as
# evaluation data, the training images for calibration): per case, float, the default setting,
# the best calibrator/training trial (phases 2-3), the tuner's best, trials, stop reason and the
# wall time. Usage: bash bench/tune_table.sh [BUILD_DIR] [JOBS]   (about 25 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
JOBS=${2:-1}
D=/usr/share/datasets/fashion-mnist
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
printf 'weight_bits: 4\n' > "$OUT/w4.yaml"
printf '%-38s %7s %8s %22s %22s %7s %8s  %s\n' case float default "best of phases 2-3" "tuner best" trials wall stop
run() {  # name model target [setting]
  local name=$1 model=$2 target=$3 extra=()
  [ $# -ge 4 ] && extra=(-s "$4")
  local start=$SECONDS
  "$BUILD/edgequant" tune "tests/fixtures/fashion/$model.onnx" -t "$target" -c "$D/train-images-idx3-ubyte.gz" \
    -e "$D/t10k-images-idx3-ubyte.gz" --budget 12 --jobs "$JOBS" "${extra[@]}" -o "$OUT/$name" > "$OUT/$name.log"
  local wall=$((SECONDS - start))
  /usr/bin/python3 - "$OUT/$name/report.json" "$name" "$wall" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
h = [t for t in r["history"] if "value" in t]
early = max((t for t in h if t["phase"] in ("calibrator", "training")), key=lambda t: t["value"], default=None)
e = f'{early["value"]:.2f} ({early["change"]})' if early else "-"
b = r["best"]
best = f'{b["value"]:.2f} ({"+".join([b["calibrator"]] + b["levers"])})'
print(f'{sys.argv[2]:<38} {r["float"]:7.2f} {r["baseline"]["value"]:8.2f} {e:>22} {best:>22} {r["trials"]:7d} '
      f'{float(sys.argv[3]):7.0f}s  {r["stop_reason"]}')
PY
}
run "fmnist_resnet ti-npu W4A8" fmnist_resnet ti-npu "$OUT/w4.yaml"
run "fmnist_mobilenet esp32s3" fmnist_mobilenet esp32s3
run "fmnist_mobilenetv2 esp32s3" fmnist_mobilenetv2 esp32s3
