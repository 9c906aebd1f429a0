// Error construction and context composition.
#include "edgequant/error.h"

namespace edgequant {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidModel:
      return "invalid model";
    case ErrorCode::InvalidInput:
      return "invalid input";
    case ErrorCode::InvalidTarget:
      return "invalid target";
    case ErrorCode::InvalidSetting:
      return "invalid setting";
    case ErrorCode::Unsupported:
      return "unsupported";
    case ErrorCode::Internal:
      return "internal error";
  }
  return "error";
}

Error::Error(ErrorCode code, std::string message)
    : std::runtime_error(message), code_(code), message_(std::move(message)) {
  rebuild();
}

Error& Error::add_context(const std::string& context) {
  context_.push_back(context);
  rebuild();
  return *this;
}

void Error::rebuild() {
  full_.clear();
  for (auto it = context_.rbegin(); it != context_.rend(); ++it) full_ += *it + ": ";
  full_ += message_;
}

void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

}  // namespace edgequant
