// Integer program execution.
#include "runtime/interpreter.h"

#include <cmath>
#include <set>

#include "edgequant/error.h"
#include "runtime/kernels/kernels.h"

namespace edgequant::runtime {

void verify_program(const IntGraph& g) {
  std::set<std::string> defined(g.inputs.begin(), g.inputs.end());
  for (const auto& [name, _] : g.initializers) defined.insert(name);
  for (const std::string& in : g.inputs) g.value(in);
  for (const IntNode& n : g.nodes) {
    if (!find_kernel(n.op_type))
      fail(ErrorCode::Unsupported, "node '" + n.name + "': op type " + n.op_type + " has no integer kernel");
    for (const std::string& in : n.inputs)
      if (!in.empty() && !defined.count(in))
        fail(ErrorCode::InvalidModel, "node '" + n.name + "' reads '" + in + "' before it is produced");
    for (const std::string& out : n.outputs) {
      if (!g.values.count(out))
        fail(ErrorCode::InvalidModel, "node '" + n.name + "': output '" + out + "' has no value info");
      defined.insert(out);
    }
  }
  for (const std::string& out : g.outputs)
    if (!defined.count(out)) fail(ErrorCode::InvalidModel, "graph output '" + out + "' is never produced");
}

bool is_streaming(const IntGraph& g) {
  for (const IntNode& n : g.nodes)
    if (n.is(OpType::StreamingCache)) return true;
  return false;
}

IntTensor quantize_for_input(const IntGraph& g, const std::string& name, const std::vector<float>& values,
                             const Shape& shape) {
  const ValueInfo& vi = g.value(name);
  IntTensor t;
  t.dtype = vi.dtype;
  t.shape = shape;
  t.exponents = {vi.exponent};
  if (t.is_float()) {
    t.floats = values;
    return t;
  }
  if (vi.scale > 0) {
    t.scales = {vi.scale};
    t.zero_points = {vi.zero_point};
  }
  t.ints.resize(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    double q = vi.scale > 0 ? round_value(double(values[i]) / vi.scale, g.rounding) + double(vi.zero_point)
                            : round_value(std::ldexp(double(values[i]), -vi.exponent), g.rounding);
    t.ints[i] =
        saturate(static_cast<int64_t>(std::max(-9e18, std::min(9e18, q))), dtype_min(t.dtype), dtype_max(t.dtype));
  }
  return t;
}

std::vector<float> dequantize(const IntTensor& t) {
  if (t.is_float()) return t.floats;
  std::vector<float> v(t.ints.size());
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<float>(t.is_pow2() ? std::ldexp(double(t.ints[i]), t.exponent())
                                          : double(t.ints[i] - t.zero_point()) * t.scale());
  return v;
}

namespace {
// Last node index reading each value (values read by nobody after their producer are dropped).
std::map<std::string, size_t> last_uses(const IntGraph& g) {
  std::map<std::string, size_t> last;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const std::string& in : g.nodes[i].inputs) last[in] = i;
  return last;
}

template <class F>
TensorMap execute(const IntGraph& g, const TensorMap& inputs, bool keep_all, F after_node, TensorMap* state = nullptr) {
  TensorMap live;
  for (const std::string& name : g.inputs) {
    auto it = inputs.find(name);
    if (it == inputs.end()) fail(ErrorCode::InvalidInput, "input '" + name + "' is not given");
    const ValueInfo& vi = g.value(name);
    IntTensor t = it->second;
    if (t.is_float() && vi.dtype != DType::Float32) t = quantize_for_input(g, name, t.floats, t.shape);
    if (!t.is_float() &&
        (t.dtype != vi.dtype || t.exponent() != vi.exponent || (vi.scale > 0 && t.scale() != vi.scale)))
      fail(ErrorCode::InvalidInput, "input '" + name + "': " + dtype_name(t.dtype) + " 2^" +
                                        std::to_string(t.exponent()) + " given, the model takes " +
                                        dtype_name(vi.dtype) + " 2^" + std::to_string(vi.exponent));
    if (!vi.shape.empty() && t.shape != vi.shape)
      fail(ErrorCode::InvalidInput,
           "input '" + name + "': shape " + shape_str(t.shape) + " given, the model takes " + shape_str(vi.shape));
    live[name] = std::move(t);
  }
  std::map<std::string, size_t> last = last_uses(g);
  std::set<std::string> outputs(g.outputs.begin(), g.outputs.end());
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    const IntNode& n = g.nodes[ni];
    Kernel k = find_kernel(n.op_type);
    if (!k) fail(ErrorCode::Unsupported, "node '" + n.name + "': op type " + n.op_type + " has no integer kernel");
    std::vector<IntTensor> outs(n.outputs.size());
    for (size_t i = 0; i < outs.size(); ++i) {
      const ValueInfo& vi = g.value(n.outputs[i]);
      outs[i].dtype = vi.dtype;
      outs[i].exponents = {vi.exponent};
      if (vi.scale > 0) {
        outs[i].scales = {vi.scale};
        outs[i].zero_points = {vi.zero_point};
      }
    }
    KernelArgs args{g, n, {}, outs, state};
    for (const std::string& in : n.inputs) {
      if (in.empty()) {
        args.inputs.push_back(nullptr);
        continue;
      }
      auto it = live.find(in);
      const IntTensor* t = it != live.end() ? &it->second : g.initializer(in);
      if (!t) fail(ErrorCode::InvalidModel, "node '" + n.name + "' reads '" + in + "', which is not defined");
      args.inputs.push_back(t);
    }
    k(args);
    for (size_t i = 0; i < outs.size(); ++i) live[n.outputs[i]] = std::move(outs[i]);
    after_node(n, live);
    if (!keep_all)
      for (const std::string& in : n.inputs) {
        auto lu = last.find(in);
        if (lu != last.end() && lu->second == ni && !outputs.count(in)) live.erase(in);
      }
  }
  if (keep_all) return live;
  TensorMap result;
  for (const std::string& o : g.outputs) result[o] = live.at(o);
  return result;
}
}  // namespace

