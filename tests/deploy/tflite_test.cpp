// The `.tflite` file in TFLite's own runtime: LiteRT (npm @litertjs/core, XNNPACK CPU kernels,
// through tools/tflite_run.js). Per fixture and sample, the output codes LiteRT computes from the
// file against the codes EdgeQuant's integer runtime computes from the same program (the file's
// content), and against the simulation. LiteRT.js exchanges float32 tensors, not int8: the files
// here have float32 ends (export: tflite_io: float32), fed the input codes dequantized so that
// its QUANTIZE recovers them exactly.
#include "deploy/tflite.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/files.h"
#include "data/npy.h"
#include "deploy/integer_program.h"
#include "fixture_cases.h"
#include "ort_reference.h"
#include "runtime/interpreter.h"

using namespace edgequant;
using namespace edgequant::testing;

namespace {

struct Agreement {
  int64_t total = 0, differ_runtime = 0;
  int64_t max_runtime = 0;    // codes
  double max_simulation = 0;  // LSB
};

// The codes dequantized as float32 .npy (real = (q - zero_point) * scale).
void write_dequantized(const std::string& path, const runtime::IntTensor& t) {
  std::vector<float> v;
  for (int64_t q : t.ints) v.push_back(float(double(q - t.zero_point()) * t.scale()));
  write_npy(path, Tensor::from_vector(DType::Float32, t.shape, v));
}

Agreement run_in_litert(QuantContext& ctx, int samples, const std::string& dir) {
  runtime::IntGraph prog =
      deploy::build_integer_program(*ctx.graph, ctx.plan, *ctx.lowered, ctx.target, ctx.executor());
  std::string model = dir + "/model.tflite";
  write_file_atomic(model, deploy::tflite_bytes(prog, true));
  quant::QuantSimulator& sim = ctx.simulator();
  quant::BatchStream stream = ctx.batches(ctx.calibration);
  at::Tensor x;
  Agreement a;
  at::NoGradGuard no_grad;
  int seen = 0;
  while (seen < samples && stream.next(x)) {
    for (int64_t b = 0; b < x.size(0) && seen < samples; ++b, ++seen) {
      at::Tensor xi = x.slice(0, b, b + 1).contiguous();
      std::vector<at::Tensor> want = sim.run({xi});
      const std::string& in_name = prog.inputs[0];
      std::vector<float> xv(xi.data_ptr<float>(), xi.data_ptr<float>() + xi.numel());
      Shape ps;
      std::vector<float> xp =
          deploy::to_program_layout(prog, in_name, xv, Shape(xi.sizes().begin(), xi.sizes().end()), &ps);
      runtime::TensorMap in;
      in[in_name] = runtime::quantize_for_input(prog, in_name, xp, ps);
      runtime::TensorMap out = runtime::run_program(prog, in);
      write_dequantized(dir + "/in.npy", in[in_name]);
      CommandResult r = run_command("node " + std::string(EQ_SOURCE_DIR) + "/tools/tflite_run.js " + model + " " + dir +
                                    "/litert " + dir + "/in.npy");
      if (r.status != 0) {
        ADD_FAILURE() << "LiteRT failed on " << model << ": " << r.output;
        return a;
      }
      for (size_t o = 0; o < prog.outputs.size(); ++o) {
        const runtime::IntTensor& got = out.at(prog.outputs[o]);
        Tensor lite = read_npy(dir + "/litert." + std::to_string(o) + ".npy");
        std::vector<int64_t> codes;
        for (int64_t i = 0; i < lite.numel(); ++i)
          codes.push_back(std::llround(double(lite.data<float>()[i]) / got.scale()) + got.zero_point());
        EXPECT_EQ(codes.size(), got.ints.size()) << "output " << o;
        // The simulation in the program's layout, on the output's grid.
        at::Tensor w = want[o].contiguous().to(at::kFloat);
        std::vector<float> wv(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
        std::vector<float> wp =
            deploy::to_program_layout(prog, prog.outputs[o], wv, Shape(w.sizes().begin(), w.sizes().end()));
        for (size_t i = 0; i < codes.size() && i < got.ints.size(); ++i) {
          int64_t d = std::llabs(codes[i] - got.ints[i]);
          a.max_runtime = std::max(a.max_runtime, d);
          a.differ_runtime += d != 0;
          double real = double(codes[i] - got.zero_point()) * got.scale();
          a.max_simulation = std::max(a.max_simulation, std::fabs(real - double(wp[i])) / got.scale());
          ++a.total;
        }
      }
    }
  }
  return a;
}

class TfliteInLiteRt : public ::testing::TestWithParam<std::tuple<FixtureCase, std::string>> {};

// XNNPACK requantizes the int32 accumulator in float32 (scale product, round to nearest even),
// EdgeQuant's runtime with TFLite's q31 multiplier rounding half away: they differ only near a
// tie, by one code. The simulation rounds its float32 products: within 2 LSB of the integer
// runtime (IntegerRuntimeFloatScale), so LiteRT's codes are bounded by 1 from the runtime's and
// reported against the simulation.
TEST_P(TfliteInLiteRt, WithinOneCodeOfTheIntegerRuntime) {
  auto [c, target] = GetParam();
  auto owned = calibrated(c, target, 16);
  std::string dir = scratch_dir("tflite");
  Agreement a = run_in_litert(*owned, 4, dir);
  EXPECT_GT(a.total, 0);
  EXPECT_LE(a.max_runtime, 1) << c.model;
  std::printf(
      "%s %s: %lld output codes, %lld differ from the integer runtime (max %lld); max %g LSB from the "
      "simulation\n",
      c.model.c_str(), target.c_str(), (long long)a.total, (long long)a.differ_runtime, (long long)a.max_runtime,
      a.max_simulation);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TfliteInLiteRt,
                         ::testing::Combine(::testing::Values(fixture_case("fashion/fmnist_mobilenet"),
                                                              fixture_case("fashion/fmnist_resnet"),
                                                              fixture_case("fashion/fmnist_mobilenetv2"),
                                                              fixture_case("models/mobilenetv2_style_op13"),
                                                              fixture_case("models/resnet_style_op13"),
                                                              fixture_case("models/batchnorm_op13")),
                                            ::testing::Values("tflite-int8")),
                         CaseName());

}  // namespace
