// assign: a QuantConfig for every tensor the target quantizes (quant/quantizer.h). Observations
// survive: calibrate checks that they cover every tensor the new plan observes.
#include "passes/pipeline.h"
#include "quant/quantizer.h"

namespace edgequant {

void assign_plan(QuantContext& ctx, const Setting& setting) {
  ctx.plan = quant::assign_quant_configs(*ctx.graph, ctx.target, setting);
  ctx.count_walk(3);  // inputs and ops, custom scales and channel rules, verify
  ctx.parameters.clear();
}

PassResult AssignPass::run(QuantContext& ctx) {
  assign_plan(ctx, ctx.setting());
  PassResult r;
  r.changed = true;
  return r;
}

}  // namespace edgequant
