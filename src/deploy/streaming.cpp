// The streaming form of a temporal integer program (see streaming.h).
#include "deploy/streaming.h"

#include <set>

#include "edgequant/error.h"
#include "ir/op_traits.h"
#include "runtime/interpreter.h"

namespace edgequant::deploy {

using runtime::IntGraph;
using runtime::IntNode;
using runtime::IntTensor;

namespace {
[[noreturn]] void refuse(const IntNode& n, const std::string& why) {
  fail(ErrorCode::InvalidInput, "streaming: node '" + n.name + "' (" + n.op_type + ") " + why);
}

bool is_window(const IntNode& n) { return n.is(OpType::Conv) || n.is(OpType::AveragePool) || n.is(OpType::MaxPool); }

// Frames a window op reads before the current one: d*(k-1) for a causal window (pads [that, 0],
// stride 1), 0 for a one-frame window; refuses the rest.
int64_t causal_history(const IntGraph& g, const IntNode& n) {
  std::vector<int64_t> k = n.attr_ints("kernel_shape");
  if (k.empty() && n.is(OpType::Conv) && n.inputs.size() > 1)
    if (const IntTensor* w = g.initializer(n.inputs[1])) k = {w->shape.back()};
  if (k.size() != 1) refuse(n, "is not a 1-D window over frames");
  std::vector<int64_t> s = n.attr_ints("strides", {1}), d = n.attr_ints("dilations", {1}),
                       p = n.attr_ints("pads", {0, 0});
  if (s.size() != 1 || d.size() != 1 || p.size() != 2) refuse(n, "has malformed strides/dilations/pads");
  int64_t history = d[0] * (k[0] - 1);
  if (history == 0) return 0;
  if (s[0] != 1) refuse(n, "has stride " + std::to_string(s[0]) + "; a streaming window moves one frame at a time");
  if (p[0] != history || p[1] != 0)
    refuse(n, "is not causal: pads [" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + "], a streaming window " +
                  "reads only past frames, pads [" + std::to_string(history) + ", 0]");
  return history;
}
}  // namespace

IntGraph make_streaming(const IntGraph& whole, int64_t frames, std::vector<std::string>* notes) {
  if (frames < 1) fail(ErrorCode::InvalidInput, "streaming: frames must be at least 1");
  IntGraph s = whole;
  s.nodes.clear();
  s.test_inputs.clear();
  s.test_outputs.clear();
  auto rank3 = [&](const std::string& v) {
    return !v.empty() && whole.values.count(v) && !whole.initializers.count(v) && whole.values.at(v).shape.size() == 3;
  };
  for (const std::string& in : whole.inputs) {
    const runtime::ValueInfo& vi = whole.value(in);
    if (vi.shape.size() != 3 || vi.shape[0] != 1)
      fail(ErrorCode::InvalidInput, "streaming: input '" + in + "' has shape " + shape_str(vi.shape) +
                                        "; a streaming model takes [1, frames, channels] sequences");
    if (vi.shape[1] % frames != 0)
      fail(ErrorCode::InvalidInput, "streaming: input '" + in + "' has " + std::to_string(vi.shape[1]) +
                                        " frames, not a multiple of " + std::to_string(frames) + " per run");
  }
  int caches = 0;
  for (const IntNode& n : whole.nodes) {
    IntNode m = n;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const std::string& in = n.inputs[i];
      if (in.empty() || whole.initializers.count(in)) continue;
      if (!rank3(in)) refuse(n, "reads '" + in + "', which is not a [1, frames, channels] sequence");
    }
    for (const std::string& out : n.outputs)
      if (!rank3(out)) refuse(n, "writes '" + out + "', which is not a [1, frames, channels] sequence");
    if (is_window(n)) {
      int64_t history = causal_history(whole, n);
      if (history > 0) {
        IntNode cache;
        cache.name = n.inputs[0] + "_" + n.name + "_SCache";
        cache.op_type = op_type_name(OpType::StreamingCache);
        cache.inputs = {n.inputs[0]};
        cache.outputs = {n.inputs[0] + "_" + n.name + "_cached"};
        cache.attrs["window_size"] = history + 1;
        cache.attrs["frame_axis"] = int64_t(1);
        s.values[cache.outputs[0]] = whole.value(n.inputs[0]);
        s.nodes.push_back(cache);
        m.inputs[0] = cache.outputs[0];
        m.attrs["pads"] = std::vector<int64_t>{0, 0};
        ++caches;
        if (notes)
          notes->push_back("StreamingCache before '" + n.name + "': keeps " + std::to_string(history) +
                           " past frame(s) of '" + n.inputs[0] + "'");
      }
    } else if (n.is(OpType::Concat)) {
      if (n.attr_int("axis", 0) != 2 && n.attr_int("axis", 0) != -1) refuse(n, "concatenates across frames");
    } else if (!op_has(n.op_type, kLayoutOfInput) && !op_has(n.op_type, kBroadcastBinary) &&
               !op_has(n.op_type, kUnary)) {
      refuse(n, "mixes frames (only causal windows and per-frame ops can stream)");
    }
    s.nodes.push_back(std::move(m));
  }
  if (caches == 0) fail(ErrorCode::InvalidInput, "streaming: no window spans more than one frame; nothing to cache");
  // Shapes from one run at `frames` frames (every kernel computes its output shape).
  runtime::TensorMap zeros;
  for (const std::string& in : s.inputs) {
    runtime::ValueInfo& vi = s.values[in];
    vi.shape[1] = frames;
    IntTensor t;
    t.dtype = vi.dtype;
    t.exponents = {vi.exponent};
    t.shape = vi.shape;
    t.ints.assign(size_t(vi.shape[0] * vi.shape[1] * vi.shape[2]), 0);
    zeros[in] = t;
  }
  runtime::TensorMap all = runtime::run_program(s, zeros, true);
  for (auto& [name, vi] : s.values)
    if (all.count(name)) vi.shape = all.at(name).shape;
  runtime::verify_program(s);
  if (!whole.test_inputs.empty()) {
    runtime::TensorMap first;
    for (const auto& [name, t] : whole.test_inputs) {
      IntTensor c = t;
      int64_t per_frame = t.shape.size() == 3 ? t.shape[2] : 0;
      if (per_frame == 0) fail(ErrorCode::Internal, "streaming: test input '" + name + "' is not [1, T, C]");
      c.shape[1] = frames;
      c.ints.assign(t.ints.begin(), t.ints.begin() + frames * per_frame);
      first[name] = c;
    }
    s.test_inputs = first;
    s.test_outputs = runtime::run_program(s, first);
  }
  return s;
}

}  // namespace edgequant::deploy
