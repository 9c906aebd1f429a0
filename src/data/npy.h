// NumPy .npy / .npz files <-> Tensor (little-endian, C order; .npz stored or deflated).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "ir/tensor.h"

namespace edgequant {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

Tensor parse_npy(const std::string& bytes, const std::string& where);
std::string serialize_npy(const Tensor& tensor);
Tensor read_npy(const std::string& path);
void write_npy(const std::string& path, const Tensor& tensor);         // atomic
NamedTensors read_npz(const std::string& path);                        // names without ".npy"
void write_npz(const std::string& path, const NamedTensors& tensors);  // atomic, stored

}  // namespace edgequant
