// Block-wise training of quantization parameters, shared by the tqt pass (Trained Quantization
// Thresholds, Jain et al. 2020; ESP-PPQ's TrainedQuantizationThresholdPass: power-of-two scales as
// alpha = log2 s) and the lsq pass (Learned Step Size, Esser et al. 2020: float scales with
// gradient scaling 1/sqrt(N * Qp)) and the adaround pass (AdaRound, Nagel et al. 2020, as
// BRECQ-style block reconstruction: each weight learns to round up or down, scales frozen, with
// the annealed rounding regulariser; hard rounding at the end). The only file with optimiser
// headers. The graph is cut into blocks that start at a computing op
// and hold up to block_size ops. Block inputs come from the quantized graph (earlier blocks as
// trained), targets from the float graph; both are cached once per block boundary and freed
// after their last reader. Trained: the weights of the block's computing ops and alpha = log2(s)
// of every symmetric power-of-two scale the block owns, through the parameter store (forward
// with the straight-through exponent round(alpha)). Loss = MSE(block output, float target)
// + gamma * MSE(block output, float block on the same quantized inputs)
// + int_lambda * mean((alpha - round alpha)^2). Adam, one cached batch per step, cycling. A
// block whose loss over the cache got worse is rolled back bit for bit; at the end the scales
// are baked as exact powers of two and the weights written back.
#include "passes/pipeline/block_training.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/optim/adam.h>

#include <chrono>
#include <cmath>
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
using Clock = std::chrono::steady_clock;
using Cache = std::unordered_map<const Value*, std::vector<at::Tensor>>;  // per cached batch

struct Block {
  std::vector<const Op*> ops;
  std::vector<const Value*> inputs, outputs;  // boundary values
  bool trains = false;                        // holds an interested computing op
};

std::vector<Block> cut_blocks(const Graph& g, int block_size, const std::set<std::string>& interested) {
  std::vector<Block> blocks(1);
  for (const auto& op : g.ops()) {
    if (is_compute_op(op->type) && static_cast<int>(blocks.back().ops.size()) >= block_size) blocks.emplace_back();
    if (is_compute_op(op->type) && !blocks.back().ops.empty() && !is_compute_op(blocks.back().ops.front()->type))
      blocks.emplace_back();  // a block starts at a computing op
    blocks.back().ops.push_back(op.get());
    if (is_compute_op(op->type) && (interested.empty() || interested.count(op->name))) blocks.back().trains = true;
  }
  std::set<const Value*> graph_outputs(g.outputs.begin(), g.outputs.end());
  for (Block& b : blocks) {
    std::set<const Op*> inside(b.ops.begin(), b.ops.end());
    std::set<const Value*> seen_in, seen_out;
    for (const Op* op : b.ops) {
      for (const Value* v : op->inputs)
        if (v && !v->is_constant() && !(v->producer && inside.count(v->producer)) && seen_in.insert(v).second)
          b.inputs.push_back(v);
      for (const Value* v : op->outputs) {
        if (!v) continue;
        bool escapes = graph_outputs.count(v) != 0;
        for (const Op* c : v->consumers) escapes = escapes || !inside.count(c);
        if (escapes && seen_out.insert(v).second) b.outputs.push_back(v);
      }
    }
  }
  if (blocks.front().ops.empty()) blocks.erase(blocks.begin());
  return blocks;
}

bool trainable_scale(const QuantConfig* c, BlockTraining mode) {
  if (!c || c->state != QuantState::Quantized || c->custom_scale || !c->has_scale()) return false;
  if (mode == BlockTraining::Lsq) return c->scale_kind == ScaleKind::Float;
  return c->scale_kind == ScaleKind::PowerOfTwo && c->symmetric;
}

// Per-sample element count of a value (LSQ's N): static dims after the batch dim, or the
// constant's size.
double element_count(const Value* v) {
  if (v->is_constant()) return static_cast<double>(v->data->numel());
  double n = 1;
  if (v->shape)
    for (size_t d = 1; d < v->shape->size(); ++d) n *= (*v->shape)[d] > 0 ? static_cast<double>((*v->shape)[d]) : 1.0;
  return n;
}

double tensor_mib(const at::Tensor& t) { return static_cast<double>(t.nbytes()) / (1024.0 * 1024.0); }
}  // namespace

