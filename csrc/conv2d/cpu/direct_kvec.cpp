// Direct convolution vectorised over output channels, for small images with
// enough channels: the flattened-position engine (direct.cpp) wastes the
// padding columns of every row and the tail of the last tile, which on a
// 7x7 output is a third of the work. Here input planes are transposed to
// [Hp][Wp][Cg] (zero-padded), weights to [r][s][c][Kg rounded to a vector],
// and a register tile is MR arbitrary output positions x NV vectors of
// output channels: each step broadcasts one input value per position and
// loads NV weight vectors. Only real output positions are computed.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/shapes.h"
#include "conv2d/cpu/conv_common.h"
#include "conv2d/cpu/simd.h"

namespace convbench {
namespace CB_CPU_NS {

namespace {

constexpr int64_t kChunkBytes = 1 << 20;

// Taps (r, s) in [r0, r1] x [s0, s1] only: the others read padding for
// every position of the tile.
template <typename T, int MR, int NV>
inline void kvec_tile(int64_t r0, int64_t r1, int64_t s0, int64_t s1, int64_t S_, int64_t Cg,
                      const int64_t* offrs, const T* const* xp, const T* w, int64_t Kp, T* out) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int L = S::L;
  V acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = S::zero();
  const T* xm[MR];
  for (int64_t r = r0; r <= r1; ++r)
    for (int64_t sx = s0; sx <= s1; ++sx) {
      const int64_t rs = r * S_ + sx;
      for (int m = 0; m < MR; ++m) xm[m] = xp[m] + offrs[rs];
      const T* wr = w + rs * Cg * Kp;
      for (int64_t c = 0; c < Cg; ++c) {
        V wv[NV];
        for (int v = 0; v < NV; ++v) wv[v] = S::load(wr + c * Kp + v * L);
        for (int m = 0; m < MR; ++m) {
          const V a = S::bcast(xm[m][c]);
          for (int v = 0; v < NV; ++v) acc[m][v] = S::fma(a, wv[v], acc[m][v]);
        }
      }
    }
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) S::store(out + (m * NV + v) * L, acc[m][v]);
}

// Smallest / largest tap index t in [0, n) with some output o in [oa, ob]
// reading a data row/column: lo <= o*st + t*dil <= hi. Empty: first > second.
inline void tap_range(int64_t oa, int64_t ob, int64_t st, int64_t dil, int64_t n, int64_t lo,
                      int64_t hi, int64_t& t0, int64_t& t1) {
  t0 = 0;
  t1 = n - 1;
  while (t0 <= t1 && ob * st + t0 * dil < lo) ++t0;
  while (t1 >= t0 && oa * st + t1 * dil > hi) --t1;
}

}  // namespace

