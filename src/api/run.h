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
NamedTensors run_any(const std::string& path, std::map<std::string, Tensor> feeds, RunMode* mode = nullptr);
std::vector<std::string> input_names(const std::string& path);

// Model::test() on a `.espdl` file's embedded test values.
runtime::SelfTestResult self_test_espdl(const std::string& path);

}  // namespace edgequant
