// Graph -> ONNX model, written atomically.
#include <onnx/onnx_pb.h>

#include <cstdio>
#include <fstream>

#include "core/files.h"
#include "edgequant/error.h"
#include "onnx/onnx_io.h"

namespace edgequant {

namespace {

void set_type(const Value* v, onnx::ValueInfoProto* info) {
  info->set_name(v->name);
  if (v->dtype == DType::Undefined) return;
  auto* tt = info->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(static_cast<int32_t>(v->dtype));
  if (!v->shape) return;
  auto* shape = tt->mutable_shape();
  for (size_t i = 0; i < v->shape->size(); ++i) {
    auto* d = shape->add_dim();
    int64_t n = (*v->shape)[i];
    if (n >= 0)
      d->set_dim_value(n);
    else if (i < v->dim_names.size() && !v->dim_names[i].empty())
      d->set_dim_param(v->dim_names[i]);
  }
}

void set_attribute(const std::string& name, const Attribute& attr, onnx::AttributeProto* a) {
  a->set_name(name);
  if (auto* i = std::get_if<int64_t>(&attr)) {
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(*i);
  } else if (auto* f = std::get_if<float>(&attr)) {
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(*f);
  } else if (auto* s = std::get_if<std::string>(&attr)) {
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(*s);
  } else if (auto* is = std::get_if<std::vector<int64_t>>(&attr)) {
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : *is) a->add_ints(v);
  } else if (auto* fs = std::get_if<std::vector<float>>(&attr)) {
    a->set_type(onnx::AttributeProto::FLOATS);
    for (float v : *fs) a->add_floats(v);
  } else if (auto* ss = std::get_if<std::vector<std::string>>(&attr)) {
    a->set_type(onnx::AttributeProto::STRINGS);
    for (const auto& v : *ss) a->add_strings(v);
  } else if (auto* t = std::get_if<Tensor>(&attr)) {
    a->set_type(onnx::AttributeProto::TENSOR);
    tensor_to_proto(*t, *a->mutable_t());
  }
}

// Initializers, nodes and value infos of `g` into `gp`. A subgraph's leading outer-scope inputs
// are not written (ONNX subgraphs name them directly), only its formal ones, and an op with
// subgraphs lists only its own inputs (the implicit ones follow them in the IR).
void write_graph_body(const Graph& g, onnx::GraphProto* gp, bool subgraph) {
  gp->set_name(g.name);
  for (const auto& v : g.values()) {
    if (!v->is_constant() || (v->consumers.empty() && !is_graph_output(g, v.get()))) continue;
    auto* t = gp->add_initializer();
    t->set_name(v->name);
    tensor_to_proto(*v->data, *t);
  }
  for (size_t i = subgraph ? g.outer_inputs : 0; i < g.inputs.size(); ++i) set_type(g.inputs[i], gp->add_input());
  for (const Value* v : g.outputs) set_type(v, gp->add_output());
  for (const auto& op : g.ops()) {
    auto* n = gp->add_node();
    n->set_name(op->name);
    n->set_op_type(op->type);
    if (!op->domain.empty()) n->set_domain(op->domain);
    size_t own_inputs = op->inputs.size();
    if (!op->subgraphs.empty()) own_inputs -= op->subgraphs.begin()->second->outer_inputs;
    for (size_t i = 0; i < own_inputs; ++i) n->add_input(op->inputs[i] ? op->inputs[i]->name : "");
    for (const Value* out : op->outputs) n->add_output(out ? out->name : "");
    for (const auto& kv : op->attrs) set_attribute(kv.first, kv.second, n->add_attribute());
    for (const auto& [key, sub] : op->subgraphs) {
      auto* a = n->add_attribute();
      a->set_name(key);
      a->set_type(onnx::AttributeProto::GRAPH);
      write_graph_body(*sub, a->mutable_g(), true);
    }
    for (const Value* out : op->outputs)
      if (out && out->dtype != DType::Undefined && !is_graph_output(g, out)) set_type(out, gp->add_value_info());
  }
}

}  // namespace

void graph_to_model(const Graph& g, onnx::ModelProto& model) {
  model.Clear();
  model.set_ir_version(std::max<int64_t>(g.ir_version, 7));
  model.set_producer_name("edgequant");
  auto* os = model.add_opset_import();
  os->set_domain("");
  os->set_version(g.opset);
  for (const auto& kv : g.extra_opsets) {
    auto* o = model.add_opset_import();
    o->set_domain(kv.first);
    o->set_version(kv.second);
  }
  write_graph_body(g, model.mutable_graph(), false);
}

void export_onnx(const Graph& g, const std::string& path) {
  onnx::ModelProto model;
  graph_to_model(g, model);
  std::string bytes;
  if (!model.SerializeToString(&bytes))
    fail(ErrorCode::Unsupported, path + ": the model exceeds protobuf's 2 GiB limit");
  write_file_atomic(path, bytes);
}

}  // namespace edgequant
