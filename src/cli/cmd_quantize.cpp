// `edgequant quantize` (PTQ: calibrate, simulate, analyse) and `edgequant evaluate`.
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "cli/commands.h"
#include "edgequant/pipeline.h"

namespace edgequant::cli {

void add_quantize_commands(CLI::App& app, Action& action) {
  static QuantizeOptions q;
  auto* qc = app.add_subcommand("quantize", "Post-training quantization for a target, with error analysis");
  qc->add_option("model", q.model, "float ONNX model")->required();
  qc->add_option("--target,-t", q.target, "target name (targets/*.yaml) or a target .yaml file")->required();
  qc->add_option("--calib,-c", q.calib, "calibration data: IDX file, .npy/.npz, image folder")->required();
  qc->add_option("--calib-steps", q.calib_steps, "number of calibration batches (default 32)");
  qc->add_option("--batch-size", q.batch_size, "calibration batch size (default 32)");
  qc->add_option("--calib-algorithm", q.calib_algorithm,
                 "minmax | percentile | kl | mse | auto (default: the target's)");
  qc->add_option("--setting,-s", q.setting_file, "setting file (YAML or JSON), see docs/settings.md");
  qc->add_option("--out,-o", q.out_dir, "output directory")->required();
  qc->add_option("--format,-f", q.format, "deployable file: auto (the target's) | espdl | qdq | ti-onnx | none");
  qc->add_flag("--no-export-test-values", q.no_test_values, ".espdl without embedded test inputs/outputs");
  qc->callback([&action] { action = [] { quantize(q, std::cout); }; });

  static QuantizeOptions k;
  auto* kc = app.add_subcommand("check",
                                "Before any calibration: every op the target cannot run or export, with the remedy "
                                "(exit 2 when the model cannot be exported)");
  kc->add_option("model", k.model, "float ONNX model")->required();
  kc->add_option("--target,-t", k.target, "target name or .yaml file")->required();
  kc->add_option("--setting,-s", k.setting_file, "setting file (dispatching_table, bits)");
  kc->add_option("--format,-f", k.format, "deployable file: auto | espdl | qdq | ti-onnx");
  kc->callback([&action] {
    action = [] {
      CheckReport r = check(k);
      std::cout << k.model << " for " << k.target << " (" << r.format << "): " << r.ops << " ops checked, "
                << r.findings.size() << " blocking\n";
      for (const auto& f : r.findings) std::cout << "  " << f << "\n";
      for (const auto& n : r.notes) std::cout << "  note: " << n << "\n";
      if (!r.findings.empty())
        fail(ErrorCode::Unsupported, k.model + " cannot be exported as " + r.format + " for " + k.target + " (" +
                                         std::to_string(r.findings.size()) + " blocking node(s) listed above)");
    };
  });

  static EvaluateOptions e;
  auto* ec = app.add_subcommand("evaluate",
                                "Float vs quantized: top-1/top-5 on labeled data; SQNR, cosine, max |diff| and "
                                "top-1 agreement per output on any data");
  ec->add_option("model", e.model, "float ONNX model")->required();
  ec->add_option("--quantized,-q", e.quantized_dir, "directory written by 'edgequant quantize'")->required();
  ec->add_option("--data,-d", e.data,
                 "data: IDX images (labels beside), ImageFolder, .npz with 'labels' (unlabeled: metrics only)")
      ->required();
  ec->add_option("--setting,-s", e.setting_file, "setting for preprocessing (default: the one saved in the directory)");
  ec->add_option("--batch-size", e.batch_size, "batch size (default 100)");
  ec->add_option("--limit", e.limit, "evaluate only the first N samples");
  ec->callback([&action] {
    action = [] {
      EvaluateReport r = evaluate_report(e);
      for (const auto& note : r.notes) std::cerr << "note: " << note << "\n";
      if (r.labelled) {
        const Accuracy &f = r.float_accuracy, &qa = r.quantized_accuracy;
        std::cout << std::fixed << std::setprecision(2) << "samples: " << f.samples << "\n"
                  << "              top-1    top-5\n"
                  << "float       " << std::setw(7) << f.top1 << "  " << std::setw(7) << f.top5 << "\n"
                  << "quantized   " << std::setw(7) << qa.top1 << "  " << std::setw(7) << qa.top5 << "\n"
                  << "delta       " << std::setw(7) << qa.top1 - f.top1 << "  " << std::setw(7) << qa.top5 - f.top5
                  << "\n";
      } else {
        std::cout << "no labels: output metrics only\n";
      }
      for (const auto& m : r.outputs) std::cout << m.line() << "\n";
    };
  });
}

}  // namespace edgequant::cli
