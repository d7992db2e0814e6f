// Element types of the CUDA kernels: the accumulator each one sums in (half
// types in float, double in double) and the DType -> C++ type dispatch.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common/check.h"
#include "common/cuda_check.cuh"
#include "common/shapes.h"

namespace convbench {

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
template <typename T>
__device__ __forceinline__ T from_acc(acc_t<T> v) {
  return static_cast<T>(v);
}

// The half types convert through their intrinsics (back to the half type
// rounding to nearest even): one row per type.
#define CB_HALF_CONVERSIONS(T, TO_FLOAT, FROM_FLOAT)                              \
  template <>                                                                      \
  __device__ __forceinline__ float to_acc<T>(T v) {                                \
    return TO_FLOAT(v);                                                            \
  }                                                                                \
  template <>                                                                      \
  __device__ __forceinline__ T from_acc<T>(float v) {                              \
    return FROM_FLOAT(v);                                                          \
  }
CB_HALF_CONVERSIONS(__half, __half2float, __float2half_rn)
CB_HALF_CONVERSIONS(__nv_bfloat16, __bfloat162float, __float2bfloat16_rn)
#undef CB_HALF_CONVERSIONS

// The coordinates of flat index i in a [*, d1, d2, d3] tensor, slowest first.
struct Index4 {
  int64_t i0, i1, i2, i3;
};
__host__ __device__ __forceinline__ Index4 unflatten4(int64_t i, int64_t d1, int64_t d2,
                                                      int64_t d3) {
  Index4 r;
  r.i3 = i % d3;
  i /= d3;
  r.i2 = i % d2;
  i /= d2;
  r.i1 = i % d1;
  r.i0 = i / d1;
  return r;
}

// M(T) for every element type the CUDA kernels take (explicit instantiations).
#define CB_FOR_EACH_CUDA_DTYPE(M) M(float) M(double) M(__half) M(__nv_bfloat16)

// Calls f(T{}) with the element type dtype names; op names the caller in the
// error for an unknown id.
template <typename F>
void dispatch_cuda_dtype(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::Float32: f(float{}); return;
    case DType::Float64: f(double{}); return;
    case DType::Float16: f(__half{}); return;
    case DType::BFloat16: f(__nv_bfloat16{}); return;
  }
  CB_CHECK(false, op, ": unknown dtype id ", static_cast<int>(dtype));
}

// How an entry point with work to do runs it: on `device` (the caller's
// current device is restored after) and the caller's stream, f(T{}, stream)
// with the element type dtype names.
template <typename F>
void dispatch_on_device(DType dtype, const char* op, int device, void* stream, F&& f) {
  CudaDeviceGuard guard(device);
  const auto st = static_cast<cudaStream_t>(stream);
  dispatch_cuda_dtype(dtype, op, [&](auto tag) { f(tag, st); });
}

// An entry point whose work is result_numel elements: the dtype is checked
// even with no work (an empty result), then f runs as dispatch_on_device's.
template <typename F>
void dispatch_unless_empty(DType dtype, const char* op, int64_t result_numel, int device,
                           void* stream, F&& f) {
  dispatch_cuda_dtype(dtype, op, [](auto) {});
  if (result_numel > 0) dispatch_on_device(dtype, op, device, stream, f);
}

}  // namespace convbench
