// qat: quantization-aware training of the whole model from the PTQ result (simulated
// quantization, Jacob et al. 2018; power-of-two scales trained as log2 with the straight-through
// exponent, TQT, Jain et al. 2020; float scales with LSQ's gradient scaling, Esser et al. 2020).
// Each step runs the quantized simulation (the ParameterStore's weights, biases and scales) on a
// shuffled batch of the training set; the loss is cross-entropy on the labels and/or distillation
// from the float model. After every epoch the model as trained so far is measured three ways on
// the validation set: float (the model as given), fake-quant (the simulation that trains) and the
// integer runtime on the integer program of a copy with the trained values written in, which is
// what ships. The epoch with the best integer top-1 (epoch 0 = the PTQ result) is kept.
// Checkpoints after every epoch in OUT/checkpoints; `resume` continues from the last one.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <random>
#include <sstream>
#include <thread>

#include "core/files.h"
#include "core/progress.h"
#include "deploy/integer_program.h"
#include "edgequant/error.h"
#include "exec/gradient_kernels.h"
#include "exec/kernel.h"
#include "ir/op_traits.h"
#include "passes/pipeline.h"
#include "passes/pipeline/block_training.h"
#include "quant/lower.h"

namespace edgequant {

namespace {
using Clock = std::chrono::steady_clock;
using Named = std::vector<std::pair<std::string, at::Tensor>>;

struct Epoch {
  int epoch = 0;
  double loss = 0, train_top1 = -1, seconds = 0, samples_per_s = 0;
  double float_top1 = -1, fake_top1 = -1, int_top1 = -1;
  nlohmann::json json() const {
    return {{"epoch", epoch},
            {"loss", loss},
            {"train_top1", train_top1},
            {"seconds", seconds},
            {"samples_per_s", samples_per_s},
            {"float_top1", float_top1},
            {"fake_quant_top1", fake_top1},
            {"integer_top1", int_top1}};
  }
  static Epoch from(const nlohmann::json& j) {
    Epoch e;
    e.epoch = j.at("epoch");
    e.loss = j.at("loss");
    e.train_top1 = j.at("train_top1");
    e.seconds = j.at("seconds");
    e.samples_per_s = j.at("samples_per_s");
    e.float_top1 = j.at("float_top1");
    e.fake_top1 = j.at("fake_quant_top1");
    e.int_top1 = j.at("integer_top1");
    return e;
  }
};

std::string pct(double v) {
  if (v < 0) return "-";
  std::ostringstream s;
  s << std::fixed << std::setprecision(2) << v;
  return s.str();
}

class QatTrainer {
 public:
  QatTrainer(QuantContext& ctx, const QatSetting& q) : ctx_(ctx), q_(q), g_(*ctx.graph) {}

