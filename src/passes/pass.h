// A Pass is one step of the pipeline with a textual name (passes.def), so a pipeline is a list
// of names. It runs over one QuantContext and returns what it changed and which cached analyses
// still hold (LLVM's preserved analyses); the pipeline drops the rest. Graph rewrites that need
// nothing but the graph derive from GraphPass and also run at import (normalize_graph).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace edgequant {

class QuantContext;

// Cached analyses a pass may invalidate (bit flags).
enum class Analysis : unsigned {
  Observations = 1u << 0,    // calibration histograms (valid while graph and observed tensors stay)
  FloatOutputs = 1u << 1,    // float activations of the validation batches (graph unchanged)
  ErrorReport = 1u << 2,     // the error analysis (plan unchanged)
  LoweredForm = 1u << 3,     // the integer form (plan and weights unchanged)
};
constexpr unsigned kAllAnalyses = 0xFu;

struct PassResult {
  bool changed = false;
  int rewrites = 0;                  // local rewrites (fused ops, folded constants, ...)
  unsigned preserved = kAllAnalyses;  // analyses still valid afterwards
  PassResult& invalidate(Analysis a) {
    preserved &= ~static_cast<unsigned>(a);
    return *this;
  }
};

struct PassContext {
  bool verbose = false;
};

class Pass {
 public:
  virtual ~Pass() = default;
  virtual const char* name() const = 0;
  virtual PassResult run(QuantContext& context) = 0;
};

// A rewrite of the graph alone. In a pipeline it invalidates every analysis when it changes
// the graph.
class GraphPass : public Pass {
 public:
  virtual PassResult run(Graph& graph, PassContext& context) = 0;
  PassResult run(QuantContext& context) override;
};

std::unique_ptr<Pass> make_pass(const std::string& name);  // throws InvalidSetting listing valid names
std::vector<std::string> pass_names();
// Runs the named graph passes in order; errors carry "pass 'name'" context.
void run_passes(Graph& graph, const std::vector<std::string>& names, PassContext& context);

// The normalisation import applies: drop Identity/Dropout, fold constant (shape) computations,
// fold BatchNormalization into the preceding Conv/ConvTranspose/Gemm.
void normalize_graph(Graph& graph);

}  // namespace edgequant
