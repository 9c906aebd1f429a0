// Raising a graph's opset for a format that needs a newer op (DequantizeLinear's axis at 13,
// block_size and 4-bit codes at 21). libonnx 1.12's version converter stops at opset 17, so the
// ops whose form changed between 11 and 21 are rewritten here; the rest are the same op.
#include <algorithm>

#include "deploy/convert.h"
#include "edgequant/error.h"

namespace edgequant::deploy {

namespace {

Value* axes_constant(Graph& g, const Op& op, const std::vector<int64_t>& axes) {
  return g.add_constant(g.unique_name(op.name + "_axes"),
                        Tensor::from_vector(DType::Int64, {int64_t(axes.size())}, axes));
}

// An attribute that became input `index` (Squeeze's axes, Split's split, Reduce*'s axes).
bool attribute_to_input(Graph& g, Op& op, const std::string& attr, size_t index) {
  if (!op.has_attr(attr)) return false;
  std::vector<int64_t> v = op.attr_ints(attr);
  op.attrs.erase(attr);
  while (op.inputs.size() < index) g.set_input(&op, op.inputs.size(), nullptr);
  g.set_input(&op, index, axes_constant(g, op, v));
  return true;
}

}  // namespace

std::vector<std::string> upgrade_opset(Graph& g, int64_t to) {
  const int64_t from = g.opset;
  if (from >= to) return {};
  if (from < 11)
    fail(ErrorCode::Unsupported, "the model is opset " + std::to_string(from) + "; raising it to " +
                                     std::to_string(to) +
                                     " is done here from opset 11 on (re-export the model at 11+)");
  static const std::vector<std::string> reduce18 = {"ReduceMax",    "ReduceMin",       "ReduceMean",
                                                    "ReduceProd",   "ReduceL1",        "ReduceL2",
                                                    "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"};
  std::vector<std::string> log;
  std::vector<Op*> ops;
  for (const auto& op : g.ops()) ops.push_back(op.get());
  for (Op* op : ops) {
    if (!op->domain.empty()) continue;
    const std::string& t = op->type;
    auto refuse = [&](const std::string& why) {
      fail(ErrorCode::Unsupported, op->describe() + ": cannot raise the opset from " + std::to_string(from) + " to " +
                                       std::to_string(to) + ": " + why);
    };
    if (!op->subgraphs.empty()) refuse("its subgraphs would need the same upgrade (not done here)");
    if (t == "Upsample" || t == "Scatter") refuse(t + " was removed after opset 10/11");
    if (t == "GroupNormalization" && from < 21 && to >= 21)
      refuse("opset 21 changed its scale and bias to per channel");
    if (t == "DFT" && from < 20 && to >= 20) refuse("opset 20 moved its axis to an input");
    if (t == "GridSample" && from < 20 && to >= 20) {
      std::string mode = op->attr_string("mode", "bilinear");
      if (mode == "bilinear" || mode == "bicubic")
        op->attrs["mode"] = std::string(mode == "bilinear" ? "linear" : "cubic");
    }
    bool rewrote = false;
    if (from < 13 && to >= 13 && (t == "Squeeze" || t == "Unsqueeze" || t == "ReduceSum"))
      rewrote = attribute_to_input(g, *op, "axes", 1);
    if (from < 13 && to >= 13 && t == "Split") rewrote = attribute_to_input(g, *op, "split", 1);
    if (from < 18 && to >= 18 && std::find(reduce18.begin(), reduce18.end(), t) != reduce18.end())
      rewrote = attribute_to_input(g, *op, "axes", 1);
    if (from < 18 && to >= 18 && t == "Split" && !op->input(1)) {
      op->attrs["num_outputs"] = int64_t(op->outputs.size());
      rewrote = true;
    }
    if (from < 13 && to >= 13 && (t == "Softmax" || t == "LogSoftmax" || t == "Hardmax")) {
      // Before 13 these flattened the dims from `axis` on; the same as one axis when it is the
      // last non-unit dim.
      const Value* x = op->input(0);
      if (!x->shape) refuse("its input's rank is unknown (opset 13 changed what axis means)");
      const int64_t rank = int64_t(x->shape->size());
      int64_t axis = op->attr_int("axis", 1);
      if (axis < 0) axis += rank;
      int64_t last = rank - 1;
      while (last > axis && (*x->shape)[size_t(last)] == 1) --last;
      if (last != axis)
        refuse("before opset 13 it normalised dims " + std::to_string(axis) + ".." + std::to_string(rank - 1) +
               " together; from 13 one axis (reshape around it in the source)");
      op->attrs["axis"] = axis;  // the default changed from 1 to -1
    }
    if (rewrote) log.push_back(op->describe() + ": rewritten for opset " + std::to_string(to));
  }
  g.opset = to;
  return log;
}

}  // namespace edgequant::deploy
