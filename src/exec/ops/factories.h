// Declarations of every float kernel factory named in the op registry (src/ir/ops.def).
#pragma once
#include "exec/kernel.h"
#include "exec/onednn_conv.h"

namespace edgequant::exec {
#define EQ_OP(type, cls, float_kernel, int_kernel, flags) Kernel float_kernel(const Op& op, int64_t opset);
#include "ir/ops.def"
#undef EQ_OP

// Conv followed by its only reader, a ReLU/Clip with constant bounds, as one kernel (the
// executor fuses them when no hook needs to see the value between the two).
Kernel make_conv_clamped(const Op& conv, ClampPostOp clamp);

// The ONNX type of a QuantizeLinear's codes: its zero point's, else opset 21's output_dtype,
// else uint8. (4-bit codes run as int8/uint8 tensors, so the type is not the tensor's.)
DType quantize_linear_output_type(const Op& op);
}  // namespace edgequant::exec
