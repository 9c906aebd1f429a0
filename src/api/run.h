// Running what you ship: a float ONNX model (float executor), a `quantize` output directory
// (the simulation, from its model.onnx and quant_config.json) or a `.espdl` file (the integer
// runtime), on the same inputs, so float, simulated and integer results can be compared.
#pragma once
#include <map>
#include <string>

#include "data/npy.h"
#include "runtime/interpreter.h"

namespace edgequant {

enum class RunMode { Float, Simulation, IntegerRuntime };
const char* run_mode_name(RunMode m);
RunMode run_mode_of(const std::string& path);  // directory -> Simulation, .espdl -> IntegerRuntime

// Inputs by graph input name, float32 in the source model's layout (NCHW); outputs likewise
// (integer outputs dequantized), in graph output order.
// `espdl_target` (a target name or file) fixes the rounding of a `.espdl` that does not name its
// target (Espressif's files do not).
NamedTensors run_any(const std::string& path, std::map<std::string, Tensor> feeds, RunMode* mode = nullptr,
                     const std::string& espdl_target = "");
std::vector<std::string> input_names(const std::string& path);

// Writes a copy of the `.espdl` at `path` to `out_path` with test values: the first sample of
// `feeds` (source layout, as run_any takes them) quantized, and what the integer runtime computes
// for it from the reset state, so Model::test() on the chip checks that input. Returns the number
// of test outputs embedded.
size_t embed_test_values(const std::string& path, const std::map<std::string, Tensor>& feeds,
                         const std::string& out_path, const std::string& espdl_target = "");

// Model::test() on a `.espdl` file's embedded test values.
runtime::SelfTestResult self_test_espdl(const std::string& path, const std::string& target = "");

}  // namespace edgequant
