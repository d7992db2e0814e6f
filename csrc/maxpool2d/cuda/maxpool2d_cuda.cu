// max_pool2d on the GPU. Forward: one thread per output element, int64 flat
// in-plane indices like torch (first maximum wins, NaN propagates). Backward
// is a gather: each input element sums, in a fixed window order, the grads of
// the outputs whose argmax points at it. Every dx element is written once,
// with no atomics, so the result is deterministic even for overlapping
// windows.
#include <cmath>

#include "common/check.h"
#include "common/cuda_check.cuh"
#include "common/cuda_types.cuh"
#include "common/cuda_window.cuh"
#include "common/kernel_table.h"
#include "maxpool2d/maxpool2d.h"
#include "maxpool2d/pool_window.h"

namespace convbench {

namespace {

constexpr int kBlock = 256;

template <typename T>
__global__ void __launch_bounds__(kBlock)
    max_pool2d_forward_kernel(Pool2dShape s, const T* __restrict__ x, T* __restrict__ y,
                              int64_t* __restrict__ indices) {
  using A = acc_t<T>;
  const int64_t total = s.N * s.C * s.P * s.Q;
  CB_GRID_STRIDE_LOOP(i, total) {
    const int64_t q = i % s.Q;
    int64_t t = i / s.Q;
    const int64_t p = t % s.P;
    const int64_t plane = t / s.P;
    const T* xp = x + plane * s.H * s.W;
    const int64_t h0 = p * s.stride_h - s.pad_h, w0 = q * s.stride_w - s.pad_w;
    A best = -INFINITY;  // the comparisons run in A; the stored value is x's own
    T best_val = from_acc<T>(best);
    // torch's rules: an all -inf window reports its first in-bounds position;
    // every NaN replaces the running maximum, so the last NaN gives the index.
    int64_t best_idx =
        pool_first_in_bounds(h0, s.dil_h) * s.W + pool_first_in_bounds(w0, s.dil_w);
    for_each_tap_inside(h0, w0, s.kernel_h, s.kernel_w, s.dil_h, s.dil_w, s.H, s.W,
                        [&](int64_t, int64_t, int64_t h, int64_t w) {
      const T raw = xp[h * s.W + w];
      const A v = to_acc<T>(raw);
      if (v > best || isnan(v)) {
        best = v;
        best_val = raw;
        best_idx = h * s.W + w;
      }
    });
    y[i] = best_val;
    indices[i] = best_idx;
  }
}

template <typename T>
__global__ void __launch_bounds__(kBlock)
    max_pool2d_backward_kernel(Pool2dShape s, const T* __restrict__ dy,
                               const int64_t* __restrict__ indices, T* __restrict__ dx) {
  using A = acc_t<T>;
  const int64_t total = s.N * s.C * s.H * s.W;
  const int64_t pq = s.P * s.Q;
  CB_GRID_STRIDE_LOOP(i, total) {
    const int64_t hw = i % (s.H * s.W);
    const int64_t plane = i / (s.H * s.W);
    const int64_t h = hw / s.W, w = hw % s.W;
    // Windows p whose span [p*sh - ph, p*sh - ph + (kh-1)*dh] holds h.
    const int64_t hn = h + s.pad_h, wn = w + s.pad_w;
    const int64_t span_h = (s.kernel_h - 1) * s.dil_h, span_w = (s.kernel_w - 1) * s.dil_w;
    const int64_t p_lo = hn >= span_h ? (hn - span_h + s.stride_h - 1) / s.stride_h : 0;
    const int64_t p_hi = min(hn / s.stride_h, s.P - 1);
    const int64_t q_lo = wn >= span_w ? (wn - span_w + s.stride_w - 1) / s.stride_w : 0;
    const int64_t q_hi = min(wn / s.stride_w, s.Q - 1);
    const int64_t* ip = indices + plane * pq;
    const T* dyp = dy + plane * pq;
    A acc = 0;
    // pool_window_holds(s, p, q, hw), with what the ranges above already
    // guarantee left out: for p in [p_lo, p_hi], h's offset in window p,
    // hn - p*sh, lies in [0, span_h], so only its place on the dilation grid
    // is left to test (likewise for q). (The full test's divisions kept 64-bit
    // values live and made ptxas spill.)
    for (int64_t p = p_lo; p <= p_hi; ++p) {
      if ((hn - p * s.stride_h) % s.dil_h != 0) continue;
      const int64_t* ipr = ip + p * s.Q;
      const T* dyr = dyp + p * s.Q;
      for (int64_t q = q_lo; q <= q_hi; ++q) {
        if (ipr[q] == hw && (wn - q * s.stride_w) % s.dil_w == 0) acc += to_acc<T>(dyr[q]);
      }
    }
    dx[i] = from_acc<T>(acc);
  }
}

}  // namespace

void max_pool2d_forward_cuda(DType dtype, const Pool2dShape& s, const void* x, void* y,
                             int64_t* indices, int device, void* stream) {
  dispatch_unless_empty(dtype, "max_pool2d", s.output_numel(), device, stream,
                        [&](auto tag, cudaStream_t st) {
    using T = decltype(tag);
    launch_checked("max_pool2d_forward_kernel", [&] {
      max_pool2d_forward_kernel<T><<<grid_for(s.output_numel(), kBlock), kBlock, 0, st>>>(
          s, static_cast<const T*>(x), static_cast<T*>(y), indices);
    });
  });
}

void max_pool2d_backward_cuda(DType dtype, const Pool2dShape& s, const void* dy,
                              const int64_t* indices, void* dx, int device, void* stream) {
  dispatch_unless_empty(dtype, "max_pool2d", s.input_numel(), device, stream,
                        [&](auto tag, cudaStream_t st) {
    using T = decltype(tag);
    launch_checked("max_pool2d_backward_kernel", [&] {
      max_pool2d_backward_kernel<T><<<grid_for(s.input_numel(), kBlock), kBlock, 0, st>>>(
          s, static_cast<const T*>(dy), indices, static_cast<T*>(dx));
    });
  });
}

CB_REGISTER_KERNEL("max_pool2d_forward", CUDA, max_pool2d_forward_cuda, "x", "y", "indices")
CB_REGISTER_KERNEL("max_pool2d_backward", CUDA, max_pool2d_backward_cuda, "dy", "indices", "dx")

}  // namespace convbench
