// Graph bookkeeping: value/op ownership, use lists, topological order, verification.
#include "ir/graph.h"

#include <algorithm>
#include <functional>
#include <set>
#include <unordered_map>

#include "edgequant/error.h"

namespace edgequant {

bool Value::has_static_shape() const {
  if (!shape) return false;
  for (int64_t d : *shape)
    if (d < 0) return false;
  return true;
}

template <class T>
static const T* get_attr(const Op& op, const std::string& key) {
  auto it = op.attrs.find(key);
  if (it == op.attrs.end()) return nullptr;
  const T* v = std::get_if<T>(&it->second);
  if (!v) fail(ErrorCode::InvalidModel, op.describe() + ": attribute '" + key + "' has the wrong type");
  return v;
}

int64_t Op::attr_int(const std::string& key, int64_t fallback) const {
  const int64_t* v = get_attr<int64_t>(*this, key);
  return v ? *v : fallback;
}
float Op::attr_float(const std::string& key, float fallback) const {
  auto it = attrs.find(key);
  if (it != attrs.end())
    if (const int64_t* i = std::get_if<int64_t>(&it->second)) return static_cast<float>(*i);
  const float* v = get_attr<float>(*this, key);
  return v ? *v : fallback;
}
std::string Op::attr_string(const std::string& key, const std::string& fallback) const {
  const std::string* v = get_attr<std::string>(*this, key);
  return v ? *v : fallback;
}
std::vector<int64_t> Op::attr_ints(const std::string& key, const std::vector<int64_t>& fallback) const {
  const auto* v = get_attr<std::vector<int64_t>>(*this, key);
  return v ? *v : fallback;
}
std::vector<float> Op::attr_floats(const std::string& key, const std::vector<float>& fallback) const {
  const auto* v = get_attr<std::vector<float>>(*this, key);
  return v ? *v : fallback;
}
const Tensor* Op::attr_tensor(const std::string& key) const { return get_attr<Tensor>(*this, key); }

std::string Op::describe() const { return "node '" + name + "' (" + type + ")"; }

Value* Graph::add_value(const std::string& name) {
  if (by_name_.count(name)) fail(ErrorCode::InvalidModel, "value '" + name + "' is defined twice");
  values_.push_back(std::make_unique<Value>());
  Value* v = values_.back().get();
  v->name = name;
  by_name_[name] = v;
  return v;
}

Value* Graph::add_constant(const std::string& name, Tensor data) {
  Value* v = add_value(name);
  v->dtype = data.dtype();
  v->shape = data.shape();
  v->dim_names.assign(data.shape().size(), "");
  v->data = std::make_shared<const Tensor>(std::move(data));
  return v;
}

Value* Graph::find_value(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::string Graph::unique_name(const std::string& base) const {
  if (!by_name_.count(base) && !find_op(base)) return base;
  for (int i = 1;; ++i) {
    std::string n = base + "_" + std::to_string(i);
    if (!by_name_.count(n) && !find_op(n)) return n;
  }
}

Op* Graph::add_op(const std::string& type, const std::string& name, const std::vector<Value*>& inputs,
                  const std::vector<Value*>& outputs) {
  ops_.push_back(std::make_unique<Op>());
  Op* op = ops_.back().get();
  op->type = type;
  op->name = name;
  op->inputs = inputs;
  op->outputs = outputs;
  for (Value* in : inputs)
    if (in) in->consumers.push_back(op);
  for (Value* out : outputs) {
    if (!out) continue;
    if (out->producer)
      fail(ErrorCode::InvalidModel,
           "value '" + out->name + "' is produced by both " + out->producer->describe() + " and " + op->describe());
    out->producer = op;
  }
  return op;
}

Op* Graph::find_op(const std::string& name) const {
  for (const auto& op : ops_)
    if (op->name == name) return op.get();
  return nullptr;
}

static void erase_one(std::vector<Op*>& list, Op* op) {
  auto it = std::find(list.begin(), list.end(), op);
  if (it != list.end()) list.erase(it);
}

void Graph::remove_op(Op* op) {
  for (Value* in : op->inputs)
    if (in) erase_one(in->consumers, op);
  for (Value* out : op->outputs)
    if (out && out->producer == op) out->producer = nullptr;
  ops_.erase(std::remove_if(ops_.begin(), ops_.end(), [&](const auto& p) { return p.get() == op; }), ops_.end());
}

void Graph::set_input(Op* op, size_t index, Value* value) {
  if (index >= op->inputs.size()) op->inputs.resize(index + 1, nullptr);
  if (op->inputs[index]) erase_one(op->inputs[index]->consumers, op);
  op->inputs[index] = value;
  if (value) value->consumers.push_back(op);
}

void Graph::replace_uses(Value* from, Value* to) {
  std::vector<Op*> users = from->consumers;
  for (Op* op : users)
    for (size_t i = 0; i < op->inputs.size(); ++i)
      if (op->inputs[i] == from) set_input(op, i, to);
  for (Value*& out : outputs)
    if (out == from) out = to;
}

void Graph::rename_value(Value* v, const std::string& name) {
  if (by_name_.count(name)) fail(ErrorCode::InvalidModel, "value '" + name + "' is defined twice");
  by_name_.erase(v->name);
  v->name = name;
  by_name_[name] = v;
}

void Graph::topo_sort() {
  std::unordered_map<const Op*, int> pending;
  for (const auto& op : ops_) {
    int n = 0;
    for (Value* in : op->inputs)
      if (in && in->producer) ++n;
    pending[op.get()] = n;
  }
  std::vector<Op*> ready, order;
  for (const auto& op : ops_)
    if (pending[op.get()] == 0) ready.push_back(op.get());
  // Process in original order where possible so output stays stable across runs.
  std::unordered_map<const Op*, size_t> position;
  for (size_t i = 0; i < ops_.size(); ++i) position[ops_[i].get()] = i;
  while (!ready.empty()) {
    auto it = std::min_element(ready.begin(), ready.end(), [&](Op* a, Op* b) { return position[a] < position[b]; });
    Op* op = *it;
    ready.erase(it);
    order.push_back(op);
    for (Value* out : op->outputs) {
      if (!out) continue;
      for (Op* c : out->consumers)
        if (--pending[c] == 0) ready.push_back(c);
    }
  }
  if (order.size() != ops_.size()) {
    for (const auto& op : ops_)
      if (pending[op.get()] > 0) fail(ErrorCode::InvalidModel, "the graph has a cycle through " + op->describe());
  }
  std::vector<std::unique_ptr<Op>> sorted;
  std::unordered_map<Op*, std::unique_ptr<Op>*> owner;
  for (auto& p : ops_) owner[p.get()] = &p;
  for (Op* op : order) sorted.push_back(std::move(*owner[op]));
  ops_ = std::move(sorted);
}

void Graph::remove_dead() {
  std::set<const Op*> live;
  std::vector<const Value*> stack(outputs.begin(), outputs.end());
  while (!stack.empty()) {
    const Value* v = stack.back();
    stack.pop_back();
    if (!v || !v->producer || live.count(v->producer)) continue;
    live.insert(v->producer);
    for (Value* in : v->producer->inputs) stack.push_back(in);
  }
  std::vector<Op*> dead;
  for (const auto& op : ops_)
    if (!live.count(op.get())) dead.push_back(op.get());
  for (Op* op : dead) remove_op(op);
  std::set<const Value*> keep(inputs.begin(), inputs.end());
  keep.insert(outputs.begin(), outputs.end());
  std::vector<std::unique_ptr<Value>> kept;
  for (auto& v : values_) {
    if (keep.count(v.get()) || v->producer || !v->consumers.empty())
      kept.push_back(std::move(v));
    else
      by_name_.erase(v->name);
  }
  values_ = std::move(kept);
}

void Graph::verify() const {
  std::set<const Value*> available(inputs.begin(), inputs.end());
  for (const auto& v : values_)
    if (v->is_constant()) available.insert(v.get());
  for (const auto& op : ops_) {
    for (Value* in : op->inputs) {
      if (!in) continue;
      if (!available.count(in)) {
        if (in->producer)
          fail(ErrorCode::InvalidModel,
               op->describe() + " uses '" + in->name +
                   "' before it is produced (the graph is not in topological order or has a cycle)");
        fail(ErrorCode::InvalidModel, op->describe() + " reads '" + in->name +
                                          "', which is neither a graph input, an initializer nor any node's output");
      }
    }
    for (Value* out : op->outputs)
      if (out) available.insert(out);
  }
  for (const Value* out : outputs)
    if (!available.count(out)) fail(ErrorCode::InvalidModel, "graph output '" + out->name + "' is never produced");
}

std::unique_ptr<Graph> Graph::clone() const {
  auto g = std::make_unique<Graph>();
  std::unordered_map<const Value*, Value*> map;
  for (const auto& v : values_) {
    Value* c = g->add_value(v->name);
    c->dtype = v->dtype;
    c->shape = v->shape;
    c->dim_names = v->dim_names;
    c->data = v->data;  // constant data is immutable and shared
    map[v.get()] = c;
  }
  auto m = [&](Value* v) { return v ? map.at(v) : nullptr; };
  for (const auto& op : ops_) {
    std::vector<Value*> ins, outs;
    for (Value* v : op->inputs) ins.push_back(m(v));
    for (Value* v : op->outputs) outs.push_back(m(v));
    Op* c = g->add_op(op->type, op->name, ins, outs);
    c->domain = op->domain;
    c->attrs = op->attrs;
    c->subgraphs = op->subgraphs;
  }
  for (Value* v : inputs) g->inputs.push_back(m(v));
  for (Value* v : outputs) g->outputs.push_back(m(v));
  g->outer_inputs = outer_inputs;
  g->opset = opset;
  g->ir_version = ir_version;
  g->name = name;
  g->producer_name = producer_name;
  g->extra_opsets = extra_opsets;
  return g;
}

Op* sole_consumer(const Graph& g, const Value* v) {
  if (v->consumers.size() != 1 || is_graph_output(g, v)) return nullptr;
  return v->consumers[0];
}

bool is_graph_output(const Graph& g, const Value* v) {
  return std::find(g.outputs.begin(), g.outputs.end(), v) != g.outputs.end();
}

ParameterStats parameter_stats(const Graph& g) {
  ParameterStats s;
  for (const auto& v : g.values())
    if (v->is_constant() && !v->consumers.empty()) {
      s.count += static_cast<size_t>(v->data->numel());
      s.bytes += v->data->nbytes();
    }
  return s;
}

}  // namespace edgequant
