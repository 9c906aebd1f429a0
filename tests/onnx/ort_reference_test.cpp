// Graphs other exporters write, run by EdgeQuant's float executor against ONNX Runtime: the
// opset-1 experimental ops of WinML-era models (decomposed at import), and graphs at opsets
// 18-21 (tools/gen_fixtures/opset18_models.py; typed by running our kernels, as Debian's libonnx
// stops at opset 17).
#include "ort_reference.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "api/load.h"
#include "exec/executor.h"
#include "fixture_cases.h"
#include "onnx/onnx_io.h"
#include "test_util.h"

using namespace edgequant;
using namespace edgequant::testing;

namespace {

TEST(ExperimentalOps, ImageScalerCropAffineMatchOnnxRuntime) {
  std::string dir = scratch_dir("winml");
  ModelBuilder m(8);
  m.input("x", {1, 3, 6, 7}).output("y");
  auto& scaler = m.node("ImageScaler", {"x"}, {"a"}, "scaler");
  ModelBuilder::attr_float(scaler, "scale", 0.5f);
  ModelBuilder::attr_floats(scaler, "bias", {1.0f, -2.0f, 3.0f});
  auto& crop = m.node("Crop", {"a"}, {"b"}, "crop_border");
  ModelBuilder::attr_ints(crop, "border", {1, 2, 0, 1});  // left, top, right, bottom
  auto& affine = m.node("Affine", {"b"}, {"c"}, "affine");
  ModelBuilder::attr_float(affine, "alpha", 2.0f);
  ModelBuilder::attr_float(affine, "beta", -0.25f);
  auto& crop2 = m.node("Crop", {"c"}, {"y"}, "crop_scale");
  ModelBuilder::attr_ints(crop2, "border", {1, 0, 0, 0});
  ModelBuilder::attr_ints(crop2, "scale", {2, 3});  // height, width
  std::string path = m.save(dir + "/winml.onnx");

  at::Tensor x = at::arange(126, at::kFloat).reshape({1, 3, 6, 7}) / 10;
  auto g = load_model(path);
  for (const auto& op : g->ops()) EXPECT_NE(op->type, "Crop") << "experimental op left in the graph";
  exec::Executor ex(*g);
  at::NoGradGuard no_grad;
  at::Tensor got = ex.run({x})[0];
  std::vector<at::Tensor> ort = run_in_ort(dir, path, "x", x);
  ASSERT_EQ(ort.size(), 1u);
  ASSERT_EQ(got.sizes(), ort[0].sizes());
  EXPECT_LE((got - ort[0]).abs().max().item<double>(), 1e-6);
  // Hand-computed: y[0, c, i, j] = 2 * (0.5 * x[0, c, 2 + i, 2 + j] + bias[c]) - 0.25.
  const float bias[3] = {1, -2, 3};
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j)
        EXPECT_NEAR(got[0][c][i][j].item<float>(), 2 * (0.5f * x[0][c][2 + i][2 + j].item<float>() + bias[c]) - 0.25f,
                    1e-6);
  std::filesystem::remove_all(dir);
}

// Random weights so every gate differs (ONNX's conformance cases use one constant for all
// weights: a swapped gate order passes them).
std::vector<float> random_values(int64_t n, at::Generator& gen) {
  at::Tensor t = at::rand({n}, gen) - 0.5;
  return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + n);
}

struct RecurrentCase {
  std::string name, type;
  int64_t opset;
  std::string direction;
  bool seq_lens, layout1, linear_before_reset, peepholes;
};
// (layout = 1 is covered by the conformance cases test_*_batchwise: ONNX Runtime's CPU cells
// refuse it.)
inline void PrintTo(const RecurrentCase& c, std::ostream* os) { *os << c.name; }
class RecurrentCells : public ::testing::TestWithParam<RecurrentCase> {};