PassResult train_blocks(QuantContext& ctx, const TqtSetting& ts, BlockTraining mode) {
  const Graph& g = *ctx.graph;
  const char* pass = mode == BlockTraining::Tqt ? "tqt" : mode == BlockTraining::Lsq ? "lsq" : "adaround";
  const std::string section = mode == BlockTraining::AdaRound ? std::string("blockwise_reconstruction_setting")
                                                              : std::string(pass) + "_optimization_setting";
  const bool adaround = mode == BlockTraining::AdaRound;
  auto say = [&](const std::string& line) {
    if (ctx.log) *ctx.log << pass << ": " << line << "\n";
  };
  std::set<std::string> interested(ts.interested_layers.begin(), ts.interested_layers.end());
  std::vector<std::string> compute_names;
  for (const auto& op : g.ops())
    if (is_compute_op(op->type)) compute_names.push_back(op->name);
  for (const auto& name : interested)
    if (std::find(compute_names.begin(), compute_names.end(), name) == compute_names.end()) {
      std::string valid;
      for (const auto& n : compute_names) valid += (valid.empty() ? "" : ", ") + n;
      fail(ErrorCode::InvalidSetting,
           section + ".interested_layers: '" + name + "' is not a computing op (valid: " + valid + ")");
    }
  if (compute_names.empty()) {
    say("skipped: the model has no computing op (Conv, ConvTranspose, Gemm, MatMul)");
    return PassResult{};
  }
  if (mode == BlockTraining::Tqt && ctx.target.scale_kind != ScaleKind::PowerOfTwo) {
    say("skipped: target '" + ctx.target.name + "' has float scales; TQT trains power-of-two thresholds (use lsq)");
    return PassResult{};
  }
  if (mode == BlockTraining::Lsq && ctx.target.scale_kind == ScaleKind::PowerOfTwo)
    fail(ErrorCode::InvalidSetting,
         "lsq_optimization: target '" + ctx.target.name +
             "' needs power-of-two scales, which LSQ's learned float scales would break (use tqt_optimization)");
  c10::Device device = ts.collecting_device == "cuda" ? c10::Device(c10::kCUDA) : c10::Device(c10::kCPU);
  if (device.is_cuda() && !at::hasCUDA())
    fail(ErrorCode::InvalidSetting, section + ".collecting_device is cuda, but no CUDA device is available");
  auto start = Clock::now();
  exec::Executor& ex = ctx.executor();
  quant::QuantSimulator& sim = ctx.simulator();
  quant::ParameterStore& store = ctx.parameters;
  sim.set_parameters(&store);
  std::vector<Block> blocks = cut_blocks(g, ts.block_size, interested);
  ctx.count_walk(2);

  // Last block reading each boundary value (graph outputs are never read again here).
  std::unordered_map<const Value*, size_t> last_reader;
  for (size_t k = 0; k < blocks.size(); ++k)
    for (const Value* v : blocks[k].inputs) last_reader[v] = k;

  // The calibration batches, as many as the cache limit allows (measured on the first batch:
  // the largest live set of boundary values, twice: quantized inputs and float targets).
  at::NoGradGuard no_grad;
  std::vector<analysis::Batch> batches;
  quant::BatchStream stream = ctx.batches(ctx.calibration);
  analysis::Batch b;
  while (stream.next(b)) batches.push_back(b);
  double per_batch_mib = 0;
  {
    exec::ValueTensors env;
    for (size_t i = 0; i < g.inputs.size() && i < batches[0].size(); ++i) env[g.inputs[i]] = batches[0][i];
    std::vector<const Op*> order;
    for (const auto& op : g.ops()) order.push_back(op.get());
    ex.run_ops(order, env);
    std::set<const Value*> live;
    for (size_t k = 0; k < blocks.size(); ++k) {
      for (const Value* v : blocks[k].inputs) live.insert(v);
      for (const Value* v : blocks[k].outputs) live.insert(v);
      double mib = 0;
      for (const Value* v : live)
        if (env.count(v)) mib += tensor_mib(env.at(v));
      per_batch_mib = std::max(per_batch_mib, 2 * mib);
      for (auto it = live.begin(); it != live.end();) {
        auto lr = last_reader.find(*it);
        it = (lr == last_reader.end() || lr->second <= k) ? live.erase(it) : std::next(it);
      }
    }
  }
  size_t n_cached = std::max<size_t>(
      1, std::min(batches.size(), static_cast<size_t>(ts.cache_limit_mib / std::max(per_batch_mib, 1e-9))));
  batches.resize(n_cached);
  std::ostringstream head;
  head << blocks.size() << " blocks, " << ts.steps << " steps each, lr " << ts.lr << std::fixed << std::setprecision(1)
       << ", " << n_cached << " cached batches (peak cache " << per_batch_mib * n_cached << " MiB, limit "
       << ts.cache_limit_mib << " MiB, on " << ts.collecting_device << ")";
  say(head.str());

  Cache qcache, fcache;
  for (size_t i = 0; i < g.inputs.size(); ++i)
    for (const auto& batch : batches) {
      qcache[g.inputs[i]].push_back(batch[i].to(device));
      fcache[g.inputs[i]].push_back(batch[i].to(device));
    }
  exec::HookList quantized(sim.hooks());
  // The float side: the model as given (an earlier pass may have changed weights or biases), and
  // no in-place writes into cached tensors.
  exec::HookList plain = ctx.float_reference_hooks();
  plain.add(exec::ExecHooks{});
  auto run_block = [&](const Block& blk, const Cache& cache, size_t i, const exec::HookList* hooks) {
    exec::ValueTensors env;
    for (const Value* v : blk.inputs) env[v] = cache.at(v)[i].to(at::kCPU);
    ex.run_ops(blk.ops, env, hooks);
    std::vector<at::Tensor> out;
    for (const Value* v : blk.outputs) out.push_back(env.at(v));
    return out;
  };
  auto mse = [](const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& t) {
    at::Tensor l = at::zeros({}, at::kFloat);
    for (size_t j = 0; j < a.size(); ++j)
      if (at::isFloatingType(a[j].scalar_type())) l = l + (a[j] - t[j].to(a[j].device())).pow(2).mean();
    return l;
  };
  auto targets = [&](const Block& blk, size_t i) {
    std::vector<at::Tensor> t;
    for (const Value* v : blk.outputs) t.push_back(fcache.at(v)[i]);
    return t;
  };
  auto cache_loss = [&](const Block& blk) {
    double total = 0;
    for (size_t i = 0; i < batches.size(); ++i)
      total += mse(run_block(blk, qcache, i, &quantized), targets(blk, i)).item<double>();
    return total / static_cast<double>(batches.size());
  };

  int trained = 0, rolled_back = 0;
  int64_t steps_total = 0;
  Progress progress(pass, static_cast<int64_t>(blocks.size()) * std::max(ts.steps, 1));
  for (size_t k = 0; k < blocks.size(); ++k) {
    const Block& blk = blocks[k];
    // Float targets of this block (from float inputs), before anything else uses the cache.
    for (size_t i = 0; i < batches.size(); ++i) {
      std::vector<at::Tensor> f = run_block(blk, fcache, i, &plain);
      for (size_t j = 0; j < blk.outputs.size(); ++j) fcache[blk.outputs[j]].push_back(f[j].to(device));
    }
    std::vector<at::Tensor> alphas, params;
    // LSQ scales the scale's gradient by 1/sqrt(N * Qp) (N: elements per sample).
    auto scale_param = [&](const Value* v, const QuantConfig& c) {
      double g =
          mode == BlockTraining::Lsq ? 1.0 / std::sqrt(element_count(v) * static_cast<double>(c.quant_max)) : 1.0;
      return store.scale_param(v->name, c, g);
    };
    if (blk.trains && ts.steps > 0) {
      for (const Op* op : blk.ops) {
        if (is_compute_op(op->type) && (interested.empty() || interested.count(op->name)) && op->input(1) &&
            op->input(1)->is_constant()) {
          const Value* w = op->input(1);
          const QuantConfig* wc = ctx.plan.find(w->name);
          if (adaround) {
            if (wc && wc->state == QuantState::Quantized)
              params.push_back(store.rounding_param(w, ex.constant(w), *wc));
            continue;  // scales and biases frozen
          }
          if (wc && wc->state == QuantState::Quantized) params.push_back(store.weight_param(w, ex.constant(w)));
          const Value* bias = op->input(2);
          const QuantConfig* bc = bias ? ctx.plan.find(bias->name) : nullptr;
          if (ts.train_bias && bc && bias->is_constant() && bc->state != QuantState::Float)
            params.push_back(store.weight_param(bias, ex.constant(bias)));
          if (ts.is_scale_trainable && trainable_scale(wc, mode)) alphas.push_back(scale_param(w, *wc));
        }
        if (!ts.is_scale_trainable || adaround) continue;
        for (const Value* v : op->outputs)
          if (v && trainable_scale(ctx.plan.find(v->name), mode))
            alphas.push_back(scale_param(v, *ctx.plan.find(v->name)));
      }
    }
    if (!params.empty() || !alphas.empty()) {
      auto t0 = Clock::now();
      quant::ParameterStore::Snapshot before_params = store.snapshot();
      store.set_hard_rounding(true);  // learned roundings are judged as the chip will round
      double before = cache_loss(blk);
      // Two parameter groups: weights at lr, log2 scales at scale_lr (default lr, as ESP-PPQ).
      std::vector<torch::optim::OptimizerParamGroup> groups;
      if (!params.empty()) groups.emplace_back(params, std::make_unique<torch::optim::AdamOptions>(ts.lr));
      if (!alphas.empty())
        groups.emplace_back(alphas, std::make_unique<torch::optim::AdamOptions>(ts.scale_lr > 0 ? ts.scale_lr : ts.lr));
      torch::optim::Adam adam(std::move(groups), torch::optim::AdamOptions(ts.lr));
      auto t_train = Clock::now();
      ex.set_gradient_mode(true);
      store.set_hard_rounding(false);
      std::vector<const Value*> rounded;
      if (adaround)
        for (const Op* op : blk.ops)
          if (op->input(1) && store.has_rounding(op->input(1))) rounded.push_back(op->input(1));
      for (int step = 0; step < ts.steps; ++step) {
        size_t i = static_cast<size_t>(step) % batches.size();
        at::AutoGradMode on(true);
        adam.zero_grad();
        std::vector<at::Tensor> out = run_block(blk, qcache, i, &quantized);
        at::Tensor loss = mse(out, targets(blk, i));
        if (ts.gamma > 0) {
          std::vector<at::Tensor> own;
          {
            at::NoGradGuard ng;
            own = run_block(blk, qcache, i, &plain);
          }
          loss = loss + ts.gamma * mse(out, own);
        }
        double t = static_cast<double>(step) / std::max(ts.steps, 1);
        if (adaround && ts.reg_lambda > 0 && t >= ts.warmup) {
          double beta = ts.beta_end + (ts.beta_start - ts.beta_end) * (1.0 - (t - ts.warmup) / (1.0 - ts.warmup));
          for (const Value* v : rounded)
            loss = loss + ts.reg_lambda * (1 - (2 * store.rounding_h(v) - 1).abs().pow(beta)).mean();
        }
        if (ts.int_lambda > 0 && mode == BlockTraining::Tqt)
          for (const at::Tensor& a : alphas) loss = loss + ts.int_lambda * (a - at::round(a).detach()).pow(2).mean();
        loss.backward();
        adam.step();
        progress.step();
      }
      ex.set_gradient_mode(false);
      store.set_hard_rounding(true);
      double train_s = std::chrono::duration<double>(Clock::now() - t_train).count();
      steps_total += ts.steps;
      double after = cache_loss(blk);
      bool rollback = !(after < before) || !std::isfinite(after);
      double block_s = std::chrono::duration<double>(Clock::now() - t0).count();
      if (rollback) {
        store.restore(before_params);
        ++rolled_back;
      }
      ++trained;
      std::ostringstream line;
      line << "block " << k + 1 << "/" << blocks.size() << " (" << blk.ops.front()->name << ", " << blk.ops.size()
           << " ops): loss " << std::scientific << std::setprecision(3) << before << " -> " << after
           << (rollback ? " (rolled back)" : "") << std::fixed << std::setprecision(2) << ", " << block_s << " s, "
           << std::setprecision(1) << ts.steps / std::max(train_s, 1e-9) << " steps/s";
      say(line.str());
    } else {
      progress.step(std::max(ts.steps, 1));
    }
    // Quantized outputs of this block (as trained) feed later blocks; dead values are freed.
    for (size_t i = 0; i < batches.size(); ++i) {
      std::vector<at::Tensor> q = run_block(blk, qcache, i, &quantized);
      for (size_t j = 0; j < blk.outputs.size(); ++j) qcache[blk.outputs[j]].push_back(q[j].detach().to(device));
    }
    for (Cache* c : {&qcache, &fcache})
      for (auto it = c->begin(); it != c->end();) {
        auto lr = last_reader.find(it->first);
        it = (lr == last_reader.end() || lr->second <= k) ? c->erase(it) : std::next(it);
      }
  }
  progress.finish();
  // The float reference stays the model as given: analysis compares against the original weights.
  for (const auto& [v, w] : store.bake(ctx.plan, *ctx.graph, ex)) ctx.float_constants.emplace(v, w);
  quant::refresh_derived_scales(ctx.plan, g);
  ctx.count_walk();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::ostringstream done;
  done << std::fixed << std::setprecision(2) << trained << " blocks trained (" << rolled_back << " rolled back), "
       << steps_total << " steps in " << secs << " s, " << at::get_num_threads() << " threads";
  say(done.str());
  PassResult r;
  r.changed = trained > rolled_back;
  return r.invalidate(Analysis::ErrorReport).invalidate(Analysis::LoweredForm);
}

PassResult TqtPass::run(QuantContext& ctx) { return train_blocks(ctx, ctx.setting().tqt, BlockTraining::Tqt); }

PassResult LsqPass::run(QuantContext& ctx) { return train_blocks(ctx, ctx.setting().lsq, BlockTraining::Lsq); }

PassResult AdaRoundPass::run(QuantContext& ctx) {
  return train_blocks(ctx, ctx.setting().adaround, BlockTraining::AdaRound);
}

}  // namespace edgequant
