// Depthwise convolution (multiplier 1) with L channels in the vector lanes:
// a task transposes one image's block of L channel planes to [row][col][L]
// (zero-padded; the padding is zeroed once per thread, since every task has
// the same geometry), computes there with one vector of weights per tap,
// and transposes the result back. No lane is wasted on short rows and a
// stride only changes an index. Forward: a tile of kCvecU outputs of a row;
// input gradient: at stride 1 the forward on dy with flipped taps, else each
// dy vector scattered into the padded gradient planes;
// weight gradient: per block of channels, all taps accumulated over the
// batch in order (deterministic).
#include "conv2d/cpu/depthwise_cvec.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/cpu/scratch.h"
#include "common/cpu/simd.h"
#include "common/cpu/simd_transpose.h"
#include "conv2d/cpu/tiles.h"

namespace convbench {
namespace CB_CPU_NS {

namespace {

constexpr int kCvecU = kVecRegs == 32 ? 14 : 8;  // outputs per forward tile
constexpr int kCvecTaps = kVecRegs == 32 ? 14 : 9;  // taps per weight-gradient pass

// The padded planes the outputs read: rows a = ho*sh + r*dh, columns
// b = wo*sw + s*dw; input row h sits at a = h + pad_h (column likewise).
struct CvecGeom {
  int64_t Hp, Wp;
};

CvecGeom cvec_geom(const Conv2dShape& s) {
  return {(s.P - 1) * s.stride_h + (s.R - 1) * s.dil_h + 1,
          (s.Q - 1) * s.stride_w + (s.S - 1) * s.dil_w + 1};
}

// Channels [c0, c0 + nc) of one image's planes (src at channel c0) into the
// data positions of xt [Hp][Wp][L].
template <typename T>
void transpose_planes_in(const Conv2dShape& s, const CvecGeom& g, const T* src, int64_t nc, T* xt) {
  constexpr int64_t L = Simd<T>::L;
  const int64_t cols = std::min(s.W, g.Wp - s.pad_w);
  for (int64_t h = 0; h < s.H && h + s.pad_h < g.Hp; ++h)
    if (cols > 0)
      transpose_2d(src + h * s.W, s.H * s.W, xt + ((h + s.pad_h) * g.Wp + s.pad_w) * L, L, nc,
                   cols);
}

// wt[t][lane] = w[c0 + lane][t] for taps t = r*S + s (zeros past nc).
template <typename T>
void weight_vectors(const Conv2dShape& s, const T* w, int64_t c0, int64_t nc, T* wt) {
  constexpr int64_t L = Simd<T>::L;
  const int64_t RS = s.R * s.S;
  for (int64_t t = 0; t < RS; ++t)
    for (int64_t i = 0; i < L; ++i) wt[t * L + i] = i < nc ? w[(c0 + i) * RS + t] : T(0);
}

template <typename T, int U>
inline void forward_tile(const Conv2dShape& s, const CvecGeom& g, const T* xt, const T* wt,
                         typename Simd<T>::V bias, int64_t ho, int64_t wo0, T* yt) {
  using S = Simd<T>;
  constexpr int64_t L = S::L;
  typename S::V acc[U];
  for (int u = 0; u < U; ++u) acc[u] = bias;
  for (int64_t r = 0; r < s.R; ++r) {
    const T* row = xt + ((ho * s.stride_h + r * s.dil_h) * g.Wp + wo0 * s.stride_w) * L;
    for (int64_t c = 0; c < s.S; ++c) {
      const auto wv = S::load(wt + (r * s.S + c) * L);
      const T* p = row + c * s.dil_w * L;
      for (int u = 0; u < U; ++u) acc[u] = S::fma(wv, S::load(p + u * s.stride_w * L), acc[u]);
    }
  }
  for (int u = 0; u < U; ++u) S::store(yt + (ho * s.Q + wo0 + u) * L, acc[u]);
}

template <typename T>
int64_t channel_blocks(const Conv2dShape& s) {
  return ceil_div64(s.C, Simd<T>::L);
}

// Weight-gradient taps [t0, t0 + TB): out[t] += sum over positions of
// dyt[p][q] * xt[p*sh + r*dh][q*sw + s*dw].
template <typename T, int TB>
void wgrad_taps(const Conv2dShape& s, const CvecGeom& g, const T* xt, const T* dyt,
                const int64_t* off, T* out) {
  using S = Simd<T>;
  constexpr int64_t L = S::L;
  typename S::V acc[TB];
  for (int t = 0; t < TB; ++t) acc[t] = S::zero();
  for (int64_t p = 0; p < s.P; ++p)
    for (int64_t q = 0; q < s.Q; ++q) {
      const auto d = S::load(dyt + (p * s.Q + q) * L);
      const T* base = xt + (p * s.stride_h * g.Wp + q * s.stride_w) * L;
      for (int t = 0; t < TB; ++t) acc[t] = S::fma(d, S::load(base + off[t]), acc[t]);
    }
  for (int t = 0; t < TB; ++t) S::store(out + t * L, S::load(out + t * L) + acc[t]);
}

}  // namespace

bool depthwise_cvec_applies(const Conv2dShape& s, int lanes) {
  return s.groups == s.C && s.K == s.C && s.C > 1 &&
         (s.Q < 2 * lanes || s.stride_h > 1 || s.stride_w > 1);
}

template <typename T>
void depthwise_cvec_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y) {
  using S = Simd<T>;
  constexpr int64_t L = S::L;
  const CvecGeom g = cvec_geom(s);
  const int64_t nb = channel_blocks<T>(s), M = s.P * s.Q;
#pragma omp parallel
  {
    Buffer<T> xt(g.Hp * g.Wp * L), yt(M * L), wt(s.R * s.S * L);
    std::memset(xt.data(), 0, sizeof(T) * g.Hp * g.Wp * L);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < s.N * nb; ++t) {
      const int64_t n = t / nb, c0 = t % nb * L, nc = std::min(L, s.C - c0);
      transpose_planes_in(s, g, x + (n * s.C + c0) * s.H * s.W, nc, xt.data());
      weight_vectors(s, w, c0, nc, wt.data());
      alignas(64) T bias[L] = {};
      for (int64_t i = 0; i < nc && b; ++i) bias[i] = b[c0 + i];
      const auto bv = S::load(bias);
      for (int64_t ho = 0; ho < s.P; ++ho) {
        int64_t wo = 0;
        for (; wo + kCvecU <= s.Q; wo += kCvecU)
          forward_tile<T, kCvecU>(s, g, xt.data(), wt.data(), bv, ho, wo, yt.data());
        if (wo < s.Q)
          with_rows<kCvecU>(s.Q - wo, [&](auto u) {
            forward_tile<T, u()>(s, g, xt.data(), wt.data(), bv, ho, wo, yt.data());
          });
      }
      transpose_2d(yt.data(), L, y + (n * s.C + c0) * M, M, M, nc);
    }
  }
}

