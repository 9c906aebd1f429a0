// calibrate: one data pass observes every tensor that owns a scale (cached in the context), then
// the setting's calibrator turns the observations into scales. Rerunning it with another
// calib_algorithm on the same graph costs no data pass.
#include <ostream>

#include "passes/pipeline.h"

namespace edgequant {

void calibrate_plan(QuantContext& ctx) {
  bool covered = ctx.observations.has_value();
  if (covered)
    for (const auto& v : ctx.graph->values())
      if (quant::observed_in_calibration(*v, ctx.plan) && !ctx.observations->by_value.count(v->name)) covered = false;
  ctx.count_walk(covered ? 1 : 2);
  if (!covered) {
    quant::BatchStream stream = ctx.batches(ctx.calibration);
    try {
      ctx.observations =
          quant::observe_activations(*ctx.graph, ctx.executor(), ctx.plan, stream, nullptr, ctx.setting().percentile);
    } catch (Error& e) {
      throw e.add_context(ctx.calibration.description);
    }
    ++ctx.stats.data_passes;
  }
  std::string chosen =
      quant::apply_calibration(*ctx.graph, ctx.executor(), ctx.plan, ctx.target, ctx.setting(), *ctx.observations);
  ctx.count_walk(4);  // constants, observed values, align-to-large ops, passives + biases
  quant::CalibrationReport& rep = ctx.calibration_report;
  rep.chosen = chosen;
  rep.algorithm = quant::calib_algorithm_for(ctx.setting(), ctx.target);
  rep.batches = ctx.observations->batches;
  rep.samples = ctx.observations->samples;
  rep.observed_tensors = static_cast<int64_t>(ctx.observations->by_value.size());
  rep.seconds = covered ? 0 : ctx.observations->seconds;
  rep.observer_seconds = ctx.observations->observer_seconds;
}

PassResult CalibratePass::run(QuantContext& ctx) {
  calibrate_plan(ctx);
  PassResult r;
  r.changed = true;
  return r;
}

}  // namespace edgequant
