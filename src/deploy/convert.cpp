// What the calibration-free modes share: names, dispatch, weight codes (see convert.h).
#include "deploy/convert.h"

#include <algorithm>
#include <cmath>

#include "edgequant/error.h"

namespace edgequant::deploy {

const char* convert_mode_name(ConvertMode mode) {
  switch (mode) {
    case ConvertMode::Dynamic:
      return "dynamic";
    case ConvertMode::Float16:
      return "float16";
    case ConvertMode::WeightOnly:
      return "weight-only";
  }
  return "?";
}

ConvertMode parse_convert_mode(const std::string& name) {
  for (ConvertMode m : {ConvertMode::Dynamic, ConvertMode::Float16, ConvertMode::WeightOnly})
    if (name == convert_mode_name(m)) return m;
  fail(ErrorCode::InvalidInput, "unknown conversion mode '" + name + "' (dynamic | float16 | weight-only)");
}

ConvertResult convert_graph(Graph& graph, const ConvertSettings& settings) {
  switch (settings.mode) {
    case ConvertMode::Dynamic:
      return convert_dynamic(graph, settings);
    case ConvertMode::Float16:
      return convert_float16(graph, settings);
    case ConvertMode::WeightOnly:
      return convert_weight_only(graph, settings);
  }
  fail(ErrorCode::Internal, "convert_graph: unknown mode");
}

Value* add_typed_value(Graph& graph, const std::string& base, DType dtype, const std::optional<Shape>& shape) {
  Value* v = graph.add_value(graph.unique_name(base));
  v->dtype = dtype;
  v->shape = shape;
  return v;
}

WeightCodes quantize_weight(const Tensor& w, int64_t axis, int64_t block, int bits, bool symmetric, int64_t qmax) {
  if (w.dtype() != DType::Float32) fail(ErrorCode::Internal, "quantize_weight: weights must be float32");
  const Shape& shape = w.shape();
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (axis < 0 || axis >= rank) fail(ErrorCode::Internal, "quantize_weight: axis out of range");
  const int64_t dim = shape[size_t(axis)];
  const int64_t groups_on_axis = block > 0 ? (dim + block - 1) / block : dim;
  // Scale layout: blocked -> the weight's shape with groups_on_axis on `axis`; per channel -> [dim].
  Shape sshape = block > 0 ? shape : Shape{dim};
  if (block > 0) sshape[size_t(axis)] = groups_on_axis;
  int64_t inner = 1;
  for (int64_t d = axis + 1; d < rank; ++d) inner *= shape[size_t(d)];
  const int64_t outer = w.numel() / std::max<int64_t>(1, dim * inner);
  // Group of element (o, a, i): per channel a; blocked (o, a / block, i) in sshape's order.
  auto group_of = [&](int64_t o, int64_t a, int64_t i) {
    return block > 0 ? (o * groups_on_axis + a / block) * inner + i : a;
  };
  const int64_t n_groups = shape_numel(sshape);
  std::vector<float> lo(size_t(n_groups), 0.f), hi(size_t(n_groups), 0.f);
  const float* x = w.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t a = 0; a < dim; ++a)
      for (int64_t i = 0; i < inner; ++i) {
        float v = x[(o * dim + a) * inner + i];
        size_t g = size_t(group_of(o, a, i));
        lo[g] = std::min(lo[g], v);
        hi[g] = std::max(hi[g], v);
      }
  const int64_t levels = (int64_t(1) << bits) - 1;
  const DType code_type =
      symmetric ? (bits == 4 ? DType::Int4 : DType::Int8) : (bits == 4 ? DType::UInt4 : DType::UInt8);
  WeightCodes out;
  out.codes = Tensor(code_type, shape);
  out.scales = Tensor(DType::Float32, sshape);
  if (!symmetric) out.zero_points = Tensor(code_type, sshape);
  float* scale = out.scales.data<float>();
  std::vector<int64_t> zp(size_t(n_groups), 0);
  for (int64_t g = 0; g < n_groups; ++g) {
    float s = symmetric ? std::max(std::fabs(lo[size_t(g)]), std::fabs(hi[size_t(g)])) / float(qmax)
                        : (hi[size_t(g)] - lo[size_t(g)]) / float(levels);
    if (!(s > 0.f) || !std::isfinite(s)) s = 1.f;
    scale[g] = s;
    if (!symmetric) {
      zp[size_t(g)] = std::clamp<int64_t>(int64_t(std::nearbyint(-lo[size_t(g)] / s)), 0, levels);
      out.zero_points.data<uint8_t>()[g] = uint8_t(zp[size_t(g)]);
    }
  }
  const int64_t cmin = symmetric ? -qmax - (bits == 4 ? 1 : 0) : 0, cmax = symmetric ? qmax : levels;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t a = 0; a < dim; ++a)
      for (int64_t i = 0; i < inner; ++i) {
        int64_t k = (o * dim + a) * inner + i;
        size_t g = size_t(group_of(o, a, i));
        int64_t q = std::clamp<int64_t>(int64_t(std::nearbyint(x[k] / scale[g])) + zp[g], cmin, cmax);
        if (symmetric)
          out.codes.data<int8_t>()[k] = int8_t(q);
        else
          out.codes.data<uint8_t>()[k] = uint8_t(q);
      }
  return out;
}

}  // namespace edgequant::deploy
