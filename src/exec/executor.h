// The float executor: runs a Graph (or any block of its ops) on LibTorch, CPU or CUDA through
// the same code. Hooks see every op's inputs before it runs and its outputs after, and may
// replace them: calibration observes, quantized simulation fake-quantizes, block-wise training
// substitutes block inputs, all without touching the executor.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "ir/graph.h"

namespace edgequant::exec {

struct ExecOptions {
  c10::Device device = c10::Device(c10::kCPU);
  int num_threads = 0;        // 0: every core
  bool channels_last = true;  // store 4-D conv weights NHWC so oneDNN takes its fast path
  // Hook-free runs of a graph that treats samples independently go through it in chunks whose
  // largest intermediate fits this many bytes (exec/batch_split.h); 0 runs every batch whole.
  size_t chunk_bytes = size_t{20} << 20;
};

using ValueTensors = std::unordered_map<const Value*, at::Tensor>;

struct ExecHooks {
  // Before an op runs; may replace entries of `inputs` (fake-quantized weights, substitutions).
  std::function<void(const Op& op, std::vector<at::Tensor>& inputs)> before_op;
  // After an op runs; may observe or replace its outputs.
  std::function<void(const Op& op, std::vector<at::Tensor>& outputs)> after_op;
  // True when the hooks keep no reference to tensors they were shown (observers that reduce
  // them at once): ReLU/Clip may then overwrite their dead input in place.
  bool allow_inplace = false;
  // Set by read-only observers (no before_op; after_op never replaces a tensor): the values
  // after_op must be shown. Runs whose hooks all set it take the inference plan: an op pair
  // fused there runs fused unless its inner value is watched, and a large batch runs in chunks,
  // so after_op may see a value a few samples at a time; after_run then marks the batch's end.
  std::function<bool(const Value& value)> watches;
  // Set by hooks that rewrite tensors yet need only the values `watches` names (the
  // simulator: weights replaced before a Conv, fake quantization after the values that own a
  // grid). Such runs take the inference plan too: a fused pair whose inner value is not watched
  // runs fused, before_op seeing its first op and inputs, after_op its output as the second op's.
  bool fusable = false;
  // Once at the end of every run() (after the last chunk).
  std::function<void()> after_run;
};

// Hooks combined in order: every before_op runs in list order, then the op, then every after_op
// in list order (calibration observers after a simulator's fake quantization, say).
class HookList {
 public:
  HookList() = default;
  explicit HookList(ExecHooks hooks) { add(std::move(hooks)); }
  HookList& add(ExecHooks hooks) {
    list_.push_back(std::move(hooks));
    return *this;
  }
  bool allow_inplace() const;
  // Every hook sets `watches` and is read-only (no before_op) or `fusable`: the run may take the
  // inference plan (fused pairs, chunks).
  bool takes_inference_plan() const;
  bool watches(const Value& value) const;
  void after_run() const;
  void before_op(const Op& op, std::vector<at::Tensor>& inputs) const;
  void after_op(const Op& op, std::vector<at::Tensor>& outputs) const;
  bool empty() const { return list_.empty(); }

 private:
  std::vector<ExecHooks> list_;
};

class Executor {
 public:
  // Prepares every op's kernel; throws Unsupported/InvalidModel naming the op.
  explicit Executor(const Graph& graph, ExecOptions options = {});
  ~Executor();

  const Graph& graph() const;
  // Inputs in graph-input order; validates dtype and shape. Returns graph outputs in order.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs, const HookList* hooks = nullptr);
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs, const ExecHooks* hooks);
  // Runs `ops` (in the given order). `env` must hold every non-constant value they read that
  // is not produced inside the block; their outputs are added to `env`.
  void run_ops(const std::vector<const Op*>& ops, ValueTensors& env, const HookList* hooks = nullptr);
  void run_ops(const std::vector<const Op*>& ops, ValueTensors& env, const ExecHooks* hooks);
  // Gradient mode: runs record autograd graphs (training passes differentiate through hooks and
  // parameters) and never overwrite tensors in place. Off by default: inference runs under
  // NoGradGuard.
  void set_gradient_mode(bool enabled);
  bool gradient_mode() const;
  // The device tensor of a constant (initializer) value.
  at::Tensor constant(const Value* value) const;
  // Replaces a constant's tensor for later runs (e.g. trained or fake-quantized weights).
  void set_constant(const Value* value, const at::Tensor& tensor);
  // How hook-free runs differ from hooked ones: Conv+ReLU/Clip pairs run as one kernel, and
  // batches larger than `chunk` samples run `chunk` at a time (0: whole).
  struct InferencePlan {
    size_t fused_activations = 0;
    int64_t chunk = 0;
  };
  InferencePlan inference_plan() const;
  // Checks an input tensor against the graph input's dtype and static dims.
  void check_input(const Value* input, const at::Tensor& tensor) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Parses ONNX conformance-style inputs into ATen (copy).
at::Tensor to_aten(const Tensor& t);

}  // namespace edgequant::exec
