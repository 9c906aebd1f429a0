// Signal processing ops of audio front ends (opset 17): DFT, STFT, the Hann / Hamming / Blackman
// windows and MelWeightMatrix. Transforms go through ATen's FFT; complex values are a trailing
// dim of 2 (real, imaginary) as ONNX stores them.
#include <ATen/ATen.h>

#include <cmath>

#include "exec/ops/factories.h"
#include "ir/op_traits.h"

namespace edgequant::exec {

namespace {
constexpr double kPi = 3.14159265358979323846;

// A signal with a trailing dim of 1 (real) or 2 (complex) as an ATen real or complex tensor
// without that dim.
at::Tensor as_signal(const at::Tensor& x, const std::string& where) {
  if (x.dim() < 2 || (x.size(-1) != 1 && x.size(-1) != 2))
    fail(ErrorCode::InvalidInput, where + ": a signal needs a last dim of 1 (real) or 2 (complex), got shape " +
                                      shape_str(Shape(x.sizes().begin(), x.sizes().end())));
  at::Tensor f = x.to(x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat);
  return x.size(-1) == 1 ? f.squeeze(-1) : at::view_as_complex(f.contiguous());
}

// Back to ONNX's layout: a trailing (real, imaginary) dim.
at::Tensor as_onnx_complex(const at::Tensor& y) {
  return at::view_as_real(y.is_complex() ? y : at::complex(y, at::zeros_like(y))).contiguous();
}

DType output_datatype(const Op& op) {
  int64_t code = op.attr_int("output_datatype", static_cast<int64_t>(DType::Float32));
  return static_cast<DType>(code);
}
}  // namespace

// DFT along `axis` (opset 17: attribute, default 1; opset 20: third input, default -2; both
// count the trailing complex dim in the rank), zero-padded or cut to dft_length.
Kernel make_dft(const Op& op, int64_t opset) {
  bool inverse = op.attr_int("inverse", 0) != 0, onesided = op.attr_int("onesided", 0) != 0;
  int64_t axis_attr = op.attr_int("axis", 1);
  if (inverse && onesided) fail(ErrorCode::InvalidModel, op.describe() + ": a onesided inverse DFT is not defined");
  Op desc = op;
  return [=](const Tensors& in) -> Tensors {
    const std::string where = desc.describe();
    int64_t rank = in[0].dim();
    int64_t axis = axis_attr;
    if (opset >= 20)
      axis = in.size() > 2 && in[2].defined() && in[2].numel() > 0 ? single_int(in[2], where, "axis") : -2;
    int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a > rank - 2)
      fail(ErrorCode::InvalidModel, where + ": DFT axis " + std::to_string(axis) + " for rank " + std::to_string(rank));
    at::Tensor x = as_signal(in[0], where);
    c10::optional<int64_t> n;
    if (in.size() > 1 && in[1].defined() && in[1].numel() > 0) {
      n = single_int(in[1], where, "dft_length");
      if (*n < 1) fail(ErrorCode::InvalidInput, where + ": dft_length " + std::to_string(*n));
    }
    if (onesided && x.is_complex()) fail(ErrorCode::InvalidInput, where + ": a onesided DFT needs a real signal");
    at::Tensor y = inverse ? at::fft_ifft(x, n, a) : onesided ? at::fft_rfft(x, n, a) : at::fft_fft(x, n, a);
    return {as_onnx_complex(y).to(in[0].scalar_type())};
  };
}

// STFT: frames of frame_length every frame_step samples, times the window, each transformed
// (onesided by default: frame_length / 2 + 1 bins). Output [batch, frames, bins, 2].
Kernel make_stft(const Op& op, int64_t) {
  bool onesided = op.attr_int("onesided", 1) != 0;
  Op desc = op;
  return [=](const Tensors& in) -> Tensors {
    const std::string where = desc.describe();
    if (in[0].dim() != 3) fail(ErrorCode::InvalidInput, where + ": STFT takes a signal [batch, length, 1 or 2]");
    at::Tensor x = as_signal(in[0], where);
    int64_t step = single_int(in[1], where, "frame_step");
    bool has_window = in.size() > 2 && in[2].defined() && in[2].numel() > 0;
    bool has_length = in.size() > 3 && in[3].defined() && in[3].numel() > 0;
    int64_t length = has_length ? single_int(in[3], where, "frame_length") : has_window ? in[2].numel() : 0;
    if (!has_window && !has_length) fail(ErrorCode::InvalidModel, where + ": STFT needs a window or a frame_length");
    if (has_window && in[2].numel() != length)
      fail(ErrorCode::InvalidInput, where + ": window of " + std::to_string(in[2].numel()) +
                                        " samples for frame_length " + std::to_string(length));
    if (step < 1 || length < 1 || length > x.size(1))
      fail(ErrorCode::InvalidInput, where + ": frame_step " + std::to_string(step) + ", frame_length " +
                                        std::to_string(length) + " for a signal of " + std::to_string(x.size(1)) +
                                        " samples");
    if (onesided && x.is_complex()) fail(ErrorCode::InvalidInput, where + ": a onesided STFT needs a real signal");
    at::Tensor frames = x.unfold(1, length, step);  // [batch, frames, length]
    if (has_window) frames = frames * in[2].to(x.is_complex() ? at::kFloat : x.scalar_type()).reshape({-1});
    at::Tensor y = onesided ? at::fft_rfft(frames, c10::nullopt, -1) : at::fft_fft(frames, c10::nullopt, -1);
    return {as_onnx_complex(y).to(in[0].scalar_type())};
  };
}

