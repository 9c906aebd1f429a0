// mixed-precision: the two units with the worst layerwise error go to int16 (a conv with its
// fused activation counts as one unit), the plan and the lowered form carry the wider types,
// int8 consumers read the int16 tensors through a requantization of their own (ESP-DL's
// RequantizeLinear), no calibration data pass is repeated, and the output error drops.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "api/load.h"
#include "ir/op_traits.h"
#include "passes/pipeline.h"
#include "test_util.h"

using namespace edgequant;

namespace {
TEST(MixedPrecision, PromotesTheWorstUnitsToInt16AndLowersTheError) {
  Setting s;
  s.calib_steps = 2;
  s.calib_algorithm = CalibAlgorithm::KL;  // the premise below: KL clips the stem hardest
  s.batch_size = 16;
  s.analysis.samples = 64;
  s.analysis.layerwise = false;
  QuantContext ctx(load_model(edgequant::testing::fixture("fashion/fmnist_resnet.onnx")), load_target("esp32s3"), s);
  attach_data(ctx, "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
  run_pipeline(ctx, {"prepare", "assign", "calibrate", "analyse"});
  double before = ctx.report->output_noise_ratio;
  ctx.edit_setting().mixed_precision.auto_promote = 2;
  run_pipeline(ctx, {"mixed-precision", "analyse", "lower"});
  double after = ctx.report->output_noise_ratio;
  // KL clips the stem's ReLU output hardest: the stem conv and its ReLU are promoted.
  const Op* conv = ctx.graph->find_op("/stem/stem.0/Conv");
  ASSERT_NE(conv, nullptr);
  EXPECT_TRUE(ctx.setting().dispatching_table.empty());  // the promotions are the plan's, the setting stays the user's
  EXPECT_EQ(ctx.plan.find(conv->input(1)->name)->bits, 16);
  EXPECT_EQ(ctx.plan.find(conv->input(2)->name)->bits, 40);  // esp32s3 int16 layers: 40-bit bias
  const QuantConfig* relu_out =
      ctx.plan.effective(ctx.plan.find(conv->outputs[0]->name)->fused_into.empty()
                             ? conv->outputs[0]->name
                             : ctx.graph->find_op(ctx.plan.find(conv->outputs[0]->name)->fused_into)->outputs[0]->name);
  EXPECT_EQ(relu_out->bits, 16);
  EXPECT_EQ(ctx.lowered->tensor(conv->input(1)->name)->dtype, DType::Int16);
  EXPECT_EQ(ctx.lowered->tensor(conv->input(2)->name)->dtype, DType::Int64);
  EXPECT_EQ(ctx.lowered->op(conv->name)->accumulator_bits, 64);
  EXPECT_EQ(ctx.plan.find(ctx.graph->find_op("/stem/stem.2/Relu")->outputs[0]->name)->bits, 16);
  // Every op reading a tensor of another width does so through a grid of its own width (int8
  // ops reading the int16 stem output, the int16 stem reading the int8 image).
  int boundaries = 0;
  for (const auto& r : ctx.plan.requants)
    if (r.grid) {
      ++boundaries;
      EXPECT_NE(r.grid->bits, ctx.plan.effective(r.target)->bits) << r.op;
      ASSERT_TRUE(r.grid->has_scale()) << r.op;
      const LoweredOp* lo = ctx.lowered->op(r.op);
      ASSERT_TRUE(lo && lo->input_requants.count(r.index)) << r.op;
      // Code -> code: a shift by the exponent difference.
      EXPECT_EQ(lo->input_requants.at(r.index).shift[0],
                r.grid->exponents()[0] - ctx.plan.effective(r.target)->exponents()[0]);
    }
  EXPECT_GE(boundaries, 2);
  EXPECT_EQ(ctx.stats.data_passes, 4);  // calibration once; analyse before, inside (layerwise), after
  // The int8 consumers re-clip the stem output, so the gain is modest: 0.0253 -> 0.0186 here.
  EXPECT_LT(after, 0.8 * before) << "before " << before << ", after " << after;
  ASSERT_FALSE(ctx.plan.notes.empty());
  EXPECT_NE(ctx.plan.notes.back().find("2 units promoted to int16"), std::string::npos) << ctx.plan.notes.back();
}
}  // namespace

namespace {
using edgequant::testing::fixture;
const char* kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

// Mean weight width over the computing ops' quantized weights, and the widths seen.
double average_weight_bits(const QuantContext& ctx, std::set<int>& widths) {
  double bits = 0, n = 0;
  for (const auto& op : ctx.graph->ops()) {
    if (!is_compute_op(op->type) || !op->input(1) || !op->input(1)->is_constant()) continue;
    const QuantConfig* c = ctx.plan.find(op->input(1)->name);
    if (!c || c->state != QuantState::Quantized) continue;
    double k = static_cast<double>(op->input(1)->data->numel());
    bits += k * c->bits;
    n += k;
    widths.insert(c->bits);
  }
  return bits / n;
}

std::unique_ptr<QuantContext> ti_resnet(const Setting& s) {
  auto ctx =
      std::make_unique<QuantContext>(load_model(fixture("fashion/fmnist_resnet.onnx")), load_target("ti-npu"), s);
  attach_data(*ctx, kFashion);
  return ctx;
}

Setting small_setting() {
  Setting s;
  s.calib_steps = 4;
  s.batch_size = 32;
  s.analysis.samples = 128;
  s.analysis.layerwise = false;
  return s;
}

// ti-npu, 2/4/8-bit weights, an average of 4 bits: the measured search mixes widths, stays within
// the budget, its predicted error (the sum of the units' layerwise errors) is the model's output
// error to within a few times, and the model has less output error than every weight at 4 bits
// (same calibration, the same validation samples; no bias correction on either, so the output
// error is the allocation's own).
TEST(WidthSearch, MeasuredAllocationFitsTheBudgetAndBeatsUniformFourBits) {
  Setting uniform = small_setting();
  uniform.weight_bits = 4;
  uniform.bias_correction = false;
  auto u = ti_resnet(uniform);
  run_pipeline(*u, pipeline_for(uniform));
  Setting mixed = small_setting();
  mixed.mixed_precision.method = BitSearch::Measured;
  mixed.mixed_precision.budget_avg_weight_bits = 4;
  ASSERT_TRUE(mixed.bias_correction_enabled());  // on by default under a width search, as below 8 bits
  mixed.bias_correction = false;
  auto m = ti_resnet(mixed);
  std::string dir = ::testing::TempDir() + "/width_search_measured";
  std::filesystem::remove_all(dir);
  m->out_dir = dir;
  std::vector<std::string> passes = pipeline_for(mixed);
  ASSERT_NE(std::find(passes.begin(), passes.end(), "mixed-precision"), passes.end());
  run_pipeline(*m, {"prepare", "assign", "check", "calibrate", "mixed-precision", "analyse"});
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir + "/mixed_precision.json"));
  double predicted = j.at("chosen").at("predicted_error"), actual = m->report->output_noise_ratio;
  EXPECT_GT(predicted, actual / 4) << "predicted " << predicted << ", output noise:signal " << actual;
  EXPECT_LT(predicted, actual * 4) << "predicted " << predicted << ", output noise:signal " << actual;
  for (const auto& unit : j.at("units")) {  // measured error falls with every extra bit
    std::vector<double> e = unit.at("sensitivity");
    ASSERT_EQ(e.size(), 3u);
    EXPECT_GT(e[0], e[1]) << unit.at("op");
    EXPECT_GT(e[1], e[2]) << unit.at("op");
  }
  std::set<int> widths;
  double avg = average_weight_bits(*m, widths);
  EXPECT_LE(avg, 4.0);
  EXPECT_GT(avg, 3.5);  // the budget is used, not left on the table
  EXPECT_GE(widths.size(), 2u);
  for (int w : widths) EXPECT_TRUE(w == 2 || w == 4 || w == 8) << w;
  // Activations stay 8-bit on the NPU whatever the weights.
  for (const auto& [name, c] : m->plan.values)
    if (c.role == QuantRole::Activation && c.state == QuantState::Quantized) EXPECT_EQ(c.bits, 8) << name;
  EXPECT_LT(m->report->output_noise_ratio, u->report->output_noise_ratio)
      << "mixed " << m->report->output_noise_ratio << ", uniform 4-bit " << u->report->output_noise_ratio;
  ASSERT_FALSE(m->plan.notes.empty());
  bool noted = false;
  for (const auto& n : m->plan.notes) noted |= n.find("mixed precision (measured, budget avg_weight_bits 4)") == 0;
  EXPECT_TRUE(noted);
}

