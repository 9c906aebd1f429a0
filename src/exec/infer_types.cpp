// Value types by running the graph once (see infer_types.h).
#include "exec/infer_types.h"

#include <ATen/ATen.h>

#include <map>

#include "exec/executor.h"
#include "exec/kernel.h"
#include "exec/ops/factories.h"
#include "ir/op_traits.h"

namespace edgequant::exec {

int infer_types_by_running(Graph& g) {
  bool symbolic = false;
  std::vector<at::Tensor> inputs;
  for (const Value* in : g.inputs) {
    if (!in->shape || in->dtype == DType::Undefined) return 0;
    std::vector<int64_t> dims;
    for (int64_t d : *in->shape) {
      symbolic = symbolic || d < 0;
      dims.push_back(d < 0 ? 1 : d);
    }
    inputs.push_back(at::zeros(dims, at::TensorOptions().dtype(to_scalar_type(in->dtype))));
  }
  std::map<std::string, std::pair<DType, std::vector<int64_t>>> seen;
  ExecHooks record;
  record.after_op = [&](const Op& op, std::vector<at::Tensor>& outs) {
    for (size_t i = 0; i < op.outputs.size() && i < outs.size(); ++i)
      if (op.outputs[i] && outs[i].defined())
        seen[op.outputs[i]->name] = {from_scalar_type(outs[i].scalar_type()), outs[i].sizes().vec()};
    if (op.is(OpType::QuantizeLinear) && !op.outputs.empty() && op.outputs[0] && seen.count(op.outputs[0]->name))
      seen[op.outputs[0]->name].first = quantize_linear_output_type(op);  // 4-bit codes run as 8-bit tensors
  };
  try {
    Executor ex(g);
    at::NoGradGuard no_grad;
    ex.run(inputs, &record);
  } catch (const Error&) {
    return 0;
  }
  int n = 0;
  for (auto& [name, type] : seen) {
    Value* v = g.find_value(name);
    if (!v || v->is_constant() || v->dtype != DType::Undefined) continue;
    v->dtype = type.first;
    if (!symbolic && !v->shape) v->shape = Shape(type.second.begin(), type.second.end());
    ++n;
  }
  return n;
}

}  // namespace edgequant::exec
