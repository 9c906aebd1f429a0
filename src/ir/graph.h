// The graph IR that every pass rewrites: Values (tensor edges) produced and consumed by Ops.
// Ops are kept in topological order; Graph methods keep producer/consumer links in sync.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "ir/tensor.h"

namespace edgequant {

struct Op;
class Graph;
enum class OpType : uint16_t;  // ir/op_traits.h

// A tensor edge. Initializers are Values with data; a graph input has no producer and no data.
struct Value {
  std::string name;
  DType dtype = DType::Undefined;
  std::optional<Shape> shape;          // rank known when set; -1 marks an unknown dimension
  std::vector<std::string> dim_names;  // symbolic names (e.g. "batch"), "" for static dims
  std::shared_ptr<const Tensor> data;  // constant (initializer) data when set
  Op* producer = nullptr;
  std::vector<Op*> consumers;  // one entry per use (an op using it twice is listed twice)

  bool is_constant() const { return data != nullptr; }
  bool has_static_shape() const;
};

using Attribute = std::variant<int64_t, float, std::string, std::vector<int64_t>, std::vector<float>, Tensor,
                               std::vector<std::string>>;

struct Op {
  std::string name;
  std::string type;             // ONNX op type, e.g. "Conv"
  std::string domain;           // "" for the default ONNX domain
  std::vector<Value*> inputs;   // nullptr marks an omitted optional input
  std::vector<Value*> outputs;  // nullptr marks an omitted optional output
  std::map<std::string, Attribute> attrs;
  // Subgraph attributes (If's then_branch/else_branch, Loop's and Scan's body), immutable and
  // shared by clones. A subgraph's first Graph::outer_inputs graph inputs are the outer-scope
  // values its nodes read: the op lists them, in the same order, after its own ONNX inputs (If:
  // inputs[0] is the condition); the subgraph's formal inputs follow them.
  std::map<std::string, std::shared_ptr<const Graph>> subgraphs;

  bool has_attr(const std::string& key) const { return attrs.count(key) != 0; }
  int64_t attr_int(const std::string& key, int64_t fallback) const;
  float attr_float(const std::string& key, float fallback) const;
  std::string attr_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const std::string& key, const std::vector<int64_t>& fallback = {}) const;
  std::vector<float> attr_floats(const std::string& key, const std::vector<float>& fallback = {}) const;
  const Tensor* attr_tensor(const std::string& key) const;
  Value* input(size_t i) const { return i < inputs.size() ? inputs[i] : nullptr; }
  bool is(OpType t) const;  // type names this OpType (ir/op_traits.h)
  // "node 'conv1' (Conv)": the context every op-level error carries.
  std::string describe() const;
};

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  std::unique_ptr<Graph> clone() const;

  // Values
  Value* add_value(const std::string& name);  // name must be unique
  Value* add_constant(const std::string& name, Tensor data);
  Value* find_value(const std::string& name) const;
  std::string unique_name(const std::string& base) const;
  const std::vector<std::unique_ptr<Value>>& values() const { return values_; }

  // Ops (appended at the end; call topo_sort() after inserting out of order)
  Op* add_op(const std::string& type, const std::string& name, const std::vector<Value*>& inputs,
             const std::vector<Value*>& outputs);
  void remove_op(Op* op);  // detaches it from its values; values stay
  void set_input(Op* op, size_t index, Value* value);
  // Every use of `from` (op inputs and graph outputs) now uses `to`.
  void replace_uses(Value* from, Value* to);             // graph outputs too
  void rename_value(Value* v, const std::string& name);  // name must be free
  const std::vector<std::unique_ptr<Op>>& ops() const { return ops_; }
  Op* find_op(const std::string& name) const;

  // Orders ops so producers come first; throws InvalidModel naming an op on a cycle.
  void topo_sort();
  // Drops ops whose outputs reach no graph output, and values nobody uses.
  void remove_dead();
  // Structural checks (dangling inputs, cycles, duplicate producers); throws InvalidModel.
  void verify() const;

  std::vector<Value*> inputs;  // runtime inputs (never constants)
  std::vector<Value*> outputs;
  // A subgraph's first `outer_inputs` inputs are the outer-scope values it reads (the op lists
  // them after its own inputs); the rest are its formal inputs (a Loop body's iteration number,
  // condition and carried values; a Scan body's states and slices; none for If branches).
  size_t outer_inputs = 0;
  int64_t opset = 13;
  int64_t ir_version = 8;
  std::string name = "graph";
  std::string producer_name;
  std::map<std::string, int64_t> extra_opsets;  // other domains seen at import

 private:
  std::vector<std::unique_ptr<Value>> values_;
  std::map<std::string, Value*> by_name_;
  std::vector<std::unique_ptr<Op>> ops_;
};

// Pattern helpers for passes.
bool is_graph_output(const Graph& g, const Value* v);
// The consumer when v has exactly one use and is no graph output (safe to fuse into it).
Op* sole_consumer(const Graph& g, const Value* v);
struct ParameterStats {
  size_t count = 0, bytes = 0;  // elements and bytes of the constants some op reads
};
ParameterStats parameter_stats(const Graph& g);

}  // namespace edgequant
