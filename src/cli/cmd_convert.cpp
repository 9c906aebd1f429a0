// `edgequant convert`: dynamic-range, float16 and weight-only files for ONNX Runtime.
#include <iostream>

#include "cli/commands.h"
#include "edgequant/pipeline.h"

namespace edgequant::cli {

void add_convert_commands(CLI::App& app, Action& action) {
  static ConvertOptions c;
  auto* cc = app.add_subcommand("convert",
                                "No calibration: dynamic-range quantization, float16 or weight-only int8/int4, "
                                "each an ONNX file ONNX Runtime runs (docs/convert.md)");
  cc->add_option("model", c.model, "float ONNX model")->required();
  cc->add_option("--mode,-m", c.mode, "dynamic | float16 | weight-only")->required();
  cc->add_option("--out,-o", c.out_dir, "output directory (model.<mode>.onnx, summary.txt)")->required();
  cc->add_option("--ops", c.op_types, "dynamic, weight-only: op types whose weights are quantized (MatMul Gemm Conv)")
      ->delimiter(',');
  cc->add_flag("--full-range", c.full_range, "dynamic: weights in [-127, 127] instead of ONNX Runtime's 7-bit range");
  cc->add_option("--weight-bits", c.weight_bits, "weight-only: 8 or 4 (default 8)");
  cc->add_option("--block-size", c.block_size, "weight-only: 0 = per output channel (default), else block length");
  cc->add_option("--weight-scheme", c.weight_scheme, "weight-only: symmetric | asymmetric (default by bits)");
  cc->add_flag("--float16-io", c.float16_io, "float16: float16 inputs and outputs (default float32 with Casts)");
  cc->add_option("--keep-float32", c.keep_float32, "float16: op types or node names left in float32")->delimiter(',');
  cc->add_option("--eval", c.eval_data, "data to compare the written file with the float model on (labels: top-1)");
  cc->add_option("--setting,-s", c.setting_file, "setting file for the preprocessing of --eval data");
  cc->add_option("--limit", c.eval_limit, "evaluate only the first N samples");
  cc->add_option("--batch-size", c.batch_size, "evaluation batch size (default 32)");
  cc->callback([&action] { action = [] { convert(c, std::cout); }; });
}

}  // namespace edgequant::cli
