// One interface per deployable format, registered by ExportFormat and used by both `check` (what
// the format cannot express for a graph, plan and target, before any calibration) and `export`
// (writing the files). Adding a format: one Exporter in the format's file, one line in
// exporter.cpp's table, one test.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "deploy/check.h"
#include "deploy/deployable.h"
#include "exec/executor.h"
#include "ir/lowered.h"
#include "target/setting.h"
#include "target/target.h"

namespace edgequant::deploy {

// Everything a writer may read: the quantized graph, its plan and lowered (integer) form.
struct ExportJob {
  const Graph& graph;
  const QuantPlan& plan;
  const LoweredModel& lowered;
  const Target& target;
  exec::Executor& executor;
  std::vector<at::Tensor> test_inputs;  // one calibration sample per graph input when the format embeds test values
  size_t test_values_cap = 0;           // > 0: embed them only when they take at most this many bytes
  int64_t streaming_frames = 0;         // > 0: also the streaming form, this many frames per run
  std::string calib_method;             // the calibrator's name (TI's quantization_config.yaml)
  std::string dir;                      // output directory (exists)
  TfliteIo tflite_io = TfliteIo::Int8;  // .tflite inputs and outputs
};

class Exporter {
 public:
  virtual ~Exporter() = default;
  virtual ExportFormat format() const = 0;
  // Whether write() wants ExportJob::test_inputs (the setting's test_values decides if it gets them).
  virtual bool embeds_test_values() const { return false; }
  // What this format cannot express for `op` (appended to `out`); the generic checks (an
  // executable op, shape computations skipped) are check_deployable's.
  virtual void check_op(const Op& op, const QuantPlan& plan, const Target& target, std::vector<Finding>& out) const = 0;
  // Writes the deployable file(s) atomically into job.dir.
  virtual Deployed write(const ExportJob& job) const = 0;
};

// The exporter of a resolved format; nullptr for None (and Auto, which must be resolved first).
const Exporter* find_exporter(ExportFormat format);

// The registered formats' exporters (exporter.cpp) and their factories (each in its format's file).
const Exporter& espdl_exporter();
const Exporter& qdq_exporter();
const Exporter& ti_onnx_exporter();
const Exporter& tflite_exporter();

}  // namespace edgequant::deploy
