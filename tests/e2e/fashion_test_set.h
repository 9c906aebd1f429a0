// The Fashion-MNIST test set (10 000 images, Debian's dataset-fashion-mnist) in ten batches of
// 1000 with labels, loaded once, and top-1 of a model over it: shared by the end-to-end tests.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "quant/batches.h"

namespace edgequant::testing {

inline const std::string kFashionData = "/usr/share/datasets/fashion-mnist/";

struct FashionTestSet {
  std::vector<at::Tensor> batches, labels;
};

inline const FashionTestSet& fashion_test_set() {
  static FashionTestSet set = [] {
    FashionTestSet s;
    auto ds = open_dataset(kFashionData + "t10k-images-idx3-ubyte.gz", {});
    quant::BatchStream stream(*ds, 1000, 10);
    at::Tensor b;
    int64_t offset = 0;
    while (stream.next(b)) {
      std::vector<int64_t> l;
      for (int64_t i = 0; i < b.size(0); ++i) l.push_back(ds->label(offset + i));
      offset += b.size(0);
      s.batches.push_back(b);
      s.labels.push_back(at::tensor(l, at::kLong));
    }
    return s;
  }();
  return set;
}

// Top-1 in percent of `model` (a batch of images -> logits) over the test set.
inline double fashion_top1(const std::function<at::Tensor(const at::Tensor&)>& model) {
  const FashionTestSet& s = fashion_test_set();
  int64_t correct = 0, total = 0;
  for (size_t i = 0; i < s.batches.size(); ++i) {
    correct += model(s.batches[i]).argmax(1).eq(s.labels[i]).sum().item<int64_t>();
    total += s.batches[i].size(0);
  }
  return 100.0 * static_cast<double>(correct) / static_cast<double>(total);
}

}  // namespace edgequant::testing
