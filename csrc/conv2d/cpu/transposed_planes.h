// Zero-padded input planes transposed to channels-last, [Hp][Wp][Cg] per
// image and group: the layout of the channel-vectorised engines
// (direct_kvec.cpp, winograd.cpp), which read a pixel's channels together.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "conv2d/cpu/problem.h"
#include "common/cpu/simd_transpose.h"

namespace convbench {
namespace CB_CPU_NS {

// Input planes of images [n0, n0+nn) -> xt [nl][g][Hp][Wp][Cg], zero-padded
// (columns of zero-inserted inputs at lw apart). Parallel over padded rows.
template <typename T>
inline void transpose_inputs(const FwdProb<T>& p, const PadGeom& g, int64_t n0, int64_t nn, T* xt) {
  const int64_t Cg = p.Cg(), rowlen = g.Wp * Cg, gplane = g.plane * Cg;
  const int64_t rows = nn * p.G * g.Hp;
  const int64_t wlo = p.pw >= 0 ? 0 : ceil_div64(-p.pw, p.lw);
  const int64_t whi = std::min(p.Wi, ceil_div64(g.Wp - p.pw, p.lw));
  // Row t's source: Cg runs of whi - wlo values, HiWi apart; null if the
  // row is all padding.
  auto source = [&](int64_t t) -> const T* {
    const int64_t ig = t / g.Hp, hi = t % g.Hp - p.ph;
    if (hi < 0 || hi % p.lh != 0 || hi / p.lh >= p.Hi || whi <= wlo) return nullptr;
    const int64_t nl = ig / p.G, gg = ig % p.G;
    return p.x + ((n0 + nl) * p.Ci + gg * Cg) * p.Hi * p.Wi + (hi / p.lh) * p.Wi + wlo;
  };
  // The source runs are short (a row of each channel plane) and many, too
  // short for the hardware prefetcher to follow: a row's runs are fetched
  // kAhead rows before they are transposed, so a cold input streams in
  // while earlier rows are transposed.
  constexpr int64_t kAhead = 4;
#pragma omp for schedule(static)
  for (int64_t t = 0; t < rows; ++t) {
    if (t + kAhead < rows)
      if (const T* ahead = source(t + kAhead))
        for (int64_t c = 0; c < Cg; ++c) prefetch_lines(ahead + c * p.Hi * p.Wi, whi - wlo);
    const int64_t ig = t / g.Hp, a = t % g.Hp;
    T* d = xt + ig * gplane + a * rowlen;
    // the plane's spare tail (past Hp*Wp) belongs to the last row
    const int64_t len = a == g.Hp - 1 ? gplane - a * rowlen : rowlen;
    std::memset(d, 0, sizeof(T) * len);
    const T* src = source(t);
    if (!src) continue;
    transpose_2d(src, p.Hi * p.Wi, d + ((wlo * p.lw) + p.pw) * Cg, p.lw * Cg, Cg, whi - wlo);
  }
}

}  // namespace CB_CPU_NS
}  // namespace convbench
