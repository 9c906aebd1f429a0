// Fashion-MNIST end to end: the committed float models (tools/gen_fixtures/train_fashion.py),
// quantized at 8 bits for esp32s3, esp32p4 and ort-int8 with every calibrator, scored on the
// 10 000-image test set. The best calibrator of each target must stay within 1.0 top-1 point
// of float. Prints the full table (lines starting with "TABLE").
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "api/load.h"
#include "data/dataset.h"
#include "exec/executor.h"
#include "quant/calibrate.h"
#include "quant/quantizer.h"
#include "quant/simulator.h"
#include "target/target.h"
#include "test_util.h"

using namespace edgequant;

namespace {
const std::string kData = "/usr/share/datasets/fashion-mnist/";

struct TestSet {
  std::vector<at::Tensor> batches;
  std::vector<at::Tensor> labels;
};

const TestSet& test_set() {
  static TestSet set = [] {
    TestSet s;
    auto ds = open_dataset(kData + "t10k-images-idx3-ubyte.gz", {});
    quant::BatchStream stream(*ds, 1000, 10);
    at::Tensor b;
    int64_t offset = 0;
    while (stream.next(b)) {
      std::vector<int64_t> l;
      for (int64_t i = 0; i < b.size(0); ++i) l.push_back(ds->label(offset + i));
      offset += b.size(0);
      s.batches.push_back(b);
      s.labels.push_back(at::tensor(l, at::kLong));
    }
    return s;
  }();
  return set;
}

double top1(const std::function<at::Tensor(const at::Tensor&)>& model) {
  const TestSet& s = test_set();
  int64_t correct = 0, total = 0;
  for (size_t i = 0; i < s.batches.size(); ++i) {
    correct += model(s.batches[i]).argmax(1).eq(s.labels[i]).sum().item<int64_t>();
    total += s.batches[i].size(0);
  }
  return 100.0 * correct / total;
}

class FashionMnist : public ::testing::TestWithParam<std::string> {};

TEST_P(FashionMnist, BestCalibratorWithinOnePointOfFloat) {
  const std::string model = GetParam();
  auto g = load_model(edgequant::testing::fixture("fashion/" + model + ".onnx"));
  exec::Executor ex(*g);
  at::NoGradGuard no_grad;
  double float_top1 = top1([&](const at::Tensor& x) { return ex.run({x})[0]; });
  EXPECT_GT(float_top1, 85.0);
  auto calib = open_dataset(kData + "train-images-idx3-ubyte.gz", {});
  for (const std::string target_name : {"esp32s3", "esp32p4", "ort-int8"}) {
    Target target = load_target(target_name);
    double best = 0;
    std::string best_calib;
    for (const std::string algo : {"minmax", "percentile", "kl", "mse"}) {
      Setting s;
      s.calib_algorithm = algo;
      QuantPlan plan = quant::assign_quant_configs(*g, target, s);
      quant::BatchStream stream(*calib, 32, 32);
      quant::calibrate(*g, ex, plan, target, s, stream);
      quant::QuantSimulator sim(*g, plan, ex);
      double q = top1([&](const at::Tensor& x) { return sim.run({x})[0]; });
      std::printf("TABLE %-17s %-9s %-11s float %6.2f  quantized %6.2f  delta %+5.2f\n", model.c_str(),
                  target_name.c_str(), algo.c_str(), float_top1, q, q - float_top1);
      if (q > best) {
        best = q;
        best_calib = algo;
      }
    }
    EXPECT_GE(best, float_top1 - 1.0) << model << " on " << target_name << " (best: " << best_calib << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(Models, FashionMnist, ::testing::Values("fmnist_mobilenet", "fmnist_resnet"),
                         [](const auto& info) { return info.param; });
}  // namespace
