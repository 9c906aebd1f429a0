#!/usr/bin/env bash
# ESP-DL's own runtime (../shared/espdl-oracle, built here for Linux) on every .espdl file
# `edgequant quantize` writes for the fixture models: for the `c` and `esp32s3` targets the oracle
# must load the file, pass Model::test() and match every embedded output bit for bit (exit 0). It
# refuses per-channel esp32p4 files by design (exit 3); those are checked by EdgeQuant's reader
# (`edgequant run FILE.espdl`, the host Model::test()). Skips (77) when the oracle is absent.
# Usage: espdl_oracle.sh EDGEQUANT_BIN SOURCE_DIR ORACLE_DIR WORK_DIR
set -uo pipefail
EQ=$1; SRC=$2; ORACLE=$3; WORK=$4
if [ ! -f "$ORACLE/build.sh" ]; then echo "SKIP: no ESP-DL oracle at $ORACLE"; exit 77; fi
mkdir -p "$WORK"
BIN=$(bash "$ORACLE/build.sh" "$WORK/espdl-oracle") || { echo "FAIL: the oracle did not build"; exit 1; }
FASHION=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
S=$SRC/tests/fixtures/settings
# model, calibration data, setting ("-": defaults, int8), targets (default: c esp32s3 esp32p4).
# A MatMul whose input 1 is computed is checked on c only: the host oracle runs the generic C
# kernels, which read that operand in the plain N-major order, while an esp32s3/esp32p4 file
# carries the PIE blocked order ESP-PPQ's exporter writes (the host loader re-lays out Conv/Gemm
# filters only); EdgeQuant's reader self-test covers esp32p4.
CASES=(
  "fashion/fmnist_mobilenet.onnx $FASHION -"
  "fashion/fmnist_resnet.onnx $FASHION -"
  "models/mobilenetv2_style_op13.onnx $SRC/tests/fixtures/models/mobilenetv2_style_input.npy -"
  "models/resnet_style_op13.onnx $SRC/tests/fixtures/models/resnet_style_input.npy -"
  "models/detection_head_op13.onnx $SRC/tests/fixtures/models/detection_head_input.npy -"
  "models/batchnorm_op13.onnx $SRC/tests/fixtures/models/batchnorm_input.npy -"
  "models/mobilenetv2_style_op13.onnx $SRC/tests/fixtures/models/mobilenetv2_style_input.npy $S/int16.yaml"
  "models/resnet_style_op13.onnx $SRC/tests/fixtures/models/resnet_style_input.npy $S/int16.yaml"
  "models/detection_head_op13.onnx $SRC/tests/fixtures/models/detection_head_input.npy $S/int16_detection_head.yaml"
  "models/resnet_style_op13.onnx $SRC/tests/fixtures/models/resnet_style_input.npy $S/float_island_resnet.yaml"
  "models/fmod_op13.onnx $SRC/tests/fixtures/models/fmod_input.npy -"
  "models/fmod_op13.onnx $SRC/tests/fixtures/models/fmod_input.npy $S/int16.yaml"
  "models/temporal_conv_op13.onnx $SRC/tests/fixtures/models/temporal_conv_input.npy -"
  "models/temporal_conv_op13.onnx $SRC/tests/fixtures/models/temporal_conv_input.npy $S/int16.yaml"
  "models/causal_tcn_op13.onnx $SRC/tests/fixtures/models/causal_tcn_input.npy -"
  "models/standalone_bn_op13.onnx $SRC/tests/fixtures/models/standalone_bn_input.npy -"
  "models/transformer_block_op13.onnx $SRC/tests/fixtures/models/transformer_block_input.npy - c esp32p4"
  "models/transformer_block_op13.onnx $SRC/tests/fixtures/models/transformer_block_input.npy $S/int16.yaml c esp32p4"
  "models/transformer_block_op17.onnx $SRC/tests/fixtures/models/transformer_block_input.npy - c esp32p4"
  "models/reductions_op13.onnx $SRC/tests/fixtures/models/reductions_input.npy -"
  "models/reductions_op13.onnx $SRC/tests/fixtures/models/reductions_input.npy $S/int16.yaml"
  "models/depth_space_op13.onnx $SRC/tests/fixtures/models/depth_space_input.npy -"
  "models/depth_space_op13.onnx $SRC/tests/fixtures/models/depth_space_input.npy $S/int16.yaml"
  "models/conv_transpose_op13.onnx $SRC/tests/fixtures/models/conv_transpose_input.npy -"
  "models/conv_transpose_op13.onnx $SRC/tests/fixtures/models/conv_transpose_input.npy $S/int16.yaml"
  "models/pads_op13.onnx $SRC/tests/fixtures/models/pads_input.npy -"
  "models/pads_op13.onnx $SRC/tests/fixtures/models/pads_input.npy $S/int16.yaml"
  "models/instance_norm_op13.onnx $SRC/tests/fixtures/models/instance_norm_input.npy -"
  "models/instance_norm_op13.onnx $SRC/tests/fixtures/models/instance_norm_input.npy $S/int16.yaml"
)
failures=0
printf "%-28s %-6s %-8s %10s %10s  %s\n" model bits target onnx_bytes espdl_bytes result
for c in "${CASES[@]}"; do
  read -r model data setting targets <<<"$c"
  bits=int8; extra=()
  if [ "$setting" != - ]; then extra=(-s "$setting"); fi
  case "$setting" in *int16*) bits=int16 ;; *float_island*) bits=island ;; esac
  for target in ${targets:-c esp32s3 esp32p4}; do
    out="$WORK/$(basename "$model" .onnx)-$bits-$target"
    rm -rf "$out"
    if ! "$EQ" quantize "$SRC/tests/fixtures/$model" -t "$target" -c "$data" --calib-steps 1 --batch-size 8 -o "$out" --export-test-values "${extra[@]}" \
         >"$out.log" 2>&1; then
      echo "FAIL: quantize $model $target"; tail -3 "$out.log"; failures=$((failures + 1)); continue
    fi
    file="$out/model.espdl"
    "$BIN" "$file" --log 0 >"$out.oracle.log" 2>&1
    rc=$?
    if [ "$target" = esp32p4 ]; then
      # Per-channel filters: the oracle must refuse (3); EdgeQuant's reader reproduces the outputs.
      if [ $rc -eq 3 ] && "$EQ" run "$file" >"$out.self.log" 2>&1; then result="oracle refuses per-channel; reader self-test PASS"
      else result="FAIL (oracle rc $rc, self-test: $(tail -1 "$out.self.log"))"; failures=$((failures + 1)); fi
    else
      if [ $rc -eq 0 ] && grep -q "RESULT Model::test() PASS" "$out.oracle.log"; then
        result="ESP-DL Model::test() PASS, $(grep -c 'EXACT' "$out.oracle.log") output(s) EXACT"
      else
        result="FAIL (oracle rc $rc)"; grep RESULT "$out.oracle.log" | head -5; failures=$((failures + 1))
      fi
    fi
    printf "%-28s %-6s %-8s %10s %10s  %s\n" "$(basename "$model")" "$bits" "$target" "$(stat -c %s "$SRC/tests/fixtures/$model")" \
      "$(stat -c %s "$file")" "$result"
  done
done
echo "failures: $failures"
[ $failures -eq 0 ]
