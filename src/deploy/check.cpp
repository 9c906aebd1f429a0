// Deployability checks (see check.h).
#include "deploy/check.h"

#include "deploy/exporter.h"
#include "exec/kernel.h"

namespace edgequant::deploy {

std::string Finding::line() const { return "'" + node + "' (" + op_type + "): " + reason + "; remedy: " + remedy; }

namespace {
bool shape_computation(const Op& op) {
  // Ops producing only integer values (Shape, Gather/Concat/Unsqueeze on shapes): folded at batch 1.
  for (const Value* v : op.outputs)
    if (v && !(v->dtype == DType::Int64 || v->dtype == DType::Int32 || v->dtype == DType::Bool)) return false;
  return !op.outputs.empty();
}

}  // namespace

std::vector<Finding> check_deployable(const Graph& g, const QuantPlan& plan, const Target& t, ExportFormat format) {
  std::vector<Finding> out;
  const Exporter* exporter = find_exporter(format);
  for (const auto& op_ptr : g.ops()) {
    const Op& op = *op_ptr;
    if (!exec::find_kernel_factory(op.type) || !op.domain.empty()) {
      out.push_back({op.name, op.type, "EdgeQuant cannot execute this op", "replace it in the model"});
      continue;
    }
    if (shape_computation(op)) continue;
    if (exporter) exporter->check_op(op, plan, t, out);
  }
  return out;
}

}  // namespace edgequant::deploy
