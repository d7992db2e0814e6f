// Shared by the CUDA conv2d kernels: the 32-bit offset limit
// and the launchers each algorithm file defines.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/cuda_check.cuh"
#include "common/cuda_types.cuh"
#include "common/shapes.h"

namespace convbench {
namespace cuda_conv {

// True when every flat offset the 32-bit kernels form fits in int32 and their
// grids fit (groups on grid.z, channel tiles on grid.y).
inline bool fits_int32(const Conv2dShape& s) {
  constexpr int64_t kMax = (int64_t{1} << 31) - 1;
  return s.input_numel() < kMax && s.output_numel() < kMax && s.weight_numel() < kMax &&
         s.groups <= 4096 && s.C <= (1 << 20) && s.K <= (1 << 20);
}

// ---- launchers (one file per algorithm) ----
// Direct: one thread per output element (64-bit indexing, any size).
template <typename T>
void direct_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y,
                    cudaStream_t st);
template <typename T>
void direct_backward_input(const Conv2dShape& s, const T* dy, const T* w, T* dx, cudaStream_t st);
template <typename T>
void direct_backward_weight(const Conv2dShape& s, const T* dy, const T* x, T* dw,
                            cudaStream_t st);

// ImplicitGemm: shared-memory tiled GEMM over gathered operands (needs fits_int32).
template <typename T>
void igemm_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y,
                   cudaStream_t st);
template <typename T>
void igemm_backward_input(const Conv2dShape& s, const T* dy, const T* w, T* dx, cudaStream_t st);
template <typename T>
void igemm_backward_weight(const Conv2dShape& s, const T* dy, const T* x, T* dw, cudaStream_t st);

// Fused small-layer kernel: one thread per output pixel computes every output
// channel of its group chunk, weights resident in shared memory (needs fits_int32).
template <typename T>
void fused_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y,
                   cudaStream_t st);
template <typename T>
void fused_backward_input(const Conv2dShape& s, const T* dy, const T* w, T* dx, cudaStream_t st);

}  // namespace cuda_conv
}  // namespace convbench
