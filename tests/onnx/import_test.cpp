// Import: Constant-node weights, external data, and the normalisation passes on hand-built graphs
// whose expected outputs are computed by hand.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "api/load.h"
#include "edgequant/error.h"
#include "exec/executor.h"
#include "onnx/onnx_io.h"
#include "quant/quantizer.h"
#include "target/target.h"
#include "test_util.h"

using namespace edgequant;
using edgequant::testing::ModelBuilder;
namespace fs = std::filesystem;

namespace {
std::string tmp(const std::string& name) { return (fs::temp_directory_path() / name).string(); }

TEST(Import, ConstantNodeWeightsBecomeInitializers) {
  // y = x * W + B with W and B given as Constant nodes (paddle2onnx style).
  ModelBuilder b;
  b.input("x", {1, 2}).output("y");
  ModelBuilder::attr_tensor(b.node("Constant", {}, {"W"}), "value", {2, 2}, {1, 2, 3, 4});
  ModelBuilder::attr_tensor(b.node("Constant", {}, {"B"}), "value", {2}, {10, 20});
  b.node("MatMul", {"x", "W"}, {"xw"});
  b.node("Add", {"xw", "B"}, {"y"});
  auto g = import_onnx(b.save(tmp("constnode.onnx")));
  EXPECT_EQ(g->ops().size(), 2u);
  ASSERT_TRUE(g->find_value("W")->is_constant());
  exec::Executor ex(*g);
  at::Tensor y = ex.run({at::tensor({1.0f, 1.0f}).reshape({1, 2})})[0];
  EXPECT_TRUE(at::equal(y, at::tensor({14.0f, 26.0f}).reshape({1, 2})));  // [1+3+10, 2+4+20]
}

TEST(Import, ExternalDataIsRead) {
  fs::path dir = fs::temp_directory_path() / "eq_external";
  fs::create_directories(dir);
  std::vector<float> w = {2, -1, 0.5f, 4};
  {
    std::ofstream f(dir / "weights.bin", std::ios::binary);
    f.write("padding!", 8);
    f.write(reinterpret_cast<const char*>(w.data()), 16);
  }
  ModelBuilder b;
  b.input("x", {1, 4}).output("y");
  auto* t = b.model().mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(4);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto add_kv = [&](const std::string& k, const std::string& v) {
    auto* e = t->add_external_data();
    e->set_key(k);
    e->set_value(v);
  };
  add_kv("location", "weights.bin");
  add_kv("offset", "8");
  add_kv("length", "16");
  b.node("Mul", {"x", "w"}, {"y"});
  auto g = import_onnx(b.save((dir / "model.onnx").string()));
  exec::Executor ex(*g);
  at::Tensor y = ex.run({at::ones({1, 4})})[0];
  EXPECT_TRUE(at::equal(y, at::tensor({2.0f, -1.0f, 0.5f, 4.0f}).reshape({1, 4})));
}

TEST(Normalize, FoldsBatchNormIntoConvExactly) {
  // Conv 1x1 (w=2, b=1) then BN(gamma=3, beta=0.5, mean=1, var=3, eps=1): y = (2x+1-1)*3/2+0.5 = 3x+0.5
  ModelBuilder b;
  b.input("x", {1, 1, 2, 2}).output("y");
  b.initializer("w", {1, 1, 1, 1}, {2}).initializer("b", {1}, {1});
  b.initializer("g", {1}, {3}).initializer("beta", {1}, {0.5f}).initializer("m", {1}, {1}).initializer("v", {1}, {3});
  b.node("Conv", {"x", "w", "b"}, {"c"});
  auto& bn = b.node("BatchNormalization", {"c", "g", "beta", "m", "v"}, {"y"});
  auto* eps = bn.add_attribute();
  eps->set_name("epsilon");
  eps->set_type(onnx::AttributeProto::FLOAT);
  eps->set_f(1.0f);
  auto g = load_model(b.save(tmp("bnfold.onnx")));
  ASSERT_EQ(g->ops().size(), 1u);
  EXPECT_EQ(g->ops()[0]->type, "Conv");
  EXPECT_EQ(g->outputs[0]->name, "y");
  exec::Executor ex(*g);
  at::Tensor y = ex.run({at::tensor({0.0f, 1.0f, 2.0f, -1.0f}).reshape({1, 1, 2, 2})})[0];
  EXPECT_TRUE(at::allclose(y, at::tensor({0.5f, 3.5f, 6.5f, -2.5f}).reshape({1, 1, 2, 2})));
}

TEST(Normalize, FoldsShapeComputationAndDropsIdentity) {
  // Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 1)), [-1])) on a static [2,3,4] input.
  ModelBuilder b;
  b.input("x", {2, 3, 4}).output("y");
  b.initializer_i64("idx", {}, {1}).initializer_i64("axes", {1}, {0}).initializer_i64("minus1", {1}, {-1});
  b.node("Identity", {"x"}, {"xi"});
  b.node("Shape", {"xi"}, {"s"});
  b.node("Gather", {"s", "idx"}, {"d1"});
  b.node("Unsqueeze", {"d1", "axes"}, {"d1u"});
  b.node("Concat", {"d1u", "minus1"}, {"shape"}).add_attribute()->CopyFrom([] {
    onnx::AttributeProto a;
    a.set_name("axis");
    a.set_type(onnx::AttributeProto::INT);
    a.set_i(0);
    return a;
  }());
  b.node("Reshape", {"xi", "shape"}, {"y"});
  auto g = load_model(b.save(tmp("shapefold.onnx")));
  ASSERT_EQ(g->ops().size(), 1u);
  EXPECT_EQ(g->ops()[0]->type, "Reshape");
  auto shape = g->ops()[0]->input(1)->data->to_int64s();
  EXPECT_EQ(shape, (std::vector<int64_t>{3, -1}));
}

// auto_pad as TensorFlow converters write it becomes explicit pads at import (ESP-DL takes only
// those). Hand-computed (ONNX: out = ceil(in / stride), total = (out - 1) * stride + (k - 1) * d
// + 1 - in; SAME_UPPER puts the odd one at the end): Conv k3 s2 on 16x16 -> total 1 -> [0,0,1,1];
// MaxPool k3 s2 SAME_LOWER on 8x8 -> total 1 -> [1,1,0,0]; Conv k3 VALID on 4x4 -> 0, 2x2 out. The outputs equal
// the raw graph's, run with auto_pad resolved by the kernels.
TEST(Normalize, AutoPadBecomesExplicitPads) {
  ModelBuilder b;
  b.input("x", {1, 2, 16, 16}).output("y");
  std::vector<float> w(3 * 2 * 9), w2(3 * 3 * 9);
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(int(i % 7) - 3) / 4.f;
  for (size_t i = 0; i < w2.size(); ++i) w2[i] = float(int(i % 5) - 2) / 4.f;
  b.initializer("W", {3, 2, 3, 3}, w).initializer("W2", {3, 3, 3, 3}, w2);
  auto& conv = b.node("Conv", {"x", "W"}, {"c"}, "conv_same");
  ModelBuilder::attr_ints(conv, "strides", {2, 2});
  auto* a = conv.add_attribute();
  a->set_name("auto_pad");
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s("SAME_UPPER");
  auto& pool = b.node("MaxPool", {"c"}, {"p"}, "pool_same");
  ModelBuilder::attr_ints(pool, "kernel_shape", {3, 3});
  ModelBuilder::attr_ints(pool, "strides", {2, 2});
  a = pool.add_attribute();
  a->set_name("auto_pad");
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s("SAME_LOWER");
  auto& valid = b.node("Conv", {"p", "W2"}, {"y"}, "conv_valid");
  ModelBuilder::attr_ints(valid, "pads", {});
  a = valid.add_attribute();
  a->set_name("auto_pad");
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s("VALID");
  std::string path = b.save((std::filesystem::temp_directory_path() / "eq_auto_pad.onnx").string());
  auto g = load_model(path);
  std::map<std::string, std::vector<int64_t>> pads;
  for (const auto& op : g->ops()) {
    EXPECT_FALSE(op->has_attr("auto_pad")) << op->name;
    pads[op->name] = op->attr_ints("pads");
  }
  EXPECT_EQ(pads["conv_same"], (std::vector<int64_t>{0, 0, 1, 1}));
  EXPECT_EQ(pads["pool_same"], (std::vector<int64_t>{1, 1, 0, 0}));
  EXPECT_EQ(pads["conv_valid"], (std::vector<int64_t>{0, 0, 0, 0}));
  auto raw = load_model(path, false);
  at::Tensor x = at::randn({1, 2, 16, 16}, at::TensorOptions().dtype(at::kFloat));
  exec::Executor ea(*g), eb(*raw);
  at::NoGradGuard ng;
  at::Tensor ya = ea.run({x})[0], yb = eb.run({x})[0];
  EXPECT_EQ(ya.sizes(), (at::IntArrayRef{1, 3, 2, 2}));
  EXPECT_TRUE(at::equal(ya, yb));
}

TEST(Executor, HooksObserveAndSubstitute) {
  auto g = load_model(edgequant::testing::fixture("models/resnet_style_op13.onnx"));
  exec::Executor ex(*g);
  at::Tensor x = at::randn({1, 3, 64, 64}, at::TensorOptions().dtype(at::kFloat));
  int observed = 0;
  exec::ExecHooks observe;
  observe.after_op = [&](const Op&, std::vector<at::Tensor>&) { ++observed; };
  at::Tensor y = ex.run({x}, &observe)[0];
  EXPECT_EQ(observed, static_cast<int>(g->ops().size()));

  // Zeroing the last Gemm's input leaves only its bias.
  const Op* gemm = nullptr;
  for (const auto& op : g->ops())
    if (op->type == "Gemm") gemm = op.get();
  ASSERT_NE(gemm, nullptr);
  exec::ExecHooks zero;
  zero.before_op = [&](const Op& op, std::vector<at::Tensor>& in) {
    if (&op == gemm) in[0] = at::zeros_like(in[0]);
  };
  at::Tensor y0 = ex.run({x}, &zero)[0];
  EXPECT_TRUE(at::allclose(y0[0], ex.constant(gemm->input(2))));

  // Running a block with a substituted input is the same computation as a full run: without
  // gradient, run() with hooks that do not take the inference plan and run_ops() run the same
  // prepared kernels op by op on the same tensors (a Relu in place or not computes the same
  // max(x, 0)), so the bits are equal on any CPU.
  exec::ValueTensors env;
  std::vector<const Op*> block;
  for (const auto& op : g->ops()) block.push_back(op.get());
  env[g->inputs[0]] = x;
  {
    at::NoGradGuard no_grad;
    ex.run_ops(block, env);
  }
  EXPECT_TRUE(at::equal(env.at(g->outputs[0]), y));
  // With gradient enabled (training: autograd must record every op), Conv runs through ATen's
  // convolution instead of the executor's prepared oneDNN primitive: the same function, another
  // summation order (2.98e-08 at max |y| 0.49 on an AVX-512 CPU, 0 on AVX2), so a bound in ULPs.
  exec::ValueTensors grad_env{{g->inputs[0], x}};
  ex.run_ops(block, grad_env);
  EXPECT_TRUE(edgequant::testing::within_ulps(grad_env.at(g->outputs[0]), y, 64));
}
}  // namespace

