// `.espdl` encoding and decoding (see espdl.h) through the flatc-generated espdl_generated.h.
#include "deploy/espdl.h"

#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include "core/files.h"
#include "deploy/espdl_generated.h"
#include "edgequant/error.h"
#include "ir/op_traits.h"
#include "target/target.h"

namespace edgequant::deploy {

using runtime::IntGraph;
using runtime::IntNode;
using runtime::IntTensor;
using runtime::ValueInfo;

namespace {
constexpr size_t kHeader = 16;
constexpr char kMagic[4] = {'E', 'D', 'L', '2'};
const char* kLayoutPrefix = "layout ==> ";
const std::string kPermKey = "edgequant.source_perm.";

size_t element_bytes(DType d) {
  size_t s = dtype_size(d);
  return s ? s : 1;
}

// Little-endian bytes of a tensor's values in the given element order.
std::vector<uint8_t> tensor_bytes(const IntTensor& t, const std::vector<int64_t>* order) {
  size_t eb = element_bytes(t.dtype);
  int64_t n = t.numel();
  std::vector<uint8_t> out(size_t(n) * eb);
  for (int64_t i = 0; i < n; ++i) {
    int64_t src = order ? (*order)[size_t(i)] : i;
    uint8_t* dst = out.data() + size_t(i) * eb;
    if (t.is_float()) {
      float f = t.floats[size_t(src)];
      std::memcpy(dst, &f, 4);
    } else {
      int64_t v = t.ints[size_t(src)];
      for (size_t b = 0; b < eb; ++b) dst[b] = static_cast<uint8_t>((static_cast<uint64_t>(v) >> (8 * b)) & 0xff);
    }
  }
  return out;
}

int64_t read_int(const uint8_t* p, DType d) {
  switch (d) {
    case DType::Int8:
      return int8_t(p[0]);
    case DType::UInt8:
      return p[0];
    case DType::Int16:
      return int16_t(uint16_t(p[0] | (p[1] << 8)));
    case DType::UInt16:
      return uint16_t(p[0] | (p[1] << 8));
    case DType::Int32: {
      uint32_t v = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
      return int32_t(v);
    }
    default: {
      uint64_t v = 0;
      for (int b = 0; b < 8; ++b) v |= uint64_t(p[b]) << (8 * b);
      return int64_t(v);
    }
  }
}

struct Filter {
  bool gemm = false, depthwise = false, one_d = false;  // one_d: a 1-D Conv's OIW weight
};

// A byte-exact identity of an attribute (name, type, value) for sharing its table; "" for kinds
// never written.
std::string attribute_key(const std::string& name, const Attribute& a) {
  std::string k = name + '\0' + std::to_string(a.index()) + '\0';
  auto bits = [](float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return std::to_string(u);
  };
  if (const auto* i = std::get_if<int64_t>(&a)) return k + std::to_string(*i);
  if (const auto* f = std::get_if<float>(&a)) return k + bits(*f);
  if (const auto* s = std::get_if<std::string>(&a)) return k + *s;
  if (const auto* is = std::get_if<std::vector<int64_t>>(&a)) {
    for (int64_t x : *is) k += std::to_string(x) + ",";
    return k;
  }
  if (const auto* fs = std::get_if<std::vector<float>>(&a)) {
    for (float x : *fs) k += bits(x) + ",";
    return k;
  }
  if (const auto* ss = std::get_if<std::vector<std::string>>(&a)) {
    for (const auto& x : *ss) k += std::to_string(x.size()) + ":" + x;
    return k;
  }
  return "";
}

// Which initializers are Conv/Gemm filters, and of what kind.
std::map<std::string, Filter> filters_of(const IntGraph& p) {
  std::map<std::string, Filter> f;
  for (const IntNode& n : p.nodes) {
    if ((!n.is(OpType::Conv) && !n.is(OpType::Gemm)) || n.inputs.size() < 2) continue;
    const IntTensor* w = p.initializer(n.inputs[1]);
    if (!w || w->is_float()) continue;
    Filter k;
    k.gemm = n.is(OpType::Gemm);
    k.one_d = !k.gemm && w->shape.size() == 3;
    k.depthwise = !k.gemm && n.attr_int("group", 1) > 1 && (w->shape.size() == 4 || k.one_d) && w->shape[1] == 1;
    f[n.inputs[1]] = k;
  }
  return f;
}

// A filter layout string as ESP-PPQ writes it in the doc_string. Blocked: "(N/16)HWC16" (since
// 2025-04) or "N16HWC16" (before; the same byte order), 8 for int16, "_UNALIGNED" when N is not a
// multiple; 1-D filters drop the H. Plain: "NHWC" (Conv, C targets) and "HWCN" (depthwise); the
// 1-D plain spellings "NWC"/"WCN" are taken by analogy (not seen in a file yet).
struct FilterLayout {
  bool known = false, one_d = false;
  int block = 0;
};

FilterLayout parse_filter_layout(std::string s) {
  FilterLayout f;
  const std::string unaligned = "_UNALIGNED";
  if (s.size() > unaligned.size() && s.compare(s.size() - unaligned.size(), unaligned.size(), unaligned) == 0)
    s.resize(s.size() - unaligned.size());
  for (const char* plain : {"NHWC", "HWCN", "NWC", "WCN"})
    if (s == plain) {
      f.known = true;
      f.one_d = s.size() == 3;
      return f;
    }
  for (int a : {16, 8}) {
    std::string b = std::to_string(a);
    for (const std::string& head : {"(N/" + b + ")", "N" + b})
      for (bool one_d : {false, true})
        if (s == head + (one_d ? "WC" : "HWC") + b) {
          f.known = true;
          f.one_d = one_d;
          f.block = a;
          return f;
        }
  }
  return f;
}

// Stored dims of a filter: Conv [kh, kw, C, N], depthwise [kh, kw, N, 1], Gemm [1, 1, C, N];
// 1-D Conv [kw, C, N], depthwise [kw, N, 1].
Shape wire_dims(const Shape& s, const Filter& f) {
  if (f.gemm) return {1, 1, s[0], s[1]};
  if (f.one_d) return f.depthwise ? Shape{s[2], s[0], 1} : Shape{s[2], s[1], s[0]};
  if (f.depthwise) return {s[2], s[3], s[0], 1};
  return {s[2], s[3], s[1], s[0]};
}
}  // namespace

int filter_block(const std::map<int, int>& blocks, DType weight) {
  auto it = blocks.find(weight == DType::Int16 ? 16 : 8);
  return it == blocks.end() ? 0 : it->second;
}

std::string filter_layout_name(int64_t n, bool depthwise, int block, bool one_d) {
  if (block == 0) return std::string(depthwise ? (one_d ? "WCN" : "HWCN") : (one_d ? "NWC" : "NHWC"));
  std::string b = std::to_string(block);
  return "(N/" + b + ")" + (one_d ? "WC" : "HWC") + b + (n % block ? "_UNALIGNED" : "");
}

std::vector<int64_t> filter_wire_order(const Shape& s, bool depthwise, bool gemm, int block) {
  // Logical element index of W[n][c][h][w] (Conv OIHW; depthwise c = 0; Gemm [C, N]: h = w = 0).
  int64_t N = gemm ? s[1] : s[0], C = gemm ? s[0] : s[1], H = gemm ? 1 : s[2], W = gemm ? 1 : s[3];
  auto at = [&](int64_t n, int64_t c, int64_t h, int64_t w) {
    return gemm ? c * N + n : ((n * C + c) * H + h) * W + w;
  };
  std::vector<int64_t> order;
  order.reserve(size_t(N * C * H * W));
  int64_t a = block, aligned = block ? N / block * block : 0;
  if (depthwise) {
    for (int64_t b = 0; b < aligned / std::max<int64_t>(a, 1); ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w)
          for (int64_t j = 0; j < a; ++j) order.push_back(at(b * a + j, 0, h, w));
    for (int64_t h = 0; h < H; ++h)  // the remainder (everything on C targets): H-W-N
      for (int64_t w = 0; w < W; ++w)
        for (int64_t n = aligned; n < N; ++n) order.push_back(at(n, 0, h, w));
    return order;
  }
  for (int64_t b = 0; b < aligned / std::max<int64_t>(a, 1); ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t w = 0; w < W; ++w)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t j = 0; j < a; ++j) order.push_back(at(b * a + j, c, h, w));
  for (int64_t n = aligned; n < N; ++n)  // the remainder (everything on C targets): N-H-W-C
    for (int64_t h = 0; h < H; ++h)
      for (int64_t w = 0; w < W; ++w)
        for (int64_t c = 0; c < C; ++c) order.push_back(at(n, c, h, w));
  return order;
}