  PassResult run() {
    open_data();
    ex_ = &ctx_.executor();
    quant::QuantSimulator& sim = ctx_.simulator();
    sim.set_parameters(&ctx_.parameters);
    quantized_ = exec::HookList(sim.hooks());
    teacher_ = ctx_.float_reference_hooks();
    teacher_.add(exec::ExecHooks{});  // no in-place writes: the teacher's outputs are loss targets
    const quant::ModelBatch& mb = ctx_.model_batch();
    chunk_ = mb.limit();
    exact_ = mb.exact();
    batch_ = q_.batch_size;
    if (exact_ && batch_ % chunk_ != 0) batch_ = std::max<int64_t>(chunk_, batch_ / chunk_ * chunk_);
    collect_parameters();
    if (weights_.empty() && scales_.empty()) {
      say("skipped: nothing to train (no quantized computing op)");
      return PassResult{};
    }
    make_optimizer();
    if (!ctx_.out_dir.empty()) checkpoint_dir_ = ctx_.out_dir + "/checkpoints";
    int first = 1;
    if (q_.resume) first = resume() + 1;
    if (first == 1) {
      history_.clear();
      Epoch e0;
      e0.loss = -1;
      validate(e0);
      history_.push_back(e0);
      best_ = 0;
      best_params_ = copy(ctx_.parameters.named_parameters());
      say("epoch 0 (PTQ): " + val_line(e0));
    }
    bool diverged = false;
    for (int epoch = first; epoch <= q_.epochs && !diverged; ++epoch) {
      Epoch e;
      e.epoch = epoch;
      diverged = !train_epoch(e);
      if (diverged) break;
      validate(e);
      history_.push_back(e);
      bool better = e.int_top1 > history_[static_cast<size_t>(best_)].int_top1 || (val_ == nullptr);
      if (better) {
        best_ = static_cast<int>(history_.size()) - 1;
        best_params_ = copy(ctx_.parameters.named_parameters());
      }
      double eta = e.seconds * (q_.epochs - epoch);
      std::ostringstream line;
      line << "epoch " << epoch << "/" << q_.epochs << ": loss " << std::setprecision(4) << e.loss << ", train top-1 "
           << pct(e.train_top1) << ", " << std::fixed << std::setprecision(0) << e.samples_per_s << " samples/s, "
           << std::setprecision(1) << e.seconds << " s; " << val_line(e) << (better ? " (best)" : "");
      if (epoch < q_.epochs) line << "; ETA " << std::setprecision(0) << eta << " s";
      say(line.str());
      save_checkpoint(epoch);
    }
    // The kept epoch's values, baked like the other training passes (the float reference keeps
    // the model as given).
    load_named(best_params_, "the best epoch");
    int best_epoch = history_[static_cast<size_t>(best_)].epoch;
    say("kept epoch " + std::to_string(best_epoch) +
        (!val_             ? " (no validation data: the last epoch)"
         : best_epoch == 0 ? " (the PTQ result: no epoch beat it) by the integer runtime's top-1"
                           : " by the integer runtime's top-1"));
    if (diverged)
      ctx_.plan.notes.push_back("qat stopped early: the loss became NaN or infinite (learning rate too high?); epoch " +
                                std::to_string(best_epoch) + " was restored");
    for (const auto& [v, w] : ctx_.parameters.bake(ctx_.plan, g_, *ex_)) ctx_.float_constants.emplace(v, w);
    quant::refresh_derived_scales(ctx_.plan, g_);
    ctx_.count_walk();
    write_history();
    PassResult r;
    r.changed = best_epoch != 0;
    return r;
  }

 private:
  void say(const std::string& line) const {
    if (ctx_.log) *ctx_.log << "qat: " << line << std::endl;  // epochs take minutes: show each as it ends
  }
  std::string val_line(const Epoch& e) const {
    if (!val_) return "no validation data";
    return "val top-1 float " + pct(e.float_top1) + ", fake-quant " + pct(e.fake_top1) + ", integer " + pct(e.int_top1);
  }

  void open_data() {
    const char* w = "qat_setting";
    if (q_.train_data.empty())
      fail(ErrorCode::InvalidSetting,
           std::string(w) + ".train_data: QAT needs a training set (edgequant train --train)");
    if (g_.inputs.size() != 1)
      fail(ErrorCode::Unsupported, "qat: models with " + std::to_string(g_.inputs.size()) +
                                       " inputs are not trained yet (one input per sample)");
    std::vector<std::string> names = {g_.inputs[0]->name};
    train_ = open_dataset(q_.train_data, ctx_.setting().preprocess, names);
    if (train_->size() == 0) fail(ErrorCode::InvalidInput, q_.train_data + ": the training set is empty");
    if (q_.loss != QatLoss::Distill && !train_->has_labels())
      fail(ErrorCode::InvalidInput, q_.train_data + ": loss '" + qat_loss_name(q_.loss) +
                                        "' needs labels (IDX labels beside the images, ImageFolder, .npz with "
                                        "'labels'); loss: distill trains from the float model without them");
    if (!q_.val_data.empty()) {
      val_ = open_dataset(q_.val_data, ctx_.setting().preprocess, names);
      if (val_->size() == 0) fail(ErrorCode::InvalidInput, q_.val_data + ": the validation set is empty");
      if (!val_->has_labels())
        fail(ErrorCode::InvalidInput, q_.val_data + ": the validation set needs labels (top-1 per epoch)");
      n_val_ = q_.val_limit > 0 ? std::min(q_.val_limit, val_->size()) : val_->size();
    }
    n_train_ = q_.limit > 0 ? std::min(q_.limit, train_->size()) : train_->size();
  }

