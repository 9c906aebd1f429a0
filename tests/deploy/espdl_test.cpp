// The .espdl file: a golden test on a tiny hand-checkable model (Conv+Relu, Add, Sigmoid) decoded
// field by field against ../shared/espdl-format.md, deterministic bytes, the reader's round trip
// (every fixture x target reproduces its embedded outputs: the host Model::test()), and corrupted
// files rejected with one clear error.
#include "deploy/espdl.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "api/load.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "deploy/deployable.h"
#include "deploy/espdl_generated.h"
#include "deploy/integer_program.h"
#include "edgequant/error.h"
#include "fixture_cases.h"
#include "passes/pipeline.h"
#include "runtime/interpreter.h"
#include "target/target.h"

using namespace edgequant;
using namespace edgequant::testing;

namespace {
std::string tmp(const std::string& name) { return (std::filesystem::temp_directory_path() / name).string(); }

// Conv(2 -> 17 channels, 1x1) + Relu, Add(c, c), Sigmoid: 17 channels = one block of 16 and a
// remainder of 1 in the blocked filter layout.
std::string tiny_model() {
  ModelBuilder b;
  b.input("x", {-1, 2, 4, 4}).output("y", {-1, 17, 4, 4});
  std::vector<float> w, bias;
  for (int n = 0; n < 17; ++n) {
    for (int c = 0; c < 2; ++c) w.push_back(float(n * 2 + c - 17) / 32.f);  // codes n*2+c-17 at 2^-5... (exact)
    bias.push_back(float(n) / 64.f);
  }
  b.initializer("W", {17, 2, 1, 1}, w).initializer("B", {17}, bias);
  b.node("Conv", {"x", "W", "B"}, {"c"}, "conv");
  b.node("Relu", {"c"}, {"r"}, "relu");
  b.node("Add", {"r", "r"}, {"a"}, "add");
  b.node("Sigmoid", {"a"}, {"y"}, "sigmoid");
  return b.save(tmp("eq_espdl_tiny.onnx"));
}

struct Built {
  std::unique_ptr<QuantContext> ctx;
  runtime::IntGraph program;
};

// `model` is an absolute path (a fixture or a model the test built).
Built quantize(const std::string& model, const std::string& target, const std::string& data, int64_t samples = 8) {
  Built b;
  b.ctx = calibrated({model, data}, target, samples);
  b.program =
      deploy::build_integer_program(*b.ctx->graph, b.ctx->plan, *b.ctx->lowered, b.ctx->target, b.ctx->executor());
  quant::BatchStream stream = b.ctx->batches(b.ctx->calibration);
  at::Tensor x;
  stream.next(x);
  deploy::attach_test_values(b.program, {x.slice(0, 0, 1).contiguous()});
  return b;
}

std::string tiny_data() {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(8 * 2 * 4 * 4);
  for (float& x : v) x = u(rng);
  std::string path = tmp("eq_espdl_tiny_data.npy");
  write_npy(path, Tensor::from_vector(DType::Float32, {8, 2, 4, 4}, v));
  return path;
}

const espdl::Attribute* attr(const espdl::Node* n, const std::string& key) {
  for (const auto* a : *n->attribute())
    if (a->name()->str() == key) return a;
  return nullptr;
}
std::string attr_s(const espdl::Node* n, const std::string& key) {
  const auto* a = attr(n, key);
  return a && a->s() ? std::string(reinterpret_cast<const char*>(a->s()->data()), a->s()->size()) : "<missing>";
}
const espdl::Tensor* init(const espdl::Graph* g, const std::string& name) {
  for (const auto* t : *g->initializer())
    if (t->name()->str() == name) return t;
  return nullptr;
}

TEST(EspdlGolden, TinyModelFieldByField) {
  Built b = quantize(tiny_model(), "esp32s3", tiny_data());
  std::string bytes = deploy::encode_espdl(b.program);
  EXPECT_EQ(bytes, deploy::encode_espdl(b.program)) << "exporting twice must give identical bytes";
  // Header: EDL2, plain, FlatBuffer length, zero padding; n % 16 == 0; file = 16 + n.
  ASSERT_GE(bytes.size(), 16u);
  EXPECT_EQ(bytes.substr(0, 4), "EDL2");
  uint32_t enc, len, pad;
  std::memcpy(&enc, bytes.data() + 4, 4);
  std::memcpy(&len, bytes.data() + 8, 4);
  std::memcpy(&pad, bytes.data() + 12, 4);
  EXPECT_EQ(enc, 0u);
  EXPECT_EQ(pad, 0u);
  EXPECT_EQ(len % 16, 0u);
  EXPECT_EQ(bytes.size(), 16u + len);
  std::vector<uint64_t> buf(len / 8 + 1);
  std::memcpy(buf.data(), bytes.data() + 16, len);
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(buf.data()), len);
  ASSERT_TRUE(espdl::VerifyModelBuffer(v));
  const espdl::Model* m = espdl::GetModel(buf.data());
  EXPECT_EQ(m->ir_version(), 8);
  ASSERT_NE(m->opset_import(), nullptr);  // present and empty, as ESP-PPQ writes it
  EXPECT_EQ(m->opset_import()->size(), 0u);
  EXPECT_EQ(m->producer_name(), nullptr);
  const espdl::Graph* g = m->graph();
  // Nodes: the Relu is fused into the Conv; the Add's output (r + r) needs one more exponent, so
  // one RequantizeLinear (shared by both uses) aligns its inputs (ESP-DL's Add does not rescale);
  // the Sigmoid carries a 256-entry table named Sigmoid_lut_0.
  ASSERT_EQ(g->node()->size(), 4u);
  const espdl::Node* conv = g->node()->Get(0);
  const espdl::Node* rq = g->node()->Get(1);
  const espdl::Node* add = g->node()->Get(2);
  const espdl::Node* sig = g->node()->Get(3);
  EXPECT_EQ(rq->op_type()->str(), "RequantizeLinear");
  EXPECT_EQ(rq->input()->size(), 3u);  // x, scale, zero point: initializers ESP-DL requires
  EXPECT_EQ(add->input()->Get(0)->str(), rq->output()->Get(0)->str());
  EXPECT_EQ(add->input()->Get(1)->str(), rq->output()->Get(0)->str());
  EXPECT_EQ(conv->op_type()->str(), "Conv");
  EXPECT_EQ(attr_s(conv, "activation"), "Relu");
  EXPECT_EQ(attr_s(conv, "quant_type"), "S8");
  EXPECT_EQ(conv->output()->Get(0)->str(), "r");
  ASSERT_NE(attr(conv, "strides"), nullptr);
  EXPECT_EQ(attr(conv, "strides")->attr_type(), espdl::AttributeType_INTS);
  ASSERT_NE(attr(conv, "dilations"), nullptr);
  EXPECT_EQ(attr(conv, "group")->i()->i(), 1);
  // Attributes sorted by key.
  for (const espdl::Node* n : {conv, add, sig})
    for (size_t i = 1; i < n->attribute()->size(); ++i)
      EXPECT_LT(n->attribute()->Get(flatbuffers::uoffset_t(i - 1))->name()->str(),
                n->attribute()->Get(flatbuffers::uoffset_t(i))->name()->str());
  EXPECT_EQ(add->op_type()->str(), "Add");
  EXPECT_EQ(attr_s(add, "quant_type"), "S8");
  EXPECT_EQ(sig->op_type()->str(), "Sigmoid");
  EXPECT_EQ(attr_s(sig, "lut"), "Sigmoid_lut_0");
  // Initializers: the table first; INT8 [256] at the output exponent; entry i = quantized
  // sigmoid of code (i - 128) at the input exponent (hand formula, half-up).
  const espdl::Tensor* lut = g->initializer()->Get(0);
  EXPECT_EQ(lut->name()->str(), "Sigmoid_lut_0");
  EXPECT_EQ(lut->data_type(), espdl::TensorDataType_INT8);
  ASSERT_EQ(lut->dims()->size(), 1u);
  EXPECT_EQ(lut->dims()->Get(0), 256);
  int e_a = b.ctx->plan.effective("a")->exponents()[0], e_y = b.ctx->plan.effective("y")->exponents()[0];
  EXPECT_EQ(lut->exponents()->Get(0), e_y);
  const int8_t* table = reinterpret_cast<const int8_t*>(lut->raw_data()->Data());
  for (int i = 0; i < 256; ++i) {
    double x = std::ldexp(double(i - 128), e_a);
    double want = std::min(127.0, std::floor(1.0 / (1.0 + std::exp(-x)) / std::ldexp(1.0, e_y) + 0.5));
    ASSERT_EQ(table[i], int8_t(want)) << "entry " << i;
  }
  // The filter: dims [kh, kw, C, N] = [1, 1, 2, 17], (N/16)HWC16 blocks: one block of 16 channels
  // (c-major, 16 lanes), then channel 16 alone. Codes: w = (2n + c - 17)/32 at the weight exponent.
  const espdl::Tensor* w = init(g, "W");
  ASSERT_NE(w, nullptr);
  std::vector<int64_t> dims(w->dims()->begin(), w->dims()->end());
  EXPECT_EQ(dims, (std::vector<int64_t>{1, 1, 2, 17}));
  EXPECT_EQ(w->doc_string()->str(), "layout ==> (N/16)HWC16_UNALIGNED");
  int e_w = int(w->exponents()->Get(0));
  EXPECT_EQ(w->exponents()->size(), 1u);  // per-tensor on esp32s3
  auto code = [&](int n, int c) {
    return int8_t(std::floor(double(2 * n + c - 17) / 32.0 / std::ldexp(1.0, e_w) + 0.5));
  };
  const int8_t* wd = reinterpret_cast<const int8_t*>(w->raw_data()->Data());
  for (int c = 0; c < 2; ++c)
    for (int j = 0; j < 16; ++j) EXPECT_EQ(wd[c * 16 + j], code(j, c)) << "block element c=" << c << " j=" << j;
  EXPECT_EQ(wd[32], code(16, 0));
  EXPECT_EQ(wd[33], code(16, 1));
  EXPECT_EQ(w->raw_data()->size(), 3u);  // 34 bytes padded to 48: three AlignedBytes
  for (int i = 34; i < 48; ++i) EXPECT_EQ(wd[i], 0);
  // Bias: INT32 [17] at e_in + e_w.
  const espdl::Tensor* bias = init(g, "B");
  EXPECT_EQ(bias->data_type(), espdl::TensorDataType_INT32);
  int e_x = b.ctx->plan.effective("x")->exponents()[0];
  EXPECT_EQ(bias->exponents()->Get(0), e_x + e_w);
  // Value infos: every non-parameter value, the input NHWC [1, 4, 4, 2].
  std::set<std::string> infos;
  for (const auto* vi : *g->value_info()) infos.insert(vi->name()->str());
  EXPECT_EQ(infos, (std::set<std::string>{"x", "r", rq->output()->Get(0)->str(), "a", "y"}));
  const espdl::ValueInfo* in = g->input()->Get(0);
  std::vector<int64_t> in_shape;
  for (const auto* d : *in->value_info_type()->value_as_tensor_type()->shape()->dim())
    in_shape.push_back(d->value()->dim_value());
  EXPECT_EQ(in_shape, (std::vector<int64_t>{1, 4, 4, 2}));
  EXPECT_EQ(in->value_info_type()->value_as_tensor_type()->elem_type(), espdl::TensorDataType_INT8);
  EXPECT_EQ(in->exponents()->Get(0), e_x);
  // Test values: named after the graph input and output, INT8, program layout.
  ASSERT_EQ(g->test_inputs_value()->size(), 1u);
  EXPECT_EQ(g->test_inputs_value()->Get(0)->name()->str(), "x");
  ASSERT_EQ(g->test_outputs_value()->size(), 1u);
  EXPECT_EQ(g->test_outputs_value()->Get(0)->name()->str(), "y");
  // Every raw_data payload 16-byte aligned relative to the FlatBuffer's first byte.
  for (const auto* t : *g->initializer())
    if (t->raw_data())
      EXPECT_EQ(
          (reinterpret_cast<const uint8_t*>(t->raw_data()->Data()) - reinterpret_cast<const uint8_t*>(buf.data())) % 16,
          0);
}

