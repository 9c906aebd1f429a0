// Real exporter patterns: torch.onnx.export fixtures (opsets 11 and 13) match torch's own outputs,
// survive export -> re-import bit for bit, and run with any batch size (symbolic batch dim).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "api/load.h"
#include "data/npy.h"
#include "exec/executor.h"
#include "exec/kernel.h"
#include "ir/op_traits.h"
#include "onnx/onnx_io.h"
#include "passes/graph_passes.h"
#include "passes/pass.h"
#include "test_util.h"

using namespace edgequant;
using edgequant::testing::fixture;
using edgequant::testing::ModelBuilder;

namespace {
at::Tensor load_npy(const std::string& rel) { return exec::to_aten(read_npy(fixture(rel))); }

// A fixed-batch-1 model from tools/gen_fixtures run sample by sample on its 16 inputs
// (models/NAME_input.npy) against torch's outputs (models/NAME_op13_output.npy).
void expect_runs_as_torch(const Graph& g, const std::string& name) {
  exec::Executor ex(g);
  at::Tensor x = load_npy("models/" + name + "_input.npy"), want = load_npy("models/" + name + "_op13_output.npy");
  for (int64_t i = 0; i < x.size(0); ++i) {
    at::Tensor got = ex.run({x.slice(0, i, i + 1)})[0];
    EXPECT_TRUE(at::allclose(got[0], want[i], 1e-4, 1e-4)) << name << " sample " << i;
  }
}

class ExporterPattern : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(ExporterPattern, MatchesTorchReference) {
  auto [net, opset] = GetParam();
  std::string stem = "models/" + net + "_op" + std::to_string(opset);
  auto g = load_model(fixture(stem + ".onnx"));
  EXPECT_EQ(g->opset, opset);
  exec::Executor ex(*g);
  at::Tensor x = load_npy("models/" + net + "_input.npy");
  at::Tensor want = load_npy(stem + "_output.npy");
  at::Tensor got = ex.run({x})[0];
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(at::allclose(got, want, 1e-4, 1e-4)) << "max abs error " << (got - want).abs().max().item<float>();
}

TEST_P(ExporterPattern, ReimportOfExportGivesIdenticalOutputs) {
  auto [net, opset] = GetParam();
  std::string stem = "models/" + net + "_op" + std::to_string(opset);
  auto g = load_model(fixture(stem + ".onnx"));
  std::string out = (std::filesystem::temp_directory_path() / (net + std::to_string(opset) + "_export.onnx")).string();
  export_onnx(*g, out);
  auto g2 = load_model(out);
  EXPECT_EQ(g2->ops().size(), g->ops().size());
  at::Tensor x = load_npy("models/" + net + "_input.npy");
  exec::Executor a(*g), b(*g2);
  EXPECT_TRUE(at::equal(a.run({x})[0], b.run({x})[0]));
  std::filesystem::remove(out);
}

TEST_P(ExporterPattern, SymbolicBatchRunsAnyBatchSize) {
  auto [net, opset] = GetParam();
  auto g = load_model(fixture("models/" + net + "_op" + std::to_string(opset) + ".onnx"));
  ASSERT_TRUE(g->inputs[0]->shape.has_value());
  EXPECT_EQ((*g->inputs[0]->shape)[0], -1);
  exec::Executor ex(*g);
  at::Tensor x = load_npy("models/" + net + "_input.npy");
  at::Tensor both = ex.run({x})[0];
  at::Tensor first = ex.run({x.slice(0, 0, 1)})[0];
  at::Tensor triple = ex.run({at::cat({x, x.slice(0, 0, 1)})})[0];
  EXPECT_EQ(triple.size(0), 3);
  EXPECT_TRUE(at::allclose(first[0], both[0], 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(triple.slice(0, 0, 2), both, 1e-5, 1e-5));
}

INSTANTIATE_TEST_SUITE_P(TorchExport, ExporterPattern,
                         ::testing::Combine(::testing::Values("mobilenetv2_style", "resnet_style", "detection_head"),
                                            ::testing::Values(11, 13)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_op" + std::to_string(std::get<1>(info.param));
                         });

TEST(TorchExport, FmodMatchesTorchSampleBySample) {
  // tools/gen_fixtures/export_elementwise.py: torch.fmod exported as Mod(fmod=1), fixed batch 1.
  auto g = load_model(fixture("models/fmod_op13.onnx"));
  int mods = 0;
  for (const auto& op : g->ops()) {
    mods += op->is(OpType::Mod);
    if (op->is(OpType::Mod)) EXPECT_EQ(op->attr_int("fmod", 0), 1);
  }
  EXPECT_EQ(mods, 2);
  expect_runs_as_torch(*g, "fmod");
}

TEST(TorchExport, TemporalConvolutionsRunAsTorch) {
  // tools/gen_fixtures/export_temporal.py: 1-D Conv (BatchNorm1d folded), strided, dilated
  // depthwise, AvgPool1d (exported after an all-zero Pad, which import removes), MaxPool1d,
  // GlobalAveragePool on [N, C, W]; fixed batch 1.
  auto g = load_model(fixture("models/temporal_conv_op13.onnx"));
  int convs = 0;
  for (const auto& op : g->ops()) {
    EXPECT_FALSE(op->is(OpType::Pad) || op->is(OpType::BatchNormalization)) << op->describe();
    convs += op->is(OpType::Conv);
  }
  EXPECT_EQ(convs, 4);
  expect_runs_as_torch(*g, "temporal_conv");
}

TEST(TorchExport, CausalPadsFuseIntoTheConvolutions) {
  // tools/gen_fixtures/export_streaming.py: F.pad(x, (d*(k-1), 0)) before each Conv1d and the
  // AvgPool1d, exported as Pad (after a ConstantOfShape/Concat/Slice chain that folds); import
  // fuses each into the next op's pads: [2, 0], [4, 0] and the pool's [2, 0] with
  // count_include_pad = 1. Outputs equal torch's on 16 samples.
  auto g = load_model(fixture("models/causal_tcn_op13.onnx"));
  std::vector<std::vector<int64_t>> causal;
  for (const auto& op : g->ops()) {
    EXPECT_FALSE(op->is(OpType::Pad)) << op->describe();
    if ((op->is(OpType::Conv) && op->attr_ints("kernel_shape") != std::vector<int64_t>{1}) ||
        op->is(OpType::AveragePool))
      causal.push_back(op->attr_ints("pads"));
    if (op->is(OpType::AveragePool)) EXPECT_EQ(op->attr_int("count_include_pad", 0), 1);
  }
  EXPECT_EQ(causal, (std::vector<std::vector<int64_t>>{{2, 0}, {4, 0}, {2, 0}}));
  expect_runs_as_torch(*g, "causal_tcn");
}

TEST(TorchExport, StandaloneBatchNormBecomesMulAndAdd) {
  // tools/gen_fixtures/export_standalone_bn.py: a BatchNorm2d on the input and one after a
  // residual Add (nothing to fold into) become Mul + Add with [C, 1, 1] constants; outputs equal
  // torch's eval output on 16 samples.
  auto g = load_model(fixture("models/standalone_bn_op13.onnx"));
  int muls = 0, adds = 0;
  for (const auto& op : g->ops()) {
    EXPECT_FALSE(op->is(OpType::BatchNormalization)) << op->describe();
    if (op->is(OpType::Mul)) {
      ++muls;
      ASSERT_TRUE(op->input(1)->is_constant());
      EXPECT_EQ(op->input(1)->data->shape().size(), 3u);
    }
    adds += op->is(OpType::Add);
  }
  EXPECT_EQ(muls, 2);
  EXPECT_EQ(adds, 3);  // two shifts and the residual
  expect_runs_as_torch(*g, "standalone_bn");
}

TEST(TorchExport, TransformerBlockRunsAsTorch) {
  // tools/gen_fixtures/export_transformer.py: two LayerNorms as opset-13 normalisation blocks
  // (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add), MatMul projections, attention
  // (MatMul of activations, Div by 3, Softmax), token mean; outputs equal torch's on 16 samples.
  auto g = load_model(fixture("models/transformer_block_op13.onnx"));
  std::map<std::string, int> count;
  for (const auto& op : g->ops()) ++count[op->type];
  EXPECT_EQ(count["ReduceMean"], 5);
  EXPECT_EQ(count["MatMul"], 7);
  EXPECT_EQ(count["Div"], 3);
  EXPECT_EQ(count["Sqrt"], 2);
  EXPECT_EQ(count["Pow"], 2);
  expect_runs_as_torch(*g, "transformer_block");
}

TEST(TorchExport, Opset17LayerNormDecomposesIntoOpsEspdlRuns) {
  // The same transformer block at opset 17: each LayerNorm is one LayerNormalization node, which
  // `prepare` decomposes for ESP targets (no integer LayerNormalization kernel here) into the
  // opset-13 block (with Mul for the square). Outputs equal torch's before and after.
  auto g = load_model(fixture("models/transformer_block_op17.onnx"));
  expect_runs_as_torch(*g, "transformer_block");
  PassContext pc;
  run_passes(*g, {"decompose-normalization"}, pc);
  std::map<std::string, int> count;
  for (const auto& op : g->ops()) ++count[op->type];
  EXPECT_EQ(count["LayerNormalization"], 0);
  EXPECT_EQ(count["ReduceMean"], 5);
  EXPECT_EQ(count["Sqrt"], 2);
  expect_runs_as_torch(*g, "transformer_block");
}

TEST(TorchExport, ReductionsRunAsTorch) {
  // tools/gen_fixtures/export_reductions.py: ReduceMax and ReduceMin (axes attributes),
  // ReduceSum (axes input at opset 13), Log and ReduceMean after a Conv; fixed batch 1.
  auto g = load_model(fixture("models/reductions_op13.onnx"));
  std::map<std::string, int> count;
  for (const auto& op : g->ops()) ++count[op->type];
  for (const char* t : {"ReduceMax", "ReduceMin", "ReduceSum", "ReduceMean", "Log"}) EXPECT_EQ(count[t], 1) << t;
  expect_runs_as_torch(*g, "reductions");
}

TEST(TorchExport, ConvTransposeDecomposesIntoOpsEspdlRuns) {
  // tools/gen_fixtures/export_conv_transpose.py: two ConvTranspose2d (one depthwise, with
  // output_padding); `prepare` writes each as InsertZeros + Conv for ESP targets. Before and
  // after, outputs equal torch's.
  auto g = load_model(fixture("models/conv_transpose_op13.onnx"));
  expect_runs_as_torch(*g, "conv_transpose");
  PassContext pc;
  DecomposeConvTransposePass().run(*g, pc);
  std::map<std::string, int> count;
  for (const auto& op : g->ops()) ++count[op->type];
  EXPECT_EQ(count["ConvTranspose"], 0);
  EXPECT_EQ(count["InsertZeros"], 2);
  EXPECT_EQ(count["Conv"], 4);
  expect_runs_as_torch(*g, "conv_transpose");
}

TEST(TorchExport, PadsRunAsTorch) {
  // tools/gen_fixtures/export_pads.py: reflect and replicate (edge) Pads before Convs stay Pads
  // (only zero pads fold into a Conv), the zero Pad before a MaxPool too.
  auto g = load_model(fixture("models/pads_op13.onnx"));
  std::map<std::string, int> modes;
  for (const auto& op : g->ops())
    if (op->is(OpType::Pad)) ++modes[op->attr_string("mode", "constant")];
  EXPECT_EQ(modes, (std::map<std::string, int>{{"constant", 1}, {"edge", 1}, {"reflect", 1}}));
  expect_runs_as_torch(*g, "pads");
}

TEST(TorchExport, DepthSpaceRunsAsTorch) {
  // tools/gen_fixtures/export_depth_space.py: PixelShuffle (DepthToSpace CRD), SpaceToDepth and
  // DepthToSpace DCR, the last two from reshape/permute forwards that follow ONNX's definition.
  auto g = load_model(fixture("models/depth_space_op13.onnx"));
  std::map<std::string, int> count;
  for (const auto& op : g->ops()) ++count[op->type];
  EXPECT_EQ(count["DepthToSpace"], 2);
  EXPECT_EQ(count["SpaceToDepth"], 1);
  expect_runs_as_torch(*g, "depth_space");
}

TEST(TorchExport, InstanceNormDecomposesIntoOpsEspdlRuns) {
  // tools/gen_fixtures/export_instance_norm.py: two InstanceNorm2d(affine) nodes; the
  // decompose-normalization pass (run by `prepare` for ESP targets) writes each as ReduceMean,
  // Sub, Mul, ReduceMean, Add, Sqrt, Div, Mul, Add. Before and after, outputs equal torch's.
  auto g = load_model(fixture("models/instance_norm_op13.onnx"));
  int norms = 0;
  for (const auto& op : g->ops()) norms += op->is(OpType::InstanceNormalization);
  EXPECT_EQ(norms, 2);
  expect_runs_as_torch(*g, "instance_norm");
  PassContext pc;
  run_passes(*g, {"decompose-normalization"}, pc);
  std::map<std::string, int> count;
  for (const auto& op : g->ops()) ++count[op->type];
  EXPECT_EQ(count["InstanceNormalization"], 0);
  EXPECT_EQ(count["ReduceMean"], 4);
  EXPECT_EQ(count["Sqrt"], 2);
  EXPECT_EQ(count["Div"], 2);
  expect_runs_as_torch(*g, "instance_norm");
}

TEST(TorchExport, FmodByZeroIsZeroAsOnTheChip) {
  // ONNX leaves x mod 0 undefined (numpy: NaN); ESP-DL's Mod gives 0, and the simulation of a
  // divisor quantized to 0 must too. fmod=1: the dividend's sign.
  ModelBuilder b;
  b.input("x", {4}).output("y", {4});
  b.initializer("D", {4}, {0.75f, 0.f, -0.75f, 0.f});
  onnx::AttributeProto* a = b.node("Mod", {"x", "D"}, {"y"}, "mod").add_attribute();
  a->set_name("fmod");
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(1);
  auto g = load_model(b.save((std::filesystem::temp_directory_path() / "eq_fmod_zero.onnx").string()));
  exec::Executor ex(*g);
  at::Tensor y = ex.run({at::tensor({-1.75f, 2.f, 1.25f, -3.f})})[0];
  EXPECT_TRUE(at::equal(y, at::tensor({-0.25f, 0.f, 0.5f, 0.f}))) << y;
}

int count_ops(const Graph& gr, const std::string& type) {
  int n = 0;
  for (const auto& op : gr.ops()) n += op->type == type;
  return n;
}

TEST(Normalization, FoldsBatchNormIntoConvAndGemmMatchingTorch) {
  // tools/gen_fixtures/export_batchnorm.py: Conv -> BatchNorm2d -> ReLU -> Flatten -> Gemm ->
  // BatchNorm1d with non-trivial running statistics, BN kept by the exporter.
  auto raw = load_model(fixture("models/batchnorm_op13.onnx"), false);
  auto g = load_model(fixture("models/batchnorm_op13.onnx"));
  EXPECT_EQ(count_ops(*raw, "BatchNormalization"), 2);
  EXPECT_EQ(count_ops(*g, "BatchNormalization"), 0);
  EXPECT_EQ(count_ops(*g, "Conv"), 1);
  EXPECT_EQ(count_ops(*g, "Gemm"), 1);
  EXPECT_EQ(g->ops().size(), raw->ops().size() - 2);
  at::Tensor x = load_npy("models/batchnorm_input.npy"), want = load_npy("models/batchnorm_op13_output.npy");
  exec::Executor folded(*g), unfolded(*raw);
  at::Tensor got = folded.run({x})[0];
  EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-5)) << "max abs error " << (got - want).abs().max().item<float>();
  EXPECT_TRUE(at::allclose(unfolded.run({x})[0], want, 1e-5, 1e-5));
}

}  // namespace
