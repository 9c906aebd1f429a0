// FoldConstantsPass: evaluate constant subgraphs once with the executor's own kernels.
#include <ATen/ATen.h>

#include <memory>
#include <unordered_map>

#include "exec/kernel.h"
#include "ir/op_traits.h"
#include "passes/graph_passes.h"

namespace edgequant {

namespace {
// Values that may be folded even though their producer reads a non-constant input:
// Shape of a fully static tensor, and Gather(Shape(x), i) when dim i of x is static.
bool fold_from_static_shape(const Op& op, Tensor& out) {
  if (op.is(OpType::Shape) && op.input(0) && op.input(0)->has_static_shape() && !op.has_attr("start") &&
      !op.has_attr("end")) {
    const Shape& s = *op.input(0)->shape;
    out = Tensor::from_vector(DType::Int64, {static_cast<int64_t>(s.size())}, s);
    return true;
  }
  if (op.is(OpType::Gather) && op.input(0) && op.input(0)->producer && op.input(0)->producer->is(OpType::Shape) &&
      op.input(1) && op.input(1)->is_constant() && op.attr_int("axis", 0) == 0) {
    const Op& shape_op = *op.input(0)->producer;
    const Value* x = shape_op.input(0);
    if (!x || !x->shape || shape_op.has_attr("start") || shape_op.has_attr("end")) return false;
    std::vector<int64_t> idx = op.input(1)->data->to_int64s();
    std::vector<int64_t> dims;
    int64_t rank = static_cast<int64_t>(x->shape->size());
    for (int64_t i : idx) {
      int64_t a = i < 0 ? i + rank : i;
      if (a < 0 || a >= rank || (*x->shape)[a] < 0) return false;
      dims.push_back((*x->shape)[a]);
    }
    out = Tensor::from_vector(DType::Int64, op.input(1)->data->shape(), dims);
    return true;
  }
  return false;
}
// An If whose condition became a constant (Shape -> Gather -> Equal on static dims, say): the
// taken branch's ops replace it, their names prefixed with the If's, writing the If's outputs.
void inline_branch(Graph& graph, Op* op, std::shared_ptr<const Graph> branch_owner) {
  const Graph& branch = *branch_owner;  // held here: removing the If drops its own reference
  std::unordered_map<const Value*, Value*> map;
  for (size_t k = 0; k < branch.inputs.size(); ++k) map[branch.inputs[k]] = op->inputs.at(1 + k);
  std::string prefix = op->name + "/";
  std::vector<Value*> outs = op->outputs;
  std::unordered_map<const Value*, Value*> result_of;  // branch output value -> If output
  for (size_t i = 0; i < outs.size() && i < branch.outputs.size(); ++i)
    if (outs[i]) result_of[branch.outputs[i]] = outs[i];
  graph.remove_op(op);
  for (const auto& v : branch.values())
    if (v->is_constant()) map[v.get()] = graph.add_constant(graph.unique_name(prefix + v->name), *v->data);
  for (const auto& b : branch.ops()) {
    std::vector<Value*> ins, bouts;
    for (Value* in : b->inputs) ins.push_back(in ? map.at(in) : nullptr);
    for (Value* o : b->outputs) {
      if (!o) {
        bouts.push_back(nullptr);
        continue;
      }
      auto r = result_of.find(o);
      Value* nv = r != result_of.end() ? r->second : graph.add_value(graph.unique_name(prefix + o->name));
      if (r != result_of.end()) result_of.erase(r);  // a value is produced once
      if (nv->dtype == DType::Undefined) nv->dtype = o->dtype;
      if (!nv->shape) nv->shape = o->shape;
      map[o] = nv;
      bouts.push_back(nv);
    }
    Op* c = graph.add_op(b->type, graph.unique_name(prefix + b->name), ins, bouts);
    c->domain = b->domain;
    c->attrs = b->attrs;
    c->subgraphs = b->subgraphs;
  }
  // Branch outputs that are outer values or constants: an Identity writes the If's output.
  for (const auto& [bo, out] : result_of)
    graph.add_op("Identity", graph.unique_name(prefix + "identity"), {map.at(bo)}, {out});
  graph.topo_sort();
}

}  // namespace

PassResult FoldConstantsPass::run(Graph& graph, PassContext&) {
  PassResult result;
  std::vector<Op*> order;
  for (const auto& op : graph.ops()) order.push_back(op.get());
  for (Op* op : order) {
    if (!op->domain.empty()) continue;
    if (op->is(OpType::If) && op->input(0) && op->input(0)->is_constant() && op->input(0)->data->numel() == 1) {
      bool take_then = op->input(0)->data->to_doubles().at(0) != 0;
      inline_branch(graph, op, op->subgraphs.at(take_then ? "then_branch" : "else_branch"));
      ++result.rewrites;
      continue;
    }
    Tensor static_value;
    if (op->outputs.size() == 1 && op->outputs[0] && fold_from_static_shape(*op, static_value)) {
      Value* out = op->outputs[0];
      graph.remove_op(op);
      out->data = std::make_shared<const Tensor>(std::move(static_value));
      out->dtype = out->data->dtype();
      out->shape = out->data->shape();
      ++result.rewrites;
      continue;
    }
    bool all_const = !op->inputs.empty();
    for (Value* in : op->inputs)
      if (in && !in->is_constant()) all_const = false;
    if (!all_const) continue;
    exec::KernelFactory factory = exec::find_kernel_factory(op->type);
    if (!factory) continue;  // the executor reports unsupported ops with full context
    exec::Tensors in;
    for (Value* v : op->inputs) in.push_back(v ? exec::view_tensor(*v->data) : at::Tensor());
    exec::Tensors out;
    exec::run_reporting_as_op(*op, [&] {  // a constant op the model cannot compute is the model's error
      at::NoGradGuard guard;
      out = factory(*op, graph.opset)(in);
    });
    std::vector<Value*> outs = op->outputs;
    graph.remove_op(op);
    for (size_t i = 0; i < outs.size() && i < out.size(); ++i) {
      if (!outs[i]) continue;
      outs[i]->data = std::make_shared<const Tensor>(exec::to_ir_tensor(out[i]));
      outs[i]->dtype = outs[i]->data->dtype();
      outs[i]->shape = outs[i]->data->shape();
      outs[i]->dim_names.assign(outs[i]->shape->size(), "");
    }
    ++result.rewrites;
  }
  result.changed = result.rewrites > 0;
  return result;
}

}  // namespace edgequant