TEST(EspdlGolden, CTargetStoresPlainNHWCFilters) {
  Built b = quantize(tiny_model(), "c", tiny_data());
  std::string bytes = deploy::encode_espdl(b.program);
  std::vector<uint64_t> buf(bytes.size() / 8 + 1);
  std::memcpy(buf.data(), bytes.data() + 16, bytes.size() - 16);
  const espdl::Graph* g = espdl::GetModel(buf.data())->graph();
  const espdl::Tensor* w = init(g, "W");
  EXPECT_EQ(w->doc_string()->str(), "layout ==> NHWC");
  int e_w = int(w->exponents()->Get(0));
  const int8_t* wd = reinterpret_cast<const int8_t*>(w->raw_data()->Data());
  for (int n = 0; n < 17; ++n)
    for (int c = 0; c < 2; ++c)
      EXPECT_EQ(wd[n * 2 + c], int8_t(std::floor(double(2 * n + c - 17) / 32.0 / std::ldexp(1.0, e_w) + 0.5)));
}

TEST(EspdlGolden, Esp32p4HasPerChannelExponentsOnFiltersAndBiases) {
  Built b = quantize(tiny_model(), "esp32p4", tiny_data());
  std::string bytes = deploy::encode_espdl(b.program);
  std::vector<uint64_t> buf(bytes.size() / 8 + 1);
  std::memcpy(buf.data(), bytes.data() + 16, bytes.size() - 16);
  const espdl::Graph* g = espdl::GetModel(buf.data())->graph();
  const espdl::Tensor* w = init(g, "W");
  const espdl::Tensor* bias = init(g, "B");
  ASSERT_EQ(w->exponents()->size(), 17u);  // one per output channel, natural order
  ASSERT_EQ(bias->exponents()->size(), 17u);
  EXPECT_EQ(w->doc_string()->str(), "layout ==> (N/16)HWC16_UNALIGNED");
  std::vector<int> e_w = b.ctx->plan.effective("W")->exponents();
  int e_x = b.ctx->plan.effective("x")->exponents()[0];
  for (int n = 0; n < 17; ++n) {
    EXPECT_EQ(w->exponents()->Get(flatbuffers::uoffset_t(n)), e_w[size_t(n)]) << n;
    EXPECT_EQ(bias->exponents()->Get(flatbuffers::uoffset_t(n)), e_x + e_w[size_t(n)]) << n;  // e_b = e_in + e_w[n]
  }
  // Per-channel codes: channel 16 (the unaligned remainder) at its own exponent, half-even.
  const int8_t* wd = reinterpret_cast<const int8_t*>(w->raw_data()->Data());
  for (int c = 0; c < 2; ++c)
    EXPECT_EQ(wd[32 + c], int8_t(std::nearbyint(double(2 * 16 + c - 17) / 32.0 / std::ldexp(1.0, e_w[16]))));
}

