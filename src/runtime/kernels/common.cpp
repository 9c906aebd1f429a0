// Shared kernel helpers and the op type -> integer kernel table (from the op registry, src/ir/ops.def).
#include <cmath>
#include <map>

#include "edgequant/error.h"
#include "ir/op_traits.h"
#include "runtime/kernels/kernels.h"

namespace edgequant::runtime {

const IntTensor& KernelArgs::in(size_t i) const {
  if (i >= inputs.size() || !inputs[i]) fail_node("input " + std::to_string(i) + " is missing");
  return *inputs[i];
}

void KernelArgs::fail_node(const std::string& what) const {
  fail(ErrorCode::InvalidModel, "node '" + node.name + "' (" + node.op_type + "): " + what);
}

// The registry's "none": a type without an integer kernel (never entered in the table).
EQ_RUNTIME_KERNEL(none) { args.fail_node("has no integer kernel"); }

namespace {
const std::map<std::string, Kernel>& table() {
  static const std::map<std::string, Kernel> t = [] {
    std::map<std::string, Kernel> m;
#define EQ_OP(type, cls, float_kernel, int_kernel, flags) \
  if (&int_kernel != &none) m.emplace(op_type_name(OpType::type), &int_kernel);
#include "ir/ops.def"
#undef EQ_OP
    return m;
  }();
  return t;
}
}  // namespace

Kernel find_kernel(const std::string& op_type) {
  auto it = table().find(op_type);
  return it == table().end() ? nullptr : it->second;
}

bool kernel_computes_float(const std::string& op_type) {
  return find_kernel(op_type) && op_has(op_type, kFloatTensors);
}

std::vector<std::string> kernel_op_types() {
  std::vector<std::string> v;
  for (const auto& [k, _] : table()) v.push_back(k);
  return v;
}

int64_t float_to_code(float v, DType d, RoundingMode mode) {
  double q = round_value(static_cast<double>(v), mode);
  return saturate(static_cast<int64_t>(std::max(-9e18, std::min(9e18, q))), dtype_min(d), dtype_max(d));
}

int64_t shift_round(int64_t v, int shift, RoundingMode mode) {
  if (shift <= 0) {
    if (shift < -62) return v == 0 ? 0 : (v > 0 ? INT64_MAX : INT64_MIN);
    int64_t limit = INT64_MAX >> -shift;
    if (v > limit) return INT64_MAX;
    if (v < -limit) return INT64_MIN;
    return v * (int64_t(1) << -shift);
  }
  if (shift > 62) return 0;
  int64_t floor = v >> shift;  // arithmetic: rounds toward -inf
  int64_t rem = v - floor * (int64_t(1) << shift);
  int64_t half = int64_t(1) << (shift - 1);
  if (rem > half) return floor + 1;
  if (rem < half) {
    if (rem == 0) return floor;
    switch (mode) {
      case RoundingMode::Ceil:
        return floor + 1;
      case RoundingMode::TowardZero:
        return v < 0 ? floor + 1 : floor;
      default:
        return floor;
    }
  }
  switch (mode) {  // an exact tie
    case RoundingMode::HalfEven:
      return floor + (floor & 1);
    case RoundingMode::HalfUp:
      return floor + 1;
    case RoundingMode::HalfAwayFromZero:
      return v < 0 ? floor : floor + 1;
    case RoundingMode::Floor:
      return floor;
    case RoundingMode::Ceil:
      return floor + 1;
    case RoundingMode::TowardZero:
      return v < 0 ? floor + 1 : floor;
  }
  return floor;
}

double real_value(const IntTensor& t, int64_t i) {
  if (t.is_float()) return t.floats[static_cast<size_t>(i)];
  if (t.is_pow2()) return std::ldexp(static_cast<double>(t.ints[static_cast<size_t>(i)]), t.exponent());
  return static_cast<double>(t.ints[static_cast<size_t>(i)] - t.zero_point()) * t.scale();
}

void store_real(IntTensor& t, int64_t i, double x, RoundingMode mode) {
  if (t.is_float()) {
    t.floats[static_cast<size_t>(i)] = static_cast<float>(x);
    return;
  }
  double q = t.is_pow2() ? round_value(std::ldexp(x, -t.exponent()), mode)
                         : round_value(x / t.scale(), mode) + static_cast<double>(t.zero_point());
  double lo = static_cast<double>(dtype_min(t.dtype)), hi = static_cast<double>(dtype_max(t.dtype));
  t.ints[static_cast<size_t>(i)] = static_cast<int64_t>(q < lo ? lo : (q > hi ? hi : q));
}

void set_output(const KernelArgs& args, IntTensor& y, const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && n > (int64_t(1) << 30) / d))
      args.fail_node("output shape " + shape_str(shape) + " is impossible");
    n *= d;
  }
  y.shape = shape;
  if (y.is_float())
    y.floats.assign(size_t(n), 0.f);
  else
    y.ints.assign(size_t(n), 0);
}

void check_at_least(const KernelArgs& args, const std::vector<int64_t>& v, int64_t lo, const char* what) {
  for (int64_t x : v)
    if (x < lo) args.fail_node(std::string(what) + " must be at least " + std::to_string(lo));
}

bool same_grid(const IntTensor& a, const IntTensor& b) {
  if (a.dtype != b.dtype) return false;
  if (a.is_float()) return true;
  if (a.is_pow2() != b.is_pow2()) return false;
  return a.is_pow2() ? a.exponent() == b.exponent() : a.scale() == b.scale() && a.zero_point() == b.zero_point();
}

std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int64_t i = static_cast<int64_t>(s.size()) - 2; i >= 0; --i)
    st[size_t(i)] = st[size_t(i + 1)] * s[size_t(i + 1)];
  return st;
}

Shape broadcast_shape(const KernelArgs& args, const Shape& a, const Shape& b) {
  size_t r = std::max(a.size(), b.size());
  Shape out(r, 1);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1)
      args.fail_node("shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int64_t broadcast_index(const Shape& s, const Shape& out, const std::vector<int64_t>& idx) {
  int64_t flat = 0;
  size_t off = out.size() - s.size();
  for (size_t i = 0; i < s.size(); ++i) flat = flat * s[i] + (s[i] == 1 ? 0 : idx[i + off]);
  return flat;
}

int64_t norm_axis(const KernelArgs& args, int64_t axis, int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= std::max<int64_t>(rank, 1)) args.fail_node("axis " + std::to_string(axis) + " out of range");
  return a;
}

std::vector<int64_t> ints_input(const KernelArgs& args, size_t i) {
  const IntTensor& t = args.in(i);
  if (t.is_float()) args.fail_node("input " + std::to_string(i) + " must be an integer tensor");
  return t.ints;
}

}  // namespace edgequant::runtime
