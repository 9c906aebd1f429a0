// Executor: kernel preparation, slot-indexed environment, freeing of dead intermediates.
#include "exec/executor.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <thread>

#include "exec/batch_split.h"
#include "exec/blas.h"
#include "exec/buffer_cache.h"
#include "exec/kernel.h"
#include "exec/ops/factories.h"
#include "ir/op_traits.h"

namespace edgequant::exec {

namespace {

// ATen 1.13 has CPU float16 kernels for few ops (no conv, matmul, pooling, softmax): an op that
// reads float16 computes in float32 and rounds its float16 outputs, as ONNX Runtime's CPU
// provider does for the ops it has no float16 kernel for. Cast/CastLike convert by themselves.
bool reads_float16(const Op& op) {
  for (const Value* v : op.inputs)
    if (v && v->dtype == DType::Float16) return true;
  return false;
}

Kernel through_float32(const Op& op, Kernel k) {
  if (op.type == "Cast" || op.type == "CastLike" || !reads_float16(op)) return k;
  std::vector<bool> half_out;
  for (const Value* v : op.outputs)
    half_out.push_back(v && (v->dtype == DType::Float16 || v->dtype == DType::Undefined));
  return [k = std::move(k), half_out](const Tensors& in) {
    Tensors wide(in);
    for (at::Tensor& t : wide)
      if (t.defined() && t.scalar_type() == at::kHalf) t = t.to(at::kFloat);
    Tensors out = k(wide);
    for (size_t i = 0; i < out.size() && i < half_out.size(); ++i)
      if (half_out[i] && out[i].defined() && out[i].scalar_type() == at::kFloat) out[i] = out[i].to(at::kHalf);
    return out;
  };
}
struct PreparedOp {
  const Op* op;
  Kernel kernel;
  // Relu/Clip applied in place when nothing else reads the input (no hooks, last use):
  // saves an allocation and a memory pass per activation.
  std::function<void(at::Tensor&)> inplace;
  std::vector<int> in_slots, out_slots;  // -1 for omitted optional values
  std::vector<int> free_after;           // slots whose last reader is this op
  // A fused pair (inference plan): the indices in `ops` of the Conv and its activation, run
  // one after the other instead when a hook watches the value between them.
  int first = -1, second = -1;
};
}  // namespace

struct Executor::Impl {
  const Graph& graph;
  ExecOptions options;
  std::unordered_map<const Value*, int> slot;
  std::vector<const Value*> slot_value;
  std::vector<at::Tensor> constants;  // by slot; undefined for non-constants
  std::vector<PreparedOp> ops;
  std::vector<PreparedOp> fused_ops;  // `ops` with Conv+ReLU/Clip pairs fused, for hook-free runs
  std::unordered_map<const Op*, size_t> op_index;
  std::vector<int> input_slots, output_slots;
  std::vector<bool> is_input;
  bool gradient = false;
  int64_t chunk = 0;  // samples per hook-free run; 0: whole batches

  explicit Impl(const Graph& g, ExecOptions o) : graph(g), options(o) {}

  int slot_of(const Value* v) {
    if (!v) return -1;
    auto it = slot.find(v);
    if (it != slot.end()) return it->second;
    int s = static_cast<int>(slot_value.size());
    slot[v] = s;
    slot_value.push_back(v);
    constants.emplace_back();
    if (v->is_constant()) constants[s] = view_tensor(*v->data).to(options.device);
    return s;
  }

  std::vector<at::Tensor> gather_inputs(const PreparedOp& p, const std::vector<at::Tensor>& env) const {
    std::vector<at::Tensor> in(p.in_slots.size());
    for (size_t i = 0; i < in.size(); ++i) {
      int s = p.in_slots[i];
      if (s < 0) continue;
      in[i] = constants[s].defined() ? constants[s] : env[s];
    }
    return in;
  }

