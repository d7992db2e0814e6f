// im2col + our own blocked GEMM (no BLAS).
// Forward (and input gradient as a forward problem): per image and group,
// Y[Kg x HoWo] = Wg[Kg x CRS] * col[CRS x HoWo]. Columns are cut into blocks
// of kNP panels of NR = 3 vectors; for each KC slice of CRS the im2col of a
// block is written straight into the packed panel layout [panel][kc][NR]
// (read from zero-padded planes, so no bounds checks), then the 4 x NR
// register micro-kernel runs over the 4-row weight panels. (Kept at 4 x 3
// vectors on every ISA: im2col is the comparison algorithm, rarely auto's
// pick; see choose.cpp.)
// Weight gradient: dW[Kg x CRS] = dY[Kg x L] * col[CRS x L]^T with the
// batch folded into L; im2col rows and repacked dy rows of a batch chunk,
// then kInnerMR x 3 inner-product tiles vectorised along L. Chunks are reduced in
// batch order, so the result is bitwise reproducible for any thread count.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/shapes.h"
#include "conv2d/cpu/conv2d_cpu_kernels.h"
#include "conv2d/cpu/microkernels.h"
#include "conv2d/cpu/problem.h"
#include "conv2d/cpu/tiles.h"
#include "conv2d/cpu/wgrad_batch.h"

