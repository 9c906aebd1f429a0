// mixed-precision: chooses wider (or narrower) types per analysis unit, two ways.
//  * auto_promote K: the K units with the worst layerwise error (one unit quantized, measured at
//    the graph outputs, on the validation samples) go to int16 or float.
//  * method hessian|measured with a budget: a sensitivity per unit and width, then the allocation
//    of least predicted error within the budget (quant/bit_allocation.h), over the target's
//    weight widths. hessian: tr(H_i)/n_i * |Q_w(W_i) - W_i|^2 (HAWQ-V2) with tr(H_i) by
//    Hutchinson (analysis/hessian.h) on the task loss (cross-entropy of class logits; its
//    Gauss-Newton Hessian needs no labels) or a distillation loss (squared error against the
//    float model's outputs); measured: the layerwise error of the unit at w.
// Both end in a reassignment and recalibration from the cached observations (no data pass) and
// report what the choice costs in parameter bytes.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "analysis/hessian.h"
#include "core/files.h"
#include "edgequant/error.h"
#include "ir/op_traits.h"
#include "passes/pipeline.h"
#include "quant/bit_allocation.h"
#include "quant/fake_quant.h"

namespace edgequant {

namespace {
int64_t packed_bytes(int64_t numel, int bits) { return (numel * (bits ? bits : 32) + 7) / 8; }

// Bytes of every quantized constant, packed at its code width.
int64_t parameter_bytes(const QuantContext& ctx) {
  int64_t bytes = 0;
  for (const auto& [name, c] : ctx.plan.values) {
    const Value* v = ctx.graph->find_value(name);
    if (!v || !v->is_constant() || c.state == QuantState::Float) continue;
    bytes += packed_bytes(v->data->numel(), c.bits);
  }
  return bytes;
}

std::string width_name(int bits) { return bits ? "int" + std::to_string(bits) : "float"; }

PassResult promote_worst(QuantContext& ctx, const MixedPrecisionSetting& m) {
  auto say = [&](const std::string& line) {
    if (ctx.log) *ctx.log << "mixed-precision: " << line << "\n";
  };
  if (m.to == "int16" &&
      std::find(ctx.target.allowed_bits.begin(), ctx.target.allowed_bits.end(), 16) == ctx.target.allowed_bits.end()) {
    say("skipped: target '" + ctx.target.name + "' has no int16");
    return PassResult{};
  }
  // Layerwise error of every unit as the plan stands (not kept: the plan changes below).
  analysis::AnalysisReport layerwise = analyse_validation(ctx, false, true);
  std::vector<const analysis::UnitReport*> units;
  for (const auto& u : layerwise.units)
    if (!ctx.setting().dispatching_table.count(u.op)) units.push_back(&u);
  std::sort(units.begin(), units.end(), [](const auto* a, const auto* b) { return a->layerwise > b->layerwise; });
  if (units.size() > static_cast<size_t>(m.auto_promote)) units.resize(static_cast<size_t>(m.auto_promote));
  int64_t bytes_before = parameter_bytes(ctx);
  std::ostringstream chosen;
  chosen << std::scientific << std::setprecision(3);
  // The user's dispatching table plus the promotions: an assignment of this pass's own, the
  // setting stays as given.
  Setting promoted = ctx.setting();
  for (const auto* u : units) {
    for (const Op* op : u->ops) promoted.dispatching_table[op->name] = m.to;  // a conv and its fused activation
    chosen << (chosen.tellp() > 0 ? ", " : "") << u->op << " (" << u->type << ", layerwise " << u->layerwise << ")";
  }
  // Reassign and recalibrate: the observations are cached, so no data pass.
  assign_plan(ctx, promoted);
  calibrate_plan(ctx);
  int64_t bytes_after = parameter_bytes(ctx);
  ctx.count_walk(2);
  say(std::to_string(units.size()) + " units to " + m.to + ": " + chosen.str());
  say("cost: parameter bytes " + std::to_string(bytes_before) + " -> " + std::to_string(bytes_after) + " (+" +
      std::to_string(bytes_after - bytes_before) + "); the promoted ops run at about 2x the cycles on ESP-DL");
  ctx.plan.notes.push_back("mixed precision: " + std::to_string(units.size()) + " units promoted to " + m.to + " (" +
                           chosen.str() + "), +" + std::to_string(bytes_after - bytes_before) + " parameter bytes");
  PassResult r;
  r.changed = !units.empty();
  return r;
}

// A unit the search gives a width: a computing op with quantized constant weights (and the
// activation fused into it).
struct SearchUnit {
  std::string op, type;
  std::vector<const Op*> ops;
  const Value* weight = nullptr;
  const Value* bias = nullptr;
  std::vector<int> weight_bits, bias_bits;  // per width: as the target assigns them (0 = float)
  std::vector<double> quant_error;          // per width: |Q_w(W) - W|^2
  std::vector<double> sensitivity;          // per width: the predicted error
  double trace = 0, trace_std_error = 0;    // hessian
};

class WidthSearch {
 public:
  WidthSearch(QuantContext& ctx, const MixedPrecisionSetting& m) : ctx_(ctx), m_(m) {}

