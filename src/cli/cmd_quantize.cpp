// `edgequant quantize` and `edgequant evaluate` (PTQ), see issue 3.
#include "cli/commands.h"

namespace edgequant::cli {

void add_quantize_commands(CLI::App&, Action&) {}

}  // namespace edgequant::cli
