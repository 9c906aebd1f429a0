// Setting parsing (YAML; JSON is valid YAML).
#include "target/setting.h"

#include "target/yaml_util.h"

namespace edgequant {

namespace {
constexpr ErrorCode kCode = ErrorCode::InvalidSetting;

Alignment parse_alignment(const std::string& s) {
  if (s == "align_to_output" || s == "Align to Output") return Alignment::AlignToOutput;
  if (s == "align_to_large" || s == "Align to Large") return Alignment::AlignToLarge;
  if (s == "none" || s == "None") return Alignment::None;
  fail(kCode, "alignment must be align_to_output, align_to_large or none, not '" + s + "'");
}
// An optional list of op names (absent or null: empty = every eligible op).
std::vector<std::string> interested_layers(const YAML::Node& section) {
  std::vector<std::string> names;
  if (section["interested_layers"] && !section["interested_layers"].IsNull())
    for (const auto& n : section["interested_layers"]) names.push_back(n.as<std::string>());
  return names;
}

TqtSetting parse_block_training(const YAML::Node& t, const char* w, TqtSetting q) {
  check_keys(t,
             {"interested_layers", "steps", "lr", "scale_lr", "block_size", "is_scale_trainable", "train_bias", "gamma",
              "int_lambda", "collecting_device", "cache_limit_mib", "reg_lambda", "warmup", "beta_start", "beta_end"},
             w, kCode);
  q.interested_layers = interested_layers(t);
  q.steps = get_or(t, "steps", q.steps, w, kCode);
  q.lr = get_or(t, "lr", q.lr, w, kCode);
  q.scale_lr = get_or(t, "scale_lr", q.scale_lr, w, kCode);
  q.block_size = get_or(t, "block_size", q.block_size, w, kCode);
  q.is_scale_trainable = get_or(t, "is_scale_trainable", q.is_scale_trainable, w, kCode);
  q.train_bias = get_or(t, "train_bias", q.train_bias, w, kCode);
  q.gamma = get_or(t, "gamma", q.gamma, w, kCode);
  q.int_lambda = get_or(t, "int_lambda", q.int_lambda, w, kCode);
  q.collecting_device = get_or(t, "collecting_device", q.collecting_device, w, kCode);
  q.cache_limit_mib = get_or(t, "cache_limit_mib", q.cache_limit_mib, w, kCode);
  q.reg_lambda = get_or(t, "reg_lambda", q.reg_lambda, w, kCode);
  q.warmup = get_or(t, "warmup", q.warmup, w, kCode);
  q.beta_start = get_or(t, "beta_start", q.beta_start, w, kCode);
  q.beta_end = get_or(t, "beta_end", q.beta_end, w, kCode);
  if (q.reg_lambda < 0 || q.warmup < 0 || q.warmup >= 1 || q.beta_end <= 0 || q.beta_start < q.beta_end)
    fail(kCode, std::string(w) + ": reg_lambda >= 0, 0 <= warmup < 1, beta_start >= beta_end > 0");
  if (q.steps < 0 || q.block_size < 1 || !(q.lr > 0) || q.gamma < 0 || q.int_lambda < 0 || q.cache_limit_mib < 1)
    fail(kCode, std::string(w) + ": steps >= 0, block_size >= 1, lr > 0, gamma/int_lambda >= 0, cache_limit_mib >= 1");
  if (q.collecting_device != "cpu" && q.collecting_device != "cuda")
    fail(kCode, std::string(w) + ".collecting_device must be cpu or cuda");
  return q;
}
}  // namespace

QatOptimizer parse_qat_optimizer(const std::string& s) {
  if (s == "sgd") return QatOptimizer::Sgd;
  if (s == "adam") return QatOptimizer::Adam;
  fail(kCode, "qat_setting.optimizer must be sgd or adam, not '" + s + "'");
}

QatLoss parse_qat_loss(const std::string& s) {
  if (s == "ce" || s == "cross_entropy") return QatLoss::CrossEntropy;
  if (s == "distill") return QatLoss::Distill;
  if (s == "both") return QatLoss::Both;
  fail(kCode, "qat_setting.loss must be ce, distill or both, not '" + s + "'");
}

const char* bit_search_name(BitSearch b) {
  switch (b) {
    case BitSearch::Off:
      return "off";
    case BitSearch::Hessian:
      return "hessian";
    case BitSearch::Measured:
      return "measured";
  }
  return "?";
}

namespace {
void read_mixed_precision(const YAML::Node& m, MixedPrecisionSetting& mp) {
  const char* w = "mixed_precision";
  check_keys(m, {"auto_promote", "to", "method", "budget", "widths", "hessian_probes"}, w, kCode);
  mp.auto_promote = get_or(m, "auto_promote", 0, w, kCode);
  mp.to = get_or<std::string>(m, "to", "int16", w, kCode);
  if (mp.auto_promote < 0) fail(kCode, "mixed_precision.auto_promote must be >= 0");
  if (mp.to != "int16" && mp.to != "float")
    fail(kCode, "mixed_precision.to must be int16 or float, not '" + mp.to + "'");
  std::string method = get_or<std::string>(m, "method", "off", w, kCode);
  if (method == "hessian")
    mp.method = BitSearch::Hessian;
  else if (method == "measured")
    mp.method = BitSearch::Measured;
  else if (method != "off")
    fail(kCode, "mixed_precision.method must be hessian, measured or off, not '" + method + "'");
  mp.hessian_probes = get_or(m, "hessian_probes", mp.hessian_probes, w, kCode);
  if (mp.hessian_probes < 2) fail(kCode, "mixed_precision.hessian_probes must be >= 2");
  if (const YAML::Node& ws = m["widths"]) {
    if (!ws.IsSequence()) fail(kCode, "mixed_precision.widths must be a list such as [2, 4, 8] (or float)");
    for (const auto& x : ws) {
      std::string v = x.as<std::string>();
      if (v == "float")
        mp.widths.push_back(0);
      else if (v == "2" || v == "4" || v == "8" || v == "16")
        mp.widths.push_back(std::stoi(v));
      else
        fail(kCode, "mixed_precision.widths: '" + v + "' is not 2, 4, 8, 16 or float");
    }
  }
  if (const YAML::Node& b = m["budget"]) {
    check_keys(b, {"param_bytes", "avg_weight_bits"}, "mixed_precision.budget", kCode);
    mp.budget_param_bytes = get_or<int64_t>(b, "param_bytes", 0, "mixed_precision.budget", kCode);
    mp.budget_avg_weight_bits = get_or(b, "avg_weight_bits", 0.0, "mixed_precision.budget", kCode);
    if ((mp.budget_param_bytes > 0) == (mp.budget_avg_weight_bits > 0))
      fail(kCode, "mixed_precision.budget needs exactly one of param_bytes or avg_weight_bits, above 0");
  }
  if (mp.method != BitSearch::Off) {
    if (mp.auto_promote > 0)
      fail(kCode, "mixed_precision: auto_promote and method are two ways to choose widths; give one");
    if (!m["budget"])
      fail(kCode, "mixed_precision.method " + method + " needs a budget: {param_bytes: N} or {avg_weight_bits: X}");
  } else if (m["budget"] || m["widths"]) {
    fail(kCode, "mixed_precision.budget/widths need a method: hessian or measured");
  }
}
}  // namespace

const char* qat_loss_name(QatLoss l) {
  switch (l) {
    case QatLoss::CrossEntropy:
      return "ce";
    case QatLoss::Distill:
      return "distill";
    case QatLoss::Both:
      return "both";
  }
  return "?";
}

namespace {
QatSetting parse_qat(const YAML::Node& t, QatSetting q) {
  const char* w = "qat_setting";
  check_keys(t,
             {"train_data", "val_data", "epochs", "batch_size", "optimizer", "lr", "scale_lr", "momentum",
              "weight_decay", "warmup_epochs", "loss", "distill", "distill_weight", "temperature",
              "freeze_scales_epoch", "limit", "val_limit", "seed"},
             w, kCode);
  q.train_data = get_or(t, "train_data", q.train_data, w, kCode);
  q.val_data = get_or(t, "val_data", q.val_data, w, kCode);
  q.epochs = get_or(t, "epochs", q.epochs, w, kCode);
  q.batch_size = get_or(t, "batch_size", q.batch_size, w, kCode);
  if (t["optimizer"]) q.optimizer = parse_qat_optimizer(t["optimizer"].as<std::string>());
  q.lr = get_or(t, "lr", q.lr, w, kCode);
  q.scale_lr = get_or(t, "scale_lr", q.scale_lr, w, kCode);
  q.momentum = get_or(t, "momentum", q.momentum, w, kCode);
  q.weight_decay = get_or(t, "weight_decay", q.weight_decay, w, kCode);
  q.warmup_epochs = get_or(t, "warmup_epochs", q.warmup_epochs, w, kCode);
  if (t["loss"]) q.loss = parse_qat_loss(t["loss"].as<std::string>());
  if (t["distill"]) {
    auto d = t["distill"].as<std::string>();
    if (d != "kl" && d != "mse") fail(kCode, "qat_setting.distill must be kl or mse, not '" + d + "'");
    q.distill = d == "kl" ? DistillKind::Kl : DistillKind::Mse;
  }
  q.distill_weight = get_or(t, "distill_weight", q.distill_weight, w, kCode);
  q.temperature = get_or(t, "temperature", q.temperature, w, kCode);
  q.freeze_scales_epoch = get_or(t, "freeze_scales_epoch", q.freeze_scales_epoch, w, kCode);
  q.limit = get_or(t, "limit", q.limit, w, kCode);
  q.val_limit = get_or(t, "val_limit", q.val_limit, w, kCode);
  q.seed = get_or(t, "seed", q.seed, w, kCode);
  if (q.epochs < 1 || q.batch_size < 1 || !(q.lr > 0) || q.scale_lr < 0 || q.momentum < 0 || q.weight_decay < 0 ||
      q.warmup_epochs < 0 || q.warmup_epochs > q.epochs || q.distill_weight < 0 || q.distill_weight > 1 ||
      !(q.temperature > 0) || q.freeze_scales_epoch < 0 || q.limit < 0 || q.val_limit < 0)
    fail(kCode, std::string(w) +
                    ": epochs >= 1, batch_size >= 1, lr > 0, scale_lr/momentum/weight_decay >= 0, 0 <= warmup_epochs "
                    "<= epochs, 0 <= distill_weight <= 1, temperature > 0, freeze_scales_epoch/limit/val_limit >= 0");
  return q;
}
}  // namespace

ExportFormat parse_export_format(const std::string& s) {
  if (s == "auto") return ExportFormat::Auto;
  if (s == "none") return ExportFormat::None;
  if (s == "espdl") return ExportFormat::Espdl;
  if (s == "qdq") return ExportFormat::Qdq;
  if (s == "ti-onnx") return ExportFormat::TiOnnx;
  if (s == "tflite") return ExportFormat::Tflite;
  fail(kCode, "export format must be auto, none, espdl, qdq, ti-onnx or tflite, not '" + s + "'");
}

const char* export_format_name(ExportFormat f) {
  switch (f) {
    case ExportFormat::Auto:
      return "auto";
    case ExportFormat::None:
      return "none";
    case ExportFormat::Espdl:
      return "espdl";
    case ExportFormat::Qdq:
      return "qdq";
    case ExportFormat::TiOnnx:
      return "ti-onnx";
    case ExportFormat::Tflite:
      return "tflite";
  }
  return "?";
}

const char* alignment_name(Alignment a) {
  switch (a) {
    case Alignment::AlignToOutput:
      return "align_to_output";
    case Alignment::AlignToLarge:
      return "align_to_large";
    case Alignment::None:
      return "none";
  }
  return "?";
}

Setting load_setting(const std::string& path) {
  Setting s;
  s.file = path;
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    fail(kCode, path + ": cannot open setting file");
  } catch (const YAML::Exception& e) {
    fail(kCode, path + ": " + e.what());
  }
  try {
    std::set<std::string> valid = {"calib_algorithm",
                                   "percentile",
                                   "weight_calib_algorithm",
                                   "activation_bits",
                                   "weight_bits",
                                   "alignment",
                                   "dispatching_table",
                                   "custom_scales",
                                   "calib_steps",
                                   "batch_size",
                                   "analysis",
                                   "validation",
                                   "passes",
                                   "preprocess",
                                   "tqt_optimization",
                                   "tqt_optimization_setting",
                                   "lsq_optimization",
                                   "lsq_optimization_setting",
                                   "mixed_precision",
                                   "blockwise_reconstruction",
                                   "blockwise_reconstruction_setting",
                                   "equalization",
                                   "equalization_setting",
                                   "layer_split",
                                   "layer_split_setting",
                                   "bias_correction",
                                   "bias_correction_setting",
                                   "quantization_method",
                                   "qat_setting",
                                   "export"};
    check_keys(root, valid, "setting", kCode);
    if (root["calib_algorithm"]) s.calib_algorithm = parse_calib_algorithm(root["calib_algorithm"].as<std::string>());
    s.percentile = get_or(root, "percentile", s.percentile, "setting", kCode);
    if (!(s.percentile > 0.5 && s.percentile <= 1.0)) fail(kCode, "percentile must be in (0.5, 1]");
    if (root["weight_calib_algorithm"]) {
      std::string w = root["weight_calib_algorithm"].as<std::string>();
      if (w != "minmax" && w != "mse") fail(kCode, "weight_calib_algorithm must be minmax or mse, not '" + w + "'");
      s.weight_calib_algorithm = parse_calib_algorithm(w);
    }
    s.activation_bits = get_or(root, "activation_bits", 0, "setting", kCode);
    s.weight_bits = get_or(root, "weight_bits", 0, "setting", kCode);
    if (root["alignment"]) s.alignment = parse_alignment(root["alignment"].as<std::string>());
    if (root["dispatching_table"])
      for (const auto& kv : root["dispatching_table"])
        s.dispatching_table[kv.first.as<std::string>()] = kv.second.as<std::string>();
    if (root["custom_scales"])
      for (const auto& kv : root["custom_scales"]) {
        double v = kv.second.as<double>();
        if (!(v > 0)) fail(kCode, "custom_scales: scale of '" + kv.first.as<std::string>() + "' must be positive");
        s.custom_scales[kv.first.as<std::string>()] = v;
      }
    s.calib_steps = get_or(root, "calib_steps", s.calib_steps, "setting", kCode);
    s.batch_size = get_or(root, "batch_size", s.batch_size, "setting", kCode);
    if (s.calib_steps < 1 || s.batch_size < 1) fail(kCode, "calib_steps and batch_size must be positive");
    if (const YAML::Node& e = root["export"]) {
      check_keys(e, {"format", "test_values", "streaming", "tflite_io"}, "export", kCode);
      std::string io = get_or<std::string>(e, "tflite_io", "int8", "export", kCode);
      if (io != "int8" && io != "float32") fail(kCode, "export: tflite_io must be int8 or float32, not '" + io + "'");
      s.export_setting.tflite_io = io == "int8" ? TfliteIo::Int8 : TfliteIo::Float32;
      if (const YAML::Node& st = e["streaming"]) {
        check_keys(st, {"frames"}, "export: streaming", kCode);
        s.export_setting.streaming_frames = get_or<int64_t>(st, "frames", 0, "export: streaming", kCode);
        if (s.export_setting.streaming_frames < 1) fail(kCode, "export: streaming: frames must be at least 1");
      }
      s.export_setting.format = parse_export_format(get_or<std::string>(e, "format", "auto", "export", kCode));
      if (const YAML::Node& tv = e["test_values"]) {
        std::string v = tv.IsScalar() ? tv.Scalar() : "";
        if (v == "auto")
          s.export_setting.test_values = TestValues::Auto;
        else if (v == "true" || v == "True")
          s.export_setting.test_values = TestValues::Always;
        else if (v == "false" || v == "False")
          s.export_setting.test_values = TestValues::Never;
        else
          fail(kCode, "export: test_values must be auto, true or false, not '" + v + "'");
      }
    }
    if (const YAML::Node& a = root["analysis"]) {
      check_keys(a, {"graphwise", "layerwise", "samples"}, "analysis", kCode);
      s.analysis.graphwise = get_or(a, "graphwise", true, "analysis", kCode);
      s.analysis.layerwise = get_or(a, "layerwise", true, "analysis", kCode);
      s.analysis.samples = get_or(a, "samples", s.analysis.samples, "analysis", kCode);
    }
    if (const YAML::Node& v = root["validation"]) {
      check_keys(v, {"file", "holdout"}, "validation", kCode);
      s.validation.file = get_or<std::string>(v, "file", "", "validation", kCode);
      s.validation.holdout = get_or(v, "holdout", s.validation.holdout, "validation", kCode);
      if (!(s.validation.holdout > 0 && s.validation.holdout < 1)) fail(kCode, "validation.holdout must be in (0, 1)");
    }
    if (const YAML::Node& m = root["mixed_precision"]) read_mixed_precision(m, s.mixed_precision);
    s.layer_split = get_or(root, "layer_split", false, "setting", kCode);
    if (const YAML::Node& l = root["layer_split_setting"]) {
      check_keys(l, {"interested_layers", "value_threshold"}, "layer_split_setting", kCode);
      s.layer_split_setting.interested_layers = interested_layers(l);
      s.layer_split_setting.value_threshold =
          get_or(l, "value_threshold", s.layer_split_setting.value_threshold, "layer_split_setting", kCode);
      if (!(s.layer_split_setting.value_threshold > 0))
        fail(kCode, "layer_split_setting.value_threshold must be positive");
    }
    s.equalization = get_or(root, "equalization", false, "setting", kCode);
    if (const YAML::Node& e = root["equalization_setting"]) {
      const char* w = "equalization_setting";
      check_keys(e, {"interested_layers", "iterations", "value_threshold", "opt_level", "relu6_to_relu"}, w, kCode);
      EqualizationSetting& q = s.equalization_setting;
      q.interested_layers = interested_layers(e);
      q.iterations = get_or(e, "iterations", q.iterations, w, kCode);
      q.value_threshold = get_or(e, "value_threshold", q.value_threshold, w, kCode);
      q.opt_level = get_or(e, "opt_level", q.opt_level, w, kCode);
      q.relu6_to_relu = get_or(e, "relu6_to_relu", q.relu6_to_relu, w, kCode);
      if (q.iterations < 1 || !(q.value_threshold > 0 && q.value_threshold <= 1))
        fail(kCode, "equalization_setting: iterations >= 1 and 0 < value_threshold <= 1");
      if (q.opt_level != 1 && q.opt_level != 2)
        fail(kCode, "equalization_setting.opt_level must be 1 (through ReLU and pooling) or 2 (also across Add), not " +
                        std::to_string(q.opt_level));
    }
    if (root["bias_correction"]) s.bias_correction = get_or(root, "bias_correction", false, "setting", kCode);
    if (const YAML::Node& b = root["bias_correction_setting"]) {
      check_keys(b, {"interested_layers", "steps"}, "bias_correction_setting", kCode);
      s.bias_correction_setting.interested_layers = interested_layers(b);
      s.bias_correction_setting.steps =
          get_or(b, "steps", s.bias_correction_setting.steps, "bias_correction_setting", kCode);
      if (s.bias_correction_setting.steps < 1) fail(kCode, "bias_correction_setting.steps must be positive");
    }
    s.tqt_optimization = get_or(root, "tqt_optimization", false, "setting", kCode);
    s.lsq_optimization = get_or(root, "lsq_optimization", false, "setting", kCode);
    if (s.tqt_optimization && s.lsq_optimization)
      fail(kCode, "tqt_optimization and lsq_optimization exclude each other (power-of-two vs float scales)");
    if (root["tqt_optimization_setting"])
      s.tqt = parse_block_training(root["tqt_optimization_setting"], "tqt_optimization_setting", s.tqt);
    if (root["lsq_optimization_setting"])
      s.lsq = parse_block_training(root["lsq_optimization_setting"], "lsq_optimization_setting", s.lsq);
    s.blockwise_reconstruction = get_or(root, "blockwise_reconstruction", false, "setting", kCode);
    if (root["blockwise_reconstruction_setting"])
      s.adaround = parse_block_training(root["blockwise_reconstruction_setting"], "blockwise_reconstruction_setting",
                                        s.adaround);
    if (root["quantization_method"]) {
      auto m = root["quantization_method"].as<std::string>();
      if (m != "PTQ" && m != "QAT") fail(kCode, "quantization_method must be PTQ or QAT, not '" + m + "'");
      s.qat = m == "QAT";
    }
    if (root["qat_setting"]) s.qat_setting = parse_qat(root["qat_setting"], s.qat_setting);
    if (const YAML::Node& p = root["passes"]) {
      if (!p.IsSequence()) fail(kCode, "passes must be a list of pass names");
      for (const auto& n : p) s.passes.push_back(n.as<std::string>());
    }
    if (const YAML::Node& p = root["preprocess"]) {
      check_keys(p, {"resize", "center_crop", "width", "height", "pixel_scale", "mean", "std", "color", "layout"},
                 "preprocess", kCode);
      Preprocess& pp = s.preprocess;
      pp.resize = get_or(p, "resize", 0, "preprocess", kCode);
      pp.center_crop = get_or(p, "center_crop", 0, "preprocess", kCode);
      pp.width = get_or(p, "width", 0, "preprocess", kCode);
      pp.height = get_or(p, "height", 0, "preprocess", kCode);
      pp.pixel_scale = get_or(p, "pixel_scale", pp.pixel_scale, "preprocess", kCode);
      pp.mean = get_or(p, "mean", pp.mean, "preprocess", kCode);
      pp.std = get_or(p, "std", pp.std, "preprocess", kCode);
      for (double v : pp.std)
        if (v == 0) fail(kCode, "preprocess.std must not contain 0");
      auto color = get_or<std::string>(p, "color", "rgb", "preprocess", kCode);
      if (color != "rgb" && color != "bgr" && color != "gray") fail(kCode, "preprocess.color must be rgb, bgr or gray");
      pp.bgr = color == "bgr";
      pp.grayscale = color == "gray";
      auto layout = get_or<std::string>(p, "layout", "nchw", "preprocess", kCode);
      if (layout != "nchw" && layout != "nhwc") fail(kCode, "preprocess.layout must be nchw or nhwc");
      pp.nhwc = layout == "nhwc";
    }
  } catch (Error& e) {
    throw e.add_context(path);
  } catch (const YAML::Exception& e) {
    fail(kCode, path + ": " + e.what());
  }
  return s;
}

}  // namespace edgequant
