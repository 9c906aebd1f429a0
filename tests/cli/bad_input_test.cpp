// Bad input never crashes: one error line naming the file/node/op, exit status 2, no output file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/npy.h"
#include "test_util.h"

using namespace edgequant;
using namespace edgequant::testing;
namespace fs = std::filesystem;

namespace {
std::string tmp(const std::string& name) { return (fs::temp_directory_path() / ("eq_bad_" + name)).string(); }

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

void expect_user_error(const CommandResult& r, const std::vector<std::string>& mentions) {
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_EQ(lines(r.output), 1) << r.output;
  for (const auto& m : mentions)
    EXPECT_NE(r.output.find(m), std::string::npos) << "missing '" << m << "' in: " << r.output;
}

std::string write_input(const std::string& name, const Tensor& t) {
  std::string p = tmp(name);
  write_npy(p, t);
  return p;
}

// `edgequant run MODEL` on a zero input of `shape` is refused as bad input and writes no output.
void expect_run_refused(const std::string& model, const std::string& stem, const Shape& shape,
                        const std::vector<std::string>& mentions) {
  std::string in = write_input(stem + "_in.npy", Tensor(DType::Float32, shape));
  std::string out = tmp(stem + "_out.npz");
  fs::remove(out);
  expect_user_error(run_command(cli() + " run " + model + " -i " + in + " -o " + out), mentions);
  EXPECT_FALSE(fs::exists(out));
}

TEST(BadInput, TruncatedModel) {
  std::ifstream in(fixture("models/resnet_style_op13.onnx"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::string path = tmp("truncated.onnx");
  std::ofstream(path, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  expect_user_error(run_command(cli() + " info " + path), {path, "truncated"});
}

TEST(BadInput, NotAnOnnxFile) {
  std::string path = tmp("text.onnx");
  std::ofstream(path) << "this is not a model\n";
  expect_user_error(run_command(cli() + " info " + path), {path, "not an ONNX model"});
}

TEST(BadInput, MissingFile) {
  expect_user_error(run_command(cli() + " info /nonexistent/m.onnx"), {"/nonexistent/m.onnx"});
}

TEST(BadInput, GraphWithCycle) {
  ModelBuilder b;
  b.input("x", {1}).output("b");
  b.node("Add", {"x", "b"}, {"a"}, "first");
  b.node("Relu", {"a"}, {"b"}, "second");
  std::string path = b.save(tmp("cycle.onnx"));
  expect_user_error(run_command(cli() + " info " + path), {path, "cycle"});
}

TEST(BadInput, DanglingInput) {
  ModelBuilder b;
  b.input("x", {1}).output("y");
  b.node("Add", {"x", "ghost"}, {"y"}, "adder");
  std::string path = b.save(tmp("dangling.onnx"));
  expect_user_error(run_command(cli() + " info " + path), {path, "adder", "ghost"});
}

// A scalar input that holds no value (CumSum's axis as an empty tensor) is the model's fault:
// one line naming the node, exit 2 (it was an uncaught std::out_of_range, exit 1).
TEST(BadInput, EmptyScalarInputNamesTheNode) {
  ModelBuilder b(13);
  b.input("x", {1, 4}).output("y", {1, 4});
  b.initializer_i64("axis", {0}, {});
  b.node("CumSum", {"x", "axis"}, {"y"}, "cumsum");
  std::string path = b.save(tmp("cumsum_empty_axis.onnx"));
  expect_run_refused(path, "cumsum", {1, 4}, {path, "cumsum", "axis"});
}

// A sampling_ratio (or a box) that would take forever is refused, not run.
TEST(BadInput, RoiAlignWithEndlessSamplingIsRefused) {
  ModelBuilder b(16);
  b.input("x", {1, 1, 4, 4}).output("y");
  b.initializer("rois", {1, 4}, {0, 0, 3, 3});
  b.initializer_i64("batch", {1}, {0});
  auto& n = b.node("RoiAlign", {"x", "rois", "batch"}, {"y"}, "roi");
  ModelBuilder::attr_int(n, "sampling_ratio", 1000000);
  std::string path = b.save(tmp("roialign_endless.onnx"));
  expect_run_refused(path, "roialign", {1, 1, 4, 4}, {path, "roi", "4096 samples"});
}

// Found by mutating models that hold this session's ops (exit 1 or a segfault before): an op
// used below the opset that introduced it, an opset-18 op missing inputs (libonnx 1.12 has no
// schema for it), and a DepthToSpace whose channels do not split into blocks (ATen's reshape
// error is a std::runtime_error, not a c10::Error).
TEST(BadInput, MutatedNewOpsAreRefusedByName) {
  {
    ModelBuilder b(11);
    b.input("x", {3, 4}).output("y", {3, 4});
    b.node("Trilu", {"x"}, {"y"}, "tri");
    std::string path = b.save(tmp("trilu_op11.onnx"));
    expect_user_error(run_command(cli() + " info " + path), {path, "tri", "does not exist at opset 11", "14"});
  }
  {
    // The same for an op newer than libonnx's schemas (CenterCropPad is opset 18).
    ModelBuilder b(13);
    b.input("x", {3, 4}).output("y");
    b.initializer("shape", {1}, {2});
    b.node("CenterCropPad", {"x", "shape"}, {"y"}, "ccp");
    std::string path = b.save(tmp("centercroppad_op13.onnx"));
    expect_user_error(run_command(cli() + " info " + path), {path, "ccp", "does not exist at opset 13", "18"});
  }
  {
    ModelBuilder b(18);
    b.input("x", {1, 12, 8}).output("y");
    b.node("Col2Im", {"x"}, {"y"}, "c2i");
    std::string path = b.save(tmp("col2im_one_input.onnx"));
    expect_user_error(run_command(cli() + " info " + path), {path, "c2i", "takes 3 or more"});
  }
  {
    ModelBuilder b(13);
    b.input("x", {1, 8, 2, 3}).output("y");
    auto& n = b.node("DepthToSpace", {"x"}, {"y"}, "d2s");
    ModelBuilder::attr_int(n, "blocksize", 7);
    std::string path = b.save(tmp("d2s_bad_blocks.onnx"));
    expect_run_refused(path, "d2s", {1, 8, 2, 3}, {path, "d2s", "blocksize"});
  }
}

TEST(BadInput, UnsupportedOpNamesNodeTypeAndOpset) {
  ModelBuilder b(13);
  b.input("x", {1, 4, 4}).output("y");
  b.node("RandomUniformLike", {"x"}, {"y"}, "rand");
  std::string path = b.save(tmp("unsupported.onnx"));
  // info lists it and succeeds; run refuses with one line.
  auto info = run_command(cli() + " info " + path);
  EXPECT_EQ(info.status, 0);
  EXPECT_NE(info.output.find("RandomUniformLike"), std::string::npos);
  expect_run_refused(path, "unsupported", {1, 4, 4}, {path, "rand", "RandomUniformLike", "opset 13"});
}

// A node with fewer inputs than ONNX's schema requires (found by mutating an opset-18 model:
// ReduceMean with no input crashed the kernel) is refused at import, naming the node.
TEST(BadInput, MissingRequiredInputIsNamed) {
  ModelBuilder b(13);
  b.input("x", {1, 4}).output("y");
  b.node("ReduceMean", {}, {"y"}, "rm");
  std::string path = b.save(tmp("no_inputs.onnx"));
  expect_user_error(run_command(cli() + " info " + path), {path, "rm", "has 0 inputs", "ReduceMean takes 1"});
  ModelBuilder c(13);
  c.input("x", {1, 4}).output("y");
  c.node("Gemm", {"x", ""}, {"y"}, "gemm_no_b");
  std::string path2 = c.save(tmp("empty_required.onnx"));
  expect_user_error(run_command(cli() + " info " + path2), {path2, "gemm_no_b", "required input 1 (B) is empty"});
  // Checked before libonnx's shape inference, whose MaxUnpool function reads the indices
  // without looking (a segfault found by fuzzing).
  ModelBuilder u(11);
  u.input("x", {1, 1, 2, 2}).output("y");
  ModelBuilder::attr_ints(u.node("MaxUnpool", {"x", ""}, {"y"}, "unpool"), "kernel_shape", {2, 2});
  std::string path3 = u.save(tmp("unpool_no_indices.onnx"));
  expect_user_error(run_command(cli() + " info " + path3), {path3, "unpool", "required input 1 (I) is empty"});
}

// Constant ops are computed at import (fold-constants): when the model's own constants cannot be
// combined, that is the model's error, named by node (found by mutation: a GatherND of scalars,
// and ATen's MatMul shape check reported as an internal error).
TEST(BadInput, ConstantsTheModelCannotCombineAreItsError) {
  ModelBuilder b(13);
  b.input("x", {2, 5}).output("y");
  b.initializer("a", {2, 3}, std::vector<float>(6, 1.f));
  b.initializer("b", {4, 5}, std::vector<float>(20, 1.f));
  b.node("MatMul", {"a", "b"}, {"c"}, "mm");
  b.node("Add", {"x", "c"}, {"y"}, "add");
  std::string path = b.save(tmp("fold_matmul.onnx"));
  expect_user_error(run_command(cli() + " info " + path),
                    {path, "fold-constants", "'mm' (MatMul)", "cannot be multiplied"});
  ModelBuilder g(13);
  g.input("x", {1}).output("y");
  g.initializer("s", {}, {1.f});
  g.initializer_i64("i", {}, {0});
  g.node("GatherND", {"s", "i"}, {"t"}, "gnd");
  g.node("Add", {"x", "t"}, {"y"}, "add");
  std::string path2 = g.save(tmp("fold_gathernd.onnx"));
  expect_user_error(run_command(cli() + " info " + path2), {path2, "'gnd' (GatherND)", "rank >= 1"});
}

// A class index outside the scores is the data's error (ATen would read out of bounds or abort).
TEST(BadInput, LossTargetOutsideTheClassesIsNamed) {
  ModelBuilder b(13);
  b.input("x", {2, 3}).output("loss");
  b.initializer_i64("target", {2}, {0, 5});
  b.node("NegativeLogLikelihoodLoss", {"x", "target"}, {"loss"}, "nll");
  std::string path = b.save(tmp("nll_target.onnx"));
  std::string in = write_input("x23.npy", Tensor(DType::Float32, {2, 3}));
  expect_user_error(run_command(cli() + " run " + path + " -i " + in + " -o " + tmp("nll_out.npz")),
                    {"'nll' (NegativeLogLikelihoodLoss)", "a target is outside [0, 3)"});
}

TEST(BadInput, UnsupportedAttributeValue) {
  ModelBuilder b(13);
  b.input("x", {1, 1, 2, 2}).output("y");
  b.initializer("scales", {4}, {1, 1, 2, 2});
  auto& n = b.node("Resize", {"x", "", "scales"}, {"y"}, "up");
  auto* a = n.add_attribute();
  a->set_name("coordinate_transformation_mode");
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s("half_pixel_centers");  // TensorFlow's name, not an ONNX mode
  std::string path = b.save(tmp("bad_mode_resize.onnx"));
  std::string in = write_input("x1122.npy", Tensor(DType::Float32, {1, 1, 2, 2}));
  expect_user_error(run_command(cli() + " run " + path + " -i " + in + " -o " + tmp("bad_mode_resize_out.npz")),
                    {"up", "coordinate_transformation_mode 'half_pixel_centers'"});
  // tf_crop_and_resize runs, but only with its roi.
  a->set_s("tf_crop_and_resize");
  std::string crop = b.save(tmp("crop_resize.onnx"));
  expect_user_error(run_command(cli() + " run " + crop + " -i " + in + " -o " + tmp("crop_resize_out.npz")),
                    {"up", "tf_crop_and_resize needs a roi of 8 values"});
}

TEST(BadInput, BlockedQuantizationThatDoesNotFitIsNamed) {
  // Opset 21: a blocked scale needs ceil(18 / 4) = 5 rows for an [18, 6] weight.
  ModelBuilder b(21);
  b.input("x", {1, 18}).output("y");
  b.initializer("w", {18, 6}, std::vector<float>(108, 0.5f));
  b.initializer("w_s", {4, 6}, std::vector<float>(24, 0.1f));
  auto& q = b.node("QuantizeLinear", {"w", "w_s"}, {"w_q"}, "quantize_weight");
  ModelBuilder::attr_int(q, "axis", 0);
  ModelBuilder::attr_int(q, "block_size", 4);
  ModelBuilder::attr_int(q, "output_dtype", 22);  // int4
  b.node("Identity", {"x"}, {"y"});
  std::string in = write_input("x118.npy", Tensor(DType::Float32, {1, 18}));
  expect_user_error(
      run_command(cli() + " run " + b.save(tmp("bad_block.onnx")) + " -i " + in + " -o " + tmp("bad_block.npz")),
      {"quantize_weight", "[4, 6] does not fit input [18, 6] with block_size 4"});
  // uint16 codes: no ATen type to hold them.
  ModelBuilder u(21);
  u.input("x", {1, 18}).output("y");
  u.initializer("s", {}, {0.1f});
  auto& q16 = u.node("QuantizeLinear", {"x", "s"}, {"q"}, "to_uint16");
  ModelBuilder::attr_int(q16, "output_dtype", 4);  // uint16
  u.node("DequantizeLinear", {"q", "s"}, {"y"});
  expect_user_error(
      run_command(cli() + " run " + u.save(tmp("uint16_q.onnx")) + " -i " + in + " -o " + tmp("uint16_q.npz")),
      {"to_uint16", "uint16 codes are not supported"});
  // A cast to int4 would keep int8 values in a 4-bit tensor: refused.
  ModelBuilder c(21);
  c.input("x", {1, 18}).output("y");
  auto& cast = c.node("Cast", {"x"}, {"c"}, "to_int4");
  ModelBuilder::attr_int(cast, "to", 22);
  ModelBuilder::attr_int(c.node("Cast", {"c"}, {"y"}, "back"), "to", 1);
  expect_user_error(
      run_command(cli() + " run " + c.save(tmp("cast_int4.onnx")) + " -i " + in + " -o " + tmp("cast_int4.npz")),
      {"to_int4", "Cast to int4"});
}

TEST(BadInput, WrongInputShapeAndDtype) {
  std::string model = fixture("models/resnet_style_op13.onnx");
  std::string out = tmp("shape_out.npz");
  fs::remove(out);
  std::string bad_shape = write_input("small.npy", Tensor(DType::Float32, {1, 3, 32, 32}));
  expect_user_error(run_command(cli() + " run " + model + " -i " + bad_shape + " -o " + out),
                    {"input 'input'", "[1,3,32,32]", "[?,3,64,64]"});
  std::string bad_type = write_input("f64.npy", Tensor(DType::Float64, {1, 3, 64, 64}));
  expect_user_error(run_command(cli() + " run " + model + " -i " + bad_type + " -o " + out), {"float64", "float32"});
  EXPECT_FALSE(fs::exists(out));
}

TEST(Cli, RunWritesNpzWithOutputNames) {
  std::string out = tmp("ok.npz");
  auto r = run_command(cli() + " run " + fixture("models/detection_head_op13.onnx") + " -i " +
                       fixture("models/detection_head_input.npy") + " -o " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  auto tensors = read_npz(out);
  ASSERT_EQ(tensors.size(), 1u);
  EXPECT_EQ(tensors[0].first, "output");
  EXPECT_EQ(tensors[0].second.shape(), (Shape{2, 3840, 9}));
}
}  // namespace

namespace {
TEST(Cli, InfoReportsOpsParametersAndTypes) {
  // y = x @ W + B with W [2,2] (Constant node) and B [2]: 6 parameters, 24 bytes.
  ModelBuilder b;
  b.input("x", {-1, 2}).output("y");
  ModelBuilder::attr_tensor(b.node("Constant", {}, {"W"}), "value", {2, 2}, {1, 2, 3, 4});
  b.initializer("B", {2}, {10, 20});
  b.node("MatMul", {"x", "W"}, {"xw"});
  b.node("Add", {"xw", "B"}, {"y"});
  std::string path = b.save(tmp("info.onnx"));
  auto r = run_command(cli() + " info --json " + path);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"parameters\": 6"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"parameter_bytes\": 24"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"MatMul\": 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("float32 [batch,2]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"unsupported\": []"), std::string::npos) << r.output;
}
}  // namespace

namespace {
TEST(ResourceFaults, AHugeDeclaredInitializerIsRefusedBeforeAllocating) {
  // 10^12 float weights declared, none stored: refused by name from the counts (was an internal
  // error, std::bad_alloc, exit 1, after trying to allocate 4 TB); a shape past 2^40 elements too.
  for (const auto& [dims, says] : std::vector<std::pair<std::vector<int64_t>, std::string>>{
           {{1000000, 1000000}, "tensor 'W' has 0 values, shape [1000000,1000000] needs 1000000000000"},
           {{1LL << 32, 1LL << 32}, "declares shape [4294967296,4294967296], more than 2^40 elements"}}) {
    ModelBuilder b;
    b.input("x", {1, 1000000}).output("y");
    b.initializer("W", dims, {});
    b.node("MatMul", {"x", "W"}, {"y"}, "matmul");
    std::string path = b.save(tmp("huge_initializer.onnx"));
    expect_user_error(run_command(cli() + " check " + path + " -t esp32s3"), {path, says});
  }
}

TEST(ResourceFaults, AFileSizeLimitFailsTheWriteAndLeavesNoPartialFile) {
  // ulimit -f 16 (KiB): the first file the export writes, model.espdl (about 42 KiB), does not
  // fit. The write fails with one line naming the file (not SIGXFSZ killing the process with a
  // half-written temporary, as before), the temporary is removed, and the output directory this
  // run created is removed again: nothing partial is left.
  std::string out = tmp("fsize_out");
  fs::remove_all(out);
  auto r = run_command("(ulimit -f 16; " + cli() + " quantize " + fixture("models/resnet_style_op13.onnx") +
                       " -t esp32s3 -c " + fixture("models/resnet_style_input.npy") +
                       " --calib-steps 1 --batch-size 2 -o " + out + " >/dev/null)");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_EQ(lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find("model.espdl: cannot write file (File too large)"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out)) << "the run's output directory was left behind";
  fs::remove_all(out);
}
}  // namespace
