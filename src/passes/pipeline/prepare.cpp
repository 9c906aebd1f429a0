// prepare: the import normalisation (idempotent on a loaded model) and the executor. When the
// normalisation changed the graph, every analysis is dropped and the executor is made on first use.
#include "passes/pipeline.h"

namespace edgequant {

PassResult PreparePass::run(QuantContext& ctx) {
  size_t before = ctx.graph->ops().size();
  normalize_graph(*ctx.graph);
  ctx.count_walk(3);  // remove-identity, fold-constants, fold-batchnorm
  // Ops the target's runtime lacks but runs once decomposed into ops it has.
  const auto& runtime_ops = ctx.target.runtime_ops;
  if (!runtime_ops.empty() && !runtime_ops.count("InstanceNormalization")) {
    PassContext pc;
    run_passes(*ctx.graph, {"decompose-instance-norm"}, pc);
  }
  PassResult r;
  r.changed = ctx.graph->ops().size() != before;
  if (r.changed) return r.invalidate_all();
  ctx.executor();
  return r;
}

}  // namespace edgequant
