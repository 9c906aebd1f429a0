// Trainable quantization parameters: one Conv+ReLU block's output log2 scale, weight log2 scale
// and weights trained through the parameter store with LibTorch's Adam. The autograd gradient of
// the straight-through forward is checked against central finite differences of the un-rounded
// formula (rounding offsets frozen at the current point), computed independently in double.
#include "quant/parameter_store.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adam.h>

#include <filesystem>

#include "api/load.h"
#include "exec/executor.h"
#include "quant/calibrate.h"
#include "quant/fake_quant.h"
#include "quant/quantizer.h"
#include "quant/simulator.h"
#include "target/target.h"
#include "test_util.h"

using namespace edgequant;

namespace {
std::unique_ptr<Graph> conv_relu_block() {
  at::manual_seed(3);
  at::Tensor w = at::randn({3, 2, 3, 3}) * 0.4, b = at::randn({3}) * 0.1;
  edgequant::testing::ModelBuilder mb;
  mb.input("x", {-1, 2, 5, 5}).output("y");
  mb.initializer("w", {3, 2, 3, 3}, std::vector<float>(w.data_ptr<float>(), w.data_ptr<float>() + w.numel()));
  mb.initializer("b", {3}, std::vector<float>(b.data_ptr<float>(), b.data_ptr<float>() + 3));
  auto& conv = mb.node("Conv", {"x", "w", "b"}, {"c"}, "conv");
  edgequant::testing::ModelBuilder::attr_ints(conv, "pads", {1, 1, 1, 1});
  mb.node("Relu", {"c"}, {"y"}, "relu");
  std::string path = (std::filesystem::temp_directory_path() / "eq_block.onnx").string();
  return load_model(mb.save(path));
}

// The un-rounded formula of fake quantization in double: s * clamp(v / s + delta, lo, hi) with
// s = 2^(alpha + dalpha); delta and dalpha are the rounding offsets frozen at the current point.
at::Tensor frozen_fq(const at::Tensor& v, double alpha, double dalpha, const at::Tensor& delta, double lo, double hi) {
  double s = std::pow(2.0, alpha + dalpha);
  return s * at::clamp(v / s + delta, lo, hi);
}
at::Tensor offsets(const at::Tensor& v, double s) { return at::round(v / s) - v / s; }

TEST(ParameterStore, StraightThroughGradientsMatchFiniteDifferencesAndAdamTrainsTheBlock) {
  auto g = conv_relu_block();
  exec::Executor ex(*g);
  Target t = load_target("esp32s3");  // per-tensor power-of-two, half up
  Setting s;
  s.calib_algorithm = CalibAlgorithm::MinMax;
  QuantPlan plan = quant::assign_quant_configs(*g, t, s);
  at::manual_seed(4);
  at::Tensor x = at::randn({4, 2, 5, 5});
  quant::HistogramObserver ox, oy;
  at::NoGradGuard ng;
  at::Tensor yf = ex.run({x})[0];
  ox.observe(x);
  oy.observe(yf);
  quant::Observations obs;
  obs.by_value["x"] = ox;
  obs.by_value["y"] = oy;
  obs.samples = 4;
  quant::apply_calibration(*g, ex, plan, t, s, obs);

  quant::QuantSimulator sim(*g, plan, ex);
  quant::ParameterStore store;
  const Value* wv = g->find_value("w");
  at::Tensor alpha_y = store.scale_param("y", *plan.find("y"));
  at::Tensor alpha_w = store.scale_param("w", *plan.find("w"));
  // Move the exponents off the integers so the straight-through exponent matters.
  {
    at::NoGradGuard no;
    alpha_y.add_(0.3);
    alpha_w.sub_(0.2);
  }
  at::Tensor w = store.weight_param(wv, ex.constant(wv));
  sim.set_parameters(&store);
  ex.set_gradient_mode(true);
  auto loss_of = [&]() {
    at::AutoGradMode on(true);
    exec::ExecHooks h = sim.hooks();
    return (ex.run({x}, &h)[0] - yf).pow(2).mean();
  };
  at::Tensor loss = loss_of();
  loss.backward();
  ASSERT_TRUE(alpha_y.grad().defined() && alpha_w.grad().defined() && w.grad().defined());

  // Reference in double: x and the bias as the simulator quantizes them (not trained), the
  // weight and output through the frozen formula.
  at::NoGradGuard no_grad;
  const QuantConfig& xc = *plan.find("x");
  at::Tensor xq = quant::fake_quantize(x, xc).to(at::kDouble);
  at::Tensor bq = sim.quantized_constant(g->find_value("b")).to(at::kDouble);
  at::Tensor wd = w.detach().to(at::kDouble).contiguous(), yfd = yf.to(at::kDouble);
  const QuantConfig& wc = *plan.find("w");
  const QuantConfig& yc = *plan.find("y");
  double ay = alpha_y.item<double>(), aw = alpha_w.item<double>();
  double day = std::round(ay) - ay, daw = std::round(aw) - aw;
  at::Tensor dw = offsets(wd, std::pow(2.0, aw + daw));
  at::Tensor relu0 = at::relu(at::conv2d(xq, frozen_fq(wd, aw, daw, dw, wc.quant_min, wc.quant_max), bq, 1, 1));
  at::Tensor dy = offsets(relu0, std::pow(2.0, ay + day));
  auto ref_loss = [&](double a_y, double a_w, const at::Tensor& wt) {
    at::Tensor wq = frozen_fq(wt, a_w, daw, dw, wc.quant_min, wc.quant_max);
    at::Tensor r = at::relu(at::conv2d(xq, wq, bq, 1, 1));
    return (frozen_fq(r, a_y, day, dy, yc.quant_min, yc.quant_max) - yfd).pow(2).mean().item<double>();
  };
  double h = 1e-6;
  EXPECT_NEAR(ref_loss(ay, aw, wd), loss.item<double>(), 1e-6 * loss.item<double>() + 1e-9);
  double g_ay = (ref_loss(ay + h, aw, wd) - ref_loss(ay - h, aw, wd)) / (2 * h);
  double g_aw = (ref_loss(ay, aw + h, wd) - ref_loss(ay, aw - h, wd)) / (2 * h);
  EXPECT_NEAR(alpha_y.grad().item<double>(), g_ay, 1e-3 * std::abs(g_ay) + 1e-7);
  EXPECT_NEAR(alpha_w.grad().item<double>(), g_aw, 1e-3 * std::abs(g_aw) + 1e-7);
  for (int64_t i : {0, 7, 23, 40}) {
    at::Tensor up = wd.clone(), down = wd.clone();
    up.view({-1})[i] += h;
    down.view({-1})[i] -= h;
    double g_w = (ref_loss(ay, aw, up) - ref_loss(ay, aw, down)) / (2 * h);
    EXPECT_NEAR(w.grad().contiguous().view({-1})[i].item<double>(), g_w, 1e-3 * std::abs(g_w) + 1e-7) << "weight " << i;
  }

  // A few Adam steps lower the block loss; bake writes exact powers of two and the weights back.
  // Back to the calibrated exponents (a flip of round(alpha) is a step in the loss).
  // Then disturb the weights: the loss left is mostly the output's rounding noise otherwise.
  alpha_y.round_();
  alpha_w.round_();
  at::manual_seed(5);
  w.add_(at::randn(w.sizes()) * 0.05);
  torch::optim::Adam adam(store.parameters(), torch::optim::AdamOptions(2e-3));
  double first = loss_of().item<double>();
  for (int step = 0; step < 60; ++step) {
    adam.zero_grad();
    at::Tensor l = loss_of();
    l.backward();
    adam.step();
  }
  double last = loss_of().item<double>();
  EXPECT_LT(last, 0.5 * first) << "first " << first << ", after 60 Adam steps " << last;
  EXPECT_NE(alpha_y.item<double>(), std::round(alpha_y.item<double>()));  // the exponent was trained too
  at::Tensor trained_w = w.detach().clone();
  double trained_alpha_y = alpha_y.item<double>();
  ex.set_gradient_mode(false);
  store.bake(plan, *g, ex);
  EXPECT_TRUE(store.empty());
  EXPECT_DOUBLE_EQ(plan.find("y")->scales[0], std::ldexp(1.0, static_cast<int>(std::nearbyint(trained_alpha_y))));
  EXPECT_EQ(plan.find("y")->source, RangeSource::Trained);
  EXPECT_TRUE(at::equal(ex.constant(wv), trained_w));
}
}  // namespace

