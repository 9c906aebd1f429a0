// The one definition of integer rounding, saturation and power-of-two helpers. Every kernel,
// observer and exporter rounds through here so the simulator and the chip agree bit for bit.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

namespace edgequant {

// How a real value becomes an integer. ESP-DL esp32p4 rounds half to even, esp32s3 and the
// generic C kernels round half up (towards +inf), TI's BNORM sequence floors.
enum class RoundingMode { HalfEven, HalfUp, HalfAwayFromZero, Floor, Ceil, TowardZero };

RoundingMode parse_rounding_mode(const std::string& name);  // throws InvalidTarget
const char* rounding_mode_name(RoundingMode mode);

inline double round_value(double x, RoundingMode mode) {
  switch (mode) {
    case RoundingMode::HalfEven:
      return std::nearbyint(x);  // default FE_TONEAREST
    case RoundingMode::HalfUp:
      return std::floor(x + 0.5);
    case RoundingMode::HalfAwayFromZero:
      return std::round(x);
    case RoundingMode::Floor:
      return std::floor(x);
    case RoundingMode::Ceil:
      return std::ceil(x);
    case RoundingMode::TowardZero:
      return std::trunc(x);
  }
  return x;
}

inline int64_t saturate(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Signed/unsigned integer range of a bit width: int8 -> [-128, 127], uint8 -> [0, 255].
inline int64_t int_min(int bits, bool is_signed) { return is_signed ? -(int64_t(1) << (bits - 1)) : 0; }
inline int64_t int_max(int bits, bool is_signed) {
  return is_signed ? (int64_t(1) << (bits - 1)) - 1 : (int64_t(1) << bits) - 1;
}

// How a float scale becomes a power of two 2^e. ESP-PPQ rounds the exponent up for
// minmax/percentile (never clips the observed range) and to nearest for KL/MSE.
enum class Pow2Rule { Ceil, Nearest, Floor };
inline int pow2_exponent(double scale, Pow2Rule rule) {
  double e = std::log2(scale);
  switch (rule) {
    case Pow2Rule::Ceil:
      return static_cast<int>(std::ceil(e - 1e-9));
    case Pow2Rule::Nearest:
      return static_cast<int>(std::nearbyint(e));
    case Pow2Rule::Floor:
      return static_cast<int>(std::floor(e + 1e-9));
  }
  return 0;
}

}  // namespace edgequant
