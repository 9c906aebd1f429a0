// The float kernel table (from the op registry, src/ir/ops.def) and helpers shared by the op families.
#include "exec/kernel.h"

#include <ATen/ATen.h>

#include <map>

#include "exec/ops/factories.h"
#include "ir/op_traits.h"

namespace edgequant::exec {

// The registry's "none": a type without a float kernel (never entered in the table).
Kernel none(const Op& op, int64_t) { fail(ErrorCode::Internal, op.describe() + ": has no float kernel"); }

static const std::map<std::string, KernelFactory>& table() {
  static const std::map<std::string, KernelFactory> t = [] {
    std::map<std::string, KernelFactory> m;
#define EQ_OP(type, cls, float_kernel, int_kernel, flags) \
  if (&float_kernel != &none) m.emplace(op_type_name(OpType::type), &float_kernel);
#include "ir/ops.def"
#undef EQ_OP
    return m;
  }();
  return t;
}

KernelFactory find_kernel_factory(const std::string& op_type) {
  auto it = table().find(op_type);
  return it == table().end() ? nullptr : it->second;
}

std::vector<std::string> supported_op_types() {
  std::vector<std::string> names;
  for (const auto& kv : table()) names.push_back(kv.first);
  return names;
}

void unsupported(const Op& op, const std::string& what) { fail(ErrorCode::Unsupported, op.describe() + ": " + what); }

std::vector<int64_t> int_values(const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU).to(at::kLong).contiguous().reshape({-1});
  const int64_t* p = c.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

int64_t single_int(const at::Tensor& t, const std::string& where, const std::string& what) {
  if (!t.defined() || t.numel() != 1)
    fail(ErrorCode::InvalidInput,
         where + ": " + what + " must hold one value, it holds " + std::to_string(t.defined() ? t.numel() : 0));
  return int_values(t)[0];
}

int64_t normalize_axis(int64_t axis, int64_t rank, const Op& op) { return normalize_axis(axis, rank, op.describe()); }

int64_t normalize_axis(int64_t axis, int64_t rank, const std::string& where) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    fail(ErrorCode::InvalidModel,
         where + ": axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return a;
}

std::vector<int64_t> resolve_pads(const std::string& auto_pad, const std::vector<int64_t>& pads,
                                  at::IntArrayRef spatial, const std::vector<int64_t>& kernel,
                                  const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations) {
  size_t n = spatial.size();
  std::vector<int64_t> out(2 * n, 0);
  if (auto_pad == "NOTSET" || auto_pad.empty()) {
    if (!pads.empty()) out = pads;
    return out;
  }
  if (auto_pad == "VALID") return out;
  for (size_t i = 0; i < n; ++i) {
    int64_t o = (spatial[i] + strides[i] - 1) / strides[i];
    int64_t total = std::max<int64_t>(0, (o - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - spatial[i]);
    int64_t small = total / 2, large = total - small;
    out[i] = auto_pad == "SAME_UPPER" ? small : large;
    out[i + n] = auto_pad == "SAME_UPPER" ? large : small;
  }
  return out;
}

std::vector<int64_t> aten_pad_list(const std::vector<int64_t>& pads) {
  size_t n = pads.size() / 2;
  std::vector<int64_t> list;
  for (size_t i = n; i-- > 0;) {
    list.push_back(pads[i]);
    list.push_back(pads[i + n]);
  }
  return list;
}

at::Tensor pad_axis(const at::Tensor& x, int64_t axis, int64_t before, int64_t after) {
  std::vector<int64_t> list(static_cast<size_t>(2 * (x.dim() - axis)), 0);  // last dim first
  list[list.size() - 2] = before;
  list[list.size() - 1] = after;
  return at::constant_pad_nd(x, list, 0);
}

WindowAttrs read_window_attrs(const Op& op) {
  WindowAttrs a;
  a.auto_pad = op.attr_string("auto_pad", "NOTSET");
  if (a.auto_pad != "NOTSET" && a.auto_pad != "VALID" && a.auto_pad != "SAME_UPPER" && a.auto_pad != "SAME_LOWER")
    unsupported(op, "auto_pad '" + a.auto_pad + "'");
  a.kernel = op.attr_ints("kernel_shape");
  a.strides = op.attr_ints("strides");
  a.dilations = op.attr_ints("dilations");
  a.pads = op.attr_ints("pads");
  a.group = op.attr_int("group", 1);
  return a;
}

std::vector<int64_t> or_ones(const std::vector<int64_t>& v, size_t n) {
  return v.empty() ? std::vector<int64_t>(n, 1) : v;
}

bool pads_symmetric(const std::vector<int64_t>& pads) {
  size_t n = pads.size() / 2;
  for (size_t i = 0; i < n; ++i)
    if (pads[i] != pads[i + n]) return false;
  return true;
}

at::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return at::kFloat;
    case DType::Float64:
      return at::kDouble;
    case DType::Float16:
      return at::kHalf;
    case DType::BFloat16:
      return at::kBFloat16;
    case DType::Int64:
      return at::kLong;
    case DType::Int32:
      return at::kInt;
    case DType::Int16:
      return at::kShort;
    case DType::Int8:
    case DType::Int4:
      return at::kChar;  // 4-bit codes run unpacked
    case DType::UInt8:
    case DType::UInt4:
      return at::kByte;
    case DType::Bool:
      return at::kBool;
    default:
      fail(ErrorCode::Unsupported, std::string("tensors of dtype ") + dtype_name(dtype) + " are not supported");
  }
}

