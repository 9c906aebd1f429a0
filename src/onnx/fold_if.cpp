// Constant-condition If folding at import (see onnx_io.h fold_constant_ifs): wake-word heads and
// voice-activity detectors branch on a constant (a sample rate, a flag); the taken branch's
// nodes replace the If, its outputs renamed to the If's, its own names prefixed with the If's.
#include <onnx/onnx_pb.h>

#include <map>
#include <set>

#include "edgequant/error.h"
#include "onnx/onnx_io.h"

namespace edgequant {

namespace {
// A scalar boolean-like constant (initializer or Constant node) by name.
std::map<std::string, bool> constant_conditions(const onnx::GraphProto& g) {
  std::map<std::string, bool> c;
  auto read = [](const onnx::TensorProto& t, bool& out) {
    int64_t n = 1;
    for (int64_t d : t.dims()) n *= d;
    if (n != 1) return false;
    if (t.data_type() == onnx::TensorProto::BOOL || t.data_type() == onnx::TensorProto::INT32 ||
        t.data_type() == onnx::TensorProto::UINT8) {
      if (t.int32_data_size())
        out = t.int32_data(0) != 0;
      else if (t.raw_data().size() >= 1)
        out = t.raw_data()[0] != 0;
      else
        return false;
      return true;
    }
    if (t.data_type() == onnx::TensorProto::INT64) {
      if (t.int64_data_size())
        out = t.int64_data(0) != 0;
      else if (t.raw_data().size() >= 8)
        out = t.raw_data().find_first_not_of('\0') != std::string::npos;
      else
        return false;
      return true;
    }
    return false;
  };
  for (const auto& t : g.initializer()) {
    bool v;
    if (read(t, v)) c[t.name()] = v;
  }
  for (const auto& n : g.node())
    if (n.op_type() == "Constant" && n.output_size() == 1)
      for (const auto& a : n.attribute())
        if (a.name() == "value" && a.has_t()) {
          bool v;
          if (read(a.t(), v)) c[n.output(0)] = v;
        }
  return c;
}

// The branch's nodes with names made unique under `prefix`; branch outputs become `outs`.
std::vector<onnx::NodeProto> inline_branch(const onnx::GraphProto& branch, const onnx::NodeProto& node,
                                           const std::string& prefix, onnx::GraphProto& main) {
  std::map<std::string, std::string> rename;  // branch-local name -> main-graph name
  for (const auto& t : branch.initializer()) {
    rename[t.name()] = prefix + t.name();
    onnx::TensorProto* copy = main.add_initializer();
    *copy = t;
    copy->set_name(prefix + t.name());
  }
  std::set<std::string> produced;
  for (const auto& n : branch.node())
    for (const auto& o : n.output())
      if (!o.empty()) {
        produced.insert(o);
        rename[o] = prefix + o;
      }
  if (branch.output_size() != node.output_size())
    fail(ErrorCode::InvalidModel, "node '" + node.name() + "' (If): the branch has " +
                                      std::to_string(branch.output_size()) + " outputs, the node " +
                                      std::to_string(node.output_size()));
  std::vector<onnx::NodeProto> out;
  for (int k = 0; k < branch.output_size(); ++k)
    if (produced.count(branch.output(k).name())) rename[branch.output(k).name()] = node.output(k);
  auto mapped = [&](const std::string& s) {
    auto it = rename.find(s);
    return s.empty() || it == rename.end() ? s : it->second;  // outer-scope names stay
  };
  for (const auto& n : branch.node()) {
    onnx::NodeProto c = n;
    c.set_name(prefix + (n.name().empty() ? n.op_type() : n.name()));
    for (int i = 0; i < c.input_size(); ++i) c.set_input(i, mapped(n.input(i)));
    for (int i = 0; i < c.output_size(); ++i) c.set_output(i, mapped(n.output(i)));
    out.push_back(std::move(c));
  }
  // A branch output that no branch node produces (an outer value or a branch initializer).
  for (int k = 0; k < branch.output_size(); ++k) {
    const std::string& b = branch.output(k).name();
    if (produced.count(b)) continue;
    onnx::NodeProto id;
    id.set_op_type("Identity");
    id.set_name(prefix + "output_" + std::to_string(k));
    id.add_input(mapped(b));
    id.add_output(node.output(k));
    out.push_back(std::move(id));
  }
  return out;
}
}  // namespace

int fold_constant_ifs(onnx::GraphProto& g) {
  int folded = 0;
  for (bool changed = true; changed;) {
    changed = false;
    std::map<std::string, bool> conds = constant_conditions(g);
    for (int i = 0; i < g.node_size(); ++i) {
      const onnx::NodeProto& node = g.node(i);
      if (node.op_type() != "If" || node.input_size() < 1 || !conds.count(node.input(0))) continue;
      bool take_then = conds[node.input(0)];
      const onnx::GraphProto* branch = nullptr;
      for (const auto& a : node.attribute())
        if (a.name() == (take_then ? "then_branch" : "else_branch") && a.has_g()) branch = &a.g();
      if (!branch)
        fail(ErrorCode::InvalidModel,
             "node '" + node.name() + "' (If): no " + (take_then ? "then" : "else") + "_branch");
      std::string prefix =
          (node.name().empty() ? "If_" + std::to_string(i) : node.name()) + (take_then ? "/then/" : "/else/");
      onnx::NodeProto if_node = node;  // copy: the graph's node list is rebuilt below
      std::vector<onnx::NodeProto> nodes = inline_branch(*branch, if_node, prefix, g);
      google::protobuf::RepeatedPtrField<onnx::NodeProto> rebuilt;
      for (int j = 0; j < g.node_size(); ++j) {
        if (j == i)
          for (auto& n : nodes) *rebuilt.Add() = std::move(n);
        else
          *rebuilt.Add() = g.node(j);
      }
      g.mutable_node()->Swap(&rebuilt);
      ++folded;
      changed = true;
      break;
    }
  }
  return folded;
}

}  // namespace edgequant