std::map<std::string, Attribute> espdl_attributes(const IntGraph& p, const IntNode& n) {
  std::map<std::string, Attribute> all = n.attrs;  // sorted by key: quant_type takes its place
  if (!all.count("quant_type")) {
    const std::string& v = n.is(OpType::DequantizeLinear) && !n.inputs.empty() ? n.inputs[0] : n.outputs.at(0);
    DType d = p.value(v).dtype;
    all["quant_type"] = std::string(d == DType::Int8 ? "S8" : d == DType::Int16 ? "S16" : "F32");
  }
  return all;
}

namespace {
// Writes one integer program as an .espdl FlatBuffer. Repeated content is written once and
// referenced (FlatBuffers offsets may be shared): names, exponent lists, dimensions, types and
// attributes such as quant_type="S8" on every node. The order of the builder calls is the
// file's byte order: keep it.
class EspdlWriter {
 public:
  explicit EspdlWriter(const IntGraph& p) : p_(p), fbb_(1 << 16), filters_(filters_of(p)) {}

  std::string write() {
    // Nodes, attributes sorted by key (std::map order), as ESP-PPQ writes them.
    std::vector<flatbuffers::Offset<espdl::Node>> nodes;
    for (const IntNode& n : p_.nodes) {
      std::vector<flatbuffers::Offset<espdl::Attribute>> attrs = attributes(n);
      auto in = fbb_.CreateVectorOfStrings(n.inputs);
      auto out = fbb_.CreateVectorOfStrings(n.outputs);
      nodes.push_back(espdl::CreateNode(fbb_, in, out, str(n.name), str(n.op_type), 0, fbb_.CreateVector(attrs)));
    }
    // Initializers: lookup tables first, then every parameter.
    std::set<std::string> luts;
    for (const IntNode& n : p_.nodes) {
      std::string l = n.attr_string("lut", "");
      if (!l.empty()) luts.insert(l);
    }
    std::vector<flatbuffers::Offset<espdl::Tensor>> inits;
    for (const std::string& l : luts) inits.push_back(tensor(l, p_.initializers.at(l), false));
    for (const auto& [name, t] : p_.initializers)
      if (!luts.count(name)) inits.push_back(tensor(name, t, true));
    std::vector<flatbuffers::Offset<espdl::ValueInfo>> inputs, outputs, infos;
    for (const auto& i : p_.inputs) inputs.push_back(value_info(i));
    for (const auto& o : p_.outputs) outputs.push_back(value_info(o));
    for (const auto& [name, _] : p_.values) infos.push_back(value_info(name));
    std::vector<flatbuffers::Offset<espdl::Tensor>> tin, tout;
    for (const auto& [name, t] : p_.test_inputs) tin.push_back(tensor(name, t, false));
    for (const auto& [name, t] : p_.test_outputs) tout.push_back(tensor(name, t, false));
    auto graph =
        espdl::CreateGraph(fbb_, fbb_.CreateVector(nodes), str(p_.name), fbb_.CreateVector(inits), 0,
                           fbb_.CreateVector(inputs), fbb_.CreateVector(outputs), fbb_.CreateVector(infos), 0,
                           tin.empty() ? 0 : fbb_.CreateVector(tin), tout.empty() ? 0 : fbb_.CreateVector(tout));
    // The layouts of graph inputs/outputs relative to the source ONNX (so `edgequant run` takes and
    // gives the source layout); the runtime ignores metadata it does not ask for.
    std::map<std::string, std::string> metadata = p_.metadata;
    for (const auto& names : {p_.inputs, p_.outputs})
      for (const std::string& n : names) {
        const auto& perm = p_.value(n).perm;
        if (perm.empty()) continue;
        std::string v;
        for (size_t i = 0; i < perm.size(); ++i) v += (i ? "," : "") + std::to_string(perm[i]);
        metadata[kPermKey + n] = v;
      }
    std::vector<flatbuffers::Offset<espdl::StringStringEntry>> meta;
    for (const auto& [k, v] : metadata) meta.push_back(espdl::CreateStringStringEntry(fbb_, str(k), str(v)));
    auto opsets = fbb_.CreateVector(std::vector<flatbuffers::Offset<espdl::OperatorSetId>>{});
    auto model = espdl::CreateModel(fbb_, 8, opsets, 0, 0, 0, 0, 0, graph, meta.empty() ? 0 : fbb_.CreateVector(meta));
    fbb_.Finish(model);
    std::string bytes(kHeader, '\0');
    std::memcpy(bytes.data(), kMagic, 4);
    uint32_t len = fbb_.GetSize();
    for (int b = 0; b < 4; ++b) bytes[size_t(8 + b)] = static_cast<char>((len >> (8 * b)) & 0xff);
    bytes.append(reinterpret_cast<const char*>(fbb_.GetBufferPointer()), len);
    return bytes;
  }