namespace {
// If(cond) then: y = x * W (a branch initializer) else: y = x + 1 (a branch Constant); nested in
// the then-branch's place when `nested`: an inner If on a second constant.
std::string if_model(bool cond, const std::string& path, bool data_dependent = false) {
  edgequant::testing::ModelBuilder b;
  b.input("x", {2, 3}).output("y", {2, 3});
  if (data_dependent)
    b.input("c", {}, onnx::TensorProto::BOOL);
  else {
    auto* c = b.model().mutable_graph()->add_initializer();
    c->set_name("c");
    c->set_data_type(onnx::TensorProto::BOOL);
    c->add_int32_data(cond ? 1 : 0);
  }
  onnx::NodeProto& n = b.node("If", {"c"}, {"y"}, "branch_on_flag");
  auto* then_a = n.add_attribute();
  then_a->set_name("then_branch");
  then_a->set_type(onnx::AttributeProto::GRAPH);
  onnx::GraphProto* tg = then_a->mutable_g();
  edgequant::testing::ModelBuilder::fill(tg->add_initializer(), "W", {3}, {2.f, 3.f, 4.f});
  auto* tn = tg->add_node();
  tn->set_op_type("Mul");
  tn->add_input("x");  // outer scope
  tn->add_input("W");
  tn->add_output("t");
  tg->add_output()->set_name("t");
  auto* else_a = n.add_attribute();
  else_a->set_name("else_branch");
  else_a->set_type(onnx::AttributeProto::GRAPH);
  onnx::GraphProto* eg = else_a->mutable_g();
  auto* one = eg->add_node();
  one->set_op_type("Constant");
  one->add_output("one");
  auto* v = one->add_attribute();
  v->set_name("value");
  v->set_type(onnx::AttributeProto::TENSOR);
  edgequant::testing::ModelBuilder::fill(v->mutable_t(), "", {}, {1.f});
  auto* en = eg->add_node();
  en->set_op_type("Add");
  en->add_input("x");
  en->add_input("one");
  en->add_output("e");
  eg->add_output()->set_name("e");
  return b.save(path);
}
}  // namespace

