// IntGraph helpers.
#include "runtime/int_graph.h"

#include <cmath>

#include "edgequant/error.h"

namespace edgequant::runtime {

namespace {
template <class T>
const T* get(const std::map<std::string, Attribute>& attrs, const std::string& key) {
  auto it = attrs.find(key);
  return it == attrs.end() ? nullptr : std::get_if<T>(&it->second);
}
}  // namespace

int64_t IntNode::attr_int(const std::string& key, int64_t fallback) const {
  const auto* v = get<int64_t>(attrs, key);
  return v ? *v : fallback;
}
float IntNode::attr_float(const std::string& key, float fallback) const {
  const auto* v = get<float>(attrs, key);
  return v ? *v : fallback;
}
std::string IntNode::attr_string(const std::string& key, const std::string& fallback) const {
  const auto* v = get<std::string>(attrs, key);
  return v ? *v : fallback;
}
std::vector<int64_t> IntNode::attr_ints(const std::string& key, const std::vector<int64_t>& fallback) const {
  const auto* v = get<std::vector<int64_t>>(attrs, key);
  return v ? *v : fallback;
}

double IntTensor::scale(size_t c) const {
  if (!scales.empty()) return scales[scales.size() > 1 ? c : 0];
  int e = exponents.empty() ? 0 : exponents[exponents.size() > 1 ? c : 0];
  return std::ldexp(1.0, e);
}

int64_t IntTensor::zero_point(size_t c) const {
  return zero_points.empty() ? 0 : zero_points[zero_points.size() > 1 ? c : 0];
}

const IntTensor* IntGraph::initializer(const std::string& n) const {
  auto it = initializers.find(n);
  return it == initializers.end() ? nullptr : &it->second;
}

const ValueInfo& IntGraph::value(const std::string& n) const {
  auto it = values.find(n);
  if (it == values.end()) fail(ErrorCode::Internal, "integer program: no value info for '" + n + "'");
  return it->second;
}

DType int_dtype(int bits) {
  if (bits <= 8) return DType::Int8;
  if (bits <= 16) return DType::Int16;
  if (bits <= 32) return DType::Int32;
  return DType::Int64;
}

int64_t dtype_min(DType d) {
  switch (d) {
    case DType::Int8:
      return -128;
    case DType::UInt8:
      return 0;
    case DType::Int16:
      return -32768;
    case DType::UInt16:
      return 0;
    case DType::Int32:
      return INT32_MIN;
    default:
      return INT64_MIN;
  }
}
int64_t dtype_max(DType d) {
  switch (d) {
    case DType::Int8:
      return 127;
    case DType::UInt8:
      return 255;
    case DType::Int16:
      return 32767;
    case DType::UInt16:
      return 65535;
    case DType::Int32:
      return INT32_MAX;
    default:
      return INT64_MAX;
  }
}

}  // namespace edgequant::runtime
