// ONNX model -> Graph. Protobuf parsing and shape inference are libonnx's; this file maps
// the proto onto the IR and reports malformed graphs by file and node.
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "edgequant/error.h"
#include "onnx/onnx_io.h"

namespace edgequant {

namespace {

void apply_type(Value* v, const onnx::TypeProto& type) {
  if (type.value_case() != onnx::TypeProto::kTensorType && type.value_case() != onnx::TypeProto::VALUE_NOT_SET)
    fail(ErrorCode::Unsupported, "value '" + v->name + "' is a sequence, map or optional (only tensors are supported)");
  if (!type.has_tensor_type()) return;
  const auto& tt = type.tensor_type();
  if (tt.elem_type() != 0) v->dtype = static_cast<DType>(tt.elem_type());
  if (!tt.has_shape()) return;
  Shape shape;
  std::vector<std::string> names;
  for (const auto& d : tt.shape().dim()) {
    shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
    names.push_back(d.has_dim_param() ? d.dim_param() : "");
  }
  v->shape = shape;
  v->dim_names = names;
}

Attribute convert_attribute(const onnx::AttributeProto& a, const std::string& where) {
  switch (a.type()) {
    case onnx::AttributeProto::FLOAT:
      return a.f();
    case onnx::AttributeProto::INT:
      return static_cast<int64_t>(a.i());
    case onnx::AttributeProto::STRING:
      return a.s();
    case onnx::AttributeProto::INTS:
      return std::vector<int64_t>(a.ints().begin(), a.ints().end());
    case onnx::AttributeProto::FLOATS:
      return std::vector<float>(a.floats().begin(), a.floats().end());
    case onnx::AttributeProto::STRINGS:
      return std::vector<std::string>(a.strings().begin(), a.strings().end());
    case onnx::AttributeProto::TENSOR:
      return tensor_from_proto(a.t());
    case onnx::AttributeProto::GRAPH:
    case onnx::AttributeProto::GRAPHS:
      fail(ErrorCode::Unsupported, where + ": attribute '" + a.name() +
                                       "' is a subgraph (control flow is supported as If, "
                                       "Loop and Scan only)");
    default:
      fail(ErrorCode::Unsupported, where + ": attribute '" + a.name() + "' has an unsupported type");
  }
}

// Constant nodes (paddle2onnx and torch write weights this way) become initializers.
Tensor constant_node_value(const onnx::NodeProto& node, const std::string& where, const std::string& base_dir) {
  for (const auto& a : node.attribute()) {
    const std::string& n = a.name();
    if (n == "value") return tensor_from_proto(a.t(), base_dir);
    if (n == "value_float") return Tensor::from_vector<float>(DType::Float32, {}, {a.f()});
    if (n == "value_floats")
      return Tensor::from_vector(DType::Float32, {a.floats_size()},
                                 std::vector<float>(a.floats().begin(), a.floats().end()));
    if (n == "value_int") return Tensor::from_vector<int64_t>(DType::Int64, {}, {a.i()});
    if (n == "value_ints")
      return Tensor::from_vector(DType::Int64, {a.ints_size()}, std::vector<int64_t>(a.ints().begin(), a.ints().end()));
    fail(ErrorCode::Unsupported, where + ": Constant attribute '" + n + "' is not supported");
  }
  fail(ErrorCode::InvalidModel, where + ": Constant node without a value");
}

}  // namespace

std::unique_ptr<Graph> import_onnx(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorCode::InvalidModel, path + ": cannot open file");
  std::stringstream ss;
  ss << f.rdbuf();
  onnx::ModelProto model;
  if (!model.ParseFromString(ss.str()))
    fail(ErrorCode::InvalidModel,
         path + ": not an ONNX model (protobuf parsing failed: the file is truncated or not ONNX)");
  if (!model.has_graph() || model.ir_version() <= 0 || model.opset_import_size() == 0)
    fail(ErrorCode::InvalidModel, path + ": not an ONNX model (no graph, ir_version or opset_import)");
  std::string base_dir = ".";
  auto slash = path.find_last_of('/');
  if (slash != std::string::npos) base_dir = path.substr(0, slash);
  try {
    return import_onnx_model(model, base_dir);
  } catch (Error& e) {
    throw e.add_context(path);
  }
}

