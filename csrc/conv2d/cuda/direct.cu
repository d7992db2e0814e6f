// Direct convolution on the GPU: the plain definition, one thread per output
// element, 64-bit indices throughout. The correctness baseline every faster
// algorithm is compared with, and the fallback for tensors past 2^31 elements.
#include "common/cuda_window.cuh"
#include "conv2d/cuda/conv2d_cuda_common.cuh"

namespace convbench {
namespace cuda_conv {

namespace {

constexpr int kBlock = 256;

template <typename T>
__global__ void __launch_bounds__(kBlock)
    direct_forward_kernel(Conv2dShape s, const T* __restrict__ x, const T* __restrict__ w,
                          const T* __restrict__ b, T* __restrict__ y) {
  using A = acc_t<T>;
  const int64_t Cg = s.C / s.groups, Kg = s.K / s.groups;
  const int64_t total = s.N * s.K * s.P * s.Q;
  // q fastest: a warp shares (n, k), so weight loads are broadcasts.
  CB_GRID_STRIDE_LOOP(i, total) {
    const auto [n, k, p, q] = unflatten4(i, s.K, s.P, s.Q);
    const int64_t g = k / Kg;
    const T* xn = x + (n * s.C + g * Cg) * s.H * s.W;
    const T* wk = w + k * Cg * s.R * s.S;
    const int64_t h0 = p * s.stride_h - s.pad_h, w0 = q * s.stride_w - s.pad_w;
    A acc = b ? to_acc<T>(b[k]) : A(0);
    for (int64_t c = 0; c < Cg; ++c) {
      for_each_tap_inside(h0, w0, s.R, s.S, s.dil_h, s.dil_w, s.H, s.W,
                          [&](int64_t r, int64_t u, int64_t h, int64_t ww) {
        acc += to_acc<T>(xn[(c * s.H + h) * s.W + ww]) * to_acc<T>(wk[(c * s.R + r) * s.S + u]);
      });
    }
    y[i] = from_acc<T>(acc);
  }
}

// Gather form: each input pixel sums the outputs whose windows cover it, so
// every dx element is written once (no atomics, deterministic).
template <typename T>
__global__ void __launch_bounds__(kBlock)
    direct_backward_input_kernel(Conv2dShape s, const T* __restrict__ dy,
                                 const T* __restrict__ w, T* __restrict__ dx) {
  using A = acc_t<T>;
  const int64_t Cg = s.C / s.groups, Kg = s.K / s.groups;
  const int64_t total = s.N * s.C * s.H * s.W;
  CB_GRID_STRIDE_LOOP(i, total) {
    const auto [n, c, h, x_w] = unflatten4(i, s.C, s.H, s.W);
    const int64_t g = c / Cg, cg = c % Cg;
    A acc = 0;
    for (int64_t k = g * Kg; k < (g + 1) * Kg; ++k) {
      const T* dyk = dy + (n * s.K + k) * s.P * s.Q;
      const T* wk = w + (k * Cg + cg) * s.R * s.S;
      for (int64_t r = 0; r < s.R; ++r) {
        const int64_t hp = h + s.pad_h - r * s.dil_h;
        if (hp < 0) break;  // decreases with r
        if (hp % s.stride_h) continue;
        const int64_t p = hp / s.stride_h;
        if (p >= s.P) continue;
        for (int64_t u = 0; u < s.S; ++u) {
          const int64_t wq = x_w + s.pad_w - u * s.dil_w;
          if (wq < 0) break;
          if (wq % s.stride_w) continue;
          const int64_t q = wq / s.stride_w;
          if (q >= s.Q) continue;
          acc += to_acc<T>(dyk[p * s.Q + q]) * to_acc<T>(wk[r * s.S + u]);
        }
      }
    }
    dx[i] = from_acc<T>(acc);
  }
}

// Blocks loop over the weight elements (grid-stride: a weight larger than the
// grid cap is still covered); for each, the block's threads stride over
// N*P*Q and a fixed shared-memory tree adds their partial sums: same bits on
// every run, whatever the grid.
template <typename T>
__global__ void __launch_bounds__(kBlock)
    direct_backward_weight_kernel(Conv2dShape s, const T* __restrict__ dy,
                                  const T* __restrict__ x, T* __restrict__ dw) {
  using A = acc_t<T>;
  __shared__ A partial[kBlock];
  const int64_t Cg = s.C / s.groups, Kg = s.K / s.groups;
  const int64_t pq = s.P * s.Q, npq = s.N * pq;
  const int64_t numel = s.K * Cg * s.R * s.S;
  for (int64_t e = blockIdx.x; e < numel; e += gridDim.x) {  // flat index into dw [K, Cg, R, S]
    const auto [k, c, r, u] = unflatten4(e, Cg, s.R, s.S);
    const int64_t g = k / Kg;
    A acc = 0;
    for (int64_t j = threadIdx.x; j < npq; j += kBlock) {
      const int64_t n = j / pq, rem = j % pq;
      const int64_t p = rem / s.Q, q = rem % s.Q;
      const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
      const int64_t ww = q * s.stride_w - s.pad_w + u * s.dil_w;
      if (h < 0 || h >= s.H || ww < 0 || ww >= s.W) continue;
      acc += to_acc<T>(dy[(n * s.K + k) * pq + rem]) *
             to_acc<T>(x[((n * s.C + g * Cg + c) * s.H + h) * s.W + ww]);
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int half = kBlock / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
      __syncthreads();
    }
    // Only thread 0 reads partial[0] here and only it stores there next: the
    // tree's last barrier suffices before the next element.
    if (threadIdx.x == 0) dw[e] = from_acc<T>(partial[0]);
  }
}

}  // namespace

template <typename T>
void direct_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y,
                    cudaStream_t st) {
  const int64_t n = s.output_numel();
  launch_checked("direct_forward_kernel", [&] {
    direct_forward_kernel<T><<<grid_for(n, kBlock), kBlock, 0, st>>>(s, x, w, b, y);
  });
}

template <typename T>
void direct_backward_input(const Conv2dShape& s, const T* dy, const T* w, T* dx,
                           cudaStream_t st) {
  const int64_t n = s.input_numel();
  launch_checked("direct_backward_input_kernel", [&] {
    direct_backward_input_kernel<T><<<grid_for(n, kBlock), kBlock, 0, st>>>(s, dy, w, dx);
  });
}

template <typename T>
void direct_backward_weight(const Conv2dShape& s, const T* dy, const T* x, T* dw,
                            cudaStream_t st) {
  const int64_t n = s.weight_numel();  // one block per element, up to the grid cap
  launch_checked("direct_backward_weight_kernel", [&] {
    direct_backward_weight_kernel<T><<<grid_for(n, 1), kBlock, 0, st>>>(s, dy, x, dw);
  });
}

#define CB_INSTANTIATE(T)                                                                   \
  template void direct_forward<T>(const Conv2dShape&, const T*, const T*, const T*, T*,     \
                                  cudaStream_t);                                            \
  template void direct_backward_input<T>(const Conv2dShape&, const T*, const T*, T*,        \
                                         cudaStream_t);                                     \
  template void direct_backward_weight<T>(const Conv2dShape&, const T*, const T*, T*,       \
                                          cudaStream_t);
CB_FOR_EACH_CUDA_DTYPE(CB_INSTANTIATE)
#undef CB_INSTANTIATE

}  // namespace cuda_conv
}  // namespace convbench
