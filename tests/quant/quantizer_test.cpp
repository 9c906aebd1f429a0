// Quantizer, calibration and simulation on small graphs and the torch-exported fixtures.
#include "quant/quantizer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "api/load.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "exec/executor.h"
#include "exec/kernel.h"
#include "fixture_cases.h"
#include "ir/op_traits.h"
#include "quant/calibrate.h"
#include "quant/fake_quant.h"
#include "quant/plan_io.h"
#include "quant/simulator.h"
#include "target/target.h"
#include "test_util.h"

using namespace edgequant;
using edgequant::testing::fixture;
using edgequant::testing::ModelBuilder;
namespace fs = std::filesystem;

namespace {
std::string tmp(const std::string& name) { return (fs::temp_directory_path() / ("eq_q_" + name)).string(); }

// Toy conv: two output channels with very different weight ranges, then ReLU.
std::unique_ptr<Graph> toy_conv() {
  ModelBuilder b;
  b.input("x", {-1, 1, 4, 4}).output("y");
  b.initializer("w", {2, 1, 1, 1}, {1.0f, 0.01f}).initializer("b", {2}, {0.1f, 0.2f});
  b.node("Conv", {"x", "w", "b"}, {"c"}, "conv");
  b.node("Relu", {"c"}, {"y"}, "relu");
  return load_model(b.save(tmp("toyconv.onnx")));
}

TEST(Fusion, OneRuleForWhichActivationAComputeOpAbsorbs) {
  // conv0 -> Relu (fused); conv1 -> Relu and Add (two readers); conv2 -> Sigmoid (not fusable);
  // conv3 -> graph output and Relu; Add -> Relu (Add computes nothing to fuse into).
  ModelBuilder b;
  b.input("x", {-1, 1, 4, 4}).output("y0").output("y1").output("y2").output("c3").output("y3").output("y4");
  b.initializer("w", {1, 1, 1, 1}, {0.5f});
  for (int i = 0; i < 4; ++i) b.node("Conv", {"x", "w"}, {"c" + std::to_string(i)}, "conv" + std::to_string(i));
  b.node("Relu", {"c0"}, {"y0"}, "relu0");
  b.node("Relu", {"c1"}, {"r1"}, "relu1");
  b.node("Add", {"r1", "c1"}, {"y1"}, "add1");
  b.node("Sigmoid", {"c2"}, {"y2"}, "sigmoid2");
  b.node("Relu", {"c3"}, {"y3"}, "relu3");
  b.node("Add", {"x", "x"}, {"a4"}, "add4");
  b.node("Relu", {"a4"}, {"y4"}, "relu4");
  auto g = load_model(b.save(tmp("fusion_rule.onnx")), false);
  auto act = [&](const std::string& op) {
    const Op* a = fusable_activation(*g, *g->find_op(op));
    return a ? a->name : std::string("-");
  };
  EXPECT_EQ(act("conv0"), "relu0");
  EXPECT_EQ(act("conv1"), "-");
  EXPECT_EQ(act("conv2"), "-");
  EXPECT_EQ(act("conv3"), "-");
  EXPECT_EQ(act("add4"), "-");
}

TEST(Quantizer, PerChannelVersusPerTensorOnToyConv) {
  auto g = toy_conv();
  exec::Executor ex(*g);
  Setting s;
  QuantPlan p4 = quant::assign_quant_configs(*g, load_target("esp32p4"), s);
  QuantPlan s3 = quant::assign_quant_configs(*g, load_target("esp32s3"), s);
  quant::calibrate_constants(*g, ex, p4, load_target("esp32p4"), s);
  quant::calibrate_constants(*g, ex, s3, load_target("esp32s3"), s);
  // Per channel: 1/127 -> 2^-6 (exponent rounded up), 0.01/127 -> 2^-13. Per tensor: 2^-6.
  EXPECT_EQ(p4.find("w")->exponents(), (std::vector<int>{-6, -13}));
  EXPECT_EQ(s3.find("w")->exponents(), (std::vector<int>{-6}));
  at::Tensor w = ex.constant(g->find_value("w"));
  at::Tensor q4 = quant::fake_quantize(w, *p4.find("w")), q3 = quant::fake_quantize(w, *s3.find("w"));
  EXPECT_FLOAT_EQ(q4[1].item<float>(), 82 * std::ldexp(1.0f, -13));  // round(0.01 * 8192) = 82
  EXPECT_FLOAT_EQ(q3[1].item<float>(), 1 * std::ldexp(1.0f, -6));    // round(0.64) = 1
  // States: the conv output is fused into the ReLU; the bias is passive.
  EXPECT_EQ(p4.find("c")->state, QuantState::Fused);
  EXPECT_EQ(p4.find("y")->state, QuantState::Quantized);
  EXPECT_EQ(p4.find("b")->state, QuantState::Passive);
  EXPECT_EQ(p4.find("b")->bits, 32);
  EXPECT_EQ(s3.find("b")->bits, 20);
}

TEST(Quantizer, BiasScaleIsInputTimesWeightScale) {
  auto g = toy_conv();
  exec::Executor ex(*g);
  Target t = load_target("esp32p4");
  Setting s;
  s.calib_algorithm = CalibAlgorithm::MinMax;
  QuantPlan plan = quant::assign_quant_configs(*g, t, s);
  at::manual_seed(0);
  auto data = at::rand({8, 1, 4, 4}) * 3.0;  // input range [0, 3): 3/127 -> 2^-5
  // A one-batch stream through a dataset stand-in: write as .npy.
  write_npy(tmp("calib.npy"), exec::to_ir_tensor(data));
  auto ds = open_dataset(tmp("calib.npy"), {});
  quant::BatchStream stream(*ds, 8, 1);
  quant::calibrate(*g, ex, plan, t, s, stream);
  EXPECT_EQ(plan.find("x")->exponents()[0], -5);
  const QuantConfig& b = *plan.find("b");
  ASSERT_EQ(b.scales.size(), 2u);
  EXPECT_DOUBLE_EQ(b.scales[0], std::ldexp(1.0, -5) * std::ldexp(1.0, -6));
  EXPECT_DOUBLE_EQ(b.scales[1], std::ldexp(1.0, -5) * std::ldexp(1.0, -13));
}

// The mobilenetv2_style fixture calibrated for `target` on its own two-sample input.
QuantPlan calibrated_fixture_plan(const Graph& g, exec::Executor& ex, const std::string& target) {
  Setting s;
  Target t = load_target(target);
  QuantPlan plan = quant::assign_quant_configs(g, t, s);
  auto ds = open_dataset(fixture("models/mobilenetv2_style_input.npy"), {});
  quant::BatchStream stream(*ds, 2, 1);
  quant::calibrate(g, ex, plan, t, s, stream);
  return plan;
}

// Every quantized tensor of the simulation is an exact integer times 2^e within [qmin, qmax].
TEST(Simulation, PowerOfTwoTensorsAreIntegersTimesPowersOfTwo) {
  auto g = load_model(fixture("models/mobilenetv2_style_op13.onnx"));
  exec::Executor ex(*g);
  QuantPlan plan = calibrated_fixture_plan(*g, ex, "esp32p4");
  quant::QuantSimulator sim(*g, plan, ex);
  int checked = 0;
  auto check = [&](const std::string& name, const at::Tensor& v) {
    const QuantConfig* c = plan.effective(name);
    if (!c || c->state == QuantState::Float || c->state == QuantState::Fused || c->scales.empty()) return;
    at::Tensor scale = quant::scale_tensors(*c, v.dim(), v.options()).first;
    at::Tensor codes = v / scale;
    EXPECT_TRUE(at::equal(codes, at::round(codes))) << name;
    EXPECT_LE(codes.max().item<double>(), double(c->quant_max)) << name;
    EXPECT_GE(codes.min().item<double>(), double(c->quant_min)) << name;
    for (double sc : c->scales) EXPECT_EQ(sc, std::ldexp(1.0, static_cast<int>(std::lround(std::log2(sc)))));
    ++checked;
  };
  exec::ExecHooks hooks;
  hooks.before_op = [&](const Op& op, std::vector<at::Tensor>& in) {
    sim.before_op(op, in, nullptr);
    for (size_t i = 0; i < in.size(); ++i)
      if (op.inputs[i] && op.inputs[i]->is_constant() && plan.find(op.inputs[i]->name))
        check(op.inputs[i]->name, in[i]);
  };
  hooks.after_op = [&](const Op& op, std::vector<at::Tensor>& out) {
    sim.after_op(op, out, nullptr);
    for (size_t i = 0; i < out.size(); ++i)
      if (op.outputs[i]) check(op.outputs[i]->name, out[i]);
  };
  ex.run({exec::to_aten(read_npy(fixture("models/mobilenetv2_style_input.npy")))}, &hooks);
  EXPECT_GT(checked, 40);
}

TEST(Quantizer, AlignToOutputRequantizesAddInputs) {
  auto g = load_model(fixture("models/resnet_style_op13.onnx"));
  Setting s;
  QuantPlan plan = quant::assign_quant_configs(*g, load_target("esp32s3"), s);
  int adds = 0;
  for (const auto& op : g->ops())
    if (op->type == "Add") {
      ++adds;
      int n = 0;
      for (const auto& r : plan.requants) n += r.op == op->name && r.target == op->outputs[0]->name;
      EXPECT_EQ(n, 2) << op->name;
    }
  EXPECT_EQ(adds, 2);
  s.alignment = Alignment::None;
  EXPECT_TRUE(quant::assign_quant_configs(*g, load_target("esp32s3"), s).requants.empty());
}

TEST(Quantizer, DispatchingTableAndCustomScales) {
  auto g = toy_conv();
  Setting s;
  s.dispatching_table["conv"] = "int16";
  s.custom_scales["relu"] = 0.0625;
  QuantPlan plan = quant::assign_quant_configs(*g, load_target("esp32s3"), s);
  EXPECT_EQ(plan.find("w")->bits, 16);
  EXPECT_EQ(plan.find("b")->bits, 40);  // int16 layer bias width on esp32s3
  EXPECT_TRUE(plan.find("y")->custom_scale);
  EXPECT_DOUBLE_EQ(plan.find("y")->scales[0], 0.0625);
}

TEST(Quantizer, BadSettingNamesAreListed) {
  auto g = toy_conv();
  Setting s;
  s.dispatching_table["nope"] = "int16";
  try {
    quant::assign_quant_configs(*g, load_target("esp32s3"), s);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidSetting);
    EXPECT_NE(std::string(e.what()).find("conv, relu"), std::string::npos) << e.what();
  }
  Setting bad_scale;
  bad_scale.custom_scales["relu"] = 0.1;  // not a power of two
  EXPECT_THROW(quant::assign_quant_configs(*g, load_target("esp32s3"), bad_scale), Error);
  try {
    load_target("esp32x9");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("esp32p4"), std::string::npos) << e.what();
  }
}