  PassResult run() {
    choose_widths();
    find_units();
    if (units_.empty()) {
      say("skipped: no unit with quantized weights to search");
      return PassResult{};
    }
    int64_t bytes_before = parameter_bytes(ctx_);
    for (size_t w = 0; w < widths_.size(); ++w) measure_width(w, false);
    budget_ = budget_in_cost_units();
    std::vector<quant::AllocationLayer> layers = allocation_layers(false);
    int64_t cheapest = 0;
    for (const auto& l : layers) {
      int64_t c = l.options.front().cost;
      for (const auto& o : l.options) c = std::min(c, o.cost);
      cheapest += c;
    }
    if (cheapest > budget_)
      fail(ErrorCode::InvalidSetting, "mixed_precision.budget: " + budget_text() + " cannot be met: the smallest " +
                                          "allocation (every searched layer at " + width_name(widths_.front()) +
                                          ") needs " + describe_cost(cheapest));
    sensitivities();
    layers = allocation_layers(true);
    bool thinned = false;
    std::vector<quant::ParetoPoint> front = quant::pareto_front(layers, 50000, &thinned);
    std::optional<quant::ParetoPoint> best = quant::best_within(front, budget_);
    if (!best) fail(ErrorCode::Internal, "mixed-precision: no allocation within a budget the cheapest one meets");
    Setting chosen = ctx_.setting();
    for (size_t i = 0; i < units_.size(); ++i)
      for (const Op* op : units_[i].ops)
        chosen.dispatching_table[op->name] = width_name(widths_[static_cast<size_t>(best->choice[i])]);
    assign_plan(ctx_, chosen);
    calibrate_plan(ctx_);
    ctx_.count_walk(2);
    report(front, *best, bytes_before, parameter_bytes(ctx_), thinned);
    PassResult r;
    r.changed = true;
    return r;
  }

 private:
  void say(const std::string& line) const {
    if (ctx_.log) *ctx_.log << "mixed-precision: " << line << "\n";
  }

  // Candidate widths, ascending, float last; each one the target allows for weights.
  void choose_widths() {
    const std::vector<int>& allowed = ctx_.target.allowed_bits;
    if (m_.widths.empty()) {
      for (int b : allowed)
        if (b == 2 || b == 4 || b == 8 || b == 16) widths_.push_back(b);
    } else {
      for (int b : m_.widths) {
        if (b && std::find(allowed.begin(), allowed.end(), b) == allowed.end()) {
          std::string list;
          for (int a : allowed) list += (list.empty() ? "" : ", ") + std::to_string(a);
          fail(ErrorCode::InvalidSetting, "mixed_precision.widths: " + std::to_string(b) +
                                              " bits is not supported by target '" + ctx_.target.name +
                                              "' (allowed: " + list + ", float)");
        }
        if (std::find(widths_.begin(), widths_.end(), b) == widths_.end()) widths_.push_back(b);
      }
    }
    std::sort(widths_.begin(), widths_.end(), [](int a, int b) { return (a ? a : 99) < (b ? b : 99); });
    if (widths_.size() < 2)
      fail(ErrorCode::InvalidSetting, "mixed_precision: target '" + ctx_.target.name +
                                          "' leaves one weight width to choose from; give widths: [..., float]");
  }

  void find_units() {
    for (analysis::UnitReport& u : analysis::analysis_units(*ctx_.graph, ctx_.plan)) {
      const Op* compute = nullptr;
      for (const Op* op : u.ops)
        if (is_compute_op(op->type) && op->input(1) && op->input(1)->is_constant()) compute = op;
      if (!compute) continue;
      const QuantConfig* wc = ctx_.plan.find(compute->input(1)->name);
      if (!wc || wc->state != QuantState::Quantized) continue;
      bool user = false;
      for (const Op* op : u.ops) user |= ctx_.setting().dispatching_table.count(op->name) > 0;
      if (user) continue;  // the user's own choice stays
      SearchUnit s;
      s.op = u.op;
      s.type = u.type;
      s.ops = u.ops;
      s.weight = compute->input(1);
      const Value* b = compute->input(2);
      if (b && b->is_constant()) s.bias = b;
      units_.push_back(std::move(s));
    }
    ctx_.count_walk();
  }

