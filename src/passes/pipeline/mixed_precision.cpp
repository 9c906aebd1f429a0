// mixed-precision: promotes the K analysis units with the worst layerwise error (one unit
// quantized, measured at the graph outputs, on the validation samples) to int16 or float through
// the dispatching table, then reassigns and recalibrates (from the cached observations: no data
// pass). Reports what it costs: the units promoted and the extra parameter bytes on the chip.
#include <algorithm>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "ir/op_traits.h"
#include "passes/pipeline.h"

namespace edgequant {

namespace {
// Bytes of every quantized constant at its code width (ceil(bits / 8) per element).
int64_t parameter_bytes(const QuantContext& ctx) {
  int64_t bytes = 0;
  for (const auto& [name, c] : ctx.plan.values) {
    const Value* v = ctx.graph->find_value(name);
    if (!v || !v->is_constant() || c.state == QuantState::Float) continue;
    bytes += v->data->numel() * ((c.bits + 7) / 8);
  }
  return bytes;
}
}  // namespace

PassResult MixedPrecisionPass::run(QuantContext& ctx) {
  const MixedPrecisionSetting& m = options(ctx);
  auto say = [&](const std::string& line) {
    if (ctx.log) *ctx.log << "mixed-precision: " << line << "\n";
  };
  if (m.auto_promote <= 0) return PassResult{};
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

}  // namespace edgequant
