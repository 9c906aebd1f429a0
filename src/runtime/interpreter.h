// Runs an integer program (runtime/int_graph.h) node by node with the integer kernels: the host
// equivalent of ESP-DL's Model::run, and, with the embedded test values, of Model::test().
#pragma once
#include <map>
#include <string>
#include <vector>

#include "runtime/int_graph.h"

namespace edgequant::runtime {

using TensorMap = std::map<std::string, IntTensor>;

// Every node has a kernel, every input is defined before use, every value has an info.
// Throws Unsupported (unknown op type) or InvalidModel, naming the node.
void verify_program(const IntGraph& g);

// Inputs by graph input name: integer codes on the input's grid, or float32 values that are
// quantized with the input's exponent and the program's rounding. Returns the graph outputs
// (every value with keep_all).
// `state` carries what stateful nodes (StreamingCache) keep between runs, by node name: pass the
// same map run after run to stream frames; nullptr or an empty map starts from the reset state.
TensorMap run_program(const IntGraph& g, const TensorMap& inputs, bool keep_all = false, TensorMap* state = nullptr);

// The program has nodes that keep state between runs (StreamingCache): consecutive runs are
// consecutive chunks of one stream.
bool is_streaming(const IntGraph& g);

// Float32 values (in the program's layout) as codes of graph input `name`.
IntTensor quantize_for_input(const IntGraph& g, const std::string& name, const std::vector<float>& values,
                             const Shape& shape);
// Codes as float32 (q * 2^e); floats unchanged.
std::vector<float> dequantize(const IntTensor& t);

// Model::test(): runs the embedded test inputs and compares every embedded test output
// (dtype, shape and exponent exactly; int8 codes exactly, int16 within 1). One line per output.
struct SelfTestResult {
  bool passed = true;
  std::vector<std::string> lines;
};
SelfTestResult self_test(const IntGraph& g);

}  // namespace edgequant::runtime
