// analyse: graphwise and layerwise error on the validation samples (never the calibration ones
// unless the data has a single sample), simulated from the lowered integer form.
#include "passes/pipeline.h"

namespace edgequant {

analysis::AnalysisReport analyse_validation(QuantContext& ctx, bool graphwise, bool layerwise) {
  std::vector<analysis::Batch> batches;
  quant::BatchStream stream = ctx.batches(ctx.validation);
  analysis::Batch b;
  while (stream.next(b)) batches.push_back(b);
  quant::QuantSimulator& sim = ctx.simulator();
  ctx.count_walk(2);  // units, downstream sets
  analysis::AnalysisReport report;
  try {
    exec::HookList reference = ctx.float_reference_hooks();
    report = analysis::analyse(*ctx.graph, ctx.executor(), sim, ctx.plan, batches, graphwise, layerwise, &reference);
  } catch (Error& e) {
    throw e.add_context(ctx.validation.description);
  }
  report.samples_description = ctx.validation.description;
  ++ctx.stats.data_passes;
  return report;
}

PassResult AnalysePass::run(QuantContext& ctx) {
  const AnalysisSetting& a = options(ctx);
  ctx.report = analyse_validation(ctx, a.graphwise, a.layerwise);
  return PassResult{};
}

}  // namespace edgequant
