// bias-correction: empirical bias correction (Nagel et al. 2019; ESP-PPQ's BiasCorrection). For
// each computing op with a bias, in graph order, the mean per output channel of
// y_float - y_quant over calibration batches is added to the bias: the float side is the model as
// given, the quantized side the simulation with every earlier correction applied. Corrected
// biases go through the parameter store and are baked at the end (the float reference keeps the
// original biases).
#include <ATen/ATen.h>

#include <iomanip>
#include <ostream>
#include <set>
#include <sstream>
#include <unordered_map>

#include "core/progress.h"
#include "edgequant/error.h"
#include "ir/op_traits.h"
#include "passes/pipeline.h"

namespace edgequant {

namespace {
// Sum over every dim but the channel dim 1, and the number of elements summed per channel.
std::pair<at::Tensor, int64_t> channel_sums(const at::Tensor& y) {
  at::Tensor f = y.to(at::kDouble);
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < f.dim(); ++d)
    if (d != 1) dims.push_back(d);
  return {f.sum(dims), f.numel() / f.size(1)};
}
}  // namespace

PassResult BiasCorrectionPass::run(QuantContext& ctx) {
  const BiasCorrectionSetting& bs = options(ctx);
  const Graph& g = *ctx.graph;
  auto say = [&](const std::string& line) {
    if (ctx.log) *ctx.log << "bias-correction: " << line << "\n";
  };
  std::set<std::string> interested(bs.interested_layers.begin(), bs.interested_layers.end());
  std::vector<const Op*> order, targets;
  for (const auto& op : g.ops()) {
    order.push_back(op.get());
    bool channel_op = op->is(OpType::Conv) || op->is(OpType::ConvTranspose) || op->is(OpType::Gemm);
    const Value* b = op->input(2);
    const QuantConfig* bc = b ? ctx.plan.find(b->name) : nullptr;
    if (channel_op && b && b->is_constant() && bc && bc->state != QuantState::Float &&
        (interested.empty() || interested.count(op->name)))
      targets.push_back(op.get());
  }
  for (const auto& name : interested) {
    const Op* op = g.find_op(name);
    if (!op || std::find(targets.begin(), targets.end(), op) == targets.end())
      fail(ErrorCode::InvalidSetting, "bias_correction_setting.interested_layers: '" + name +
                                          "' is not a quantized Conv, ConvTranspose or Gemm with a bias");
  }
  if (targets.empty()) {
    say("skipped: no quantized Conv, ConvTranspose or Gemm with a bias");
    return PassResult{};
  }
  ctx.count_walk();
  exec::Executor& ex = ctx.executor();
  quant::QuantSimulator& sim = ctx.simulator();
  quant::ParameterStore& store = ctx.parameters;
  sim.set_parameters(&store);
  at::NoGradGuard no_grad;
  std::vector<analysis::Batch> batches;
  {
    quant::BatchStream all = ctx.batches(ctx.calibration);
    analysis::Batch b;
    while (static_cast<int>(batches.size()) < bs.steps && all.next(b)) batches.push_back(b);
  }
  std::unordered_map<const Op*, size_t> position;
  for (size_t i = 0; i < order.size(); ++i) position[order[i]] = i;
  auto inputs_of = [&](const analysis::Batch& b) {
    exec::ValueTensors env;
    for (size_t i = 0; i < g.inputs.size() && i < b.size(); ++i) env[g.inputs[i]] = b[i];
    return env;
  };
  // Float means of every target's output: one pass per batch (original weights and biases).
  std::unordered_map<const Op*, at::Tensor> float_sum;
  std::unordered_map<const Op*, int64_t> float_count;
  exec::HookList reference = ctx.float_reference_hooks();
  reference.add(exec::ExecHooks{});  // keep outputs intact (no in-place)
  for (const auto& b : batches) {
    exec::ValueTensors env = inputs_of(b);
    ex.run_ops(order, env, &reference);
    for (const Op* op : targets) {
      auto [sum, n] = channel_sums(env.at(op->outputs[0]));
      float_sum[op] = float_sum[op].defined() ? float_sum[op] + sum : sum;
      float_count[op] += n;
    }
  }
  exec::HookList quantized(sim.hooks());
  Progress progress("bias correction", static_cast<int64_t>(targets.size()));
  double before_total = 0, after_total = 0;
  for (const Op* op : targets) {
    std::vector<const Op*> prefix(order.begin(), order.begin() + static_cast<long>(position[op]) + 1);
    auto quant_mean = [&]() {
      at::Tensor sum;
      int64_t count = 0;
      for (const auto& b : batches) {
        exec::ValueTensors env = inputs_of(b);
        ex.run_ops(prefix, env, &quantized);
        auto [s, n] = channel_sums(env.at(op->outputs[0]));
        sum = sum.defined() ? sum + s : s;
        count += n;
      }
      return sum / static_cast<double>(count);
    };
    at::Tensor q_mean = quant_mean();
    at::Tensor f_mean = float_sum.at(op) / static_cast<double>(float_count.at(op));
    at::Tensor delta = f_mean - q_mean;
    const Value* bias = op->input(2);
    at::Tensor p = store.weight_param(bias, ex.constant(bias));
    p.add_(delta.to(p.scalar_type()).to(p.device()));
    before_total += delta.abs().mean().item<double>();
    after_total += (f_mean - quant_mean()).abs().mean().item<double>();
    progress.step();
  }
  progress.finish();
  for (const auto& [v, w] : store.bake(ctx.plan, *ctx.graph, ex)) ctx.float_constants.emplace(v, w);
  quant::refresh_derived_scales(ctx.plan, g);
  std::ostringstream line;
  line << targets.size() << " biases corrected over " << batches.size()
       << " batches; mean |E[y_float - y_quant]| per op " << std::scientific << std::setprecision(3)
       << before_total / targets.size() << " -> " << after_total / targets.size();
  say(line.str());
  PassResult r;
  r.changed = true;
  return r;
}

}  // namespace edgequant
