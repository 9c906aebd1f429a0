// ONNX Runtime as the independent reference (npm onnxruntime-node through tools/ort_run.js):
// one node process per call, float32 .npy in and out.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "data/npy.h"
#include "exec/executor.h"
#include "exec/kernel.h"
#include "test_util.h"

namespace edgequant::testing {

// Runs `model` in ONNX Runtime on `x` (input `name`); outputs in graph order.
inline std::vector<at::Tensor> run_in_ort(const std::string& dir, const std::string& model, const std::string& name,
                                          const at::Tensor& x) {
  write_npy(dir + "/input.npy", exec::to_ir_tensor(x.contiguous()));
  CommandResult r = run_command("node " + std::string(EQ_SOURCE_DIR) + "/tools/ort_run.js " + model + " " + dir +
                                "/ort " + name + "=" + dir + "/input.npy");
  if (r.status != 0) ADD_FAILURE() << "ONNX Runtime failed on " << model << ": " << r.output;
  std::vector<at::Tensor> outs;
  for (int k = 0; r.status == 0 && std::filesystem::exists(dir + "/ort." + std::to_string(k) + ".npy"); ++k)
    outs.push_back(exec::to_aten(read_npy(dir + "/ort." + std::to_string(k) + ".npy")));
  return outs;
}

// A fresh per-process scratch directory.
inline std::string scratch_dir(const std::string& tag) {
  std::string dir =
      (std::filesystem::temp_directory_path() / ("eq_" + tag + "_" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace edgequant::testing