// esp32s3 (8/16 bits) with a parameter-byte budget: the hessian search promotes some units to
// int16 (weights, biases and activations), and the plan's parameters fit in the bytes given.
TEST(WidthSearch, HessianOnEspPromotesUnitsWithinTheParameterBytes) {
  Setting base = small_setting();
  auto b =
      std::make_unique<QuantContext>(load_model(fixture("fashion/fmnist_resnet.onnx")), load_target("esp32s3"), base);
  attach_data(*b, kFashion);
  run_pipeline(*b, {"prepare", "assign", "calibrate"});
  auto bytes = [](const QuantContext& c) {
    int64_t n = 0;
    for (const auto& [name, q] : c.plan.values) {
      const Value* v = c.graph->find_value(name);
      if (v && v->is_constant() && q.state != QuantState::Float) n += (v->data->numel() * q.bits + 7) / 8;
    }
    return n;
  };
  int64_t at8 = bytes(*b);
  Setting s = small_setting();
  s.mixed_precision.method = BitSearch::Hessian;
  s.mixed_precision.hessian_probes = 4;
  s.mixed_precision.budget_param_bytes = at8 + 12000;  // room for a few units at 16 bits, not all
  QuantContext ctx(load_model(fixture("fashion/fmnist_resnet.onnx")), load_target("esp32s3"), s);
  attach_data(ctx, kFashion);
  run_pipeline(ctx, {"prepare", "assign", "calibrate", "mixed-precision"});
  int64_t got = bytes(ctx);
  EXPECT_LE(got, s.mixed_precision.budget_param_bytes);
  EXPECT_GT(got, at8);
  std::set<int> widths;
  average_weight_bits(ctx, widths);
  EXPECT_EQ(widths, (std::set<int>{8, 16}));
  for (const auto& op : ctx.graph->ops()) {
    if (!is_compute_op(op->type) || !op->input(1)) continue;
    const QuantConfig* w = ctx.plan.find(op->input(1)->name);
    if (!w || w->bits != 16) continue;
    EXPECT_EQ(ctx.plan.find(op->input(2)->name)->bits, 40) << op->name;  // esp32s3 int16 layers: 40-bit bias
  }
}