// A read file's rounding and filter blocks come from its target's file, not from the chip's
// name in C++. A file naming no target (Espressif's toolchain): per-channel filter exponents
// (only P4-class chips) mean half-to-even, inferred; otherwise half-up is assumed. Both are said
// in the dump, and --target (read_espdl's target) overrides.
TEST(EspdlReader, RoundingAndFilterBlocksComeFromTheTargetFile) {
  Built p4 = quantize(tiny_model(), "esp32p4", tiny_data());
  runtime::IntGraph back = deploy::decode_espdl(deploy::encode_espdl(p4.program), "p4.espdl");
  EXPECT_EQ(back.rounding, RoundingMode::HalfEven);  // esp32p4.yaml requant_rounding
  EXPECT_FALSE(back.rounding_assumed);
  EXPECT_EQ(back.filter_blocks, (std::map<int, int>{{8, 16}}));  // the int8 filters' (N/16)HWC16 blocks
  Built s3 = quantize(tiny_model(), "esp32s3", tiny_data());
  EXPECT_EQ(deploy::decode_espdl(deploy::encode_espdl(s3.program), "s3.espdl").rounding, RoundingMode::HalfUp);
  // Without the target's name, as Espressif's files are: the rounding is inferred or assumed, and said.
  auto anonymous_read = [](runtime::IntGraph p, RoundingMode want, const std::string& said) {
    p.target.clear();
    p.metadata.erase("target");
    runtime::IntGraph read = deploy::decode_espdl(deploy::encode_espdl(p), "anonymous.espdl");
    EXPECT_EQ(read.rounding, want);
    EXPECT_TRUE(read.rounding_assumed);
    EXPECT_NE(deploy::describe_program(read).find(said), std::string::npos) << deploy::describe_program(read);
    return p;
  };
  anonymous_read(p4.program, RoundingMode::HalfEven, "half_even rounding, inferred: filter '");
  runtime::IntGraph anonymous_s3 =
      anonymous_read(s3.program, RoundingMode::HalfUp, "half_up rounding, assumed: the file names no target");
  // The user's --target: a temporary file, since read_espdl reads a path.
  std::string path = (std::filesystem::temp_directory_path() / "eq_anonymous_s3.espdl").string();
  deploy::write_espdl(anonymous_s3, path);
  runtime::IntGraph told = deploy::read_espdl(path, "esp32p4");
  EXPECT_EQ(told.rounding, RoundingMode::HalfEven);
  EXPECT_FALSE(told.rounding_assumed);
  EXPECT_EQ(told.target, "esp32p4");
  std::filesystem::remove(path);
  // A file that names its target refuses another one.
  std::string named = (std::filesystem::temp_directory_path() / "eq_named_s3.espdl").string();
  deploy::write_espdl(s3.program, named);
  try {
    deploy::read_espdl(named, "esp32p4");
    ADD_FAILURE() << "a contradicting --target was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the file says it is for 'esp32s3'"), std::string::npos) << e.what();
  }
  std::filesystem::remove(named);
}

