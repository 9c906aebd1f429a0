// CLI subcommand registration (one file per command family).
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace edgequant::cli {

using Action = std::function<void()>;
// Each adds its subcommands to `app`; the chosen one stores its action in `action`.
void add_model_commands(CLI::App& app, Action& action);
void add_quantize_commands(CLI::App& app, Action& action);
void add_tune_commands(CLI::App& app, Action& action);
void add_convert_commands(CLI::App& app, Action& action);

}  // namespace edgequant::cli