// A budget below what the narrowest widths take is refused before anything is written, naming
// the minimum reachable; so are widths the target does not have.
TEST(WidthSearch, BudgetsNoAllocationMeetsAreRefusedWithTheMinimum) {
  namespace fs = std::filesystem;
  std::string dir = ::testing::TempDir() + "/width_search_refusal";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto run = [&](const std::string& yaml, const std::string& target) {
    {
      std::ofstream f(dir + "/s.yaml");
      f << "calib_steps: 2\nbatch_size: 16\n" << yaml;
    }
    return edgequant::testing::run_command(edgequant::testing::cli() + " quantize " +
                                           fixture("fashion/fmnist_resnet.onnx") + " -t " + target + " -c " + kFashion +
                                           " -s " + dir + "/s.yaml --format qdq -o " + dir + "/out");
  };
  auto r = run("mixed_precision: {method: measured, budget: {avg_weight_bits: 1.5}}\n", "ti-npu");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("avg_weight_bits 1.5 cannot be met: the smallest allocation (every searched layer at "
                          "int2) needs avg_weight_bits 2.000"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir + "/out/model.qdq.onnx"));
  r = run("mixed_precision: {method: hessian, budget: {param_bytes: 20000}}\n", "ti-npu");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("param_bytes 20000 cannot be met"), std::string::npos) << r.output;
  r = run("mixed_precision: {method: hessian, widths: [8, 16], budget: {avg_weight_bits: 8}}\n", "ti-npu");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("16 bits is not supported by target 'ti-npu'"), std::string::npos) << r.output;
  r = run("mixed_precision: {method: hessian}\n", "ti-npu");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("needs a budget"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/out/model.qdq.onnx"));
}
}  // namespace
