// Declarations of the graph-level passes (one implementation file each).
#pragma once
#include "passes/pass.h"

namespace edgequant {

// After local rewrites that appended ops: producers first again and unused values gone; `changed`
// set from the rewrite count.
inline PassResult finish_rewrites(Graph& graph, PassResult result) {
  if (result.rewrites) {
    graph.topo_sort();
    graph.remove_dead();
  }
  result.changed = result.rewrites > 0;
  return result;
}

// Identity and inference-time Dropout forward their input (unless they feed a graph output).
class RemoveIdentityPass : public GraphPass {
 public:
  const char* name() const override { return "remove-identity"; }
  using GraphPass::run;
  PassResult run(Graph& graph, PassContext& context) override;
};

// Evaluates ops whose inputs are all constants (and Shape/Gather on static dims), as
// torch.onnx.export's Shape->Gather->Unsqueeze->Concat->Reshape chains need.
class FoldConstantsPass : public GraphPass {
 public:
  const char* name() const override { return "fold-constants"; }
  using GraphPass::run;
  PassResult run(Graph& graph, PassContext& context) override;
};

// Folds BatchNormalization into a preceding Conv/ConvTranspose/Gemm that feeds only it.
class FoldBatchNormPass : public GraphPass {
 public:
  const char* name() const override { return "fold-batchnorm"; }
  using GraphPass::run;
  PassResult run(Graph& graph, PassContext& context) override;
};

// auto_pad SAME_UPPER/SAME_LOWER/VALID on Conv and pooling becomes explicit pads (static shapes).
class ExplicitPadsPass : public GraphPass {
 public:
  const char* name() const override { return "explicit-pads"; }
  using GraphPass::run;
  PassResult run(Graph& graph, PassContext& context) override;
};

// The pads of a Pad op (the opset-2 attribute or the constant input); empty when not constant.
std::vector<int64_t> constant_pads(const Op& pad);

// A zero constant Pad feeding only a Conv or AveragePool becomes its pads.
class FusePadPass : public GraphPass {
 public:
  const char* name() const override { return "fuse-pad"; }
  using GraphPass::run;
  PassResult run(Graph& graph, PassContext& context) override;
};

// InstanceNormalization and LayerNormalization become ReduceMean, Sub, Mul, ReduceMean, Add, Sqrt,
// Div, Mul(, Add) (for integer targets that cannot run them whole; `prepare` runs it by target).
class DecomposeNormalizationPass : public GraphPass {
 public:
  bool skip_instance_norm = false, skip_layer_norm = false;
  const char* name() const override { return "decompose-normalization"; }
  using GraphPass::run;
  PassResult run(Graph& graph, PassContext& context) override;
};

// ConvTranspose becomes InsertZeros + a stride-1 Conv (ESP-DL's form; `prepare` runs it for
// integer targets whose runtime has no ConvTranspose).
class DecomposeConvTransposePass : public GraphPass {
 public:
  const char* name() const override { return "decompose-conv-transpose"; }
  using GraphPass::run;
  PassResult run(Graph& graph, PassContext& context) override;
};

}  // namespace edgequant