  // The bounds of a Relu, or of a Clip whose bounds are constants; false otherwise.
  bool constant_clamp(const Op& op, int64_t opset, c10::optional<double>& lo, c10::optional<double>& hi) const {
    if (op.outputs.size() != 1 || !op.outputs[0]) return false;
    if (op.is(OpType::Relu)) {
      lo = 0.0;
      return true;
    }
    if (!op.is(OpType::Clip)) return false;
    if (opset < 11) {
      if (op.has_attr("min")) lo = op.attr_float("min", 0);
      if (op.has_attr("max")) hi = op.attr_float("max", 0);
    } else {
      auto bound = [&](size_t i, c10::optional<double>& out) {
        const Value* v = op.input(i);
        if (!v) return true;
        if (!v->is_constant()) return false;
        out = constants[slot.at(v)].item<double>();
        return true;
      };
      if (!bound(1, lo) || !bound(2, hi)) return false;
    }
    return lo || hi;
  }

  std::function<void(at::Tensor&)> inplace_kernel(const Op& op, int64_t opset) const {
    c10::optional<double> lo, hi;
    if (!constant_clamp(op, opset, lo, hi) || reads_float16(op)) return nullptr;
    if (op.is(OpType::Relu)) return [](at::Tensor& t) { t.relu_(); };
    c10::optional<at::Scalar> lo_s, hi_s;
    if (lo) lo_s = *lo;
    if (hi) hi_s = *hi;
    return [lo_s, hi_s](at::Tensor& t) { t.clamp_(lo_s, hi_s); };
  }

  // The plan of hook-free inference runs: each Conv whose only reader is a constant-bound
  // Relu/Clip runs as one kernel with the clamp as a oneDNN post-op (hooks must see the
  // value between the two, so hooked runs keep `ops`).
  void build_fused_plan(int64_t opset, const std::vector<bool>& keep) {
    std::vector<int> readers(slot_value.size(), 0), reader(slot_value.size(), -1);
    for (size_t i = 0; i < ops.size(); ++i)
      for (int s : ops[i].in_slots)
        if (s >= 0) {
          ++readers[s];
          reader[s] = static_cast<int>(i);
        }
    std::vector<bool> absorbed(ops.size(), false);
    fused_ops.clear();
    for (size_t i = 0; i < ops.size(); ++i) {
      if (absorbed[i]) continue;
      const PreparedOp& p = ops[i];
      if (p.op->is(OpType::Conv) && p.out_slots.size() == 1 && p.out_slots[0] >= 0) {
        int s = p.out_slots[0];
        c10::optional<double> lo, hi;
        if (readers[s] == 1 && !keep[s] && fusable_activation(graph, *p.op) == ops[reader[s]].op &&
            constant_clamp(*ops[reader[s]].op, opset, lo, hi)) {
          const PreparedOp& act = ops[reader[s]];
          ClampPostOp clamp{lo ? static_cast<float>(*lo) : std::numeric_limits<float>::lowest(),
                            hi ? static_cast<float>(*hi) : std::numeric_limits<float>::max()};
          fused_ops.push_back(PreparedOp{p.op,
                                         through_float32(*p.op, make_conv_clamped(*p.op, clamp)),
                                         nullptr,
                                         p.in_slots,
                                         act.out_slots,
                                         {},
                                         static_cast<int>(i),
                                         reader[s]});
          absorbed[reader[s]] = true;
          continue;
        }
      }
      fused_ops.push_back(p);
      fused_ops.back().free_after.clear();
    }
    schedule_frees(fused_ops, keep);
  }

  void run_plan(const std::vector<PreparedOp>& plan, std::vector<at::Tensor>& env, const HookList* hooks) {
    for (const PreparedOp& p : plan) {
      if (p.first >= 0 && hooks) {
        // A fused pair under hooks: they see the first op's inputs and the pair's output as the
        // activation's; the inner value, if watched, needs the two ops run apart.
        const PreparedOp& inner = ops[p.first];
        if (hooks->watches(*slot_value[inner.out_slots[0]])) {
          execute(inner, env, hooks);
          execute(ops[p.second], env, hooks);
          env[inner.out_slots[0]].reset();
        } else {
          execute(p, env, hooks, ops[p.second].op);
        }
      } else {
        execute(p, env, hooks);
      }
      for (int s : p.free_after) env[s].reset();
    }
  }

