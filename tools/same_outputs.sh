#!/usr/bin/env bash
# Proves a refactoring changes no output: quantizes a matrix of fixtures x targets x settings
# (every export format, int16, mixed precision + bias correction + equalization, TQT, AdaRound, LSQ,
# a fixed-batch model) with two edgequant binaries and compares every file they write, byte for
# byte (copies of the inputs, target.yaml and setting.yaml, and summary.txt with its timings
# excepted); analysis.json without its "seconds" (timings). Exit 0: identical; 1: a difference.
# Usage: tools/same_outputs.sh OLD_EDGEQUANT NEW_EDGEQUANT [WORK_DIR]
# (an old binary: git worktree add /tmp/old REV && cmake -S /tmp/old -B /tmp/old/build -G Ninja
#  -DCMAKE_BUILD_TYPE=Release && cmake --build /tmp/old/build --target edgequant_cli)
set -euo pipefail
OLD=$1; NEW=$2; W=${3:-/var/tmp/edgequant-same-outputs}
F="$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures"
FM=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
PY=/usr/bin/python3
rm -rf "$W"; mkdir -p "$W"
printf 'tqt_optimization: true\ntqt_optimization_setting: {steps: 60, block_size: 4, lr: 1.25e-4}\n' > "$W/tqt.yaml"
printf 'mixed_precision: {auto_promote: 2}\nbias_correction: true\nequalization: true\n' > "$W/mix.yaml"
printf 'blockwise_reconstruction: true\nblockwise_reconstruction_setting: {steps: 40}\n' > "$W/ada.yaml"
printf 'lsq_optimization: true\nlsq_optimization_setting: {steps: 40}\n' > "$W/lsq.yaml"
cases=()
for t in esp32s3 esp32p4 c ort-int8 tflite-int8 ti-npu; do
  cases+=("fm_mob_$t|$F/fashion/fmnist_mobilenet.onnx -t $t --calib $FM")
  cases+=("rn_$t|$F/models/resnet_style_op13.onnx -t $t --calib $F/models/resnet_style_input.npy")
done
cases+=("det_s3|$F/models/detection_head_op13.onnx -t esp32s3 --calib $F/models/detection_head_input.npy")
cases+=("det_int16|$F/models/detection_head_op13.onnx -t esp32s3 --calib $F/models/detection_head_input.npy -s $F/settings/int16_detection_head.yaml")
cases+=("mbv2_p4|$F/models/mobilenetv2_style_op13.onnx -t esp32p4 --calib $F/models/mobilenetv2_style_input.npy")
cases+=("fm_res_tqt|$F/fashion/fmnist_resnet.onnx -t esp32s3 --calib $FM -s $W/tqt.yaml")
cases+=("fm_res_mix|$F/fashion/fmnist_resnet.onnx -t esp32s3 --calib $FM -s $W/mix.yaml")
cases+=("fm_mob_ada_ti|$F/fashion/fmnist_mobilenet.onnx -t ti-npu --calib $FM -s $W/ada.yaml")
cases+=("fm_mob_lsq_ort|$F/fashion/fmnist_mobilenet.onnx -t ort-int8 --calib $FM -s $W/lsq.yaml")
cases+=("fixed_b1|$F/fixed_batch/detector_b1.onnx -t esp32p4 --calib $F/fixed_batch/detector_input.npy")
status=0; files=0
for c in "${cases[@]}"; do
  name=${c%%|*}; args=${c#*|}
  for side in old new; do
    bin=$OLD; [ $side = new ] && bin=$NEW
    # shellcheck disable=SC2086
    "$bin" quantize $args --out "$W/$side/$name" > /dev/null 2> "$W/$name.$side.err" || echo "$name: $side exit $?" >> "$W/$name.$side.err"
  done
  if ! cmp -s "$W/$name.old.err" "$W/$name.new.err" && grep -q "exit" "$W/$name.old.err" "$W/$name.new.err"; then
    echo "DIFF $name: exit status"; status=1
  fi
  if [ "$(cd "$W/old/$name" 2>/dev/null && find . -type f | sort)" != "$(cd "$W/new/$name" 2>/dev/null && find . -type f | sort)" ]; then
    echo "DIFF $name: other files written"; status=1
  fi
  # target.yaml and setting.yaml are copies of the inputs given, summary.txt carries timings.
  for f in $(cd "$W/old/$name" 2>/dev/null && find . -type f ! -name summary.txt ! -name target.yaml ! -name setting.yaml | sort); do
    files=$((files + 1))
    a="$W/old/$name/$f"; b="$W/new/$name/$f"
    if [ "${f##*/}" = analysis.json ]; then
      strip='import json,sys; j=json.load(open(sys.argv[1])); j.pop("seconds",None); print(json.dumps(j,sort_keys=True))'
      cmp -s <($PY -c "$strip" "$a") <($PY -c "$strip" "$b" 2>/dev/null) || { echo "DIFF $name/$f"; status=1; }
    else
      cmp -s "$a" "$b" || { echo "DIFF $name/$f"; status=1; }
    fi
  done
done
echo "same_outputs: ${#cases[@]} runs, $files files compared: $([ $status = 0 ] && echo identical || echo DIFFERENT)"
exit $status
