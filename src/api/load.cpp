// load_model: import + normalize, errors carry the file name.
#include "api/load.h"

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

}  // namespace edgequant
