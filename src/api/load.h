// Loading a model the way every command does: ONNX import, then the normalisation pipeline.
#pragma once
#include <memory>
#include <string>

#include "ir/graph.h"

namespace edgequant {

std::unique_ptr<Graph> load_model(const std::string& path, bool normalize = true);

}  // namespace edgequant
