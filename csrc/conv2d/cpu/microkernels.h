// Register-blocked micro-kernels shared by the Direct and Im2colGemm engines.
// L = SIMD lanes (8 float / 4 double per 256-bit vector).
#pragma once
#include <cstdint>

#include "common/cpu/simd.h"
#include "conv2d/cpu/tiles.h"

namespace convbench {
namespace CB_CPU_NS {

// Outer-product tile: acc[m][v] = sum_i a[i*MR + m] * B_i[v*L .. v*L+L) over
// i in nseg segments of n steps, segment k covering i = k*seg + [0, n), where
// B_i = b + i*NV*L (packed GEMM panel, OFFS = false) or B_i = b + offs[i]
// read with stride st (direct convolution, OFFS = true; segments let it skip
// kernel rows that only read padding). MR broadcasts + NV loads feed MR*NV
// FMAs per step. out[m*ldo + v*L + lane] is overwritten (ldo = 0: NV*L).
template <typename T, int MR, int NV, bool OFFS, bool UNIT>
inline void outer_tile(int64_t nseg, int64_t seg, int64_t n, const T* a, const T* b,
                       const int64_t* offs, int64_t st, T* out, int64_t ldo = 0) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int L = S::L;
  V acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = S::zero();
  for (int64_t k = 0; k < nseg; ++k) {
    const T* ak = a + k * seg * MR;
    const int64_t* ok = OFFS ? offs + k * seg : nullptr;
    const T* bk = OFFS ? b : b + k * seg * (NV * L);
    for (int64_t i = 0; i < n; ++i) {
      const T* bp = OFFS ? bk + ok[i] : bk + i * (NV * L);
      V bv[NV];
      for (int v = 0; v < NV; ++v)
        bv[v] = UNIT ? S::load(bp + v * L) : S::load_strided(bp + v * L * st, st);
      for (int m = 0; m < MR; ++m) {
        const V am = S::bcast(ak[i * MR + m]);
        for (int v = 0; v < NV; ++v) acc[m][v] = S::fma(am, bv[v], acc[m][v]);
      }
    }
  }
  if (ldo == 0) ldo = NV * L;
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) S::store(out + m * ldo + v * L, acc[m][v]);
}

// Outer-product steps of the channel-vectorised engines: acc[m][v] +=
// a[m][c] * b[c*ldb + v*L + lane] for c < n: each step broadcasts one value
// of each of the MR rows a[m] and loads NV vectors of b.
template <typename T, int MR, int NV>
inline void broadcast_rows(const T* const* a, const T* b, int64_t n, int64_t ldb,
                           typename Simd<T>::V (&acc)[MR][NV]) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int L = S::L;
  for (int64_t c = 0; c < n; ++c, b += ldb) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = S::load(b + v * L);
    for (int m = 0; m < MR; ++m) {
      const V am = S::bcast(a[m][c]);
      for (int v = 0; v < NV; ++v) acc[m][v] = S::fma(am, bv[v], acc[m][v]);
    }
  }
}

// Inner-product tile: acc[i][j] += <A_i, B_j> over nvec vectors, A_i rows
// contiguous, B_j rows contiguous (UNIT) or with stride st. Vectorised along
// the reduction, which suits weight gradients: both dims (out x in channels)
// are small there while the reduction (batch x pixels) is long.
template <typename T, int MR, int NR, bool UNIT>
inline void inner_tile(const T* const* a, const T* const* b, int64_t st, int64_t nvec,
                       typename Simd<T>::V (&acc)[MR][NR]) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int L = S::L;
  const T* ap[MR];
  const T* bp[NR];
  for (int i = 0; i < MR; ++i) ap[i] = a[i];
  for (int j = 0; j < NR; ++j) bp[j] = b[j];
  for (int64_t v = 0; v < nvec; ++v) {
    V av[MR];
    for (int i = 0; i < MR; ++i) av[i] = S::load(ap[i] + v * L);
    for (int j = 0; j < NR; ++j) {
      const V bv = UNIT ? S::load(bp[j] + v * L) : S::load_strided(bp[j] + v * L * st, st);
      for (int i = 0; i < MR; ++i) acc[i][j] = S::fma(av[i], bv, acc[i][j]);
    }
  }
}

// Runtime (mr, nr) -> compile-time tile, 1 <= mr <= kInnerMR, 1 <= nr <= 3,
// summed over nimg segments (A rows advance by astr, B rows by bstr per
// segment) with vector accumulators, then reduced: res[i*nr + j] (overwritten).
template <typename T, bool UNIT>
inline void inner_tile_any(int mr, int nr, const T* const* a, const T* const* b, int64_t st,
                           int64_t nvec, int64_t nimg, int64_t astr, int64_t bstr, T* res) {
  using S = Simd<T>;
  with_rows<kInnerMR>(mr, [&](auto m) {
    with_rows<3>(nr, [&](auto n) {
      constexpr int MR = m(), NR = n();
      typename S::V acc[MR][NR];
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc[i][j] = S::zero();
      const T* as[MR];
      const T* bs[NR];
      for (int i = 0; i < MR; ++i) as[i] = a[i];
      for (int j = 0; j < NR; ++j) bs[j] = b[j];
      for (int64_t k = 0; k < nimg; ++k) {
        inner_tile<T, MR, NR, UNIT>(as, bs, st, nvec, acc);
        for (int i = 0; i < MR; ++i) as[i] += astr;
        for (int j = 0; j < NR; ++j) bs[j] += bstr;
      }
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) res[i * NR + j] = S::hsum(acc[i][j]);
    });
  });
}

}  // namespace CB_CPU_NS
}  // namespace convbench