TEST(TiNpu, ChannelRulesReportCpuFallback) {
  auto g = load_model(fixture("models/resnet_style_op13.onnx"));  // first conv has 3 input channels
  Setting s;
  QuantPlan plan = quant::assign_quant_configs(*g, load_target("ti-npu"), s);
  bool first_conv_note = false;
  for (const auto& n : plan.notes) first_conv_note |= n.find("3 input channels") != std::string::npos;
  EXPECT_TRUE(first_conv_note);
  EXPECT_EQ(plan.find(g->ops()[0]->input(1)->name)->granularity, Granularity::PerChannel);
}

TEST(PlanIo, JsonRoundTripIsExact) {
  auto g = load_model(fixture("models/mobilenetv2_style_op13.onnx"));
  exec::Executor ex(*g);
  QuantPlan plan = calibrated_fixture_plan(*g, ex, "ort-int8");
  QuantPlan back = quant::plan_from_json(nlohmann::json::parse(quant::plan_to_json(plan).dump()), "test");
  ASSERT_EQ(back.values.size(), plan.values.size());
  for (const auto& [name, c] : plan.values) {
    EXPECT_EQ(back.find(name)->scales, c.scales) << name;
    EXPECT_EQ(back.find(name)->zero_points, c.zero_points) << name;
    EXPECT_EQ(back.find(name)->state, c.state) << name;
  }
  at::Tensor x = exec::to_aten(read_npy(fixture("models/mobilenetv2_style_input.npy")));
  quant::QuantSimulator a(*g, plan, ex), b(*g, back, ex);
  EXPECT_TRUE(at::equal(a.run({x})[0], b.run({x})[0]));
}