namespace convbench {
namespace CB_CPU_NS {

namespace {

constexpr int64_t kNP = 4;                // panels per column block
constexpr int64_t kKC = 128;              // CRS slice: one packed panel stays in L1

// A run of consecutive columns m .. m+len of one output row: padded offset
// of its first element, stepping by sw.
struct Run {
  int64_t t, len, pos;
};

// y rows (ldc apart) for columns m0 .. m0+ncols of channels [0, mr); tile is
// [mr][W]. First KC slice writes (plus bias), later ones accumulate.
template <typename T>
void store_tile(const T* tile, int mr, int64_t W, int64_t ncols, T* y, int64_t ldc, bool first,
                const T* bias) {
  for (int m = 0; m < mr; ++m) {
    T* d = y + m * ldc;
    const T* s = tile + m * W;
    if (first) {
      const T bv = bias ? bias[m] : T(0);
      for (int64_t i = 0; i < ncols; ++i) d[i] = s[i] + bv;
    } else {
      for (int64_t i = 0; i < ncols; ++i) d[i] += s[i];
    }
  }
}

// The phases below are forced inline: as separate calls the forward and
// input-gradient passes ran 4-5% slower (bench/results/cpu-2026-12-07-phases).

// Offsets of the CRS rows of im2col into one image-group's padded planes.
template <typename T>
std::vector<int64_t> column_row_offsets(const FwdProb<T>& p, const PadGeom& g) {
  std::vector<int64_t> offs(p.Cg() * p.R * p.S);
  for (int64_t c = 0; c < p.Cg(); ++c)
    for (int64_t r = 0; r < p.R; ++r)
      for (int64_t s = 0; s < p.S; ++s)
        offs[(c * p.R + r) * p.S + s] = c * g.plane + r * p.dh * g.Wp + s * p.dw;
  return offs;
}

// The block's columns [m0, m0+ncols) (batch folded in, M per image) as runs
// of consecutive columns within one output row of one image and one panel.
template <typename T>
[[gnu::always_inline]] inline void column_runs(const FwdProb<T>& p, const PadGeom& g, int64_t m0,
                                               int64_t ncols, int64_t NR, std::vector<Run>& runs) {
  const int64_t M = p.Ho * p.Wo;
  runs.clear();
  for (int64_t m = m0; m < m0 + ncols;) {
    const int64_t nl = m / M, mm = m % M, ho = mm / p.Wo, wo = mm % p.Wo;
    const int64_t len = std::min({p.Wo - wo, m0 + ncols - m, NR - (m - m0) % NR});
    runs.push_back({m - m0, len, nl * p.Ci * g.plane + ho * p.sh * g.Wp + wo * p.sw});
    m += len;
  }
}

// im2col of the runs' columns x rows [kc0, kc0+kc) into panels of kc+1
// rows, [panel][row][NR]. Unit stride copies whole vectors: the overshoot
// of a run lands on columns written later in the same row, on the next
// row, or in the spare last row, and tail columns of a partial panel are
// never stored, so none of it is read as a result.
template <typename T>
[[gnu::always_inline]] inline void pack_columns(const FwdProb<T>& p, const T* xbase,
                                                const int64_t* offs, int64_t kc,
                                                const std::vector<Run>& runs, T* bp) {
  using S = Simd<T>;
  constexpr int64_t L = S::L, NR = 3 * L;
  const int64_t pst = (kc + 1) * NR;
  for (int64_t i = 0; i < kc; ++i) {
    const T* srow = xbase + offs[i];
    T* drow = bp + i * NR;
    if (p.sw == 1) {
      for (const Run& u : runs) {
        const T* src = srow + u.pos;
        T* dst = drow + (u.t / NR) * pst + u.t % NR;
        for (int64_t e = 0; e < u.len; e += L) S::store(dst + e, S::load(src + e));
      }
    } else {
      for (const Run& u : runs) {
        const T* src = srow + u.pos;
        T* dst = drow + (u.t / NR) * pst + u.t % NR;
        for (int64_t e = 0; e < u.len; ++e) dst[e] = src[e * p.sw];
      }
    }
  }
}

// The packed panels of columns [m0, m0+ncols) times group gg's weight rows,
// slice [kc0, kc0+kc) of CRS, stored (first slice, plus bias) or added into
// y of the chunk's images from n0. Panel outer (stays in L1), weight blocks
// inner (from L2).
template <typename T>
[[gnu::always_inline]] inline void multiply_panels(const FwdProb<T>& p, const T* wpk, const T* bp,
                                                   int64_t gg, int64_t n0, int64_t m0,
                                                   int64_t ncols, int64_t kc0, int64_t kc) {
  constexpr int64_t NR = 3 * Simd<T>::L;
  const int64_t Kg = p.Kg(), CRS = p.Cg() * p.R * p.S, M = p.Ho * p.Wo;
  const int64_t npan = ceil_div64(ncols, NR), nkb = ceil_div64(Kg, 4);
  for (int64_t pan = 0; pan < npan; ++pan) {
    const int64_t pm0 = m0 + pan * NR, nc = std::min(NR, ncols - pan * NR);
    const T* b = bp + pan * (kc + 1) * NR;
    for (int64_t kb = 0; kb < nkb; ++kb) {
      const int64_t k0 = kb * 4;
      const int mr = static_cast<int>(std::min<int64_t>(4, Kg - k0));
      const T* wk = wpk + (gg * Kg + k0) * CRS + kc0 * mr;
      const T* bias = p.b ? p.b + gg * Kg + k0 : nullptr;
      alignas(64) T tile[4 * NR];
      switch (mr) {
        case 4: outer_tile<T, 4, 3, false, true>(1, 0, kc, wk, b, nullptr, 1, tile); break;
        case 3: outer_tile<T, 3, 3, false, true>(1, 0, kc, wk, b, nullptr, 1, tile); break;
        case 2: outer_tile<T, 2, 3, false, true>(1, 0, kc, wk, b, nullptr, 1, tile); break;
        default: outer_tile<T, 1, 3, false, true>(1, 0, kc, wk, b, nullptr, 1, tile); break;
      }
      // Scatter the panel's columns to their images.
      for (int64_t m = pm0; m < pm0 + nc;) {
        const int64_t nl = m / M, mm = m % M;
        const int64_t len = std::min(pm0 + nc, (nl + 1) * M) - m;
        T* y = p.y + ((n0 + nl) * p.Co + gg * Kg + k0) * M + mm;
        store_tile(tile + (m - pm0), mr, NR, len, y, M, kc0 == 0, bias);
        m += len;
      }
    }
  }
}

}  // namespace

// Per chunk of images: pad the planes, then tasks of one group's block of
// columns, each packing its im2col slice by slice and multiplying it.
template <typename T>
void gemm_forward_engine(const FwdProb<T>& p) {
  constexpr int64_t NR = 3 * Simd<T>::L;
  const PadGeom g = pad_geom(p);
  const int64_t Cg = p.Cg(), CRS = Cg * p.R * p.S, M = p.Ho * p.Wo;
  Buffer<T> wpk(p.Co * CRS);
  pack_weights(p, 4, wpk.data());
  const std::vector<int64_t> offs = column_row_offsets(p, g);
  const int64_t BW = kNP * NR, KC = std::min(kKC, CRS);
  const int64_t nb = images_per_chunk(p.N, p.Ci * g.plane * int64_t(sizeof(T)), kChunkBytes);
  Buffer<T> xb(nb * p.Ci * g.plane + Simd<T>::L);  // + over-read of vector copies

#pragma omp parallel
  {
    Buffer<T> bpk((KC + 1) * BW);
    std::vector<Run> runs;
    for (int64_t n0 = 0; n0 < p.N; n0 += nb) {
      const int64_t nn = std::min(nb, p.N - n0);
      // Columns of the chunk: the batch folded into the GEMM's N dimension,
      // so small images still fill whole register tiles.
      const int64_t Mc = nn * M, nblk = ceil_div64(Mc, BW);
#pragma omp for schedule(static)
      for (int64_t i = 0; i < nn * p.Ci; ++i)
        pad_plane(p, g, p.x + (n0 * p.Ci + i) * p.Hi * p.Wi, xb.data() + i * g.plane);
#pragma omp for schedule(static)
      for (int64_t t = 0; t < p.G * nblk; ++t) {
        const int64_t gg = t / nblk, m0 = (t % nblk) * BW, ncols = std::min(BW, Mc - m0);
        column_runs(p, g, m0, ncols, NR, runs);
        for (int64_t kc0 = 0; kc0 < CRS; kc0 += KC) {
          const int64_t kc = std::min(KC, CRS - kc0);
          pack_columns(p, xb.data() + gg * Cg * g.plane, offs.data() + kc0, kc, runs, bpk.data());
          multiply_panels(p, wpk.data(), bpk.data(), gg, n0, m0, ncols, kc0, kc);
        }
      }
    }
  }
}

CB_CONV2D_CPU_FORWARD_PASSES(im2col, gemm_forward_engine)

template <typename T>
void conv2d_backward_weight_im2col(const Conv2dShape& s, const T* dy, const T* x, T* dw) {
  constexpr int L = Simd<T>::L;
  const FwdProb<T> p = forward_problem<T>(s, x, nullptr, nullptr, nullptr);
  const PadGeom g = pad_geom(p);
  const int64_t Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S, CRS = Cg * RS, M = p.Ho * p.Wo;
  // Chunk so the dy rows (re-read for every group of 3 column rows) fit L2.
  const int64_t nb = images_per_chunk(p.N, p.Co * M * int64_t(sizeof(T)), kWgradDyChunkBytes);
  const int64_t Lmax = round_up64(nb * M, L);
  const int64_t xsize = nb * p.Ci * g.plane, csize = p.G * CRS * Lmax, dsize = p.Co * Lmax;
  const int64_t slot_bytes = (xsize + csize + dsize) * int64_t(sizeof(T));
  const int64_t slots =
      wgrad_parts(p.N, p.Ho * p.Wo, slot_bytes, s.weight_numel() * int64_t(sizeof(T)));
  Buffer<T> xbs(slots * xsize), cols(slots * csize), dyks(slots * dsize);
  const int64_t KB = kInnerMR;
  const int64_t nkb = ceil_div64(Kg, KB), ncb = ceil_div64(CRS, 3);
  const int64_t ntiles = p.G * nkb * ncb;

  wgrad_batched(p.N, p.Ho * p.Wo, nb, slot_bytes, s.weight_numel(), dw,
                [&](int64_t slot, int64_t n0, int64_t nn, T* out, bool par) {
    T* xb = xbs.data() + slot * xsize;
    T* col = cols.data() + slot * csize;
    T* dyk = dyks.data() + slot * dsize;
    const int64_t Lc = round_up64(nn * M, L);
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < nn * p.Ci + p.Co; ++i) {
      if (i < nn * p.Ci) {
        pad_plane(p, g, x + (n0 * p.Ci + i) * p.Hi * p.Wi, xb + i * g.plane);
      } else {  // dy rows of channel k for the chunk, batch folded into L
        const int64_t k = i - nn * p.Ci;
        T* d = dyk + k * Lc;
        for (int64_t nl = 0; nl < nn; ++nl)
          std::memcpy(d + nl * M, dy + ((n0 + nl) * p.Co + k) * M, sizeof(T) * M);
        std::fill(d + nn * M, d + Lc, T(0));
      }
    }
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < p.G * CRS; ++i) {  // im2col rows
      const int64_t gg = i / CRS, crs = i % CRS;
      const int64_t c = crs / RS, r = (crs / p.S) % p.R, sx = crs % p.S;
      T* d = col + i * Lc;
      for (int64_t nl = 0; nl < nn; ++nl) {
        const T* src = xb + (nl * p.Ci + gg * Cg + c) * g.plane + r * p.dh * g.Wp + sx * p.dw;
        T* dn = d + nl * M;
        for (int64_t ho = 0; ho < p.Ho; ++ho) {
          const T* sr = src + ho * p.sh * g.Wp;
          T* dr = dn + ho * p.Wo;
          if (p.sw == 1) {
            std::memcpy(dr, sr, sizeof(T) * p.Wo);
          } else {
            for (int64_t wo = 0; wo < p.Wo; ++wo) dr[wo] = sr[wo * p.sw];
          }
        }
      }
      std::fill(d + nn * M, d + Lc, T(0));
    }
#pragma omp parallel for schedule(static) if (par)
    for (int64_t t = 0; t < ntiles; ++t) {
      // kb innermost: the 3 column rows stay in L1 while dy rows come from L2.
      const int64_t gg = t / (nkb * ncb), cb = (t / nkb) % ncb, kb = t % nkb;
      const int64_t k0 = gg * Kg + kb * KB, c0 = cb * 3;
      const int mr = static_cast<int>(std::min<int64_t>(KB, Kg - kb * KB));
      const int nr = static_cast<int>(std::min<int64_t>(3, CRS - c0));
      const T* a[kInnerMR];
      const T* b[3];
      for (int i = 0; i < mr; ++i) a[i] = dyk + (k0 + i) * Lc;
      for (int j = 0; j < nr; ++j) b[j] = col + (gg * CRS + c0 + j) * Lc;
      T part[kInnerMR * 3];
      inner_tile_any<T, true>(mr, nr, a, b, 1, Lc / L, 1, 0, 0, part);
      for (int i = 0; i < mr; ++i)
        for (int j = 0; j < nr; ++j) out[(k0 + i) * CRS + c0 + j] += part[i * nr + j];
    }
  });
}

CB_INSTANTIATE_CONV2D_CPU_ALGO(im2col)

}  // namespace CB_CPU_NS
}  // namespace convbench
