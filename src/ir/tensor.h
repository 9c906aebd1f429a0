// An owned, dense, row-major buffer with a dtype and a shape: initializer data in the IR.
// The executor views it as an at::Tensor without copying; nothing below exec needs LibTorch.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace edgequant {

// Numbering follows onnx::TensorProto::DataType so conversion is a cast.
enum class DType : int32_t {
  Undefined = 0,
  Float32 = 1,
  UInt8 = 2,
  Int8 = 3,
  UInt16 = 4,
  Int16 = 5,
  Int32 = 6,
  Int64 = 7,
  String = 8,
  Bool = 9,
  Float16 = 10,
  Float64 = 11,
  UInt32 = 12,
  UInt64 = 13,
  BFloat16 = 16,
  // Opset 21's 4-bit codes: held unpacked, one value per byte (files pack two per byte).
  UInt4 = 21,
  Int4 = 22,
};

size_t dtype_size(DType dtype);  // 0 for String/Undefined
const char* dtype_name(DType dtype);
bool dtype_is_float(DType dtype);

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, Shape shape);  // zero-filled
  static Tensor from_bytes(DType dtype, Shape shape, const void* bytes, size_t nbytes);
  template <class T>
  static Tensor from_vector(DType dtype, Shape shape, const std::vector<T>& values) {
    return from_bytes(dtype, std::move(shape), values.data(), values.size() * sizeof(T));
  }

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  void* raw() { return storage_.data(); }
  const void* raw() const { return storage_.data(); }
  template <class T>
  T* data() {
    return reinterpret_cast<T*>(storage_.data());
  }
  template <class T>
  const T* data() const {
    return reinterpret_cast<const T*>(storage_.data());
  }
  // Values converted to double / int64 whatever the dtype (shape-computation helpers).
  std::vector<double> to_doubles() const;
  std::vector<int64_t> to_int64s() const;

 private:
  DType dtype_ = DType::Undefined;
  Shape shape_;
  std::vector<uint64_t> storage_;  // uint64 keeps every element type aligned
};

}  // namespace edgequant
