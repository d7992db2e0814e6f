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

template <typename T>
__global__ void __launch_bounds__(kBlock)
    avg_pool2d_forward_kernel(AvgPool2dShape s, const T* __restrict__ x, T* __restrict__ y) {
  using A = acc_t<T>;
  const int64_t total = s.N * s.C * s.P * s.Q;
  CB_GRID_STRIDE_LOOP(i, total) {
    const Index4 o = unflatten4(i, s.C, s.P, s.Q);  // (n, c, p, q)
    const T* xp = x + (o.i0 * s.C + o.i1) * s.H * s.W;
    const AvgSpan r = avg_rows(s, o.i2), c = avg_cols(s, o.i3);
    A sum = 0;
    for (int64_t h = r.begin; h < r.end; ++h)
      for (int64_t w = c.begin; w < c.end; ++w) sum += to_acc<T>(xp[h * s.W + w]);
    const bool empty = r.begin >= r.end || c.begin >= c.end;
    y[i] = from_acc<T>(empty ? A(0) : sum / static_cast<A>(avg_divisor(s, r, c)));
  }
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

template <typename T>
__global__ void __launch_bounds__(kBlock)
    avg_pool2d_backward_kernel(AvgPool2dShape s, const T* __restrict__ dy, T* __restrict__ dx) {
  using A = acc_t<T>;
  const int64_t total = s.N * s.C * s.H * s.W;
  CB_GRID_STRIDE_LOOP(i, total) {
    const Index4 e = unflatten4(i, s.C, s.H, s.W);  // (n, c, h, w)
    const T* dyp = dy + (e.i0 * s.C + e.i1) * s.P * s.Q;
    const WindowRange ps = windows_holding(e.i2, s.P, s.stride_h, s.pad_h, s.kernel_h);
    const WindowRange qs = windows_holding(e.i3, s.Q, s.stride_w, s.pad_w, s.kernel_w);
    A sum = 0;
    for (int64_t p = ps.lo; p <= ps.hi; ++p) {
      const AvgSpan r = avg_rows(s, p);
      for (int64_t q = qs.lo; q <= qs.hi; ++q)
        sum += to_acc<T>(dyp[p * s.Q + q]) / static_cast<A>(avg_divisor(s, r, avg_cols(s, q)));
    }
    dx[i] = from_acc<T>(sum);
  }
}

}  // namespace

void avg_pool2d_forward_cuda(DType dtype, const AvgPool2dShape& s, const void* x, void* y,
                             int device, void* stream) {
  dispatch_unless_empty(dtype, "avg_pool2d", s.output_numel(), device, stream,
                        [&](auto tag, cudaStream_t st) {
    using T = decltype(tag);
    launch_checked("avg_pool2d_forward_kernel", [&] {
      avg_pool2d_forward_kernel<T><<<grid_for(s.output_numel(), kBlock), kBlock, 0, st>>>(
          s, static_cast<const T*>(x), static_cast<T*>(y));
    });
  });
}

void avg_pool2d_backward_cuda(DType dtype, const AvgPool2dShape& s, const void* dy, void* dx,
                              int device, void* stream) {
  dispatch_unless_empty(dtype, "avg_pool2d", s.input_numel(), device, stream,
                        [&](auto tag, cudaStream_t st) {
    using T = decltype(tag);
    launch_checked("avg_pool2d_backward_kernel", [&] {
      avg_pool2d_backward_kernel<T><<<grid_for(s.input_numel(), kBlock), kBlock, 0, st>>>(
          s, static_cast<const T*>(dy), static_cast<T*>(dx));
    });
  });
}

CB_REGISTER_KERNEL("avg_pool2d_forward", CUDA, avg_pool2d_forward_cuda, "x", "y")
CB_REGISTER_KERNEL("avg_pool2d_backward", CUDA, avg_pool2d_backward_cuda, "dy", "dx")

}  // namespace convbench
