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
  qc->add_option("--format,-f", q.format,
                 "deployable file: auto (the target's) | espdl | qdq | ti-onnx | tflite | none");
  qc->add_flag("--no-export-test-values", q.no_test_values, ".espdl without embedded test inputs/outputs");
  qc->add_flag("--export-test-values", q.always_test_values,
               ".espdl with test inputs/outputs whatever their size (default: only when they take <= 16 KiB)");
  qc->callback([&action] { action = [] { quantize(q, std::cout); }; });

  static QuantizeOptions t;
  auto* tc =
      app.add_subcommand("train",
                         "Quantization-aware training: PTQ, then the whole model trained on a training set "
                         "through the quantized simulation; float, fake-quant and integer-runtime top-1 per epoch");
  tc->add_option("model", t.model, "float ONNX model")->required();
  tc->add_option("--target,-t", t.target, "target name (targets/*.yaml) or a target .yaml file");
  tc->add_option("--ti-config", t.ti_config,
                 "TI Tiny ML Tensorlab config YAML: its quantization keys give the target, bits, PTQ/QAT and the QAT "
                 "stage (docs/qat.md)");
  tc->add_option("--train", t.qat.train_data, "training set: IDX (labels beside), ImageFolder, .npz with 'labels'")
      ->required();
  tc->add_option("--val", t.qat.val_data,
                 "labelled validation set: top-1 per epoch; the best epoch by the integer "
                 "runtime's top-1 is kept");
  tc->add_option("--calib,-c", t.calib, "calibration data for the PTQ start (default: the training set)");
  tc->add_option("--setting,-s", t.setting_file, "setting file (YAML or JSON; qat_setting, see docs/qat.md)");
  tc->add_option("--out,-o", t.out_dir, "output directory (checkpoints in OUT/checkpoints)")->required();
  tc->add_option("--epochs", t.qat.epochs, "epochs (default 3)");
  tc->add_option("--lr", t.qat.lr, "peak learning rate of weights and biases (default 1e-4)");
  tc->add_option("--scale-lr", t.qat.scale_lr, "learning rate of the scales (default: --lr)");
  tc->add_option("--batch-size", t.qat.batch_size, "training batch size (default 64)");
  tc->add_option("--optimizer", t.qat.optimizer, "adam | sgd (default adam)");
  tc->add_option("--loss", t.qat.loss, "ce (labels) | distill (float model as teacher) | both (default ce)");
  tc->add_option("--warmup-epochs", t.qat.warmup_epochs, "linear warm-up before the cosine decay (default 0)");
  tc->add_option("--freeze-scales-epoch", t.qat.freeze_scales_epoch,
                 "scales stop training after this epoch (0: never)");
  tc->add_option("--limit", t.qat.limit, "training samples per epoch (default all)");
  tc->add_option("--val-limit", t.qat.val_limit, "validation samples (default all)");
  tc->add_option("--format,-f", t.format, "deployable file: auto | espdl | qdq | ti-onnx | tflite | none");
  tc->add_flag("--resume", t.qat.resume, "continue from OUT/checkpoints (same model, target and setting)");
  tc->callback([&action] {
    action = [] {
      if (t.target.empty() && t.ti_config.empty())
        fail(ErrorCode::InvalidSetting, "train: give --target or --ti-config");
      if (t.calib.empty()) t.calib = t.qat.train_data;
      quantize(t, std::cout);
    };
  });

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
