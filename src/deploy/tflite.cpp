// The `.tflite` writer (tflite.h) and its exporter. Tensors are the program's values and
// initializers in its channels-last layout; each program node becomes one TFLite operator, or a
// PAD before it where ONNX pads are not TFLite's SAME or VALID.
#include "deploy/tflite.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "core/files.h"
#include "deploy/exporter.h"
#include "deploy/integer_program.h"
#include "deploy/tflite_generated.h"
#include "edgequant/error.h"
#include "ir/op_traits.h"

namespace edgequant::deploy {

using runtime::IntGraph;
using runtime::IntNode;
using runtime::IntTensor;
using runtime::ValueInfo;

namespace {

namespace tfl = ::tflite;

// TFLite's Padding of a 2-D window, or nullopt when the ONNX pads are neither SAME nor VALID.
std::optional<tfl::Padding> tflite_padding(const Shape& in_nhwc, const std::vector<int64_t>& kernel,
                                           const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                                           const std::vector<int64_t>& pads) {
  bool zero = true;
  for (int64_t v : pads) zero &= v == 0;
  if (zero) return tfl::Padding_VALID;
  for (size_t d = 0; d < 2; ++d) {
    int64_t in = in_nhwc[d + 1], s = strides[d], k = (kernel[d] - 1) * dilations[d] + 1;
    int64_t out = (in + s - 1) / s;
    int64_t total = std::max<int64_t>((out - 1) * s + k - in, 0);
    if (pads[d] != total / 2 || pads[d + 2] != total - total / 2) return std::nullopt;
  }
  return tfl::Padding_SAME;
}

struct Writer {
  const IntGraph& p;
  flatbuffers::FlatBufferBuilder fb{1 << 16};
  std::vector<flatbuffers::Offset<tfl::Buffer>> buffers;
  std::vector<flatbuffers::Offset<tfl::Tensor>> tensors;
  std::map<std::string, int> index;  // program name -> tensor index
  std::vector<flatbuffers::Offset<tfl::Operator>> ops;
  std::vector<std::pair<tfl::BuiltinOperator, int>> codes;  // operator code table (op, version)
  std::vector<std::string> problems;
  int fresh = 0;

  explicit Writer(const IntGraph& program) : p(program) { buffers.push_back(tfl::CreateBuffer(fb)); }

  static tfl::TensorType type_of(DType d) {
    switch (d) {
      case DType::Int8:
        return tfl::TensorType_INT8;
      case DType::UInt8:
        return tfl::TensorType_UINT8;
      case DType::Int16:
        return tfl::TensorType_INT16;
      case DType::Int32:
        return tfl::TensorType_INT32;
      case DType::Int64:
        return tfl::TensorType_INT64;
      case DType::Float32:
        return tfl::TensorType_FLOAT32;
      default:
        fail(ErrorCode::Unsupported, std::string(".tflite: no tensor type for ") + dtype_name(d));
    }
  }

  flatbuffers::Offset<tfl::QuantizationParameters> quant(const std::vector<double>& scales,
                                                         const std::vector<int64_t>& zps, int axis) {
    std::vector<float> s(scales.begin(), scales.end());
    std::vector<int64_t> z = zps;
    z.resize(s.size(), zps.empty() ? 0 : zps.back());
    return tfl::CreateQuantizationParametersDirect(fb, nullptr, nullptr, &s, &z, axis);
  }

  int add_tensor(const std::string& name, const Shape& shape, DType dtype,
                 flatbuffers::Offset<tfl::QuantizationParameters> q, uint32_t buffer) {
    std::vector<int32_t> dims(shape.begin(), shape.end());
    tensors.push_back(tfl::CreateTensorDirect(fb, &dims, type_of(dtype), buffer, name.c_str(), q));
    return index[name] = int(tensors.size() - 1);
  }

