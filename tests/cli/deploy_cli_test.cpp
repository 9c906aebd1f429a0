// Deployable outputs from the command line: `check` before work, `quantize` writing the target's
// file (nothing when the target cannot run the graph), `run`/`info` on .espdl files and quantize
// directories, and corrupted files rejected with one line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/npy.h"
#include "test_util.h"

using namespace edgequant;
using namespace edgequant::testing;
namespace fs = std::filesystem;

namespace {
const std::string kModel = fixture("models/resnet_style_op13.onnx");
const std::string kData = fixture("models/resnet_style_input.npy");

std::string tmp(const std::string& name) { return (fs::temp_directory_path() / ("eq_dcli_" + name)).string(); }

// Conv -> Abs: EdgeQuant runs Abs, ESP-DL's runtime registers no Abs module.
std::string abs_model() {
  ModelBuilder b;
  b.input("x", {-1, 3, 8, 8}).output("y", {-1, 4, 8, 8});
  std::vector<float> w(4 * 3);
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(int(i) - 6) / 8.f;
  b.initializer("W", {4, 3, 1, 1}, w);
  b.node("Conv", {"x", "W"}, {"c"}, "conv");
  b.node("Abs", {"c"}, {"y"}, "abs_node");
  return b.save(tmp("abs.onnx"));
}

std::string abs_data() {
  std::vector<float> v(4 * 3 * 8 * 8);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(int(i % 17) - 8) / 8.f;
  write_npy(tmp("abs.npy"), Tensor::from_vector(DType::Float32, {4, 3, 8, 8}, v));
  return tmp("abs.npy");
}

TEST(CheckCli, ListsEveryBlockingNodeWithTheRemedy) {
  auto r = run_command(cli() + " check " + fixture("models/detection_head_op13.onnx") + " -t esp32s3 -s " +
                       fixture("settings/int16.yaml"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("'/Resize' (Resize)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'/Resize_1' (Resize)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("dispatching_table"), std::string::npos) << r.output;
  auto ok = run_command(cli() + " check " + fixture("models/detection_head_op13.onnx") + " -t esp32s3 -s " +
                        fixture("settings/int16_detection_head.yaml"));
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_NE(ok.output.find("0 blocking"), std::string::npos) << ok.output;
}

TEST(CheckCli, NormalisationBlocksAndInstanceNormPassForEsp) {
  // A transformer block (LayerNorm as ReduceMean/Pow/Sqrt/Div, MatMul, Softmax; at opset 17 as
  // LayerNormalization) and a generator with InstanceNormalization (both decomposed by
  // `prepare`): nothing blocks on the ESP chips.
  for (const char* m :
       {"models/transformer_block_op13.onnx", "models/transformer_block_op17.onnx", "models/instance_norm_op13.onnx"})
    for (const char* t : {"esp32s3", "esp32p4", "c"}) {
      auto r = run_command(cli() + " check " + fixture(m) + " -t " + t);
      EXPECT_EQ(r.status, 0) << m << " " << t << ": " << r.output;
      EXPECT_NE(r.output.find(" 0 blocking"), std::string::npos) << r.output;
    }
}

TEST(CheckCli, ReductionPatternsEspdlCannotRunAreNamed) {
  // ESP-DL's ReduceBase merges neighbouring dims by flag and runs 7 patterns; a mean over dims
  // 1 and 3 of a 5-D tensor (kept/reduced/kept/reduced/kept) is not one of them.
  ModelBuilder b;
  b.input("x", {1, 2, 3, 4, 5}).output("y", {1, 1, 3, 1, 5});
  onnx::AttributeProto* a = b.node("ReduceMean", {"x"}, {"y"}, "odd_mean").add_attribute();
  a->set_name("axes");
  a->set_type(onnx::AttributeProto::INTS);
  a->add_ints(1);
  a->add_ints(3);
  auto r = run_command(cli() + " check " + b.save(tmp("odd_mean.onnx")) + " -t esp32s3");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("'odd_mean' (ReduceMean): ESP-DL's ReduceMean handles"), std::string::npos) << r.output;
}

TEST(CheckCli, DepthSpaceOrdersEspdlComputesOtherwiseAreNamed) {
  // ESP-DL v3.3.9's DCR DepthToSpace is ONNX's only with blocksize output channels (4 here: it
  // writes outside its output, and ESP-DL's runtime crashed on such a file), its SpaceToDepth only
  // with one input channel (4 here: 63 of 64 outputs differed in ESP-DL's runtime). CRD passes.
  ModelBuilder b;
  b.input("x", {1, 16, 4, 4}).output("y", {1, 16, 4, 4});
  onnx::NodeProto& d2s = b.node("DepthToSpace", {"x"}, {"z"}, "dcr");
  for (auto [name, value] : {std::pair<std::string, std::string>{"mode", "DCR"}}) {
    onnx::AttributeProto* a = d2s.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(value);
  }
  onnx::NodeProto& crd = b.node("DepthToSpace", {"x"}, {"w"}, "crd");
  onnx::NodeProto& s2d = b.node("SpaceToDepth", {"z"}, {"y1"}, "s2d");
  onnx::NodeProto& s2d_crd = b.node("SpaceToDepth", {"w"}, {"y2"}, "s2d_of_crd");
  for (onnx::NodeProto* n : {&d2s, &crd, &s2d, &s2d_crd}) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name("blocksize");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(2);
  }
  onnx::AttributeProto* m = crd.add_attribute();
  m->set_name("mode");
  m->set_type(onnx::AttributeProto::STRING);
  m->set_s("CRD");
  b.node("Add", {"y1", "y2"}, {"y"}, "sum");
  auto r = run_command(cli() + " check " + b.save(tmp("depth_space_orders.onnx")) + " -t esp32s3");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("'dcr' (DepthToSpace): ESP-DL's DCR DepthToSpace puts input channel c"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("'s2d' (SpaceToDepth): ESP-DL's SpaceToDepth orders"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("'crd'"), std::string::npos) << r.output;
}

TEST(CheckCli, GroupedConvOtherThanDepthwiseIsNamed) {
  // ESP-DL's Conv runs any group != 1 as depthwise (it takes the output channels from the input):
  // 2 groups of 2 -> 3 channels would run with other shapes; a depthwise Conv passes.
  ModelBuilder b;
  b.input("x", {1, 4, 6, 6}).output("y", {1, 4, 6, 6});
  b.initializer("W", {6, 2, 3, 3}, std::vector<float>(6 * 2 * 9, 0.25f))
      .initializer("D", {6, 1, 3, 3}, std::vector<float>(6 * 9, 0.5f))
      .initializer("P", {4, 6, 1, 1}, std::vector<float>(24, 0.125f));
  for (auto [name, w, in, out] :
       {std::tuple<const char*, const char*, const char*, const char*>{"grouped", "W", "x", "g"},
        {"depthwise", "D", "g", "d"}}) {
    auto& n = b.node("Conv", {in, w}, {out}, name);
    ModelBuilder::attr_ints(n, "pads", {1, 1, 1, 1});
    auto* a = n.add_attribute();
    a->set_name("group");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(std::string(name) == "grouped" ? 2 : 6);
  }
  b.node("Conv", {"d", "P"}, {"y"}, "pointwise");
  auto r = run_command(cli() + " check " + b.save(tmp("grouped_conv.onnx")) + " -t esp32s3");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("'grouped' (Conv): ESP-DL's Conv runs group 1 or depthwise"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("'depthwise'"), std::string::npos) << r.output;
}

TEST(CheckCli, PadsEspdlCannotTakeAreNamed) {
  // ESP-DL pads constant/reflect/edge with constant pads; here the constant value must be 0 and
  // no pad negative (a crop).
  ModelBuilder b;
  b.input("x", {1, 2, 4, 4}).output("y", {1, 2, 5, 6});
  b.initializer_i64("crop", {8}, {0, 0, 0, 1, 0, 0, -1, 1}).initializer_i64("pads", {8}, {0, 0, 1, 1, 0, 0, 0, 1});
  b.initializer("half", {}, {0.5f});
  b.node("Pad", {"x", "crop"}, {"c"}, "crop_pad");
  b.node("Pad", {"x", "pads", "half"}, {"h"}, "half_pad");
  b.node("Add", {"c", "h"}, {"y"}, "sum");
  auto r = run_command(cli() + " check " + b.save(tmp("bad_pads.onnx")) + " -t esp32s3");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("'crop_pad' (Pad): negative pads (cropping) are not supported"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("'half_pad' (Pad): a constant Pad value other than 0"), std::string::npos) << r.output;
}

TEST(CheckCli, Opset18ResizeExtensionsBlockEspdlByName) {
  // The float executor runs antialias / axes / keep_aspect_ratio_policy (ORT fixture); ESP-DL has
  // none of them, so each such Resize is listed rather than exported with other semantics.
  auto r = run_command(cli() + " check " + fixture("opsets/opset18_resize_antialias.onnx") + " -t esp32p4");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("11 ops checked, 11 blocking"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'Resize_0' (Resize): ESP-DL's Resize has no antialias"), std::string::npos) << r.output;
}

TEST(CheckCli, ModRunsOnEspdlOnlyAsCFmod) {
  // ESP-DL's Mod computes fmodf whatever its fmod attribute says: fmod=0 (the divisor's sign) is
  // refused by name; the torch.fmod fixture (fmod=1) passes.
  ModelBuilder b;
  b.input("x", {1, 3, 8, 8}).output("y", {1, 4, 8, 8});
  b.initializer("W", {4, 3, 1, 1}, std::vector<float>(12, 0.25f));
  b.initializer("D", {}, {0.75f});
  b.node("Conv", {"x", "W"}, {"c"}, "conv");
  onnx::AttributeProto* a = b.node("Mod", {"c", "D"}, {"y"}, "python_mod").add_attribute();
  a->set_name("fmod");
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(0);
  auto r = run_command(cli() + " check " + b.save(tmp("mod0.onnx")) + " -t esp32s3");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("'python_mod' (Mod): ESP-DL's Mod computes C's fmod"), std::string::npos) << r.output;
  auto ok = run_command(cli() + " check " + fixture("models/fmod_op13.onnx") + " -t esp32s3");
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_NE(ok.output.find("0 blocking"), std::string::npos) << ok.output;
}

TEST(QuantizeCli, UnrunnableGraphFailsBeforeCalibrationWithNothingWritten) {
  std::string out = tmp("abs_out");
  fs::remove_all(out);
  auto r = run_command(cli() + " quantize " + abs_model() + " -t esp32s3 -c " + abs_data() +
                       " --calib-steps 1 --batch-size 4 -o " + out);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_NE(r.output.find("'abs_node' (Abs)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ESP-DL"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pass 'check'"), std::string::npos) << "fails before calibration: " << r.output;
  EXPECT_FALSE(fs::exists(out));
  // Reports only: no deployable file, no check.
  auto none = run_command(cli() + " quantize " + abs_model() + " -t esp32s3 -c " + abs_data() +
                          " --calib-steps 1 --batch-size 4 --format none -o " + out);
  EXPECT_EQ(none.status, 0) << none.output;
  EXPECT_FALSE(fs::exists(out + "/model.espdl"));
}

TEST(DeployCli, QuantizeWritesTheEspdlAndRunReproducesIt) {
  std::string out = tmp("resnet_s3");
  fs::remove_all(out);
  auto q = run_command(cli() + " quantize " + kModel + " -t esp32s3 -c " + kData +
                       " --calib-steps 1 --batch-size 2 -o " + out);
  ASSERT_EQ(q.status, 0) << q.output;
  EXPECT_NE(q.output.find("deployable: " + out + "/model.espdl"), std::string::npos) << q.output;
  for (const char* f : {"/model.espdl", "/model.info", "/model.json"}) EXPECT_TRUE(fs::exists(out + f)) << f;
  // The embedded self-test (host Model::test()).
  auto self = run_command(cli() + " run " + out + "/model.espdl");
  EXPECT_EQ(self.status, 0) << self.output;
  EXPECT_NE(self.output.find("Model::test() PASS"), std::string::npos) << self.output;
  // Integer runtime and simulation give the same dequantized outputs on the user's data.
  auto a = run_command(cli() + " run " + out + "/model.espdl -i " + kData + " -o " + tmp("int.npy"));
  auto b = run_command(cli() + " run " + out + " -i " + kData + " -o " + tmp("sim.npy"));
  ASSERT_EQ(a.status, 0) << a.output;
  ASSERT_EQ(b.status, 0) << b.output;
  EXPECT_NE(a.output.find("integer runtime"), std::string::npos);
  EXPECT_NE(b.output.find("quantized simulation"), std::string::npos);
  Tensor ti = read_npy(tmp("int.npy")), ts = read_npy(tmp("sim.npy"));
  ASSERT_EQ(ti.shape(), ts.shape());
  std::vector<double> x = ti.to_doubles(), y = ts.to_doubles();
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(x[i], y[i]) << "element " << i;
  // info: nodes, parameter bytes per dtype, activation memory.
  auto info = run_command(cli() + " info " + out + "/model.espdl");
  EXPECT_EQ(info.status, 0) << info.output;
  EXPECT_NE(info.output.find("memory: parameters"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("greedy arena"), std::string::npos) << info.output;
}

// Test values are embedded by default only when small: the detection head's one sample and
// outputs take 46 848 bytes (> 16 KiB), so its file carries none, says so, and is that much
// smaller; --export-test-values embeds them; `run` on a file without them says what to do (exit 2).
TEST(DeployCli, LargeTestValuesAreLeftOutByDefaultAndSaid) {
  const std::string model = fixture("models/detection_head_op13.onnx"),
                    data = fixture("models/detection_head_input.npy");
  std::string lean = tmp("head_lean"), full = tmp("head_full");
  fs::remove_all(lean);
  fs::remove_all(full);
  std::string base = cli() + " quantize " + model + " -t esp32s3 -c " + data + " --calib-steps 1 --batch-size 2 -o ";
  auto a = run_command(base + lean);
  ASSERT_EQ(a.status, 0) << a.output;
  EXPECT_NE(a.output.find("test values: not embedded (1 input(s) and 1 output(s), 46848 bytes, over the 16 KiB"),
            std::string::npos)
      << a.output;
  auto b = run_command(base + full + " --export-test-values");
  ASSERT_EQ(b.status, 0) << b.output;
  EXPECT_NE(b.output.find("test values: 1 input(s) and 1 output(s), 46848 bytes embedded"), std::string::npos)
      << b.output;
  EXPECT_GE(fs::file_size(full + "/model.espdl"), fs::file_size(lean + "/model.espdl") + 46848);
  auto self = run_command(cli() + " run " + lean + "/model.espdl");
  EXPECT_EQ(self.status, 2) << self.output;
  EXPECT_NE(self.output.find("the file carries no test values"), std::string::npos) << self.output;
  EXPECT_NE(self.output.find("--input X.npy"), std::string::npos) << self.output;
  EXPECT_EQ(run_command(cli() + " run " + full + "/model.espdl").status, 0);
  // A small model's values stay in by default (the fmod fixture: 1728 + 4 bytes).
  std::string small = tmp("fmod_default");
  fs::remove_all(small);
  auto c = run_command(cli() + " quantize " + fixture("models/fmod_op13.onnx") + " -t esp32s3 -c " +
                       fixture("models/fmod_input.npy") + " --calib-steps 1 --batch-size 2 -o " + small);
  ASSERT_EQ(c.status, 0) << c.output;
  EXPECT_NE(c.output.find("test values: 1 input(s) and 1 output(s), 1732 bytes embedded"), std::string::npos)
      << c.output;
}

TEST(EvaluateCli, UnlabelledDataGivesOutputMetrics) {
  std::string out = tmp("dh_metrics");
  fs::remove_all(out);
  std::string model = fixture("models/detection_head_op13.onnx"), data = fixture("models/detection_head_input.npy");
  auto q = run_command(cli() + " quantize " + model + " -t esp32s3 -c " + data + " --calib-steps 1 --batch-size 2 -o " +
                       out);
  ASSERT_EQ(q.status, 0) << q.output;
  EXPECT_NE(q.output.find("output 'output': SQNR"), std::string::npos) << q.output;
  std::ifstream aj(out + "/analysis.json");
  std::string json((std::istreambuf_iterator<char>(aj)), {});
  EXPECT_NE(json.find("\"sqnr_db\""), std::string::npos);
  EXPECT_NE(json.find("\"cosine\""), std::string::npos);
  auto e = run_command(cli() + " evaluate " + model + " -q " + out + " -d " + data);
  EXPECT_EQ(e.status, 0) << e.output;
  EXPECT_NE(e.output.find("no labels"), std::string::npos) << e.output;
  EXPECT_NE(e.output.find("cosine 0.99"), std::string::npos) << e.output;
}

TEST(DeployCli, CorruptedEspdlIsOneLineAndExit2) {
  std::string out = tmp("resnet_c");
  fs::remove_all(out);
  auto q =
      run_command(cli() + " quantize " + kModel + " -t c -c " + kData + " --calib-steps 1 --batch-size 2 -o " + out);
  ASSERT_EQ(q.status, 0) << q.output;
  std::ifstream in(out + "/model.espdl", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::string bad = tmp("truncated.espdl");
  std::ofstream(bad, std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  for (const std::string& cmd : {" run " + bad, " info " + bad}) {
    auto r = run_command(cli() + cmd);
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_NE(r.output.find(bad), std::string::npos) << r.output;
  }
}

TEST(DeployCli, QdqFileRunsAndMismatchedScalesNameTheNode) {
  std::string out = tmp("resnet_qdq");
  fs::remove_all(out);
  auto q = run_command(cli() + " quantize " + kModel + " -t ort-int8 -c " + kData +
                       " --calib-steps 1 --batch-size 2 -o " + out);
  ASSERT_EQ(q.status, 0) << q.output;
  auto a = run_command(cli() + " run " + out + "/model.qdq.onnx -i " + kData + " -o " + tmp("qdq.npy"));
  auto b = run_command(cli() + " run " + out + " -i " + kData + " -o " + tmp("qdq_sim.npy"));
  ASSERT_EQ(a.status, 0) << a.output;
  ASSERT_EQ(b.status, 0) << b.output;
  std::vector<double> x = read_npy(tmp("qdq.npy")).to_doubles(), y = read_npy(tmp("qdq_sim.npy")).to_doubles();
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], y[i], 1e-6) << "element " << i;  // same grid, same ties
  // Three scales, two zero points on a 3-channel axis.
  ModelBuilder m;
  m.input("x", {1, 3, 2, 2}).output("y", {1, 3, 2, 2});
  m.initializer("s", {3}, {0.1f, 0.2f, 0.3f});
  auto* zp = m.model().mutable_graph()->add_initializer();
  zp->set_name("z");
  zp->set_data_type(onnx::TensorProto::INT8);
  zp->add_dims(2);
  zp->add_int32_data(0);
  zp->add_int32_data(0);
  m.node("QuantizeLinear", {"x", "s", "z"}, {"q"}, "quant_node");
  m.node("DequantizeLinear", {"q", "s", "z"}, {"y"}, "dequant_node");
  std::string path = m.save(tmp("bad_qdq.onnx"));
  write_npy(tmp("bad_qdq_in.npy"), Tensor::from_vector(DType::Float32, {1, 3, 2, 2}, std::vector<float>(12, 0.5f)));
  auto r = run_command(cli() + " run " + path + " -i " + tmp("bad_qdq_in.npy") + " -o " + tmp("bad_qdq_out.npy"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_NE(r.output.find("quant_node"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp("bad_qdq_out.npy")));
}

TEST(DeployCli, QdqAndTiFilesByTarget) {
  std::string out = tmp("resnet_ort");
  fs::remove_all(out);
  auto q = run_command(cli() + " quantize " + kModel + " -t ort-int8 -c " + kData +
                       " --calib-steps 1 --batch-size 2 -o " + out);
  ASSERT_EQ(q.status, 0) << q.output;
  EXPECT_TRUE(fs::exists(out + "/model.qdq.onnx"));
  std::string ti = tmp("resnet_ti");
  fs::remove_all(ti);
  auto t = run_command(cli() + " quantize " + kModel + " -t ti-npu -c " + kData +
                       " --calib-steps 1 --batch-size 2 -o " + ti);
  ASSERT_EQ(t.status, 0) << t.output;
  EXPECT_TRUE(fs::exists(ti + "/model.ti.onnx"));
  std::ifstream cfg(ti + "/quantization_config.yaml");
  std::string yaml((std::istreambuf_iterator<char>(cfg)), {});
  EXPECT_NE(yaml.find("weight_bits: 8"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("npu_rule_violations"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("first conv"), std::string::npos) << "the 3-channel first conv breaks the NPU rule: " << yaml;
}

// tflite-int8 writes TFLite's own file by default; what the writer cannot express is refused by
// `check` before calibration, by node, and nothing is written.
TEST(DeployCli, TfliteByDefaultForTfliteInt8AndRefusalsBeforeWork) {
  std::string out = tmp("resnet_tflite");
  fs::remove_all(out);
  auto q = run_command(cli() + " quantize " + kModel + " -t tflite-int8 -c " + kData +
                       " --calib-steps 1 --batch-size 2 -o " + out);
  ASSERT_EQ(q.status, 0) << q.output;
  EXPECT_NE(q.output.find("model.tflite"), std::string::npos) << q.output;
  std::ifstream f(out + "/model.tflite", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  ASSERT_GT(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(4, 4), "TFL3") << "TFLite's file identifier";
  EXPECT_FALSE(fs::exists(out + "/model.qdq.onnx"));

  std::string refused = tmp("convt_tflite");
  fs::remove_all(refused);
  auto r = run_command(cli() + " quantize " + fixture("models/conv_transpose_op13.onnx") + " -t tflite-int8 -c " +
                       fixture("models/conv_transpose_input.npy") + " --calib-steps 1 --batch-size 2 -o " + refused);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("pass 'check'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'/up1/ConvTranspose' (ConvTranspose)"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(refused));
  // 16-bit layers: TFLite Micro's kernels are int8 (16x8 is not written).
  auto wide = run_command(cli() + " quantize " + kModel + " -t tflite-int8 -c " + kData + " -s " +
                          fixture("settings/int16.yaml") + " --calib-steps 1 --batch-size 2 -o " + refused);
  EXPECT_EQ(wide.status, 2) << wide.output;
  EXPECT_NE(wide.output.find("'/stem/stem.0/Conv' (Conv): 16-bit output"), std::string::npos) << wide.output;
  EXPECT_FALSE(fs::exists(refused));
  auto c = run_command(cli() + " check " + fixture("models/fmod_op13.onnx") + " -t tflite-int8");
  EXPECT_EQ(c.status, 2) << c.output;
  EXPECT_NE(c.output.find("'/Mod' (Mod): the .tflite writer has no TFLite builtin operator for Mod"), std::string::npos)
      << c.output;
}

// `convert`: the file and summary.txt written, the accuracy against float printed on labelled data.
TEST(DeployCli, ConvertWritesTheFileAndItsAccuracy) {
  std::string out = tmp("convert_wo");
  fs::remove_all(out);
  auto r = run_command(cli() + " convert " + fixture("fashion/fmnist_mobilenetv2.onnx") +
                       " --mode weight-only --weight-bits 4 --block-size 32 --eval " +
                       "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz --limit 64 -o " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(out + "/model.weight-only.onnx"));
  EXPECT_TRUE(fs::exists(out + "/summary.txt"));
  for (const char* want : {"size: ", "opset raised to 21", "top-1: float ", "SQNR"})
    EXPECT_NE(r.output.find(want), std::string::npos) << want << " missing in: " << r.output;
}

// Settings it cannot honour and models it cannot upgrade: exit 2, one line, no model file.
TEST(DeployCli, ConvertRefusesByName) {
  struct Case {
    std::string args, mention;
  };
  const std::string mnv2 = fixture("fashion/fmnist_mobilenetv2.onnx");
  for (const Case& c :
       {Case{mnv2 + " --mode fp8", "unknown conversion mode 'fp8'"},
        Case{mnv2 + " --mode weight-only --weight-bits 3", "3 bits"},
        Case{fixture("opsets/opset18_groupnorm.onnx") + " --mode weight-only --weight-bits 4", "GroupNormalization"},
        Case{mnv2 + " --mode float16 --eval " + tmp("no_such_data.npy"), "no_such_data.npy"}}) {
    std::string out = tmp("convert_bad");
    fs::remove_all(out);
    auto r = run_command(cli() + " convert " + c.args + " -o " + out);
    EXPECT_EQ(r.status, 2) << c.args << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_NE(r.output.find(c.mention), std::string::npos) << r.output;
    for (const char* f : {"/model.weight-only.onnx", "/model.float16.onnx", "/summary.txt"})
      EXPECT_FALSE(fs::exists(out + f)) << c.args << ": " << f;
  }
}

}  // namespace
