// A Target is data (targets/<name>.yaml): which tensors a chip quantizes and how. Nothing in
// C++ names a chip; adding a target is writing a file (CONTRIBUTING.md).
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/intmath.h"
#include "ir/quant_config.h"

namespace edgequant {

struct TensorSpec {
  int bits = 8;
  bool is_signed = true;
  bool symmetric = true;
  bool narrow_range = false;  // [-127, 127] instead of [-128, 127] (TFLite weights)
  Granularity granularity = Granularity::PerTensor;
};

struct ChannelRules {  // accelerator layout rules (TI NPU); violations fall back to the CPU
  bool enabled = false;
  int first_conv_in_channels = 0;  // 0: no rule
  int channel_multiple = 0;        // conv in/out and FC inputs must be multiples of this
  std::set<std::string> accelerated_ops;
};

struct Target {
  std::string name, description, file;
  std::string yaml;  // a `base:` target: the whole definition as YAML, the base's keys merged in
  ScaleKind scale_kind = ScaleKind::PowerOfTwo;
  ScaleKind sub8bit_weight_scale_kind = ScaleKind::PowerOfTwo;  // TI: float multiplier below 8 bits
  RoundingMode rounding = RoundingMode::HalfEven;               // float -> code: weights, biases, graph inputs
  RoundingMode requant_rounding = RoundingMode::HalfEven;       // code -> code: accumulator and input requantization
  TensorSpec activation, conv_weight, gemm_weight;
  TensorSpec matmul_weight;      // a MatMul's constant input 1 (default: gemm_weight)
  std::map<int, int> bias_bits;  // weight bits -> bias bits (esp32s3: 8 -> 20, 16 -> 40)
  std::vector<int> allowed_bits;
  std::map<int, int> accumulator_bits;  // activation bits -> accumulator bits (8 -> 32, 16 -> 64)
  int int16_lut_step = 256;             // sampled int16 lookup tables: 65536 / step + 1 entries
  CalibAlgorithm default_calib = CalibAlgorithm::MinMax;
  std::map<CalibAlgorithm, Pow2Rule> pow2_rule;  // per calibrator
  std::set<std::string> float_ops;               // outputs stay float (Softmax)
  std::set<std::string> fused_activations;       // fused into the preceding Conv/Gemm
  std::set<std::string> lut_activations;         // run as lookup tables (documented in reports)
  ChannelRules channel_rules;
  std::string export_format = "qdq";       // the deployable file `quantize` writes by default
  std::set<std::string> runtime_ops;       // op types the chip's runtime loads (empty: any ONNX op)
  std::set<std::string> int8_only_ops;     // op types without a 16-bit kernel on the chip
  std::map<int, int> espdl_filter_blocks;  // weight bits -> b of ESP-DL's (N/b)HWCb filter layout; empty: plain
  // 8-bit outputs of these op types on a fixed grid, not calibrated (TFLite's LOGISTIC, TANH and
  // SOFTMAX kernels require scale 1/256 or 1/128 and their zero points).
  struct FixedGrid {
    double scale = 0;
    int64_t zero_point = 0;
  };
  std::map<std::string, FixedGrid> fixed_output_grids;
  // Op types whose output takes its input's grid after calibration (TFLite's AVERAGE_POOL_2D and
  // RESIZE_BILINEAR keep the input's scale and zero point).
  std::set<std::string> input_grid_ops;

  int bias_bits_for(int weight_bits) const;
  int accumulator_bits_for(int activation_bits) const;
  Pow2Rule pow2_rule_for(CalibAlgorithm calib) const;
};

// NAME (searched in the targets directories) or a path to a .yaml file.
Target load_target(const std::string& name_or_path);
std::vector<std::string> available_targets();
std::string targets_dir();

}  // namespace edgequant