TEST_P(RecurrentCells, MatchOnnxRuntime) {
  const RecurrentCase& c = GetParam();
  std::string dir = scratch_dir("rnn_" + c.name);
  const int64_t seq = 5, batch = 3, in = 4, hid = 3, dirs = c.direction == "bidirectional" ? 2 : 1;
  const int64_t gates = c.type == "LSTM" ? 4 : c.type == "GRU" ? 3 : 1;
  at::Generator gen = at::detail::createCPUGenerator(42);
  ModelBuilder m(c.opset);
  std::vector<int64_t> x_shape =
      c.layout1 ? std::vector<int64_t>{batch, seq, in} : std::vector<int64_t>{seq, batch, in};
  m.input("x", x_shape).output("Y").output("Y_h");
  m.initializer("W", {dirs, gates * hid, in}, random_values(dirs * gates * hid * in, gen));
  m.initializer("R", {dirs, gates * hid, hid}, random_values(dirs * gates * hid * hid, gen));
  m.initializer("B", {dirs, 2 * gates * hid}, random_values(dirs * 2 * gates * hid, gen));
  std::vector<int64_t> state =
      c.layout1 ? std::vector<int64_t>{batch, dirs, hid} : std::vector<int64_t>{dirs, batch, hid};
  m.initializer("h0", state, random_values(dirs * batch * hid, gen));
  if (c.seq_lens) m.initializer_i32("lens", {batch}, {5, 2, 4});
  std::vector<std::string> ins = {"x", "W", "R", "B", c.seq_lens ? "lens" : "", "h0"};
  std::vector<std::string> outs = {"Y", "Y_h"};
  if (c.type == "LSTM") {
    m.initializer("c0", state, random_values(dirs * batch * hid, gen));
    ins.push_back("c0");
    if (c.peepholes) {
      m.initializer("P", {dirs, 3 * hid}, random_values(dirs * 3 * hid, gen));
      ins.push_back("P");
    }
    outs.push_back("Y_c");
    m.output("Y_c");
  }
  auto& n = m.node(c.type, ins, outs, "cell");
  ModelBuilder::attr_int(n, "hidden_size", hid);
  auto* d = n.add_attribute();
  d->set_name("direction");
  d->set_type(onnx::AttributeProto::STRING);
  d->set_s(c.direction);
  if (c.layout1) ModelBuilder::attr_int(n, "layout", 1);
  if (c.linear_before_reset) ModelBuilder::attr_int(n, "linear_before_reset", 1);
  std::string path = m.save(dir + "/" + c.name + ".onnx");

  at::Tensor x = at::randn(x_shape, gen);
  auto g = load_model(path);
  exec::Executor ex(*g);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> got = ex.run({x});
  std::vector<at::Tensor> ort = run_in_ort(dir, path, "x", x);
  ASSERT_EQ(ort.size(), got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].sizes(), ort[i].sizes()) << c.name << " output " << i;
    EXPECT_LE((got[i] - ort[i]).abs().max().item<double>(), 1e-5) << c.name << " output " << i;
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RecurrentCells,
    ::testing::Values(RecurrentCase{"lstm_bidirectional_lens_peepholes", "LSTM", 13, "bidirectional", true, false,
                                    false, true},
                      RecurrentCase{"lstm_reverse", "LSTM", 14, "reverse", false, false, false, false},
                      RecurrentCase{"gru_linear_before_reset", "GRU", 13, "forward", false, false, true, false},
                      RecurrentCase{"gru_bidirectional_lens", "GRU", 13, "bidirectional", true, false, false, false},
                      RecurrentCase{"rnn_reverse_lens", "RNN", 13, "reverse", true, false, false, false}),
    [](const ::testing::TestParamInfo<RecurrentCase>& i) { return i.param.name; });

struct OpsetCase {
  std::string model;
  std::vector<int64_t> input_shape;
};
inline void PrintTo(const OpsetCase& c, std::ostream* os) { *os << c.model; }
class NewOpsets : public ::testing::TestWithParam<OpsetCase> {};