TEST(EspdlLayout, DepthwiseBlocksAndRemainder) {
  // Depthwise [N=18, 1, 2, 1]: blocks of 16 lanes per (h, w), then the 2 remaining channels H-W-N.
  std::vector<int64_t> order = deploy::filter_wire_order({18, 1, 2, 1}, true, false, 16);
  ASSERT_EQ(order.size(), 36u);
  EXPECT_EQ(order[0], 0);    // n=0, h=0
  EXPECT_EQ(order[1], 2);    // n=1, h=0 (logical index n*2 + h)
  EXPECT_EQ(order[16], 1);   // n=0, h=1
  EXPECT_EQ(order[32], 32);  // n=16, h=0
  EXPECT_EQ(order[33], 34);  // n=17, h=0
  EXPECT_EQ(order[34], 33);  // n=16, h=1
  // Gemm [C=3, N=2] as a 1x1 conv, plain (C target): N-C order.
  EXPECT_EQ(deploy::filter_wire_order({3, 2}, false, true, 0), (std::vector<int64_t>{0, 2, 4, 1, 3, 5}));
}

class EspdlRoundTrip : public ::testing::TestWithParam<std::tuple<FixtureCase, std::string>> {};

TEST_P(EspdlRoundTrip, ReaderReproducesTheEmbeddedOutputs) {
  auto [c, target] = GetParam();
  Built b = quantize(fixture(c.model), target, c.data);  // 8 samples
  std::string bytes = deploy::encode_espdl(b.program);
  runtime::IntGraph back = deploy::decode_espdl(bytes, "test.espdl");
  runtime::SelfTestResult r = runtime::self_test(back);
  EXPECT_TRUE(r.passed) << (r.lines.empty() ? "" : r.lines[0]);
  EXPECT_EQ(deploy::encode_espdl(back), bytes) << "decode + encode must give the same bytes";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EspdlRoundTrip,
                         ::testing::Combine(::testing::ValuesIn(fixture_models()),
                                            ::testing::Values("esp32p4", "esp32s3", "c")),
                         CaseName());