// Generalised cosine windows: w[n] = a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N), N = size when
// periodic (the default), size - 1 when symmetric.
Kernel make_window(const Op& op, int64_t) {
  double a0, a1, a2 = 0;
  if (op.is(OpType::HannWindow))
    a0 = 0.5, a1 = 0.5;
  else if (op.is(OpType::HammingWindow))
    a0 = 25.0 / 46.0, a1 = 21.0 / 46.0;
  else
    a0 = 0.42, a1 = 0.5, a2 = 0.08;  // BlackmanWindow
  bool periodic = op.attr_int("periodic", 1) != 0;
  at::ScalarType type = to_scalar_type(output_datatype(op));
  Op desc = op;
  return [=](const Tensors& in) -> Tensors {
    int64_t size = single_int(in[0], desc.describe(), "size");
    if (size < 0) fail(ErrorCode::InvalidInput, desc.describe() + ": window size " + std::to_string(size));
    at::Tensor n = at::arange(size, at::kDouble);
    double period = periodic ? static_cast<double>(size) : static_cast<double>(size - 1);
    at::Tensor w = period > 0 ? a0 - a1 * at::cos(2 * kPi * n / period) + a2 * at::cos(4 * kPi * n / period)
                              : at::ones({size}, at::kDouble);
    return {w.to(type)};
  };
}

// MelWeightMatrix [dft_length / 2 + 1, num_mel_bins]: triangles of peak 1 between band edges
// spaced evenly in mel (2595 log10(1 + f / 700)) over [lower, upper], each edge mapped to the
// spectrogram bin floor((dft_length + 1) f / sample_rate). As ONNX's reference, the mel step
// divides the range by num_mel_bins + 2.
Kernel make_mel_weight_matrix(const Op& op, int64_t) {
  at::ScalarType type = to_scalar_type(output_datatype(op));
  Op desc = op;
  return [=](const Tensors& in) -> Tensors {
    const std::string where = desc.describe();
    int64_t bands = single_int(in[0], where, "num_mel_bins"), dft = single_int(in[1], where, "dft_length");
    int64_t rate = single_int(in[2], where, "sample_rate");
    double lower = in[3].reshape({-1})[0].item<double>(), upper = in[4].reshape({-1})[0].item<double>();
    if (bands < 1 || dft < 1 || rate < 1 || lower < 0 || upper <= lower)
      fail(ErrorCode::InvalidInput, where +
                                        ": MelWeightMatrix needs num_mel_bins, dft_length, sample_rate >= 1 and "
                                        "0 <= lower_edge_hertz < upper_edge_hertz");
    int64_t bins = dft / 2 + 1;
    auto mel = [](double f) { return 2595.0 * std::log10(1.0 + f / 700.0); };
    double low = mel(lower), step = (mel(upper) - low) / static_cast<double>(bands + 2);
    std::vector<int64_t> edge(static_cast<size_t>(bands + 2));
    for (int64_t k = 0; k < bands + 2; ++k) {
      double hz = 700.0 * (std::pow(10.0, (static_cast<double>(k) * step + low) / 2595.0) - 1.0);
      edge[static_cast<size_t>(k)] =
          static_cast<int64_t>(std::floor(static_cast<double>(dft + 1) * hz / static_cast<double>(rate)));
    }
    at::Tensor out = at::zeros({bins, bands}, at::kDouble);
    auto w = out.accessor<double, 2>();
    auto set = [&](int64_t j, int64_t band, double v) {
      if (j < 0 || j >= bins)
        fail(ErrorCode::InvalidInput,
             where + ": a mel band edge falls beyond the spectrogram's " + std::to_string(bins) + " bins");
      w[j][band] = v;
    };
    for (int64_t i = 0; i < bands; ++i) {
      int64_t left = edge[static_cast<size_t>(i)], centre = edge[static_cast<size_t>(i + 1)],
              right = edge[static_cast<size_t>(i + 2)];
      if (centre == left)
        set(centre, i, 1.0);
      else
        for (int64_t j = left; j <= centre; ++j)
          set(j, i, static_cast<double>(j - left) / static_cast<double>(centre - left));
      for (int64_t j = centre; j < right; ++j)
        set(j, i, static_cast<double>(right - j) / static_cast<double>(right - centre));
    }
    return {out.to(type)};
  };
}

}  // namespace edgequant::exec