TEST_P(NewOpsets, TypedByOurKernelsAndEqualToOnnxRuntime) {
  const OpsetCase& c = GetParam();
  std::string dir = scratch_dir("opsets");
  std::string path = fixture("opsets/" + c.model + ".onnx");
  auto g = load_model(path);
  EXPECT_GE(g->opset, 18);
  for (const auto& v : g->values())
    if (!v->is_constant()) EXPECT_NE(v->dtype, DType::Undefined) << c.model << ": '" << v->name << "' untyped";
  at::manual_seed(21);
  at::Tensor x = at::randn(c.input_shape);
  exec::Executor ex(*g);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> got = ex.run({x});
  std::vector<at::Tensor> ort = run_in_ort(dir, path, g->inputs[0]->name, x);
  ASSERT_EQ(ort.size(), got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].sizes(), ort[i].sizes()) << c.model << " output " << i;
    // 1e-5 absolute, relative for outputs beyond 1 (a DFT of 100 samples reaches ~30: float32
    // FFTs differ there by ~1e-5 from summation order alone).
    double scale = std::max(1.0, ort[i].abs().max().item<double>());
    EXPECT_LE((got[i] - ort[i]).abs().max().item<double>(), 1e-5 * scale) << c.model << " output " << i;
  }
  // Written back (subgraphs with their formal inputs, outer references by name) and read again:
  // the same outputs here, and ONNX Runtime accepts the file.
  std::string exported = dir + "/exported.onnx";
  export_onnx(*g, exported);
  auto again = load_model(exported);
  exec::Executor ex2(*again);
  std::vector<at::Tensor> got2 = ex2.run({x});
  std::vector<at::Tensor> ort2 = run_in_ort(dir, exported, again->inputs[0]->name, x);
  ASSERT_EQ(got2.size(), got.size());
  ASSERT_EQ(ort2.size(), got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(at::equal(got2[i], got[i])) << c.model << " output " << i << " after export";
    EXPECT_LE((ort2[i] - ort[i]).abs().max().item<double>(), 1e-6) << c.model << " output " << i << " exported, in ORT";
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, NewOpsets,
    ::testing::Values(OpsetCase{"opset18_reduce_split_pad", {2, 6, 5, 4}}, OpsetCase{"opset18_groupnorm", {2, 6, 4, 4}},
                      OpsetCase{"opset19_pad_wrap_resize", {2, 2, 5, 4}}, OpsetCase{"opset21_groupnorm", {2, 6, 4, 4}},
                      OpsetCase{"opset21_convnet", {2, 3, 8, 8}}, OpsetCase{"opset20_gelu_mish_lpnorm", {2, 3, 4, 5}},
                      OpsetCase{"opset18_col2im", {2, 3, 4, 8}}, OpsetCase{"opset18_loop_scan", {2, 4}},
                      OpsetCase{"opset18_audio_frontend", {2, 400}},
                      OpsetCase{"opset20_affine_grid_crop", {2, 3, 6, 8}}, OpsetCase{"opset18_bitwise", {3, 6}},
                      OpsetCase{"opset18_roi_align", {2, 3, 8, 10}},
                      OpsetCase{"opset18_resize_antialias", {2, 3, 11, 13}},
                      OpsetCase{"opset19_deform_conv", {2, 4, 7, 9}}, OpsetCase{"opset19_qoperator", {2, 3, 8, 8}},
                      OpsetCase{"opset21_int4_blocked", {2, 18}}),
    [](const ::testing::TestParamInfo<OpsetCase>& i) { return i.param.model; });

// An opset-21 model quantizes end to end: every op output typed, Conv/Relu/Gemm quantized, the
// simulation close to float.
TEST(NewOpsets, Opset21ConvnetQuantizes) {
  std::string dir = scratch_dir("opset21q");
  at::manual_seed(3);
  write_npy(dir + "/x.npy", exec::to_ir_tensor(at::randn({16, 3, 8, 8})));
  auto ctx = calibrated({fixture("opsets/opset21_convnet.onnx"), dir + "/x.npy"}, "esp32p4", 16);
  EXPECT_EQ(ctx->plan.find("r")->state, QuantState::Quantized);
  EXPECT_EQ(ctx->plan.find("y")->state, QuantState::Quantized);
  EXPECT_EQ(ctx->plan.find("c")->state, QuantState::Fused);
  at::Tensor x = at::randn({4, 3, 8, 8});
  at::NoGradGuard no_grad;
  at::Tensor f = ctx->executor().run({x})[0], q = ctx->simulator().run({x})[0];
  double nsr = (q - f).pow(2).sum().item<double>() / f.pow(2).sum().item<double>();
  EXPECT_LT(nsr, 1e-3);
  std::filesystem::remove_all(dir);
}

}  // namespace
