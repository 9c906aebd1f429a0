// Seed 003's modes that need no calibration data, each an ONNX file ONNX Runtime runs: dynamic-
// range quantization (int8 weights stored, activations quantized at run time), float16 (weights
// and compute) and weight-only int8/int4 (per channel or blockwise, opset 21 DequantizeLinear
// with block_size). Each is a rewrite of the float graph (one file per mode); api/convert.cpp
// writes and evaluates the result.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace edgequant::deploy {

enum class ConvertMode { Dynamic, Float16, WeightOnly };
const char* convert_mode_name(ConvertMode mode);
ConvertMode parse_convert_mode(const std::string& name);  // InvalidInput naming the choices

struct ConvertSettings {
  ConvertMode mode = ConvertMode::Dynamic;
  // Dynamic and weight-only: the op types whose constant weights are quantized.
  std::vector<std::string> op_types = {"MatMul", "Gemm", "Conv"};
  // Dynamic: 7-bit weights ([-64, 64], ONNX Runtime's reduce_range). ORT's x86 u8s8 kernels on
  // CPUs without VNNI add pairs of u8 x s8 products in int16 (VPMADDUBSW), which saturates for
  // full-range weights: 2 * 255 * 64 fits, 2 * 255 * 127 does not.
  bool reduce_range = true;
  // Weight-only: 8 or 4 bits; block_size 0 = one scale per output channel, else blocks of this
  // many along the reduction axis; symmetric (no zero point) by default at 8 bits, asymmetric
  // (uint codes and a zero point per block) at 4, as ONNX Runtime's weight-only quantizers do.
  int bits = 8;
  int64_t block_size = 0;
  int symmetric = -1;  // -1: by bits as above; 0/1: forced
  // Float16: graph inputs and outputs float16 too (default: float32, Casts at the boundary).
  bool float16_io = false;
  // Float16: op types or node names left in float32 (Casts around them).
  std::vector<std::string> keep_float32;
};

struct ConvertResult {
  size_t converted = 0;            // ops rewritten (quantized weights / float16 compute)
  size_t kept = 0;                 // ops of the selected kinds left as they were (see notes)
  std::vector<std::string> notes;  // why an op was left, values clamped, opset raised
};

ConvertResult convert_dynamic(Graph& graph, const ConvertSettings& settings);
ConvertResult convert_float16(Graph& graph, const ConvertSettings& settings);
ConvertResult convert_weight_only(Graph& graph, const ConvertSettings& settings);
ConvertResult convert_graph(Graph& graph, const ConvertSettings& settings);  // by settings.mode

// Shared by the mode files.
// A new value named after `base` (made unique) of this type and shape.
Value* add_typed_value(Graph& graph, const std::string& base, DType dtype, const std::optional<Shape>& shape);
// Weight codes of a float32 constant, one scale (and zero point) per index of `axis` (block 0)
// or per block of `block` elements along `axis` and every index of the other dims (ONNX's
// blocked DequantizeLinear layout: scales have the weight's rank with ceil(dim / block) on
// `axis`). Symmetric: codes in [-qmax, qmax] of a signed type, scale = max|w| / qmax. Asymmetric:
// unsigned codes in [0, 2^bits - 1], the range widened to hold 0. Rounding half to even; an
// all-zero group gets scale 1.
struct WeightCodes {
  Tensor codes, scales, zero_points;  // zero_points: dtype Undefined when symmetric
};
WeightCodes quantize_weight(const Tensor& w, int64_t axis, int64_t block, int bits, bool symmetric, int64_t qmax);

// Raises the graph's default-domain opset to `to` (>= 13), rewriting the ops whose form changed
// on the way (Squeeze/Unsqueeze/Split/ReduceSum axes at 13, the other Reduce* axes and Split's
// num_outputs at 18, Softmax's axis at 13 when the meaning is unchanged). An op whose meaning
// changed otherwise (GroupNormalization, GridSample, DFT, Upsample, ...) or a source opset below
// 11 is refused by name. Returns what was rewritten.
std::vector<std::string> upgrade_opset(Graph& graph, int64_t to);

}  // namespace edgequant::deploy
