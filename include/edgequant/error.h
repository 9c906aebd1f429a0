// The one error type EdgeQuant throws: a code, a message, and context (file, node, pass)
// added as it unwinds, so a user sees exactly which input is at fault.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

namespace edgequant {

enum class ErrorCode {
  InvalidModel,    // the ONNX file or graph is malformed
  InvalidInput,    // run-time data (inputs, calibration samples) is malformed
  InvalidTarget,   // a target file is malformed or unknown
  InvalidSetting,  // a setting file or option is malformed or unknown
  Unsupported,     // valid ONNX, but an op/attribute we do not implement
  Internal,        // a bug in EdgeQuant
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message);

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // Context is prepended outermost-last: "file.onnx: node conv1 (Conv): message".
  Error& add_context(const std::string& context);
  const char* what() const noexcept override { return full_.c_str(); }
  // True for mistakes in the user's input (CLI exit status 2), false for internal faults.
  bool is_user_error() const { return code_ != ErrorCode::Internal; }

 private:
  void rebuild();
  ErrorCode code_;
  std::string message_;
  std::vector<std::string> context_;
  std::string full_;
};

[[noreturn]] void fail(ErrorCode code, const std::string& message);

}  // namespace edgequant
