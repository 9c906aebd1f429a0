// A Pass is one step of the pipeline with a textual name (passes.def), so a pipeline is a list
// of names. It runs over one QuantContext; it declares which parts of the context it changes and
// which cached analyses stay valid (LLVM's preserved analyses, but preserving nothing by
// default); the pipeline drops the rest. Graph rewrites that need
// nothing but the graph derive from GraphPass and also run at import (normalize_graph).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace edgequant {

class QuantContext;

// Cached analyses a pass may keep (bit flags).
enum class Analysis : unsigned {
  Observations = 1u << 0,  // calibration histograms: computed from the graph and its constants
  FloatOutputs = 1u << 1,  // the executor's kernels: the graph's ops and the constants it holds
  ErrorReport = 1u << 2,   // the error analysis: graph, constants, plan and trained parameters
  LoweredForm = 1u << 3,   // the integer form: graph, constants, plan and trained parameters
};
constexpr unsigned kAllAnalyses = 0xFu;
constexpr unsigned operator|(Analysis a, Analysis b) { return static_cast<unsigned>(a) | static_cast<unsigned>(b); }
constexpr unsigned operator|(unsigned a, Analysis b) { return a | static_cast<unsigned>(b); }

// Parts of the quantization context a pass may change (bit flags). The setting is not one:
// passes read it (QuantContext::setting() is const) and never change it.
enum class Part : unsigned {
  Graph = 1u << 0,       // ops, values, shapes, attributes, graph inputs/outputs
  Constants = 1u << 1,   // the data of constant values (weights, biases)
  Plan = 1u << 2,        // the quantization plan (configs, scales, requantizations, notes)
  Parameters = 1u << 3,  // the trainable parameter store
};
constexpr unsigned operator|(Part a, Part b) { return static_cast<unsigned>(a) | static_cast<unsigned>(b); }
constexpr unsigned operator|(unsigned a, Part b) { return a | static_cast<unsigned>(b); }

// What a pass declares (passes.def): the parts it may change and the cached analyses that stay
// valid after it. Nothing is preserved unless declared, so a pass that forgets costs a
// recomputation, never a stale result. In verify mode (tests, debug builds,
// EDGEQUANT_VERIFY_PASSES=1) the manager fingerprints every part around each pass and fails
// on an undeclared change or a preserved analysis whose inputs changed.
struct PassDecl {
  unsigned writes = 0;     // Part bits
  unsigned preserves = 0;  // Analysis bits
};

struct PassResult {
  bool changed = false;
  int rewrites = 0;      // local rewrites (fused ops, folded constants, ...)
  unsigned dropped = 0;  // declared-preserved analyses this run invalidated after all
  PassResult& invalidate(Analysis a) {
    dropped |= static_cast<unsigned>(a);
    return *this;
  }
  PassResult& invalidate_all() {
    dropped = kAllAnalyses;
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
  virtual PassDecl declared() const { return {}; }  // default: writes nothing, preserves nothing
  virtual PassResult run(QuantContext& context) = 0;
};

// A rewrite of the graph alone. In a pipeline it invalidates every analysis when it changes
// the graph.
class GraphPass : public Pass {
 public:
  PassDecl declared() const override { return {Part::Graph | Part::Constants, kAllAnalyses}; }
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