TEST(Import, ConstantConditionIfFoldsToTheTakenBranch) {
  std::string dir = std::filesystem::temp_directory_path().string();
  at::Tensor x = at::arange(6, at::kFloat).reshape({2, 3});
  at::NoGradGuard no_grad;
  for (bool cond : {true, false}) {
    auto g = load_model(if_model(cond, dir + "/eq_if_" + std::to_string(cond) + ".onnx"));
    for (const auto& op : g->ops()) EXPECT_NE(op->type, "If");
    exec::Executor ex(*g);
    at::Tensor y = ex.run({x})[0];
    at::Tensor want = cond ? x * at::tensor({2.f, 3.f, 4.f}) : x + 1;  // hand-computed branches
    EXPECT_TRUE(at::equal(y, want)) << "cond " << cond << ": " << y;
  }
  // A data-dependent condition stays an If: both branches are subgraphs, the executor takes the
  // one the condition names; written back with its branches, the file runs the same.
  auto g = load_model(if_model(true, dir + "/eq_if_data.onnx", true));
  int ifs = 0;
  for (const auto& op : g->ops()) ifs += op->type == "If";
  EXPECT_EQ(ifs, 1);
  export_onnx(*g, dir + "/eq_if_data_out.onnx");
  auto again = load_model(dir + "/eq_if_data_out.onnx");
  for (const Graph* graph : {g.get(), again.get()}) {
    exec::Executor ex(*graph);
    for (bool cond : {true, false}) {
      at::Tensor y = ex.run({x, at::full({}, cond, at::kBool)})[0];
      at::Tensor want = cond ? x * at::tensor({2.f, 3.f, 4.f}) : x + 1;
      EXPECT_TRUE(at::equal(y, want)) << "data-dependent cond " << cond << ": " << y;
    }
  }
  // Its outputs stay float in quantization, with a note saying why.
  QuantPlan plan = quant::assign_quant_configs(*g, load_target("esp32p4"), Setting{});
  EXPECT_EQ(plan.find("y")->state, QuantState::Float);
  bool noted = false;
  for (const auto& n : plan.notes)
    noted = noted || n.find("both branches are kept and run in float") != std::string::npos;
  EXPECT_TRUE(noted);
}

