// avg_pool2d on the GPU, one thread per element, sums in acc_t<T> (float for
// the half types). Forward: each output sums its window. Backward is a
// gather: each input element sums dy / divisor over the windows that hold
// it, so every dx element is written once, without atomics (deterministic
// for overlapping windows too).
#include "avgpool2d/avg_pool2d.h"
#include "common/check.h"
#include "common/cuda_check.cuh"
#include "common/cuda_types.cuh"
#include "common/kernel_table.h"

namespace convbench {

namespace {

constexpr int kBlock = 256;

// Output i of the forward: its window's sum over its divisor.
template <typename T>
__device__ __forceinline__ T window_mean(const AvgPool2dShape& s, const T* __restrict__ x,
                                         int64_t i) {
  const T* xp = x + (i / (s.P * s.Q)) * s.H * s.W;  // its (n, c) plane
  const AvgSpan r = avg_rows(s, i / s.Q % s.P), c = avg_cols(s, i % s.Q);
  using A = acc_t<T>;
  A sum = 0;
  for (int64_t h = r.begin; h < r.end; ++h)
    for (int64_t w = c.begin; w < c.end; ++w) sum += to_acc<T>(xp[h * s.W + w]);
  const bool empty = r.begin >= r.end || c.begin >= c.end;
  return from_acc<T>(empty ? A(0) : sum / static_cast<A>(avg_divisor(s, r, c)));
}

// Windows o (of n) along one axis whose span [o*stride - pad, +kernel) holds i.
struct WindowRange {
  int64_t lo, hi;  // inclusive; empty when lo > hi
};

__device__ __forceinline__ WindowRange windows_holding(int64_t i, int64_t n, int64_t stride,
                                                       int64_t pad, int64_t kernel) {
  const int64_t in = i + pad;
  const int64_t lo = in >= kernel ? (in - kernel) / stride + 1 : 0;
  const int64_t hi = in / stride < n - 1 ? in / stride : n - 1;
  return {lo, hi};
}

// Input element i of the backward: dy / divisor summed over the windows holding it.
template <typename T>
__device__ __forceinline__ T gathered_grad(const AvgPool2dShape& s, const T* __restrict__ dy,
                                           int64_t i) {
  const T* dyp = dy + (i / (s.H * s.W)) * s.P * s.Q;  // its (n, c) plane
  const WindowRange ps = windows_holding(i / s.W % s.H, s.P, s.stride_h, s.pad_h, s.kernel_h);
  const WindowRange qs = windows_holding(i % s.W, s.Q, s.stride_w, s.pad_w, s.kernel_w);
  acc_t<T> sum = 0;
  for (int64_t p = ps.lo; p <= ps.hi; ++p) {
    const AvgSpan r = avg_rows(s, p);
    for (int64_t q = qs.lo; q <= qs.hi; ++q)
      sum += to_acc<T>(dyp[p * s.Q + q]) / static_cast<acc_t<T>>(avg_divisor(s, r, avg_cols(s, q)));
  }
  return from_acc<T>(sum);
}

// One thread per element of the result: the output (forward) or dx (backward).
template <typename T, bool kForward>
__global__ void __launch_bounds__(kBlock)
    avg_pool2d_kernel(AvgPool2dShape s, const T* __restrict__ src, T* __restrict__ dst,
                      int64_t total) {
  CB_GRID_STRIDE_LOOP(i, total) {
    dst[i] = kForward ? window_mean(s, src, i) : gathered_grad(s, src, i);
  }
}

// Runs the pass on the caller's stream (nothing when the result is empty).
template <bool kForward>
void run_pass(DType dtype, const AvgPool2dShape& s, const void* src, void* dst, int device,
              void* stream) {
  const int64_t n = kForward ? s.output_numel() : s.input_numel();
  dispatch_unless_empty(dtype, "avg_pool2d", n, device, stream, [&](auto tag, cudaStream_t st) {
    using T = decltype(tag);
    launch_checked(kForward ? "avg_pool2d_kernel (forward)" : "avg_pool2d_kernel (backward)",
                   [&] {
      avg_pool2d_kernel<T, kForward><<<grid_for(n, kBlock), kBlock, 0, st>>>(
          s, static_cast<const T*>(src), static_cast<T*>(dst), n);
    });
  });
}

}  // namespace

void avg_pool2d_forward_cuda(DType dtype, const AvgPool2dShape& s, const void* x, void* y,
                             int device, void* stream) {
  run_pass<true>(dtype, s, x, y, device, stream);
}

void avg_pool2d_backward_cuda(DType dtype, const AvgPool2dShape& s, const void* dy, void* dx,
                              int device, void* stream) {
  run_pass<false>(dtype, s, dy, dx, device, stream);
}

CB_REGISTER_KERNEL("avg_pool2d_forward", CUDA, avg_pool2d_forward_cuda, "x", "y")
CB_REGISTER_KERNEL("avg_pool2d_backward", CUDA, avg_pool2d_backward_cuda, "dy", "dx")

}  // namespace convbench
