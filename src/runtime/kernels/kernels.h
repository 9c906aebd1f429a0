// Integer kernels of the runtime, one file per op family. A kernel reads its inputs (values or
// initializers), computes with ESP-DL's integer semantics and fills its outputs; output dtype and
// exponent come from the program's value info.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "runtime/int_graph.h"

namespace edgequant::runtime {

using TensorMapState = std::map<std::string, IntTensor>;

struct KernelArgs {
  const IntGraph& graph;
  const IntNode& node;
  std::vector<const IntTensor*> inputs;  // nullptr for omitted optional inputs
  std::vector<IntTensor>& outputs;       // sized to node.outputs, dtype/exponent preset
  TensorMapState* state = nullptr;       // per-node state kept between runs (streaming); nullptr: fresh

  const IntTensor& in(size_t i) const;  // throws InvalidModel (naming the node) when absent
  // Throws InvalidModel naming the node when the node lists fewer outputs (a damaged file).
  IntTensor& out(size_t i = 0) const {
    if (i >= outputs.size()) fail_node("has no output " + std::to_string(i));
    return outputs[i];
  }
  RoundingMode rounding() const { return graph.rounding; }
  [[noreturn]] void fail_node(const std::string& what) const;  // InvalidModel naming the node
};

using Kernel = void (*)(const KernelArgs&);
// nullptr when the op type has no integer kernel.
Kernel find_kernel(const std::string& op_type);
// The op's kernel also computes on float tensors (the registry's kFloatTensors flag).
bool kernel_computes_float(const std::string& op_type);
std::vector<std::string> kernel_op_types();

// x * 2^-shift rounded with `mode` (shift <= 0: exact left shift), exact for every int64.
int64_t shift_round(int64_t v, int shift, RoundingMode mode);
// The float32 result of one of ESP-DL's float formulas as a code: tool::round, then
// tool::truncate to the dtype (infinities saturate).
int64_t float_to_code(float v, DType d, RoundingMode mode);
// Saturates to the output tensor's dtype range.
inline int64_t saturate_to(int64_t v, DType d) { return saturate(v, dtype_min(d), dtype_max(d)); }
// Dequantized float of element i (codes * 2^e, or the float value).
double real_value(const IntTensor& t, int64_t i);
// Stores a real value into element i: rounds and saturates integer outputs.
void store_real(IntTensor& t, int64_t i, double x, RoundingMode mode);
// Sets the output's shape and zero-fills its data after checking the shape is sane (no negative
// dims, at most 2^30 elements): a corrupted file must end in an error, not an allocation failure.
void set_output(const KernelArgs& args, IntTensor& y, const Shape& shape);
// Throws (naming the node) unless every value is >= lo.
void check_at_least(const KernelArgs& args, const std::vector<int64_t>& v, int64_t lo, const char* what);

// Same dtype and grid (exponent, or scale and zero point): codes may move without rescaling.
bool same_grid(const IntTensor& a, const IntTensor& b);
// Row-major strides of a shape.
std::vector<int64_t> strides_of(const Shape& s);
// NumPy broadcast of two shapes; throws through `args` when incompatible.
Shape broadcast_shape(const KernelArgs& args, const Shape& a, const Shape& b);
// Flat index into `s` (broadcast) of the output multi-index `idx` of shape `out`.
int64_t broadcast_index(const Shape& s, const Shape& out, const std::vector<int64_t>& idx);
// Normalises a possibly negative axis of rank `rank`.
int64_t norm_axis(const KernelArgs& args, int64_t axis, int64_t rank);
// Integer values of an int64 initializer input (shapes, axes, pads).
std::vector<int64_t> ints_input(const KernelArgs& args, size_t i);

// ESP-DL's element-wise loop (dl_base_elemwise.cpp) first merges the broadcast shapes of its two
// operands, then runs one row kernel over the innermost merged dimension; some kernels (Div)
// choose their float32 formula by which operand is a scalar along that row. The operands'
// extents in that dimension (ESP-DL's input0_d0/input1_d0) and the merged rank.
struct ElemwiseRow {
  int64_t a = 1, b = 1;
  size_t merged_dims = 1;
};
ElemwiseRow espdl_elemwise_row(Shape a, Shape b, Shape out);
// ESP-DL's Div (dl_base_div.cpp) on integer codes, r = 2^(e_a - e_b - e_out):
// - Quotient: round((a * r) / b), one float32 rounding before the integer one (vector / vector,
//   and a scalar dividend);
// - ReciprocalProduct: round(a * (r / b)), two float32 roundings (a scalar divisor per row:
//   int16 whenever the divisor's row extent is 1, int8 unless the dividend's is 1 too);
// - Quotient, and 0 / 0 gives the minimum code (int8 with a one-element dividend: the lookup
//   table ESP-DL builds, whose entry for b = 0 is "+inf if a > 0, else -inf").
// Otherwise a = 0 gives 0 and b = 0 the maximum code of a's sign.
enum class DivForm { Quotient, ReciprocalProduct, QuotientZeroByZeroIsMin };
DivForm espdl_div_form(const Shape& a, const Shape& b, const Shape& out, DType dtype);

// ESP-DL's MatMul reads input 1 ([..., C, N]) as a 1x1 Conv filter: each [C, N] slice in the
// filter memory order of the target (ESP-PPQ reorders a constant, and inserts Transpose/Reshape
// (+ Slice/Concat) nodes before a computed one). With block a (the target's espdl_filter_blocks
// for the dtype; 0 on C targets): columns n < N - N % a in blocks (b, c, j), the rest N-major.
// Memory offset of element (c, n) within its slice.
inline int64_t matmul_b_offset(int64_t c, int64_t n, int64_t C, int64_t N, int64_t a) {
  int64_t aligned = a > 0 ? N / a * a : 0;
  if (n < aligned) return (n / a) * C * a + c * a + n % a;
  return aligned * C + (n - aligned) * C + c;
}
// The block a of a MatMul's input 1 in `graph` (0: plain N-major).
int64_t matmul_b_block(const IntGraph& graph, DType b);

// Reduced-dimension flags of a Reduce* node (ONNX: no axes means all, unless noop_with_empty_axes).
std::vector<bool> reduce_flags(const std::vector<int64_t>& axes, size_t rank, bool noop_with_empty_axes);
// The reduction patterns ESP-DL's ReduceBase computes (others leave its output unwritten).
bool espdl_reduce_supported(const std::vector<bool>& flags);

#define EQ_RUNTIME_KERNEL(name) void name(const KernelArgs& args)
// Declared per family (the op registry, src/ir/ops.def, maps op type -> kernel; none: no kernel).
#define EQ_OP(type, cls, float_kernel, int_kernel, flags) EQ_RUNTIME_KERNEL(int_kernel);
#include "ir/ops.def"
#undef EQ_OP

}  // namespace edgequant::runtime
