// The op registry (ops.def): types, classes and flags and the predicates built on it.
#include "ir/op_traits.h"

#include <unordered_map>

namespace edgequant {

namespace {
const std::unordered_map<std::string, OpTraits>& table() {
  static const std::unordered_map<std::string, OpTraits> t = {
#define EQ_OP(type, cls, float_kernel, int_kernel, flags) {#type, OpTraits{OpClass::cls, static_cast<unsigned>(flags)}},
#include "ir/ops.def"
#undef EQ_OP
  };
  return t;
}
}  // namespace

OpType op_type_of(const std::string& type) {
  static const std::unordered_map<std::string, OpType> by_name = [] {
    std::unordered_map<std::string, OpType> m;
#define EQ_OP(t, cls, float_kernel, int_kernel, flags) m.emplace(#t, OpType::t);
#include "ir/ops.def"
#undef EQ_OP
    return m;
  }();
  auto it = by_name.find(type);
  return it == by_name.end() ? OpType::Unknown : it->second;
}

const char* op_type_name(OpType type) {
  static const char* const names[] = {
      "",
#define EQ_OP(t, cls, float_kernel, int_kernel, flags) #t,
#include "ir/ops.def"
#undef EQ_OP
  };
  return names[static_cast<size_t>(type)];
}

const Op* fusable_activation(const Graph& g, const Op& producer) {
  if (!is_compute_op(producer.type) || producer.outputs.empty() || !producer.outputs[0]) return nullptr;
  const Op* act = sole_consumer(g, producer.outputs[0]);
  if (!act || !op_has(act->type, kFusable) || act->input(0) != producer.outputs[0]) return nullptr;
  return act;
}

bool Op::is(OpType t) const { return type == op_type_name(t); }

const char* op_class_name(OpClass c) {
  switch (c) {
    case OpClass::Compute:
      return "compute";
    case OpClass::DataMovement:
      return "data_movement";
    case OpClass::Aligned:
      return "aligned";
    case OpClass::Elementwise:
      return "elementwise";
    case OpClass::Reduction:
      return "reduction";
    case OpClass::Normalization:
      return "normalization";
    case OpClass::NonNumeric:
      return "non_numeric";
    case OpClass::Other:
      return "other";
  }
  return "?";
}

const OpTraits& op_traits(const std::string& type) {
  static const OpTraits other;
  auto it = table().find(type);
  return it == table().end() ? other : it->second;
}

bool is_compute_op(const std::string& type) { return op_traits(type).op_class == OpClass::Compute; }

bool is_passive_op(const Op& op) {
  if (op_traits(op.type).op_class != OpClass::DataMovement) return false;
  if (op.is(OpType::Resize) || op.is(OpType::Upsample)) return op.attr_string("mode", "nearest") == "nearest";
  return true;
}

bool is_aligned_op(const std::string& type) { return op_traits(type).op_class == OpClass::Aligned; }

bool is_unary_activation(const std::string& type) { return op_traits(type).has(kUnary); }

std::vector<size_t> data_inputs(const Op& op) {
  const OpTraits& t = op_traits(op.type);
  std::vector<size_t> out;
  bool all =
      t.op_class == OpClass::Aligned || (t.op_class == OpClass::Elementwise && !t.has(kUnary) && !op.is(OpType::Where));
  if (all) {
    for (size_t i = 0; i < op.inputs.size(); ++i)
      if (op.inputs[i]) out.push_back(i);
  } else if (op.is(OpType::Where)) {
    out = {1, 2};
  } else if (!op.inputs.empty() && op.inputs[0]) {
    out.push_back(0);
  }
  return out;
}

}  // namespace edgequant
