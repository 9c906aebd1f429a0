// TensorProto <-> Tensor conversion, including external data files.
#include <onnx/onnx_pb.h>

#include <fstream>
#include <sstream>

#include "edgequant/error.h"
#include "onnx/onnx_io.h"

namespace edgequant {

// The typed field's values as a tensor of `shape`; the count is checked before the tensor is
// allocated (a declared shape of 10^12 elements with no data is a malformed file, not a reason to
// run out of memory).
template <class T, class Field>
static Tensor from_field(const Field& field, DType dtype, const Shape& shape, int64_t numel, const std::string& name) {
  if (static_cast<int64_t>(field.size()) != numel)
    fail(ErrorCode::InvalidModel, "tensor '" + name + "' has " + std::to_string(field.size()) + " values, shape " +
                                      shape_str(shape) + " needs " + std::to_string(numel));
  Tensor t(dtype, shape);
  T* dst = t.data<T>();
  for (int i = 0; i < field.size(); ++i) dst[i] = static_cast<T>(field.Get(i));
  return t;
}

static std::string read_external(const onnx::TensorProto& p, const std::string& base_dir) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : p.external_data()) {
    if (kv.key() == "location")
      location = kv.value();
    else if (kv.key() == "offset")
      offset = std::stoll(kv.value());
    else if (kv.key() == "length")
      length = std::stoll(kv.value());
  }
  if (location.empty() || location.find("..") != std::string::npos || location[0] == '/')
    fail(ErrorCode::InvalidModel, "tensor '" + p.name() + "' has an invalid external data location '" + location + "'");
  std::string path = base_dir.empty() ? location : base_dir + "/" + location;
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorCode::InvalidModel, "tensor '" + p.name() + "': cannot open external data file '" + path + "'");
  f.seekg(0, std::ios::end);
  int64_t size = f.tellg();
  if (length < 0) length = size - offset;
  if (offset < 0 || offset + length > size)
    fail(ErrorCode::InvalidModel, "tensor '" + p.name() + "': external data file '" + path + "' is too short");
  std::string bytes(static_cast<size_t>(length), '\0');
  f.seekg(offset);
  f.read(bytes.data(), length);
  return bytes;
}

static bool is_four_bit(DType d) { return d == DType::Int4 || d == DType::UInt4; }

// Opset 21's int4/uint4: two values per byte, the first in the low nibble; unpacked to one per
// byte (int4 sign-extended).
static Tensor unpack_four_bit(const onnx::TensorProto& p, DType dtype, const Shape& shape, const uint8_t* packed,
                              size_t nbytes) {
  Tensor t(dtype, shape);
  const size_t n = static_cast<size_t>(t.numel());
  if (nbytes != (n + 1) / 2)
    fail(ErrorCode::InvalidModel, "tensor '" + p.name() + "' has " + std::to_string(nbytes) + " bytes of packed " +
                                      dtype_name(dtype) + ", shape " + shape_str(shape) + " needs " +
                                      std::to_string((n + 1) / 2));
  uint8_t* out = t.data<uint8_t>();
  for (size_t i = 0; i < n; ++i) {
    uint8_t nibble = (packed[i / 2] >> (4 * (i % 2))) & 0xF;
    out[i] = dtype == DType::Int4 && nibble >= 8 ? static_cast<uint8_t>(nibble | 0xF0) : nibble;
  }
  return t;
}

Tensor tensor_from_proto(const onnx::TensorProto& p, const std::string& base_dir) {
  DType dtype = static_cast<DType>(p.data_type());
  Shape shape(p.dims().begin(), p.dims().end());
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) fail(ErrorCode::InvalidModel, "tensor '" + p.name() + "' has a negative dimension");
    if (__builtin_mul_overflow(numel, d, &numel) || numel > (int64_t(1) << 40))
      fail(ErrorCode::InvalidModel,
           "tensor '" + p.name() + "' declares shape " + shape_str(shape) + ", more than 2^40 elements");
  }
  if (dtype_size(dtype) == 0)
    fail(ErrorCode::Unsupported, "tensor '" + p.name() + "' has unsupported dtype " + std::to_string(p.data_type()));
  if (p.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string bytes = read_external(p, base_dir);
    if (is_four_bit(dtype))
      return unpack_four_bit(p, dtype, shape, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    return Tensor::from_bytes(dtype, shape, bytes.data(), bytes.size());
  }
  if (p.has_raw_data()) {
    const std::string& raw = p.raw_data();
    if (is_four_bit(dtype))
      return unpack_four_bit(p, dtype, shape, reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
    return Tensor::from_bytes(dtype, shape, raw.data(), raw.size());
  }
  if (is_four_bit(dtype)) {  // int32_data holds one packed byte per entry
    std::vector<uint8_t> packed;
    for (int32_t b : p.int32_data()) packed.push_back(static_cast<uint8_t>(b));
    return unpack_four_bit(p, dtype, shape, packed.data(), packed.size());
  }
  const std::string& n = p.name();
  switch (dtype) {
    case DType::Float32:
      return from_field<float>(p.float_data(), dtype, shape, numel, n);
    case DType::Float64:
      return from_field<double>(p.double_data(), dtype, shape, numel, n);
    case DType::Int64:
      return from_field<int64_t>(p.int64_data(), dtype, shape, numel, n);
    case DType::UInt64:
      return from_field<uint64_t>(p.uint64_data(), dtype, shape, numel, n);
    case DType::UInt32:
      return from_field<uint32_t>(p.uint64_data(), dtype, shape, numel, n);
    case DType::Int32:
      return from_field<int32_t>(p.int32_data(), dtype, shape, numel, n);
    case DType::Int16:
      return from_field<int16_t>(p.int32_data(), dtype, shape, numel, n);
    case DType::UInt16:
    case DType::Float16:
    case DType::BFloat16:
      return from_field<uint16_t>(p.int32_data(), dtype, shape, numel, n);
    case DType::Int8:
      return from_field<int8_t>(p.int32_data(), dtype, shape, numel, n);
    case DType::UInt8:
    case DType::Bool:
      return from_field<uint8_t>(p.int32_data(), dtype, shape, numel, n);
    default:
      fail(ErrorCode::Unsupported, "tensor '" + n + "' has unsupported dtype");
  }
}

void tensor_to_proto(const Tensor& t, onnx::TensorProto& p) {
  p.set_data_type(static_cast<int32_t>(t.dtype()));
  p.clear_dims();
  for (int64_t d : t.shape()) p.add_dims(d);
  if (is_four_bit(t.dtype())) {
    std::string packed((static_cast<size_t>(t.numel()) + 1) / 2, '\0');
    const uint8_t* v = t.data<uint8_t>();
    for (size_t i = 0; i < static_cast<size_t>(t.numel()); ++i)
      packed[i / 2] = static_cast<char>(static_cast<uint8_t>(packed[i / 2]) | ((v[i] & 0xF) << (4 * (i % 2))));
    p.set_raw_data(packed);
    return;
  }
  p.set_raw_data(t.raw(), t.nbytes());
}

Tensor read_tensor_pb(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorCode::InvalidInput, path + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  onnx::TensorProto p;
  if (!p.ParseFromString(ss.str())) fail(ErrorCode::InvalidInput, path + ": not a serialized ONNX TensorProto");
  try {
    return tensor_from_proto(p);
  } catch (Error& e) {
    throw e.add_context(path);
  }
}

}  // namespace edgequant
