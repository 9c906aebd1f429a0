// TensorProto <-> Tensor conversion, including external data files.
#include <onnx/onnx_pb.h>

#include <fstream>
#include <sstream>

#include "edgequant/error.h"
#include "onnx/onnx_io.h"

namespace edgequant {

template <class Field, class T>
static void copy_field(const Field& field, Tensor& t) {
  if (static_cast<int64_t>(field.size()) != t.numel())
    fail(ErrorCode::InvalidModel, "tensor has " + std::to_string(field.size()) + " values, shape needs " +
                                      std::to_string(t.numel()));
  T* dst = t.data<T>();
  for (int i = 0; i < field.size(); ++i) dst[i] = static_cast<T>(field.Get(i));
}

static std::string read_external(const onnx::TensorProto& p, const std::string& base_dir) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : p.external_data()) {
    if (kv.key() == "location") location = kv.value();
    else if (kv.key() == "offset") offset = std::stoll(kv.value());
    else if (kv.key() == "length") length = std::stoll(kv.value());
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

Tensor tensor_from_proto(const onnx::TensorProto& p, const std::string& base_dir) {
  DType dtype = static_cast<DType>(p.data_type());
  Shape shape(p.dims().begin(), p.dims().end());
  for (int64_t d : shape)
    if (d < 0) fail(ErrorCode::InvalidModel, "tensor '" + p.name() + "' has a negative dimension");
  if (dtype_size(dtype) == 0)
    fail(ErrorCode::Unsupported, "tensor '" + p.name() + "' has unsupported dtype " + std::to_string(p.data_type()));
  if (p.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string bytes = read_external(p, base_dir);
    return Tensor::from_bytes(dtype, shape, bytes.data(), bytes.size());
  }
  if (p.has_raw_data()) return Tensor::from_bytes(dtype, shape, p.raw_data().data(), p.raw_data().size());
  Tensor t(dtype, shape);
  switch (dtype) {
    case DType::Float32: copy_field<decltype(p.float_data()), float>(p.float_data(), t); break;
    case DType::Float64: copy_field<decltype(p.double_data()), double>(p.double_data(), t); break;
    case DType::Int64: copy_field<decltype(p.int64_data()), int64_t>(p.int64_data(), t); break;
    case DType::UInt64: copy_field<decltype(p.uint64_data()), uint64_t>(p.uint64_data(), t); break;
    case DType::UInt32: copy_field<decltype(p.uint64_data()), uint32_t>(p.uint64_data(), t); break;
    case DType::Int32: copy_field<decltype(p.int32_data()), int32_t>(p.int32_data(), t); break;
    case DType::Int16: copy_field<decltype(p.int32_data()), int16_t>(p.int32_data(), t); break;
    case DType::UInt16: case DType::Float16: case DType::BFloat16:
      copy_field<decltype(p.int32_data()), uint16_t>(p.int32_data(), t); break;
    case DType::Int8: copy_field<decltype(p.int32_data()), int8_t>(p.int32_data(), t); break;
    case DType::UInt8: case DType::Bool: copy_field<decltype(p.int32_data()), uint8_t>(p.int32_data(), t); break;
    default: fail(ErrorCode::Unsupported, "tensor '" + p.name() + "' has unsupported dtype");
  }
  return t;
}

void tensor_to_proto(const Tensor& t, onnx::TensorProto& p) {
  p.set_data_type(static_cast<int32_t>(t.dtype()));
  p.clear_dims();
  for (int64_t d : t.shape()) p.add_dims(d);
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
