// `.espdl` files written by Espressif's own toolchain (../shared/espdl-zoo, ESP-PPQ's output in
// ESP-DL v3.3.9's repository): the reader decodes both spellings of the blocked filter layout and
// 1-D convolutions, refuses a layout it does not know by name, and the integer runtime reproduces
// the test values the files embed. The streaming tutorial's model run chunk by chunk ends on the
// whole-sequence model's output. (ESP-DL's own runtime on the same files and inputs:
// tests/deploy/espdl_zoo_oracle.py.) Skips when ../shared is absent.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "core/files.h"
#include "deploy/espdl.h"
#include "edgequant/error.h"
#include "runtime/interpreter.h"

using namespace edgequant;

namespace {

std::string zoo() { return std::string(EQ_SOURCE_DIR) + "/../shared/espdl-zoo/"; }

#define REQUIRE_ZOO() \
  if (!std::filesystem::exists(zoo())) GTEST_SKIP() << "no " << zoo()

const std::string kProfileS3 = "how_to_load_test_profile_model_model_in_sdcard_s3_model.espdl";
const std::string kWhole = "how_to_deploy_streaming_model_test_streaming_model_esp32p4_model.espdl";
const std::string kStreaming = "how_to_deploy_streaming_model_test_streaming_model_esp32p4_streaming_model.espdl";

// Every file decodes and, where it embeds test values, Model::test() passes. The two tutorial
// files for esp32p4 name no target and have per-tensor filters, so their rounding is given
// (--target esp32p4), as a user would.
TEST(EspdlZoo, EveryFileDecodesAndItsEmbeddedSelfTestPasses) {
  REQUIRE_ZOO();
  int files = 0, tested = 0;
  for (const auto& entry : std::filesystem::directory_iterator(zoo())) {
    std::string path = entry.path().string(), name = entry.path().filename().string();
    if (entry.path().extension() != ".espdl") continue;
    ++files;
    std::string target = name.find("esp32p4") != std::string::npos && name.find("how_to") == 0 ? "esp32p4" : "";
    runtime::IntGraph p = deploy::read_espdl(path, target);
    runtime::verify_program(p);
    if (p.test_outputs.empty()) {
      EXPECT_EQ(name, kStreaming) << "only the streaming model has no test values";
      continue;
    }
    runtime::SelfTestResult r = runtime::self_test(p);
    EXPECT_TRUE(r.passed) << name << ": " << ::testing::PrintToString(r.lines);
    ++tested;
  }
  EXPECT_EQ(files, 10);
  EXPECT_EQ(tested, 9);
}

// ESP-PPQ before 2025-04 spelled the blocked layout N16HWC16; the bytes are those of (N/16)HWC16.
// Re-encoding the decoded program writes the new spelling; both decode to the same weights.
TEST(EspdlZoo, OldLayoutSpellingIsTheSameBlockedOrder) {
  REQUIRE_ZOO();
  std::string bytes = read_file(zoo() + kProfileS3);
  ASSERT_NE(bytes.find("layout ==> N16HWC16_UNALIGNED"), std::string::npos);
  runtime::IntGraph old = deploy::decode_espdl(bytes, kProfileS3);
  EXPECT_EQ(old.filter_blocks, (std::map<int, int>{{8, 16}}));
  std::string rewritten = deploy::encode_espdl(old);
  EXPECT_EQ(rewritten.find("N16HWC16"), std::string::npos);
  EXPECT_NE(rewritten.find("layout ==> (N/16)HWC16_UNALIGNED"), std::string::npos);
  runtime::IntGraph back = deploy::decode_espdl(rewritten, "rewritten");
  ASSERT_EQ(back.initializers.size(), old.initializers.size());
  for (const auto& [name, t] : old.initializers) {
    EXPECT_EQ(back.initializers.at(name).ints, t.ints) << name;
    EXPECT_EQ(back.initializers.at(name).shape, t.shape) << name;
  }
  EXPECT_TRUE(runtime::self_test(back).passed);
}

// A layout string the reader does not know is refused, naming the filter and the string, rather
// than read as plain NHWC (the old behaviour: every output wrong from the first Gemm).
TEST(EspdlZoo, AnUnknownFilterLayoutIsRefusedByName) {
  REQUIRE_ZOO();
  std::string bytes = read_file(zoo() + kProfileS3);
  size_t at = bytes.find("N16HWC16_UNALIGNED");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 18, "N32HWC32_UNALIGNED");  // same length: the FlatBuffer stays valid
  try {
    deploy::decode_espdl(bytes, "patched.espdl");
    ADD_FAILURE() << "an unknown layout was accepted";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_EQ(e.code(), ErrorCode::InvalidModel);
    EXPECT_NE(what.find("patched.espdl: filter '"), std::string::npos) << what;
    EXPECT_NE(what.find("has layout 'N32HWC32_UNALIGNED', which this reader does not know"), std::string::npos) << what;
  }
}