 private:
  flatbuffers::Offset<flatbuffers::String> str(const std::string& s) { return fbb_.CreateSharedString(s); }
  flatbuffers::Offset<flatbuffers::Vector<int64_t>> ints(const std::vector<int64_t>& v) {
    auto it = int_vectors_.find(v);
    return it != int_vectors_.end() ? it->second : int_vectors_[v] = fbb_.CreateVector(v);
  }
  flatbuffers::Offset<flatbuffers::Vector<int64_t>> exps(const std::vector<int>& e) {
    std::vector<int64_t> v(e.begin(), e.end());
    if (v.empty()) v = {0};
    return ints(v);
  }

  // A tensor; filters (with_layout) in the target's blocked wire order, named in doc_string.
  flatbuffers::Offset<espdl::Tensor> tensor(const std::string& name, const IntTensor& t, bool with_layout) {
    Shape dims = t.shape;
    std::string doc;
    std::vector<int64_t> order;
    auto f = filters_.find(name);
    bool is_filter = with_layout && f != filters_.end();
    if (is_filter) {
      int block = filter_block(p_.filter_blocks, t.dtype);
      Shape logical = f->second.one_d ? Shape{t.shape[0], t.shape[1], 1, t.shape[2]} : t.shape;
      order = filter_wire_order(logical, f->second.depthwise, f->second.gemm, block);
      dims = wire_dims(t.shape, f->second);
      int64_t n = f->second.gemm ? t.shape[1] : t.shape[0];
      doc = kLayoutPrefix + filter_layout_name(n, f->second.depthwise, block, f->second.one_d);
    }
    auto dims_off = ints(dims);
    auto name_off = str(name);
    auto doc_off = doc.empty() ? 0 : str(doc);
    flatbuffers::Offset<flatbuffers::Vector<const espdl::AlignedBytes*>> raw = 0;
    flatbuffers::Offset<flatbuffers::Vector<int64_t>> int64_data = 0;
    if (t.numel() == 0) {
      int64_data = ints({});
    } else {
      std::vector<uint8_t> bytes = tensor_bytes(t, is_filter ? &order : nullptr);
      std::vector<espdl::AlignedBytes> blocks((bytes.size() + 15) / 16);
      std::memset(static_cast<void*>(blocks.data()), 0, blocks.size() * sizeof(espdl::AlignedBytes));
      std::memcpy(static_cast<void*>(blocks.data()), bytes.data(), bytes.size());
      raw = fbb_.CreateVectorOfStructs(blocks.data(), blocks.size());
    }
    auto exp_off = exps(t.exponents);
    espdl::TensorBuilder tb(fbb_);
    tb.add_dims(dims_off);
    tb.add_data_type(static_cast<espdl::TensorDataType>(t.dtype));
    tb.add_name(name_off);
    if (!doc.empty()) tb.add_doc_string(doc_off);
    if (raw.o) tb.add_raw_data(raw);
    if (int64_data.o) tb.add_int64_data(int64_data);
    tb.add_exponents(exp_off);
    return tb.Finish();
  }

