// Target files: sub-8-bit TI weights, TFLite narrow-range weights, asymmetric ORT activations.
#include "target/target.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "api/load.h"
#include "edgequant/error.h"
#include "passes/pipeline.h"
#include "quant/quantizer.h"
#include "test_util.h"

using namespace edgequant;
using edgequant::testing::fixture;

namespace {
TEST(TiNpuTarget, FourBitWeightsUseFloatScaleAndSixteenBitBias) {
  auto g = load_model(fixture("fashion/fmnist_resnet.onnx"));
  Setting s;
  s.weight_bits = 4;
  QuantPlan plan = quant::assign_quant_configs(*g, load_target("ti-npu"), s);
  const Op* conv = nullptr;
  for (const auto& op : g->ops())
    if (op->type == "Conv" && !conv) conv = op.get();
  ASSERT_NE(conv, nullptr);
  const QuantConfig& w = *plan.find(conv->input(1)->name);
  EXPECT_EQ(w.quant_min, -8);
  EXPECT_EQ(w.quant_max, 7);
  EXPECT_EQ(w.scale_kind, ScaleKind::Float);  // 8-bit unsigned multiplier on the chip
  EXPECT_EQ(w.granularity, Granularity::PerChannel);
  EXPECT_EQ(plan.find(conv->input(2)->name)->bits, 16);
  // Activations stay 8-bit power-of-two.
  const QuantConfig& x = *plan.find(g->inputs[0]->name);
  EXPECT_EQ(x.bits, 8);
  EXPECT_EQ(x.scale_kind, ScaleKind::PowerOfTwo);
  Setting eight;
  QuantPlan p8 = quant::assign_quant_configs(*g, load_target("ti-npu"), eight);
  EXPECT_EQ(p8.find(conv->input(2)->name)->bits, 24);
  EXPECT_EQ(p8.find(conv->input(1)->name)->scale_kind, ScaleKind::PowerOfTwo);
}

TEST(TfliteTarget, NarrowRangeWeightsAndAsymmetricActivations) {
  auto g = load_model(fixture("fashion/fmnist_mobilenet.onnx"));
  QuantPlan plan = quant::assign_quant_configs(*g, load_target("tflite-int8"), Setting{});
  for (const auto& op : g->ops()) {
    if (op->type == "Conv") {
      const QuantConfig& w = *plan.find(op->input(1)->name);
      EXPECT_EQ(w.quant_min, -127);
      EXPECT_EQ(w.granularity, Granularity::PerChannel);
    }
    if (op->type == "Gemm") EXPECT_EQ(plan.find(op->input(1)->name)->granularity, Granularity::PerTensor);
  }
  const QuantConfig& x = *plan.find(g->inputs[0]->name);
  EXPECT_FALSE(x.symmetric);
  EXPECT_EQ(x.quant_min, -128);
  EXPECT_EQ(x.scale_kind, ScaleKind::Float);
}

TEST(OrtTarget, Uint8ActivationsAndSoftmaxFreeGraph) {
  auto g = load_model(fixture("fashion/fmnist_mobilenet.onnx"));
  QuantPlan plan = quant::assign_quant_configs(*g, load_target("ort-int8"), Setting{});
  const QuantConfig& x = *plan.find(g->inputs[0]->name);
  EXPECT_EQ(x.quant_min, 0);
  EXPECT_EQ(x.quant_max, 255);
  EXPECT_FALSE(x.is_signed);
}

TEST(TargetFiles, EveryShippedTargetLoadsAndUnknownKeysAreRejected) {
  for (const auto& name : available_targets()) EXPECT_NO_THROW(load_target(name)) << name;
  EXPECT_GE(available_targets().size(), 6u);
  std::string bad = (std::filesystem::temp_directory_path() / "eq_bad_target.yaml").string();
  {
    std::ofstream out(bad);
    out << "name: x\nrounding: half_even\nbias_bit: {8: 32}\n";
  }
  std::string message;
  ErrorCode code = ErrorCode::Internal;
  try {
    load_target(bad);
  } catch (const std::runtime_error& ex) {
    message = ex.what();
    if (auto* err = dynamic_cast<const edgequant::Error*>(&ex)) code = err->code();
  }
  EXPECT_EQ(code, ErrorCode::InvalidTarget);
  EXPECT_NE(message.find("bias_bits"), std::string::npos) << message;
}
}  // namespace

