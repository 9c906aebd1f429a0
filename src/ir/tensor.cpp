// Tensor buffer helpers and dtype tables.
#include "ir/tensor.h"

#include "edgequant/error.h"

namespace edgequant {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float32:
    case DType::Int32:
    case DType::UInt32:
      return 4;
    case DType::UInt8:
    case DType::Int8:
    case DType::Bool:
    case DType::UInt4:
    case DType::Int4:
      return 1;
    case DType::UInt16:
    case DType::Int16:
    case DType::Float16:
    case DType::BFloat16:
      return 2;
    case DType::Int64:
    case DType::Float64:
    case DType::UInt64:
      return 8;
    default:
      return 0;
  }
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return "float32";
    case DType::UInt8:
      return "uint8";
    case DType::Int8:
      return "int8";
    case DType::UInt16:
      return "uint16";
    case DType::Int16:
      return "int16";
    case DType::Int32:
      return "int32";
    case DType::Int64:
      return "int64";
    case DType::String:
      return "string";
    case DType::Bool:
      return "bool";
    case DType::Float16:
      return "float16";
    case DType::Float64:
      return "float64";
    case DType::UInt32:
      return "uint32";
    case DType::UInt64:
      return "uint64";
    case DType::BFloat16:
      return "bfloat16";
    case DType::UInt4:
      return "uint4";
    case DType::Int4:
      return "int4";
    default:
      return "undefined";
  }
}

bool dtype_is_float(DType d) {
  return d == DType::Float32 || d == DType::Float64 || d == DType::Float16 || d == DType::BFloat16;
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += shape[i] < 0 ? std::string("?") : std::to_string(shape[i]);
  }
  return s + "]";
}

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  for (int64_t d : shape_)
    if (d < 0) fail(ErrorCode::Internal, "tensor with negative dimension " + shape_str(shape_));
  storage_.assign((nbytes() + 7) / 8, 0);
}

Tensor Tensor::from_bytes(DType dtype, Shape shape, const void* bytes, size_t nbytes) {
  Tensor t(dtype, std::move(shape));
  if (nbytes != t.nbytes())
    fail(ErrorCode::InvalidModel, "tensor data has " + std::to_string(nbytes) + " bytes, shape " +
                                      shape_str(t.shape()) + " of " + dtype_name(dtype) + " needs " +
                                      std::to_string(t.nbytes()));
  if (nbytes) std::memcpy(t.raw(), bytes, nbytes);
  return t;
}

template <class Out>
static std::vector<Out> convert(const Tensor& t) {
  std::vector<Out> out(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    switch (t.dtype()) {
      case DType::Float32:
        out[i] = static_cast<Out>(t.data<float>()[i]);
        break;
      case DType::Float64:
        out[i] = static_cast<Out>(t.data<double>()[i]);
        break;
      case DType::Int64:
        out[i] = static_cast<Out>(t.data<int64_t>()[i]);
        break;
      case DType::Int32:
        out[i] = static_cast<Out>(t.data<int32_t>()[i]);
        break;
      case DType::Int16:
        out[i] = static_cast<Out>(t.data<int16_t>()[i]);
        break;
      case DType::Int8:
      case DType::Int4:
        out[i] = static_cast<Out>(t.data<int8_t>()[i]);
        break;
      case DType::UInt8:
      case DType::UInt4:
      case DType::Bool:
        out[i] = static_cast<Out>(t.data<uint8_t>()[i]);
        break;
      case DType::UInt16:
        out[i] = static_cast<Out>(t.data<uint16_t>()[i]);
        break;
      case DType::UInt32:
        out[i] = static_cast<Out>(t.data<uint32_t>()[i]);
        break;
      case DType::UInt64:
        out[i] = static_cast<Out>(t.data<uint64_t>()[i]);
        break;
      default:
        fail(ErrorCode::Unsupported, std::string("cannot read values of dtype ") + dtype_name(t.dtype()));
    }
  }
  return out;
}

std::vector<double> Tensor::to_doubles() const { return convert<double>(*this); }
std::vector<int64_t> Tensor::to_int64s() const { return convert<int64_t>(*this); }

}  // namespace edgequant