  Setting at_width(int bits) const {
    Setting s = ctx_.setting();
    for (const SearchUnit& u : units_)
      for (const Op* op : u.ops) s.dispatching_table[op->name] = width_name(bits);
    return s;
  }

  // Every unit at widths_[w]: the widths the target gives weights and biases there, the weight
  // quantization error, and (measured) the layerwise error.
  void measure_width(size_t w, bool measured) {
    assign_plan(ctx_, at_width(widths_[w]));
    calibrate_plan(ctx_);
    ctx_.invalidate(kDataKept);  // the simulator and lowered form were of the previous plan
    if (!measured) {
      std::set<std::string> searched;
      for (SearchUnit& u : units_) {
        searched.insert(u.weight->name);
        if (u.bias) searched.insert(u.bias->name);
        const QuantConfig* wc = ctx_.plan.find(u.weight->name);
        bool q = wc && wc->state == QuantState::Quantized;
        u.weight_bits.push_back(q ? wc->bits : 0);
        const QuantConfig* bc = u.bias ? ctx_.plan.find(u.bias->name) : nullptr;
        u.bias_bits.push_back(bc && bc->state != QuantState::Float ? bc->bits : 0);
        double err = 0;
        if (q) {
          at::NoGradGuard ng;
          at::Tensor x = ctx_.executor().constant(u.weight).to(at::kFloat);
          err = (quant::fake_quantize(x, *wc) - x).to(at::kDouble).pow(2).sum().item<double>();
        }
        u.quant_error.push_back(err);
      }
      if (w == 0)  // the parameters no unit owns do not change with the units' widths
        for (const auto& [name, c] : ctx_.plan.values) {
          const Value* v = ctx_.graph->find_value(name);
          if (v && v->is_constant() && c.state != QuantState::Float && !searched.count(name))
            fixed_bytes_ += packed_bytes(v->data->numel(), c.bits);
        }
      return;
    }
    analysis::AnalysisReport r = analyse_validation(ctx_, false, true);
    std::map<std::string, double> by_op;
    for (const auto& ur : r.units) by_op[ur.op] = ur.layerwise;
    for (SearchUnit& u : units_) {
      auto it = by_op.find(u.op);
      u.sensitivity.push_back(it == by_op.end() ? 0.0 : std::max(0.0, it->second));
    }
  }

  int64_t weight_count() const {
    int64_t n = 0;
    for (const SearchUnit& u : units_) n += u.weight->data->numel();
    return n;
  }

  // Costs: bits of weights (avg_weight_bits), or bits of weights and biases at their packed byte
  // sizes (param_bytes, the other parameters being fixed).
  int64_t cost(const SearchUnit& u, size_t w) const {
    int64_t nw = u.weight->data->numel();
    if (m_.budget_avg_weight_bits > 0) return nw * (u.weight_bits[w] ? u.weight_bits[w] : 32);
    int64_t bytes = packed_bytes(nw, u.weight_bits[w]);
    if (u.bias) bytes += packed_bytes(u.bias->data->numel(), u.bias_bits[w]);
    return 8 * bytes;
  }
  int64_t budget_in_cost_units() const {
    if (m_.budget_avg_weight_bits > 0)
      return static_cast<int64_t>(std::floor(m_.budget_avg_weight_bits * static_cast<double>(weight_count()) + 1e-9));
    return 8 * (m_.budget_param_bytes - fixed_bytes_);
  }
  std::string budget_text() const {
    std::ostringstream s;
    if (m_.budget_avg_weight_bits > 0)
      s << "avg_weight_bits " << m_.budget_avg_weight_bits;
    else
      s << "param_bytes " << m_.budget_param_bytes;
    return s.str();
  }
  std::string describe_cost(int64_t c) const {
    std::ostringstream s;
    if (m_.budget_avg_weight_bits > 0)
      s << "avg_weight_bits " << std::fixed << std::setprecision(3)
        << static_cast<double>(c) / static_cast<double>(weight_count());
    else
      s << "param_bytes " << c / 8 + fixed_bytes_ << " (" << fixed_bytes_ << " of them in parameters no searched "
        << "layer owns)";
    return s.str();
  }

