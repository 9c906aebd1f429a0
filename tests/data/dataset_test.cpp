// Datasets: ImageFolder through OpenCV with preprocessing, IDX with labels, .npz with labels.
#include "data/dataset.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <opencv2/imgcodecs.hpp>

#include "data/npy.h"
#include "edgequant/error.h"

using namespace edgequant;
namespace fs = std::filesystem;

namespace {
TEST(ImageFolder, ClassesPreprocessingAndLayout) {
  fs::path root = fs::temp_directory_path() / "eq_imagefolder";
  fs::remove_all(root);
  for (const char* cls : {"cat", "dog"}) fs::create_directories(root / cls);
  // 4x6 pure red images (OpenCV writes BGR): resize shorter side to 2 -> 2x3, crop 2x2.
  cv::Mat red(4, 6, CV_8UC3, cv::Scalar(0, 0, 255));
  cv::imwrite((root / "cat" / "a.png").string(), red);
  cv::imwrite((root / "dog" / "b.png").string(), red);
  Preprocess pp;
  pp.resize = 2;
  pp.center_crop = 2;
  pp.mean = {0.5};
  pp.std = {0.5};
  auto ds = open_dataset(root.string(), pp);
  ASSERT_EQ(ds->size(), 2);
  EXPECT_TRUE(ds->has_labels());
  EXPECT_EQ(ds->label(0), 0);
  EXPECT_EQ(ds->label(1), 1);
  EXPECT_EQ(ds->class_names(), (std::vector<std::string>{"cat", "dog"}));
  Tensor t = ds->sample(1);
  EXPECT_EQ(t.shape(), (Shape{3, 2, 2}));
  // RGB order: R = 255 -> (1 - 0.5) / 0.5 = 1; G = B = 0 -> -1.
  for (int i = 0; i < 4; ++i) {
    EXPECT_FLOAT_EQ(t.data<float>()[i], 1.0f);
    EXPECT_FLOAT_EQ(t.data<float>()[4 + i], -1.0f);
    EXPECT_FLOAT_EQ(t.data<float>()[8 + i], -1.0f);
  }
  pp.bgr = true;
  pp.nhwc = true;
  Tensor b = open_dataset(root.string(), pp)->sample(0);
  EXPECT_EQ(b.shape(), (Shape{2, 2, 3}));
  EXPECT_FLOAT_EQ(b.data<float>()[0], -1.0f);  // B first
  EXPECT_FLOAT_EQ(b.data<float>()[2], 1.0f);   // R last
}

TEST(IdxDataset, FashionMnistImagesAndLabels) {
  auto ds = open_dataset("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", {});
  ASSERT_EQ(ds->size(), 10000);
  ASSERT_TRUE(ds->has_labels());
  EXPECT_EQ(ds->label(0), 9);  // the first test image is an ankle boot
  EXPECT_EQ(ds->label(1), 2);  // then a pullover
  Tensor t = ds->sample(0);
  EXPECT_EQ(t.shape(), (Shape{1, 28, 28}));
  float lo = 1, hi = 0;
  for (int64_t i = 0; i < t.numel(); ++i) {
    lo = std::min(lo, t.data<float>()[i]);
    hi = std::max(hi, t.data<float>()[i]);
  }
  EXPECT_FLOAT_EQ(lo, 0.0f);
  EXPECT_LE(hi, 1.0f);
  EXPECT_GT(hi, 0.5f);
}

TEST(NpzDataset, ArraysWithLabels) {
  std::string path = (fs::temp_directory_path() / "eq_labeled.npz").string();
  std::vector<float> x = {1, 2, 3, 4, 5, 6};
  write_npz(path, {{"x", Tensor::from_vector(DType::Float32, {3, 2}, x)},
                   {"labels", Tensor::from_vector<int64_t>(DType::Int64, {3}, {2, 0, 1})}});
  auto ds = open_dataset(path, {});
  ASSERT_EQ(ds->size(), 3);
  EXPECT_EQ(ds->label(2), 1);
  EXPECT_FLOAT_EQ(ds->sample(1).data<float>()[1], 4.0f);
}
}  // namespace

// An index outside the data is the caller's error, named, not a read past the array.
TEST(Dataset, IndexOutsideTheDataIsRefusedByName) {
  std::string path = (std::filesystem::temp_directory_path() / "eq_ds_index.npy").string();
  write_npy(path, Tensor(DType::Float32, {2, 3}));
  auto ds = open_dataset(path, {});
  EXPECT_EQ(ds->sample(1).numel(), 3);
  for (int64_t i : {int64_t(2), int64_t(-1), int64_t(1) << 40}) {
    try {
      ds->sample(i);
      FAIL() << "sample " << i << " was read";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidInput);
      EXPECT_NE(std::string(e.what()).find("the data has 2 sample(s)"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(ds->sample_inputs(2), Error);
}