TensorMap run_program(const IntGraph& g, const TensorMap& inputs, bool keep_all, TensorMap* state) {
  return execute(
      g, inputs, keep_all, [](const IntNode&, const TensorMap&) {}, state);
}

SelfTestResult self_test(const IntGraph& g) {
  SelfTestResult r;
  if (g.test_outputs.empty()) {
    r.passed = false;
    r.lines.push_back("no test outputs embedded");
    return r;
  }
  std::set<std::string> checked;
  execute(g, g.test_inputs, false, [&](const IntNode& n, const TensorMap& live) {
    for (const std::string& out : n.outputs) {
      auto exp = g.test_outputs.find(out);
      if (exp == g.test_outputs.end()) continue;
      const IntTensor& want = exp->second;
      const IntTensor& got = live.at(out);
      checked.insert(out);
      std::string line = out + ": ";
      if (want.dtype != got.dtype || want.shape != got.shape || want.exponent() != got.exponent()) {
        line += std::string("MISMATCH dtype/shape/exponent: expected ") + dtype_name(want.dtype) + " " +
                shape_str(want.shape) + " 2^" + std::to_string(want.exponent()) + ", got " + dtype_name(got.dtype) +
                " " + shape_str(got.shape) + " 2^" + std::to_string(got.exponent());
        r.passed = false;
      } else {
        double tol = got.dtype == DType::Int16 || got.dtype == DType::UInt16 ? 1 + 1e-5 : 2e-5;
        int64_t bad = 0;
        double worst = 0;
        for (int64_t i = 0; i < got.numel(); ++i) {
          double d = std::fabs(real_value(got, i) - real_value(want, i)) / (got.is_float() ? 1.0 : got.scale());
          worst = std::max(worst, d);
          if (d > tol) ++bad;
        }
        if (bad) r.passed = false;
        line += bad ? "DIFF " + std::to_string(bad) + " of " + std::to_string(got.numel()) + " elements, max " +
                          std::to_string(worst)
                    : "EXACT " + std::to_string(got.numel()) + " elements";
      }
      r.lines.push_back(line);
    }
  });
  for (const auto& [name, _] : g.test_outputs)
    if (!checked.count(name)) {
      r.passed = false;
      r.lines.push_back(name + ": not produced by any node");
    }
  return r;
}

}  // namespace edgequant::runtime
