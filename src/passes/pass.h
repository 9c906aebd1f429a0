// A Pass is one graph or quantization transformation with a textual name (passes.def), so a
// pipeline is a list of names. run() reports whether it changed the graph.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace edgequant {

struct PassContext {
  bool verbose = false;
};

struct PassResult {
  bool changed = false;
  int rewrites = 0;  // how many local rewrites (fused ops, folded constants, ...)
};

class Pass {
 public:
  virtual ~Pass() = default;
  virtual const char* name() const = 0;
  virtual PassResult run(Graph& graph, PassContext& context) = 0;
};

std::unique_ptr<Pass> make_pass(const std::string& name);  // throws InvalidSetting listing valid names
std::vector<std::string> pass_names();
// Runs the named passes in order; errors carry "pass 'name'" context.
void run_passes(Graph& graph, const std::vector<std::string>& names, PassContext& context);

// The normalisation import applies: drop Identity/Dropout, fold constant (shape) computations,
// fold BatchNormalization into the preceding Conv/ConvTranspose/Gemm.
void normalize_graph(Graph& graph);

}  // namespace edgequant