// 1-D convolutions: filters stored [kw, C, N] (depthwise [kw, N, 1]) in (N/16)WC16 blocks come
// back as OIW weights; the depthwise ones are [32, 1, 3].
TEST(EspdlZoo, OneDimensionalFiltersDecodeToOiwWeights) {
  REQUIRE_ZOO();
  runtime::IntGraph p = deploy::read_espdl(zoo() + kWhole, "esp32p4");
  EXPECT_EQ(p.initializers.at("layer.0.depthwise.weight").shape, (Shape{32, 1, 3}));
  EXPECT_EQ(p.initializers.at("prev_conv.weight").shape, (Shape{32, 16, 1}));
  EXPECT_EQ(p.value(p.inputs[0]).shape, (Shape{1, 24, 16}));  // ESP-DL's [N, W, C]
  // The writer puts them back in the same order: byte-identical filters after a round trip.
  runtime::IntGraph back = deploy::decode_espdl(deploy::encode_espdl(p), "back");
  for (const char* w : {"layer.0.depthwise.weight", "prev_conv.weight", "onnx::Conv_166", "out_conv.weight"})
    EXPECT_EQ(back.initializers.at(w).ints, p.initializers.at(w).ints) << w;
}

// The streaming model (a StreamingCache before each temporal op) fed the same 24 frames three at
// a time, caches carried between runs, ends on exactly the whole-sequence model's output codes.
TEST(EspdlZoo, StreamingChunkByChunkEqualsTheWholeSequence) {
  REQUIRE_ZOO();
  runtime::IntGraph whole = deploy::read_espdl(zoo() + kWhole, "esp32p4");
  runtime::IntGraph stream = deploy::read_espdl(zoo() + kStreaming, "esp32p4");
  ASSERT_TRUE(runtime::is_streaming(stream));
  ASSERT_FALSE(runtime::is_streaming(whole));
  const std::string in = whole.inputs[0];
  ASSERT_EQ(stream.value(in).shape, (Shape{1, 3, 16}));
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> code(-128, 127);
  for (int trial = 0; trial < 3; ++trial) {
    runtime::IntTensor x;
    x.dtype = DType::Int8;
    x.exponents = {whole.value(in).exponent};
    x.shape = {1, 24, 16};
    for (int i = 0; i < 24 * 16; ++i) x.ints.push_back(code(rng));
    runtime::IntTensor want = runtime::run_program(whole, {{in, x}}).at(whole.outputs[0]);
    runtime::TensorMap state;
    runtime::IntTensor last;
    for (int chunk = 0; chunk < 8; ++chunk) {
      runtime::IntTensor part = x;
      part.shape = {1, 3, 16};
      part.ints.assign(x.ints.begin() + chunk * 48, x.ints.begin() + (chunk + 1) * 48);
      last = runtime::run_program(stream, {{in, part}}, false, &state).at(stream.outputs[0]);
    }
    EXPECT_EQ(last.ints, want.ints) << "trial " << trial;
    EXPECT_EQ(last.exponent(), want.exponent());
    // Without the carried caches (every chunk from reset) the last chunk's output differs.
    runtime::IntTensor part = x;
    part.shape = {1, 3, 16};
    part.ints.assign(x.ints.end() - 48, x.ints.end());
    EXPECT_NE(runtime::run_program(stream, {{in, part}}).at(stream.outputs[0]).ints, want.ints);
  }
}

}  // namespace
