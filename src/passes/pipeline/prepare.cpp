// prepare: the import normalisation (idempotent on a loaded model) and the executor.
#include "passes/pipeline.h"

namespace edgequant {

PassResult PreparePass::run(QuantContext& ctx) {
  size_t before = ctx.graph->ops().size();
  normalize_graph(*ctx.graph);
  ctx.count_walk(3);  // remove-identity, fold-constants, fold-batchnorm
  PassResult r;
  r.changed = ctx.graph->ops().size() != before;
  if (r.changed) {
    r.invalidate_all();
    ctx.invalidate(0);  // the executor below is built on the normalised graph
  }
  ctx.executor();
  if (r.changed) r.dropped &= ~static_cast<unsigned>(Analysis::FloatOutputs);
  return r;
}

}  // namespace edgequant
