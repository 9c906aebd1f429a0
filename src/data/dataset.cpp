// Dataset sources: IDX, NumPy, image folders (OpenCV does the decoding and resizing).
#include "data/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "data/npy.h"
#include "edgequant/error.h"

namespace fs = std::filesystem;

namespace edgequant {

void check_finite(const Tensor& t, const std::string& what) {
  if (t.dtype() != DType::Float32) return;
  const float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(p[i]))
      fail(ErrorCode::InvalidInput,
           what + " contains " + (std::isnan(p[i]) ? "NaN" : "Inf") + " (element " + std::to_string(i) + ")");
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail(ErrorCode::InvalidInput, path + ": cannot open");
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  bool bad = n < 0;
  gzclose(f);
  if (bad) fail(ErrorCode::InvalidInput, path + ": corrupt gzip data");
  return out;
}

uint32_t be32(const std::string& s, size_t off) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data() + off);
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

// Normalises an HWC float image (already pixel-scaled) into the model layout.
Tensor finish_image(const cv::Mat& hwc, const Preprocess& pp) {
  int h = hwc.rows, w = hwc.cols, c = hwc.channels();
  Tensor t(DType::Float32, pp.nhwc ? Shape{h, w, c} : Shape{c, h, w});
  float* out = t.data<float>();
  for (int y = 0; y < h; ++y) {
    const float* row = hwc.ptr<float>(y);
    for (int x = 0; x < w; ++x)
      for (int ch = 0; ch < c; ++ch) {
        double mean = pp.mean.size() > static_cast<size_t>(ch) ? pp.mean[ch] : pp.mean.back();
        double stdv = pp.std.size() > static_cast<size_t>(ch) ? pp.std[ch] : pp.std.back();
        float v = static_cast<float>((row[x * c + ch] - mean) / stdv);
        size_t idx = pp.nhwc ? (static_cast<size_t>(y) * w + x) * c + ch : (static_cast<size_t>(ch) * h + y) * w + x;
        out[idx] = v;
      }
  }
  return t;
}

class IdxDataset : public Dataset {
 public:
  IdxDataset(const std::string& path, const Preprocess& pp) : path_(path), pp_(pp) {
    bytes_ = read_gz(path);
    if (bytes_.size() < 16 || be32(bytes_, 0) != 0x00000803)
      fail(ErrorCode::InvalidInput, path + ": not an IDX image file (magic 0x803)");
    n_ = be32(bytes_, 4);
    h_ = be32(bytes_, 8);
    w_ = be32(bytes_, 12);
    if (bytes_.size() < 16 + static_cast<size_t>(n_) * h_ * w_)
      fail(ErrorCode::InvalidInput, path + ": truncated IDX data");
    std::string lpath = path;
    auto pos = lpath.find("images-idx3");
    if (pos != std::string::npos) {
      lpath.replace(pos, 11, "labels-idx1");
      if (fs::exists(lpath)) {
        std::string lb = read_gz(lpath);
        if (lb.size() < 8 || be32(lb, 0) != 0x00000801 || be32(lb, 4) != static_cast<uint32_t>(n_) ||
            lb.size() < 8 + static_cast<size_t>(n_))
          fail(ErrorCode::InvalidInput, lpath + ": not an IDX label file matching " + path);
        labels_.assign(lb.begin() + 8, lb.begin() + 8 + n_);
      }
    }
  }
  int64_t size() const override { return n_; }
  Tensor load(int64_t i) const override {
    cv::Mat img(static_cast<int>(h_), static_cast<int>(w_), CV_32FC1);
    const auto* src = reinterpret_cast<const unsigned char*>(bytes_.data() + 16 + static_cast<size_t>(i) * h_ * w_);
    for (int64_t k = 0; k < h_ * w_; ++k) img.ptr<float>()[k] = static_cast<float>(src[k] * pp_.pixel_scale);
    return finish_image(img, pp_);
  }
  std::string describe(int64_t i) const override { return "sample " + std::to_string(i) + " of " + path_; }
  bool has_labels() const override { return !labels_.empty(); }
  int64_t load_label(int64_t i) const override { return labels_.empty() ? -1 : static_cast<unsigned char>(labels_[i]); }

 private:
  std::string path_, bytes_, labels_;
  Preprocess pp_;
  int64_t n_, h_, w_;
};