// The condition is Equal(Gather(Shape(x), 1), 3): constant once shapes fold (x is [2, 3]), so
// the If is replaced by its then branch at load.
TEST(Import, IfWhoseConditionFoldsFromShapesIsInlined) {
  std::string path = std::filesystem::temp_directory_path().string() + "/eq_if_shape.onnx";
  if_model(true, path, true);
  onnx::ModelProto m;
  {
    std::ifstream f(path, std::ios::binary);
    ASSERT_TRUE(m.ParseFromIstream(&f));
  }
  auto* g = m.mutable_graph();
  g->mutable_input()->RemoveLast();  // drop the boolean input 'c'; compute it from x's shape
  auto* i1 = g->add_initializer();
  i1->set_name("one");
  i1->set_data_type(onnx::TensorProto::INT64);
  i1->add_int64_data(1);
  auto* three = g->add_initializer();
  three->set_name("three");
  three->set_data_type(onnx::TensorProto::INT64);
  three->add_int64_data(3);
  onnx::GraphProto head;
  auto add = [&](const std::string& type, std::vector<std::string> ins, const std::string& out) {
    auto* n = head.add_node();
    n->set_op_type(type);
    n->set_name(out + "_node");
    for (auto& i : ins) n->add_input(i);
    n->add_output(out);
  };
  add("Shape", {"x"}, "shape");
  add("Gather", {"shape", "one"}, "dim1");
  add("Equal", {"dim1", "three"}, "c");
  for (const auto& n : g->node()) *head.add_node() = n;
  g->clear_node();
  for (const auto& n : head.node()) *g->add_node() = n;
  {
    std::ofstream f(path, std::ios::binary);
    ASSERT_TRUE(m.SerializeToOstream(&f));
  }
  auto graph = load_model(path);
  for (const auto& op : graph->ops()) EXPECT_NE(op->type, "If");
  exec::Executor ex(*graph);
  at::NoGradGuard no_grad;
  at::Tensor x = at::arange(6, at::kFloat).reshape({2, 3});
  EXPECT_TRUE(at::equal(ex.run({x})[0], x * at::tensor({2.f, 3.f, 4.f})));
  EXPECT_EQ(graph->outputs[0]->name, "y");
}
