// If with a data-dependent condition: each branch is a subgraph run by an executor of its own;
// the op's inputs after the condition are the outer-scope values the branches read (the
// branches' graph inputs, in order). Branches run without hooks: If stays float (op traits).
#include <ATen/ATen.h>

#include <memory>

#include "exec/executor.h"
#include "exec/ops/factories.h"

namespace edgequant::exec {

Kernel make_if(const Op& op, int64_t) {
  auto then_it = op.subgraphs.find("then_branch"), else_it = op.subgraphs.find("else_branch");
  if (then_it == op.subgraphs.end() || else_it == op.subgraphs.end()) unsupported(op, "an If without both branches");
  // The subgraphs are shared, immutable and outlive the kernel (the closure holds them).
  std::shared_ptr<const Graph> then_g = then_it->second, else_g = else_it->second;
  auto then_ex = std::make_shared<Executor>(*then_g), else_ex = std::make_shared<Executor>(*else_g);
  std::string where = op.describe();
  return [then_g, else_g, then_ex, else_ex, where](const Tensors& in) -> Tensors {
    if (in.empty() || !in[0].defined() || in[0].numel() != 1)
      fail(ErrorCode::InvalidInput, where + ": the condition must be a single value");
    bool take_then = in[0].to(at::kDouble).item<double>() != 0;
    Tensors outer(in.begin() + 1, in.end());
    return (take_then ? then_ex : else_ex)->run(outer);
  };
}

}  // namespace edgequant::exec
