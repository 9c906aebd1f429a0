// Opset-1 experimental ops that WinML-era exporters (CoreML/Keras converters, WinMLTools) still
// write into opset 7-9 models, decomposed at import into standard ops (see onnx_io.h):
//   ImageScaler(x; scale, bias[C]) -> Mul(x, scale) -> Add(bias as [1, C, 1, 1])
//   Affine(x; alpha, beta)         -> Mul(x, alpha) -> Add(beta)
//   Crop(x; border = [left, top, right, bottom], scale = [h, w])
//                                  -> Slice on H, W: [top, top + h) x [left, left + w) with
//                                     scale, else [top, H - bottom) x [left, W - right)
#include <onnx/onnx_pb.h>

#include <limits>
#include <string>
#include <vector>

#include "edgequant/error.h"
#include "ir/op_traits.h"
#include "onnx/onnx_io.h"

namespace edgequant {

namespace {

const onnx::AttributeProto* find_attr(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

class Rewriter {
 public:
  Rewriter(onnx::GraphProto& g, int64_t opset) : g_(g), opset_(opset) {}

  std::string name_for(const onnx::NodeProto& n, const std::string& suffix) {
    std::string base = (n.name().empty() ? n.output(0) : n.name()) + "/" + suffix;
    std::string name = base;
    for (int k = 1; taken(name); ++k) name = base + "_" + std::to_string(k);
    used_.push_back(name);
    return name;
  }
  std::string float_initializer(const onnx::NodeProto& n, const std::string& suffix, const std::vector<int64_t>& dims,
                                const std::vector<float>& values) {
    auto* t = g_.add_initializer();
    t->set_name(name_for(n, suffix));
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    for (float v : values) t->add_float_data(v);
    return t->name();
  }
  std::string int_initializer(const onnx::NodeProto& n, const std::string& suffix, const std::vector<int64_t>& values) {
    auto* t = g_.add_initializer();
    t->set_name(name_for(n, suffix));
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t->add_int64_data(v);
    return t->name();
  }
  onnx::NodeProto make(const onnx::NodeProto& from, const std::string& type, std::vector<std::string> ins,
                       const std::string& out) {
    onnx::NodeProto n;
    n.set_op_type(type);
    n.set_name(name_for(from, type));
    for (auto& i : ins) n.add_input(i);
    n.add_output(out);
    return n;
  }
  // y = x * scale + bias (bias broadcast as given).
  std::vector<onnx::NodeProto> scale_shift(const onnx::NodeProto& n, float scale, const std::vector<int64_t>& bias_dims,
                                           const std::vector<float>& bias) {
    std::string mid = name_for(n, "scaled");
    std::vector<onnx::NodeProto> out;
    out.push_back(make(n, "Mul", {n.input(0), float_initializer(n, "scale", {}, {scale})}, mid));
    out.push_back(make(n, "Add", {mid, float_initializer(n, "bias", bias_dims, bias)}, n.output(0)));
    return out;
  }
  std::vector<onnx::NodeProto> crop(const onnx::NodeProto& n, const std::string& where) {
    const onnx::AttributeProto* border = find_attr(n, "border");
    if (!border || border->ints_size() != 4)
      fail(ErrorCode::InvalidModel, where + ": Crop needs border = [left, top, right, bottom]");
    int64_t left = border->ints(0), top = border->ints(1), right = border->ints(2), bottom = border->ints(3);
    for (int64_t b : {left, top, right, bottom})
      if (b < 0) fail(ErrorCode::InvalidModel, where + ": Crop border values must be >= 0");
    constexpr int64_t kEnd = std::numeric_limits<int64_t>::max();
    std::vector<int64_t> starts = {top, left}, ends = {bottom ? -bottom : kEnd, right ? -right : kEnd};
    if (const onnx::AttributeProto* scale = find_attr(n, "scale"); scale && scale->ints_size() > 0) {
      if (scale->ints_size() != 2 || scale->ints(0) <= 0 || scale->ints(1) <= 0)
        fail(ErrorCode::InvalidModel, where + ": Crop scale must be [height, width] > 0");
      ends = {top + scale->ints(0), left + scale->ints(1)};
    }
    std::vector<int64_t> axes = {2, 3};
    if (opset_ >= 10) {
      return {make(n, "Slice",
                   {n.input(0), int_initializer(n, "starts", starts), int_initializer(n, "ends", ends),
                    int_initializer(n, "axes", axes)},
                   n.output(0))};
    }
    onnx::NodeProto s = make(n, "Slice", {n.input(0)}, n.output(0));
    auto ints = [&](const std::string& key, const std::vector<int64_t>& v) {
      auto* a = s.add_attribute();
      a->set_name(key);
      a->set_type(onnx::AttributeProto::INTS);
      for (int64_t x : v) a->add_ints(x);
    };
    ints("starts", starts);
    ints("ends", ends);
    ints("axes", axes);
    return {s};
  }

 private:
  bool taken(const std::string& name) const {
    for (const auto& u : used_)
      if (u == name) return true;
    for (const auto& t : g_.initializer())
      if (t.name() == name) return true;
    for (const auto& n : g_.node()) {
      if (n.name() == name) return true;
      for (const auto& o : n.output())
        if (o == name) return true;
    }
    return false;
  }
  onnx::GraphProto& g_;
  int64_t opset_;
  std::vector<std::string> used_;
};

}  // namespace

int decompose_experimental_ops(onnx::GraphProto& g, int64_t opset) {
  Rewriter rw(g, opset);
  std::vector<onnx::NodeProto> rewritten;
  int count = 0;
  for (const onnx::NodeProto& n : g.node()) {
    bool default_domain = n.domain().empty() || n.domain() == "ai.onnx";
    const std::string& type = n.op_type();
    const OpType kind = op_type_of(type);
    if (!default_domain || (kind != OpType::ImageScaler && kind != OpType::Affine && kind != OpType::Crop)) {
      rewritten.push_back(n);
      continue;
    }
    std::string where =
        "node '" + (n.name().empty() ? (n.output_size() ? n.output(0) : type) : n.name()) + "' (" + type + ")";
    if (n.input_size() != 1 || n.output_size() != 1 || n.input(0).empty())
      fail(ErrorCode::InvalidModel, where + ": needs one input and one output");
    std::vector<onnx::NodeProto> nodes;
    if (kind == OpType::ImageScaler) {
      const onnx::AttributeProto* scale = find_attr(n, "scale");
      const onnx::AttributeProto* bias = find_attr(n, "bias");
      std::vector<float> b =
          bias ? std::vector<float>(bias->floats().begin(), bias->floats().end()) : std::vector<float>{};
      if (b.empty()) b.push_back(0.0f);
      nodes = rw.scale_shift(n, scale ? scale->f() : 1.0f, {1, static_cast<int64_t>(b.size()), 1, 1}, b);
    } else if (kind == OpType::Affine) {
      const onnx::AttributeProto* alpha = find_attr(n, "alpha");
      const onnx::AttributeProto* beta = find_attr(n, "beta");
      nodes = rw.scale_shift(n, alpha ? alpha->f() : 1.0f, {}, {beta ? beta->f() : 0.0f});
    } else {
      nodes = rw.crop(n, where);
    }
    for (auto& m : nodes) rewritten.push_back(std::move(m));
    ++count;
  }
  if (count == 0) return 0;
  g.clear_node();
  for (auto& n : rewritten) *g.add_node() = std::move(n);
  return count;
}

}  // namespace edgequant
