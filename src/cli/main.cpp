// edgequant command line: exit 0 on success, 2 for bad input (one error line), 1 for internal faults.
#include <c10/util/Exception.h>

#include <csignal>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "edgequant/error.h"

int main(int argc, char** argv) {
  // A file-size limit (RLIMIT_FSIZE) must fail the write that hits it, with an error line and the
  // temporary removed, not kill the process with a half-written file (SIGXFSZ's default).
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"EdgeQuant: quantize float ONNX models for edge chips"};
  app.require_subcommand(1);
  edgequant::cli::Action action;
  edgequant::cli::add_model_commands(app, action);
  edgequant::cli::add_quantize_commands(app, action);
  edgequant::cli::add_tune_commands(app, action);
  edgequant::cli::add_convert_commands(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    action();
    return 0;
  } catch (const edgequant::Error& e) {
    std::cerr << "edgequant: error: " << e.what() << "\n";
    return e.is_user_error() ? 2 : 1;
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    std::cerr << "edgequant: internal error: " << msg.substr(0, msg.find('\n')) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "edgequant: internal error: " << e.what() << "\n";
    return 1;
  }
}
