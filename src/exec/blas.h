// Matrix products on the executor's one thread pool. LibTorch calls BLAS (Debian's OpenBLAS)
// for at::mm / at::matmul; OpenBLAS keeps its own worker threads, which spin on sched_yield
// after every call and, on a 2-core machine, took a third of a core from the oneDNN
// convolutions that ran next (mobilenet_v2: 32 float batches 4.6 s with its threads, 3.2 s
// without). The executor confines BLAS to the calling thread and splits large products over
// the OpenMP pool itself.
#pragma once
#include <ATen/core/Tensor.h>

namespace edgequant::exec {

// Once per process: BLAS runs on the calling thread only (no-op when the BLAS is not OpenBLAS).
void confine_blas_threads();

// a @ b for 2-D operands, rows (or columns, for few rows) split over the pool. Falls back to
// at::mm where autograd records the product (out= forms are not differentiable).
at::Tensor parallel_mm(const at::Tensor& a, const at::Tensor& b);

// ONNX MatMul / numpy matmul semantics (broadcast batch dimensions, 1-D operands), the matrix
// products split over the pool as parallel_mm does.
at::Tensor parallel_matmul(const at::Tensor& a, const at::Tensor& b);

}  // namespace edgequant::exec
