// Shared by the CUDA conv2d kernels: element types and their accumulators,
// and the launchers each algorithm file defines.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "common/cuda_check.cuh"
#include "common/shapes.h"

namespace convbench {
namespace cuda_conv {

// Half types accumulate in float, double in double.
template <typename T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};
template <typename T>
using acc_t = typename AccOf<T>::type;

template <typename T>
__device__ __forceinline__ acc_t<T> to_acc(T v) {
  return static_cast<acc_t<T>>(v);
}
template <>
__device__ __forceinline__ float to_acc<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float to_acc<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T from_acc(acc_t<T> v) {
  return static_cast<T>(v);
}
template <>
__device__ __forceinline__ __half from_acc<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

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
