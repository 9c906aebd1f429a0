// RNN, GRU and LSTM with ONNX semantics: directions (forward, reverse, bidirectional), layout
// 0 ([seq, batch, ...]) and 1 ([batch, seq, ...]), initial states, per-sample sequence_lens
// (steps past a sample's length leave its state unchanged and write zeros to Y; reverse starts
// at its last valid step), peepholes, clip, input_forget, linear_before_reset, and the
// activation list with activation_alpha/beta consumed in order by the functions that take them.
// Gate orders as ONNX stores them: LSTM i, o, f, c; GRU z, r, h.
#include <ATen/ATen.h>

#include <optional>
#include <variant>

#include "exec/ops/factories.h"

namespace edgequant::exec {

namespace {

enum class Cell { Rnn, Gru, Lstm };

struct Activation {
  std::string name;
  float alpha = 0, beta = 0;
  at::Tensor operator()(const at::Tensor& x) const {
    if (name == "Sigmoid") return at::sigmoid(x);
    if (name == "Tanh") return at::tanh(x);
    if (name == "Relu") return at::relu(x);
    if (name == "LeakyRelu") return at::leaky_relu(x, alpha);
    if (name == "ThresholdedRelu") return at::where(x > alpha, x, at::zeros_like(x));
    if (name == "ScaledTanh") return alpha * at::tanh(beta * x);
    if (name == "HardSigmoid") return at::clamp(alpha * x + beta, 0, 1);
    if (name == "Elu") return at::where(x >= 0, x, alpha * (at::exp(x) - 1));
    if (name == "Softsign") return x / (1 + x.abs());
    if (name == "Softplus") return at::log1p(at::exp(x));
    return alpha * x + beta;  // Affine
  }
};

// Default alpha/beta per function (ONNX's operator defaults) and whether it takes them.
bool takes_alpha(const std::string& n) {
  return n == "LeakyRelu" || n == "ThresholdedRelu" || n == "ScaledTanh" || n == "HardSigmoid" || n == "Elu" ||
         n == "Affine";
}
bool takes_beta(const std::string& n) { return n == "ScaledTanh" || n == "HardSigmoid" || n == "Affine"; }
float default_alpha(const std::string& n) {
  if (n == "LeakyRelu") return 0.01f;
  if (n == "HardSigmoid") return 0.2f;
  return 1.0f;
}
float default_beta(const std::string& n) { return n == "HardSigmoid" ? 0.5f : n == "Affine" ? 0.0f : 1.0f; }

std::vector<Activation> read_activations(const Op& op, Cell cell, int dirs) {
  std::vector<std::string> defaults = cell == Cell::Rnn   ? std::vector<std::string>{"Tanh"}
                                      : cell == Cell::Gru ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                                          : std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"};
  std::vector<std::string> names;
  auto it = op.attrs.find("activations");
  if (it != op.attrs.end()) {
    if (const auto* v = std::get_if<std::vector<std::string>>(&it->second))
      names = *v;
    else if (const auto* s = std::get_if<std::string>(&it->second))
      names = {*s};
  }
  size_t per = defaults.size();
  if (names.empty()) {
    for (int d = 0; d < dirs; ++d) names.insert(names.end(), defaults.begin(), defaults.end());
  } else if (names.size() == per && dirs == 2) {
    names.insert(names.end(), names.begin(), names.end());
  } else if (names.size() != per * size_t(dirs)) {
    unsupported(op,
                "activations: expected " + std::to_string(per * dirs) + " names, got " + std::to_string(names.size()));
  }
  std::vector<float> alphas = op.attr_floats("activation_alpha"), betas = op.attr_floats("activation_beta");
  size_t ai = 0, bi = 0;
  std::vector<Activation> out;
  for (const std::string& raw : names) {
    Activation a;
    a.name = raw;
    // Names are case-insensitive in ONNX's reference ("sigmoid", "tanh" appear in models).
    std::string lower;
    for (char ch : raw) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    for (const char* known : {"Sigmoid", "Tanh", "Relu", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid",
                              "Elu", "Softsign", "Softplus", "Affine"}) {
      std::string k;
      for (const char* p = known; *p; ++p) k += static_cast<char>(std::tolower(static_cast<unsigned char>(*p)));
      if (k == lower) a.name = known;
    }
    if (!takes_alpha(a.name) && a.name != "Sigmoid" && a.name != "Tanh" && a.name != "Relu" && a.name != "Softsign" &&
        a.name != "Softplus")
      unsupported(op, "activation '" + raw + "' is not supported");
    a.alpha = takes_alpha(a.name) ? (ai < alphas.size() ? alphas[ai++] : default_alpha(a.name)) : 0;
    a.beta = takes_beta(a.name) ? (bi < betas.size() ? betas[bi++] : default_beta(a.name)) : 0;
    out.push_back(a);
  }
  return out;
}

Kernel make_recurrent(const Op& op, int64_t opset, Cell cell) {
  std::string direction = op.attr_string("direction", "forward");
  if (direction != "forward" && direction != "reverse" && direction != "bidirectional")
    unsupported(op, "unknown direction '" + direction + "' (forward, reverse, bidirectional)");
  int dirs = direction == "bidirectional" ? 2 : 1;
  int64_t layout = opset >= 14 ? op.attr_int("layout", 0) : 0;
  if (layout != 0 && layout != 1) unsupported(op, "layout must be 0 or 1, not " + std::to_string(layout));
  std::optional<double> clip;
  if (op.has_attr("clip")) clip = op.attr_float("clip", 0);
  bool input_forget = cell == Cell::Lstm && op.attr_int("input_forget", 0) != 0;
  bool linear_before_reset = cell == Cell::Gru && op.attr_int("linear_before_reset", 0) != 0;
  int64_t hidden_attr = op.attr_int("hidden_size", 0);
  std::vector<Activation> acts = read_activations(op, cell, dirs);
  size_t per = acts.size() / size_t(dirs);
  int gates = cell == Cell::Rnn ? 1 : cell == Cell::Gru ? 3 : 4;
  std::string where = op.describe();
  bool reverse_only = direction == "reverse";

  return [=](const Tensors& in) -> Tensors {
    auto opt = [&](size_t i) { return i < in.size() && in[i].defined() && in[i].numel() > 0 ? in[i] : at::Tensor(); };
    at::Tensor X = layout == 1 ? in[0].transpose(0, 1) : in[0];  // [seq, batch, input]
    const at::Tensor &W = in[1], &R = in[2];
    if (X.dim() != 3 || W.dim() != 3 || R.dim() != 3 || W.size(0) != dirs || R.size(0) != dirs)
      fail(ErrorCode::InvalidInput, where + ": X, W, R must be 3-D with " + std::to_string(dirs) + " direction(s)");
    int64_t seq = X.size(0), batch = X.size(1), H = R.size(2);
    if ((hidden_attr && hidden_attr != H) || W.size(1) != gates * H || R.size(1) != gates * H || W.size(2) != X.size(2))
      fail(ErrorCode::InvalidInput, where + ": W/R shapes do not match hidden_size and the input size");
    at::Tensor B = opt(3), lens_t = opt(4), h0 = opt(5), c0 = cell == Cell::Lstm ? opt(6) : at::Tensor(),
               P = cell == Cell::Lstm ? opt(7) : at::Tensor();
    if (layout == 1) {
      if (h0.defined()) h0 = h0.transpose(0, 1);
      if (c0.defined()) c0 = c0.transpose(0, 1);
    }
    auto opts = X.options();
    // Per step and sample: is step t inside the sample's sequence?
    at::Tensor active;
    if (lens_t.defined()) {
      at::Tensor lens = lens_t.to(at::kLong).reshape({1, batch});
      active = (at::arange(seq, at::kLong).reshape({seq, 1}) < lens).to(opts.dtype()).unsqueeze(2);  // [seq, batch, 1]
    }
    auto clipped = [&](at::Tensor x) { return clip ? at::clamp(x, -*clip, *clip) : x; };
    std::vector<at::Tensor> ys, hs, cs;
    for (int d = 0; d < dirs; ++d) {
      bool reverse = reverse_only || d == 1;
      const Activation* f = &acts[per * size_t(d)];
      at::Tensor Wd = W[d], Rd = R[d];
      at::Tensor Wb = B.defined() ? B[d].narrow(0, 0, gates * H) : at::zeros({gates * H}, opts);
      at::Tensor Rb = B.defined() ? B[d].narrow(0, gates * H, gates * H) : at::zeros({gates * H}, opts);
      at::Tensor XW = at::matmul(X, Wd.t()) + Wb;  // [seq, batch, G*H]
      at::Tensor h = h0.defined() ? h0[d] : at::zeros({batch, H}, opts);
      at::Tensor c = c0.defined() ? c0[d] : at::zeros({batch, H}, opts);
      at::Tensor Y = at::zeros({seq, batch, H}, opts);
      for (int64_t step = 0; step < seq; ++step) {
        int64_t t = reverse ? seq - 1 - step : step;
        at::Tensor x = XW[t], h_new, c_new;
        if (cell == Cell::Rnn) {
          h_new = f[0](clipped(x + at::matmul(h, Rd.t()) + Rb));
        } else if (cell == Cell::Gru) {
          auto xg = x.chunk(3, 1);
          auto Rg = Rd.chunk(3, 0);
          auto Rbg = Rb.chunk(3, 0);
          at::Tensor z = f[0](clipped(xg[0] + at::matmul(h, Rg[0].t()) + Rbg[0]));
          at::Tensor r = f[0](clipped(xg[1] + at::matmul(h, Rg[1].t()) + Rbg[1]));
          at::Tensor hh = linear_before_reset ? f[1](clipped(xg[2] + r * (at::matmul(h, Rg[2].t()) + Rbg[2])))
                                              : f[1](clipped(xg[2] + at::matmul(r * h, Rg[2].t()) + Rbg[2]));
          h_new = (1 - z) * hh + z * h;
        } else {
          auto g = (x + at::matmul(h, Rd.t()) + Rb).chunk(4, 1);  // i, o, f, c
          at::Tensor gi = g[0], go = g[1], gf = g[2];
          if (P.defined()) {
            auto p = P[d].chunk(3, 0);  // i, o, f
            gi = gi + p[0] * c;
            gf = gf + p[2] * c;
          }
          at::Tensor i = f[0](clipped(gi));
          at::Tensor fg = input_forget ? 1 - i : f[0](clipped(gf));
          c_new = fg * c + i * f[1](clipped(g[3]));
          if (P.defined()) go = go + P[d].chunk(3, 0)[1] * c_new;
          at::Tensor o = f[0](clipped(go));
          h_new = o * f[2](c_new);
        }
        if (active.defined()) {
          at::Tensor a = active[t];
          h = a * h_new + (1 - a) * h;
          if (c_new.defined()) c = a * c_new + (1 - a) * c;
          Y[t] = a * h_new;
        } else {
          h = h_new;
          if (c_new.defined()) c = c_new;
          Y[t] = h_new;
        }
      }
      ys.push_back(Y);
      hs.push_back(h);
      cs.push_back(c);
    }
    at::Tensor Y = at::stack(ys, 1);                          // [seq, dirs, batch, H]
    at::Tensor Yh = at::stack(hs, 0), Yc = at::stack(cs, 0);  // [dirs, batch, H]
    if (layout == 1) {
      Y = Y.permute({2, 0, 1, 3}).contiguous();
      Yh = Yh.transpose(0, 1).contiguous();
      Yc = Yc.transpose(0, 1).contiguous();
    }
    if (cell == Cell::Lstm) return {Y, Yh, Yc};
    return {Y, Yh};
  };
}

}  // namespace

Kernel make_rnn(const Op& op, int64_t opset) { return make_recurrent(op, opset, Cell::Rnn); }
Kernel make_gru(const Op& op, int64_t opset) { return make_recurrent(op, opset, Cell::Gru); }
Kernel make_lstm(const Op& op, int64_t opset) { return make_recurrent(op, opset, Cell::Lstm); }

}  // namespace edgequant::exec
