// The `.tflite` file in TFLite's own runtime: LiteRT (npm @litertjs/core, its XNNPACK CPU
// kernels, through tools/tflite_run.js). Every integer tensor of the program is made a graph
// output of the file, and LiteRT's codes are compared with the codes EdgeQuant's integer runtime
// computes from the same program (the file's content); the model's outputs also with the
// simulation. LiteRT.js exchanges float32 tensors, not int8: the files here have float32 ends
// (export: tflite_io: float32), fed the input codes dequantized so that QUANTIZE recovers them.
//
// One op computes differently in XNNPACK than in TFLite's reference kernels (TFLite Micro's):
// QUANTIZE from int8 to int8 (a RequantizeLinear aligning Add/Concat inputs) multiplies by an
// 8-bit fractional multiplier ((x * m + bias) >> 8, XNNPACK's qs8-vcvt) where the reference
// kernels and EdgeQuant use TFLite's q31 one, so codes after it land one apart and the next
// convolutions multiply that. Tensors computed without passing through such a QUANTIZE must be
// within 1 code (XNNPACK's float32 requantization against the q31 multiplier: a tie apart);
// the model's outputs within 2; the others are reported.
#include "deploy/tflite.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "core/files.h"
#include "data/npy.h"
#include "deploy/integer_program.h"
#include "deploy/tflite_generated.h"
#include "fixture_cases.h"
#include "ort_reference.h"
#include "runtime/interpreter.h"

using namespace edgequant;
using namespace edgequant::testing;

