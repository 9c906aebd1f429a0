// prepare: the import normalisation (idempotent on a loaded model) and the executor.
#include "passes/pipeline.h"

namespace edgequant {

PassResult PreparePass::run(QuantContext& ctx) {
  size_t before = ctx.graph->ops().size();
  normalize_graph(*ctx.graph);
  ctx.count_walk(3);  // remove-identity, fold-constants, fold-batchnorm
  PassResult r;
  r.changed = ctx.graph->ops().size() != before;
  if (r.changed) r.preserved = 0;
  ctx.invalidate(r.preserved);
  ctx.executor();
  return r;
}

}  // namespace edgequant