template <typename T>
void depthwise_cvec_backward_input(const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  using S = Simd<T>;
  constexpr int64_t L = S::L;
  // Stride 1: a forward problem (dy as input, taps flipped, padding (R-1)*d - pad),
  // with the forward's gather tiles (the scatter below stores once per FMA).
  const int64_t fh = (s.R - 1) * s.dil_h - s.pad_h, fw = (s.S - 1) * s.dil_w - s.pad_w;
  if (s.stride_h == 1 && s.stride_w == 1 && fh >= 0 && fw >= 0) {
    Conv2dShape f = s;
    f.H = s.P, f.W = s.Q, f.P = s.H, f.Q = s.W, f.pad_h = fh, f.pad_w = fw;
    const int64_t RS = s.R * s.S;
    std::vector<T> flipped(s.C * RS);
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t t = 0; t < RS; ++t) flipped[c * RS + t] = w[c * RS + RS - 1 - t];
    depthwise_cvec_forward(f, dy, flipped.data(), static_cast<const T*>(nullptr), dx);
    return;
  }
  const CvecGeom g = cvec_geom(s);
  // dx's padded planes: every input position, whether or not a window reaches it.
  const int64_t Hq = std::max(g.Hp, s.H + s.pad_h), Wq = std::max(g.Wp, s.W + s.pad_w);
  const int64_t nb = channel_blocks<T>(s), M = s.P * s.Q;
