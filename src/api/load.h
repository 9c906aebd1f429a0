// Loading a model the way every command does: ONNX import, then the normalisation pipeline.
#pragma once
#include <memory>
#include <string>

#include "ir/graph.h"
#include "ir/quant_config.h"
#include "target/target.h"

namespace edgequant {

std::unique_ptr<Graph> load_model(const std::string& path, bool normalize = true);

// The target a `quantize` output directory was made for: its own copy (DIR/target.yaml, so a
// target given by a path that is gone still loads), else the plan's target name (directories
// written before the copy). A copy for another target than the plan's is bad input.
Target load_directory_target(const std::string& dir, const QuantPlan& plan);

}  // namespace edgequant