namespace {

struct Codes {
  int64_t total = 0, differ = 0, max = 0;
  void add(int64_t want, int64_t got) {
    int64_t d = std::llabs(want - got);
    max = std::max(max, d);
    differ += d != 0;
    ++total;
  }
};

struct Agreement {
  Codes outputs, clean, after_requant;  // model outputs; other tensors without / with a QUANTIZE upstream
  double max_simulation = 0;            // LSB, model outputs
  // Float outputs (a Softmax tail): |LiteRT - runtime| over what the logits' code difference
  // allows (|dp_i| <= 0.5 max |dz|: a softmax's rows of partial derivatives sum to at most
  // 2 p_i (1 - p_i)); <= 1 passes.
  double float_ratio = 0;
  int64_t float_total = 0;
};

// The codes dequantized as float32 .npy (real = (q - zero_point) * scale).
void write_dequantized(const std::string& path, const runtime::IntTensor& t) {
  std::vector<float> v;
  for (int64_t q : t.ints) v.push_back(float(double(q - t.zero_point()) * t.scale()));
  write_npy(path, Tensor::from_vector(DType::Float32, t.shape, v));
}

// Values computed from a RequantizeLinear's output (XNNPACK's coarse QUANTIZE), and for float
// values the integer value they were dequantized from.
struct Lineage {
  std::set<std::string> after_requant;
  std::map<std::string, std::string> dequantized_from;
};
Lineage lineage(const runtime::IntGraph& p) {
  Lineage l;
  for (const runtime::IntNode& n : p.nodes) {
    bool tainted = n.is(OpType::RequantizeLinear);
    std::string from;
    for (const std::string& in : n.inputs) {
      tainted |= l.after_requant.count(in) > 0;
      if (l.dequantized_from.count(in)) from = l.dequantized_from[in];
    }
    if (n.is(OpType::DequantizeLinear)) from = n.inputs[0];
    for (const std::string& o : n.outputs) {
      if (tainted) l.after_requant.insert(o);
      if (!from.empty()) l.dequantized_from[o] = from;
    }
  }
  return l;
}

Agreement run_in_litert(QuantContext& ctx, int samples, const std::string& dir) {
  runtime::IntGraph prog =
      deploy::build_integer_program(*ctx.graph, ctx.plan, *ctx.lowered, ctx.target, ctx.executor());
  const size_t model_outputs = prog.outputs.size();
  for (const runtime::IntNode& n : prog.nodes)
    if (prog.value(n.outputs[0]).dtype != DType::Float32 &&
        std::find(prog.outputs.begin(), prog.outputs.end(), n.outputs[0]) == prog.outputs.end())
      prog.outputs.push_back(n.outputs[0]);
  Lineage lin = lineage(prog);
  std::string model = dir + "/model.tflite";
  write_file_atomic(model, deploy::tflite_bytes(prog, true));
  Agreement a;
  bool failed = false;
  for_each_program_sample(ctx, prog, samples, [&](const runtime::TensorMap& in, const std::vector<at::Tensor>& want) {
    if (failed) return;
    const std::string& in_name = prog.inputs[0];
    runtime::TensorMap out = runtime::run_program(prog, in);
    write_dequantized(dir + "/in.npy", in.at(in_name));
    CommandResult r = run_command("node " + std::string(EQ_SOURCE_DIR) + "/tools/tflite_run.js " + model + " " + dir +
                                  "/litert " + dir + "/in.npy");
    if (r.status != 0) {
      ADD_FAILURE() << "LiteRT failed on " << model << ": " << r.output;
      failed = true;
      return;
    }
    for (size_t o = 0; o < prog.outputs.size(); ++o) {
      const std::string& name = prog.outputs[o];
      const runtime::IntTensor& got = out.at(name);
      Tensor lite = read_npy(dir + "/litert." + std::to_string(o) + ".npy");
      EXPECT_EQ(size_t(lite.numel()), got.is_float() ? got.floats.size() : got.ints.size()) << name;
      if (got.is_float()) {
        auto from = lin.dequantized_from.find(name);
        EXPECT_TRUE(from != lin.dequantized_from.end()) << name << ": a float output not from a DequantizeLinear";
        if (from == lin.dequantized_from.end()) continue;
        double allowed = 0.5 * (lin.after_requant.count(from->second) ? 2 : 1) * prog.value(from->second).scale;
        for (size_t i = 0; i < got.floats.size() && i < size_t(lite.numel()); ++i) {
          double d = std::fabs(double(lite.data<float>()[i]) - double(got.floats[i]));
          a.float_ratio = std::max(a.float_ratio, d / (allowed + 1e-6));
          ++a.float_total;
        }
        continue;
      }
      std::vector<int64_t> codes;
      for (int64_t i = 0; i < lite.numel(); ++i)
        codes.push_back(std::llround(double(lite.data<float>()[i]) / got.scale()) + got.zero_point());
      Codes& bucket = o < model_outputs ? a.outputs : lin.after_requant.count(name) ? a.after_requant : a.clean;
      for (size_t i = 0; i < codes.size() && i < got.ints.size(); ++i) bucket.add(got.ints[i], codes[i]);
      if (o >= model_outputs) continue;
      // The simulation in the program's layout, on the output's grid.
      at::Tensor w = want[o].contiguous().to(at::kFloat);
      std::vector<float> wv(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
      std::vector<float> wp = deploy::to_program_layout(prog, name, wv, Shape(w.sizes().begin(), w.sizes().end()));
      for (size_t i = 0; i < codes.size() && i < wp.size(); ++i) {
        double real = double(codes[i] - got.zero_point()) * got.scale();
        a.max_simulation = std::max(a.max_simulation, std::fabs(real - double(wp[i])) / got.scale());
      }
    }
  });
  return a;
}

// int8 ends (TFLite Micro's usual file) against float32 ends (what LiteRT.js can feed): the same
// body, the graph inputs and outputs int8 tensors on the program's grids, no QUANTIZE/DEQUANTIZE.
TEST(TfliteWriter, Int8EndsAreTheProgramsGridsAndFloatEndsAddOneConversionEach) {
  auto ctx = calibrated(fixture_case("models/resnet_style_op13"), "tflite-int8", 4);
  runtime::IntGraph prog =
      deploy::build_integer_program(*ctx->graph, ctx->plan, *ctx->lowered, ctx->target, ctx->executor());
  std::string int8 = deploy::tflite_bytes(prog, false), f32 = deploy::tflite_bytes(prog, true);
  for (const std::string* b : {&int8, &f32}) {
    flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(b->data()), b->size());
    ASSERT_TRUE(tflite::VerifyModelBuffer(v));
  }
  const tflite::SubGraph* a = tflite::GetModel(int8.data())->subgraphs()->Get(0);
  const tflite::SubGraph* b = tflite::GetModel(f32.data())->subgraphs()->Get(0);
  EXPECT_EQ(b->operators()->size(), a->operators()->size() + prog.inputs.size() + prog.outputs.size());
  auto ends = [&](const tflite::SubGraph* g, const flatbuffers::Vector<int32_t>* idx,
                  const std::vector<std::string>& names, tflite::TensorType type) {
    ASSERT_EQ(idx->size(), names.size());
    for (size_t k = 0; k < names.size(); ++k) {
      const tflite::Tensor* t = g->tensors()->Get(idx->Get(k));
      EXPECT_EQ(t->name()->str(), names[k]);
      EXPECT_EQ(t->type(), type) << names[k];
      const runtime::ValueInfo& vi = prog.value(names[k]);
      Shape s(t->shape()->begin(), t->shape()->end());
      EXPECT_EQ(s, vi.shape) << names[k];
      if (type == tflite::TensorType_INT8) {
        ASSERT_TRUE(t->quantization() && t->quantization()->scale());
        EXPECT_FLOAT_EQ(t->quantization()->scale()->Get(0), float(vi.scale)) << names[k];
        EXPECT_EQ(t->quantization()->zero_point()->Get(0), vi.zero_point) << names[k];
      }
    }
  };
  ends(a, a->inputs(), prog.inputs, tflite::TensorType_INT8);
  ends(a, a->outputs(), prog.outputs, tflite::TensorType_INT8);
  ends(b, b->inputs(), prog.inputs, tflite::TensorType_FLOAT32);
  ends(b, b->outputs(), prog.outputs, tflite::TensorType_FLOAT32);
  auto code = [](const std::string& bytes, const tflite::Operator* op) {
    return tflite::GetModel(bytes.data())->operator_codes()->Get(op->opcode_index())->builtin_code();
  };
  EXPECT_EQ(code(f32, b->operators()->Get(0)), tflite::BuiltinOperator_QUANTIZE);
  EXPECT_EQ(code(f32, b->operators()->Get(b->operators()->size() - 1)), tflite::BuiltinOperator_DEQUANTIZE);
  EXPECT_NE(code(int8, a->operators()->Get(0)), tflite::BuiltinOperator_QUANTIZE);
  EXPECT_NE(code(int8, a->operators()->Get(a->operators()->size() - 1)), tflite::BuiltinOperator_DEQUANTIZE);
}

class TfliteInLiteRt : public ::testing::TestWithParam<std::tuple<FixtureCase, std::string>> {};

TEST_P(TfliteInLiteRt, EveryTensorMatchesTheIntegerRuntime) {
  auto [c, target] = GetParam();
  auto owned = calibrated(c, target, 16);
  std::string dir = scratch_dir("tflite");
  Agreement a = run_in_litert(*owned, 4, dir);
  EXPECT_GT(a.outputs.total + a.float_total, 0);
  EXPECT_GT(a.clean.total, 0);
  EXPECT_LE(a.clean.max, 1) << c.model << ": a tensor no QUANTIZE feeds";
  EXPECT_LE(a.outputs.max, 2) << c.model;
  EXPECT_LE(a.float_ratio, 1.0) << c.model << ": float outputs beyond what the logits' codes allow";
  std::printf(
      "%s %s: outputs %lld of %lld codes differ (max %lld, %g LSB from the simulation), float outputs at "
      "%.3g of their allowance; other tensors without a QUANTIZE upstream %lld of %lld (max %lld), after "
      "one %lld of %lld (max %lld)\n",
      c.model.c_str(), target.c_str(), (long long)a.outputs.differ, (long long)a.outputs.total,
      (long long)a.outputs.max, a.max_simulation, a.float_ratio, (long long)a.clean.differ, (long long)a.clean.total,
      (long long)a.clean.max, (long long)a.after_requant.differ, (long long)a.after_requant.total,
      (long long)a.after_requant.max);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, TfliteInLiteRt,
    ::testing::Combine(
        ::testing::Values(fixture_case("fashion/fmnist_mobilenet"), fixture_case("fashion/fmnist_resnet"),
                          fixture_case("fashion/fmnist_mobilenetv2"), fixture_case("models/mobilenetv2_style_op13"),
                          fixture_case("models/resnet_style_op13"), fixture_case("models/batchnorm_op13"),
                          fixture_case("models/detection_head_op13"), fixture_case("models/windows_op13"),
                          fixture_case("models/temporal_conv_op13"), fixture_case("models/causal_tcn_op13"),
                          // a channel split by Gather, fixed batch 1
                          FixtureCase{"fixed_batch/detector_b1.onnx", fixture("fixed_batch/detector_input.npy")}),
        ::testing::Values("tflite-int8")),
    CaseName());

}  // namespace
