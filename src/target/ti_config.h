// TI Tiny ML Tensorlab's config YAML (common/dataset/.../training sections), read as written: its
// quantization keys map to an EdgeQuant target and setting (docs/qat.md, "TI's config"). Keys that
// would change the result and have no equivalent are refused by name; sections of TI's flow that
// EdgeQuant does not run (dataset, feature extraction, testing, compilation) are listed as unused.
#pragma once
#include <string>
#include <vector>

#include "target/setting.h"

namespace edgequant {

struct TiConfig {
  std::string target;  // ti-npu (quantization: 2) or ort-int8 (quantization: 1)
  bool qat = false;    // quantization_method: QAT
  int weight_bits = 8, activation_bits = 8;
  // QAT stage as TI runs it: max(10, training_epochs / 5) epochs at learning_rate / 100, cosine.
  int epochs = 0, batch_size = 0;
  double lr = 0, weight_decay = -1, momentum = -1;
  std::string optimizer;            // "" = EdgeQuant's default
  std::vector<std::string> mapped;  // one line per key: "training.quantization: 2 -> target ti-npu"
  std::vector<std::string> unused;  // what EdgeQuant does not use, with why
};

// Throws InvalidSetting naming the file and key.
TiConfig read_ti_config(const std::string& path);

}  // namespace edgequant