template <typename T>
void direct_kvec_engine(const FwdProb<T>& p) {
  using S = Simd<T>;
  constexpr int64_t L = S::L;
  const PadGeom g = pad_geom(p);
  const int64_t Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S, M = p.Ho * p.Wo;
  const int64_t Kp = round_up64(Kg, L), nvk = Kp / L;
  const int64_t gplane = g.plane * Cg;  // one image-group, transposed

  // Weights [g][r][s][c][Kp], zero beyond Kg.
  Buffer<T> wt(p.G * RS * Cg * Kp);
  for (int64_t gg = 0; gg < p.G; ++gg)
    for (int64_t rs = 0; rs < RS; ++rs)
      for (int64_t c = 0; c < Cg; ++c) {
        T* d = wt.data() + ((gg * RS + rs) * Cg + c) * Kp;
        for (int64_t k = 0; k < Kp; ++k)
          d[k] = k < Kg ? p.w[((gg * Kg + k) * Cg + c) * RS + rs] : T(0);
      }
  std::vector<int64_t> offrs(RS);
  for (int64_t r = 0; r < p.R; ++r)
    for (int64_t s = 0; s < p.S; ++s)
      offrs[r * p.S + s] = (r * p.dh * g.Wp + s * p.dw) * Cg;

  const int64_t PB = 48;  // positions per task (multiple of both MR)
  const int64_t npb = ceil_div64(M, PB);
  const int64_t nb = images_per_chunk(p.N, p.Ci * g.plane * int64_t(sizeof(T)), kChunkBytes);
  Buffer<T> xb(nb * p.G * gplane);

#pragma omp parallel
  for (int64_t n0 = 0; n0 < p.N; n0 += nb) {
    const int64_t nn = std::min(nb, p.N - n0);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < nn * p.G; ++i) {  // transpose + pad one image-group
      const int64_t nl = i / p.G, gg = i % p.G;
      T* d = xb.data() + i * gplane;
      std::memset(d, 0, sizeof(T) * gplane);
      for (int64_t c = 0; c < Cg; ++c) {
        const T* src = p.x + ((n0 + nl) * p.Ci + gg * Cg + c) * p.Hi * p.Wi;
        for (int64_t hi = 0; hi < p.Hi; ++hi) {
          const int64_t a = hi * p.lh + p.ph;
          if (a < 0 || a >= g.Hp) continue;
          for (int64_t wi = 0; wi < p.Wi; ++wi) {
            const int64_t bcol = wi * p.lw + p.pw;
            if (bcol < 0 || bcol >= g.Wp) continue;
            d[(a * g.Wp + bcol) * Cg + c] = src[hi * p.Wi + wi];
          }
        }
      }
    }
#pragma omp for schedule(static)
    for (int64_t t = 0; t < nn * p.G * npb; ++t) {
      const int64_t nl = t / (p.G * npb), gg = (t / npb) % p.G, pb = t % npb;
      const T* xbase = xb.data() + (nl * p.G + gg) * gplane;
      const int64_t m0 = pb * PB, m1 = std::min(M, m0 + PB);
      T* ybase = p.y + ((n0 + nl) * p.Co + gg * Kg) * M;
      alignas(64) T tile[8 * 2 * L];
      for (int64_t kv = 0; kv < nvk; kv += 2) {
        const int nv = static_cast<int>(std::min<int64_t>(2, nvk - kv));
        const int mr = nv == 2 ? 6 : 8;
        const T* w = wt.data() + gg * RS * Cg * Kp + kv * L;
        const int64_t k0 = kv * L, k1 = std::min(Kg, k0 + nv * L);
        for (int64_t ma = m0; ma < m1; ma += mr) {
          const int cnt = static_cast<int>(std::min<int64_t>(mr, m1 - ma));
          const T* xp[8];
          for (int m = 0; m < mr; ++m) {
            const int64_t mm = ma + std::min(m, cnt - 1);  // tail: repeat the last
            const int64_t ho = mm / p.Wo, wo = mm % p.Wo;
            xp[m] = xbase + (ho * p.sh * g.Wp + wo * p.sw) * Cg;
          }
          // Kernel taps that touch data for some position of the tile.
          const int64_t ha = ma / p.Wo, hb = (ma + cnt - 1) / p.Wo;
          const int64_t wa = ha == hb ? ma % p.Wo : 0, wb = ha == hb ? (ma + cnt - 1) % p.Wo : p.Wo - 1;
          int64_t r0, r1, s0, s1;
          tap_range(ha, hb, p.sh, p.dh, p.R, p.ph, p.ph + (p.Hi - 1) * p.lh, r0, r1);
          tap_range(wa, wb, p.sw, p.dw, p.S, p.pw, p.pw + (p.Wi - 1) * p.lw, s0, s1);
          if (p.Hi == 0 || p.Wi == 0) r1 = r0 - 1;
          if (nv == 2)
            kvec_tile<T, 6, 2>(r0, r1, s0, s1, p.S, Cg, offrs.data(), xp, w, Kp, tile);
          else
            kvec_tile<T, 8, 1>(r0, r1, s0, s1, p.S, Cg, offrs.data(), xp, w, Kp, tile);
          const int64_t W = nv * L;
          for (int64_t k = k0; k < k1; ++k) {
            const T bv = p.b ? p.b[gg * Kg + k] : T(0);
            T* y = ybase + k * M + ma;
            for (int m = 0; m < cnt; ++m) y[m] = tile[m * W + (k - k0)] + bv;
          }
        }
      }
    }
  }
}

// Weight gradient, channel-vectorised: dW^T[(r,s,c) x Kg] accumulated as
// outer products over output positions, x broadcast from the transposed
// padded planes (an implicit im2col), dy rows transposed to [position][Kg].
// No horizontal sums, no wasted positions. Batch handled by wgrad_batched
// (fixed-order partials, bitwise reproducible).
template <typename T, int MR, int NV>
inline void kvec_wgrad_tile(const FwdProb<T>& p, const PadGeom& g, int64_t nn, int64_t xstr,
                            int64_t dstr, const T* xg, const T* dg, const int64_t* off,
                            int64_t Kg, T* out) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int L = S::L;
  const int64_t Cg = p.Cg();
  V acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = S::zero();
  for (int64_t nl = 0; nl < nn; ++nl) {
    const T* xi = xg + nl * xstr;
    const T* di = dg + nl * dstr;
    for (int64_t ho = 0; ho < p.Ho; ++ho) {
      const T* xr[MR];
      for (int m = 0; m < MR; ++m) xr[m] = xi + ho * p.sh * g.Wp * Cg + off[m];
      const T* dr = di + ho * p.Wo * Kg;
      const int64_t xs = p.sw * Cg;
      for (int64_t wo = 0; wo < p.Wo; ++wo) {
        V dv[NV];
        for (int v = 0; v < NV; ++v) dv[v] = S::load(dr + wo * Kg + v * L);
        for (int m = 0; m < MR; ++m) {
          const V a = S::bcast(xr[m][wo * xs]);
          for (int v = 0; v < NV; ++v) acc[m][v] = S::fma(a, dv[v], acc[m][v]);
        }
      }
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) S::store(out + (m * NV + v) * L, acc[m][v]);
}

