// TI config reading (see ti_config.h).
#include "target/ti_config.h"

#include <algorithm>
#include <cmath>

#include "target/yaml_util.h"

namespace edgequant {

namespace {
constexpr ErrorCode kCode = ErrorCode::InvalidSetting;

std::string scalar(const YAML::Node& n) {
  return n.IsScalar() ? n.as<std::string>() : "(" + std::to_string(n.size()) + " entries)";
}
}  // namespace

TiConfig read_ti_config(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    fail(kCode, path + ": cannot open TI config file");
  } catch (const YAML::Exception& e) {
    fail(kCode, path + ": " + e.what());
  }
  TiConfig c;
  try {
    check_keys(root, {"common", "dataset", "data_processing_feature_extraction", "training", "testing", "compilation"},
               "TI config", kCode);
    for (const char* s : {"dataset", "data_processing_feature_extraction", "testing", "compilation"})
      if (root[s])
        c.unused.push_back(
            std::string(s) + ": TI's " +
            (std::string(s) == "dataset"   ? "dataset download and split (the data are --train/--val)"
             : std::string(s) == "testing" ? "test stage (train reports float, fake-quant and integer top-1 per epoch)"
             : std::string(s) == "compilation" ? "NPU compiler (the deployable is TI's integer ONNX)"
                                               : "feature extraction (the ONNX model takes the features)"));
    const YAML::Node& common = root["common"];
    check_keys(common, {"task_type", "target_device", "run_name", "target_module"}, "TI config common", kCode);
    const YAML::Node& t = root["training"];
    if (!t) fail(kCode, "TI config: no 'training' section (quantization keys live there)");
    const std::set<std::string> ignored = {"model_name", "model_config", "num_gpus", "run_name",
                                           "output_int", "model_spec",   "dual_op"};
    check_keys(
        t,
        {"model_name", "model_config", "num_gpus", "run_name", "output_int", "model_spec", "dual_op", "batch_size",
         "training_epochs", "learning_rate", "optimizer", "weight_decay", "momentum", "lr_scheduler", "quantization",
         "quantization_method", "quantization_weight_bitwidth", "quantization_activation_bitwidth"},
        "TI config training", kCode);
    const char* w = "TI config training";
    int q = get_or(t, "quantization", 0, w, kCode);
    std::string device = get_or<std::string>(common, "target_device", "", "TI config common", kCode);
    if (q == 0)
      fail(kCode,
           "training.quantization: 0 is TI's float training; EdgeQuant quantizes a trained float model "
           "(set quantization: 2 for the NPU or 1 for TI's generic CPU flow)");
    if (q != 1 && q != 2) fail(kCode, "training.quantization must be 0, 1 or 2, not " + std::to_string(q));
    c.target = q == 2 ? "ti-npu" : "ort-int8";
    c.mapped.push_back("training.quantization: " + std::to_string(q) + " -> target " + c.target +
                       (q == 2 ? " (TI-style NPU quantization: power-of-two scales, BNORM integer sequence)"
                               : " (generic quantization: float scales, ONNX Runtime's integer ops)") +
                       (device.empty() ? "" : "; common.target_device " + device));
    std::string method = get_or<std::string>(t, "quantization_method", "QAT", w, kCode);
    if (method != "QAT" && method != "PTQ")
      fail(kCode, "training.quantization_method must be QAT or PTQ, not '" + method + "'");
    c.qat = method == "QAT";
    c.mapped.push_back("training.quantization_method: " + method +
                       (c.qat ? " -> quantization_method: QAT (the qat pass after PTQ)" : " -> PTQ only"));
    c.weight_bits = get_or(t, "quantization_weight_bitwidth", 8, w, kCode);
    c.activation_bits = get_or(t, "quantization_activation_bitwidth", 8, w, kCode);
    if (q == 2 && c.weight_bits != 8 && c.weight_bits != 4 && c.weight_bits != 2)
      fail(kCode,
           "training.quantization_weight_bitwidth must be 2, 4 or 8 on TI's NPU, not " + std::to_string(c.weight_bits));
    if (q == 2 && c.activation_bits != 8)
      fail(kCode, "training.quantization_activation_bitwidth: " + std::to_string(c.activation_bits) +
                      " cannot run on TI's NPU, whose activations are 8-bit (TI's docs, NPU bitwidth constraints)");
    if (q == 1 && (c.weight_bits != 8 || c.activation_bits != 8))
      fail(kCode, "training.quantization: 1 (ONNX Runtime's integer ops) takes 8-bit weights and activations, not W" +
                      std::to_string(c.weight_bits) + "A" + std::to_string(c.activation_bits));
    c.mapped.push_back("training.quantization_weight_bitwidth: " + std::to_string(c.weight_bits) +
                       " -> weight_bits: " + std::to_string(c.weight_bits));
    c.mapped.push_back("training.quantization_activation_bitwidth: " + std::to_string(c.activation_bits) +
                       " -> activation_bits: " + std::to_string(c.activation_bits));
    if (t["training_epochs"]) {
      int e = get_or(t, "training_epochs", 0, w, kCode);
      if (e < 1) fail(kCode, "training.training_epochs must be positive");
      c.epochs = std::max(10, e / 5);
      c.mapped.push_back("training.training_epochs: " + std::to_string(e) + " -> qat epochs " +
                         std::to_string(c.epochs) + " (TI's QAT stage: max(10, training_epochs / 5))");
    }
    if (t["batch_size"]) {
      c.batch_size = get_or(t, "batch_size", 0, w, kCode);
      if (c.batch_size < 1) fail(kCode, "training.batch_size must be positive");
      c.mapped.push_back("training.batch_size: " + std::to_string(c.batch_size) + " -> qat batch_size");
    }
    if (t["learning_rate"]) {
      double lr = get_or(t, "learning_rate", 0.0, w, kCode);
      if (!(lr > 0)) fail(kCode, "training.learning_rate must be positive");
      c.lr = lr / 100;
      c.mapped.push_back("training.learning_rate: " + scalar(t["learning_rate"]) + " -> qat lr " +
                         std::to_string(c.lr) + " (TI's QAT stage: learning_rate / 100)");
    }
    if (t["optimizer"]) {
      std::string o = get_or<std::string>(t, "optimizer", "", w, kCode);
      std::transform(o.begin(), o.end(), o.begin(), ::tolower);
      if (o != "sgd" && o != "adam") fail(kCode, "training.optimizer: '" + o + "' is not supported (sgd or adam)");
      c.optimizer = o;
      c.mapped.push_back("training.optimizer: " + o + " -> qat optimizer " + o);
    }
    if (t["weight_decay"]) {
      c.weight_decay = get_or(t, "weight_decay", 0.0, w, kCode);
      c.mapped.push_back("training.weight_decay: " + scalar(t["weight_decay"]) + " -> qat weight_decay");
    }
    if (t["momentum"]) {
      c.momentum = get_or(t, "momentum", 0.9, w, kCode);
      c.mapped.push_back("training.momentum: " + scalar(t["momentum"]) + " -> qat momentum");
    }
    if (t["lr_scheduler"]) {
      std::string s = get_or<std::string>(t, "lr_scheduler", "", w, kCode);
      std::string lower = s;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      if (lower != "cosineannealinglr" && lower != "cosine")
        fail(kCode, "training.lr_scheduler: '" + s + "' is not supported (EdgeQuant's QAT decays by cosine)");
      c.mapped.push_back("training.lr_scheduler: " + s + " -> cosine decay (EdgeQuant's schedule)");
    }
    for (const auto& kv : t) {
      std::string k = kv.first.as<std::string>();
      if (ignored.count(k))
        c.unused.push_back("training." + k + ": " + scalar(kv.second) +
                           (k.rfind("model", 0) == 0 ? " (the model is the ONNX file given)"
                                                     : " (TI's training run; no effect on EdgeQuant's)"));
    }
    for (const char* k : {"task_type", "run_name", "target_module"})
      if (common[k]) c.unused.push_back(std::string("common.") + k + ": " + scalar(common[k]));
  } catch (Error& e) {
    throw e.add_context(path);
  } catch (const YAML::Exception& e) {
    fail(kCode, path + ": " + e.what());
  }
  return c;
}

}  // namespace edgequant
