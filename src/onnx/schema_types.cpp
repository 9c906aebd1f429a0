// Which element types ONNX's operator schemas allow per input/output (libonnx's registry).
#include <onnx/defs/schema.h>

#include <map>

#include "onnx/onnx_io.h"

namespace edgequant {

std::optional<bool> schema_allows(const std::string& type, int64_t opset, bool output, size_t index, DType dtype) {
  const onnx::OpSchema* schema =
      onnx::OpSchemaRegistry::Schema(type, static_cast<int>(std::min(opset, kLibonnxMaxOpset)), "");
  if (!schema) return std::nullopt;
  const auto& formals = output ? schema->outputs() : schema->inputs();
  if (formals.empty()) return false;
  // A variadic last formal covers every later position.
  const auto& formal = index < formals.size() ? formals[index] : formals.back();
  if (index >= formals.size() && formal.GetOption() != onnx::OpSchema::Variadic) return false;
  static const std::map<DType, std::string> names = {
      {DType::Float32, "tensor(float)"},  {DType::Float16, "tensor(float16)"}, {DType::BFloat16, "tensor(bfloat16)"},
      {DType::Float64, "tensor(double)"}, {DType::Int8, "tensor(int8)"},       {DType::UInt8, "tensor(uint8)"},
      {DType::Int32, "tensor(int32)"},    {DType::Int64, "tensor(int64)"},     {DType::Int16, "tensor(int16)"},
      {DType::UInt16, "tensor(uint16)"},  {DType::Bool, "tensor(bool)"},       {DType::String, "tensor(string)"},
      {DType::UInt32, "tensor(uint32)"},  {DType::UInt64, "tensor(uint64)"}};
  auto it = names.find(dtype);
  if (it == names.end()) return std::nullopt;
  for (const auto* t : formal.GetTypes())
    if (t && *t == it->second) return true;
  return false;
}

}  // namespace edgequant
