// The integer runtime against the simulation: on every fixture model and ESP target, the codes the
// integer program computes equal the simulator's fake-quantized outputs divided by the output
// scale, bit for bit at int8 (int16: within 1 LSB, where LUT-less activations round twice).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "data/npy.h"
#include "deploy/espdl.h"
#include "deploy/integer_program.h"
#include "fixture_cases.h"
#include "runtime/interpreter.h"
#include "runtime/kernels/kernels.h"

using namespace edgequant;
using namespace edgequant::testing;

namespace {

// Largest |simulated - integer| over every output element, in units of the output's LSB, and the
// number of elements that differ.
struct Diff {
  double max_lsb = 0;
  int64_t differing = 0, total = 0;
};

Diff compare_with_simulation(QuantContext& ctx, int samples) {
  runtime::IntGraph prog =
      deploy::build_integer_program(*ctx.graph, ctx.plan, *ctx.lowered, ctx.target, ctx.executor());
  Diff d;
  for_each_program_sample(ctx, prog, samples, [&](const runtime::TensorMap& in, const std::vector<at::Tensor>& want) {
    runtime::TensorMap out = runtime::run_program(prog, in);
    for (size_t o = 0; o < prog.outputs.size(); ++o) {
      const runtime::IntTensor& got = out.at(prog.outputs[o]);
      std::vector<float> gv = deploy::to_source_layout(prog, prog.outputs[o], got);
      at::Tensor w = want[o].contiguous().to(at::kFloat);
      EXPECT_EQ(int64_t(gv.size()), w.numel());
      double lsb = got.is_float() ? 1.0 : got.scale();
      for (int64_t i = 0; i < w.numel() && i < int64_t(gv.size()); ++i) {
        double diff = std::fabs(double(gv[size_t(i)]) - double(w.data_ptr<float>()[i])) / lsb;
        d.max_lsb = std::max(d.max_lsb, diff);
        d.differing += diff > 1e-3 ? 1 : 0;  // float-scale grids dequantize with float32 rounding
        ++d.total;
      }
    }
  });
  return d;
}

class IntegerRuntime : public ::testing::TestWithParam<std::tuple<FixtureCase, std::string>> {};

// Float-scale targets (TFLite-style integer arithmetic: zero points, q31 multipliers): within 2 LSB
// of the float32 simulation at the outputs. The multiplier approximates s_in * s_w / s_out to 31
// bits and the simulation rounds its float32 product: near a tie they can land on either side,
// and an output reading such an activation can move by one more code. Whether a near-tie occurs
// depends on the calibrated scales, which follow the float activations' last bits on each CPU
// (seen: 0 elements differ with oneDNN's AVX2, AVX and SSE4.1 kernels, ONEDNN_MAX_CPU_ISA). On
// tflite-int8 the detection head's bilinear Resize keeps its input's grid (TFLite requires it):
// its 1/4-3/4 weights put many results exactly on a tie, which the runtime's and ATen's float32
// arithmetic break either way (seen: 375 of 69120 elements, max 2 codes). The LSB figure is
// measured on dequantized float32 values: near 1 on a 1/256 grid that adds ~2e-5 LSB.

class IntegerRuntimeFloatScale : public ::testing::TestWithParam<std::tuple<FixtureCase, std::string>> {};

TEST_P(IntegerRuntimeFloatScale, WithinOneLsbOfTheSimulation) {
  auto [c, target] = GetParam();
  auto owned = calibrated(c, target, 16);
  QuantContext& ctx = *owned;
  Diff d = compare_with_simulation(ctx, 4);
  EXPECT_GT(d.total, 0);
  EXPECT_LE(d.max_lsb, 2.0 + 1e-4) << c.model << " on " << target;
  std::printf("%s %s: %lld of %lld elements differ, max %g LSB\n", c.model.c_str(), target.c_str(),
              (long long)d.differing, (long long)d.total, d.max_lsb);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, IntegerRuntimeFloatScale,
                         ::testing::Combine(::testing::ValuesIn(fixture_models()),
                                            ::testing::Values("ort-int8", "tflite-int8")),
                         CaseName());

TEST_P(IntegerRuntime, EqualsTheSimulationBitForBit) {
  auto [c, target] = GetParam();
  auto owned = calibrated(c, target, 16);
  QuantContext& ctx = *owned;
  Diff d = compare_with_simulation(ctx, 4);
  EXPECT_GT(d.total, 0);
  EXPECT_EQ(d.differing, 0) << c.model << " on " << target << ": " << d.differing << " of " << d.total
                            << " elements differ, max " << d.max_lsb << " LSB";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, IntegerRuntime,
                         ::testing::Combine(::testing::ValuesIn(fixture_models()),
                                            ::testing::Values("esp32p4", "esp32s3", "c", "ti-npu")),
                         CaseName());

// ONNX Mod (fmod=1) between convolutions, a scalar and a per-channel divisor
// (tools/gen_fixtures/export_elementwise.py): ESP-DL's float32 fmodf of dequantized codes.
INSTANTIATE_TEST_SUITE_P(Mod, IntegerRuntime,
                         ::testing::Combine(::testing::Values(fixture_case("models/fmod_op13")),
                                            ::testing::Values("esp32p4", "esp32s3", "c")),
                         CaseName());

// 1-D convolutions and pooling on [N, C, W] sequences (tools/gen_fixtures/export_temporal.py):
// ESP-DL's NWC activations and [kw, C, N] filters.
INSTANTIATE_TEST_SUITE_P(Temporal, IntegerRuntime,
                         ::testing::Combine(::testing::Values(fixture_case("models/temporal_conv_op13"),
                                                              fixture_case("models/causal_tcn_op13")),
                                            ::testing::Values("esp32p4", "esp32s3", "c")),
                         CaseName());

// BatchNormalization with nothing to fold into, as Mul + Add with per-channel constants
// (tools/gen_fixtures/export_standalone_bn.py).
INSTANTIATE_TEST_SUITE_P(StandaloneBn, IntegerRuntime,
                         ::testing::Combine(::testing::Values(fixture_case("models/standalone_bn_op13")),
                                            ::testing::Values("esp32p4", "esp32s3", "c")),
                         CaseName());

// A transformer block (tools/gen_fixtures/export_transformer.py): LayerNorm as ReduceMean, Pow,
// Sqrt and Div, MatMul of weights and of activations, Softmax between them, a token mean; and a
// style-transfer generator whose InstanceNormalization `prepare` decomposes into the same ops
// (tools/gen_fixtures/export_instance_norm.py).
INSTANTIATE_TEST_SUITE_P(Transformer, IntegerRuntime,
                         ::testing::Combine(::testing::Values(fixture_case("models/transformer_block_op13"),
                                                              fixture_case("models/transformer_block_op17"),
                                                              fixture_case("models/instance_norm_op13")),
                                            ::testing::Values("esp32p4", "esp32s3", "c")),
                         CaseName());

// Every int8 dividend code against every divisor code, the divisor one element per row as in a
// LayerNorm ([1, 254, 255] / [1, 254, 1]); minmax calibration puts the dividend on 2^-2, the
// divisor on 2^0 and the quotient on 2^-2. ESP-DL multiplies each row by a rounded reciprocal
// (runtime::DivForm::ReciprocalProduct): 34 of these 64 770 quotients then round to another code
// than a / b does, so the simulation must compute the same form to match the integer runtime.
TEST(IntegerRuntimeDiv, EveryCodePairMatchesTheSimulation) {
  std::vector<float> a, b;
  for (int64_t row = 0; row < 254; ++row) {
    b.push_back(float(row < 127 ? row - 127 : row - 126));  // -127..-1, 1..127
    for (int64_t q = -127; q <= 127; ++q) a.push_back(std::ldexp(float(q), -2));
  }
  ModelBuilder mb;
  mb.input("x", {1, 254, 255}).output("y", {1, 254, 255});
  mb.initializer("divisor", {1, 254, 1}, b);
  mb.node("Div", {"x", "divisor"}, {"y"}, "div");
  std::string dir = ::testing::TempDir();
  std::string model = mb.save(dir + "/eq_div_codes.onnx");
  write_npy(dir + "/eq_div_codes.npy", Tensor::from_vector(DType::Float32, {1, 254, 255}, a));
  for (const char* target : {"esp32s3", "esp32p4", "c"}) {
    Setting s;
    s.calib_algorithm = CalibAlgorithm::MinMax;
    auto owned = calibrated({model, dir + "/eq_div_codes.npy"}, target, 1, s);
    Diff d = compare_with_simulation(*owned, 1);
    EXPECT_EQ(d.total, 254 * 255);
    EXPECT_EQ(d.differing, 0) << target << ": " << d.differing << " quotients differ, max " << d.max_lsb << " LSB";
  }
}

// ReduceMax/Min/Sum/Mean and Log after a Conv (tools/gen_fixtures/export_reductions.py).
INSTANTIATE_TEST_SUITE_P(Reductions, IntegerRuntime,
                         ::testing::Combine(::testing::Values(fixture_case("models/reductions_op13")),
                                            ::testing::Values("esp32p4", "esp32s3", "c")),
                         CaseName());

// PixelShuffle (DepthToSpace CRD), SpaceToDepth on one channel and DepthToSpace DCR with as many
// output channels as the block size, between convolutions (tools/gen_fixtures/export_depth_space.py).
INSTANTIATE_TEST_SUITE_P(DepthSpace, IntegerRuntime,
                         ::testing::Combine(::testing::Values(fixture_case("models/depth_space_op13")),
                                            ::testing::Values("esp32p4", "esp32s3", "c")),
                         CaseName());

// ConvTranspose2d (plain and depthwise with output_padding) as InsertZeros + Conv
// (tools/gen_fixtures/export_conv_transpose.py; the decomposition runs in `prepare`).
INSTANTIATE_TEST_SUITE_P(ConvTranspose, IntegerRuntime,
                         ::testing::Combine(::testing::Values(fixture_case("models/conv_transpose_op13")),
                                            ::testing::Values("esp32p4", "esp32s3", "c")),
                         CaseName());

// Reflect, edge (uneven) and zero Pads before Convs and a MaxPool (tools/gen_fixtures/export_pads.py).
INSTANTIATE_TEST_SUITE_P(Pads, IntegerRuntime,
                         ::testing::Combine(::testing::Values(fixture_case("models/pads_op13")),
                                            ::testing::Values("esp32p4", "esp32s3", "c")),
                         CaseName());

// int16 activations and weights (ESP-DL's S16 layers): int64 accumulators and 40/64-bit biases.
class IntegerRuntime16 : public ::testing::TestWithParam<std::tuple<FixtureCase, std::string>> {};

TEST_P(IntegerRuntime16, Int16WithinOneLsb) {
  auto [c, target] = GetParam();
  Setting s;
  s.activation_bits = 16;
  s.weight_bits = 16;
  auto owned = calibrated(c, target, 16, s);
  QuantContext& ctx = *owned;
  Diff d = compare_with_simulation(ctx, 2);
  EXPECT_GT(d.total, 0);
  // Exact where every op is integer (the simulator accumulates int16 layers in double); the
  // detection head's int16 Sigmoid and bilinear Resize compute a float function and round once
  // on the chip (ESP-DL's S16 path), where the simulation's float32 kernels may land 1 LSB away.
  if (c.float_functions)
    EXPECT_LE(d.max_lsb, 1.0) << c.model << " on " << target;
  else
    EXPECT_EQ(d.differing, 0) << c.model << " on " << target << ": max " << d.max_lsb << " LSB";
  std::printf("%s %s int16: %lld of %lld elements differ, max %g LSB\n", c.model.c_str(), target.c_str(),
              (long long)d.differing, (long long)d.total, d.max_lsb);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, IntegerRuntime16,
                         ::testing::Combine(::testing::Values(fixture_case("models/mobilenetv2_style_op13"),
                                                              fixture_case("models/resnet_style_op13"),
                                                              fixture_case("models/detection_head_op13", true),
                                                              fixture_case("models/fmod_op13"),
                                                              fixture_case("models/temporal_conv_op13"),
                                                              fixture_case("models/transformer_block_op13", true)),
                                            ::testing::Values("esp32p4", "esp32s3", "c")),
                         CaseName());

TEST(ShiftRound, TiesFollowTheMode) {
  // 5/2 = 2.5, -3/2 = -1.5, 7/4 = 1.75, -7/4 = -1.75: hand-computed.
  EXPECT_EQ(runtime::shift_round(5, 1, RoundingMode::HalfEven), 2);
  EXPECT_EQ(runtime::shift_round(-3, 1, RoundingMode::HalfEven), -2);
  EXPECT_EQ(runtime::shift_round(5, 1, RoundingMode::HalfUp), 3);
  EXPECT_EQ(runtime::shift_round(-3, 1, RoundingMode::HalfUp), -1);
  EXPECT_EQ(runtime::shift_round(7, 2, RoundingMode::HalfUp), 2);
  EXPECT_EQ(runtime::shift_round(-7, 2, RoundingMode::HalfEven), -2);
  EXPECT_EQ(runtime::shift_round(-5, 2, RoundingMode::HalfUp), -1);  // -1.25
  EXPECT_EQ(runtime::shift_round(3, -2, RoundingMode::HalfUp), 12);
  // Agrees with the lowered form's reference requantization on a sweep.
  for (int64_t v = -300; v <= 300; ++v)
    for (int s = -2; s <= 5; ++s)
      for (RoundingMode m : {RoundingMode::HalfEven, RoundingMode::HalfUp}) {
        Requantization r{{s}, {}, m};
        ASSERT_EQ(saturate(runtime::shift_round(v, s, m), -128, 127), requantize(v, r, 0, -128, 127)) << v << " " << s;
      }
}

// A float island inside the graph (/layer1/Relu_1 dispatched to float, read by two Convs with
// biases): each Conv quantizes the float tensor with a boundary grid of its own, calibrated on it;
// the bias scale is that grid's scale times the weight's; the integer program (DequantizeLinear,
// float Relu, QuantizeLinear) computes the simulation's codes bit for bit.
class IntegerRuntimeFloatIsland : public ::testing::TestWithParam<std::string> {};

TEST_P(IntegerRuntimeFloatIsland, BoundaryGridsAndBiasScalesAndExactCodes) {
  std::string target = GetParam();
  Setting s;
  s.dispatching_table["/layer1/Relu_1"] = "float";
  auto owned = calibrated(fixture_case("models/resnet_style_op13"), target, 16, s);
  QuantContext& ctx = *owned;
  const QuantConfig* island = ctx.plan.find("/layer1/Relu_1_output_0");
  ASSERT_TRUE(island);
  EXPECT_EQ(island->state, QuantState::Float);
  // The float tensor's largest value on the calibration samples, from a plain float run.
  double float_max = 0;
  {
    exec::ExecHooks h;
    h.watches = [](const Value& v) { return v.name == "/layer1/Relu_1_output_0"; };
    h.after_op = [&](const Op& op, std::vector<at::Tensor>& outs) {
      for (size_t i = 0; i < outs.size() && i < op.outputs.size(); ++i)
        if (op.outputs[i]->name == "/layer1/Relu_1_output_0")
          float_max = std::max(float_max, outs[i].max().item<double>());
    };
    exec::HookList hooks(h);
    quant::BatchStream stream = ctx.batches(ctx.calibration);
    at::Tensor x;
    at::NoGradGuard no_grad;
    while (stream.next(x)) ctx.executor().run({x}, &hooks);
  }
  ASSERT_GT(float_max, 0);
  int boundaries = 0;
  for (const auto& r : ctx.plan.requants) {
    if (r.target != "/layer1/Relu_1_output_0") continue;
    ++boundaries;
    ASSERT_TRUE(r.grid.has_value()) << r.op;
    ASSERT_EQ(r.grid->scales.size(), 1u) << r.op;
    // Calibrated on the float tensor: the grid's top is the tensor's range give or take the
    // calibrator's clip and the power-of-two rounding (a factor of 4 either way).
    double top = r.grid->scales[0] * r.grid->quant_max;
    EXPECT_GT(top, float_max / 4) << r.op;
    EXPECT_LT(top, float_max * 4) << r.op;
    const Op* conv = ctx.graph->find_op(r.op);
    ASSERT_TRUE(conv && conv->type == "Conv" && conv->input(2)) << r.op;
    const QuantConfig* w = ctx.plan.effective(conv->input(1)->name);
    const QuantConfig* b = ctx.plan.effective(conv->input(2)->name);
    ASSERT_TRUE(w && b);
    ASSERT_EQ(b->scales.size(), w->scales.size());
    for (size_t k = 0; k < w->scales.size(); ++k)
      EXPECT_EQ(b->scales[k], w->scales[k] * r.grid->scales[0]) << r.op << " channel " << k;
  }
  EXPECT_EQ(boundaries, 2);  // /layer2/c1/Conv and /layer2/down/down.0/Conv
  Diff d = compare_with_simulation(ctx, 4);
  EXPECT_GT(d.total, 0);
  EXPECT_EQ(d.differing, 0) << target << ": " << d.differing << " of " << d.total << " elements differ, max "
                            << d.max_lsb << " LSB";
}

// A float residual Add (ESP-DL's F32 Add between DequantizeLinear and QuantizeLinear) read by a
// quantized Relu: exact codes as well.
TEST_P(IntegerRuntimeFloatIsland, AFloatResidualAddGivesExactCodes) {
  Setting s;
  s.dispatching_table["/layer1/Add"] = "float";
  auto owned = calibrated(fixture_case("models/resnet_style_op13"), GetParam(), 16, s);
  QuantContext& ctx = *owned;
  EXPECT_EQ(ctx.plan.find("/layer1/Add_output_0")->state, QuantState::Float);
  int boundaries = 0;
  for (const auto& r : ctx.plan.requants)
    boundaries += r.grid && r.target == "/layer1/Add_output_0" && r.op == "/layer1/Relu_1";
  EXPECT_EQ(boundaries, 1);
  if (GetParam() != "ti-npu") {  // the .espdl writer took a float grid's zero point as codes and crashed
    runtime::IntGraph prog =
        deploy::build_integer_program(*ctx.graph, ctx.plan, *ctx.lowered, ctx.target, ctx.executor());
    EXPECT_GT(deploy::encode_espdl(prog).size(), 1000u);
  }
  Diff d = compare_with_simulation(ctx, 4);
  EXPECT_GT(d.total, 0);
  EXPECT_EQ(d.differing, 0) << GetParam() << ": " << d.differing << " of " << d.total << " elements differ, max "
                            << d.max_lsb << " LSB";
}

INSTANTIATE_TEST_SUITE_P(Targets, IntegerRuntimeFloatIsland, ::testing::Values("esp32p4", "esp32s3", "c", "ti-npu"),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           std::string n = i.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
