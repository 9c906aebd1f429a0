// prepare: the import normalisation (idempotent on a loaded model) and the executor. When the
// normalisation changed the graph, every analysis is dropped and the executor is made on first use.
#include "passes/graph_passes.h"
#include "passes/pipeline.h"
#include "runtime/kernels/kernels.h"

namespace edgequant {

PassResult PreparePass::run(QuantContext& ctx) {
  size_t before = ctx.graph->ops().size();
  normalize_graph(*ctx.graph);
  ctx.count_walk(3);  // remove-identity, fold-constants, fold-batchnorm
  // Integer targets (a runtime op list) get normalisations they cannot run whole as the blocks
  // of ops they run: absent from the chip's runtime, or without an integer kernel here.
  const auto& runtime_ops = ctx.target.runtime_ops;
  auto runs_whole = [&](const char* type) { return runtime_ops.count(type) && runtime::find_kernel(type); };
  if (!runtime_ops.empty()) {
    DecomposeNormalizationPass pass;
    pass.skip_instance_norm = runs_whole("InstanceNormalization");
    pass.skip_layer_norm = runs_whole("LayerNormalization");
    PassContext pc;
    pass.run(*ctx.graph, pc);
    if (!runs_whole("ConvTranspose") && runtime_ops.count("InsertZeros"))
      DecomposeConvTransposePass().run(*ctx.graph, pc);
  }
  PassResult r;
  r.changed = ctx.graph->ops().size() != before;
  if (r.changed) return r.invalidate_all();
  ctx.executor();
  return r;
}

}  // namespace edgequant
