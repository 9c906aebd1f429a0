// How raw samples become model inputs (images: resize, crop, colour order, scaling, mean/std,
// layout). Parsed from the setting's `preprocess` section.
#pragma once
#include <string>
#include <vector>

namespace edgequant {

struct Preprocess {
  int resize = 0;                           // shorter side resized to this (0: keep)
  int center_crop = 0;                      // square crop (0: none)
  int width = 0, height = 0;                // exact resize (overrides resize when both set)
  double pixel_scale = 1.0 / 255.0;         // applied to raw 8-bit pixels first
  std::vector<double> mean{0.0}, std{1.0};  // per channel, after pixel_scale
  bool bgr = false;                         // channel order fed to the model
  bool grayscale = false;
  bool nhwc = false;  // layout of the model input
};

}  // namespace edgequant
