// Value types for graphs libonnx's shape inference cannot read (Debian's libonnx 1.12 knows
// opsets up to 17): one run of the executor's own kernels on zero inputs records every op
// output's element type, and its shape when no graph input has a symbolic dimension.
#pragma once
#include "ir/graph.h"

namespace edgequant::exec {

// Returns how many values got a type; 0 when an input's shape is unknown or the run fails on
// zeros (the graph then keeps the types it has).
int infer_types_by_running(Graph& graph);

}  // namespace edgequant::exec
