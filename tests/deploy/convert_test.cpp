// `edgequant convert`'s modes (dynamic-range, float16, weight-only int8/int4) written as ONNX
// files and run in ONNX Runtime (npm onnxruntime-node), the runtime they are for:
// - ORT's outputs equal EdgeQuant's executor on the same file (float rounding apart), so the
//   accuracy `convert --eval` reports is the file's;
// - against the float model run in ORT: the accuracy each mode keeps, and the file size;
// - the weight codes against hand-computed values.
#include "deploy/convert.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "api/load.h"
#include "core/files.h"
#include "data/dataset.h"
#include "edgequant/pipeline.h"
#include "exec/executor.h"
#include "exec/kernel.h"
#include "fixture_cases.h"
#include "onnx/onnx_io.h"
#include "ort_reference.h"

using namespace edgequant;
using namespace edgequant::testing;

namespace {

struct ModeCase {
  std::string label;
  ConvertOptions options;  // model and out_dir filled per test
  double min_sqnr_db;      // against the float model, both in ORT
  double max_size_ratio;   // converted / float file size (Fashion-MNIST model)
};
void PrintTo(const ModeCase& c, std::ostream* os) { *os << c.label; }

ModeCase mode_case(const std::string& label, const std::string& mode, double sqnr, double size, int bits = 8,
                   int64_t block = 0, const std::string& scheme = "") {
  ModeCase c{label, {}, sqnr, size};
  c.options.mode = mode;
  c.options.weight_bits = bits;
  c.options.block_size = block;
  c.options.weight_scheme = scheme;
  return c;
}

ModeCase float16_io_case() {
  ModeCase c = mode_case("float16_io", "float16", 50, 0.56);
  c.options.float16_io = true;
  return c;
}

std::vector<ModeCase> mode_cases() {
  return {mode_case("dynamic", "dynamic", 25, 0.50),
          mode_case("float16", "float16", 50, 0.56),
          float16_io_case(),
          mode_case("weight_only_int8", "weight-only", 35, 0.40),
          mode_case("weight_only_int8_blocks16_asym", "weight-only", 35, 0.45, 8, 16, "asymmetric"),
          mode_case("weight_only_int4", "weight-only", 12, 0.40, 4),
          mode_case("weight_only_int4_blocks32", "weight-only", 15, 0.30, 4, 32)};
}

// 10 log10(sum f^2 / sum (q - f)^2) over every element.
double sqnr_db(const at::Tensor& f, const at::Tensor& q) {
  double s = f.to(at::kDouble).pow(2).sum().item<double>();
  double n = (q.to(at::kDouble) - f.to(at::kDouble)).pow(2).sum().item<double>();
  return n == 0 ? INFINITY : 10 * std::log10(s / n);
}

// The first samples of a fixture's data, batched as the model's fixed batch allows.
at::Tensor fixture_batch(const FixtureCase& c, const Graph& g, int64_t n) {
  auto data = open_dataset(c.data, {});
  const Value* in = g.inputs[0];
  if (in->shape && !in->shape->empty() && (*in->shape)[0] > 0) n = (*in->shape)[0];
  n = std::min(n, data->size());
  std::vector<at::Tensor> rows;
  for (int64_t i = 0; i < n; ++i) rows.push_back(exec::view_tensor(data->sample(i)).clone());
  return at::stack(rows).to(at::kFloat);
}

class ConvertInOnnxRuntime : public ::testing::TestWithParam<std::tuple<FixtureCase, ModeCase>> {};

TEST_P(ConvertInOnnxRuntime, RunsAsTheExecutorSaysAndKeepsAccuracy) {
  auto [c, m] = GetParam();
  std::string dir = scratch_dir("convert");
  ConvertOptions o = m.options;
  o.model = fixture(c.model);
  o.out_dir = dir;
  std::ostringstream log;
  ConvertSummary r = convert(o, log);
  ASSERT_GT(r.converted_ops, 0u) << log.str();
  auto written = load_model(r.file, false);
  auto g = load_model(o.model, false);
  at::Tensor x = fixture_batch(c, *g, 4);
  const std::string name = g->inputs[0]->name;
  std::vector<at::Tensor> ort = run_in_ort(dir, r.file, name, x);
  std::filesystem::create_directories(dir + "/f");
  std::vector<at::Tensor> ort_float = run_in_ort(dir + "/f", o.model, name, x);
  at::NoGradGuard no_grad;
  exec::Executor ex(*written);
  const bool half_io = written->inputs[0]->dtype == DType::Float16;
  std::vector<at::Tensor> ours = ex.run({half_io ? x.to(at::kHalf) : x});
  // A float16 graph output is float16 in the executor too: each op's result is rounded.
  for (const at::Tensor& y : ours) EXPECT_EQ(y.scalar_type(), half_io ? at::kHalf : at::kFloat) << m.label;
  ASSERT_EQ(ort.size(), ours.size());
  ASSERT_EQ(ort_float.size(), ours.size());
  for (size_t k = 0; k < ours.size(); ++k) {
    at::Tensor got = ort[k], want = ours[k].to(at::kFloat);
    ASSERT_EQ(got.sizes(), want.sizes());
    const double range = want.abs().max().item<double>();
    // Float16: the executor rounds every op's result to float16 (the file's meaning); ORT's CPU
    // provider computes runs of ops without float16 kernels in float32 and rounds at their ends
    // (0% of outputs identical on 3 of 4 fixtures): two float16 ulps of the largest output. The integer modes compute
    // the same codes and rescale in float32: 1e-4 of the range (seen <= 4e-7).
    const double bound =
        o.mode == "float16" ? 2 * std::ldexp(1.0, int(std::floor(std::log2(range))) - 10) : 1e-4 * range;
    const double diff = (got - want).abs().max().item<double>();
    EXPECT_LE(diff, bound) << m.label << " output " << k << ": ORT and the executor differ";
    const double same = got.eq(want).to(at::kDouble).mean().item<double>();
    const double db = sqnr_db(ort_float[k], got);
    EXPECT_GE(db, m.min_sqnr_db) << m.label << " output " << k;
    std::printf(
        "%s %s output %zu: |ORT - executor| %.3g (range %.3g, %.0f%% identical), SQNR vs float in ORT %.2f dB, %lld -> "
        "%lld bytes\n",
        c.model.c_str(), m.label.c_str(), k, diff, range, 100 * same, db, (long long)r.source_bytes,
        (long long)r.converted_bytes);
  }
  if (c.model.rfind("fashion/", 0) == 0)
    EXPECT_LE(double(r.converted_bytes), m.max_size_ratio * double(r.source_bytes)) << m.label;
  std::filesystem::remove_all(dir);
}

std::string convert_case_name(const ::testing::TestParamInfo<std::tuple<FixtureCase, ModeCase>>& info) {
  std::string s = std::get<0>(info.param).model;
  s = s.substr(s.rfind('/') + 1);
  s = s.substr(0, s.rfind('.'));
  return s + "_" + std::get<1>(info.param).label;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ConvertInOnnxRuntime,
                         ::testing::Combine(::testing::Values(fixture_case("fashion/fmnist_mobilenetv2"),
                                                              fixture_case("models/transformer_block_op13"),
                                                              fixture_case("models/resnet_style_op11"),
                                                              fixture_case("models/detection_head_op13"),
                                                              fixture_case("models/detection_head_op11")),
                                            ::testing::ValuesIn(mode_cases())),
                         convert_case_name);

// Weight codes by hand: w = [[0.5, -1, 0.25, 2], [-0.2, 0.1, 3, -1.5]], blocks of 2 along axis 1.
TEST(ConvertWeights, SymmetricBlocksByHand) {
  Tensor w = Tensor::from_vector(DType::Float32, {2, 4}, std::vector<float>{0.5f, -1, 0.25f, 2, -0.2f, 0.1f, 3, -1.5f});
  deploy::WeightCodes c = deploy::quantize_weight(w, 1, 2, 8, true, 127);
  ASSERT_EQ(c.scales.shape(), (Shape{2, 2}));
  const float* s = c.scales.data<float>();
  EXPECT_FLOAT_EQ(s[0], 1.f / 127);   // max |0.5, -1|
  EXPECT_FLOAT_EQ(s[1], 2.f / 127);   // max |0.25, 2|
  EXPECT_FLOAT_EQ(s[2], 0.2f / 127);  // max |-0.2, 0.1|
  EXPECT_FLOAT_EQ(s[3], 3.f / 127);   // max |3, -1.5|
  const int8_t* q = c.codes.data<int8_t>();
  // 0.5 * 127 = 63.5 -> 64 (ties to even); 0.25 / (2/127) = 15.875 -> 16; 0.1 / (0.2/127) = 63.5 -> 64;
  // -1.5 / (3/127) = -63.5 -> -64.
  EXPECT_EQ(std::vector<int>(q, q + 8), (std::vector<int>{64, -127, 16, 127, -127, 64, 127, -64}));
  EXPECT_EQ(c.zero_points.dtype(), DType::Undefined);
}

TEST(ConvertWeights, AsymmetricFourBitPerChannelByHand) {
  // Column 0: [-1, 2] -> scale 3/15 = 0.2, zero point round(1 / 0.2) = 5, codes 0 and 15.
  // Column 1: [0.3, 0.6] -> range widened to [0, 0.6]: scale 0.04, zero point 0, codes 8 (7.5
  // rounds to even) and 15.
  Tensor w = Tensor::from_vector(DType::Float32, {2, 2}, std::vector<float>{-1, 0.3f, 2, 0.6f});
  deploy::WeightCodes c = deploy::quantize_weight(w, 1, 0, 4, false, 0);
  ASSERT_EQ(c.codes.dtype(), DType::UInt4);
  EXPECT_FLOAT_EQ(c.scales.data<float>()[0], 0.2f);
  EXPECT_FLOAT_EQ(c.scales.data<float>()[1], 0.04f);
  EXPECT_EQ(c.zero_points.data<uint8_t>()[0], 5);
  EXPECT_EQ(c.zero_points.data<uint8_t>()[1], 0);
  const uint8_t* q = c.codes.data<uint8_t>();
  EXPECT_EQ(std::vector<int>(q, q + 4), (std::vector<int>{0, 8, 15, 15}));
}

// Float16 with Softmax kept in float32: Casts around it, and ORT runs the result.
TEST(ConvertFloat16, KeptOpsStayFloat32BetweenCasts) {
  auto g = load_model(fixture("models/transformer_block_op13.onnx"));
  deploy::ConvertSettings s;
  s.mode = deploy::ConvertMode::Float16;
  s.keep_float32 = {"Softmax"};
  deploy::ConvertResult r = deploy::convert_graph(*g, s);
  int softmax = 0;
  for (const auto& op : g->ops())
    if (op->type == "Softmax") {
      ++softmax;
      EXPECT_EQ(op->inputs[0]->dtype, DType::Float32);
      ASSERT_NE(op->inputs[0]->producer, nullptr);
      EXPECT_EQ(op->inputs[0]->producer->type, "Cast");
      EXPECT_EQ(op->outputs[0]->dtype, DType::Float32);
    } else if (op->type == "MatMul") {
      EXPECT_EQ(op->outputs[0]->dtype, DType::Float16) << op->describe();
    }
  EXPECT_GT(softmax, 0);
  EXPECT_EQ(r.kept, size_t(softmax));
  EXPECT_EQ(g->inputs[0]->dtype, DType::Float32);
  EXPECT_EQ(g->outputs[0]->dtype, DType::Float32);
  std::string dir = scratch_dir("convert_keep");
  export_onnx(*g, dir + "/m.onnx");
  auto data = open_dataset(fixture("models/transformer_block_input.npy"), {});
  at::Tensor x = exec::view_tensor(data->sample(0)).clone().unsqueeze(0);
  std::vector<at::Tensor> ort = run_in_ort(dir, dir + "/m.onnx", g->inputs[0]->name, x);
  ASSERT_EQ(ort.size(), 1u);
  std::filesystem::remove_all(dir);
}

// Opset 11 Softmax over a non-last axis meant something else before opset 13: refused by name.
TEST(ConvertOpset, SoftmaxWhoseMeaningChangedIsRefused) {
  Graph g;
  g.opset = 11;
  Value* x = g.add_value("x");
  x->dtype = DType::Float32;
  x->shape = Shape{1, 3, 4};
  g.inputs.push_back(x);
  Value* y = g.add_value("y");
  y->dtype = DType::Float32;
  y->shape = Shape{1, 3, 4};
  g.add_op("Softmax", "sm", {x}, {y})->attrs["axis"] = int64_t(1);
  g.outputs.push_back(y);
  try {
    deploy::upgrade_opset(g, 21);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("node 'sm' (Softmax)"), std::string::npos) << e.what();
  }
}

}  // namespace