  // Weights and biases of every quantized computing op, then the scales the target lets train:
  // in graph order, so the optimizer's state lines up across processes (resume).
  void collect_parameters() {
    BlockTraining mode = ctx_.target.scale_kind == ScaleKind::PowerOfTwo ? BlockTraining::Tqt : BlockTraining::Lsq;
    quant::ParameterStore& store = ctx_.parameters;
    auto scale = [&](const Value* v, const QuantConfig& c) {
      double gs =
          mode == BlockTraining::Lsq ? 1.0 / std::sqrt(element_count(v) * static_cast<double>(c.quant_max)) : 1.0;
      scales_.push_back(store.scale_param(v->name, c, gs));
    };
    for (const auto& op : g_.ops()) {
      if (is_compute_op(op->type) && op->input(1) && op->input(1)->is_constant()) {
        const Value* w = op->input(1);
        const QuantConfig* wc = ctx_.plan.find(w->name);
        if (wc && wc->state == QuantState::Quantized) {
          weights_.push_back(store.weight_param(w, ex_->constant(w)));
          const Value* b = op->input(2);
          const QuantConfig* bc = b ? ctx_.plan.find(b->name) : nullptr;
          if (bc && b->is_constant() && bc->state != QuantState::Float)
            weights_.push_back(store.weight_param(b, ex_->constant(b)));
          if (trainable_scale(wc, mode)) scale(w, *wc);
        }
      }
      for (const Value* v : op->outputs)
        if (v && trainable_scale(ctx_.plan.find(v->name), mode)) scale(v, *ctx_.plan.find(v->name));
    }
  }

  void make_optimizer() {
    double slr = q_.scale_lr > 0 ? q_.scale_lr : q_.lr;
    std::vector<torch::optim::OptimizerParamGroup> groups;
    if (q_.optimizer == QatOptimizer::Adam) {
      groups.emplace_back(weights_, std::make_unique<torch::optim::AdamOptions>(
                                        torch::optim::AdamOptions(q_.lr).weight_decay(q_.weight_decay)));
      if (!scales_.empty()) groups.emplace_back(scales_, std::make_unique<torch::optim::AdamOptions>(slr));
      opt_ = std::make_unique<torch::optim::Adam>(std::move(groups), torch::optim::AdamOptions(q_.lr));
    } else {
      groups.emplace_back(weights_,
                          std::make_unique<torch::optim::SGDOptions>(
                              torch::optim::SGDOptions(q_.lr).momentum(q_.momentum).weight_decay(q_.weight_decay)));
      if (!scales_.empty())
        groups.emplace_back(
            scales_, std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(slr).momentum(q_.momentum)));
      opt_ = std::make_unique<torch::optim::SGD>(std::move(groups), torch::optim::SGDOptions(q_.lr));
    }
    base_lr_ = {q_.lr, slr};
  }

  // Linear warm-up, then cosine decay to 0; scales stop after freeze_scales_epoch.
  void set_lr(int64_t step, int64_t total, int epoch) {
    int64_t warm = static_cast<int64_t>(q_.warmup_epochs * static_cast<double>(total) / q_.epochs);
    double f = step < warm ? static_cast<double>(step + 1) / static_cast<double>(warm)
                           : 0.5 * (1 + std::cos(M_PI * static_cast<double>(step - warm) /
                                                 static_cast<double>(std::max<int64_t>(total - warm, 1))));
    auto& groups = opt_->param_groups();
    groups[0].options().set_lr(base_lr_[0] * f);
    if (groups.size() < 2) return;
    bool frozen = q_.freeze_scales_epoch > 0 && epoch > q_.freeze_scales_epoch;
    groups[1].options().set_lr(frozen ? 0.0 : base_lr_[1] * f);
  }

  std::vector<int64_t> shuffled(int epoch) const {
    std::vector<int64_t> order(static_cast<size_t>(train_->size()));
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    std::mt19937_64 rng(q_.seed + static_cast<uint64_t>(epoch));
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);  // Fisher-Yates
    order.resize(static_cast<size_t>(n_train_));
    return order;
  }

  at::Tensor stack(const Dataset& d, const int64_t* idx, int64_t n) const {
    std::vector<at::Tensor> xs;
    for (int64_t i = 0; i < n; ++i) xs.push_back(exec::to_aten(d.sample(idx[i])));
    return at::stack(xs);
  }

