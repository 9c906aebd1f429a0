// Pass registry (explicit list from passes.def, no static constructors) and the import pipeline.
#include "edgequant/error.h"
#include "passes/graph_passes.h"
#include "passes/pass.h"
#include "passes/pipeline.h"

namespace edgequant {

std::unique_ptr<Pass> make_pass(const std::string& name) {
#define EQ_PASS(text, type) \
  if (name == text) return std::make_unique<type>();
#include "passes/passes.def"
#undef EQ_PASS
  std::string valid;
  for (const auto& n : pass_names()) valid += (valid.empty() ? "" : ", ") + n;
  fail(ErrorCode::InvalidSetting, "unknown pass '" + name + "' (valid: " + valid + ")");
}

std::vector<std::string> pass_names() {
  return {
#define EQ_PASS(text, type) text,
#include "passes/passes.def"
#undef EQ_PASS
  };
}

PassResult GraphPass::run(QuantContext& context) {
  PassContext pc;
  PassResult r = run(*context.graph, pc);
  if (r.changed) r.invalidate_all();
  return r;
}

void run_passes(Graph& graph, const std::vector<std::string>& names, PassContext& context) {
  for (const auto& n : names) {
    auto pass = make_pass(n);
    auto* graph_pass = dynamic_cast<GraphPass*>(pass.get());
    if (!graph_pass) fail(ErrorCode::Internal, "pass '" + n + "' needs a quantization context");
    try {
      graph_pass->run(graph, context);
    } catch (Error& e) {
      throw e.add_context("pass '" + n + "'");
    }
  }
}

void normalize_graph(Graph& graph) {
  PassContext ctx;
  // Identity first so folding sees through it; constants before BN so folded weights count.
  run_passes(graph, {"remove-identity", "fold-constants", "fold-batchnorm", "explicit-pads", "fuse-pad"}, ctx);
  graph.remove_dead();
}

}  // namespace edgequant
