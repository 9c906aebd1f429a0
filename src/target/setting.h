// A Setting is the user's knobs for one run, read from YAML/JSON. Key names follow ESP-PPQ
// where it has one (docs/settings.md maps them); unknown keys are errors listing valid ones.
#pragma once
#include <map>
#include <string>

#include "data/preprocess.h"

namespace edgequant {

enum class Alignment { AlignToOutput, AlignToLarge, None };

struct AnalysisSetting {
  bool graphwise = true;
  bool layerwise = true;
  int samples = 64;  // calibration samples the error analysis runs on
};

struct Setting {
  std::string calib_algorithm;  // minmax | percentile | kl | mse; "" = the target's default
  double percentile = 0.9999;
  std::string weight_calib_algorithm = "minmax";  // minmax | mse
  int activation_bits = 0, weight_bits = 0;       // 0 = the target's
  Alignment alignment = Alignment::AlignToOutput;
  std::map<std::string, std::string> dispatching_table;  // op name -> int8 | int16 | float (or bits)
  std::map<std::string, double> custom_scales;           // op or value name -> fixed scale
  int calib_steps = 32, batch_size = 32;
  AnalysisSetting analysis;
  Preprocess preprocess;
  std::string file;  // where it was read from ("" = defaults)
};

Setting load_setting(const std::string& path);  // throws InvalidSetting naming the file and key
const char* alignment_name(Alignment a);

}  // namespace edgequant
