// TFLite's own model file (`.tflite`, a FlatBuffer of tflite.fbs) from the integer program, for
// TFLite Micro, CMSIS-NN and Ethos-U: int8 activations with zero points, int8 weights
// (per-channel for convolutions), int32 biases, channels-last tensors; TFLite's builtin operators.
#pragma once
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/int_graph.h"

namespace edgequant::deploy {

// The file's bytes. Throws Unsupported naming every node TFLite's builtin operators cannot
// express as the program computes it.
// `float_io`: float32 graph inputs and outputs (QUANTIZE/DEQUANTIZE at the ends), else int8.
std::string tflite_bytes(const runtime::IntGraph& program, bool float_io = false);

// What the `.tflite` writer cannot express for `op` (empty: nothing), before any calibration.
std::vector<std::string> tflite_refusals(const Op& op);

}  // namespace edgequant::deploy