#pragma omp parallel
  {
    Buffer<T> dxt(Hq * Wq * L), dyt(M * L), wt(s.R * s.S * L);
    std::memset(dyt.data(), 0, sizeof(T) * M * L);  // (lanes past a partial block)
#pragma omp for schedule(static)
    for (int64_t t = 0; t < s.N * nb; ++t) {
      const int64_t n = t / nb, c0 = t % nb * L, nc = std::min(L, s.C - c0);
      std::memset(dxt.data(), 0, sizeof(T) * Hq * Wq * L);
      transpose_2d(dy + (n * s.C + c0) * M, M, dyt.data(), L, nc, M);
      weight_vectors(s, w, c0, nc, wt.data());
      for (int64_t p = 0; p < s.P; ++p)
        for (int64_t q = 0; q < s.Q; ++q) {
          const auto d = S::load(dyt.data() + (p * s.Q + q) * L);
          T* base = dxt.data() + (p * s.stride_h * Wq + q * s.stride_w) * L;
          for (int64_t r = 0; r < s.R; ++r)
            for (int64_t c = 0; c < s.S; ++c) {
              T* o = base + (r * s.dil_h * Wq + c * s.dil_w) * L;
              S::store(o, S::fma(S::load(wt.data() + (r * s.S + c) * L), d, S::load(o)));
            }
        }
      T* dst = dx + (n * s.C + c0) * s.H * s.W;
      for (int64_t h = 0; h < s.H; ++h)
        transpose_2d(dxt.data() + ((h + s.pad_h) * Wq + s.pad_w) * L, L, dst + h * s.W,
                     s.H * s.W, s.W, nc);
    }
  }
}

template <typename T>
void depthwise_cvec_backward_weight(const Conv2dShape& s, const T* dy, const T* x, T* dw) {
  constexpr int64_t L = Simd<T>::L;
  const CvecGeom g = cvec_geom(s);
  const int64_t nb = channel_blocks<T>(s), M = s.P * s.Q, RS = s.R * s.S;
  std::vector<int64_t> off(RS);
  for (int64_t r = 0; r < s.R; ++r)
    for (int64_t c = 0; c < s.S; ++c) off[r * s.S + c] = (r * s.dil_h * g.Wp + c * s.dil_w) * L;
  // One task per block of channels: its taps summed over the batch in order.
#pragma omp parallel
  {
    Buffer<T> xt(g.Hp * g.Wp * L), dyt(M * L), sum(RS * L);
    std::memset(xt.data(), 0, sizeof(T) * g.Hp * g.Wp * L);
    std::memset(dyt.data(), 0, sizeof(T) * M * L);
#pragma omp for schedule(static)
    for (int64_t cb = 0; cb < nb; ++cb) {
      const int64_t c0 = cb * L, nc = std::min(L, s.C - c0);
      std::memset(sum.data(), 0, sizeof(T) * RS * L);
      for (int64_t n = 0; n < s.N; ++n) {
        transpose_planes_in(s, g, x + (n * s.C + c0) * s.H * s.W, nc, xt.data());
        transpose_2d(dy + (n * s.C + c0) * M, M, dyt.data(), L, nc, M);
        for (int64_t t0 = 0; t0 < RS; t0 += kCvecTaps) {
          const int tb = static_cast<int>(std::min<int64_t>(kCvecTaps, RS - t0));
          with_rows<kCvecTaps>(tb, [&](auto n) {
            wgrad_taps<T, n()>(s, g, xt.data(), dyt.data(), off.data() + t0, sum.data() + t0 * L);
          });
        }
      }
      for (int64_t i = 0; i < nc; ++i)
        for (int64_t t = 0; t < RS; ++t) dw[(c0 + i) * RS + t] = sum.data()[t * L + i];
    }
  }
}

#define CB_INSTANTIATE_DEPTHWISE_CVEC(T)                                                        \
  template void depthwise_cvec_forward<T>(const Conv2dShape&, const T*, const T*, const T*, T*); \
  template void depthwise_cvec_backward_input<T>(const Conv2dShape&, const T*, const T*, T*);    \
  template void depthwise_cvec_backward_weight<T>(const Conv2dShape&, const T*, const T*, T*);
CB_INSTANTIATE_DEPTHWISE_CVEC(float)
CB_INSTANTIATE_DEPTHWISE_CVEC(double)
#undef CB_INSTANTIATE_DEPTHWISE_CVEC

}  // namespace CB_CPU_NS
}  // namespace convbench