  flatbuffers::Offset<espdl::ValueInfo> value_info(const std::string& name) {
    const ValueInfo& vi = p_.value(name);
    auto key = std::make_pair(static_cast<int32_t>(vi.dtype), vi.shape);
    auto cached = type_cache_.find(key);
    flatbuffers::Offset<espdl::TypeInfo> type;
    if (cached != type_cache_.end()) {
      type = cached->second;
    } else {
      std::vector<flatbuffers::Offset<espdl::Dimension>> dims;
      for (int64_t d : vi.shape) {
        auto it = dim_cache_.find(d);
        if (it == dim_cache_.end())
          it = dim_cache_
                   .emplace(d, espdl::CreateDimension(
                                   fbb_, espdl::CreateDimensionValue(fbb_, espdl::DimensionValueType_VALUE, d)))
                   .first;
        dims.push_back(it->second);
      }
      auto shape = espdl::CreateTensorShape(fbb_, fbb_.CreateVector(dims));
      auto tt = espdl::CreateTensorTypeAndShape(fbb_, key.first, shape);
      type = type_cache_[key] = espdl::CreateTypeInfo(fbb_, espdl::TypeInfoValue_tensor_type, tt.Union());
    }
    return espdl::CreateValueInfo(fbb_, str(name), type, 0, exps({vi.dtype == DType::Float32 ? 0 : vi.exponent}));
  }

