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
#include "exec/gradient_kernels.h"
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

double tensor_mib(const at::Tensor& t) { return static_cast<double>(t.nbytes()) / (1024.0 * 1024.0); }
}  // namespace

bool trainable_scale(const QuantConfig* c, BlockTraining mode) {
  if (!c || c->state != QuantState::Quantized || c->custom_scale || !c->has_scale()) return false;
  if (mode == BlockTraining::Lsq) return c->scale_kind == ScaleKind::Float;
  return c->scale_kind == ScaleKind::PowerOfTwo && c->symmetric;
}

double element_count(const Value* v) {
  if (v->is_constant()) return static_cast<double>(v->data->numel());
  double n = 1;
  if (v->shape)
    for (size_t d = 1; d < v->shape->size(); ++d) n *= (*v->shape)[d] > 0 ? static_cast<double>((*v->shape)[d]) : 1.0;
  return n;
}

namespace {
// One run of block training: the setting's checks, the cached boundary values, then per block
// its float targets, its parameters, the training loop and the quantized outputs for the next.
class BlockTrainer {
 public:
  BlockTrainer(QuantContext& ctx, const TqtSetting& ts, BlockTraining mode)
      : ctx_(ctx),
        g_(*ctx.graph),
        ts_(ts),
        mode_(mode),
        adaround_(mode == BlockTraining::AdaRound),
        pass_(mode == BlockTraining::Tqt   ? "tqt"
              : mode == BlockTraining::Lsq ? "lsq"
                                           : "adaround"),
        section_(adaround_ ? std::string("blockwise_reconstruction_setting")
                           : std::string(pass_) + "_optimization_setting"),
        interested_(ts.interested_layers.begin(), ts.interested_layers.end()) {}

  PassResult run() {
    if (!applies()) return PassResult{};
    c10::Device device = ts_.collecting_device == "cuda" ? c10::Device(c10::kCUDA) : c10::Device(c10::kCPU);
    if (device.is_cuda() && !at::hasCUDA())
      fail(ErrorCode::InvalidSetting, section_ + ".collecting_device is cuda, but no CUDA device is available");
    device_ = device;
    auto start = Clock::now();
    ex_ = &ctx_.executor();
    quant::QuantSimulator& sim = ctx_.simulator();
    sim.set_parameters(&ctx_.parameters);
    blocks_ = cut_blocks(g_, ts_.block_size, interested_);
    ctx_.count_walk(2);
    // Last block reading each boundary value (graph outputs are never read again here).
    for (size_t k = 0; k < blocks_.size(); ++k)
      for (const Value* v : blocks_[k].inputs) last_reader_[v] = k;

    at::NoGradGuard no_grad;
    cache_batches();
    quantized_ = exec::HookList(sim.hooks());
    // The float side: the model as given (an earlier pass may have changed weights or biases), and
    // no in-place writes into cached tensors.
    plain_ = ctx_.float_reference_hooks();
    plain_.add(exec::ExecHooks{});

    Progress progress(pass_, static_cast<int64_t>(blocks_.size()) * std::max(ts_.steps, 1));
    for (size_t k = 0; k < blocks_.size(); ++k) {
      const Block& blk = blocks_[k];
      // Float targets of this block (from float inputs), before anything else uses the cache.
      for (size_t i = 0; i < batches_.size(); ++i) {
        std::vector<at::Tensor> f = run_block(blk, fcache_, i, &plain_);
        for (size_t j = 0; j < blk.outputs.size(); ++j) fcache_[blk.outputs[j]].push_back(f[j].to(device_));
      }
      std::vector<at::Tensor> alphas, params;
      if (blk.trains && ts_.steps > 0) collect_parameters(blk, params, alphas);
      if (!params.empty() || !alphas.empty())
        train(blk, k, params, alphas, progress);
      else
        progress.step(std::max(ts_.steps, 1));
      advance(blk, k);
    }
    progress.finish();
    // The float reference stays the model as given: analysis compares against the original weights.
    for (const auto& [v, w] : ctx_.parameters.bake(ctx_.plan, *ctx_.graph, *ex_)) ctx_.float_constants.emplace(v, w);
    quant::refresh_derived_scales(ctx_.plan, g_);
    ctx_.count_walk();
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    std::ostringstream done;
    done << std::fixed << std::setprecision(2) << trained_ << " blocks trained (" << rolled_back_ << " rolled back), "
         << steps_total_ << " steps in " << secs << " s, " << at::get_num_threads() << " threads";
    say(done.str());
    PassResult r;
    r.changed = trained_ > rolled_back_;
    return r;
  }

