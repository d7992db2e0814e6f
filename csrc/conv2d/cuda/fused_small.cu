// Fused small-layer convolution, for the 1-32 channel layers where a GEMM
// tile is mostly padding and launch overhead dominates: one launch, one
// thread per destination pixel, and each thread accumulates a chunk of OCT
// output channels in registers (OCT = 1, 2, 4, 8, 16 or 32: the narrowest
// that holds the layer's channels, so a 1-channel grad-input does no wasted
// FMA, and narrower still where the grid would not fill the GPU). The weights
// of that chunk sit in shared memory laid out [ci][r][s][o], so every tap is
// one input load (reused OCT times) plus OCT broadcast reads of shared memory.
// The same kernel computes grad-input: it is a convolution of dy with the
// transposed weights, its taps found by the gather rule
// h + ph - r*dh = p*sh (0 <= p < P), so every dx element is written once.
// Each thread works out once which taps land inside the source, so the inner
// loops carry no bounds checks (and few live registers: no spills).
// 32-bit offsets: the dispatcher only sends shapes that pass fits_int32().
#include <algorithm>

#include "common/check.h"
#include "conv2d/cuda/conv2d_cuda_common.cuh"

namespace convbench {
namespace cuda_conv {

namespace {

constexpr int kMaxThreads = 128;


// The taps of one dimension that read inside the source, for destination
// index o: `count` taps first, first + step, ..., reading source indices
// src, src + src_step, ... Forward reads o*stride - pad + t*dil: step 1.
// Grad-input gathers from (o + pad - t*dil) / stride where that divides:
// the taps that divide recur every step = stride / gcd(stride, dil).
struct Taps {
  int first, count, src;
};

struct Dim {  // one spatial dimension of the problem, as the kernel walks it
  int stride, pad, dil, taps, size;  // size: the source's extent
  int step, src_step;                // tap step and source index step (see Taps)
};

struct FusedDims {
  int N, G, R, S, RS;
  Dim h, w;          // rows (taps R) and columns (taps S)
  int Csrc, Hs, Ws;  // tensor read: x (forward) or dy (grad-input)
  int Cdst, Hd, Wd;  // tensor written: y or dx
  int CI, OC;        // reduction / written channels per group
  int Cg, Kg;        // weight is [G*Kg, Cg, R, S]
  int CC;            // reduction channels staged in shared memory at once
};

__device__ __forceinline__ Taps forward_taps(int o, const Dim& d) {
  const int base = o * d.stride - d.pad;  // source index of tap 0
  const int lo = base >= 0 ? 0 : (d.dil - 1 - base) / d.dil;
  const int hi = d.size > base ? min(d.taps, (d.size - base + d.dil - 1) / d.dil) : 0;
  return {lo, max(0, hi - lo), base + lo * d.dil};
}

__device__ __forceinline__ Taps backward_taps(int o, const Dim& d) {
  const int a = o + d.pad;                // a - t*dil: the stride-scaled source index
  const int over = a - d.size * d.stride;  // taps with t*dil <= over land past the end
  const int lo = over < 0 ? 0 : over / d.dil + 1;
  const int hi = min(d.taps, a / d.dil + 1);
  int t = lo;  // the first tap that divides (one in every `step` does)
  while (t < hi && t < lo + d.step && (a - t * d.dil) % d.stride != 0) ++t;
  if (t >= hi || t >= lo + d.step) return {0, 0, 0};
  return {t, (hi - t + d.step - 1) / d.step, (a - t * d.dil) / d.stride};
}

// No __launch_bounds__: with __launch_bounds__(128) ptxas spilled a few
// registers to reach a register-count bucket (fused<16> grad-input: 36 B
// stored, 60 B loaded per thread); without it no instantiation spills (see
// `nvcc -Xptxas -v`), and a block of kMaxThreads always fits (255 registers
// per thread at most).
template <typename T, bool kBackward, int OCT>
__global__ void fused_kernel(FusedDims d, const T* __restrict__ src, const T* __restrict__ w,
                 const T* __restrict__ bias, T* __restrict__ dst) {
  using A = acc_t<T>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  A* ws = reinterpret_cast<A*>(smem_raw);

  const int g = blockIdx.z, oc0 = blockIdx.y * OCT;
  const int HWd = d.Hd * d.Wd, HWs = d.Hs * d.Ws;
  const int m = blockIdx.x * blockDim.x + threadIdx.x;
  const bool active = m < d.N * HWd;
  const int n = active ? m / HWd : 0, hw = active ? m % HWd : 0;
  const T* sp = src + (n * d.Csrc + g * d.CI) * HWs;
  const Taps th = kBackward ? backward_taps(hw / d.Wd, d.h) : forward_taps(hw / d.Wd, d.h);
  const Taps tw = kBackward ? backward_taps(hw % d.Wd, d.w) : forward_taps(hw % d.Wd, d.w);
  // Offsets of the first tap and steps between taps, in the shared weights.
  const int w_first = (th.first * d.S + tw.first) * OCT;
  const int w_row_step = d.h.step * d.S * OCT, w_col_step = d.w.step * OCT;

  A acc[OCT];
#pragma unroll
  for (int o = 0; o < OCT; ++o) acc[o] = A(0);

  for (int c0 = 0; c0 < d.CI; c0 += d.CC) {
    const int cc = min(d.CC, d.CI - c0);
    __syncthreads();  // previous chunk fully consumed
    for (int e = threadIdx.x; e < cc * d.RS * OCT; e += blockDim.x) {
      const int o = e % OCT, rest = e / OCT, rs = rest % d.RS, ci = c0 + rest / d.RS;
      const int oc = oc0 + o;
      A v = A(0);
      if (oc < d.OC) {
        // forward: w[g*Kg + oc][ci][rs]; grad-input: w[g*Kg + ci][oc][rs]
        const int widx = kBackward ? ((g * d.Kg + ci) * d.Cg + oc) * d.RS + rs
                                   : ((g * d.Kg + oc) * d.Cg + ci) * d.RS + rs;
        v = to_acc<T>(w[widx]);
      }
      ws[e] = v;
    }
    __syncthreads();
    if (!active) continue;
    for (int ci = 0; ci < cc; ++ci) {
      const T* row = sp + (c0 + ci) * HWs + th.src * d.Ws;
      const A* wr = ws + ci * d.RS * OCT + w_first;
      for (int i = 0; i < th.count; ++i, row += d.h.src_step * d.Ws, wr += w_row_step) {
        const T* v_ptr = row + tw.src;
        const A* wt = wr;
        for (int j = 0; j < tw.count; ++j, v_ptr += d.w.src_step, wt += w_col_step) {
          const A v = to_acc<T>(*v_ptr);
#pragma unroll
          for (int o = 0; o < OCT; ++o) acc[o] += v * wt[o];
        }
      }
    }
  }
  if (!active) return;
  T* out = dst + (n * d.Cdst + g * d.OC + oc0) * HWd + hw;
#pragma unroll
  for (int o = 0; o < OCT; ++o) {
    if (oc0 + o < d.OC) {
      A v = acc[o];
      if (!kBackward && bias) v += to_acc<T>(bias[g * d.OC + oc0 + o]);
      out[o * HWd] = from_acc<T>(v);
    }
  }
}

constexpr int kSmemBudget = 16 * 1024;  // leaves room for several blocks per SM
// Two blocks per SM of an H100 is the aim when choosing block width.
constexpr int64_t kWantBlocks = 2 * kFillBlocks;

template <typename T, bool kBackward, int OCT>
void launch_oct(FusedDims d, int threads, const T* src, const T* w, const T* bias, T* dst,
                cudaStream_t st) {
  using A = acc_t<T>;
  const int per_ci = d.RS * OCT * int(sizeof(A));
  d.CC = std::max(1, std::min(d.CI, kSmemBudget / per_ci));
  const size_t smem = size_t(d.CC) * per_ci;
  const dim3 grid(ceil_div(d.N * d.Hd * d.Wd, threads), ceil_div(d.OC, OCT), d.G);
  launch_checked(kBackward ? "fused_kernel<backward_input>" : "fused_kernel<forward>", [&] {
    fused_kernel<T, kBackward, OCT><<<grid, threads, smem, st>>>(d, src, w, bias, dst);
  });
}

// The narrowest channel chunk that holds every channel (each input load feeds
// OCT FMAs, none wasted on channels that do not exist); then, for small
// layers (batch 50 of 8x8 maps is 3200 pixels), narrower blocks and then
// narrower chunks until the grid has at least kFillBlocks blocks.
// `channels` > 0 forces the chunk (a tuning engine).
template <typename T, bool kBackward>
void launch_fused(const FusedDims& d, const T* src, const T* w, const T* bias, T* dst,
                  int channels, cudaStream_t st) {
  const int64_t pixels = int64_t(d.N) * d.Hd * d.Wd;
  int oct = 1;
  while (oct < d.OC && oct < 32) oct *= 2;
  // One channel's taps must fit the shared memory a block may have.
  const int64_t tap_bytes = int64_t(d.RS) * int64_t(sizeof(acc_t<T>));
  while (oct > 1 && tap_bytes * oct > kFusedSmemMax) oct /= 2;
  CB_CHECK(tap_bytes * oct <= kFusedSmemMax, "conv2d: kernel of ", d.R, "x", d.S,
           " taps is too large for algo='fused'; use 'implicit_gemm' or 'direct'");
  int threads = kMaxThreads;
  auto blocks = [&] { return ceil_div<int64_t>(pixels, threads) * ceil_div(d.OC, oct) * d.G; };
  if (blocks() < kWantBlocks) threads = 64;
  while (blocks() < kFillBlocks && oct > 1) oct /= 2;
  if (channels > 0) {
    CB_CHECK(channels <= 32 && (channels & (channels - 1)) == 0 &&
                 tap_bytes * channels <= kFusedSmemMax,
             "conv2d: the fused kernel cannot compute ", channels, " channels per thread here");
    oct = channels;
  }
  switch (oct) {
    case 1: return launch_oct<T, kBackward, 1>(d, threads, src, w, bias, dst, st);
    case 2: return launch_oct<T, kBackward, 2>(d, threads, src, w, bias, dst, st);
    case 4: return launch_oct<T, kBackward, 4>(d, threads, src, w, bias, dst, st);
    case 8: return launch_oct<T, kBackward, 8>(d, threads, src, w, bias, dst, st);
    case 16: return launch_oct<T, kBackward, 16>(d, threads, src, w, bias, dst, st);
    default: return launch_oct<T, kBackward, 32>(d, threads, src, w, bias, dst, st);
  }
}

int gcd(int a, int b) { return b == 0 ? a : gcd(b, a % b); }

Dim make_dim(bool backward, int64_t stride, int64_t pad, int64_t dil, int64_t taps, int64_t size) {
  Dim d{int(stride), int(pad), int(dil), int(taps), int(size), 1, int(dil)};
  if (backward) {
    d.step = d.stride / gcd(d.stride, d.dil);
    d.src_step = -(d.dil * d.step / d.stride);
  }
  return d;
}

// Forward gathers x (C, H, W) into y (K, P, Q); the grad-input gathers dy
// (K, P, Q) into dx (C, H, W): the same kernel with source and destination
// swapped, and the window walked backward.
FusedDims fused_dims(const Conv2dShape& s, bool backward) {
  const int64_t x[3] = {s.C, s.H, s.W}, y[3] = {s.K, s.P, s.Q};
  const int64_t* src = backward ? y : x;
  const int64_t* dst = backward ? x : y;
  FusedDims d{};
  d.N = int(s.N), d.G = int(s.groups), d.R = int(s.R), d.S = int(s.S), d.RS = d.R * d.S;
  d.Cg = int(s.c_per_group()), d.Kg = int(s.k_per_group());
  d.Csrc = int(src[0]), d.Hs = int(src[1]), d.Ws = int(src[2]);
  d.Cdst = int(dst[0]), d.Hd = int(dst[1]), d.Wd = int(dst[2]);
  d.CI = backward ? d.Kg : d.Cg, d.OC = backward ? d.Cg : d.Kg;
  d.h = make_dim(backward, s.stride_h, s.pad_h, s.dil_h, s.R, src[1]);
  d.w = make_dim(backward, s.stride_w, s.pad_w, s.dil_w, s.S, src[2]);
  return d;
}

}  // namespace

template <typename T>
void fused_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y, int channels,
                   cudaStream_t st) {
  launch_fused<T, false>(fused_dims(s, false), x, w, b, y, channels, st);
}

template <typename T>
void fused_backward_input(const Conv2dShape& s, const T* dy, const T* w, T* dx, int channels,
                          cudaStream_t st) {
  launch_fused<T, true>(fused_dims(s, true), dy, w, nullptr, dx, channels, st);
}

#define CB_INSTANTIATE(T)                                                                  \
  template void fused_forward<T>(const Conv2dShape&, const T*, const T*, const T*, T*, int, \
                                 cudaStream_t);                                             \
  template void fused_backward_input<T>(const Conv2dShape&, const T*, const T*, T*, int,    \
                                        cudaStream_t);
CB_FOR_EACH_CUDA_DTYPE(CB_INSTANTIATE)
#undef CB_INSTANTIATE

}  // namespace cuda_conv
}  // namespace convbench