namespace {
// The shipped target files against the facts of shared/design.md §4 and espdl-format.md §4/§8.
TEST(ShippedTargets, EspDlFilesHoldTheChipFacts) {
  struct Facts {
    const char* name;
    RoundingMode rounding;
    Granularity weights;
    int bias8, bias16;
  };
  for (const Facts& f : {Facts{"esp32p4", RoundingMode::HalfEven, Granularity::PerChannel, 32, 40},
                         Facts{"esp32s3", RoundingMode::HalfUp, Granularity::PerTensor, 20, 40},
                         Facts{"c", RoundingMode::HalfUp, Granularity::PerTensor, 32, 64}}) {
    Target t = load_target(f.name);
    EXPECT_EQ(t.file, targets_dir() + "/" + f.name + ".yaml");
    EXPECT_EQ(t.scale_kind, ScaleKind::PowerOfTwo) << f.name;
    EXPECT_EQ(t.rounding, f.rounding) << f.name;
    EXPECT_EQ(t.requant_rounding, f.rounding) << f.name;  // shift_and_round rounds like round()
    EXPECT_EQ(t.conv_weight.granularity, f.weights) << f.name;
    EXPECT_EQ(t.activation.granularity, Granularity::PerTensor) << f.name;
    EXPECT_TRUE(t.activation.symmetric && t.activation.is_signed) << f.name;
    EXPECT_EQ(t.bias_bits_for(8), f.bias8) << f.name;
    EXPECT_EQ(t.bias_bits_for(16), f.bias16) << f.name;
    EXPECT_EQ(t.accumulator_bits_for(8), 32) << f.name;
    EXPECT_EQ(t.accumulator_bits_for(16), 64) << f.name;
    EXPECT_EQ(t.default_calib, CalibAlgorithm::Auto)
        << f.name;  // ESP-PPQ's is KL; auto beats it (e2e.auto_calibration)
    EXPECT_EQ(t.pow2_rule_for(CalibAlgorithm::MinMax), Pow2Rule::Ceil) << f.name;
    EXPECT_EQ(t.pow2_rule_for(CalibAlgorithm::KL), Pow2Rule::Nearest) << f.name;
    EXPECT_TRUE(t.float_ops.count("Softmax")) << f.name;
    EXPECT_TRUE(t.lut_activations.count("Sigmoid")) << f.name;
    EXPECT_EQ(t.int16_lut_step, 256) << f.name;
  }
}

// Every ESP chip ESP-DL builds for is a target file naming the chip whose kernels it runs
// (design.md §4): esp32s31 computes as esp32p4 (PIE V2), the chips without SIMD as `c`. The
// merged definition equals the base's in everything but name and description.
TEST(ShippedTargets, EveryEspChipIsAFileOnItsBase) {
  auto same = [](const Target& a, const Target& b) {
    EXPECT_EQ(a.rounding, b.rounding) << a.name;
    EXPECT_EQ(a.requant_rounding, b.requant_rounding) << a.name;
    EXPECT_EQ(a.conv_weight.granularity, b.conv_weight.granularity) << a.name;
    EXPECT_EQ(a.bias_bits_for(8), b.bias_bits_for(8)) << a.name;
    EXPECT_EQ(a.bias_bits_for(16), b.bias_bits_for(16)) << a.name;
    EXPECT_EQ(a.runtime_ops, b.runtime_ops) << a.name;
    EXPECT_EQ(a.int8_only_ops, b.int8_only_ops) << a.name;
    EXPECT_EQ(a.espdl_filter_blocks, b.espdl_filter_blocks) << a.name;
    EXPECT_EQ(a.lut_activations, b.lut_activations) << a.name;
    EXPECT_EQ(a.export_format, b.export_format) << a.name;
  };
  Target p4 = load_target("esp32p4"), c = load_target("c");
  Target s31 = load_target("esp32s31");
  EXPECT_EQ(s31.name, "esp32s31");
  EXPECT_NE(s31.description, p4.description);
  same(s31, p4);
  EXPECT_EQ(s31.rounding, RoundingMode::HalfEven);
  for (const char* chip : {"esp32", "esp32s2", "esp32c2", "esp32c3", "esp32c5", "esp32c6"}) {
    Target t = load_target(chip);
    EXPECT_EQ(t.name, chip);
    same(t, c);
    EXPECT_TRUE(t.espdl_filter_blocks.empty()) << chip;  // plain filters: no PIE
    EXPECT_NE(t.yaml.find("name: " + std::string(chip)), std::string::npos) << t.yaml;
  }
  // A base that does not exist is refused by name; a cycle ends.
  auto dir = std::filesystem::temp_directory_path() / "eq_base_targets";
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "orphan.yaml") << "base: no-such-chip\nname: orphan\n";
    std::ofstream(dir / "loop_a.yaml") << "base: " << (dir / "loop_b.yaml").string() << "\n";
    std::ofstream(dir / "loop_b.yaml") << "base: " << (dir / "loop_a.yaml").string() << "\n";
  }
  try {
    load_target((dir / "orphan.yaml").string());
    ADD_FAILURE() << "a missing base was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown target 'no-such-chip'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_target((dir / "loop_a.yaml").string()), Error);
  std::filesystem::remove_all(dir);
}