void expect_rejected(const std::string& bytes, const std::string& what) {
  try {
    deploy::decode_espdl(bytes, "bad.espdl");
    ADD_FAILURE() << what << ": accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidModel) << what << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.espdl"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line: " << e.what();
  }
}

TEST(EspdlReader, RejectsCorruptedFiles) {
  Built b = quantize(tiny_model(), "esp32s3", tiny_data());
  std::string good = deploy::encode_espdl(b.program);
  expect_rejected("", "empty");
  expect_rejected("PDL9" + good.substr(4), "bad magic");
  expect_rejected(good.substr(0, good.size() / 2), "truncated");
  std::string longer = good;
  longer[8] = char(0xff);
  longer[9] = char(0xff);
  expect_rejected(longer, "length beyond the file");
  std::string bad_root = good;
  bad_root[16] = char(0xf0);  // root offset far outside the buffer
  bad_root[17] = char(0xff);
  expect_rejected(bad_root, "bad root offset");
  std::string zeros(good.size(), '\0');
  std::memcpy(zeros.data(), good.data(), 16);
  expect_rejected(zeros, "zeroed FlatBuffer");
  // Random byte flips: rejected or decoded, never a crash.
  std::mt19937 rng(3);
  int rejected = 0;
  for (int k = 0; k < 300; ++k) {
    std::string m = good;
    for (int f = 0; f < 4; ++f) m[16 + rng() % (m.size() - 16)] = char(rng());
    try {
      deploy::decode_espdl(m, "bad.espdl");
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST(EspdlReader, FlippedFilesThatDecodeNeverCrashTheRuntime) {
  // A flip the verifier cannot see (a dim, an attribute, a name) reaches the interpreter: it must
  // end in an edgequant::Error (or a failed self-test), never out-of-bounds reads.
  Built b = quantize(fixture("models/resnet_style_op13.onnx"), "esp32s3", fixture("models/resnet_style_input.npy"), 2);
  std::string good = deploy::encode_espdl(b.program);
  std::mt19937 rng(11);
  int decoded = 0, ran = 0;
  // EQ_FLIPS=N runs a longer search by hand (4000 was run on this fixture, clean).
  for (int k = 0; k < (getenv("EQ_FLIPS") ? atoi(getenv("EQ_FLIPS")) : 400); ++k) {
    std::string m = good;
    for (int f = 0; f < 2; ++f) m[16 + rng() % (m.size() - 16)] = char(rng());
    runtime::IntGraph p;
    try {
      p = deploy::decode_espdl(m, "bad.espdl");
    } catch (const Error&) {
      continue;
    }
    ++decoded;
    try {
      runtime::self_test(p);
      ++ran;
    } catch (const Error&) {
    }
  }
  EXPECT_GT(decoded, 100);
  std::printf("flipped files: %d decoded, %d ran to the end of Model::test()\n", decoded, ran);
}

}  // namespace