 private:
  void say(const std::string& line) const {
    if (ctx_.log) *ctx_.log << pass_ << ": " << line << "\n";
  }

  // Validates interested_layers; false (with a message) when the pass has nothing to do here.
  bool applies() const {
    std::vector<std::string> compute_names;
    for (const auto& op : g_.ops())
      if (is_compute_op(op->type)) compute_names.push_back(op->name);
    for (const auto& name : interested_)
      if (std::find(compute_names.begin(), compute_names.end(), name) == compute_names.end()) {
        std::string valid;
        for (const auto& n : compute_names) valid += (valid.empty() ? "" : ", ") + n;
        fail(ErrorCode::InvalidSetting,
             section_ + ".interested_layers: '" + name + "' is not a computing op (valid: " + valid + ")");
      }
    if (compute_names.empty()) {
      say("skipped: the model has no computing op (Conv, ConvTranspose, Gemm, MatMul)");
      return false;
    }
    if (mode_ == BlockTraining::Tqt && ctx_.target.scale_kind != ScaleKind::PowerOfTwo) {
      say("skipped: target '" + ctx_.target.name + "' has float scales; TQT trains power-of-two thresholds (use lsq)");
      return false;
    }
    if (mode_ == BlockTraining::Lsq && ctx_.target.scale_kind == ScaleKind::PowerOfTwo)
      fail(ErrorCode::InvalidSetting,
           "lsq_optimization: target '" + ctx_.target.name +
               "' needs power-of-two scales, which LSQ's learned float scales would break (use tqt_optimization)");
    return true;
  }

  // The calibration batches, as many as the cache limit allows (measured on the first batch: the
  // largest live set of boundary values, twice: quantized inputs and float targets), as the
  // graph inputs' entries of both caches.
  void cache_batches() {
    quant::BatchStream stream = ctx_.batches(ctx_.calibration);
    analysis::Batch b;
    while (stream.next(b)) batches_.push_back(b);
    double per_batch_mib = 0;
    {
      exec::ValueTensors env;
      for (size_t i = 0; i < g_.inputs.size() && i < batches_[0].size(); ++i) env[g_.inputs[i]] = batches_[0][i];
      std::vector<const Op*> order;
      for (const auto& op : g_.ops()) order.push_back(op.get());
      ex_->run_ops(order, env);
      std::set<const Value*> live;
      for (size_t k = 0; k < blocks_.size(); ++k) {
        for (const Value* v : blocks_[k].inputs) live.insert(v);
        for (const Value* v : blocks_[k].outputs) live.insert(v);
        double mib = 0;
        for (const Value* v : live)
          if (env.count(v)) mib += tensor_mib(env.at(v));
        per_batch_mib = std::max(per_batch_mib, 2 * mib);
        for (auto it = live.begin(); it != live.end();) {
          auto lr = last_reader_.find(*it);
          it = (lr == last_reader_.end() || lr->second <= k) ? live.erase(it) : std::next(it);
        }
      }
    }
    size_t n_cached = std::max<size_t>(
        1, std::min(batches_.size(), static_cast<size_t>(ts_.cache_limit_mib / std::max(per_batch_mib, 1e-9))));
    batches_.resize(n_cached);
    std::ostringstream head;
    head << blocks_.size() << " blocks, " << ts_.steps << " steps each, lr " << ts_.lr << std::fixed
         << std::setprecision(1) << ", " << n_cached << " cached batches (peak cache " << per_batch_mib * n_cached
         << " MiB, limit " << ts_.cache_limit_mib << " MiB, on " << ts_.collecting_device << ")";
    say(head.str());
    for (size_t i = 0; i < g_.inputs.size(); ++i)
      for (const auto& batch : batches_) {
        qcache_[g_.inputs[i]].push_back(batch[i].to(device_));
        fcache_[g_.inputs[i]].push_back(batch[i].to(device_));
      }
  }

