// Control flow. If with a data-dependent condition: each branch is a subgraph run by an executor
// of its own; the op's inputs after the condition are the outer-scope values the branches read
// (the branches' graph inputs, in order). Loop and Scan run their body once per iteration; the
// outer-scope values follow the op's own inputs and lead the body's inputs (Graph::outer_inputs).
// Subgraphs run without hooks: these ops stay float (op traits).
#include <ATen/ATen.h>

#include <memory>
#include <optional>

#include "exec/executor.h"
#include "exec/ops/factories.h"

namespace edgequant::exec {

Kernel make_if(const Op& op, int64_t) {
  auto then_it = op.subgraphs.find("then_branch"), else_it = op.subgraphs.find("else_branch");
  if (then_it == op.subgraphs.end() || else_it == op.subgraphs.end()) unsupported(op, "an If without both branches");
  // The subgraphs are shared, immutable and outlive the kernel (the closure holds them).
  std::shared_ptr<const Graph> then_g = then_it->second, else_g = else_it->second;
  auto then_ex = std::make_shared<Executor>(*then_g), else_ex = std::make_shared<Executor>(*else_g);
  std::string where = op.describe();
  return [then_g, else_g, then_ex, else_ex, where](const Tensors& in) -> Tensors {
    if (in.empty() || !in[0].defined() || in[0].numel() != 1)
      fail(ErrorCode::InvalidInput, where + ": the condition must be a single value");
    bool take_then = in[0].to(at::kDouble).item<double>() != 0;
    Tensors outer(in.begin() + 1, in.end());
    return (take_then ? then_ex : else_ex)->run(outer);
  };
}

namespace {
// A scalar for a body input, shaped as the body declares it ([] or [1]).
at::Tensor body_scalar(at::Tensor t, const Value* input) {
  if (input->shape && input->shape->size() == 1) return t.reshape({1});
  return t;
}

// Per-iteration outputs stacked along `axis` (reversed first for a reverse direction).
at::Tensor stack_scan(std::vector<at::Tensor> parts, int64_t axis, bool reverse, const std::string& where) {
  if (parts.empty()) return at::empty({0});
  if (reverse) std::reverse(parts.begin(), parts.end());
  int64_t rank = parts[0].dim() + 1;
  return at::stack(parts, normalize_axis(axis, rank, where));
}
}  // namespace

// Loop: `M` (trip count) and `cond` are optional; the body maps (iteration, condition, carried...)
// to (condition, carried..., scan outputs...). The body's condition output is ignored when the
// op has no condition input (a for loop), as ONNX specifies.
Kernel make_loop(const Op& op, int64_t) {
  auto it = op.subgraphs.find("body");
  if (it == op.subgraphs.end()) unsupported(op, "a Loop without a body");
  std::shared_ptr<const Graph> body = it->second;
  size_t outer = body->outer_inputs, formal = body->inputs.size() - outer;
  if (formal < 2)
    fail(ErrorCode::InvalidModel, op.describe() + ": the body needs an iteration number and a condition input");
  size_t carried = formal - 2, own = op.inputs.size() - outer;
  if (own != 2 + carried || body->outputs.size() < 1 + carried)
    fail(ErrorCode::InvalidModel,
         op.describe() + ": " + std::to_string(carried) + " loop-carried values, but the body gives " +
             std::to_string(body->outputs.size()) + " outputs and the op has " + std::to_string(own) + " inputs");
  size_t scans = body->outputs.size() - 1 - carried;
  auto ex = std::make_shared<Executor>(*body);
  std::string where = op.describe();
  return [body, ex, outer, carried, own, scans, where](const Tensors& in) -> Tensors {
    std::optional<int64_t> trips;
    if (in[0].defined()) trips = in[0].to(at::kLong).reshape({-1})[0].item<int64_t>();
    bool has_cond = in[1].defined();
    bool cond = !has_cond || in[1].to(at::kBool).reshape({-1})[0].item<bool>();
    if (!trips && !has_cond)
      fail(ErrorCode::Unsupported, where + ": no trip count and no condition (the loop never ends)");
    Tensors state(in.begin() + 2, in.begin() + 2 + static_cast<std::ptrdiff_t>(carried));
    std::vector<std::vector<at::Tensor>> scanned(scans);
    const Value* iter_input = body->inputs[outer];
    const Value* cond_input = body->inputs[outer + 1];
    for (int64_t i = 0; (!trips || i < *trips) && cond; ++i) {
      Tensors args(in.begin() + static_cast<std::ptrdiff_t>(own), in.end());
      args.push_back(body_scalar(at::scalar_tensor(i, at::kLong), iter_input));
      args.push_back(body_scalar(at::scalar_tensor(cond, at::kBool), cond_input));
      args.insert(args.end(), state.begin(), state.end());
      Tensors out = ex->run(args);
      if (has_cond) cond = out[0].to(at::kBool).reshape({-1})[0].item<bool>();
      for (size_t k = 0; k < carried; ++k) state[k] = out[1 + k];
      for (size_t k = 0; k < scans; ++k) scanned[k].push_back(out[1 + carried + k]);
    }
    Tensors result = state;
    for (auto& parts : scanned) result.push_back(stack_scan(std::move(parts), 0, false, where));
    return result;
  };
}

// Scan (opset 9+): the body maps (states..., one slice of each scan input) to (states..., one
// element of each scan output), along each scan input's axis and direction.
Kernel make_scan(const Op& op, int64_t opset) {
  if (opset < 9) unsupported(op, "opset-8 Scan (batched, with sequence_lens)");
  auto it = op.subgraphs.find("body");
  if (it == op.subgraphs.end()) unsupported(op, "a Scan without a body");
  std::shared_ptr<const Graph> body = it->second;
  size_t outer = body->outer_inputs, own = op.inputs.size() - outer;
  int64_t num_scan_inputs = op.attr_int("num_scan_inputs", -1);
  if (num_scan_inputs < 1 || static_cast<size_t>(num_scan_inputs) > own)
    fail(ErrorCode::InvalidModel, op.describe() + ": num_scan_inputs " + std::to_string(num_scan_inputs));
  size_t m = static_cast<size_t>(num_scan_inputs), states = own - m;
  if (body->outputs.size() < states)
    fail(ErrorCode::InvalidModel, op.describe() + ": the body gives fewer outputs than states");
  size_t k_out = body->outputs.size() - states;
  std::vector<int64_t> in_axes = op.attr_ints("scan_input_axes", std::vector<int64_t>(m, 0));
  std::vector<int64_t> in_dirs = op.attr_ints("scan_input_directions", std::vector<int64_t>(m, 0));
  std::vector<int64_t> out_axes = op.attr_ints("scan_output_axes", std::vector<int64_t>(k_out, 0));
  std::vector<int64_t> out_dirs = op.attr_ints("scan_output_directions", std::vector<int64_t>(k_out, 0));
  if (in_axes.size() != m || in_dirs.size() != m || out_axes.size() != k_out || out_dirs.size() != k_out)
    fail(ErrorCode::InvalidModel, op.describe() + ": scan axes/directions do not match the scan inputs and outputs");
  auto ex = std::make_shared<Executor>(*body);
  std::string where = op.describe();
  return [=](const Tensors& in) -> Tensors {
    Tensors state(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(states));
    std::vector<at::Tensor> xs;
    std::vector<int64_t> axes;
    int64_t length = -1;
    for (size_t j = 0; j < m; ++j) {
      const at::Tensor& x = in[states + j];
      int64_t a = normalize_axis(in_axes[j], x.dim(), where);
      if (length >= 0 && x.size(a) != length)
        fail(ErrorCode::InvalidInput, where + ": scan inputs of different lengths (" + std::to_string(length) +
                                          " and " + std::to_string(x.size(a)) + ")");
      length = x.size(a);
      xs.push_back(x);
      axes.push_back(a);
    }
    std::vector<std::vector<at::Tensor>> scanned(k_out);
    for (int64_t t = 0; t < length; ++t) {
      Tensors args(in.begin() + static_cast<std::ptrdiff_t>(own), in.end());
      args.insert(args.end(), state.begin(), state.end());
      for (size_t j = 0; j < m; ++j) args.push_back(xs[j].select(axes[j], in_dirs[j] ? length - 1 - t : t));
      Tensors out = ex->run(args);
      for (size_t k = 0; k < states; ++k) state[k] = out[k];
      for (size_t k = 0; k < k_out; ++k) scanned[k].push_back(out[states + k]);
    }
    Tensors result = state;
    for (size_t k = 0; k < k_out; ++k)
      result.push_back(stack_scan(std::move(scanned[k]), out_axes[k], out_dirs[k] != 0, where));
    return result;
  };
}

}  // namespace edgequant::exec
