// Float16: weights and compute in IEEE half precision. An op runs in float16 when ONNX's schema
// lets every float tensor of it be float16 (libonnx's registry, per input/output); inputs its
// schema fixes to float32 (Resize's scales) stay float32, and ops that cannot run in float16
// (or are listed in keep_float32) stay float32 between Casts. Graph inputs/outputs stay float32
// with Casts at the boundary unless float16_io.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "deploy/convert.h"
#include "edgequant/error.h"
#include "exec/kernel.h"
#include "onnx/onnx_io.h"

namespace edgequant::deploy {

namespace {

constexpr float kHalfMax = 65504.f;
constexpr float kHalfMinPositive = 5.96e-8f;  // the smallest float16 subnormal

struct HalfRewriter {
  Graph& g;
  const ConvertSettings& s;
  ConvertResult result;
  std::set<const Op*> half;
  std::set<Value*> changed;  // float32 values now float16
  std::map<std::pair<Value*, DType>, Value*> casts;
  std::map<Value*, Value*> half_constants;
  int64_t clamped = 0;

  bool allows(const Op& op, bool output, size_t i, DType d) const {
    return schema_allows(op.type, g.opset, output, i, d).value_or(false);
  }

  bool runs_in_half(const Op& op) const {
    if (!op.domain.empty() || !op.subgraphs.empty() || op.has_attr("dtype")) return false;
    for (const std::string& k : s.keep_float32)
      if (k == op.type || k == op.name) return false;
    if (!schema_allows(op.type, g.opset, false, 0, DType::Float32).has_value() &&
        !schema_allows(op.type, g.opset, true, 0, DType::Float32).has_value())
      return false;
    bool any = false;
    for (size_t i = 0; i < op.inputs.size(); ++i)
      if (op.inputs[i] && op.inputs[i]->dtype == DType::Float32 && allows(op, false, i, DType::Float16)) any = true;
    for (size_t i = 0; i < op.outputs.size(); ++i)
      if (op.outputs[i] && op.outputs[i]->dtype == DType::Float32) {
        if (!allows(op, true, i, DType::Float16)) return false;
        any = true;
      }
    return any;
  }

  Tensor to_half(const Tensor& t) {
    at::Tensor x = exec::view_tensor(t).to(at::kFloat).clone();
    at::Tensor big = x.abs() > kHalfMax, tiny = (x.abs() < kHalfMinPositive) & (x != 0);
    clamped += big.sum().item<int64_t>() + tiny.sum().item<int64_t>();
    x = at::where(big, x.sign() * kHalfMax, x);
    x = at::where(tiny, x.sign() * kHalfMinPositive, x);
    return exec::to_ir_tensor(x.to(at::kHalf));
  }

  Value* half_constant(Value* v) {
    auto it = half_constants.find(v);
    if (it != half_constants.end()) return it->second;
    return half_constants[v] = g.add_constant(g.unique_name(v->name + "_float16"), to_half(*v->data));
  }

  Value* cast(Value* v, DType to) {
    auto key = std::make_pair(v, to);
    auto it = casts.find(key);
    if (it != casts.end()) return it->second;
    Value* out = add_typed_value(g, v->name + (to == DType::Float16 ? "_float16" : "_float32"), to, v->shape);
    out->dim_names = v->dim_names;
    g.add_op("Cast", g.unique_name(v->name + "_Cast"), {v}, {out})->attrs["to"] = int64_t(to);
    return casts[key] = out;
  }

  // `v` as graph output `name` of type `to`: `v` is renamed and a Cast takes its place.
  void output_as(size_t k, DType to) {
    Value* v = g.outputs[k];
    const std::string name = v->name;
    g.rename_value(v, g.unique_name(name + (v->dtype == DType::Float16 ? "_float16" : "_float32")));
    Value* out = add_typed_value(g, name, to, v->shape);
    out->dim_names = v->dim_names;
    g.add_op("Cast", g.unique_name(name + "_Cast"), {v}, {out})->attrs["to"] = int64_t(to);
    g.outputs[k] = out;
  }

  void run() {
    for (const auto& op : g.ops())
      if (runs_in_half(*op)) half.insert(op.get());
    if (s.float16_io)
      for (Value* v : g.inputs)
        if (v->dtype == DType::Float32) {
          v->dtype = DType::Float16;
          changed.insert(v);
        }
    std::vector<Op*> order;
    for (const auto& op : g.ops()) order.push_back(op.get());
    for (Op* op : order) {
      const bool h = half.count(op) != 0;
      for (size_t i = 0; i < op->inputs.size(); ++i) {
        Value* v = op->inputs[i];
        if (!v) continue;
        const bool want_half =
            h && allows(*op, false, i, DType::Float16) && (v->dtype == DType::Float32 || changed.count(v));
        if (want_half && v->dtype == DType::Float32)
          g.set_input(op, i, v->is_constant() ? half_constant(v) : cast(v, DType::Float16));
        else if (!want_half && changed.count(v))
          g.set_input(op, i, cast(v, DType::Float32));
      }
      if (!h) continue;
      ++result.converted;
      for (Value* out : op->outputs)
        if (out && out->dtype == DType::Float32) {
          out->dtype = DType::Float16;
          changed.insert(out);
        }
      if (op->type == "Cast" && op->attr_int("to", 0) == int64_t(DType::Float32))
        op->attrs["to"] = int64_t(DType::Float16);
      if (op->type == "ConstantOfShape") {
        const Tensor* t = op->attr_tensor("value");
        op->attrs["value"] = t ? to_half(*t) : Tensor(DType::Float16, {1});
      }
    }
    for (size_t k = 0; k < g.outputs.size(); ++k) {
      Value* v = g.outputs[k];
      if (!s.float16_io && v->dtype == DType::Float16 && changed.count(v)) output_as(k, DType::Float32);
      if (s.float16_io && v->dtype == DType::Float32) output_as(k, DType::Float16);
    }
    for (const auto& op : g.ops())
      if (!half.count(op.get()) && op->type != "Cast") {
        bool floaty = false;
        for (Value* v : op->outputs) floaty = floaty || (v && v->dtype == DType::Float32);
        if (floaty) {
          ++result.kept;
          result.notes.push_back(op->describe() + " stays float32: " +
                                 (std::any_of(s.keep_float32.begin(), s.keep_float32.end(),
                                              [&](const std::string& k) { return k == op->type || k == op->name; })
                                      ? std::string("listed in keep_float32")
                                      : std::string("ONNX's schema has no float16 form of it here")));
        }
      }
    if (clamped > 0)
      result.notes.push_back(std::to_string(clamped) +
                             " weight value(s) beyond float16's range clamped to +-65504 or +-5.96e-8");
    g.topo_sort();
    g.remove_dead();
  }
};

}  // namespace

ConvertResult convert_float16(Graph& graph, const ConvertSettings& settings) {
  HalfRewriter r{graph, settings, {}, {}, {}, {}, {}, 0};
  r.run();
  return r.result;
}

}  // namespace edgequant::deploy
