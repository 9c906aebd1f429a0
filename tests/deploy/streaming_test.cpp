// Streaming models (deploy/streaming.h): the causal temporal fixture
// (tools/gen_fixtures/export_streaming.py) quantized for ESP targets, its integer program turned
// into the streaming form, and the 24-frame sequences fed a few frames at a time with the caches
// carried: the concatenated outputs equal the whole-sequence program's codes exactly. What cannot
// stream is refused by name. (ESP-DL's runtime on the streaming file: oracle.espdl_zoo.)
#include "deploy/streaming.h"

#include <gtest/gtest.h>

#include "data/npy.h"
#include "deploy/integer_program.h"
#include "edgequant/error.h"
#include "exec/kernel.h"
#include "fixture_cases.h"
#include "runtime/interpreter.h"

using namespace edgequant;
using namespace edgequant::testing;

namespace {

runtime::IntGraph program_of(const FixtureCase& c, const std::string& target) {
  auto ctx = calibrated(c, target, 16);
  return deploy::build_integer_program(*ctx->graph, ctx->plan, *ctx->lowered, ctx->target, ctx->executor());
}

// Codes of sample `i` of the fixture's inputs ([16, C, T] NCW) on the program's input grid,
// in its [1, T, C] layout.
runtime::IntTensor input_codes(const runtime::IntGraph& p, int64_t i) {
  at::Tensor x = exec::to_aten(read_npy(fixture("models/causal_tcn_input.npy"))).slice(0, i, i + 1).contiguous();
  std::vector<float> v(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
  Shape ps;
  std::vector<float> pv = deploy::to_program_layout(p, p.inputs[0], v, {1, x.size(1), x.size(2)}, &ps);
  return runtime::quantize_for_input(p, p.inputs[0], pv, ps);
}

runtime::IntTensor frames_of(const runtime::IntTensor& t, int64_t from, int64_t count) {
  runtime::IntTensor c = t;
  int64_t per = t.shape[2];
  c.shape[1] = count;
  c.ints.assign(t.ints.begin() + from * per, t.ints.begin() + (from + count) * per);
  return c;
}

class Streaming : public ::testing::TestWithParam<std::string> {};

TEST_P(Streaming, ChunkByChunkEqualsTheWholeSequence) {
  runtime::IntGraph whole = program_of(fixture_case("models/causal_tcn_op13"), GetParam());
  for (int64_t frames : {1, 4, 6}) {
    std::vector<std::string> notes;
    runtime::IntGraph stream = deploy::make_streaming(whole, frames, &notes);
    EXPECT_EQ(notes.size(), 3u);  // before the two dilated depthwise convs and the pool
    EXPECT_EQ(stream.value(stream.inputs[0]).shape, (Shape{1, frames, 16}));
    for (int64_t sample : {0, 5, 11}) {
      runtime::IntTensor x = input_codes(whole, sample);
      runtime::IntTensor want = runtime::run_program(whole, {{whole.inputs[0], x}}).at(whole.outputs[0]);
      ASSERT_EQ(want.shape, (Shape{1, 24, 8}));
      runtime::TensorMap state;
      std::vector<int64_t> got;
      for (int64_t t = 0; t < 24; t += frames) {
        runtime::IntTensor y =
            runtime::run_program(stream, {{stream.inputs[0], frames_of(x, t, frames)}}, false, &state)
                .at(stream.outputs[0]);
        ASSERT_EQ(y.shape, (Shape{1, frames, 8}));
        got.insert(got.end(), y.ints.begin(), y.ints.end());
      }
      EXPECT_EQ(got, want.ints) << GetParam() << ", " << frames << " frame(s) per run, sample " << sample;
    }
    // Model::test() of the streaming file: the whole test input's first frames from reset.
    if (!stream.test_outputs.empty()) EXPECT_TRUE(runtime::self_test(stream).passed);
  }
}

INSTANTIATE_TEST_SUITE_P(Esp, Streaming, ::testing::Values("esp32s3", "esp32p4", "c"));

TEST(StreamingRefusal, NonCausalOrFrameMixingModelsAreRefusedByName) {
  runtime::IntGraph causal = program_of(fixture_case("models/causal_tcn_op13"), "esp32s3");
  auto message = [](const runtime::IntGraph& p, int64_t frames) {
    try {
      deploy::make_streaming(p, frames, nullptr);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidInput);
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  // 24 frames do not split into runs of 5.
  EXPECT_NE(message(causal, 5).find("24 frames, not a multiple of 5"), std::string::npos) << message(causal, 5);
  // temporal_conv: symmetric pads on its first window.
  runtime::IntGraph symmetric = program_of(fixture_case("models/temporal_conv_op13"), "esp32s3");
  std::string m = message(symmetric, 4);
  EXPECT_NE(m.find("node '/stem/Conv' (Conv) is not causal: pads [1, 1]"), std::string::npos) << m;
  // A window made non-causal by hand, and the frame-mixing tail of the zoo's tutorial model.
  runtime::IntGraph strided = causal;
  for (runtime::IntNode& n : strided.nodes)
    if (n.name == "/b2/dw/Conv") n.attrs["strides"] = std::vector<int64_t>{2};
  m = message(strided, 4);
  EXPECT_NE(m.find("node '/b2/dw/Conv' (Conv) has stride 2"), std::string::npos) << m;
}

}  // namespace