  std::vector<at::Tensor> run_block(const Block& blk, const Cache& cache, size_t i, const exec::HookList* hooks) {
    exec::ValueTensors env;
    for (const Value* v : blk.inputs) env[v] = cache.at(v)[i].to(at::kCPU);
    ex_->run_ops(blk.ops, env, hooks);
    std::vector<at::Tensor> out;
    for (const Value* v : blk.outputs) out.push_back(env.at(v));
    return out;
  }
  static at::Tensor mse(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& t) {
    at::Tensor l = at::zeros({}, at::kFloat);
    for (size_t j = 0; j < a.size(); ++j)
      if (at::isFloatingType(a[j].scalar_type())) l = l + exec::mse_loss(a[j], t[j].to(a[j].device()));
    return l;
  }
  std::vector<at::Tensor> targets(const Block& blk, size_t i) const {
    std::vector<at::Tensor> t;
    for (const Value* v : blk.outputs) t.push_back(fcache_.at(v)[i]);
    return t;
  }
  // Mean loss over the cached batches; the quantized outputs are kept in `outputs` when given
  // (advance() takes them instead of running the block again).
  double cache_loss(const Block& blk, std::vector<std::vector<at::Tensor>>* outputs = nullptr) {
    double total = 0;
    for (size_t i = 0; i < batches_.size(); ++i) {
      std::vector<at::Tensor> q = run_block(blk, qcache_, i, &quantized_);
      total += mse(q, targets(blk, i)).item<double>();
      if (outputs) outputs->push_back(std::move(q));
    }
    return total / static_cast<double>(batches_.size());
  }

  // The block's trainable tensors: weights (and biases) of its computing ops at lr, scales
  // (log2 scales on power-of-two configs) at scale_lr; AdaRound: rounding offsets only.
  void collect_parameters(const Block& blk, std::vector<at::Tensor>& params, std::vector<at::Tensor>& alphas) {
    quant::ParameterStore& store = ctx_.parameters;
    // LSQ scales the scale's gradient by 1/sqrt(N * Qp) (N: elements per sample).
    auto scale_param = [&](const Value* v, const QuantConfig& c) {
      double g =
          mode_ == BlockTraining::Lsq ? 1.0 / std::sqrt(element_count(v) * static_cast<double>(c.quant_max)) : 1.0;
      return store.scale_param(v->name, c, g);
    };
    for (const Op* op : blk.ops) {
      if (is_compute_op(op->type) && (interested_.empty() || interested_.count(op->name)) && op->input(1) &&
          op->input(1)->is_constant()) {
        const Value* w = op->input(1);
        const QuantConfig* wc = ctx_.plan.find(w->name);
        if (adaround_) {
          if (wc && wc->state == QuantState::Quantized)
            params.push_back(store.rounding_param(w, ex_->constant(w), *wc));
          continue;  // scales and biases frozen
        }
        if (wc && wc->state == QuantState::Quantized) params.push_back(store.weight_param(w, ex_->constant(w)));
        const Value* bias = op->input(2);
        const QuantConfig* bc = bias ? ctx_.plan.find(bias->name) : nullptr;
        if (ts_.train_bias && bc && bias->is_constant() && bc->state != QuantState::Float)
          params.push_back(store.weight_param(bias, ex_->constant(bias)));
        if (ts_.is_scale_trainable && trainable_scale(wc, mode_)) alphas.push_back(scale_param(w, *wc));
      }
      if (!ts_.is_scale_trainable || adaround_) continue;
      for (const Value* v : op->outputs)
        if (v && trainable_scale(ctx_.plan.find(v->name), mode_))
          alphas.push_back(scale_param(v, *ctx_.plan.find(v->name)));
    }
  }

