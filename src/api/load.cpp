// load_model: import + normalize, errors carry the file name.
#include "api/load.h"

#include <filesystem>

#include "edgequant/error.h"
#include "exec/infer_types.h"
#include "onnx/onnx_io.h"
#include "passes/pass.h"

namespace edgequant {

std::unique_ptr<Graph> load_model(const std::string& path, bool normalize) {
  auto g = import_onnx(path);
  // libonnx 1.12 infers opsets <= 17 only: newer graphs get their types from our own kernels.
  if (g->opset > kLibonnxMaxOpset) exec::infer_types_by_running(*g);
  if (normalize) {
    try {
      normalize_graph(*g);
    } catch (Error& e) {
      throw e.add_context(path);
    }
  }
  return g;
}

Target load_directory_target(const std::string& dir, const QuantPlan& plan) {
  std::string tf = dir + "/target.yaml";
  Target target = load_target(std::filesystem::exists(tf) ? tf : plan.target_name);
  if (target.name != plan.target_name)
    fail(ErrorCode::InvalidInput,
         tf + ": target '" + target.name + "', but quant_config.json was made for '" + plan.target_name + "'");
  return target;
}

}  // namespace edgequant