namespace {

// Names a graph's nodes read (nested subgraphs included) that it does not define: its
// outer-scope references, in first-use order.
std::vector<std::string> outer_references(const onnx::GraphProto& gp) {
  std::set<std::string> defined;
  for (const auto& t : gp.initializer()) defined.insert(t.name());
  for (const auto& i : gp.input()) defined.insert(i.name());
  for (const auto& n : gp.node())
    for (const auto& o : n.output()) defined.insert(o);
  std::vector<std::string> refs;
  std::set<std::string> seen;
  auto use = [&](const std::string& name) {
    if (!name.empty() && !defined.count(name) && seen.insert(name).second) refs.push_back(name);
  };
  for (const auto& n : gp.node()) {
    for (const auto& i : n.input()) use(i);
    for (const auto& a : n.attribute())
      if (a.type() == onnx::AttributeProto::GRAPH)
        for (const auto& r : outer_references(a.g())) use(r);
  }
  for (const auto& o : gp.output()) use(o.name());
  return refs;
}

// Input/output counts against ONNX's schema: a node missing a required input is the model's
// fault, not a kernel's out-of-range read. At opsets libonnx knows (<= 17) the counts are exact;
// above them, or for an op used below the opset that introduced it, only the minimums of the
// newest schema it knows are checked (later versions added inputs, e.g. ReduceMean's axes); ops
// newer than libonnx 1.12 have their minimums here.
void check_arity(const onnx::NodeProto& node, int64_t opset, const std::string& where) {
  struct Newer {
    int since, min_in, min_out;
  };
  static const std::map<std::string, Newer> newer_ops = {
      {"Col2Im", {18, 3, 1}},         {"GroupNormalization", {18, 3, 1}}, {"Mish", {18, 1, 1}},
      {"Gelu", {20, 1, 1}},           {"CenterCropPad", {18, 2, 1}},      {"DeformConv", {19, 3, 1}},
      {"AffineGrid", {20, 2, 1}},     {"BitwiseAnd", {18, 2, 1}},         {"BitwiseOr", {18, 2, 1}},
      {"BitwiseXor", {18, 2, 1}},     {"BitwiseNot", {18, 1, 1}},         {"ImageDecoder", {20, 1, 1}},
      {"RegexFullMatch", {20, 1, 1}}, {"StringConcat", {20, 2, 1}},       {"StringSplit", {20, 1, 2}}};
  const std::string& type = node.op_type();
  const onnx::OpSchema* schema =
      onnx::OpSchemaRegistry::Schema(type, static_cast<int>(std::min(opset, kLibonnxMaxOpset)), "");
  bool exact = schema && opset <= kLibonnxMaxOpset;
  if (!schema) {
    schema = onnx::OpSchemaRegistry::Schema(type, static_cast<int>(kLibonnxMaxOpset), "");
    // An op used below the opset that introduced it does not exist there (ONNX Runtime refuses
    // such a model too); kernels would read inputs and write outputs its schema never had.
    if (schema && opset <= kLibonnxMaxOpset)
      fail(ErrorCode::InvalidModel, where + ": " + type + " does not exist at opset " + std::to_string(opset) +
                                        " (introduced in opset " + std::to_string(schema->since_version()) + ")");
  }
  int min_in = 0, min_out = 0;
  if (schema) {
    min_in = schema->min_input();
    min_out = schema->min_output();
  } else if (auto it = newer_ops.find(type); it != newer_ops.end()) {
    if (opset < it->second.since)
      fail(ErrorCode::InvalidModel, where + ": " + type + " does not exist at opset " + std::to_string(opset) +
                                        " (introduced in opset " + std::to_string(it->second.since) + ")");
    min_in = it->second.min_in;
    min_out = it->second.min_out;
  } else {
    return;  // unknown op: the executor refuses it by name
  }
  int n_in = node.input_size(), n_out = node.output_size();
  int max_in = exact ? schema->max_input() : std::numeric_limits<int>::max();
  int max_out = exact ? schema->max_output() : std::numeric_limits<int>::max();
  if (n_in < min_in || n_in > max_in)
    fail(ErrorCode::InvalidModel, where + " has " + std::to_string(n_in) + " inputs; ONNX's " + type + " takes " +
                                      std::to_string(min_in) +
                                      (exact ? " to " + std::to_string(max_in) : std::string(" or more")));
  if (n_out < min_out || n_out > max_out)
    fail(ErrorCode::InvalidModel, where + " has " + std::to_string(n_out) + " outputs; ONNX's " + type + " gives " +
                                      std::to_string(min_out) +
                                      (exact ? " to " + std::to_string(max_out) : std::string(" or more")));
  // Required inputs may not be empty names (positions are only certain at the exact version).
  if (exact)
    for (int i = 0; i < n_in && i < static_cast<int>(schema->inputs().size()); ++i)
      if (node.input(i).empty() && schema->inputs()[size_t(i)].GetOption() == onnx::OpSchema::Single)
        fail(ErrorCode::InvalidModel, where + ": required input " + std::to_string(i) + " (" +
                                          schema->inputs()[size_t(i)].GetName() + ") is empty");
  for (int i = 0; !schema && i < min_in; ++i)
    if (node.input(i).empty())
      fail(ErrorCode::InvalidModel, where + ": required input " + std::to_string(i) + " is empty");
}

// The body of a (sub)graph. `outer` lists the outer-scope values a subgraph reads: they become
// its graph inputs, typed like the enclosing graph's values of those names.
std::unique_ptr<Graph> import_graph(const onnx::GraphProto& gp, const std::string& base_dir, int64_t opset,
                                    const std::vector<const Value*>* outer) {
  auto g = std::make_unique<Graph>();
  g->opset = opset;
  g->name = gp.name().empty() ? "graph" : gp.name();
  if (gp.sparse_initializer_size() > 0) fail(ErrorCode::Unsupported, "sparse initializers are not supported");

  for (const auto& init : gp.initializer()) {
    try {
      g->add_constant(init.name(), tensor_from_proto(init, base_dir));
    } catch (Error& e) {
      throw e.add_context("initializer '" + init.name() + "'");
    }
  }
  if (outer) {
    for (const Value* o : *outer) {
      Value* v = g->add_value(o->name);
      v->dtype = o->dtype;
      v->shape = o->shape;
      v->dim_names = o->dim_names;
      g->inputs.push_back(v);
    }
    g->outer_inputs = outer->size();
  }
  for (const auto& in : gp.input()) {
    if (Value* existing = g->find_value(in.name())) {
      if (existing->is_constant()) continue;  // IR < 4 lists initializers as inputs too
      fail(ErrorCode::InvalidModel, "graph input '" + in.name() + "' is declared twice");
    }
    Value* v = g->add_value(in.name());
    apply_type(v, in.type());
    g->inputs.push_back(v);
  }

  // Pass 1: every node output exists as a value, so node order in the file does not matter.
  std::vector<const onnx::NodeProto*> nodes;
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& node = gp.node(i);
    std::string where = "node '" +
                        (node.name().empty() ? node.output_size() ? node.output(0) : std::to_string(i) : node.name()) +
                        "' (" + node.op_type() + ")";
    if (node.op_type() == "Constant" && (node.domain().empty() || node.domain() == "ai.onnx")) {
      if (node.output_size() != 1) fail(ErrorCode::InvalidModel, where + ": Constant must have one output");
      g->add_constant(node.output(0), constant_node_value(node, where, base_dir));
      continue;
    }
    for (const auto& out : node.output())
      if (!out.empty()) g->add_value(out);
    nodes.push_back(&node);
  }
  // Pass 2: ops.
  int counter = 0;
  for (const auto* node : nodes) {
    std::string name = node->name();
    if (name.empty() || g->find_op(name)) name = g->unique_name(node->op_type() + "_" + std::to_string(counter));
    ++counter;
    std::string where = "node '" + name + "' (" + node->op_type() + ")";
    auto find_input = [&](const std::string& in) {
      Value* v = g->find_value(in);
      if (!v)
        fail(ErrorCode::InvalidModel,
             where + " reads '" + in + "', which is neither a graph input, an initializer nor any node's output");
      return v;
    };
    std::vector<Value*> ins, outs;
    for (const auto& in : node->input()) ins.push_back(in.empty() ? nullptr : find_input(in));
    for (const auto& out : node->output()) outs.push_back(out.empty() ? nullptr : g->find_value(out));
    // Control flow: the If branches and the Loop/Scan body become subgraphs reading the union of
    // their outer references, which the op lists after its own inputs.
    bool onnx_domain = node->domain().empty() || node->domain() == "ai.onnx";
    bool is_if = onnx_domain && node->op_type() == "If";
    bool has_body = onnx_domain && (node->op_type() == "Loop" || node->op_type() == "Scan");
    std::map<std::string, const onnx::GraphProto*> branches;
    std::vector<const Value*> implicit;
    if (is_if || has_body) {
      std::set<std::string> seen;
      for (const auto& a : node->attribute())
        if (a.type() == onnx::AttributeProto::GRAPH) {
          branches[a.name()] = &a.g();
          for (const auto& r : outer_references(a.g()))
            if (seen.insert(r).second) implicit.push_back(find_input(r));
        }
      if (is_if && (!branches.count("then_branch") || !branches.count("else_branch")))
        fail(ErrorCode::InvalidModel, where + ": If needs then_branch and else_branch");
      if (has_body && !branches.count("body"))
        fail(ErrorCode::InvalidModel, where + ": " + node->op_type() + " needs a body");
      for (const Value* v : implicit) ins.push_back(const_cast<Value*>(v));
    }
    if (node->domain().empty() || node->domain() == "ai.onnx") check_arity(*node, opset, where);
    Op* op = g->add_op(node->op_type(), name, ins, outs);
    op->domain = node->domain() == "ai.onnx" ? "" : node->domain();
    for (const auto& a : node->attribute()) {
      if ((is_if || has_body) && a.type() == onnx::AttributeProto::GRAPH) continue;
      op->attrs[a.name()] = convert_attribute(a, where);
    }
    for (const auto& [key, branch] : branches) {
      try {
        auto sub = import_graph(*branch, base_dir, opset, &implicit);
        if (is_if && sub->outputs.size() != outs.size())
          fail(ErrorCode::InvalidModel,
               key + " has " + std::to_string(sub->outputs.size()) + " outputs, the If " + std::to_string(outs.size()));
        op->subgraphs[key] = std::move(sub);
      } catch (Error& e) {
        throw e.add_context(where + " " + key);
      }
    }
  }
  for (const auto& out : gp.output()) {
    Value* v = g->find_value(out.name());
    if (!v) fail(ErrorCode::InvalidModel, "graph output '" + out.name() + "' is never produced");
    apply_type(v, out.type());
    g->outputs.push_back(v);
  }
  for (const auto& vi : gp.value_info())
    if (Value* v = g->find_value(vi.name()))
      if (!v->is_constant()) apply_type(v, vi.type());
  g->topo_sort();
  g->verify();
  return g;
}