template <typename T>
void direct_kvec_wgrad(const Conv2dShape& s, const T* dy, const T* x, T* dw) {
  using S = Simd<T>;
  constexpr int64_t L = S::L;
  const FwdProb<T> p = forward_problem<T>(s, x, nullptr, nullptr, nullptr);
  const PadGeom g = pad_geom(p);
  const int64_t Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S, CRS = Cg * RS, M = p.Ho * p.Wo;
  const int64_t nvk = Kg / L;  // Kg is a multiple of L here
  const int64_t gplane = g.plane * Cg, dplane = M * Kg;
  const int64_t per_image = p.G * (gplane + dplane) * int64_t(sizeof(T));
  const int64_t nb = images_per_chunk(p.N, per_image, 384 << 10);
  const int64_t xsize = nb * p.G * gplane, dsize = nb * p.G * dplane;
  const int64_t slot_bytes = (xsize + dsize) * int64_t(sizeof(T));
  const int64_t slots = wgrad_parts(p.N, slot_bytes);
  Buffer<T> xbs(slots * xsize), dbs(slots * dsize);
  // Tile rows: (r, s, c) triples in blocks of 6, as offsets into [Hp][Wp][Cg].
  std::vector<int64_t> off(CRS), crs_of(CRS);
  for (int64_t r = 0, i = 0; r < p.R; ++r)
    for (int64_t sx = 0; sx < p.S; ++sx)
      for (int64_t c = 0; c < Cg; ++c, ++i) {
        off[i] = (r * p.dh * g.Wp + sx * p.dw) * Cg + c;
        crs_of[i] = (c * p.R + r) * p.S + sx;
      }
  // Tile rows: 6 with two vectors of output channels; 8 when Kg is a single
  // vector (8 broadcasts + 1 load per 8 FMAs still leave the FMAs the limit).
  const int MR = nvk == 1 ? 8 : 6;
  const int64_t nrb = ceil_div64(CRS, MR), nkv = ceil_div64(nvk, 2);
  const int64_t ntiles = p.G * nrb * nkv;

  wgrad_batched(p.N, nb, slot_bytes, s.weight_numel(), dw,
                [&](int64_t slot, int64_t n0, int64_t nn, T* out, bool par) {
    T* xb = xbs.data() + slot * xsize;
    T* db = dbs.data() + slot * dsize;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < nn * p.G; ++i) {
      const int64_t nl = i / p.G, gg = i % p.G;
      T* d = xb + i * gplane;
      std::memset(d, 0, sizeof(T) * gplane);
      for (int64_t c = 0; c < Cg; ++c) {
        const T* src = x + ((n0 + nl) * p.Ci + gg * Cg + c) * p.Hi * p.Wi;
        for (int64_t hi = 0; hi < p.Hi; ++hi) {
          const int64_t a = hi + p.ph;
          if (a >= g.Hp) break;
          const int64_t wend = std::min(p.Wi, g.Wp - p.pw);
          for (int64_t wi = 0; wi < wend; ++wi) d[(a * g.Wp + wi + p.pw) * Cg + c] = src[hi * p.Wi + wi];
        }
      }
      T* e = db + i * dplane;
      for (int64_t k = 0; k < Kg; ++k) {
        const T* src = dy + ((n0 + nl) * p.Co + gg * Kg + k) * M;
        for (int64_t m = 0; m < M; ++m) e[m * Kg + k] = src[m];
      }
    }
#pragma omp parallel for schedule(static) if (par)
    for (int64_t t = 0; t < ntiles; ++t) {
      const int64_t gg = t / (nrb * nkv), rb = (t / nkv) % nrb, kv = t % nkv;
      const int64_t i0 = rb * MR, cnt = std::min<int64_t>(MR, CRS - i0);
      int64_t o[8];
      for (int m = 0; m < MR; ++m) o[m] = off[i0 + std::min<int64_t>(m, cnt - 1)];
      const int nv = static_cast<int>(std::min<int64_t>(2, nvk - 2 * kv));
      const T* xg = xb + gg * gplane;
      const T* dg = db + gg * dplane + 2 * kv * L;
      alignas(64) T tile[8 * 2 * L];
      if (nv == 2)
        kvec_wgrad_tile<T, 6, 2>(p, g, nn, p.G * gplane, p.G * dplane, xg, dg, o, Kg, tile);
      else if (MR == 6)
        kvec_wgrad_tile<T, 6, 1>(p, g, nn, p.G * gplane, p.G * dplane, xg, dg, o, Kg, tile);
      else
        kvec_wgrad_tile<T, 8, 1>(p, g, nn, p.G * gplane, p.G * dplane, xg, dg, o, Kg, tile);
      const int64_t W = nv * L;
      for (int m = 0; m < cnt; ++m)
        for (int64_t kk = 0; kk < W; ++kk)
          out[(gg * Kg + 2 * kv * L + kk) * CRS + crs_of[i0 + m]] += tile[m * W + kk];
    }
  });
}

template void direct_kvec_engine<float>(const FwdProb<float>&);
template void direct_kvec_engine<double>(const FwdProb<double>&);
template void direct_kvec_wgrad<float>(const Conv2dShape&, const float*, const float*, float*);
template void direct_kvec_wgrad<double>(const Conv2dShape&, const double*, const double*, double*);

}  // namespace CB_CPU_NS
}  // namespace convbench
