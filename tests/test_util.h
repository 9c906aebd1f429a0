// Helpers shared by tests: build small ONNX models in code, run the CLI, locate fixtures.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <cstdio>
#include <limits>
#include <string>
#include <vector>

namespace edgequant::testing {

inline std::string fixture(const std::string& rel) { return std::string(EQ_SOURCE_DIR) + "/tests/fixtures/" + rel; }

// Two float32 results of the same function through different kernels (oneDNN or BLAS choose
// their blocking, hence the summation order, per CPU generation, problem shape and post-ops):
// equal within `ulps` units in the last place of the result's scale (max |want|), the bound that
// holds on any x86-64 CPU where bitwise equality does not. Same shapes required.
inline ::testing::AssertionResult within_ulps(const at::Tensor& got, const at::Tensor& want, double ulps) {
  if (got.sizes() != want.sizes())
    return ::testing::AssertionFailure() << "shape " << got.sizes() << " vs " << want.sizes();
  at::Tensor g = got.to(at::kDouble), w = want.to(at::kDouble);
  double scale = std::max(w.abs().max().item<double>(), 1e-30);
  double diff = (g - w).abs().max().item<double>();
  double bound = ulps * std::numeric_limits<float>::epsilon() * scale;
  if (diff <= bound) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max |diff| " << diff << " = "
                                       << diff / (std::numeric_limits<float>::epsilon() * scale) << " ULPs of max |y| "
                                       << scale << " (bound " << ulps << ")";
}

// A tiny ModelProto builder in the spirit of ONNX Runtime's graph_transform_test_builder.
class ModelBuilder {
 public:
  explicit ModelBuilder(int64_t opset = 13) {
    model_.set_ir_version(8);
    auto* o = model_.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    model_.mutable_graph()->set_name("test");
  }
  ModelBuilder& input(const std::string& name, const std::vector<int64_t>& shape, int elem = 1) {
    value_info(model_.mutable_graph()->add_input(), name, shape, elem);
    return *this;
  }
  ModelBuilder& output(const std::string& name, const std::vector<int64_t>& shape = {}, int elem = 1) {
    value_info(model_.mutable_graph()->add_output(), name, shape, elem);
    return *this;
  }
  ModelBuilder& initializer(const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& v) {
    auto* t = model_.mutable_graph()->add_initializer();
    fill(t, name, shape, v);
    return *this;
  }
  ModelBuilder& initializer_i32(const std::string& name, const std::vector<int64_t>& shape,
                                const std::vector<int32_t>& v) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT32);
    for (auto d : shape) t->add_dims(d);
    for (auto x : v) t->add_int32_data(x);
    return *this;
  }
  ModelBuilder& initializer_i64(const std::string& name, const std::vector<int64_t>& shape,
                                const std::vector<int64_t>& v) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    for (auto d : shape) t->add_dims(d);
    for (auto x : v) t->add_int64_data(x);
    return *this;
  }
  onnx::NodeProto& node(const std::string& type, const std::vector<std::string>& ins,
                        const std::vector<std::string>& outs, const std::string& name = "") {
    auto* n = model_.mutable_graph()->add_node();
    n->set_op_type(type);
    n->set_name(name.empty() ? type + std::to_string(model_.graph().node_size()) : name);
    for (const auto& i : ins) n->add_input(i);
    for (const auto& o : outs) n->add_output(o);
    return *n;
  }
  static void attr_int(onnx::NodeProto& n, const std::string& key, int64_t v) {
    auto* a = n.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attr_ints(onnx::NodeProto& n, const std::string& key, const std::vector<int64_t>& v) {
    auto* a = n.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::INTS);
    for (auto x : v) a->add_ints(x);
  }
  static void attr_float(onnx::NodeProto& n, const std::string& key, float v) {
    auto* a = n.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static void attr_floats(onnx::NodeProto& n, const std::string& key, const std::vector<float>& v) {
    auto* a = n.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::FLOATS);
    for (auto x : v) a->add_floats(x);
  }
  static void attr_tensor(onnx::NodeProto& n, const std::string& key, const std::vector<int64_t>& shape,
                          const std::vector<float>& v) {
    auto* a = n.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::TENSOR);
    fill(a->mutable_t(), "", shape, v);
  }
  onnx::ModelProto& model() { return model_; }
  // Atomic (temp file, then rename): CTest runs test cases in parallel processes, and two of them
  // may save the same fixture path while a third reads it.
  std::string save(const std::string& path) {
    std::string tmp = path + ".tmp" + std::to_string(::getpid());
    FILE* f = std::fopen(tmp.c_str(), "wb");
    std::string bytes = model_.SerializeAsString();
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
    std::rename(tmp.c_str(), path.c_str());
    return path;
  }
  static void fill(onnx::TensorProto* t, const std::string& name, const std::vector<int64_t>& shape,
                   const std::vector<float>& v) {
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : shape) t->add_dims(d);
    for (auto x : v) t->add_float_data(x);
  }

 private:
  static void value_info(onnx::ValueInfoProto* vi, const std::string& name, const std::vector<int64_t>& shape,
                         int elem) {
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem);
    auto* s = tt->mutable_shape();
    for (auto d : shape) {
      auto* dim = s->add_dim();
      if (d >= 0)
        dim->set_dim_value(d);
      else
        dim->set_dim_param("batch");
    }
  }
  onnx::ModelProto model_;
};

struct CommandResult {
  int status;
  std::string output;  // stdout + stderr
};

inline CommandResult run_command(const std::string& cmd) {
  CommandResult r{0, ""};
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

inline std::string cli() { return EQ_CLI_PATH; }

// LibTorch's thread count for one scope. Test binaries start with one intra-op thread (no
// executor set it), so code that splits work between threads needs this to be exercised.
class ScopedThreads {
 public:
  explicit ScopedThreads(int n) : saved_(at::get_num_threads()) { at::set_num_threads(n); }
  ~ScopedThreads() { at::set_num_threads(saved_); }

 private:
  int saved_;
};

}  // namespace edgequant::testing