  std::vector<flatbuffers::Offset<espdl::Attribute>> attributes(const IntNode& n) {
    std::vector<flatbuffers::Offset<espdl::Attribute>> attrs;
    for (const auto& [key, a] : espdl_attributes(p_, n)) {
      std::string ckey = attribute_key(key, a);
      auto cached = attr_cache_.find(ckey);
      if (cached != attr_cache_.end()) {
        attrs.push_back(cached->second);
        continue;
      }
      auto name = str(key);
      if (const auto* i = std::get_if<int64_t>(&a)) {
        espdl::AttributeI v(*i);
        attrs.push_back(espdl::CreateAttribute(fbb_, name, 0, 0, espdl::AttributeType_INT, nullptr, &v));
      } else if (const auto* f = std::get_if<float>(&a)) {
        espdl::AttributeF v(*f);
        attrs.push_back(espdl::CreateAttribute(fbb_, name, 0, 0, espdl::AttributeType_FLOAT, &v));
      } else if (const auto* s = std::get_if<std::string>(&a)) {
        auto bytes = fbb_.CreateVector(reinterpret_cast<const uint8_t*>(s->data()), s->size());
        attrs.push_back(espdl::CreateAttribute(fbb_, name, 0, 0, espdl::AttributeType_STRING, nullptr, nullptr, bytes));
      } else if (const auto* is = std::get_if<std::vector<int64_t>>(&a)) {
        auto v = ints(*is);
        attrs.push_back(
            espdl::CreateAttribute(fbb_, name, 0, 0, espdl::AttributeType_INTS, nullptr, nullptr, 0, 0, 0, 0, 0, v));
      } else if (const auto* fs = std::get_if<std::vector<float>>(&a)) {
        auto v = fbb_.CreateVector(*fs);
        attrs.push_back(
            espdl::CreateAttribute(fbb_, name, 0, 0, espdl::AttributeType_FLOATS, nullptr, nullptr, 0, 0, 0, 0, v));
      } else if (const auto* ss = std::get_if<std::vector<std::string>>(&a)) {
        auto v = fbb_.CreateVectorOfStrings(*ss);
        attrs.push_back(espdl::CreateAttribute(fbb_, name, 0, 0, espdl::AttributeType_STRINGS, nullptr, nullptr, 0, 0,
                                               0, 0, 0, 0, v));
      }
      if (!ckey.empty() && !attrs.empty()) attr_cache_[ckey] = attrs.back();
    }
    return attrs;
  }

  const IntGraph& p_;
  flatbuffers::FlatBufferBuilder fbb_;
  std::map<std::string, Filter> filters_;
  std::map<std::vector<int64_t>, flatbuffers::Offset<flatbuffers::Vector<int64_t>>> int_vectors_;
  std::map<int64_t, flatbuffers::Offset<espdl::Dimension>> dim_cache_;
  std::map<std::pair<int32_t, Shape>, flatbuffers::Offset<espdl::TypeInfo>> type_cache_;
  std::map<std::string, flatbuffers::Offset<espdl::Attribute>> attr_cache_;
};
}  // namespace

std::string encode_espdl(const IntGraph& p) {
  for (const auto& [name, v] : p.values)
    if (v.scale > 0)
      fail(ErrorCode::Unsupported, "'" + name + "' has a float-scale grid: .espdl files hold power-of-two exponents");
  return EspdlWriter(p).write();
}

namespace {
IntTensor decode_tensor(const espdl::Tensor* t, const std::string& source) {
  IntTensor r;
  if (t->dims())
    for (int64_t d : *t->dims()) r.shape.push_back(d);
  r.dtype = static_cast<DType>(t->data_type());
  if (t->exponents())
    for (int64_t e : *t->exponents()) r.exponents.push_back(static_cast<int>(e));
  std::string name = t->name() ? t->name()->str() : "";
  int64_t n = 1;
  for (int64_t d : r.shape) {
    if (d < 0 || d > (int64_t(1) << 32) || (d > 0 && n > (int64_t(1) << 40) / d))
      fail(ErrorCode::InvalidModel, source + ": tensor '" + name + "' has impossible dims " + shape_str(r.shape));
    n *= d;
  }
  size_t eb = element_bytes(r.dtype);
  if (r.dtype != DType::Float32 && r.dtype != DType::Int8 && r.dtype != DType::Int16 && r.dtype != DType::Int32 &&
      r.dtype != DType::Int64 && r.dtype != DType::UInt8 && r.dtype != DType::UInt16)
    fail(ErrorCode::InvalidModel,
         source + ": tensor '" + name + "' has unsupported data type " + std::to_string(int(r.dtype)));
  const uint8_t* data = nullptr;
  size_t have = 0;
  if (t->raw_data() && t->raw_data()->size()) {
    data = reinterpret_cast<const uint8_t*>(t->raw_data()->Data());
    have = t->raw_data()->size() * 16;
  }
  if (data && have < size_t(n) * eb)
    fail(ErrorCode::InvalidModel, source + ": tensor '" + name + "' holds " + std::to_string(have) + " bytes, " +
                                      shape_str(r.shape) + " needs " + std::to_string(size_t(n) * eb));
  size_t typed = t->int64_data() ? t->int64_data()->size() : t->float_data() ? t->float_data()->size() : 0;
  if (!data && int64_t(typed) != n && n != 0)
    fail(ErrorCode::InvalidModel, source + ": tensor '" + name + "' has no data for " + shape_str(r.shape));
  if (r.is_float())
    r.floats.resize(size_t(n));
  else
    r.ints.resize(size_t(n));
  if (!data) {
    if (t->int64_data() && int64_t(t->int64_data()->size()) == n && !r.is_float()) {
      for (int64_t i = 0; i < n; ++i) r.ints[size_t(i)] = t->int64_data()->Get(flatbuffers::uoffset_t(i));
      return r;
    }
    if (t->float_data() && int64_t(t->float_data()->size()) == n && r.is_float()) {
      for (int64_t i = 0; i < n; ++i) r.floats[size_t(i)] = t->float_data()->Get(flatbuffers::uoffset_t(i));
      return r;
    }
    if (n == 0) return r;
    fail(ErrorCode::InvalidModel, source + ": tensor '" + name + "' has no data");
  }
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* p = data + size_t(i) * eb;
    if (r.is_float())
      std::memcpy(&r.floats[size_t(i)], p, 4);
    else
      r.ints[size_t(i)] = read_int(p, r.dtype);
  }
  return r;
}

