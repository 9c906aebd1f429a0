// The `.espdl` exporter: what ESP-DL's runtime cannot load or EdgeQuant's integer runtime cannot
// compute (the test values embedded in the file come from it), and the writer
// (deployable.h: model.espdl, .info, .json).
#include "deploy/exporter.h"
#include "ir/op_traits.h"
#include "runtime/kernels/kernels.h"

namespace edgequant::deploy {

namespace {
int widest_bits(const Op& op, const QuantPlan& plan) {
  int bits = 0;
  for (const Value* v : op.outputs)
    if (const QuantConfig* c = v ? plan.effective(v->name) : nullptr)
      if (c->state != QuantState::Float) bits = std::max(bits, c->bits);
  return bits;
}

void check_espdl(const Op& op, const QuantPlan& plan, const Target& t, std::vector<Finding>& out) {
  auto add = [&](const std::string& reason, const std::string& remedy) {
    out.push_back({op.name, op.type, reason, remedy});
  };
  const QuantConfig* oc = op.outputs.empty() || !op.outputs[0] ? nullptr : plan.find(op.outputs[0]->name);
  bool fused_away = oc && oc->state == QuantState::Fused;  // Relu after Conv: part of the Conv node
  if (!t.runtime_ops.empty() && !t.runtime_ops.count(op.type) && !fused_away) {
    add("ESP-DL's runtime has no module for " + op.type + " (the chip cannot load the file)",
        "replace it in the model (decompose it into supported ops) or quantize for a QDQ target");
    return;
  }
  if (!runtime::find_kernel(op.type))
    add("EdgeQuant's integer runtime has no " + op.type + " kernel yet (the .espdl test values are computed by it)",
        "--format none for reports only, or a QDQ target");
  else if (oc && oc->state == QuantState::Float && !runtime::kernel_computes_float(op.type))
    add(op.type + " runs on integers only in ESP-DL and EdgeQuant's runtime, and this one is dispatched to float",
        "dispatching_table: {\"" + op.name + "\": int8} (or int16), or quantize for a QDQ target");
  if (t.int8_only_ops.count(op.type) && widest_bits(op, plan) > 8)
    add(op.type + " runs only at int8 on ESP-DL (its int16 kernel is empty)",
        "dispatching_table: {\"" + op.name + "\": int8} in the setting");
  if (op.is(OpType::Conv) || op.is(OpType::MaxPool) || op.is(OpType::AveragePool)) {
    const Value* x = op.input(0);
    if (x && x->shape && x->shape->size() != 4 && x->shape->size() != 3)
      add("only 1-D and 2-D " + op.type + " is supported (ESP-DL's NWC and NHWC layouts)",
          "reshape to 2-D (N, C, 1, W)");
    if (op.attr_string("auto_pad", "NOTSET") != "NOTSET")
      add("auto_pad is not supported", "export the model with explicit pads");
    if (op.attr_int("ceil_mode", 0) != 0) add("ceil_mode=1 is not supported", "pad explicitly and use ceil_mode=0");
  }
  // ESP-DL's Conv knows group 1 and depthwise only: any other group count runs as depthwise
  // (dl_module_conv.hpp takes the output channels from the input then), with other shapes.
  if (op.is(OpType::Conv) && op.attr_int("group", 1) != 1) {
    const Value* x = op.input(0);
    const Value* w = op.input(1);
    const int64_t g = op.attr_int("group", 1);
    if (x && x->shape && x->shape->size() >= 3 && w && w->shape && w->shape->size() >= 3 &&
        ((*w->shape)[1] != 1 || (*w->shape)[0] != g || (*x->shape)[1] != g))
      add("ESP-DL's Conv runs group 1 or depthwise (group = input channels = output channels); this one has group " +
              std::to_string(g) + ", " + std::to_string((*x->shape)[1]) + " input and " +
              std::to_string((*w->shape)[0]) + " output channels",
          "split it into " + std::to_string(g) + " Convs and a Concat, or train it with group 1");
  }
  if (op.is(OpType::Mod) && op.attr_int("fmod", 0) != 1)
    add("ESP-DL's Mod computes C's fmod (the dividend's sign) whatever fmod says; the model asks fmod=0 (the "
        "divisor's sign)",
        "export the remainder with fmod=1 (torch.fmod), or quantize for a QDQ target");
  if (op.is(OpType::ReduceMean) || op.is(OpType::ReduceSum) || op.is(OpType::ReduceMax) || op.is(OpType::ReduceMin)) {
    const Value* x = op.input(0);
    std::vector<int64_t> axes = op.attr_ints("axes");
    const Value* a = op.input(1);
    if (a && !a->is_constant())
      add("the axes are computed at run time; ESP-DL reads them as a constant", "export constant axes");
    else if (x && x->shape) {
      if (a) axes = a->data->to_int64s();
      std::vector<bool> flags = runtime::reduce_flags(axes, x->shape->size(), op.attr_int("noop_with_empty_axes", 0));
      if (!runtime::espdl_reduce_supported(flags))
        add("ESP-DL's " + op.type + " handles reduced/kept dimension patterns R, KR, RK, RKR, KRK, KRKR and RKRK only",
            "reshape so the reduced dimensions are adjacent");
    }
  }
  // ESP-DL v3.3.9 (dl_module_depth_to_space.hpp, dl_module_space_to_depth.hpp) orders channels
  // unlike ONNX in two of the three forms: its DCR DepthToSpace sends input channel c to output
  // channel c % blocksize (ONNX: c % C_out), and its SpaceToDepth builds output channel
  // c * b^2 + i * b + j (ONNX: (i * b + j) * C + c). Equal only in the cases let through here.
  if (op.is(OpType::DepthToSpace) && op.attr_string("mode", "DCR") != "CRD") {
    const Value* x = op.input(0);
    const int64_t b = op.attr_int("blocksize", 0);
    if (x && x->shape && x->shape->size() == 4 && b > 0 && (*x->shape)[1] / (b * b) != b)
      add("ESP-DL's DCR DepthToSpace puts input channel c at output channel c % blocksize, row offset c / "
          "blocksize^2: ONNX's order only when the output has blocksize channels (here " +
              std::to_string((*x->shape)[1] / (b * b)) +
              "; with more it writes outside the output, and ESP-DL's "
              "own runtime crashes on the file)",
          "export with mode=CRD (PyTorch's PixelShuffle) and reorder the producer's channels");
  }
  if (op.is(OpType::SpaceToDepth)) {
    const Value* x = op.input(0);
    if (x && x->shape && x->shape->size() == 4 && (*x->shape)[1] != 1)
      add("ESP-DL's SpaceToDepth orders output channels c * b^2 + i * b + j, ONNX (i * b + j) * C + c: the same only "
          "for one input channel (here " +
              std::to_string((*x->shape)[1]) + ")",
          "reorder the consumer's input channels, use a strided Conv, or quantize for a QDQ target");
  }
  if (op.is(OpType::Pad)) {
    const std::string mode = op.attr_string("mode", "constant");
    const Value* pads = op.input(1);
    const Value* value = op.input(2);
    if (mode != "constant" && mode != "reflect" && mode != "edge")
      add("ESP-DL's Pad has modes constant, reflect and edge, not " + mode, "export with reflect or edge padding");
    if ((pads && !pads->is_constant()) || (op.input(3)))
      add("the pads are computed at run time or limited to axes; ESP-DL reads all pads as a constant",
          "export constant pads for every axis");
    else if (pads && pads->is_constant())
      for (int64_t p : pads->data->to_int64s())
        if (p < 0) {
          add("negative pads (cropping) are not supported here", "crop with a Slice");
          break;
        }
    if (value && (!value->is_constant() || value->data->to_doubles().size() != 1 || value->data->to_doubles()[0] != 0))
      add("a constant Pad value other than 0 is not supported here (ESP-DL pads with a code of the output grid)",
          "pad with zeros, or quantize for a QDQ target");
  }
  if (op.is(OpType::MatMul))
    for (size_t i = 0; i < 2; ++i)
      if (const Value* v = op.input(i); v && v->shape && v->shape->size() > 4)
        add("ESP-DL's MatMul takes operands of rank 4 at most", "reshape the batch dimensions together");
  if (op.is(OpType::Gemm) &&
      (op.attr_float("alpha", 1.f) != 1.f || op.attr_float("beta", 1.f) != 1.f || op.attr_int("transA", 0) != 0))
    add("Gemm needs alpha = beta = 1 and transA = 0", "fold alpha/beta into the weights");
  if (op.is(OpType::Resize)) {
    std::string mode = op.attr_string("mode", "nearest"),
                ctm = op.attr_string("coordinate_transformation_mode", "half_pixel");
    if (op.attr_int("antialias", 0) != 0 || op.has_attr("axes") ||
        op.attr_string("keep_aspect_ratio_policy", "stretch") != "stretch")
      add("ESP-DL's Resize has no antialias, axes or keep_aspect_ratio_policy",
          "export without antialiasing, with scales or sizes for all four axes");
    else if (mode == "nearest" &&
             (ctm != "asymmetric" || op.attr_string("nearest_mode", "round_prefer_floor") != "floor"))
      add("ESP-DL's nearest Resize computes asymmetric/floor coordinates, the model asks " + ctm + "/" +
              op.attr_string("nearest_mode", "round_prefer_floor"),
          "export nearest upsampling with coordinate_transformation_mode=asymmetric, nearest_mode=floor (PyTorch's "
          "default)");
    else if (mode == "linear" && ctm != "half_pixel" && ctm != "pytorch_half_pixel" && ctm != "align_corners")
      add("ESP-DL's linear Resize computes half_pixel or align_corners coordinates, not " + ctm,
          "export with half_pixel");
    else if (mode == "cubic")
      add("cubic Resize is not supported", "use linear or nearest");
  }
}

class EspdlExporter : public Exporter {
 public:
  ExportFormat format() const override { return ExportFormat::Espdl; }
  bool embeds_test_values() const override { return true; }
  void check_op(const Op& op, const QuantPlan& plan, const Target& t, std::vector<Finding>& out) const override {
    if (t.scale_kind != ScaleKind::PowerOfTwo)
      out.push_back({op.name, op.type, ".espdl needs power-of-two scales; target " + t.name + " uses float scales",
                     "--format qdq"});
    else
      check_espdl(op, plan, t, out);
  }
  Deployed write(const ExportJob& j) const override {
    return write_espdl_outputs(j.graph, j.plan, j.lowered, j.target, j.executor, j.test_inputs, j.dir,
                               j.test_values_cap, j.streaming_frames);
  }
};
}  // namespace

const Exporter& espdl_exporter() {
  static const EspdlExporter e;
  return e;
}

}  // namespace edgequant::deploy
