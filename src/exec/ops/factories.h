// Declarations of every kernel factory named in ops.def.
#pragma once
#include "exec/kernel.h"

namespace edgequant::exec {
#define EQ_OP(type, factory) Kernel factory(const Op& op, int64_t opset);
#include "exec/ops/ops.def"
#undef EQ_OP
}  // namespace edgequant::exec