Attribute decode_attribute(const espdl::Attribute* a, const std::string& source) {
  switch (a->attr_type()) {
    case espdl::AttributeType_INT:
      return a->i() ? a->i()->i() : int64_t(0);
    case espdl::AttributeType_FLOAT:
      return a->f() ? a->f()->f() : 0.f;
    case espdl::AttributeType_STRING:
      return a->s() ? std::string(reinterpret_cast<const char*>(a->s()->data()), a->s()->size()) : std::string();
    case espdl::AttributeType_INTS: {
      std::vector<int64_t> v;
      if (a->ints())
        for (int64_t x : *a->ints()) v.push_back(x);
      return v;
    }
    case espdl::AttributeType_FLOATS: {
      std::vector<float> v;
      if (a->floats())
        for (float x : *a->floats()) v.push_back(x);
      return v;
    }
    case espdl::AttributeType_STRINGS: {
      std::vector<std::string> v;
      if (a->strings())
        for (const auto* s : *a->strings()) v.push_back(s->str());
      return v;
    }
    default:
      fail(ErrorCode::InvalidModel, source + ": attribute '" + (a->name() ? a->name()->str() : "") +
                                        "' has unsupported type " + std::to_string(int(a->attr_type())));
  }
}

ValueInfo decode_value_info(const espdl::ValueInfo* v) {
  ValueInfo vi;
  if (v->exponents() && v->exponents()->size()) vi.exponent = static_cast<int>(v->exponents()->Get(0));
  const espdl::TypeInfo* t = v->value_info_type();
  const espdl::TensorTypeAndShape* tt = t ? t->value_as_tensor_type() : nullptr;
  if (tt) {
    vi.dtype = static_cast<DType>(tt->elem_type());
    if (tt->shape() && tt->shape()->dim())
      for (const auto* d : *tt->shape()->dim()) vi.shape.push_back(d->value() ? d->value()->dim_value() : -1);
  }
  return vi;
}
}  // namespace

