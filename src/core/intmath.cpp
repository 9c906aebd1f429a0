// Name <-> enum mapping for rounding modes (names as written in targets/*.yaml).
#include "core/intmath.h"

#include "edgequant/error.h"

namespace edgequant {

RoundingMode parse_rounding_mode(const std::string& name) {
  if (name == "half_even") return RoundingMode::HalfEven;
  if (name == "half_up") return RoundingMode::HalfUp;
  if (name == "half_away_from_zero") return RoundingMode::HalfAwayFromZero;
  if (name == "floor") return RoundingMode::Floor;
  if (name == "ceil") return RoundingMode::Ceil;
  if (name == "toward_zero") return RoundingMode::TowardZero;
  fail(ErrorCode::InvalidTarget, "unknown rounding mode '" + name +
                                     "' (valid: half_even, half_up, half_away_from_zero, floor, ceil, toward_zero)");
}

const char* rounding_mode_name(RoundingMode mode) {
  switch (mode) {
    case RoundingMode::HalfEven:
      return "half_even";
    case RoundingMode::HalfUp:
      return "half_up";
    case RoundingMode::HalfAwayFromZero:
      return "half_away_from_zero";
    case RoundingMode::Floor:
      return "floor";
    case RoundingMode::Ceil:
      return "ceil";
    case RoundingMode::TowardZero:
      return "toward_zero";
  }
  return "?";
}

}  // namespace edgequant