  // Loss of one model run; labels checked against the model's class count.
  at::Tensor loss_of(const std::vector<at::Tensor>& out, const std::vector<at::Tensor>& teacher, const int64_t* idx,
                     int64_t n, int64_t& correct) {
    at::Tensor logits = out[0].reshape({n, -1}).to(at::kFloat);
    at::Tensor ce, kd;
    if (train_->has_labels()) {
      int64_t classes = logits.size(1);
      std::vector<int64_t> l(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        l[size_t(i)] = train_->label(idx[i]);
        if (l[size_t(i)] < 0 || l[size_t(i)] >= classes)
          fail(ErrorCode::InvalidInput, q_.train_data + ": " + train_->describe(idx[i]) + " has label " +
                                            std::to_string(l[size_t(i)]) + ", outside the " + std::to_string(classes) +
                                            " classes of the model's output '" + g_.outputs[0]->name + "'");
      }
      at::Tensor labels = at::tensor(l, at::kLong);
      {
        at::NoGradGuard ng;
        correct += logits.argmax(1).eq(labels).sum().item<int64_t>();
      }
      if (q_.loss != QatLoss::Distill) ce = at::cross_entropy_loss(logits, labels);
    }
    if (q_.loss != QatLoss::CrossEntropy) {
      if (q_.distill == DistillKind::Kl) {
        double t = q_.temperature;
        at::Tensor tl = teacher[0].reshape({n, -1}).to(at::kFloat);
        kd = at::kl_div(at::log_softmax(logits / t, 1), at::log_softmax(tl / t, 1), at::Reduction::Sum, true) /
             static_cast<double>(n) * (t * t);
      } else {
        kd = at::zeros({}, at::kFloat);
        for (size_t j = 0; j < out.size(); ++j)
          if (at::isFloatingType(out[j].scalar_type())) kd = kd + exec::mse_loss(out[j], teacher[j]);
      }
    }
    if (q_.loss == QatLoss::CrossEntropy) return ce;
    if (q_.loss == QatLoss::Distill) return kd;
    return ce * (1 - q_.distill_weight) + kd * q_.distill_weight;
  }

  // One epoch; false when the loss stopped being finite (parameters restored to the best epoch).
  bool train_epoch(Epoch& e) {
    std::vector<int64_t> order = shuffled(e.epoch);
    int64_t steps = (n_train_ + batch_ - 1) / batch_;
    if (exact_) steps = n_train_ / batch_;  // a fixed-batch model: the short tail is left out
    int64_t total = steps * q_.epochs;
    auto t0 = Clock::now();
    Progress progress("qat epoch " + std::to_string(e.epoch) + "/" + std::to_string(q_.epochs), steps);
    double loss_sum = 0;
    int64_t seen = 0, correct = 0;
    ex_->set_gradient_mode(true);
    for (int64_t s = 0; s < steps; ++s) {
      set_lr((e.epoch - 1) * steps + s, total, e.epoch);
      int64_t begin = s * batch_, n = std::min(batch_, n_train_ - begin);
      opt_->zero_grad();
      double step_loss = 0;
      int64_t run = chunk_ > 0 ? chunk_ : n;
      for (int64_t c = 0; c < n; c += run) {
        int64_t m = std::min(run, n - c);
        const int64_t* idx = order.data() + begin + c;
        at::Tensor x = stack(*train_, idx, m);
        std::vector<at::Tensor> teacher;
        if (q_.loss != QatLoss::CrossEntropy) {
          at::NoGradGuard ng;
          teacher = ex_->run({x}, &teacher_);
        }
        at::AutoGradMode on(true);
        std::vector<at::Tensor> out = ex_->run({x}, &quantized_);
        at::Tensor loss = loss_of(out, teacher, idx, m, correct) * (static_cast<double>(m) / static_cast<double>(n));
        double lv = loss.item<double>();
        if (!std::isfinite(lv)) {
          ex_->set_gradient_mode(false);
          progress.finish();
          say("epoch " + std::to_string(e.epoch) + " step " + std::to_string(s + 1) + ": the loss is " +
              (std::isnan(lv) ? "NaN" : "infinite") + " (learning rate " + std::to_string(q_.lr) +
              " too high?): training stopped, epoch " + std::to_string(history_[size_t(best_)].epoch) + " restored");
          return false;
        }
        loss.backward();
        step_loss += lv;
      }
      opt_->step();
      loss_sum += step_loss * static_cast<double>(n);
      seen += n;
      progress.step();
    }
    ex_->set_gradient_mode(false);
    progress.finish();
    e.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    e.loss = loss_sum / static_cast<double>(std::max<int64_t>(seen, 1));
    e.train_top1 = train_->has_labels() ? 100.0 * static_cast<double>(correct) / static_cast<double>(seen) : -1;
    e.samples_per_s = static_cast<double>(seen) / std::max(e.seconds, 1e-9);
    return true;
  }