TEST(Calibration, NaNSampleIsNamed) {
  Tensor t(DType::Float32, {5, 1, 4, 4});
  t.data<float>()[3 * 16 + 2] = std::nanf("");
  write_npy(tmp("nan.npy"), t);
  auto g = toy_conv();
  exec::Executor ex(*g);
  Setting s;
  Target target = load_target("esp32s3");
  QuantPlan plan = quant::assign_quant_configs(*g, target, s);
  auto ds = open_dataset(tmp("nan.npy"), {});
  quant::BatchStream stream(*ds, 5, 1);
  try {
    quant::calibrate(*g, ex, plan, target, s, stream);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sample 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos) << e.what();
  }
}

// Align to Large takes the union of the inputs' grids. A residual Add whose two inputs come out of
// float ops (both dispatched to float) has none: its output is observed and calibrated on its own
// values instead (it got the degenerate range [0, 0] before: SQNR 19 dB instead of 41 on ort-int8),
// while the Add with quantized inputs keeps Align to Large.
TEST(Quantizer, AlignToLargeWithOnlyFloatInputsCalibratesTheOutputItself) {
  Setting s;
  s.alignment = Alignment::AlignToLarge;
  s.dispatching_table["/layer1/c2/Conv"] = "float";
  s.dispatching_table["/stem/stem.3/MaxPool"] = "float";
  auto ctx =
      edgequant::testing::calibrated(edgequant::testing::fixture_case("models/resnet_style_op13"), "ort-int8", 16, s);
  const QuantConfig* mixed = ctx->plan.find("/layer1/Add_output_0");
  const QuantConfig* quantized = ctx->plan.find("/layer2/Add_output_0");
  ASSERT_TRUE(mixed && quantized);
  EXPECT_FALSE(mixed->align_to_large);
  EXPECT_TRUE(quantized->align_to_large);
  // The Add's largest |value| on the calibration samples, from a plain float run.
  double amax = 0;
  exec::ExecHooks h;
  h.watches = [](const Value& v) { return v.name == "/layer1/Add_output_0"; };
  h.after_op = [&](const Op& op, std::vector<at::Tensor>& outs) {
    if (op.outputs[0]->name == "/layer1/Add_output_0") amax = std::max(amax, outs[0].abs().max().item<double>());
  };
  exec::HookList hooks(h);
  quant::BatchStream stream = ctx->batches(ctx->calibration);
  at::Tensor x;
  at::NoGradGuard no_grad;
  while (stream.next(x)) ctx->executor().run({x}, &hooks);
  ASSERT_GT(amax, 0);
  ASSERT_EQ(mixed->scales.size(), 1u);
  double span = mixed->scales[0] * double(mixed->quant_max - mixed->quant_min);  // the grid's width
  EXPECT_GT(span, amax / 4);
  EXPECT_LT(span, amax * 8);
}

}  // namespace