// Every node's arity and required inputs, checked before libonnx's shape inference runs: some of
// its inference functions read a required input without checking it is there (MaxUnpool's
// indices: a crash found by fuzzing).
void check_arities(const onnx::GraphProto& gp, int64_t opset) {
  int index = 0;
  for (const auto& node : gp.node()) {
    std::string name = node.name().empty() ? node.op_type() + "_" + std::to_string(index) : node.name();
    ++index;
    if (node.domain().empty() || node.domain() == "ai.onnx")
      check_arity(node, opset, "node '" + name + "' (" + node.op_type() + ")");
    for (const auto& a : node.attribute())
      if (a.type() == onnx::AttributeProto::GRAPH) check_arities(a.g(), opset);
  }
}
}  // namespace

std::unique_ptr<Graph> import_onnx_model(onnx::ModelProto& model, const std::string& base_dir) {
  int64_t opset = -1;
  std::map<std::string, int64_t> extra;
  for (const auto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx")
      opset = o.version();
    else
      extra[o.domain()] = o.version();
  }
  if (opset < 1 || opset > kMaxOpset)
    fail(ErrorCode::Unsupported, "opset " + std::to_string(opset) +
                                     " of the default domain is not supported (supported: 1-" +
                                     std::to_string(kMaxOpset) + ")");
  fold_constant_ifs(*model.mutable_graph());
  decompose_experimental_ops(*model.mutable_graph(), opset);
  // Shape inference only adds value_info; a model it cannot fully infer still imports. Above
  // libonnx's opsets its older schemas would misread newer nodes (ReduceMean's axes input):
  // load_model types those graphs by running them instead.
  if (opset <= kLibonnxMaxOpset) {
    check_arities(model.graph(), opset);
    try {
      onnx::shape_inference::InferShapes(model);
    } catch (const std::exception&) {
    }
  }
  auto g = import_graph(model.graph(), base_dir, opset, nullptr);
  g->extra_opsets = extra;
  g->ir_version = model.ir_version();
  g->producer_name = model.producer_name();
  return g;
}

}  // namespace edgequant