  std::vector<quant::AllocationLayer> allocation_layers(bool with_error) const {
    std::vector<quant::AllocationLayer> layers;
    for (const SearchUnit& u : units_) {
      quant::AllocationLayer l;
      l.name = u.op;
      for (size_t w = 0; w < widths_.size(); ++w)
        l.options.push_back({widths_[w], cost(u, w), with_error ? u.sensitivity[w] : 0.0});
      layers.push_back(std::move(l));
    }
    return layers;
  }

  void sensitivities() {
    auto t0 = std::chrono::steady_clock::now();
    if (m_.method == BitSearch::Measured) {
      for (size_t w = 0; w < widths_.size(); ++w) measure_width(w, true);
      method_text_ = "measured: layerwise output error (noise:signal) of each unit at each width on " +
                     ctx_.validation.description;
    } else {
      hessian();
    }
    seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  void hessian() {
    const Graph& g = *ctx_.graph;
    std::vector<std::vector<at::Tensor>> batches;
    quant::BatchStream stream = ctx_.batches(ctx_.validation);
    std::vector<at::Tensor> inputs;
    while (stream.next(inputs)) batches.push_back(inputs);
    // Cross-entropy when the first output reads as class logits [N, C]; otherwise the squared
    // error of every output (detectors, regressors). No labels are needed either way.
    bool logits = false;
    {
      at::NoGradGuard ng;
      at::Tensor z = ctx_.executor().run(batches.at(0), static_cast<exec::HookList*>(nullptr))[0];
      logits = g.outputs.size() == 1 && z.dim() == 2 && z.size(1) > 1 && at::isFloatingType(z.scalar_type());
    }
    std::vector<const Value*> weights;
    for (const SearchUnit& u : units_) weights.push_back(u.weight);
    analysis::HessianOptions o;
    o.probes = m_.hessian_probes;
    std::vector<analysis::HessianTrace> traces =
        analysis::hutchinson_traces(ctx_.executor(), weights, batches,
                                    logits ? analysis::HessianLoss::CrossEntropy : analysis::HessianLoss::OutputMse, o);
    for (size_t i = 0; i < units_.size(); ++i) {
      SearchUnit& u = units_[i];
      u.trace = traces[i].trace;
      u.trace_std_error = traces[i].std_error;
      double mean_diag = traces[i].mean_diagonal();
      for (double e : u.quant_error) u.sensitivity.push_back(mean_diag * e);
    }
    ctx_.stats.data_passes += 1;
    method_text_ = std::string("hessian: tr(H_i)/n_i x |Q(W_i) - W_i|^2, tr(H_i) by Hutchinson (") +
                   std::to_string(o.probes) + " probes, Gauss-Newton form) of the " +
                   (logits ? "cross-entropy of the logits" : "squared error of the outputs against the float model") +
                   ", " + ctx_.validation.description;
  }

  double avg_bits(const quant::ParetoPoint& p) const {
    double bits = 0;
    for (size_t i = 0; i < units_.size(); ++i) {
      int b = units_[i].weight_bits[static_cast<size_t>(p.choice[i])];
      bits += static_cast<double>(units_[i].weight->data->numel()) * (b ? b : 32);
    }
    return bits / static_cast<double>(weight_count());
  }
  int64_t bytes_of(const quant::ParetoPoint& p) const {
    int64_t bytes = fixed_bytes_;
    for (size_t i = 0; i < units_.size(); ++i) {
      size_t w = static_cast<size_t>(p.choice[i]);
      bytes += packed_bytes(units_[i].weight->data->numel(), units_[i].weight_bits[w]);
      if (units_[i].bias) bytes += packed_bytes(units_[i].bias->data->numel(), units_[i].bias_bits[w]);
    }
    return bytes;
  }

  void report(const std::vector<quant::ParetoPoint>& front, const quant::ParetoPoint& best, int64_t before,
              int64_t after, bool thinned) {
    say(method_text_ + " (" + std::to_string(static_cast<int>(seconds_ + 0.5)) + " s)");
    std::ostringstream t;
    t << std::left << std::setw(34) << "unit" << std::setw(9) << "weights";
    for (int w : widths_) t << std::setw(11) << ("err@" + width_name(w));
    t << "chosen\n";
    for (size_t i = 0; i < units_.size(); ++i) {
      const SearchUnit& u = units_[i];
      std::string name = u.op.size() > 32 ? "..." + u.op.substr(u.op.size() - 29) : u.op;
      t << std::left << std::setw(34) << name << std::setw(9) << u.weight->data->numel();
      for (double s : u.sensitivity) {
        std::ostringstream e;
        e << std::scientific << std::setprecision(2) << s;
        t << std::setw(11) << e.str();
      }
      t << width_name(widths_[static_cast<size_t>(best.choice[i])]) << "\n";
    }
    if (ctx_.log) *ctx_.log << t.str();
    std::ostringstream line;
    line << std::fixed << std::setprecision(2) << "budget " << budget_text() << ": chosen avg weight bits "
         << avg_bits(best) << ", parameter bytes " << bytes_of(best) << " (was " << before << ", now " << after
         << "), predicted error " << std::scientific << std::setprecision(3) << best.error;
    say(line.str());
    // The trade-off: up to 9 Pareto points spread over the front, and the chosen one.
    std::vector<size_t> shown;
    size_t n = front.size();
    for (size_t k = 0; k < std::min<size_t>(n, 9); ++k) shown.push_back(n == 1 ? 0 : k * (n - 1) / 8);
    std::sort(shown.begin(), shown.end());
    shown.erase(std::unique(shown.begin(), shown.end()), shown.end());
    std::ostringstream pareto;
    pareto << "Pareto points (avg weight bits / parameter bytes / predicted error), " << n << " in all"
           << (thinned ? " (thinned: optimal to within 1/50000 of the cost range)" : "") << ":";
    for (size_t k : shown)
      pareto << " " << std::fixed << std::setprecision(2) << avg_bits(front[k]) << "/" << bytes_of(front[k]) << "/"
             << std::scientific << std::setprecision(2) << front[k].error;
    say(pareto.str());
    std::ostringstream note;
    note << "mixed precision (" << bit_search_name(m_.method) << ", budget " << budget_text() << "): avg weight bits "
         << std::fixed << std::setprecision(2) << avg_bits(best) << ", " << bytes_of(best) << " parameter bytes";
    ctx_.plan.notes.push_back(note.str());
    if (ctx_.out_dir.empty()) return;
    nlohmann::json j = {
        {"method", bit_search_name(m_.method)},
        {"sensitivity", method_text_},
        {"budget", budget_text()},
        {"widths", nlohmann::json::array()},
        {"chosen",
         {{"avg_weight_bits", avg_bits(best)}, {"param_bytes", bytes_of(best)}, {"predicted_error", best.error}}},
        {"units", nlohmann::json::array()},
        {"pareto", nlohmann::json::array()}};
    for (int w : widths_) j["widths"].push_back(width_name(w));
    for (size_t i = 0; i < units_.size(); ++i) {
      const SearchUnit& u = units_[i];
      nlohmann::json ju = {{"op", u.op},
                           {"type", u.type},
                           {"weights", u.weight->data->numel()},
                           {"chosen", width_name(widths_[static_cast<size_t>(best.choice[i])])},
                           {"sensitivity", u.sensitivity},
                           {"weight_error", u.quant_error}};
      if (m_.method == BitSearch::Hessian) {
        ju["hessian_trace"] = u.trace;
        ju["hessian_trace_std_error"] = u.trace_std_error;
      }
      j["units"].push_back(ju);
    }
    size_t step = std::max<size_t>(1, front.size() / 500);
    for (size_t k = 0; k < front.size(); k += step)
      j["pareto"].push_back({{"avg_weight_bits", avg_bits(front[k])},
                             {"param_bytes", bytes_of(front[k])},
                             {"predicted_error", front[k].error}});
    make_directories(ctx_.out_dir);
    write_file_atomic(ctx_.out_dir + "/mixed_precision.json", j.dump(1) + "\n");
  }

  QuantContext& ctx_;
  const MixedPrecisionSetting& m_;
  std::vector<int> widths_;
  std::vector<SearchUnit> units_;
  int64_t fixed_bytes_ = 0, budget_ = 0;
  std::string method_text_;
  double seconds_ = 0;
};
}  // namespace

PassResult MixedPrecisionPass::run(QuantContext& ctx) {
  const MixedPrecisionSetting& m = options(ctx);
  if (m.method != BitSearch::Off) return WidthSearch(ctx, m).run();
  if (m.auto_promote <= 0) return PassResult{};
  return promote_worst(ctx, m);
}

}  // namespace edgequant