TEST(ShippedTargets, FloatScaleAndTiFilesHoldTheirFacts) {
  Target ort = load_target("ort-int8"), tfl = load_target("tflite-int8"), ti = load_target("ti-npu");
  EXPECT_EQ(ort.scale_kind, ScaleKind::Float);
  EXPECT_EQ(ort.rounding, RoundingMode::HalfEven);
  EXPECT_FALSE(ort.activation.is_signed);
  EXPECT_EQ(tfl.requant_rounding, RoundingMode::HalfAwayFromZero);
  EXPECT_TRUE(tfl.conv_weight.narrow_range);
  EXPECT_EQ(tfl.gemm_weight.granularity, Granularity::PerTensor);
  EXPECT_EQ(ti.bias_bits_for(8), 24);
  EXPECT_EQ(ti.bias_bits_for(4), 16);
  EXPECT_EQ(ti.bias_bits_for(2), 16);
  EXPECT_EQ(ti.sub8bit_weight_scale_kind, ScaleKind::Float);
  EXPECT_EQ(ti.channel_rules.channel_multiple, 4);
  EXPECT_EQ(ti.channel_rules.first_conv_in_channels, 1);
}
}  // namespace

namespace {
std::string write_setting(const std::string& name, const std::string& text) {
  std::string path = (std::filesystem::temp_directory_path() / name).string();
  std::ofstream(path) << text;
  return path;
}

TEST(SettingFile, RecoveryPassSectionsParseWithEspPpqNames) {
  Setting s = load_setting(write_setting("eq_setting_ok.yaml", R"(
tqt_optimization: true
tqt_optimization_setting: {steps: 300, lr: 1.0e-4, block_size: 2, is_scale_trainable: false, gamma: 0.5,
                           int_lambda: 0.25, interested_layers: [conv1, conv2], collecting_device: cpu}
blockwise_reconstruction: true
blockwise_reconstruction_setting: {steps: 1000, reg_lambda: 0.02, warmup: 0.1}
bias_correction: true
bias_correction_setting: {steps: 4, interested_layers: [conv1]}
equalization: true
equalization_setting: {iterations: 3, value_threshold: 0.25, opt_level: 1, relu6_to_relu: true}
layer_split: true
layer_split_setting: {value_threshold: 1.5}
mixed_precision: {auto_promote: 2, to: float}
validation: {holdout: 0.3}
)"));
  EXPECT_TRUE(s.tqt_optimization);
  EXPECT_EQ(s.tqt.steps, 300);
  EXPECT_DOUBLE_EQ(s.tqt.lr, 1e-4);
  EXPECT_EQ(s.tqt.block_size, 2);
  EXPECT_FALSE(s.tqt.is_scale_trainable);
  EXPECT_DOUBLE_EQ(s.tqt.gamma, 0.5);
  EXPECT_DOUBLE_EQ(s.tqt.int_lambda, 0.25);
  EXPECT_EQ(s.tqt.interested_layers, (std::vector<std::string>{"conv1", "conv2"}));
  EXPECT_TRUE(s.blockwise_reconstruction);
  EXPECT_EQ(s.adaround.steps, 1000);
  EXPECT_DOUBLE_EQ(s.adaround.lr, 1e-3);  // ESP-PPQ's default kept
  EXPECT_DOUBLE_EQ(s.adaround.reg_lambda, 0.02);
  EXPECT_DOUBLE_EQ(s.adaround.warmup, 0.1);
  EXPECT_EQ(s.bias_correction_setting.steps, 4);
  EXPECT_EQ(s.bias_correction_setting.interested_layers, std::vector<std::string>{"conv1"});
  EXPECT_EQ(s.equalization_setting.iterations, 3);
  EXPECT_TRUE(s.equalization_setting.relu6_to_relu);
  EXPECT_DOUBLE_EQ(s.layer_split_setting.value_threshold, 1.5);
  EXPECT_EQ(s.mixed_precision.auto_promote, 2);
  EXPECT_EQ(s.mixed_precision.to, "float");
  EXPECT_DOUBLE_EQ(s.validation.holdout, 0.3);
  // The pipeline they make, in the documented order.
  std::vector<std::string> want = {"prepare",   "layer-split",     "equalization",    "assign", "check",
                                   "calibrate", "mixed-precision", "bias-correction", "tqt",    "adaround",
                                   "analyse",   "lower",           "export"};
  EXPECT_EQ(pipeline_for(s), want);
}

// bias_correction unset: on below 8-bit weights when no training pass runs; a setting wins.
TEST(SettingFile, BiasCorrectionDefaultsOnBelowEightBitWeights) {
  auto has_bc = [](const Setting& s) {
    auto p = pipeline_for(s);
    return std::find(p.begin(), p.end(), "bias-correction") != p.end();
  };
  Setting s;
  EXPECT_FALSE(has_bc(s));  // 8-bit weights
  s.weight_bits = 4;
  EXPECT_TRUE(has_bc(s));
  s.blockwise_reconstruction = true;  // AdaRound reconstructs outputs itself
  EXPECT_FALSE(has_bc(s));
  s.blockwise_reconstruction = false;
  s.bias_correction = false;
  EXPECT_FALSE(has_bc(s));
  s.weight_bits = 8;
  s.bias_correction = true;
  EXPECT_TRUE(has_bc(s));
}

TEST(SettingFile, BadRecoverySettingsNameTheKey) {
  auto message = [](const std::string& file, const std::string& text) {
    try {
      load_setting(write_setting(file, text));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidSetting);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("eq_bad1.yaml", "tqt_optimization_setting: {step: 3}\n").find("step"), std::string::npos);
  EXPECT_NE(message("eq_bad2.yaml", "equalization_setting: {opt_level: 3}\n").find("must be 1"), std::string::npos);
  EXPECT_NE(message("eq_bad3.yaml", "tqt_optimization: true\nlsq_optimization: true\n").find("exclude each other"),
            std::string::npos);
  EXPECT_NE(message("eq_bad4.yaml", "mixed_precision: {auto_promote: 1, to: int4}\n").find("int16 or float"),
            std::string::npos);
  // The width search: one budget, a method to go with it, widths that exist.
  auto mp = [&](const std::string& f, const std::string& body) {
    return message(f, "mixed_precision: " + body + "\n");
  };
  EXPECT_NE(mp("mp1.yaml", "{method: hawq, budget: {avg_weight_bits: 4}}").find("hessian, measured or off"),
            std::string::npos);
  EXPECT_NE(mp("mp2.yaml", "{method: hessian, budget: {avg_weight_bits: 4, param_bytes: 9}}").find("exactly one"),
            std::string::npos);
  EXPECT_NE(mp("mp3.yaml", "{method: hessian, budget: {}}").find("exactly one"), std::string::npos);
  EXPECT_NE(mp("mp4.yaml", "{method: measured, widths: [3, 8], budget: {avg_weight_bits: 4}}").find("'3' is not"),
            std::string::npos);
  EXPECT_NE(mp("mp5.yaml", "{method: measured}").find("needs a budget"), std::string::npos);
  EXPECT_NE(mp("mp6.yaml", "{budget: {avg_weight_bits: 4}}").find("need a method"), std::string::npos);
  EXPECT_NE(mp("mp7.yaml", "{auto_promote: 2, method: hessian, budget: {avg_weight_bits: 4}}").find("give one"),
            std::string::npos);
  EXPECT_NE(mp("mp8.yaml", "{method: hessian, budget: {avg_bits: 4}}").find("avg_bits"), std::string::npos);
  Setting ok = load_setting(write_setting(
      "mp_ok.yaml", "mixed_precision: {method: measured, widths: [2, float, 8], budget: {param_bytes: 5000}}\n"));
  EXPECT_EQ(ok.mixed_precision.method, BitSearch::Measured);
  EXPECT_EQ(ok.mixed_precision.widths, (std::vector<int>{2, 0, 8}));
  EXPECT_EQ(ok.mixed_precision.budget_param_bytes, 5000);
  EXPECT_EQ(ok.mixed_precision.budget_avg_weight_bits, 0);
}
}  // namespace
