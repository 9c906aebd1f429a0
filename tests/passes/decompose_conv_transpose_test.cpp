// decompose-conv-transpose: ConvTranspose as InsertZeros + a stride-1 Conv (ESP-DL's form) gives
// the ONNX conformance suite's outputs, and the same outputs as the ConvTranspose kernel with
// groups, dilations and output_padding; the fixture decoder runs as torch after it.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "api/load.h"
#include "exec/executor.h"
#include "exec/kernel.h"
#include "onnx/onnx_io.h"
#include "passes/graph_passes.h"
#include "test_util.h"

using namespace edgequant;
using edgequant::testing::ModelBuilder;

namespace {

int count(const Graph& g, const std::string& type) {
  int n = 0;
  for (const auto& op : g.ops()) n += op->type == type;
  return n;
}

at::Tensor pb(const std::string& path) { return exec::view_tensor(read_tensor_pb(path)).clone(); }

// ONNX's conformance data: the filter becomes a constant (as in an exported model), the pass
// rewrites the node, the executor gives output_0.pb.
TEST(DecomposeConvTranspose, GivesTheConformanceOutputs) {
  const std::string root = "/usr/share/libonnx-testdata/data/";
  for (const char* c :
       {"pytorch-converted/test_ConvTranspose2d", "pytorch-converted/test_ConvTranspose2d_no_bias",
        "pytorch-operator/test_operator_convtranspose", "node/test_convtranspose", "node/test_convtranspose_1d",
        "node/test_convtranspose_3d", "node/test_convtranspose_pads", "node/test_convtranspose_dilations"}) {
    const std::string dir = root + c;
    auto g = load_model(dir + "/model.onnx");
    const std::string data = dir + "/test_data_set_0/";
    std::vector<at::Tensor> feeds;
    std::vector<Value*> inputs = g->inputs;
    g->inputs.clear();
    for (size_t i = 0; i < inputs.size(); ++i) {
      Tensor t = read_tensor_pb(data + "input_" + std::to_string(i) + ".pb");
      if (i == 0) {
        g->inputs.push_back(inputs[i]);
        feeds.push_back(exec::view_tensor(t).clone());
      } else {
        inputs[i]->data = std::make_shared<const Tensor>(std::move(t));
      }
    }
    ASSERT_EQ(count(*g, "ConvTranspose"), 1) << c;
    PassContext pc;
    DecomposeConvTransposePass().run(*g, pc);
    EXPECT_EQ(count(*g, "ConvTranspose"), 0) << c;
    EXPECT_EQ(count(*g, "InsertZeros"), 1) << c;
    exec::Executor ex(*g);
    at::NoGradGuard ng;
    at::Tensor y = ex.run(feeds)[0], want = pb(data + "output_0.pb");
    ASSERT_EQ(y.sizes(), want.sizes()) << c;
    EXPECT_LE((y - want).abs().max().item<double>(), 1e-4 * std::max(1.0, want.abs().max().item<double>())) << c;
  }
}

// Two groups of 2 input and 3 output channels, stride 2, dilation 2, uneven pads and
// output_padding: the rewrite equals ATen's conv_transpose (the ConvTranspose kernel).
TEST(DecomposeConvTranspose, GroupsDilationsAndOutputPaddingMatchTheKernel) {
  ModelBuilder b;
  b.input("x", {1, 4, 5, 6}).output("y");
  std::vector<float> w(4 * 3 * 3 * 2), bias = {0.5f, -0.25f, 0.125f, 1.f, -1.f, 0.75f};
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(int(i * 7 % 11) - 5) / 8.f;
  b.initializer("W", {4, 3, 3, 2}, w).initializer("B", {6}, bias);
  auto& ct = b.node("ConvTranspose", {"x", "W", "B"}, {"y"}, "up");
  ModelBuilder::attr_ints(ct, "strides", {2, 3});
  ModelBuilder::attr_ints(ct, "dilations", {2, 1});
  ModelBuilder::attr_ints(ct, "pads", {1, 0, 2, 1});
  ModelBuilder::attr_ints(ct, "output_padding", {1, 2});
  auto* g_attr = ct.add_attribute();
  g_attr->set_name("group");
  g_attr->set_type(onnx::AttributeProto::INT);
  g_attr->set_i(2);
  std::string path = b.save((std::filesystem::temp_directory_path() / "eq_conv_transpose_groups.onnx").string());
  auto before = load_model(path);
  auto after = load_model(path);
  PassContext pc;
  DecomposeConvTransposePass().run(*after, pc);
  ASSERT_EQ(count(*after, "ConvTranspose"), 0);
  at::Tensor x = at::randn({1, 4, 5, 6}, at::TensorOptions().dtype(at::kFloat));
  exec::Executor ea(*before), eb(*after);
  at::NoGradGuard ng;
  at::Tensor ya = ea.run({x})[0], yb = eb.run({x})[0];
  // (5 - 1) * 2 + 2 * (3 - 1) + 1 + 1 - 3 = 11; (6 - 1) * 3 + 1 * (2 - 1) + 1 + 2 - 1 = 18.
  ASSERT_EQ(ya.sizes(), (at::IntArrayRef{1, 6, 11, 18}));
  ASSERT_EQ(yb.sizes(), ya.sizes());
  EXPECT_LE((ya - yb).abs().max().item<double>(), 1e-5);
}

// What the rewrite cannot express stays ConvTranspose (and `check` names it).
TEST(DecomposeConvTranspose, OutputShapeAndAutoPadAreLeft) {
  for (const char* c : {"node/test_convtranspose_output_shape", "node/test_convtranspose_autopad_same"}) {
    auto g = load_model(std::string("/usr/share/libonnx-testdata/data/") + c + "/model.onnx");
    for (Value* v : g->inputs)
      if (v->name == "W") v->data = std::make_shared<const Tensor>(DType::Float32, *v->shape);
    PassContext pc;
    DecomposeConvTransposePass().run(*g, pc);
    EXPECT_EQ(count(*g, "ConvTranspose"), 1) << c;
  }
}

}  // namespace