  // Float (once), fake-quant and integer-runtime top-1 on the validation samples.
  void validate(Epoch& e) {
    if (!val_) return;
    at::NoGradGuard ng;
    int64_t run = chunk_ > 0 ? chunk_ : 256;
    int64_t n = exact_ ? n_val_ / run * run : n_val_;
    int64_t fc = 0, qc = 0;
    std::vector<int64_t> idx(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) idx[size_t(i)] = i;
    for (int64_t b = 0; b < n; b += run) {
      int64_t m = std::min(run, n - b);
      at::Tensor x = stack(*val_, idx.data() + b, m);
      if (float_top1_ < 0) fc += hits(ex_->run({x}, &teacher_)[0], b, m);
      qc += hits(ex_->run({x}, &quantized_)[0], b, m);
    }
    if (float_top1_ < 0) float_top1_ = 100.0 * static_cast<double>(fc) / static_cast<double>(n);
    e.float_top1 = float_top1_;
    e.fake_top1 = 100.0 * static_cast<double>(qc) / static_cast<double>(n);
    e.int_top1 = integer_top1(n);
  }
  int64_t hits(const at::Tensor& y, int64_t begin, int64_t m) const {
    at::Tensor pred = y.reshape({m, -1}).argmax(1);
    int64_t h = 0;
    for (int64_t i = 0; i < m; ++i) h += pred[i].item<int64_t>() == val_->label(begin + i);
    return h;
  }