// Recurrent cells have no integer kernel on any target: the LSTM's outputs and its W/R/B stay
// float while the Gemm after it is quantized; the simulation then equals float up to the Gemm's
// quantization.
TEST(Quantizer, LstmStaysFloat) {
  ModelBuilder b;
  b.input("x", {5, -1, 3}).output("y");
  std::vector<float> w(4 * 2 * 3, 0.1f), r(4 * 2 * 2, -0.2f), bias(16, 0.05f), gw(2 * 2, 0.5f);
  b.initializer("W", {1, 8, 3}, w).initializer("R", {1, 8, 2}, r).initializer("B", {1, 16}, bias);
  b.initializer("gw", {2, 2}, gw).initializer_i64("axis0", {1}, {0});
  auto& lstm = b.node("LSTM", {"x", "W", "R", "B"}, {"", "h"}, "lstm");
  ModelBuilder::attr_int(lstm, "hidden_size", 2);
  b.node("Squeeze", {"h", "axis0"}, {"hs"}, "squeeze");
  b.node("Gemm", {"hs", "gw"}, {"y"}, "gemm");
  auto g = load_model(b.save(tmp("lstm_float.onnx")));
  for (const char* target : {"ort-int8", "esp32p4"}) {
    QuantPlan p = quant::assign_quant_configs(*g, load_target(target), Setting{});
    EXPECT_EQ(p.find("h")->state, QuantState::Float) << target;
    EXPECT_TRUE(!p.find("W") && !p.find("R") && !p.find("B")) << target;
    EXPECT_EQ(p.find("y")->state, QuantState::Quantized) << target;
  }
}
