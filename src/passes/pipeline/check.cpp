// check: before calibration, every op the target cannot run or the deployable format cannot
// express (deploy/check.h); one error naming them all, nothing written. Skipped for --format none
// and when nothing is exported.
#include "deploy/check.h"

#include <sstream>

#include "deploy/deployable.h"
#include "passes/pipeline.h"

namespace edgequant {

PassResult CheckPass::run(QuantContext& ctx) {
  ExportFormat f = deploy::resolve_format(ctx.setting().export_setting.format, ctx.target, &ctx.plan);
  if (f == ExportFormat::None || ctx.out_dir.empty()) return PassResult{};
  std::vector<deploy::Finding> findings = deploy::check_deployable(*ctx.graph, ctx.plan, ctx.target, f);
  ctx.count_walk();
  if (findings.empty()) return PassResult{};
  std::ostringstream s;
  s << (ctx.model_path.empty() ? "the model" : ctx.model_path) << " cannot be exported as " << export_format_name(f)
    << " for " << ctx.target.name << " (" << findings.size() << " node" << (findings.size() > 1 ? "s" : "")
    << "; `edgequant check` lists them): ";
  for (size_t i = 0; i < findings.size(); ++i) s << (i ? " | " : "") << findings[i].line();
  fail(ErrorCode::Unsupported, s.str());
}

}  // namespace edgequant
