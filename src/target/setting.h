// A Setting is the user's knobs for one run, read from YAML/JSON. Key names follow ESP-PPQ
// where it has one (docs/settings.md maps them); unknown keys are errors listing valid ones.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "data/preprocess.h"
#include "ir/quant_config.h"

namespace edgequant {

enum class Alignment { AlignToOutput, AlignToLarge, None };

// The deployable file `quantize` writes beside its reports.
enum class ExportFormat {
  Auto,    // the target's: espdl on ESP-DL targets, qdq on ONNX Runtime, tflite on TFLite, ti-onnx on TI
  None,    // reports only
  Espdl,   // ESP-DL's .espdl (power-of-two targets)
  Qdq,     // ONNX QuantizeLinear/DequantizeLinear
  TiOnnx,  // TI's integer ONNX (BNORM sequence)
  Tflite,  // TFLite's .tflite FlatBuffer (TFLite Micro)
};
ExportFormat parse_export_format(const std::string& s);  // throws InvalidSetting
const char* export_format_name(ExportFormat f);

// .espdl test values (one sample and the integer runtime's outputs, for Model::test() on the
// chip): Auto embeds them when they are small (kTestValuesCapBytes), so a detector's file is not
// mostly its test image; Always and Never as named.
enum class TestValues { Auto, Always, Never };
constexpr size_t kTestValuesCapBytes = 16 * 1024;

// `.tflite` inputs and outputs: int8 codes (TFLite Micro's usual full-integer model), or float32
// with a QUANTIZE after each input and a DEQUANTIZE before each output.
enum class TfliteIo { Int8, Float32 };

struct ExportSetting {
  ExportFormat format = ExportFormat::Auto;
  TestValues test_values = TestValues::Auto;
  // > 0: also the streaming form of a temporal model ([N, C, T] sequences), this many frames per
  // run (.espdl: model_streaming.espdl beside model.espdl; deploy/streaming.h).
  int64_t streaming_frames = 0;
  TfliteIo tflite_io = TfliteIo::Int8;
};

struct AnalysisSetting {
  bool graphwise = true;
  bool layerwise = true;
  int samples = 64;  // validation samples the error analysis runs on
};

// Where the error analysis takes its samples: never the ones the scales were fitted to.
struct ValidationSetting {
  std::string file;      // a dataset of its own; "" = samples of the calibration data
  double holdout = 0.2;  // fraction held out of calibration when the calibration data has no
                         // samples beyond calib_steps x batch_size (docs/settings.md)
};

// TQT (trained quantization thresholds, ESP-PPQ's TrainedQuantizationThresholdPass names); LSQ
// takes the same section under lsq_optimization_setting.
struct TqtSetting {
  std::vector<std::string> interested_layers;  // op names to train; empty = every computing op
  int steps = 500;                             // Adam steps per block
  double lr = 1e-5;
  double scale_lr = 0;                    // learning rate of the log2 scales; 0 = lr (EdgeQuant extension)
  int block_size = 4;                     // ops per block (a block starts at a computing op)
  bool is_scale_trainable = true;         // false: weights only
  bool train_bias = true;                 // biases of the trained computing ops too (EdgeQuant extension)
  double gamma = 0.0;                     // weight of MSE(quantized block, float block on the same quantized inputs)
  double int_lambda = 0.0;                // weight of mean((alpha - round(alpha))^2)
  std::string collecting_device = "cpu";  // where block inputs/targets are cached
  int64_t cache_limit_mib = 2048;         // cached batches stop at this size (printed)
  // AdaRound (blockwise_reconstruction_setting) only: the rounding regulariser
  // reg_lambda * mean(1 - |2h - 1|^beta), off for the first `warmup` of the steps, beta annealed
  // from beta_start to beta_end.
  double reg_lambda = 0.01, warmup = 0.2, beta_start = 20, beta_end = 2;
};

// Layerwise equalization (Nagel et al. 2019; ESP-PPQ's equalization_setting): for a computing op
// feeding another through ops that commute with a positive per-channel scale (ReLU, pooling),
// channel i of the first is divided by s_i = sqrt(r1_i / r2_i) and the matching input channel of
// the second multiplied by it (r: weight ranges), `iterations` times. value_threshold bounds each
// iteration's scale to [value_threshold, 1 / value_threshold] (EdgeQuant's reading of the knob).
struct EqualizationSetting {
  std::vector<std::string> interested_layers;  // first ops of the pairs; empty = all
  int iterations = 10;
  double value_threshold = 0.5;
  int opt_level = 1;           // 1: through ReLU/pooling; 2: also across Add (residual streams)
  bool relu6_to_relu = false;  // model surgery: Clip(0, 6) -> Relu so equalization crosses it
};

// Horizontal layer split (ESP-PPQ's layer_split_setting): a Conv/Gemm whose weight has values
// beyond value_threshold becomes two ops joined by an Add: one with the weight clipped to
// +-value_threshold (and the bias), one with the outliers only, each with its own scale.
struct LayerSplitSetting {
  std::vector<std::string> interested_layers;  // empty = every Conv/Gemm with such outliers
  double value_threshold = 2.0;                // absolute weight value
};

// Empirical bias correction (ESP-PPQ's bias_correction_setting): b += E[y_float - y_quant] per
// output channel of each computing op, measured op by op over calibration batches.
struct BiasCorrectionSetting {
  std::vector<std::string> interested_layers;  // computing ops to correct; empty = all with a bias
  int steps = 8;                               // calibration batches measured per op
};

// Quantization-aware training of the whole model on a training set (the qat pass), after the PTQ
// passes: weights and biases of every computing op and the scales (log2 scales on power-of-two
// targets, straight-through exponent; float scales with LSQ's gradient scaling elsewhere) are
// trained on the task loss through the quantized simulation. BatchNormalization is folded into
// its Conv at import, so training sees the folded weights with the statistics frozen.
enum class QatOptimizer { Sgd, Adam };
enum class QatLoss {
  CrossEntropy,  // labels
  Distill,       // the float model as teacher (no labels needed)
  Both,          // (1 - distill_weight) * cross-entropy + distill_weight * distillation
};
enum class DistillKind {
  Kl,   // KL(softmax(teacher / T) || softmax(student / T)) * T^2 on the first output (classifiers)
  Mse,  // MSE on every floating-point output (detectors, regressors)
};
struct QatSetting {
  std::string train_data;  // training set (IDX, ImageFolder, .npz with 'labels', ...)
  std::string val_data;    // validation set for the per-epoch accuracies ("" = none)
  int epochs = 3;
  int batch_size = 64;
  QatOptimizer optimizer = QatOptimizer::Adam;
  double lr = 1e-4;       // weights and biases; peak of the schedule
  double scale_lr = 0;    // scales; 0 = lr
  double momentum = 0.9;  // SGD only
  double weight_decay = 0;
  double warmup_epochs = 0;  // linear warm-up, then cosine decay to 0 over the remaining steps
  QatLoss loss = QatLoss::CrossEntropy;
  DistillKind distill = DistillKind::Kl;
  double distill_weight = 0.5;  // loss: both
  double temperature = 4;       // distill: kl
  int freeze_scales_epoch = 0;  // scales stop training after this many epochs (0 = never)
  int64_t limit = 0;            // training samples per epoch (0 = all)
  int64_t val_limit = 0;        // validation samples (0 = all)
  uint64_t seed = 20261207;     // shuffling
  bool resume = false;          // continue from OUT/checkpoints/last
};
QatOptimizer parse_qat_optimizer(const std::string& s);
QatLoss parse_qat_loss(const std::string& s);
const char* qat_loss_name(QatLoss l);

// Mixed precision beyond the hand-written dispatching_table: promote the ops with the worst
// layerwise error to a wider type (auto_promote), or search a width per layer under a budget.
enum class BitSearch {
  Off,
  Hessian,   // tr(H_i)/n_i * |Q_w(W_i) - W_i|^2 (Hutchinson on the task or distillation loss)
  Measured,  // the layerwise output error of each layer at each width
};
const char* bit_search_name(BitSearch b);
struct MixedPrecisionSetting {
  int auto_promote = 0;      // K: the K units with the worst layerwise error (0 = off)
  std::string to = "int16";  // int16 | float
  BitSearch method = BitSearch::Off;
  // The budget (exactly one with a method): bytes of every quantized parameter on the chip
  // (weights packed at their width, biases at the target's bias width), or the mean weight width
  // of the searched layers.
  int64_t budget_param_bytes = 0;
  double budget_avg_weight_bits = 0;
  std::vector<int> widths;  // candidate weight widths, 0 = float; empty: the target's
  int hessian_probes = 16;  // Hutchinson probes (sensitivities are measured on the validation samples)
};

struct Setting {
  std::optional<CalibAlgorithm> calib_algorithm;  // unset = the target's default
  double percentile = 0.9999;
  // minmax | mse; unset: MSE-optimal clips per channel below 8 bits (where minmax wastes most of a
  // 2- or 4-bit grid on one outlier), minmax at 8 bits and above.
  std::optional<CalibAlgorithm> weight_calib_algorithm;
  int activation_bits = 0, weight_bits = 0;  // 0 = the target's
  Alignment alignment = Alignment::AlignToOutput;
  std::map<std::string, std::string> dispatching_table;  // op name -> int8 | int16 | float (or bits)
  std::map<std::string, double> custom_scales;           // op or value name -> fixed scale
  int calib_steps = 32, batch_size = 32;
  AnalysisSetting analysis;
  ValidationSetting validation;
  MixedPrecisionSetting mixed_precision;
  bool layer_split = false;
  LayerSplitSetting layer_split_setting;
  bool equalization = false;
  EqualizationSetting equalization_setting;
  // Unset: on when weights are below 8 bits and no training pass runs (TI ResNet W2A8 54.6 ->
  // 80.3 %, W4A8 90.5 -> 90.8 %); bias_correction_enabled() decides.
  std::optional<bool> bias_correction;
  BiasCorrectionSetting bias_correction_setting;
  bool bias_correction_enabled() const {
    if (bias_correction) return *bias_correction;
    bool sub8 = (weight_bits > 0 && weight_bits < 8) || mixed_precision.method != BitSearch::Off;
    return sub8 && !tqt_optimization && !lsq_optimization && !blockwise_reconstruction;
  }
  bool tqt_optimization = false;
  TqtSetting tqt;
  bool lsq_optimization = false;  // the same knobs for LSQ (float-scale targets)
  TqtSetting lsq;
  bool blockwise_reconstruction = false;  // AdaRound: learned weight rounding, scales frozen
  TqtSetting adaround = [] {
    TqtSetting a;
    a.lr = 1e-3;  // ESP-PPQ's blockwise reconstruction defaults
    a.steps = 5000;
    return a;
  }();
  bool qat = false;  // quantization_method: QAT
  QatSetting qat_setting;
  ExportSetting export_setting;
  // The pipeline's pass names in order ("" entries never); empty = the default pipeline.
  std::vector<std::string> passes;
  Preprocess preprocess;
  std::string file;  // where it was read from ("" = defaults)
};

Setting load_setting(const std::string& path);  // throws InvalidSetting naming the file and key
const char* alignment_name(Alignment a);

}  // namespace edgequant