DType from_scalar_type(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return DType::Float32;
    case at::kDouble:
      return DType::Float64;
    case at::kHalf:
      return DType::Float16;
    case at::kBFloat16:
      return DType::BFloat16;
    case at::kLong:
      return DType::Int64;
    case at::kInt:
      return DType::Int32;
    case at::kShort:
      return DType::Int16;
    case at::kChar:
      return DType::Int8;
    case at::kByte:
      return DType::UInt8;
    case at::kBool:
      return DType::Bool;
    default:
      fail(ErrorCode::Unsupported, std::string("ATen dtype ") + c10::toString(type) + " has no ONNX equivalent");
  }
}

at::Tensor view_tensor(const Tensor& t) {
  std::vector<int64_t> shape(t.shape().begin(), t.shape().end());
  auto opts = at::TensorOptions().dtype(to_scalar_type(t.dtype()));
  if (t.numel() == 0) return at::empty(shape, opts);
  return at::from_blob(const_cast<void*>(t.raw()), shape, opts);
}

at::Tensor per_sample_view(const at::Tensor& x) {
  int64_t n = x.dim() > 0 ? x.size(0) : 1;
  int64_t rest = n > 0 ? x.numel() / n : 0;
  if (x.dim() > 0 && x.is_non_overlapping_and_dense() && (n <= 1 || x.stride(0) == rest))
    return x.as_strided({n, rest}, {rest, 1}, x.storage_offset());
  return x.contiguous().reshape({n, rest});
}

Tensor to_ir_tensor(const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU).contiguous();
  Shape shape(c.sizes().begin(), c.sizes().end());
  return Tensor::from_bytes(from_scalar_type(c.scalar_type()), shape, c.data_ptr(), c.nbytes());
}

void rethrow_as_op_error(const Op& op) {
  try {
    throw;
  } catch (Error&) {
    throw;
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    throw Error(ErrorCode::InvalidInput, op.describe() + ": " + msg.substr(0, msg.find('\n')));
  } catch (const std::runtime_error& e) {
    // Some ATen shape checks (view/reshape sizes) throw std::runtime_error, not c10::Error.
    std::string msg = e.what();
    throw Error(ErrorCode::InvalidInput, op.describe() + ": " + msg.substr(0, msg.find('\n')));
  } catch (const std::length_error&) {
    // A container sized from a value in the model or the data (a negative or huge size).
    throw Error(ErrorCode::InvalidInput, op.describe() + ": a size computed from the model or the data is invalid");
  } catch (const std::bad_alloc&) {
    // A size taken from the model or the data (a pad, a Resize scale, a Tile count) too large.
    throw Error(ErrorCode::InvalidInput,
                op.describe() + ": its result does not fit in memory (a size in the model or the data is too large)");
  }
}

}  // namespace edgequant::exec
