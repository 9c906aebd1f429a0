// lower: the integer form of the calibrated plan (quant/lower.h), kept in the context for the
// simulator, the integer runtime and the exporters.
#include "passes/pipeline.h"

namespace edgequant {

PassResult LowerPass::run(QuantContext& ctx) {
  ctx.lowered_form();
  return PassResult{};
}

}  // namespace edgequant