  // Adam over the cached batches; rolled back bit for bit when the loss over the cache got worse.
  void train(const Block& blk, size_t k, const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& alphas,
             Progress& progress) {
    quant::ParameterStore& store = ctx_.parameters;
    auto t0 = Clock::now();
    quant::ParameterStore::Snapshot before_params = store.snapshot();
    store.set_hard_rounding(true);  // learned roundings are judged as the chip will round
    double before = cache_loss(blk);
    // Two parameter groups: weights at lr, log2 scales at scale_lr (default lr, as ESP-PPQ).
    std::vector<torch::optim::OptimizerParamGroup> groups;
    if (!params.empty()) groups.emplace_back(params, std::make_unique<torch::optim::AdamOptions>(ts_.lr));
    if (!alphas.empty())
      groups.emplace_back(alphas,
                          std::make_unique<torch::optim::AdamOptions>(ts_.scale_lr > 0 ? ts_.scale_lr : ts_.lr));
    torch::optim::Adam adam(std::move(groups), torch::optim::AdamOptions(ts_.lr));
    auto t_train = Clock::now();
    ex_->set_gradient_mode(true);
    store.set_hard_rounding(false);
    std::vector<const Value*> rounded;
    if (adaround_)
      for (const Op* op : blk.ops)
        if (op->input(1) && store.has_rounding(op->input(1))) rounded.push_back(op->input(1));
    for (int step = 0; step < ts_.steps; ++step) {
      size_t i = static_cast<size_t>(step) % batches_.size();
      at::AutoGradMode on(true);
      adam.zero_grad();
      std::vector<at::Tensor> out = run_block(blk, qcache_, i, &quantized_);
      at::Tensor loss = mse(out, targets(blk, i));
      if (ts_.gamma > 0) {
        std::vector<at::Tensor> own;
        {
          at::NoGradGuard ng;
          own = run_block(blk, qcache_, i, &plain_);
        }
        loss = loss + ts_.gamma * mse(out, own);
      }
      double t = static_cast<double>(step) / std::max(ts_.steps, 1);
      if (adaround_ && ts_.reg_lambda > 0 && t >= ts_.warmup) {
        double beta = ts_.beta_end + (ts_.beta_start - ts_.beta_end) * (1.0 - (t - ts_.warmup) / (1.0 - ts_.warmup));
        for (const Value* v : rounded)
          loss = loss + ts_.reg_lambda * (1 - (2 * store.rounding_h(v) - 1).abs().pow(beta)).mean();
      }
      if (ts_.int_lambda > 0 && mode_ == BlockTraining::Tqt)
        for (const at::Tensor& a : alphas) loss = loss + ts_.int_lambda * (a - at::round(a).detach()).pow(2).mean();
      loss.backward();
      adam.step();
      progress.step();
    }
    ex_->set_gradient_mode(false);
    store.set_hard_rounding(true);
    double train_s = std::chrono::duration<double>(Clock::now() - t_train).count();
    steps_total_ += ts_.steps;
    double after = cache_loss(blk, &trained_outputs_);
    bool rollback = !(after < before) || !std::isfinite(after);
    if (rollback) trained_outputs_.clear();
    double block_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (rollback) {
      store.restore(before_params);
      ++rolled_back_;
    }
    ++trained_;
    std::ostringstream line;
    line << "block " << k + 1 << "/" << blocks_.size() << " (" << blk.ops.front()->name << ", " << blk.ops.size()
         << " ops): loss " << std::scientific << std::setprecision(3) << before << " -> " << after
         << (rollback ? " (rolled back)" : "") << std::fixed << std::setprecision(2) << ", " << block_s << " s, "
         << std::setprecision(1) << ts_.steps / std::max(train_s, 1e-9) << " steps/s";
    say(line.str());
  }

  // Quantized outputs of this block (as trained) feed later blocks; dead values are freed.
  void advance(const Block& blk, size_t k) {
    for (size_t i = 0; i < batches_.size(); ++i) {
      std::vector<at::Tensor> q =
          i < trained_outputs_.size() ? std::move(trained_outputs_[i]) : run_block(blk, qcache_, i, &quantized_);
      for (size_t j = 0; j < blk.outputs.size(); ++j) qcache_[blk.outputs[j]].push_back(q[j].detach().to(device_));
    }
    trained_outputs_.clear();
    for (Cache* c : {&qcache_, &fcache_})
      for (auto it = c->begin(); it != c->end();) {
        auto lr = last_reader_.find(it->first);
        it = (lr == last_reader_.end() || lr->second <= k) ? c->erase(it) : std::next(it);
      }
  }

  QuantContext& ctx_;
  const Graph& g_;
  const TqtSetting& ts_;
  const BlockTraining mode_;
  const bool adaround_;
  const char* const pass_;
  const std::string section_;
  const std::set<std::string> interested_;
  c10::Device device_ = c10::Device(c10::kCPU);
  exec::Executor* ex_ = nullptr;
  std::vector<Block> blocks_;
  std::unordered_map<const Value*, size_t> last_reader_;
  std::vector<analysis::Batch> batches_;
  Cache qcache_, fcache_;
  std::vector<std::vector<at::Tensor>> trained_outputs_;  // the trained block's outputs, from its last loss
  exec::HookList quantized_, plain_;
  int trained_ = 0, rolled_back_ = 0;
  int64_t steps_total_ = 0;
};
}  // namespace

PassResult train_blocks(QuantContext& ctx, const TqtSetting& ts, BlockTraining mode) {
  return BlockTrainer(ctx, ts, mode).run();
}

PassResult TqtPass::run(QuantContext& ctx) { return train_blocks(ctx, options(ctx), BlockTraining::Tqt); }

PassResult LsqPass::run(QuantContext& ctx) { return train_blocks(ctx, options(ctx), BlockTraining::Lsq); }

PassResult AdaRoundPass::run(QuantContext& ctx) { return train_blocks(ctx, options(ctx), BlockTraining::AdaRound); }

}  // namespace edgequant