// Arrays with a leading sample dimension (one .npy, an .npz, or a folder of .npy files).
class ArrayDataset : public Dataset {
 public:
  void add(const Tensor& t, const std::string& source, bool one_sample) {
    if (t.shape().empty()) fail(ErrorCode::InvalidInput, source + ": a scalar is not a sample");
    Tensor f = to_float(t, source);
    int64_t n = one_sample ? 1 : f.shape()[0];
    Shape sample_shape = one_sample ? f.shape() : Shape(f.shape().begin() + 1, f.shape().end());
    if (!arrays_.empty() && sample_shape != sample_shape_)
      fail(ErrorCode::InvalidInput, source + ": sample shape " + shape_str(sample_shape) + " differs from " +
                                        shape_str(sample_shape_) + " of the other samples");
    sample_shape_ = sample_shape;
    for (int64_t i = 0; i < n; ++i) index_.push_back({arrays_.size(), i});
    arrays_.push_back(std::move(f));
    sources_.push_back(source);
  }
  void set_labels(const Tensor& t) {
    labels_ = t.to_int64s();
    if (static_cast<int64_t>(labels_.size()) != size())
      fail(ErrorCode::InvalidInput, "labels count differs from samples");
  }
  int64_t size() const override { return static_cast<int64_t>(index_.size()); }
  Tensor load(int64_t i) const override {
    auto [a, k] = index_[i];
    size_t per = static_cast<size_t>(shape_numel(sample_shape_));
    Tensor t =
        Tensor::from_bytes(DType::Float32, sample_shape_, arrays_[a].data<float>() + k * per, per * sizeof(float));
    check_finite(t, describe(i));
    return t;
  }
  std::string describe(int64_t i) const override {
    return "sample " + std::to_string(i) + " (" + sources_[index_[i].first] + ")";
  }
  bool has_labels() const override { return !labels_.empty(); }
  int64_t load_label(int64_t i) const override { return labels_.empty() ? -1 : labels_[i]; }

 private:
  static Tensor to_float(const Tensor& t, const std::string& source) {
    if (t.dtype() == DType::Float32) return t;
    std::vector<double> v = t.to_doubles();
    std::vector<float> f(v.begin(), v.end());
    (void)source;
    return Tensor::from_vector(DType::Float32, t.shape(), f);
  }
  std::vector<Tensor> arrays_;
  std::vector<std::string> sources_;
  std::vector<std::pair<size_t, int64_t>> index_;
  Shape sample_shape_;
  std::vector<int64_t> labels_;
};

// An .npz keyed by model input names: per-sample arrays share their leading dim (the sample
// count, the largest leading dim among them); any other array is a shared input.
class NamedInputsDataset : public Dataset {
 public:
  NamedInputsDataset(const std::string& path, NamedTensors arrays) : path_(path) {
    int64_t n = 0;
    for (const auto& [k, t] : arrays)
      if (k != "labels" && !t.shape().empty()) n = std::max(n, t.shape()[0]);
    n_ = n;
    for (auto& [k, t] : arrays) {
      if (k == "labels") {
        labels_ = t.to_int64s();
        if (static_cast<int64_t>(labels_.size()) != n_)
          fail(ErrorCode::InvalidInput, path + ": 'labels' count differs from the samples");
      } else if (!t.shape().empty() && t.shape()[0] == n_) {
        names_.push_back(k);
        per_sample_.push_back(std::move(t));
      } else {
        shared_.emplace_back(k, std::move(t));
      }
    }
  }
  int64_t size() const override { return names_.empty() ? 0 : n_; }
  Tensor load(int64_t i) const override { return load_inputs(i).at(0); }
  std::vector<Tensor> load_inputs(int64_t i) const override {
    std::vector<Tensor> out;
    for (size_t a = 0; a < per_sample_.size(); ++a) {
      const Tensor& t = per_sample_[a];
      Shape shape(t.shape().begin() + 1, t.shape().end());
      size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(t.dtype());
      Tensor s = Tensor::from_bytes(t.dtype(), shape, static_cast<const char*>(t.raw()) + bytes * i, bytes);
      if (dtype_is_float(s.dtype())) check_finite(s, describe(i) + " input '" + names_[a] + "'");
      out.push_back(std::move(s));
    }
    return out;
  }
  std::vector<std::string> input_names() const override { return names_; }
  std::vector<std::pair<std::string, Tensor>> shared_inputs() const override { return shared_; }
  std::string describe(int64_t i) const override { return "sample " + std::to_string(i) + " of " + path_; }
  bool has_labels() const override { return !labels_.empty(); }
  int64_t load_label(int64_t i) const override { return labels_.empty() ? -1 : labels_[i]; }