  // Frees each intermediate after its last reader so peak memory stays at the live set.
  void schedule_frees(std::vector<PreparedOp>& plan, const std::vector<bool>& keep) const {
    std::vector<int> last_use(slot_value.size(), -1);
    for (size_t i = 0; i < plan.size(); ++i)
      for (int s : plan[i].in_slots)
        if (s >= 0) last_use[s] = static_cast<int>(i);
    for (size_t s = 0; s < last_use.size(); ++s)
      if (last_use[s] >= 0 && !keep[s] && !constants[s].defined())
        plan[last_use[s]].free_after.push_back(static_cast<int>(s));
  }

  bool can_run_inplace(const PreparedOp& p, const std::vector<at::Tensor>& env, const HookList* hooks) const {
    if (!p.inplace || gradient || (hooks && !hooks->allow_inplace()) || p.in_slots.empty() || p.in_slots[0] < 0)
      return false;
    int s = p.in_slots[0];
    if (constants[s].defined() || !env[s].defined() || is_input[s]) return false;
    for (int f : p.free_after)
      if (f == s) return true;
    return false;
  }

  bool read_anywhere(const Value* v) const {
    return !v->consumers.empty() || std::find(graph.outputs.begin(), graph.outputs.end(), v) != graph.outputs.end();
  }

