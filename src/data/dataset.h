// Calibration and evaluation data: a Dataset yields one float32 model input per sample (no
// batch dim) and, when labeled, its class. Sources: IDX files (Fashion-MNIST), .npy/.npz
// arrays, a folder of .npy files, a folder of images (OpenCV), an ImageFolder tree (labels).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/preprocess.h"
#include "ir/tensor.h"

namespace edgequant {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Float32 sample `index`; throws InvalidInput for an index outside [0, size()), unreadable data
  // or NaN/Inf, naming the sample.
  Tensor sample(int64_t index) const { return load(checked(index)); }
  virtual std::string describe(int64_t index) const = 0;  // "sample 3 (cat/001.jpg)"
  virtual bool has_labels() const { return false; }
  int64_t label(int64_t index) const { return has_labels() ? load_label(checked(index)) : -1; }
  virtual std::vector<std::string> class_names() const { return {}; }
  // Models with several inputs: the input names each sample carries ({} = one unnamed input).
  virtual std::vector<std::string> input_names() const { return {}; }
  // Every per-sample input of sample `index`, in input_names() order, in its stored dtype
  // (non-float inputs such as int64 sample rates pass through).
  std::vector<Tensor> sample_inputs(int64_t index) const { return load_inputs(checked(index)); }
  // Inputs that are the same for every sample (a scalar sample rate, an initial state): fed
  // whole with every batch.
  virtual std::vector<std::pair<std::string, Tensor>> shared_inputs() const { return {}; }

 protected:
  // What each kind of data implements, for an index already checked against size().
  virtual Tensor load(int64_t index) const = 0;
  virtual std::vector<Tensor> load_inputs(int64_t index) const { return {load(index)}; }
  virtual int64_t load_label(int64_t) const { return -1; }

 private:
  int64_t checked(int64_t index) const;
};

// `path`: FILE-images-idx3-ubyte[.gz] (labels from the matching labels-idx1 file), FILE.npy
// ([N, ...]), FILE.npz (arrays concatenated along dim 0; "labels" entry used as labels),
// or a directory (ImageFolder class subfolders, image files, or .npy files).
// With `model_inputs`, an .npz whose keys name model inputs is read as one sample per row of
// each named array (arrays whose leading dim is not the sample count are shared inputs).
std::unique_ptr<Dataset> open_dataset(const std::string& path, const Preprocess& preprocess,
                                      const std::vector<std::string>& model_inputs = {});

// Throws InvalidInput naming the sample if any value is NaN or infinite.
void check_finite(const Tensor& t, const std::string& what);

}  // namespace edgequant