 private:
  std::string path_;
  int64_t n_ = 0;
  std::vector<std::string> names_;
  std::vector<Tensor> per_sample_;
  std::vector<std::pair<std::string, Tensor>> shared_;
  std::vector<int64_t> labels_;
};

// A folder of .npz files keyed by model input names, one sample (batch dim 1) or a few per file:
// arrays that differ between files are concatenated along dim 0 (per-sample inputs); an array
// identical in every file (a sample rate, a zero initial state) is a shared input, fed whole.
NamedTensors join_npz_files(const std::vector<fs::path>& files) {
  std::vector<NamedTensors> all;
  for (const auto& f : files) all.push_back(read_npz(f.string()));
  NamedTensors out;
  for (const auto& [key, first] : all[0]) {
    bool same = true;
    std::vector<const Tensor*> parts;
    for (size_t i = 0; i < all.size(); ++i) {
      const Tensor* t = nullptr;
      for (const auto& [k, v] : all[i])
        if (k == key) t = &v;
      if (!t)
        fail(ErrorCode::InvalidInput,
             files[i].string() + ": no array '" + key + "' (" + files[0].string() + " has one)");
      same = same && t->dtype() == first.dtype() && t->shape() == first.shape() &&
             std::memcmp(t->raw(), first.raw(), t->nbytes()) == 0;
      parts.push_back(t);
    }
    if (same && all.size() > 1) {
      out.emplace_back(key, first);
      continue;
    }
    Shape shape = first.shape();
    if (shape.empty())
      fail(ErrorCode::InvalidInput, files[0].string() + ": per-sample array '" + key + "' has no batch dimension");
    std::string bytes;
    int64_t n = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      const Tensor& t = *parts[i];
      if (t.dtype() != first.dtype() || t.shape().size() != shape.size() ||
          !std::equal(shape.begin() + 1, shape.end(), t.shape().begin() + 1))
        fail(ErrorCode::InvalidInput, files[i].string() + ": array '" + key + "' is " + shape_str(t.shape()) + ", " +
                                          files[0].string() + " has " + shape_str(shape));
      bytes.append(static_cast<const char*>(t.raw()), t.nbytes());
      n += t.shape()[0];
    }
    shape[0] = n;
    out.emplace_back(key, Tensor::from_bytes(first.dtype(), shape, bytes.data(), bytes.size()));
  }
  return out;
}

bool is_image(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), ::tolower);
  return e == ".jpg" || e == ".jpeg" || e == ".png" || e == ".bmp" || e == ".ppm" || e == ".pgm" || e == ".webp";
}