  // `shown_as`: the op after_op is told produced the outputs (a fused pair's activation).
  void execute(const PreparedOp& p, std::vector<at::Tensor>& env, const HookList* hooks, const Op* shown_as = nullptr) {
    std::vector<at::Tensor> in = gather_inputs(p, env);
    for (size_t i = 0; i < in.size(); ++i)
      if (p.in_slots[i] >= 0 && !in[i].defined())
        fail(ErrorCode::Internal,
             p.op->describe() + ": input '" + slot_value[p.in_slots[i]]->name + "' was not computed");
    bool inplace = can_run_inplace(p, env, hooks);
    if (hooks) hooks->before_op(*p.op, in);
    std::vector<at::Tensor> out;
    run_reporting_as_op(*p.op, [&] {
      if (inplace && in[0].is_same(env[p.in_slots[0]])) {
        p.inplace(in[0]);
        out = {in[0]};
      } else {
        out = p.kernel(in);
      }
    });
    for (size_t i = out.size(); i < p.out_slots.size(); ++i)
      if (p.out_slots[i] >= 0 && read_anywhere(slot_value[p.out_slots[i]]))
        fail(ErrorCode::InvalidModel, p.op->describe() + ": gives " + std::to_string(out.size()) +
                                          " output(s), the model uses output " + std::to_string(i + 1) + " ('" +
                                          slot_value[p.out_slots[i]]->name + "')");
    if (hooks) hooks->after_op(shown_as ? *shown_as : *p.op, out);
    for (size_t i = 0; i < p.out_slots.size() && i < out.size(); ++i)
      if (p.out_slots[i] >= 0) env[p.out_slots[i]] = out[i];
  }
};

Executor::Executor(const Graph& graph, ExecOptions options) : impl_(std::make_unique<Impl>(graph, options)) {
  install_buffer_cache();
  confine_blas_threads();
  // EDGEQUANT_THREADS: the cores a process may use when several share the machine (tune --jobs).
  int threads = options.num_threads > 0 ? options.num_threads : static_cast<int>(std::thread::hardware_concurrency());
  if (const char* env = std::getenv("EDGEQUANT_THREADS"); env && options.num_threads <= 0 && std::atoi(env) > 0)
    threads = std::atoi(env);
  if (threads > 0 && at::get_num_threads() != threads) at::set_num_threads(threads);
  Impl& m = *impl_;
  for (Value* v : graph.inputs) m.input_slots.push_back(m.slot_of(v));
  for (const auto& op : graph.ops()) {
    KernelFactory factory = find_kernel_factory(op->type);
    if (!factory || !(op->domain.empty() || op->domain == "ai.onnx"))
      fail(ErrorCode::Unsupported, op->describe() + ": op type '" + (op->domain.empty() ? "" : op->domain + ".") +
                                       op->type + "' is not supported (opset " + std::to_string(graph.opset) + ")");
    PreparedOp p{op.get(), through_float32(*op, factory(*op, graph.opset)), nullptr, {}, {}, {}};
    for (Value* v : op->inputs) p.in_slots.push_back(m.slot_of(v));
    for (Value* v : op->outputs) p.out_slots.push_back(m.slot_of(v));
    m.op_index[op.get()] = m.ops.size();
    m.ops.push_back(std::move(p));
  }
  for (Value* v : graph.outputs) m.output_slots.push_back(m.slot_of(v));
  // Conv weights in channels_last let oneDNN run NHWC end to end.
  if (options.channels_last)
    for (const auto& p : m.ops)
      if ((p.op->is(OpType::Conv)) && p.in_slots.size() > 1 && p.in_slots[1] >= 0) {
        at::Tensor& w = m.constants[p.in_slots[1]];
        if (w.defined() && w.dim() == 4) w = w.contiguous(at::MemoryFormat::ChannelsLast);
      }
  m.is_input.assign(m.slot_value.size(), false);
  for (int s : m.input_slots) m.is_input[s] = true;
  for (auto& p : m.ops) p.inplace = m.inplace_kernel(*p.op, graph.opset);
  std::vector<bool> keep(m.slot_value.size(), false);
  for (int s : m.output_slots) keep[s] = true;
  m.schedule_frees(m.ops, keep);
  m.build_fused_plan(graph.opset, keep);
  m.chunk = batch_chunk_size(graph, options.chunk_bytes);
}

Executor::~Executor() = default;

const Graph& Executor::graph() const { return impl_->graph; }

void Executor::check_input(const Value* input, const at::Tensor& t) const {
  const std::string where = "input '" + input->name + "'";
  if (input->dtype != DType::Undefined && to_scalar_type(input->dtype) != t.scalar_type())
    fail(ErrorCode::InvalidInput, where + " has dtype " + dtype_name(from_scalar_type(t.scalar_type())) +
                                      ", the model expects " + dtype_name(input->dtype));
  if (!input->shape) return;
  const Shape& want = *input->shape;
  bool ok = static_cast<int64_t>(want.size()) == t.dim();
  for (size_t i = 0; ok && i < want.size(); ++i) ok = want[i] < 0 || want[i] == t.size(static_cast<int64_t>(i));
  if (!ok) {
    Shape got(t.sizes().begin(), t.sizes().end());
    fail(ErrorCode::InvalidInput, where + " has shape " + shape_str(got) + ", the model expects " + shape_str(want));
  }
}

bool HookList::allow_inplace() const {
  for (const auto& h : list_)
    if (!h.allow_inplace) return false;
  return true;
}

bool HookList::takes_inference_plan() const {
  for (const auto& h : list_)
    if (!h.watches || (h.before_op && !h.fusable)) return false;
  return true;
}

bool HookList::watches(const Value& value) const {
  for (const auto& h : list_)
    if (h.watches && h.watches(value)) return true;
  return false;
}

void HookList::after_run() const {
  for (const auto& h : list_)
    if (h.after_run) h.after_run();
}

void HookList::before_op(const Op& op, std::vector<at::Tensor>& inputs) const {
  for (const auto& h : list_)
    if (h.before_op) h.before_op(op, inputs);
}

void HookList::after_op(const Op& op, std::vector<at::Tensor>& outputs) const {
  for (const auto& h : list_)
    if (h.after_op) h.after_op(op, outputs);
}

Executor::InferencePlan Executor::inference_plan() const {
  return {impl_->ops.size() - impl_->fused_ops.size(), impl_->chunk};
}

void Executor::set_gradient_mode(bool enabled) { impl_->gradient = enabled; }
bool Executor::gradient_mode() const { return impl_->gradient; }

std::vector<at::Tensor> Executor::run(const std::vector<at::Tensor>& inputs, const ExecHooks* hooks) {
  if (!hooks) return run(inputs, static_cast<const HookList*>(nullptr));
  HookList list(*hooks);
  return run(inputs, &list);
}

void Executor::run_ops(const std::vector<const Op*>& ops, ValueTensors& env, const ExecHooks* hooks) {
  if (!hooks) return run_ops(ops, env, static_cast<const HookList*>(nullptr));
  HookList list(*hooks);
  run_ops(ops, env, &list);
}

std::vector<at::Tensor> Executor::run(const std::vector<at::Tensor>& inputs, const HookList* hooks) {
  Impl& m = *impl_;
  const Graph& g = m.graph;
  if (inputs.size() != g.inputs.size())
    fail(ErrorCode::InvalidInput,
         "the model has " + std::to_string(g.inputs.size()) + " inputs, got " + std::to_string(inputs.size()));
  at::AutoGradMode grad_mode(m.gradient);
  std::vector<at::Tensor> env(m.slot_value.size());
  for (size_t i = 0; i < inputs.size(); ++i) check_input(g.inputs[i], inputs[i]);
  bool no_grad = !m.gradient && !at::GradMode::is_enabled();
  bool hook_free = !hooks || hooks->empty();
  // Read-only observers and fusable rewriters take the inference plan too (fused pairs split
  // where they watch).
  bool inference = no_grad && (hook_free || hooks->takes_inference_plan());
  if (hook_free) hooks = nullptr;
  int64_t batch = !inputs.empty() && inputs[0].dim() > 0 ? inputs[0].size(0) : 0;
  bool chunked = inference && m.chunk > 0 && batch > m.chunk;
  for (const at::Tensor& t : inputs) chunked = chunked && t.dim() > 0 && t.size(0) == batch;
  if (chunked) {
    std::vector<std::vector<at::Tensor>> parts(m.output_slots.size());
    for (int64_t start = 0; start < batch; start += m.chunk) {
      for (size_t i = 0; i < inputs.size(); ++i)
        env[m.input_slots[i]] = inputs[i].narrow(0, start, std::min(m.chunk, batch - start)).to(m.options.device);
      m.run_plan(m.fused_ops, env, hooks);
      for (size_t o = 0; o < m.output_slots.size(); ++o) parts[o].push_back(env[m.output_slots[o]]);
    }
    std::vector<at::Tensor> out;
    for (auto& p : parts) out.push_back(at::cat(p, 0));
    if (hooks) hooks->after_run();
    return out;
  }
  for (size_t i = 0; i < inputs.size(); ++i) env[m.input_slots[i]] = inputs[i].to(m.options.device);
  m.run_plan(inference ? m.fused_ops : m.ops, env, hooks);
  std::vector<at::Tensor> out;
  for (int s : m.output_slots) out.push_back(m.constants[s].defined() ? m.constants[s] : env[s]);
  if (hooks) hooks->after_run();
  return out;
}

void Executor::run_ops(const std::vector<const Op*>& ops, ValueTensors& env_map, const HookList* hooks) {
  Impl& m = *impl_;
  at::AutoGradMode grad_mode(m.gradient || at::GradMode::is_enabled());
  std::vector<at::Tensor> env(m.slot_value.size());
  for (const auto& kv : env_map) {
    auto it = m.slot.find(kv.first);
    if (it != m.slot.end()) env[it->second] = kv.second;
  }
  for (const Op* op : ops) {
    auto it = m.op_index.find(op);
    if (it == m.op_index.end()) fail(ErrorCode::Internal, op->describe() + " is not in the executor's graph");
    const PreparedOp& p = m.ops[it->second];
    m.execute(p, env, hooks);
    for (size_t i = 0; i < p.out_slots.size(); ++i)
      if (p.out_slots[i] >= 0) env_map[m.slot_value[p.out_slots[i]]] = env[p.out_slots[i]];
  }
}

at::Tensor Executor::constant(const Value* value) const {
  auto it = impl_->slot.find(value);
  if (it == impl_->slot.end() || !impl_->constants[it->second].defined())
    fail(ErrorCode::Internal, "'" + value->name + "' is not a constant of the executor's graph");
  return impl_->constants[it->second];
}

void Executor::set_constant(const Value* value, const at::Tensor& tensor) {
  auto it = impl_->slot.find(value);
  if (it == impl_->slot.end()) fail(ErrorCode::Internal, "'" + value->name + "' is not in the executor's graph");
  impl_->constants[it->second] = tensor.to(impl_->options.device);
}

at::Tensor to_aten(const Tensor& t) { return view_tensor(t).clone(); }

}  // namespace edgequant::exec
