// ONNX QDQ files run in ONNX Runtime (npm onnxruntime-node, through tools/ort_run.js) against
// EdgeQuant's simulation: at most 1 LSB on every output element of every fixture model, for the
// ONNX Runtime / TFLite targets and the power-of-two targets (ties: QuantizeLinear rounds half to
// even, the ESP targets half up).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "api/load.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "deploy/qdq.h"
#include "exec/kernel.h"
#include "passes/pipeline.h"
#include "target/target.h"
#include "test_util.h"

using namespace edgequant;
using edgequant::testing::fixture;

namespace {
struct Case {
  std::string model, data;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.model; }
const std::string kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

std::string run_command(const std::string& cmd, int* rc) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  while (p && fgets(buf, sizeof buf, p)) out += buf;
  *rc = p ? pclose(p) : -1;
  return out;
}

class QdqInOnnxRuntime : public ::testing::TestWithParam<std::tuple<Case, std::string>> {};

TEST_P(QdqInOnnxRuntime, WithinOneLsbOfTheSimulation) {
  auto [c, target] = GetParam();
  Setting s;
  s.calib_steps = 1;
  s.batch_size = 8;
  QuantContext ctx(load_model(fixture(c.model)), load_target(target), s);
  auto ds = std::shared_ptr<const Dataset>(open_dataset(c.data, {}));
  ctx.calibration = {ds, 0, std::min<int64_t>(ds->size(), 8), "fixture"};
  run_pipeline(ctx, {"prepare", "assign", "calibrate", "lower"});
  std::string dir = (std::filesystem::temp_directory_path() / ("eq_qdq_" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  std::string model = dir + "/model.qdq.onnx";
  deploy::write_qdq(*ctx.graph, ctx.plan, ctx.lowered_form(), model);
  quant::BatchStream stream = ctx.batches(ctx.calibration);
  at::Tensor x;
  ASSERT_TRUE(stream.next(x));
  x = x.slice(0, 0, 4).contiguous();
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> want = ctx.simulator().run({x});
  write_npy(dir + "/input.npy", exec::to_ir_tensor(x));
  int rc = 0;
  std::string log = run_command("node " + std::string(EQ_SOURCE_DIR) + "/tools/ort_run.js " + model + " " + dir + "/ort " +
                                    ctx.graph->inputs[0]->name + "=" + dir + "/input.npy",
                                &rc);
  ASSERT_EQ(rc, 0) << log;
  for (size_t o = 0; o < want.size(); ++o) {
    at::Tensor got = exec::to_aten(read_npy(dir + "/ort." + std::to_string(o) + ".npy"));
    ASSERT_EQ(got.sizes(), want[o].sizes());
    const QuantConfig* oc = ctx.plan.effective(ctx.graph->outputs[o]->name);
    double lsb = oc && oc->has_scale() ? oc->scales[0] : 0;
    double diff = (got - want[o].to(at::kFloat)).abs().max().item<double>();
    if (lsb > 0) {
      EXPECT_LE(diff, lsb * 1.0001) << c.model << " on " << target << ": max |ORT - simulation| = " << diff / lsb << " LSB";
    } else {
      EXPECT_LE(diff, 1e-4) << c.model << " on " << target << " (float output)";
    }
    std::printf("%s %s output %zu: max |ORT - simulation| = %.4g LSB\n", c.model.c_str(), target.c_str(), o, lsb > 0 ? diff / lsb : diff);
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, QdqInOnnxRuntime,
    ::testing::Combine(::testing::Values(Case{"fashion/fmnist_mobilenet.onnx", kFashion}, Case{"fashion/fmnist_resnet.onnx", kFashion},
                                         Case{"models/mobilenetv2_style_op13.onnx", fixture("models/mobilenetv2_style_input.npy")},
                                         Case{"models/resnet_style_op13.onnx", fixture("models/resnet_style_input.npy")},
                                         Case{"models/detection_head_op13.onnx", fixture("models/detection_head_input.npy")},
                                         Case{"models/batchnorm_op13.onnx", fixture("models/batchnorm_input.npy")}),
                       ::testing::Values("ort-int8", "tflite-int8", "esp32p4", "esp32s3", "c")),
    [](const auto& info) {
      std::string m = std::get<0>(info.param).model;
      m = m.substr(m.find('/') + 1);
      m = m.substr(0, m.find('.'));
      std::string t = std::get<1>(info.param);
      for (auto& ch : t)
        if (ch == '-') ch = '_';
      return m + "_" + t;
    });

}  // namespace
