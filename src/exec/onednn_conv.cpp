#include "exec/onednn_conv.h"

#include <ATen/ATen.h>

#include <dnnl.hpp>
#include <map>
#include <mutex>

namespace edgequant::exec {

namespace {
using dnnl::memory;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

memory::dims dims_of(at::IntArrayRef sizes) { return memory::dims(sizes.begin(), sizes.end()); }

// A primitive for one input shape and padding, with the weights it last packed.
struct Prepared {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward conv;
  at::Tensor packed_from;  // held so its storage (and address) cannot be reused by another tensor
  uint32_t packed_version = 0;
  memory packed;
};
}  // namespace

struct OneDnnConv2d::State {
  std::mutex mutex;
  std::map<std::vector<int64_t>, std::shared_ptr<Prepared>> prepared;
};

OneDnnConv2d::OneDnnConv2d(std::optional<ClampPostOp> post_op) : post_op_(post_op), state_(std::make_unique<State>()) {}
OneDnnConv2d::~OneDnnConv2d() = default;

bool OneDnnConv2d::applies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  auto ok = [](const at::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == at::kFloat && !t.requires_grad();
  };
  return !at::GradMode::is_enabled() && x.dim() == 4 && w.dim() == 4 && ok(x) && ok(w) &&
         (!b.defined() || (ok(b) && b.dim() == 1));
}

at::Tensor OneDnnConv2d::run(const at::Tensor& x_in, const at::Tensor& w, const at::Tensor& b_in,
                             const Conv2dGeometry& g) {
  at::Tensor x = x_in.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor b = b_in.defined() ? b_in.contiguous() : b_in;
  const int64_t n = x.size(0), ic = x.size(1), oc = w.size(0), kh = w.size(2), kw = w.size(3);
  if (ic != w.size(1) * g.groups || oc % g.groups != 0) return {};  // ATen reports the mismatch
  int64_t oh = (x.size(2) + g.pads_begin[0] + g.pads_end[0] - (g.dilations[0] * (kh - 1) + 1)) / g.strides[0] + 1;
  int64_t ow = (x.size(3) + g.pads_begin[1] + g.pads_end[1] - (g.dilations[1] * (kw - 1) + 1)) / g.strides[1] + 1;
  if (oh <= 0 || ow <= 0) return {};

  std::vector<int64_t> key{n, ic, x.size(2), x.size(3), oc, kh, kw, b.defined()};
  key.insert(key.end(), g.pads_begin.begin(), g.pads_begin.end());
  key.insert(key.end(), g.pads_end.begin(), g.pads_end.end());
  // Weights as the user holds them: [O, I/g, H, W] with the tensor's own strides (ATen's
  // channels_last or plain), split into [g, O/g, I/g, H, W] for grouped convolutions.
  memory::dims w_dims = dims_of(w.sizes()), w_strides = dims_of(w.strides());
  if (g.groups > 1) {
    w_dims = {g.groups, oc / g.groups, w.size(1), kh, kw};
    w_strides = {oc / g.groups * w.stride(0), w.stride(0), w.stride(1), w.stride(2), w.stride(3)};
  }
  memory::desc w_user_md(w_dims, memory::data_type::f32, w_strides);

  std::shared_ptr<Prepared> p;
  try {
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      auto it = state_->prepared.find(key);
      if (it != state_->prepared.end()) p = it->second;
    }
    if (!p) {
      auto tag = memory::format_tag::nhwc;
      memory::desc src_md({n, ic, x.size(2), x.size(3)}, memory::data_type::f32, tag);
      memory::desc dst_md({n, oc, oh, ow}, memory::data_type::f32, tag);
      memory::desc w_md(w_dims, memory::data_type::f32, memory::format_tag::any);
      memory::dims strides = dims_of(g.strides), dil{g.dilations[0] - 1, g.dilations[1] - 1};
      memory::dims pad_l = dims_of(g.pads_begin), pad_r = dims_of(g.pads_end);
      using dnnl::algorithm;
      auto desc = b.defined() ? dnnl::convolution_forward::desc(
                                    dnnl::prop_kind::forward_inference, algorithm::convolution_direct, src_md, w_md,
                                    memory::desc({oc}, memory::data_type::f32, memory::format_tag::a), dst_md, strides,
                                    dil, pad_l, pad_r)
                              : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                                algorithm::convolution_direct, src_md, w_md, dst_md,
                                                                strides, dil, pad_l, pad_r);
      dnnl::primitive_attr attr;
      // Scratchpad from our allocator per call: oneDNN's own keeps one per primitive alive.
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      if (post_op_) {
        dnnl::post_ops ops;
        ops.append_eltwise(1.0f, algorithm::eltwise_clip, post_op_->lo, post_op_->hi);
        attr.set_post_ops(ops);
      }
      dnnl::convolution_forward::primitive_desc pd(desc, attr, cpu_engine());
      p = std::make_shared<Prepared>(Prepared{pd, dnnl::convolution_forward(pd), {}, 0, memory()});
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->prepared[key] = p;
    }
  } catch (const dnnl::error&) {
    return {};
  }

  thread_local dnnl::stream stream(cpu_engine());
  memory packed;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (!p->packed_from.defined() || !p->packed_from.is_same(w) || p->packed_version != w._version()) {
      memory user(w_user_md, cpu_engine(), w.data_ptr());
      memory dest(p->pd.weights_desc(), cpu_engine());
      dnnl::reorder(user, dest).execute(stream, user, dest);
      stream.wait();
      p->packed_from = w;
      p->packed_version = w._version();
      p->packed = dest;
    }
    packed = p->packed;
  }
  at::Tensor y = at::empty({n, oc, oh, ow}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  memory src(p->pd.src_desc(), cpu_engine(), x.data_ptr());
  memory dst(p->pd.dst_desc(), cpu_engine(), y.data_ptr());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, packed}, {DNNL_ARG_DST, dst}};
  if (b.defined()) args.emplace(DNNL_ARG_BIAS, memory(p->pd.bias_desc(), cpu_engine(), b.data_ptr()));
  at::Tensor scratch;
  memory::desc scratch_md = p->pd.scratchpad_desc();
  if (scratch_md.get_size() > 0) {
    scratch = at::empty({static_cast<int64_t>(scratch_md.get_size())}, x.options().dtype(at::kByte));
    args.emplace(DNNL_ARG_SCRATCHPAD, memory(scratch_md, cpu_engine(), scratch.data_ptr()));
  }
  p->conv.execute(stream, args);
  stream.wait();
  return y;
}

}  // namespace edgequant::exec