namespace {
TEST(ParameterStore, GradientScaleScalesTheGradientNotTheValue) {
  QuantConfig c;
  c.scale_kind = ScaleKind::Float;
  c.set_range(8, true, false);
  c.scales = {0.05};
  c.zero_points = {0};
  quant::ParameterStore plain, scaled;
  at::Tensor p1 = plain.scale_param("x", c), p2 = scaled.scale_param("x", c, 0.25);
  at::Tensor x = at::tensor({0.33f, -1.0f, 7.0f});
  at::Tensor s1 = plain.scale("x", c, 1), s2 = scaled.scale("x", c, 1);
  EXPECT_TRUE(at::equal(s1, s2));
  (quant::fake_quantize(x, s1, at::zeros({}), -128, 127, RoundingMode::HalfEven).sum()).backward();
  (quant::fake_quantize(x, s2, at::zeros({}), -128, 127, RoundingMode::HalfEven).sum()).backward();
  EXPECT_NEAR(p2.grad().item<double>(), 0.25 * p1.grad().item<double>(), 1e-6);
  EXPECT_NE(p1.grad().item<double>(), 0.0);
}
}  // namespace

namespace {
// The power-of-two scale 2^round(alpha) as one autograd node against the chain it replaced
// (straight-through exponent, then at::pow): the same scale and the same gradient to alpha, bit
// for bit, per-tensor and per-channel.
TEST(ParameterStore, PowerOfTwoScaleIsTheStraightThroughChainBitForBit) {
  QuantConfig c;
  c.scale_kind = ScaleKind::PowerOfTwo;
  c.set_range(8, true, false);
  c.granularity = Granularity::PerChannel;
  c.axis = 0;
  c.scales = {0.25, 0.0625, 0.5};
  c.zero_points = {0, 0, 0};
  quant::ParameterStore store;
  at::Tensor p = store.scale_param("w", c);
  {
    at::NoGradGuard no_grad;
    p.add_(at::tensor({0.6f, -0.55f, 0.49f}));  // trained away from the integers: -1.4, -4.55, -0.51
  }
  at::Tensor g = at::tensor({0.7f, -1.3f, 2.9f}).reshape({3, 1, 1, 1});
  at::Tensor s = store.scale("w", c, 4);
  (s * g).sum().backward();
  at::Tensor ours = p.grad().clone();
  p.grad().zero_();
  at::Tensor alpha = p + (at::round(p) - p).detach();
  at::Tensor chain = at::pow(2.0, alpha).reshape({3, 1, 1, 1});
  (chain * g).sum().backward();
  EXPECT_TRUE(at::equal(s.detach(), chain.detach()));
  EXPECT_TRUE(at::equal(ours, p.grad())) << ours << " vs " << p.grad();
  EXPECT_TRUE(at::equal(s.detach().reshape({3}), at::tensor({0.5f, 0.03125f, 0.5f})));
}
}  // namespace
