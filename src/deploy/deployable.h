// The deployable outputs of a quantized graph, by format (`quantize --format`): `.espdl` with its
// `.info` dump and `.json` tensor table, ONNX QDQ (qdq.h), TI integer ONNX, `.tflite` (tflite.h).
#pragma once
#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "exec/executor.h"
#include "ir/lowered.h"
#include "runtime/int_graph.h"
#include "target/setting.h"
#include "target/target.h"

namespace edgequant::deploy {

// Auto -> the target's `export_format` (espdl on esp32*/c, qdq on ort-int8, tflite on tflite-int8, ti-onnx
// on ti-npu; qdq for TI plans with float-scale sub-8-bit weights). Explicit formats stay.
ExportFormat resolve_format(ExportFormat requested, const Target& target, const QuantPlan* plan = nullptr);
const char* format_extension(ExportFormat f);  // ".espdl", ".onnx" ("" for None)

// Test inputs (`inputs`: source layout, batch 1, one per graph input) and the outputs the integer
// runtime computes from them, embedded as Model::test() expects.
void attach_test_values(runtime::IntGraph& program, const std::vector<at::Tensor>& inputs);

// The readable `.info` dump: inputs/outputs, nodes (with the attributes the .espdl stores), parameters,
// memory plan.
std::string describe_program(const runtime::IntGraph& program);
// The `.json` side file: per value and parameter: dtype, bits, exponent(s), policy, layout.
nlohmann::json program_json(const runtime::IntGraph& program);

struct Deployed {
  std::string path;  // the deployable file ("" when none)
  size_t bytes = 0;  // its size
  std::vector<std::string> side_files;
  std::string test_values;         // what was embedded, or why not (one line for the summary)
  std::vector<std::string> notes;  // further summary lines (the streaming file)
};

// Writes DIR/model.espdl (+ .info, .json) atomically. `test_inputs` empty: no test values;
// `test_values_cap` > 0: dropped when they take more bytes than that.
Deployed write_espdl_outputs(const Graph& g, const QuantPlan& plan, const LoweredModel& lowered, const Target& target,
                             exec::Executor& ex, const std::vector<at::Tensor>& test_inputs, const std::string& dir,
                             size_t test_values_cap = 0, int64_t streaming_frames = 0);

}  // namespace edgequant::deploy