class ImageDataset : public Dataset {
 public:
  ImageDataset(std::vector<std::pair<std::string, int64_t>> files, std::vector<std::string> classes,
               const Preprocess& pp)
      : files_(std::move(files)), classes_(std::move(classes)), pp_(pp) {}
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  Tensor load(int64_t i) const override {
    const std::string& path = files_[i].first;
    cv::Mat img = cv::imread(path, pp_.grayscale ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
    if (img.empty()) fail(ErrorCode::InvalidInput, describe(i) + ": cannot decode image");
    if (!pp_.grayscale && !pp_.bgr) cv::cvtColor(img, img, cv::COLOR_BGR2RGB);
    if (pp_.width > 0 && pp_.height > 0) {
      cv::resize(img, img, cv::Size(pp_.width, pp_.height), 0, 0, cv::INTER_LINEAR);
    } else if (pp_.resize > 0) {
      double s = double(pp_.resize) / std::min(img.cols, img.rows);
      cv::resize(img, img,
                 cv::Size(std::max(1, int(std::lround(img.cols * s))), std::max(1, int(std::lround(img.rows * s)))), 0,
                 0, cv::INTER_LINEAR);
    }
    if (pp_.center_crop > 0) {
      int c = std::min({pp_.center_crop, img.cols, img.rows});
      img = img(cv::Rect((img.cols - c) / 2, (img.rows - c) / 2, c, c)).clone();
    }
    cv::Mat f;
    img.convertTo(f, CV_32F, pp_.pixel_scale);
    return finish_image(f, pp_);
  }
  std::string describe(int64_t i) const override {
    return "sample " + std::to_string(i) + " (" + files_[i].first + ")";
  }
  bool has_labels() const override { return !classes_.empty(); }
  int64_t load_label(int64_t i) const override { return files_[i].second; }
  std::vector<std::string> class_names() const override { return classes_; }

 private:
  std::vector<std::pair<std::string, int64_t>> files_;
  std::vector<std::string> classes_;
  Preprocess pp_;
};

std::vector<fs::path> sorted_entries(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

int64_t Dataset::checked(int64_t index) const {
  if (index < 0 || index >= size())
    fail(ErrorCode::InvalidInput,
         "sample " + std::to_string(index) + " requested; the data has " + std::to_string(size()) + " sample(s)");
  return index;
}

std::unique_ptr<Dataset> open_dataset(const std::string& path, const Preprocess& pp,
                                      const std::vector<std::string>& model_inputs) {
  if (!fs::exists(path)) fail(ErrorCode::InvalidInput, path + ": no such file or directory");
  if (path.find("idx3-ubyte") != std::string::npos) return std::make_unique<IdxDataset>(path, pp);
  if (ends_with(path, ".npy")) {
    auto d = std::make_unique<ArrayDataset>();
    d->add(read_npy(path), path, false);
    return d;
  }
  if (ends_with(path, ".npz")) {
    NamedTensors all = read_npz(path);
    bool named = false;
    for (const auto& [key, t] : all)
      named = named || std::find(model_inputs.begin(), model_inputs.end(), key) != model_inputs.end();
    if (named) {
      auto d = std::make_unique<NamedInputsDataset>(path, std::move(all));
      if (d->size() == 0) fail(ErrorCode::InvalidInput, path + ": no per-sample arrays");
      return d;
    }
    auto d = std::make_unique<ArrayDataset>();
    std::unique_ptr<Tensor> labels;
    for (auto& [key, t] : all) {
      if (key == "labels")
        labels = std::make_unique<Tensor>(t);
      else
        d->add(t, path + ":" + key, false);
    }
    if (labels) d->set_labels(*labels);
    if (d->size() == 0) fail(ErrorCode::InvalidInput, path + ": no samples");
    return d;
  }
  if (!fs::is_directory(path))
    fail(ErrorCode::InvalidInput, path + ": unknown data format (use IDX, .npy, .npz or a folder)");
  auto entries = sorted_entries(path);
  std::vector<std::string> classes;
  for (const auto& e : entries)
    if (fs::is_directory(e)) classes.push_back(e.filename().string());
  if (!classes.empty()) {  // ImageFolder: one subfolder per class, sorted names -> label index
    std::vector<std::pair<std::string, int64_t>> files;
    for (size_t c = 0; c < classes.size(); ++c)
      for (const auto& f : sorted_entries(fs::path(path) / classes[c]))
        if (is_image(f)) files.emplace_back(f.string(), static_cast<int64_t>(c));
    if (files.empty()) fail(ErrorCode::InvalidInput, path + ": no images in the class folders");
    return std::make_unique<ImageDataset>(files, classes, pp);
  }
  std::vector<fs::path> npz;
  for (const auto& e : entries)
    if (e.extension() == ".npz") npz.push_back(e);
  if (!npz.empty() && !model_inputs.empty()) {
    auto d = std::make_unique<NamedInputsDataset>(path, join_npz_files(npz));
    if (d->size() == 0) fail(ErrorCode::InvalidInput, path + ": no per-sample arrays in the .npz files");
    return d;
  }
  std::vector<std::pair<std::string, int64_t>> images;
  auto arrays = std::make_unique<ArrayDataset>();
  for (const auto& e : entries) {
    if (is_image(e))
      images.emplace_back(e.string(), -1);
    else if (e.extension() == ".npy")
      arrays->add(read_npy(e.string()), e.string(), true);
  }
  if (!images.empty()) return std::make_unique<ImageDataset>(images, std::vector<std::string>{}, pp);
  if (arrays->size() > 0) return arrays;
  fail(ErrorCode::InvalidInput,
       path + ": the folder holds no images, .npy files, .npz files (multi-input models) or class folders");
}

}  // namespace edgequant