IntGraph decode_espdl(const std::string& bytes, const std::string& source) {
  if (bytes.size() < kHeader || std::memcmp(bytes.data(), kMagic, 4) != 0)
    fail(ErrorCode::InvalidModel, source + ": not an .espdl file (no EDL2 header)");
  auto u32 = [&](size_t off) {
    uint32_t v = 0;
    for (int b = 0; b < 4; ++b) v |= uint32_t(uint8_t(bytes[off + size_t(b)])) << (8 * b);
    return v;
  };
  if (u32(4) != 0) fail(ErrorCode::Unsupported, source + ": encrypted .espdl files are not supported");
  uint32_t len = u32(8);
  if (len > bytes.size() - kHeader)
    fail(ErrorCode::InvalidModel, source + ": truncated (" + std::to_string(bytes.size() - kHeader) +
                                      " bytes after the header, " + std::to_string(len) + " declared)");
  // The FlatBuffer must start 16-byte aligned (the format's rule, and the verifier's for AlignedBytes).
  std::vector<uint64_t> aligned((len + 15) / 8 + 2);
  std::memcpy(aligned.data(), bytes.data() + kHeader, len);
  const uint8_t* buf = reinterpret_cast<const uint8_t*>(aligned.data());
  flatbuffers::Verifier verifier(buf, len, 64, 10000000);
  if (!espdl::VerifyModelBuffer(verifier))
    fail(ErrorCode::InvalidModel, source + ": the FlatBuffer fails verification (corrupted)");
  const espdl::Model* m = espdl::GetModel(buf);
  const espdl::Graph* g = m->graph();
  if (!g) fail(ErrorCode::InvalidModel, source + ": no graph");
  IntGraph p;
  p.name = g->name() ? g->name()->str() : "";
  if (m->metadata_props())
    for (const auto* e : *m->metadata_props())
      if (e->key()) p.metadata[e->key()->str()] = e->value() ? e->value()->str() : "";
  p.target = p.metadata.count("target") ? p.metadata["target"] : "";
  // The rounding is the target's. Espressif's toolchain records no target: ESP-DL's
  // shift_and_round is half-up on every chip but the P4-class ones (half to even), so it is
  // inferred from what the file holds (below) or assumed half-up, and said wherever the program
  // is described (read_espdl also takes the target.yaml `quantize` writes beside the file, or the
  // user's --target).
  p.rounding = RoundingMode::HalfUp;
  p.rounding_assumed = true;
  p.rounding_basis = "assumed: the file names no target known here and nothing in it is P4-only; give --target";
  if (!p.target.empty() && p.target.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") == std::string::npos)
    try {
      p.rounding = load_target(p.target).requant_rounding;
      p.rounding_assumed = false;
    } catch (const Error&) {
    }
  if (g->node())
    for (const auto* n : *g->node()) {
      IntNode node;
      node.name = n->name() ? n->name()->str() : "";
      node.op_type = n->op_type() ? n->op_type()->str() : "";
      if (n->input())
        for (const auto* s : *n->input()) node.inputs.push_back(s->str());
      if (n->output())
        for (const auto* s : *n->output()) node.outputs.push_back(s->str());
      if (n->attribute())
        for (const auto* a : *n->attribute())
          if (a->name()) node.attrs[a->name()->str()] = decode_attribute(a, source + ": node '" + node.name + "'");
      p.nodes.push_back(std::move(node));
    }
  std::map<std::string, std::string> layouts;
  if (g->initializer())
    for (const auto* t : *g->initializer()) {
      std::string name = t->name() ? t->name()->str() : "";
      p.initializers[name] = decode_tensor(t, source);
      std::string doc = t->doc_string() ? t->doc_string()->str() : "";
      if (doc.rfind(kLayoutPrefix, 0) == 0) layouts[name] = doc.substr(std::strlen(kLayoutPrefix));
    }
  // Filters back to their logical order.
  for (const IntNode& n : p.nodes) {
    if ((!n.is(OpType::Conv) && !n.is(OpType::Gemm)) || n.inputs.size() < 2) continue;
    const IntTensor* found = p.initializer(n.inputs[1]);
    if (!found || found->layout == "logical") continue;
    if (!layouts.count(n.inputs[1]))
      fail(ErrorCode::InvalidModel, source + ": filter '" + n.inputs[1] + "' of node '" + n.name +
                                        "' has no layout in its doc_string (\"layout ==> ...\")");
    IntTensor& w = p.initializers[n.inputs[1]];
    if (w.is_float()) fail(ErrorCode::InvalidModel, source + ": filter '" + n.inputs[1] + "' is not integer");
    bool gemm = n.is(OpType::Gemm);
    bool conv1d = !gemm && w.shape.size() == 3;
    if (w.shape.size() != 4 && !conv1d)
      fail(ErrorCode::InvalidModel, source + ": filter '" + n.inputs[1] + "' has dims " + shape_str(w.shape) +
                                        " (a Conv filter is [kh,kw,C,N] or, 1-D, [kw,C,N]; a Gemm filter [1,1,C,N])");
    const std::string& lay = layouts[n.inputs[1]];
    FilterLayout fl = parse_filter_layout(lay);
    if (!fl.known)
      fail(ErrorCode::InvalidModel, source + ": filter '" + n.inputs[1] + "' has layout '" + lay +
                                        "', which this reader does not know (known: NHWC, HWCN, NWC, WCN, (N/16)HWC16, "
                                        "(N/8)HWC8, N16HWC16, N8HWC8, their 1-D WC forms and _UNALIGNED)");
    if (fl.one_d != conv1d)
      fail(ErrorCode::InvalidModel,
           source + ": filter '" + n.inputs[1] + "' has layout '" + lay + "' but dims " + shape_str(w.shape));
    // Stored dims: Conv [kh,kw,C,N] / [kw,C,N]; depthwise [kh,kw,N,1] / [kw,N,1]; Gemm [1,1,C,N].
    Shape s4 = conv1d ? Shape{1, w.shape[0], w.shape[1], w.shape[2]} : w.shape;
    bool depthwise = !gemm && n.attr_int("group", 1) > 1 && s4[3] == 1;
    Shape logical = gemm        ? Shape{s4[2], s4[3]}
                    : depthwise ? Shape{s4[2], 1, s4[0], s4[1]}
                                : Shape{s4[3], s4[2], s4[0], s4[1]};
    if (fl.block) p.filter_blocks[w.dtype == DType::Int16 ? 16 : 8] = fl.block;
    std::vector<int64_t> order = filter_wire_order(logical, depthwise, gemm, fl.block);
    std::vector<int64_t> vals(w.ints.size());
    for (size_t i = 0; i < order.size(); ++i) vals[size_t(order[i])] = w.ints[i];
    w.ints = std::move(vals);
    w.shape = conv1d ? Shape{logical[0], logical[1], logical[3]} : logical;  // 1-D: OIW
    w.layout = "logical";
  }
  if (p.rounding_assumed)
    for (const IntNode& n : p.nodes) {
      const IntTensor* w =
          n.inputs.size() > 1 && (n.is(OpType::Conv) || n.is(OpType::Gemm)) ? p.initializer(n.inputs[1]) : nullptr;
      if (w && w->exponents.size() > 1) {
        p.rounding = RoundingMode::HalfEven;
        p.rounding_basis = "inferred: filter '" + n.inputs[1] +
                           "' has per-channel exponents, which only esp32p4/esp32s31 (half to even) use";
        break;
      }
    }
  if (g->value_info())
    for (const auto* v : *g->value_info())
      if (v->name()) p.values[v->name()->str()] = decode_value_info(v);
  if (g->input())
    for (const auto* v : *g->input()) {
      std::string name = v->name() ? v->name()->str() : "";
      p.inputs.push_back(name);
      if (!p.values.count(name)) p.values[name] = decode_value_info(v);
    }
  if (g->output())
    for (const auto* v : *g->output()) p.outputs.push_back(v->name() ? v->name()->str() : "");
  for (auto it = p.metadata.begin(); it != p.metadata.end();) {
    if (it->first.rfind(kPermKey, 0) != 0) {
      ++it;
      continue;
    }
    std::string value = it->first.substr(kPermKey.size());
    std::vector<int64_t> perm;
    std::stringstream ss(it->second);
    for (std::string tok; std::getline(ss, tok, ',');) {
      char* end = nullptr;
      long long v = std::strtoll(tok.c_str(), &end, 10);
      if (tok.empty() || *end != '\0' || v < 0 || v > 8)
        fail(ErrorCode::InvalidModel, source + ": bad layout metadata for '" + it->first + "'");
      perm.push_back(v);
    }
    if (p.values.count(value) && perm.size() == p.values[value].shape.size()) p.values[value].perm = perm;
    it = p.metadata.erase(it);
  }
  if (g->test_inputs_value())
    for (const auto* t : *g->test_inputs_value())
      p.test_inputs[t->name() ? t->name()->str() : ""] = decode_tensor(t, source);
  if (g->test_outputs_value())
    for (const auto* t : *g->test_outputs_value())
      p.test_outputs[t->name() ? t->name()->str() : ""] = decode_tensor(t, source);
  return p;
}

void write_espdl(const IntGraph& program, const std::string& path) { write_file_atomic(path, encode_espdl(program)); }

IntGraph read_espdl(const std::string& path, const std::string& target) {
  IntGraph p = decode_espdl(read_file(path), path);
  if (!target.empty()) {
    // The user's word wins over the file's metadata and any inference.
    Target t = load_target(target);
    if (!p.target.empty() && p.target != t.name)
      fail(ErrorCode::InvalidInput,
           path + ": the file says it is for '" + p.target + "', --target says '" + t.name + "'");
    p.target = t.name;
    p.metadata["target"] = t.name;  // a copy written from this program names it
    p.rounding = t.requant_rounding;
    p.rounding_assumed = false;
    p.rounding_basis.clear();
    return p;
  }
  if (!p.target.empty()) {
    // The target file `quantize` copied beside the file is the exact one (also for a target
    // given by path); the targets directory by name is the fallback decode_espdl took.
    std::string beside = (std::filesystem::path(path).parent_path() / "target.yaml").string();
    if (std::filesystem::exists(beside)) {
      Target t = load_target(beside);
      if (t.name == p.target) {
        p.rounding = t.requant_rounding;
        p.rounding_assumed = false;
      }
    }
  }
  return p;
}

}  // namespace edgequant::deploy
