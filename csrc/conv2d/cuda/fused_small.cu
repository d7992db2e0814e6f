// Fused small-layer convolution, for the 1-32 channel layers where a GEMM
// tile is mostly padding and launch overhead dominates: one launch, one
// thread per destination pixel, and each thread accumulates a whole chunk of
// OCT output channels in registers. The weights of that chunk sit in shared
// memory laid out [ci][r][s][o], so every tap is one input load (reused OCT
// times) plus OCT broadcast reads of shared memory.
// The same kernel computes grad-input: it is a convolution of dy with the
// transposed weights, its taps found by the gather rule
// h + ph - r*dh = p*sh (0 <= p < P), so every dx element is written once.
// 32-bit offsets: the dispatcher only sends shapes that pass fits_int32().
#include <algorithm>

#include "common/check.h"
#include "conv2d/cuda/conv2d_cuda_common.cuh"

namespace convbench {
namespace cuda_conv {

namespace {

constexpr int kMaxThreads = 128;

struct FusedDims {
  int N, G, R, S, RS, sh, sw, ph, pw, dh, dw;
  int Csrc, Hs, Ws;  // tensor read: x (forward) or dy (grad-input)
  int Cdst, Hd, Wd;  // tensor written: y or dx
  int CI, OC;        // reduction / written channels per group
  int Cg, Kg;        // weight is [G*Kg, Cg, R, S]
  int CC;            // reduction channels staged in shared memory at once
};

template <typename T, bool kBackward, int OCT>
__global__ void __launch_bounds__(kMaxThreads)
    fused_kernel(FusedDims d, const T* __restrict__ src, const T* __restrict__ w,
                 const T* __restrict__ bias, T* __restrict__ dst) {
  using A = acc_t<T>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  A* ws = reinterpret_cast<A*>(smem_raw);

  const int g = blockIdx.z, oc0 = blockIdx.y * OCT;
  const int HWd = d.Hd * d.Wd, HWs = d.Hs * d.Ws;
  const int m = blockIdx.x * blockDim.x + threadIdx.x;
  const bool active = m < d.N * HWd;
  const int n = active ? m / HWd : 0, hw = active ? m % HWd : 0;
  const int hd = hw / d.Wd, wd = hw % d.Wd;
  const T* sp = src + (n * d.Csrc + g * d.CI) * HWs;

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
      const T* plane = sp + (c0 + ci) * HWs;
      const A* wc = ws + ci * d.RS * OCT;
      for (int r = 0; r < d.R; ++r) {
        int hs;
        if (kBackward) {
          const int hp = hd + d.ph - r * d.dh;
          if (hp < 0) break;  // decreases with r
          hs = hp;
          if (d.sh != 1) {  // uniform branch: stride 1 skips the division
            if (hp % d.sh) continue;
            hs = hp / d.sh;
          }
        } else {
          hs = hd * d.sh - d.ph + r * d.dh;
          if (hs < 0) continue;
        }
        if (hs >= d.Hs) continue;
        for (int s = 0; s < d.S; ++s) {
          int wsrc;
          if (kBackward) {
            const int wq = wd + d.pw - s * d.dw;
            if (wq < 0) break;
            wsrc = wq;
            if (d.sw != 1) {
              if (wq % d.sw) continue;
              wsrc = wq / d.sw;
            }
          } else {
            wsrc = wd * d.sw - d.pw + s * d.dw;
            if (wsrc < 0) continue;
          }
          if (wsrc >= d.Ws) continue;
          const A v = to_acc<T>(plane[hs * d.Ws + wsrc]);
          const A* wt = wc + (r * d.S + s) * OCT;
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
// Below this many blocks the grid leaves most of an A100/H100's SMs idle.
constexpr int64_t kWantBlocks = 2 * 132;

template <typename T, bool kBackward, int OCT>
void launch_oct(FusedDims d, int threads, const T* src, const T* w, const T* bias, T* dst,
                cudaStream_t st) {
  using A = acc_t<T>;
  const int per_ci = d.RS * OCT * int(sizeof(A));
  d.CC = std::max(1, std::min(d.CI, kSmemBudget / per_ci));
  const size_t smem = size_t(d.CC) * per_ci;
  CB_CHECK(smem <= 48 * 1024, "conv2d: kernel of ", d.R, "x", d.S,
           " taps is too large for algo='fused'; use 'implicit_gemm' or 'direct'");
  const dim3 grid(ceil_div(d.N * d.Hd * d.Wd, threads), ceil_div(d.OC, OCT), d.G);
  fused_kernel<T, kBackward, OCT><<<grid, threads, smem, st>>>(d, src, w, bias, dst);
  CB_CUDA_CHECK_LAUNCH(kBackward ? "fused_kernel<backward_input>" : "fused_kernel<forward>");
}

// Widest channel chunk that fits the channel count (each input load feeds
// OCT FMAs), but small layers (batch 50 of 8x8 maps is 3200 pixels) get
// narrower blocks and chunks until the grid covers the SMs.
template <typename T, bool kBackward>
void launch_fused(const FusedDims& d, const T* src, const T* w, const T* bias, T* dst,
                  cudaStream_t st) {
  const int64_t pixels = int64_t(d.N) * d.Hd * d.Wd;
  int oct = d.OC <= 8 ? 8 : d.OC <= 16 ? 16 : 32;
  int threads = kMaxThreads;
  auto blocks = [&] { return ceil_div<int64_t>(pixels, threads) * ceil_div(d.OC, oct) * d.G; };
  if (blocks() < kWantBlocks) threads = 64;
  while (blocks() < kWantBlocks && oct > 8) oct /= 2;
  if (oct == 8) launch_oct<T, kBackward, 8>(d, threads, src, w, bias, dst, st);
  else if (oct == 16) launch_oct<T, kBackward, 16>(d, threads, src, w, bias, dst, st);
  else launch_oct<T, kBackward, 32>(d, threads, src, w, bias, dst, st);
}

FusedDims common_dims(const Conv2dShape& s) {
  FusedDims d{};
  d.N = int(s.N), d.G = int(s.groups), d.R = int(s.R), d.S = int(s.S), d.RS = d.R * d.S;
  d.sh = int(s.stride_h), d.sw = int(s.stride_w), d.ph = int(s.pad_h), d.pw = int(s.pad_w);
  d.dh = int(s.dil_h), d.dw = int(s.dil_w);
  d.Cg = int(s.c_per_group()), d.Kg = int(s.k_per_group());
  return d;
}

}  // namespace

template <typename T>
void fused_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y,
                   cudaStream_t st) {
  FusedDims d = common_dims(s);
  d.Csrc = int(s.C), d.Hs = int(s.H), d.Ws = int(s.W);
  d.Cdst = int(s.K), d.Hd = int(s.P), d.Wd = int(s.Q);
  d.CI = d.Cg, d.OC = d.Kg;
  launch_fused<T, false>(d, x, w, b, y, st);
}

template <typename T>
void fused_backward_input(const Conv2dShape& s, const T* dy, const T* w, T* dx,
                          cudaStream_t st) {
  FusedDims d = common_dims(s);
  d.Csrc = int(s.K), d.Hs = int(s.P), d.Ws = int(s.Q);
  d.Cdst = int(s.C), d.Hd = int(s.H), d.Wd = int(s.W);
  d.CI = d.Kg, d.OC = d.Cg;
  launch_fused<T, true>(d, dy, w, nullptr, dx, st);
}

#define CB_INSTANTIATE(T)                                                                  \
  template void fused_forward<T>(const Conv2dShape&, const T*, const T*, const T*, T*,     \
                                 cudaStream_t);                                            \
  template void fused_backward_input<T>(const Conv2dShape&, const T*, const T*, T*,        \
                                        cudaStream_t);
CB_INSTANTIATE(float)
CB_INSTANTIATE(double)
CB_INSTANTIATE(__half)
CB_INSTANTIATE(__nv_bfloat16)
#undef CB_INSTANTIATE

}  // namespace cuda_conv
}  // namespace convbench