  template <class T>
  uint32_t add_buffer(const std::vector<T>& v) {
    std::vector<uint8_t> bytes(v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(bytes.data(), v.data(), bytes.size());
    fb.ForceVectorAlignment(bytes.size(), 1, 16);
    buffers.push_back(tfl::CreateBuffer(fb, fb.CreateVector(bytes)));
    return uint32_t(buffers.size() - 1);
  }

  uint32_t buffer_of(const IntTensor& t) {
    switch (t.dtype) {
      case DType::Int8:
        return add_buffer(std::vector<int8_t>(t.ints.begin(), t.ints.end()));
      case DType::UInt8:
        return add_buffer(std::vector<uint8_t>(t.ints.begin(), t.ints.end()));
      case DType::Int16:
        return add_buffer(std::vector<int16_t>(t.ints.begin(), t.ints.end()));
      case DType::Int32:
        return add_buffer(std::vector<int32_t>(t.ints.begin(), t.ints.end()));
      case DType::Int64:
        return add_buffer(t.ints);
      case DType::Float32:
        return add_buffer(t.floats);
      default:
        fail(ErrorCode::Unsupported, std::string(".tflite: no tensor type for ") + dtype_name(t.dtype));
    }
  }

  // An int32 constant (shapes, perms, paddings).
  int int32_constant(const std::string& base, const Shape& shape, const std::vector<int64_t>& v) {
    IntTensor t;
    t.dtype = DType::Int32;
    t.ints = v;
    return add_tensor(base + "_" + std::to_string(fresh++), shape, DType::Int32, 0, buffer_of(t));
  }

  // The tensor of a program value or initializer (created on first use). `layout` reorders a
  // constant's data (weights); `quant_axis` is its per-channel axis after that.
  int tensor(const std::string& name) {
    auto it = index.find(name);
    if (it != index.end()) return it->second;
    if (const IntTensor* t = p.initializer(name)) return constant(name, *t, t->shape, 0);
    const ValueInfo& vi = p.value(name);
    flatbuffers::Offset<tfl::QuantizationParameters> q = 0;
    if (vi.dtype != DType::Float32)
      q = quant({vi.scale > 0 ? vi.scale : std::ldexp(1.0, vi.exponent)}, {vi.zero_point}, 0);
    return add_tensor(name, vi.shape, vi.dtype, q, 0);
  }
  int constant(const std::string& name, const IntTensor& t, const Shape& shape, int axis) {
    flatbuffers::Offset<tfl::QuantizationParameters> q = 0;
    if (!t.is_float() && t.dtype != DType::Int64 &&
        !(t.scales.empty() && t.exponents.size() == 1 && t.exponent() == 0)) {
      std::vector<double> s;
      size_t n = std::max(t.scales.size(), t.exponents.size());
      for (size_t c = 0; c < n; ++c) s.push_back(t.scale(c));
      q = quant(s, t.zero_points, axis);
    }
    return add_tensor(name, shape, t.dtype, q, buffer_of(t));
  }

  int opcode(tfl::BuiltinOperator op, int version) {
    for (size_t k = 0; k < codes.size(); ++k)
      if (codes[k].first == op) {
        codes[k].second = std::max(codes[k].second, version);
        return int(k);
      }
    codes.push_back({op, version});
    return int(codes.size() - 1);
  }

  void add_op(tfl::BuiltinOperator code, int version, const std::vector<int>& in, const std::vector<int>& out,
              tfl::BuiltinOptions type = tfl::BuiltinOptions_NONE, flatbuffers::Offset<void> options = 0) {
    ops.push_back(tfl::CreateOperatorDirect(fb, uint32_t(opcode(code, version)), &in, &out, type, options));
  }

  void refuse(const IntNode& n, const std::string& why) {
    problems.push_back("node '" + n.name + "' (" + n.op_type + "): " + why);
  }

  static tfl::ActivationFunctionType activation(const IntNode& n) {
    return n.attr_string("activation", "Linear") == "Relu" ? tfl::ActivationFunctionType_RELU
                                                           : tfl::ActivationFunctionType_NONE;
  }

  // What fills ONNX pads TFLite's SAME cannot express: real 0 (Conv; AveragePool counting
  // them), the lowest code (MaxPool: never the maximum of a window that holds an input element).
  enum class Fill { None, Zero, Lowest };

  // The input of a windowed op: itself when `pads` are TFLite's SAME or VALID, else a PAD (the
  // zero point) or PADV2 (the lowest code) with the pads; `padding` gets what the op then declares.
  int padded_input(const IntNode& n, const std::vector<int64_t>& kernel, const std::vector<int64_t>& strides,
                   const std::vector<int64_t>& dilations, const std::vector<int64_t>& pads, Fill fill,
                   tfl::Padding& padding) {
    const ValueInfo& in = p.value(n.inputs[0]);
    int x = tensor(n.inputs[0]);
    if (auto pd = tflite_padding(in.shape, kernel, strides, dilations, pads)) {
      padding = *pd;
      return x;
    }
    padding = tfl::Padding_VALID;
    if (fill == Fill::None) {
      refuse(n, "pads " + shape_str(pads) + " are neither TFLite's SAME nor VALID");
      return x;
    }
    return explicit_pad(n, pads, fill);
  }

  // A PAD (real 0: the zero point) or PADV2 (the lowest code) of the node's input 0 by ONNX 2-D
  // pads [top, left, bottom, right].
  int explicit_pad(const IntNode& n, const std::vector<int64_t>& pads, Fill fill) {
    const ValueInfo& in = p.value(n.inputs[0]);
    int x = tensor(n.inputs[0]);
    Shape s = in.shape;
    s[1] += pads[0] + pads[2];
    s[2] += pads[1] + pads[3];
    int paddings = int32_constant(n.name + "_paddings", {4, 2}, {0, 0, pads[0], pads[2], pads[1], pads[3], 0, 0});
    auto grid = [&] { return quant({in.scale > 0 ? in.scale : std::ldexp(1.0, in.exponent)}, {in.zero_point}, 0); };
    int out = add_tensor(n.name + "_padded", s, in.dtype, grid(), 0);
    if (fill == Fill::Zero) {
      add_op(tfl::BuiltinOperator_PAD, 2, {x, paddings}, {out}, tfl::BuiltinOptions_PadOptions,
             tfl::CreatePadOptions(fb).Union());
    } else {
      IntTensor lowest;
      lowest.dtype = in.dtype;
      lowest.ints = {runtime::dtype_min(in.dtype)};
      int value = add_tensor(n.name + "_pad_value", {}, in.dtype, grid(), buffer_of(lowest));
      add_op(tfl::BuiltinOperator_PADV2, 2, {x, paddings, value}, {out}, tfl::BuiltinOptions_PadV2Options,
             tfl::CreatePadV2Options(fb).Union());
    }
    return out;
  }

  void conv(const IntNode& n) {
    const IntTensor* w = p.initializer(n.inputs[1]);
    const ValueInfo& in = p.value(n.inputs[0]);
    if (!w || w->shape.size() != 4 || in.shape.size() != 4)
      return refuse(n, "only 2-D convolutions with constant weights");
    int64_t O = w->shape[0], I = w->shape[1], KH = w->shape[2], KW = w->shape[3], C = in.shape[3];
    int64_t group = n.attr_int("group", 1);
    bool depthwise = group != 1 && group == C && I == 1;
    if (group != 1 && !depthwise) return refuse(n, "grouped convolution (TFLite has group 1 and depthwise)");
    std::vector<int64_t> strides = n.attr_ints("strides", {1, 1}), dil = n.attr_ints("dilations", {1, 1}),
                         pads = n.attr_ints("pads", {0, 0, 0, 0});
    tfl::Padding padding;
    int x = padded_input(n, {KH, KW}, strides, dil, pads, Fill::Zero, padding);
    // OIHW -> OHWI (CONV_2D) or 1HWO (DEPTHWISE_CONV_2D), scales along O.
    IntTensor wt = *w;
    Shape shape;
    wt.ints = permute(w->ints, w->shape,
                      depthwise ? std::vector<int64_t>{1, 2, 3, 0} : std::vector<int64_t>{0, 2, 3, 1}, &shape);
    int wi = constant(n.inputs[1], wt, shape, depthwise ? 3 : 0);
    int bi = n.inputs.size() > 2 && !n.inputs[2].empty() ? tensor(n.inputs[2]) : -1;
    int y = tensor(n.outputs[0]);
    if (depthwise)
      add_op(tfl::BuiltinOperator_DEPTHWISE_CONV_2D, 3, {x, wi, bi}, {y}, tfl::BuiltinOptions_DepthwiseConv2DOptions,
             tfl::CreateDepthwiseConv2DOptions(fb, padding, int(strides[1]), int(strides[0]), int(O / C), activation(n),
                                               int(dil[1]), int(dil[0]))
                 .Union());
    else
      add_op(tfl::BuiltinOperator_CONV_2D, 3, {x, wi, bi}, {y}, tfl::BuiltinOptions_Conv2DOptions,
             tfl::CreateConv2DOptions(fb, padding, int(strides[1]), int(strides[0]), activation(n), int(dil[1]),
                                      int(dil[0]))
                 .Union());
  }

  void fully_connected(const IntNode& n) {
    const IntTensor* w = p.initializer(n.inputs[1]);
    if (!w || w->shape.size() != 2) return refuse(n, "fully connected needs a constant 2-D weight");
    // The program's [C, N] (transB 0) -> TFLite's [N, C].
    IntTensor wt = *w;
    Shape shape;
    wt.ints = permute(w->ints, w->shape, {1, 0}, &shape);
    int x = tensor(n.inputs[0]);
    int wi = constant(n.inputs[1], wt, shape, 0);
    int bi = n.inputs.size() > 2 && !n.inputs[2].empty() ? tensor(n.inputs[2]) : -1;
    add_op(tfl::BuiltinOperator_FULLY_CONNECTED, 4, {x, wi, bi}, {tensor(n.outputs[0])},
           tfl::BuiltinOptions_FullyConnectedOptions, tfl::CreateFullyConnectedOptions(fb, activation(n)).Union());
  }

  void pool(const IntNode& n, bool max, bool global) {
    const ValueInfo& in = p.value(n.inputs[0]);
    if (in.shape.size() != 4) return refuse(n, "only 2-D pooling");
    std::vector<int64_t> k = global ? std::vector<int64_t>{in.shape[1], in.shape[2]} : n.attr_ints("kernel_shape"),
                         strides = global ? std::vector<int64_t>{1, 1} : n.attr_ints("strides", {1, 1}),
                         pads = global ? std::vector<int64_t>{0, 0, 0, 0} : n.attr_ints("pads", {0, 0, 0, 0});
    if (n.attr_int("ceil_mode", 0) != 0) return refuse(n, "ceil_mode=1");
    // TFLite's SAME average excludes the pads (ONNX count_include_pad 0); explicit pads counted
    // in the average are a PAD of zeros before a VALID pool.
    Fill fill = max ? Fill::Lowest : (n.attr_int("count_include_pad", 0) != 0 ? Fill::Zero : Fill::None);
    if (global) fill = Fill::None;
    const ValueInfo& o = p.value(n.outputs[0]);
    bool same_grid =
        o.dtype == in.dtype && o.scale == in.scale && o.zero_point == in.zero_point && o.exponent == in.exponent;
    if (!same_grid && global && !max) {
      // TFLite's pools keep the input's grid; its MEAN requantizes.
      int axes = int32_constant(n.name + "_axes", {2}, {1, 2});
      return add_op(tfl::BuiltinOperator_MEAN, 2, {tensor(n.inputs[0]), axes}, {tensor(n.outputs[0])},
                    tfl::BuiltinOptions_ReducerOptions, tfl::CreateReducerOptions(fb, true).Union());
    }
    if (!same_grid) return refuse(n, "TFLite's pools keep the input's scale and zero point; this output has others");
    tfl::Padding padding = tfl::Padding_VALID;
    bool padded = std::any_of(pads.begin(), pads.end(), [](int64_t v) { return v != 0; });
    int x = fill == Fill::Zero && padded ? explicit_pad(n, pads, Fill::Zero)
                                         : padded_input(n, k, strides, {1, 1}, pads, fill, padding);
    add_op(max ? tfl::BuiltinOperator_MAX_POOL_2D : tfl::BuiltinOperator_AVERAGE_POOL_2D, 2, {x},
           {tensor(n.outputs[0])}, tfl::BuiltinOptions_Pool2DOptions,
           tfl::CreatePool2DOptions(fb, padding, int(strides[1]), int(strides[0]), int(k[1]), int(k[0])).Union());
  }

  // TFLite's int8 LOGISTIC, TANH and SOFTMAX write one fixed grid (the target's
  // fixed_output_grids quantize them there).
  void fixed_grid_op(const IntNode& n, tfl::BuiltinOperator code, double scale, int64_t zero_point) {
    const ValueInfo& o = p.value(n.outputs[0]);
    if (o.dtype != DType::Int8 || o.scale != scale || o.zero_point != zero_point)
      return refuse(n, "TFLite's int8 kernel writes scale " + std::to_string(scale) + ", zero point " +
                           std::to_string(zero_point) + " (the target's fixed_output_grids); this output has others");
    int x = tensor(n.inputs[0]);
    if (code == tfl::BuiltinOperator_SOFTMAX)
      return add_op(code, 2, {x}, {tensor(n.outputs[0])}, tfl::BuiltinOptions_SoftmaxOptions,
                    tfl::CreateSoftmaxOptions(fb, 1.0f).Union());
    add_op(code, 2, {x}, {tensor(n.outputs[0])});
  }

  // ONNX Resize of H and W in TFLite's two resize kernels: nearest with asymmetric coordinates and
  // floor (PyTorch's nearest), linear with half_pixel or align_corners; the input's grid kept.
  void resize(const IntNode& n) {
    const ValueInfo& in = p.value(n.inputs[0]);
    const ValueInfo& o = p.value(n.outputs[0]);
    if (in.shape.size() != 4 || o.shape.size() != 4 || in.shape[0] != o.shape[0] || in.shape[3] != o.shape[3])
      return refuse(n, "only the spatial axes of a 4-D tensor are resized by TFLite");
    if (o.dtype != in.dtype || o.scale != in.scale || o.zero_point != in.zero_point || o.exponent != in.exponent)
      return refuse(n, "TFLite's resize keeps the input's scale and zero point; this output has others");
    std::string mode = n.attr_string("mode", "nearest"),
                ctm = n.attr_string("coordinate_transformation_mode",
                                    n.is(OpType::Upsample) ? "asymmetric" : "half_pixel"),
                nearest = n.attr_string("nearest_mode", "round_prefer_floor");
    int size = int32_constant(n.name + "_size", {2}, {o.shape[1], o.shape[2]});
    int x = tensor(n.inputs[0]);
    if (mode == "nearest" && ctm == "asymmetric" && nearest == "floor")
      return add_op(tfl::BuiltinOperator_RESIZE_NEAREST_NEIGHBOR, 3, {x, size}, {tensor(n.outputs[0])},
                    tfl::BuiltinOptions_ResizeNearestNeighborOptions,
                    tfl::CreateResizeNearestNeighborOptions(fb, false, false).Union());
    if (mode == "linear" && (ctm == "half_pixel" || ctm == "pytorch_half_pixel" || ctm == "align_corners")) {
      if (ctm == "pytorch_half_pixel" && (o.shape[1] == 1 || o.shape[2] == 1))
        return refuse(n, "pytorch_half_pixel to a size-1 axis (TFLite's half_pixel differs there)");
      return add_op(tfl::BuiltinOperator_RESIZE_BILINEAR, 3, {x, size}, {tensor(n.outputs[0])},
                    tfl::BuiltinOptions_ResizeBilinearOptions,
                    tfl::CreateResizeBilinearOptions(fb, ctm == "align_corners", ctm != "align_corners").Union());
    }
    refuse(n, mode + " resize with " + ctm + " coordinates" +
                  (mode == "nearest" ? " and nearest_mode " + nearest : "") +
                  " (TFLite: nearest asymmetric/floor, linear half_pixel or align_corners)");
  }

  // The int64 constant of input `i` (empty when absent).
  std::vector<int64_t> ints_of(const IntNode& n, size_t i) const {
    const IntTensor* t = i < n.inputs.size() && !n.inputs[i].empty() ? p.initializer(n.inputs[i]) : nullptr;
    return t ? t->ints : std::vector<int64_t>{};
  }

  // ONNX Slice with constant starts/ends/axes and unit steps as TFLite's SLICE (begin, size).
  void slice(const IntNode& n) {
    const Shape& s = p.value(n.inputs[0]).shape;
    std::vector<int64_t> starts = ints_of(n, 1), ends = ints_of(n, 2), axes = ints_of(n, 3), steps = ints_of(n, 4);
    if (starts.empty() || starts.size() != ends.size()) return refuse(n, "starts and ends must be constants");
    if (axes.empty())
      for (size_t k = 0; k < starts.size(); ++k) axes.push_back(int64_t(k));
    std::vector<int64_t> begin(s.size(), 0), size(s.begin(), s.end());
    for (size_t k = 0; k < starts.size() && k < axes.size(); ++k) {
      if (!steps.empty() && steps[k] != 1)
        return refuse(n, "steps other than 1 (TFLite's STRIDED_SLICE is not written)");
      int64_t a = axes[k] < 0 ? axes[k] + int64_t(s.size()) : axes[k];
      if (a < 0 || a >= int64_t(s.size())) return refuse(n, "axis out of range");
      int64_t dim = s[size_t(a)];
      auto clampi = [&](int64_t v) { return std::max<int64_t>(0, std::min(dim, v < 0 ? v + dim : v)); };
      int64_t b = clampi(starts[k]), e = clampi(ends[k]);
      begin[size_t(a)] = b;
      size[size_t(a)] = std::max<int64_t>(0, e - b);
    }
    int r = int64_t(s.size());
    int bt = int32_constant(n.name + "_begin", {r}, begin), st = int32_constant(n.name + "_size", {r}, size);
    add_op(tfl::BuiltinOperator_SLICE, 2, {tensor(n.inputs[0]), bt, st}, {tensor(n.outputs[0])},
           tfl::BuiltinOptions_SliceOptions, tfl::CreateSliceOptions(fb).Union());
  }

  void node(const IntNode& n) {
    auto out = [&] { return tensor(n.outputs[0]); };
    // Float tails (a classifier's Softmax, which stays float): DEQUANTIZE, then TFLite's float32
    // kernels, as the program computes them; no other op computes in float here.
    bool float_out = p.value(n.outputs[0]).dtype == DType::Float32;
    if (float_out && !n.is(OpType::DequantizeLinear) && !n.is(OpType::Softmax) && !n.is(OpType::LogSoftmax) &&
        !n.is(OpType::Reshape) && !n.is(OpType::Flatten) && !n.is(OpType::Transpose))
      return refuse(n, "float output: only a float Softmax tail is written (TFLite Micro's int8 kernels)");
    if (!float_out && p.value(n.outputs[0]).dtype != DType::Int8)
      return refuse(n, std::string(dtype_name(p.value(n.outputs[0]).dtype)) +
                           " output: TFLite Micro's kernels take int8 activations (16x8 is not written)");
    if ((n.is(OpType::Conv) || n.is(OpType::Gemm)) && n.inputs.size() > 1)
      if (const IntTensor* w = p.initializer(n.inputs[1]); w && (w->dtype != DType::Int8 || w->bits != 0))
        return refuse(n, std::to_string(w->bits ? w->bits : int(dtype_size(w->dtype) * 8)) +
                             "-bit weights: TFLite's CONV_2D and FULLY_CONNECTED take int8");
    switch (op_type_of(n.op_type)) {
      case OpType::DequantizeLinear:
        return add_op(tfl::BuiltinOperator_DEQUANTIZE, 2, {tensor(n.inputs[0])}, {out()});
      case OpType::LogSoftmax:
        if (!float_out) return refuse(n, "integer LogSoftmax");
        [[fallthrough]];
      case OpType::Conv:
        return conv(n);
      case OpType::Gemm:
        return fully_connected(n);
      case OpType::MaxPool:
        return pool(n, true, false);
      case OpType::AveragePool:
        return pool(n, false, false);
      case OpType::GlobalAveragePool:
        return pool(n, false, true);
      case OpType::GlobalMaxPool:
        return pool(n, true, true);
      case OpType::Add:
      case OpType::Sub:
      case OpType::Mul: {
        if (n.inputs.size() != 2) return refuse(n, "two inputs expected");
        int a = tensor(n.inputs[0]), b = tensor(n.inputs[1]);
        if (n.is(OpType::Add))
          add_op(tfl::BuiltinOperator_ADD, 2, {a, b}, {out()}, tfl::BuiltinOptions_AddOptions,
                 tfl::CreateAddOptions(fb).Union());
        else if (n.is(OpType::Sub))
          add_op(tfl::BuiltinOperator_SUB, 2, {a, b}, {out()}, tfl::BuiltinOptions_SubOptions,
                 tfl::CreateSubOptions(fb).Union());
        else
          add_op(tfl::BuiltinOperator_MUL, 2, {a, b}, {out()}, tfl::BuiltinOptions_MulOptions,
                 tfl::CreateMulOptions(fb).Union());
        return;
      }
      case OpType::Sigmoid:
        return fixed_grid_op(n, tfl::BuiltinOperator_LOGISTIC, 1.0 / 256, -128);
      case OpType::Tanh:
        return fixed_grid_op(n, tfl::BuiltinOperator_TANH, 1.0 / 128, 0);
      case OpType::Softmax: {
        int64_t rank = int64_t(p.value(n.inputs[0]).shape.size()), axis = n.attr_int("axis", -1);
        if (axis != -1 && axis != rank - 1) return refuse(n, "TFLite's SOFTMAX normalises the last axis only");
        if (n.is(OpType::LogSoftmax))
          return add_op(tfl::BuiltinOperator_LOG_SOFTMAX, 1, {tensor(n.inputs[0])}, {out()},
                        tfl::BuiltinOptions_LogSoftmaxOptions, tfl::CreateLogSoftmaxOptions(fb).Union());
        if (float_out)
          return add_op(tfl::BuiltinOperator_SOFTMAX, 1, {tensor(n.inputs[0])}, {out()},
                        tfl::BuiltinOptions_SoftmaxOptions, tfl::CreateSoftmaxOptions(fb, 1.0f).Union());
        return fixed_grid_op(n, tfl::BuiltinOperator_SOFTMAX, 1.0 / 256, -128);
      }
      case OpType::Slice:
        return slice(n);
      case OpType::Gather: {
        // Constant indices (a channel split or shuffle), int32 as TFLite's GATHER reads them.
        const IntTensor* idx = n.inputs.size() > 1 ? p.initializer(n.inputs[1]) : nullptr;
        if (!idx || idx->is_float()) return refuse(n, "indices must be a constant");
        int64_t rank = int64_t(p.value(n.inputs[0]).shape.size()), axis = n.attr_int("axis", 0);
        axis = axis < 0 ? axis + rank : axis;
        if (axis < 0 || axis >= rank) return refuse(n, "axis out of range");
        std::vector<int64_t> indices = idx->ints;
        int64_t dim = p.value(n.inputs[0]).shape[size_t(axis)];
        for (int64_t& i : indices) i = i < 0 ? i + dim : i;
        int it = int32_constant(n.name + "_indices", idx->shape, indices);
        return add_op(tfl::BuiltinOperator_GATHER, 2, {tensor(n.inputs[0]), it}, {out()},
                      tfl::BuiltinOptions_GatherOptions, tfl::CreateGatherOptions(fb, int(axis)).Union());
      }
      case OpType::ReduceMean: {
        const Shape& s = p.value(n.inputs[0]).shape;
        std::vector<int64_t> axes = ints_of(n, 1);
        if (axes.empty())
          for (size_t d = 0; d < s.size(); ++d) axes.push_back(int64_t(d));
        for (int64_t& a : axes) a = a < 0 ? a + int64_t(s.size()) : a;
        int at = int32_constant(n.name + "_axes", {int64_t(axes.size())}, axes);
        return add_op(tfl::BuiltinOperator_MEAN, 2, {tensor(n.inputs[0]), at}, {out()},
                      tfl::BuiltinOptions_ReducerOptions,
                      tfl::CreateReducerOptions(fb, n.attr_int("keepdims", 1) != 0).Union());
      }
      case OpType::Resize:
      case OpType::Upsample:
        return resize(n);
      case OpType::Relu:
        return add_op(tfl::BuiltinOperator_RELU, 2, {tensor(n.inputs[0])}, {out()});
      case OpType::Clip: {
        // Bounds are codes on the input's grid. TFLite's RELU, RELU6 and RELU_N1_TO_1 clamp the
        // codes to their bounds quantized and saturated: one whose code bounds are the Clip's is it.
        const ValueInfo& in = p.value(n.inputs[0]);
        const ValueInfo& o = p.value(n.outputs[0]);
        if (o.dtype != in.dtype || o.scale != in.scale || o.zero_point != in.zero_point || o.exponent != in.exponent)
          return refuse(n, "Clip with another output grid than its input's");
        double s = in.scale > 0 ? in.scale : std::ldexp(1.0, in.exponent);
        int64_t lo_q = runtime::dtype_min(in.dtype), hi_q = runtime::dtype_max(in.dtype);
        auto code = [&](double real) { return saturate(int64_t(std::llround(real / s)) + in.zero_point, lo_q, hi_q); };
        auto bound = [&](size_t i, int64_t fallback) {
          const IntTensor* t = i < n.inputs.size() && !n.inputs[i].empty() ? p.initializer(n.inputs[i]) : nullptr;
          return t && !t->ints.empty() ? saturate(t->ints[0], lo_q, hi_q) : fallback;
        };
        int64_t lo = bound(1, lo_q), hi = bound(2, hi_q);
        int x = tensor(n.inputs[0]);
        if (lo == code(0) && hi == code(6)) return add_op(tfl::BuiltinOperator_RELU6, 2, {x}, {out()});
        if (lo == code(-1) && hi == code(1)) return add_op(tfl::BuiltinOperator_RELU_N1_TO_1, 2, {x}, {out()});
        if (lo == code(0) && hi == hi_q) return add_op(tfl::BuiltinOperator_RELU, 2, {x}, {out()});
        return refuse(n, "Clip code bounds [" + std::to_string(lo) + ", " + std::to_string(hi) +
                             "] are not those of TFLite's RELU, RELU6 or RELU_N1_TO_1 on this grid");
      }
      case OpType::Reshape:
      case OpType::Flatten:
      case OpType::Squeeze:
      case OpType::Unsqueeze: {
        const Shape& s = p.value(n.outputs[0]).shape;
        std::vector<int64_t> dims(s.begin(), s.end());
        int shape = int32_constant(n.name + "_shape", {int64_t(dims.size())}, dims);
        std::vector<int32_t> ns(dims.begin(), dims.end());
        return add_op(tfl::BuiltinOperator_RESHAPE, 1, {tensor(n.inputs[0]), shape}, {out()},
                      tfl::BuiltinOptions_ReshapeOptions, tfl::CreateReshapeOptionsDirect(fb, &ns).Union());
      }
      case OpType::Transpose: {
        std::vector<int64_t> perm = n.attr_ints("perm");
        int pt = int32_constant(n.name + "_perm", {int64_t(perm.size())}, perm);
        return add_op(tfl::BuiltinOperator_TRANSPOSE, 2, {tensor(n.inputs[0]), pt}, {out()},
                      tfl::BuiltinOptions_TransposeOptions, tfl::CreateTransposeOptions(fb).Union());
      }
      case OpType::Concat: {
        std::vector<int> in;
        for (const std::string& v : n.inputs) in.push_back(tensor(v));
        int64_t rank = int64_t(p.value(n.outputs[0]).shape.size()), axis = n.attr_int("axis", 0);
        return add_op(tfl::BuiltinOperator_CONCATENATION, 2, in, {out()}, tfl::BuiltinOptions_ConcatenationOptions,
                      tfl::CreateConcatenationOptions(fb, int(axis < 0 ? axis + rank : axis)).Union());
      }
      case OpType::RequantizeLinear:
      case OpType::QuantizeLinear:
        return add_op(tfl::BuiltinOperator_QUANTIZE, 2, {tensor(n.inputs[0])}, {out()},
                      tfl::BuiltinOptions_QuantizeOptions, tfl::CreateQuantizeOptions(fb).Union());
      default:
        return refuse(n, "no TFLite builtin operator is written for it");
    }
  }

  // A float32 tensor named `name` beside the int8 one the program's value `name` becomes.
  int float_twin(const std::string& name) {
    const ValueInfo& vi = p.value(name);
    if (vi.dtype == DType::Float32) fail(ErrorCode::Unsupported, ".tflite export: '" + name + "' is float already");
    int q = add_tensor(name + "_int8", vi.shape, vi.dtype,
                       quant({vi.scale > 0 ? vi.scale : std::ldexp(1.0, vi.exponent)}, {vi.zero_point}, 0), 0);
    int f = add_tensor(name, vi.shape, DType::Float32, 0, 0);
    index[name] = q;
    return f;
  }

  std::string finish(bool float_io) {
    std::vector<int> in, out;
    if (float_io) {
      for (const std::string& v : p.inputs) {
        in.push_back(float_twin(v));
        add_op(tfl::BuiltinOperator_QUANTIZE, 1, {in.back()}, {index[v]}, tfl::BuiltinOptions_QuantizeOptions,
               tfl::CreateQuantizeOptions(fb).Union());
      }
      for (const std::string& v : p.outputs)
        out.push_back(p.value(v).dtype == DType::Float32 ? tensor(v) : float_twin(v));
    }
    for (const IntNode& n : p.nodes) node(n);
    if (!problems.empty()) {
      std::string msg = ".tflite export: " + std::to_string(problems.size()) + " node(s) cannot be written:";
      for (const auto& s : problems) msg += "\n  " + s;
      fail(ErrorCode::Unsupported, msg);
    }
    if (float_io) {
      for (size_t k = 0; k < p.outputs.size(); ++k)
        if (index.at(p.outputs[k]) != out[k])
          add_op(tfl::BuiltinOperator_DEQUANTIZE, 2, {index.at(p.outputs[k])}, {out[k]});
    } else {
      for (const std::string& v : p.inputs) in.push_back(tensor(v));
      for (const std::string& v : p.outputs) out.push_back(tensor(v));
    }
    auto subgraph = tfl::CreateSubGraphDirect(fb, &tensors, &in, &out, &ops, p.name.c_str());
    std::vector<flatbuffers::Offset<tfl::OperatorCode>> oc;
    for (auto [op, version] : codes)
      oc.push_back(tfl::CreateOperatorCodeDirect(fb, int8_t(std::min<int>(op, 127)), nullptr, version, op));
    std::vector<flatbuffers::Offset<tfl::SubGraph>> subgraphs{subgraph};
    std::string description = "EdgeQuant, target " + (p.target.empty() ? std::string("(none)") : p.target);
    fb.Finish(tfl::CreateModelDirect(fb, 3, &oc, &subgraphs, description.c_str(), &buffers), tfl::ModelIdentifier());
    flatbuffers::Verifier verify(fb.GetBufferPointer(), fb.GetSize());
    if (!tfl::VerifyModelBuffer(verify))
      fail(ErrorCode::Internal, ".tflite export: the written FlatBuffer does not verify");
    return std::string(reinterpret_cast<const char*>(fb.GetBufferPointer()), fb.GetSize());
  }
};

// 1-D windows ([N, W, C] channels-last, as the program runs temporal models) as TFLite's 2-D
// ones with H = 1: a Reshape to [N, 1, W, C], the node with 2-D attributes and [O, I, 1, k]
// weights, a Reshape back.
void lift_1d(IntGraph& p) {
  std::vector<IntNode> nodes;
  for (IntNode& n : p.nodes) {
    bool window = n.is(OpType::Conv) || n.is(OpType::MaxPool) || n.is(OpType::AveragePool) ||
                  n.is(OpType::GlobalAveragePool) || n.is(OpType::GlobalMaxPool);
    if (!window || n.inputs.empty() || p.value(n.inputs[0]).shape.size() != 3) {
      nodes.push_back(std::move(n));
      continue;
    }
    auto lifted = [&](const std::string& v) {
      ValueInfo vi = p.value(v);
      vi.shape.insert(vi.shape.begin() + 1, 1);
      vi.perm.clear();
      std::string name = v + "_2d";
      p.values[name] = vi;
      return name;
    };
    IntNode in_reshape, out_reshape;
    in_reshape.name = n.name + "_to_2d";
    in_reshape.op_type = "Reshape";
    in_reshape.inputs = {n.inputs[0]};
    in_reshape.outputs = {lifted(n.inputs[0])};
    n.inputs[0] = in_reshape.outputs[0];
    out_reshape.name = n.name + "_to_1d";
    out_reshape.op_type = "Reshape";
    out_reshape.inputs = {lifted(n.outputs[0])};
    out_reshape.outputs = {n.outputs[0]};
    n.outputs[0] = out_reshape.inputs[0];
    auto widen = [&](const std::string& key, int64_t h, size_t width) {
      std::vector<int64_t> v = n.attr_ints(key);
      if (v.size() == width) {
        std::vector<int64_t> w;
        if (width == 1)
          w = {h, v[0]};
        else
          w = {h, v[0], h, v[1]};  // pads [l, r] -> [0, l, 0, r]
        n.attrs[key] = w;
      }
    };
    widen("kernel_shape", 1, 1);
    widen("strides", 1, 1);
    widen("dilations", 1, 1);
    widen("pads", 0, 2);
    if (n.is(OpType::Conv) && n.inputs.size() > 1)
      if (const IntTensor* w = p.initializer(n.inputs[1]); w && w->shape.size() == 3) {
        IntTensor w2 = *w;
        w2.shape = {w->shape[0], w->shape[1], 1, w->shape[2]};
        std::string name = n.inputs[1] + "_2d";
        p.initializers[name] = std::move(w2);
        n.inputs[1] = name;
      }
    nodes.push_back(std::move(in_reshape));
    nodes.push_back(std::move(n));
    nodes.push_back(std::move(out_reshape));
  }
  p.nodes = std::move(nodes);
}

}  // namespace

std::string tflite_bytes(const IntGraph& program, bool float_io) {
  IntGraph p = program;
  lift_1d(p);
  return Writer(p).finish(float_io);
}

std::vector<std::string> tflite_refusals(const Op& op) {
  static const std::set<std::string> written = {
      "Conv",       "Gemm",    "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Add",       "Sub",
      "Mul",        "Relu",    "Clip",    "Reshape",     "Flatten",           "Squeeze",       "Unsqueeze", "Transpose",
      "Concat",     "Sigmoid", "Tanh",    "Softmax",     "LogSoftmax",        "Resize",        "Upsample",  "Slice",
      "ReduceMean", "Gather"};
  std::vector<std::string> out;
  if (!written.count(op.type)) out.push_back("the .tflite writer has no TFLite builtin operator for " + op.type);
  if (op.is(OpType::Conv)) {
    const Value* w = op.input(1);
    if (w && w->shape && w->shape->size() != 4 && w->shape->size() != 3)
      out.push_back("only 1-D and 2-D convolutions (TFLite's CONV_2D)");
    int64_t group = op.attr_int("group", 1);
    if (group != 1 && w && w->shape && w->shape->size() >= 3 && (*w->shape)[1] != 1)
      out.push_back("grouped convolution (TFLite has group 1 and depthwise)");
  }
  if ((op.is(OpType::MaxPool) || op.is(OpType::AveragePool)) && op.attr_int("ceil_mode", 0) != 0)
    out.push_back("ceil_mode=1");
  if (op.attr_string("auto_pad", "NOTSET") != "NOTSET") out.push_back("auto_pad");
  return out;
}

namespace {
class TfliteExporter : public Exporter {
 public:
  ExportFormat format() const override { return ExportFormat::Tflite; }
  void check_op(const Op& op, const QuantPlan& plan, const Target&, std::vector<Finding>& out) const override {
    for (const std::string& r : tflite_refusals(op))
      out.push_back({op.name, op.type, r, "--format qdq (ONNX Runtime), or replace it in the model"});
    // The widths the plan gives (before calibration): int8 activations and weights only.
    for (const Value* v :
         {op.outputs.empty() ? nullptr : op.outputs[0], is_compute_op(op.type) ? op.input(1) : nullptr})
      if (const QuantConfig* c = v ? plan.effective(v->name) : nullptr)
        if (c->state != QuantState::Float && c->bits != 8) {
          out.push_back({op.name, op.type,
                         std::to_string(c->bits) + "-bit " + (v == op.input(1) ? "weights" : "output") +
                             ": the .tflite writer takes int8 activations and weights (TFLite Micro's int8 kernels)",
                         "8-bit activation_bits/weight_bits for this op, or --format qdq"});
          break;
        }
  }
  Deployed write(const ExportJob& j) const override {
    Deployed d;
    d.path = j.dir + "/model.tflite";
    runtime::IntGraph p = build_integer_program(j.graph, j.plan, j.lowered, j.target, j.executor, true);
    std::string bytes = tflite_bytes(p, j.tflite_io == TfliteIo::Float32);
    write_file_atomic(d.path, bytes);
    d.bytes = bytes.size();
    return d;
  }
};
}  // namespace

const Exporter& tflite_exporter() {
  static const TfliteExporter e;
  return e;
}

}  // namespace edgequant::deploy
