// EdgeQuant's public C++ API: quantize a float ONNX model for a target and evaluate the result.
// No LibTorch or ONNX types appear here; see docs/settings.md for settings and outputs.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "edgequant/error.h"
#include "edgequant/metrics.h"

namespace edgequant {

struct QuantizeOptions {
  std::string model;                    // float ONNX file
  std::string target;                   // target name (targets/*.yaml) or a target .yaml path
  std::string calib;                    // calibration data: IDX, .npy/.npz, image folder
  std::string setting_file;             // optional YAML/JSON setting
  std::string out_dir;                  // output directory ("" = write nothing)
  int calib_steps = 0, batch_size = 0;  // 0: the setting's (default 32 x 32)
  std::string calib_algorithm;          // "": the setting's, else the target's default
  std::string format;                   // deployable file: auto | none | espdl | qdq | ti-onnx ("": the setting's)
  // .espdl test values (one sample and its outputs, for Model::test()): the setting's (default:
  // embedded when they take at most 16 KiB) unless one of these is set.
  bool no_test_values = false;      // never embed them
  bool always_test_values = false;  // embed them whatever their size
  // Quantization-aware training after PTQ (`edgequant train`): a non-empty train_data turns it on;
  // zero/empty fields keep the setting's qat_setting values (docs/qat.md).
  struct Qat {
    std::string train_data, val_data;
    std::string loss;       // ce | distill | both
    std::string optimizer;  // adam | sgd
    int epochs = 0, batch_size = 0, freeze_scales_epoch = -1;
    double lr = 0, scale_lr = 0, warmup_epochs = -1;
    int64_t limit = -1, val_limit = -1;
    bool resume = false;
  } qat;
  // TI Tiny ML Tensorlab's config YAML read as written (docs/qat.md): its training.quantization*
  // keys give the target, the bits and PTQ/QAT; its training_epochs/learning_rate/batch_size the
  // QAT stage as TI runs it. The mapping is printed.
  std::string ti_config;
};

struct QuantizeSummary {
  std::string calib_algorithm;
  int64_t calib_samples = 0;
  double output_noise_ratio = -1;  // noise:signal at the graph outputs, everything quantized
  size_t analysed_units = 0;
  // Seconds per pass by name, in the order they ran (prepare, assign, check, calibrate, tqt, ...),
  // and four of them picked out: prepare, calibrate, analyse, lower + export.
  std::vector<std::pair<std::string, double>> pass_seconds;
  double import_s = 0, calibration_s = 0, analysis_s = 0, export_s = 0;
  int graph_walks = 0;             // walks over the graph or plan the pipeline made
  std::vector<std::string> notes;  // e.g. TI channel-rule CPU fallbacks
};

// Runs the PTQ pipeline; prints the summary to `log`. Throws edgequant::Error.
QuantizeSummary quantize(const QuantizeOptions& options, std::ostream& log);

struct Accuracy {
  double top1 = 0, top5 = 0;  // percent
  int64_t samples = 0;
};

struct EvaluateOptions {
  std::string model;          // float ONNX file
  std::string quantized_dir;  // directory written by quantize()
  std::string data;           // labeled data: IDX (labels beside), ImageFolder, .npz with "labels"
  std::string setting_file;   // "" = the setting saved in quantized_dir, if any
  int64_t batch_size = 100, limit = 0;
};

// {float, quantized} accuracy of the simulated integer model (labelled data).
std::pair<Accuracy, Accuracy> evaluate(const EvaluateOptions& options);

// Accuracy when the data has labels, and for any data the output metrics of the quantized model
// against the float model (SQNR, cosine, max |diff|, top-1 agreement).
struct EvaluateReport {
  bool labelled = false;
  Accuracy float_accuracy, quantized_accuracy;
  std::vector<OutputMetrics> outputs;
  std::vector<std::string> notes;  // how the runs were batched, when the model decided it
};
EvaluateReport evaluate_report(const EvaluateOptions& options);

// `edgequant check`: what the target cannot run or the deployable format cannot express, from
// the graph and the assigned plan (model, target, setting_file and format of the options).
struct CheckReport {
  std::string format;                 // the resolved deployable format
  size_t ops = 0;                     // ops checked (after normalisation)
  std::vector<std::string> findings;  // "'node' (Op): reason; remedy: ..." (blocking)
  std::vector<std::string> notes;     // not blocking (TI CPU fallbacks)
};
CheckReport check(const QuantizeOptions& options);

// `edgequant convert`: the modes that need no calibration, each an ONNX file ONNX Runtime runs
// (docs/convert.md): dynamic-range quantization, float16, weight-only int8/int4.
struct ConvertOptions {
  std::string model;    // float ONNX file
  std::string out_dir;  // writes model.<mode>.onnx and summary.txt
  std::string mode;     // dynamic | float16 | weight-only
  // dynamic, weight-only: the op types whose constant weights are quantized (empty: MatMul, Gemm, Conv)
  std::vector<std::string> op_types;
  bool full_range = false;    // dynamic: weights in [-127, 127] (default 7-bit, see docs/convert.md)
  int weight_bits = 8;        // weight-only: 8 or 4
  int64_t block_size = 0;     // weight-only: 0 = per output channel, else blocks along the reduction axis
  std::string weight_scheme;  // weight-only: "" (symmetric at 8 bits, asymmetric at 4) | symmetric | asymmetric
  bool float16_io = false;    // float16: float16 graph inputs and outputs (default float32 at the boundary)
  std::vector<std::string> keep_float32;  // float16: op types or node names left in float32
  // Optional: accuracy of the written file against the float model on this data.
  std::string eval_data, setting_file;  // setting: preprocessing of eval_data
  int64_t eval_limit = 0, batch_size = 32;
};

struct ConvertSummary {
  std::string mode, file;                         // file: the written model
  int64_t source_bytes = 0, converted_bytes = 0;  // file sizes
  size_t converted_ops = 0, kept_ops = 0;
  bool evaluated = false;
  EvaluateReport accuracy;  // float model vs the written file (when eval_data is given)
  std::vector<std::string> notes;
};

// Converts, writes, evaluates; prints the summary to `log`. Throws edgequant::Error.
ConvertSummary convert(const ConvertOptions& options, std::ostream& log);

}  // namespace edgequant