  // The integer program of a copy of the model with the store's values written in, run sample by
  // sample (the chip's batch of 1) on the validation samples, the samples split over threads.
  double integer_top1(int64_t n) {
    std::unique_ptr<Graph> copy = g_.clone();
    QuantPlan plan = ctx_.plan;
    ctx_.parameters.write_to(plan, *copy);
    quant::refresh_derived_scales(plan, *copy);
    exec::Executor ex(*copy);
    LoweredModel lowered = quant::lower(*copy, plan, ctx_.target, ex);
    runtime::IntGraph program = deploy::build_integer_program(*copy, plan, lowered, ctx_.target, ex);
    Shape one = val_->sample(0).shape();
    one.insert(one.begin(), 1);
    int threads = std::max(1, std::min<int>(at::get_num_threads(), 8));
    std::vector<int64_t> correct(static_cast<size_t>(threads), 0);
    std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        try {
          for (int64_t i = t; i < n; i += threads) {
            Tensor s = val_->sample(i);
            std::vector<float> v(s.data<float>(), s.data<float>() + s.numel());
            std::vector<float> y = deploy::run_source_sample(program, {v}, {one})[0];
            int64_t arg = std::max_element(y.begin(), y.end()) - y.begin();
            correct[size_t(t)] += arg == val_->label(i);
          }
        } catch (...) {
          errors[size_t(t)] = std::current_exception();
        }
      });
    for (auto& th : pool) th.join();
    for (auto& err : errors)
      if (err) std::rethrow_exception(err);
    int64_t c = 0;
    for (int64_t k : correct) c += k;
    return 100.0 * static_cast<double>(c) / static_cast<double>(n);
  }

  static Named copy(const Named& named) {
    Named out;
    for (const auto& [n, t] : named) out.emplace_back(n, t.detach().clone());
    return out;
  }
  void load_named(const Named& from, const std::string& what) {
    Named to = ctx_.parameters.named_parameters();
    if (to.size() != from.size()) fail(ErrorCode::Internal, "qat: " + what + " does not match the parameters");
    at::NoGradGuard ng;
    for (size_t i = 0; i < to.size(); ++i) to[i].second.copy_(from[i].second);
  }

  // Names and shapes of the trained tensors: a checkpoint of another model (or setting) differs.
  std::string signature() const {
    std::ostringstream s;
    for (const auto& [n, t] : ctx_.parameters.named_parameters()) s << n << t.sizes() << ";";
    return content_hash(s.str());
  }

  void save_checkpoint(int epoch) {
    if (checkpoint_dir_.empty()) return;
    make_directories(checkpoint_dir_);
    torch::serialize::OutputArchive root, params, best, opt;
    for (const auto& [n, t] : ctx_.parameters.named_parameters()) params.write(n, t.detach());
    for (const auto& [n, t] : best_params_) best.write(n, t);
    opt_->save(opt);
    root.write("params", params);
    root.write("best", best);
    root.write("optimizer", opt);
    root.write("epoch", at::tensor(static_cast<int64_t>(epoch)));
    std::string pt = checkpoint_dir_ + "/last.pt";
    root.save_to(pt + ".tmp");
    std::filesystem::rename(pt + ".tmp", pt);
    nlohmann::json j = {{"epoch", epoch},
                        {"best_index", best_},
                        {"model", ctx_.model_path},
                        {"model_hash", file_hash(ctx_.model_path)},
                        {"target", ctx_.target.name},
                        {"signature", signature()},
                        {"history", nlohmann::json::array()}};
    for (const Epoch& e : history_) j["history"].push_back(e.json());
    write_file_atomic(checkpoint_dir_ + "/last.json", j.dump(1) + "\n");
  }

  // Loads OUT/checkpoints/last; returns the epoch it holds.
  int resume() {
    std::string meta = checkpoint_dir_ + "/last.json";
    if (checkpoint_dir_.empty() || !std::filesystem::exists(meta))
      fail(ErrorCode::InvalidInput, "qat: --resume: no checkpoint at " +
                                        (checkpoint_dir_.empty() ? std::string("(no output directory)") : meta));
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(meta));
      std::string why;
      if (j.at("model_hash") != file_hash(ctx_.model_path))
        why = "it was written for " + j.at("model").get<std::string>() + ", a different model file";
      else if (j.at("target") != ctx_.target.name)
        why = "it was written for target " + j.at("target").get<std::string>();
      else if (j.at("signature") != signature())
        why = "its trained tensors differ from this run's (another setting?)";
      if (!why.empty()) fail(ErrorCode::InvalidInput, meta + ": cannot resume from this checkpoint: " + why);
      torch::serialize::InputArchive root, params, best, opt;
      root.load_from(checkpoint_dir_ + "/last.pt");
      at::Tensor ep;
      root.read("epoch", ep);
      if (ep.item<int64_t>() != j.at("epoch").get<int64_t>())
        fail(ErrorCode::InvalidInput, meta + ": last.pt and last.json are from different epochs");
      root.read("params", params);
      root.read("best", best);
      root.read("optimizer", opt);
      Named now = ctx_.parameters.named_parameters(), kept;
      at::NoGradGuard ng;
      for (auto& [n, t] : now) {
        at::Tensor v, b;
        params.read(n, v);
        best.read(n, b);
        t.copy_(v);
        kept.emplace_back(n, b);
      }
      best_params_ = kept;
      opt_->load(opt);
      history_.clear();
      for (const auto& e : j.at("history")) history_.push_back(Epoch::from(e));
      best_ = j.at("best_index");
      if (!history_.empty()) float_top1_ = history_.front().float_top1;
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorCode::InvalidInput, meta + ": " + e.what());
    } catch (const c10::Error& e) {
      fail(ErrorCode::InvalidInput, checkpoint_dir_ + "/last.pt: " + e.what_without_backtrace());
    }
    int epoch = j.at("epoch");
    say("resumed after epoch " + std::to_string(epoch) + " from " + checkpoint_dir_);
    return epoch;
  }

  void write_history() const {
    if (ctx_.out_dir.empty()) return;
    nlohmann::json j = {{"kept_epoch", history_[size_t(best_)].epoch},
                        {"loss", qat_loss_name(q_.loss)},
                        {"epochs", nlohmann::json::array()}};
    for (const Epoch& e : history_) j["epochs"].push_back(e.json());
    make_directories(ctx_.out_dir);
    write_file_atomic(ctx_.out_dir + "/qat.json", j.dump(1) + "\n");
  }

  QuantContext& ctx_;
  const QatSetting& q_;
  Graph& g_;
  std::shared_ptr<const Dataset> train_, val_;
  int64_t n_train_ = 0, n_val_ = 0, chunk_ = 0, batch_ = 0;
  bool exact_ = false;
  exec::Executor* ex_ = nullptr;
  exec::HookList quantized_, teacher_;
  std::vector<at::Tensor> weights_, scales_;
  std::unique_ptr<torch::optim::Optimizer> opt_;
  std::vector<double> base_lr_;
  std::vector<Epoch> history_;
  int best_ = 0;
  Named best_params_;
  double float_top1_ = -1;
  std::string checkpoint_dir_;
};
}  // namespace

PassResult QatPass::run(QuantContext& ctx) { return QatTrainer(ctx, options(ctx)).run(); }

}  // namespace edgequant
