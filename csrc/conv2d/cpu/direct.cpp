// Direct convolution on zero-padded input planes, no im2col: the "flat"
// engine of Direct (direct_kvec.cpp holds the channel-vectorised one;
// choose.cpp picks between them).
// Forward (and input gradient, run as forward problems, see problem.h):
// output positions are flattened across rows (j = ho*Wq + wo), so one
// register tile is kFlatMR output channels x flat_nv vectors of consecutive
// positions (tiles.h: 8 x 48 floats on AVX-512, 4 x 24 on AVX2) whatever
// the image width, fed by unaligned loads at offsets c*plane + r*dh*Wp +
// s*dw. Weight gradient: inner products along the flattened positions
// between dy rows and shifted input rows, kInnerMR out x 3 kernel columns per
// tile, summed over the batch in a fixed order (deterministic).
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

// Copies the valid positions of a flattened tile (rows of width Wq, first
// Wo valid) into y planes; tile[m][t] is position j0 + t of channel m.
template <typename T>
void write_flat_tile(const T* tile, int mr, int64_t width, int64_t j0, int64_t J, int64_t Wq,
                     int64_t Wo, int64_t HoWo, T* y, const T* bias) {
  const int64_t jend = std::min(j0 + width, J);
  int64_t j = j0;
  while (j < jend) {
    const int64_t ho = j / Wq, wo = j - ho * Wq;
    const int64_t row_end = std::min(jend, ho * Wq + Wq);
    if (wo < Wo) {
      const int64_t len = std::min(row_end, ho * Wq + Wo) - j;
      using S = Simd<T>;
      for (int m = 0; m < mr; ++m) {
        const auto bb = S::bcast(bias ? bias[m] : T(0));
        const T* src = tile + m * width + (j - j0);
        T* dst = y + m * HoWo + ho * Wo + wo;
        int64_t i = 0;
        for (; i + S::L <= len; i += S::L) S::store(dst + i, S::load(src + i) + bb);
        if (S::kFastStoreN && i < len) {  // the row's tail in one masked store: 1.02-1.27x
          const int n = static_cast<int>(len - i);  // on the flat forward layers
          S::store_n(dst + i, S::load_n(src + i, n) + bb, n);
        } else {
          for (; i < len; ++i) dst[i] = src[i] + bb[0];
        }
      }
    }
    j = row_end;
  }
}

// Positions [ja, jb) (at most JW of them) of MR output channels: register
// tiles of W positions land side by side in `flat` ([MR][JW]), which is
// then written to y in one pass: row splitting and bias cost per block,
// not per tile (they cost 15-35% of the time with 8 input channels).
template <typename T, int MR, int NV, bool UNIT>
void direct_block(const FwdProb<T>& p, const PadGeom& g, const T* xbase, const int64_t* offs,
                  int64_t crs, const T* wk, int64_t ja, int64_t jb, int64_t JW, T* flat, T* y,
                  const T* bias) {
  constexpr int W = NV * Simd<T>::L;
  const int64_t Cg = p.Cg(), RS = p.R * p.S;
  // Padded rows holding data: [ph, ph + (Hi-1)*lh]; other rows are zero.
  const int64_t row_lo = p.ph, row_hi = p.ph + (p.Hi - 1) * p.lh;
  for (int64_t j0 = ja; j0 < jb; j0 += W) {
    // Kernel rows that read data for some output row of this tile.
    const int64_t ha = j0 / g.Wq, hb = std::min(p.Ho - 1, (j0 + W - 1) / g.Wq);
    int64_t r0 = 0, r1 = p.R - 1;
    while (r0 <= r1 && hb * p.sh + r0 * p.dh < row_lo) ++r0;
    while (r1 >= r0 && ha * p.sh + r1 * p.dh > row_hi) --r1;
    if (p.Hi == 0) r1 = r0 - 1;
    const int64_t nr = r1 - r0 + 1;
    T* tile = flat + (j0 - ja);
    if (nr <= 0) {
      for (int m = 0; m < MR; ++m) std::fill(tile + m * JW, tile + m * JW + W, T(0));
    } else {
      const int64_t i0 = r0 * p.S;
      outer_tile<T, MR, NV, true, UNIT>(Cg, RS, nr * p.S, wk + i0 * MR, xbase + p.sw * j0,
                                        offs + i0, p.sw, tile, JW);
    }
  }
  write_flat_tile(flat, MR, JW, ja, g.J, g.Wq, p.Wo, p.Ho * p.Wo, y, bias);
}

// Flat tiles: mr output channels x flat_nv(mr) vectors of positions.
template <typename T, int MR, bool UNIT>
void direct_block_mr(const FwdProb<T>& p, const PadGeom& g, const T* xbase, const int64_t* offs,
                     int64_t crs, const T* wk, int64_t ja, int64_t jb, int64_t JW, T* flat, T* y,
                     const T* bias) {
  direct_block<T, MR, flat_nv(MR), UNIT>(p, g, xbase, offs, crs, wk, ja, jb, JW, flat, y, bias);
}

template <typename T, bool UNIT>
void direct_block_any(int mr, const FwdProb<T>& p, const PadGeom& g, const T* xbase,
                      const int64_t* offs, int64_t crs, const T* wk, int64_t ja, int64_t jb,
                      int64_t JW, T* flat, T* y, const T* bias) {
  with_rows<kFlatMR>(mr, [&](auto m) {
    direct_block_mr<T, m(), UNIT>(p, g, xbase, offs, crs, wk, ja, jb, JW, flat, y, bias);
  });
}

}  // namespace

template <typename T>
void direct_forward_engine(const FwdProb<T>& p) {
  constexpr int L = Simd<T>::L;
  const PadGeom g = pad_geom(p);
  const int64_t Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S, CRS = Cg * RS;
  Buffer<T> wpk(p.Co * CRS);
  pack_weights(p, kFlatMR, wpk.data());
  std::vector<int64_t> offs(CRS);
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t r = 0; r < p.R; ++r)
      for (int64_t s = 0; s < p.S; ++s)
        offs[(c * p.R + r) * p.S + s] = c * g.plane + r * p.dh * g.Wp + s * p.dw;

  constexpr int64_t JW = 12 * L;  // positions per task: a multiple of every tile width
  const int64_t njc = ceil_div64(g.J, JW), nkb = ceil_div64(Kg, kFlatMR);
  const int64_t nb = images_per_chunk(p.N, p.Ci * g.plane * int64_t(sizeof(T)), kChunkBytes);
  const int64_t slack = p.sw * kFlatMaxNV * L + L;  // over-read of the last tile
  Buffer<T> xb(nb * p.Ci * g.plane + slack);
  std::fill(xb.data() + nb * p.Ci * g.plane, xb.data() + nb * p.Ci * g.plane + slack, T(0));
  const bool unit = p.sw == 1;

#pragma omp parallel
  for (int64_t n0 = 0; n0 < p.N; n0 += nb) {
    const int64_t nn = std::min(nb, p.N - n0);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < nn * p.Ci; ++i)
      pad_plane(p, g, p.x + (n0 * p.Ci + i) * p.Hi * p.Wi, xb.data() + i * g.plane);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < nn * p.G * njc; ++t) {
      const int64_t nl = t / (p.G * njc), gg = (t / njc) % p.G, jc = t % njc;
      const T* xbase = xb.data() + (nl * p.Ci + gg * Cg) * g.plane;
      const int64_t ja = jc * JW, jb = std::min(g.J, ja + JW);
      alignas(64) T flat[kFlatMR * JW];
      for (int64_t kb = 0; kb < nkb; ++kb) {
        const int64_t k0 = gg * Kg + kb * kFlatMR;
        const int mr = static_cast<int>(std::min<int64_t>(kFlatMR, Kg - kb * kFlatMR));
        const T* wk = wpk.data() + k0 * CRS;
        T* y = p.y + ((n0 + nl) * p.Co + k0) * p.Ho * p.Wo;
        const T* bias = p.b ? p.b + k0 : nullptr;
        if (unit)
          direct_block_any<T, true>(mr, p, g, xbase, offs.data(), CRS, wk, ja, jb, JW, flat, y, bias);
        else
          direct_block_any<T, false>(mr, p, g, xbase, offs.data(), CRS, wk, ja, jb, JW, flat, y, bias);
      }
    }
  }
}

CB_CONV2D_CPU_FORWARD_PASSES(direct_flat, direct_forward_engine)

template <typename T>
void conv2d_backward_weight_direct_flat(const Conv2dShape& s, const T* dy, const T* x, T* dw) {
  constexpr int L = Simd<T>::L;
  const FwdProb<T> p = forward_problem<T>(s, x, nullptr, nullptr, nullptr);
  const PadGeom g = pad_geom(p);
  const int64_t Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S;
  const int64_t Jr = round_up64(g.J, L);  // flattened dy rows, zero beyond Wo / J
  const int64_t per_image = (p.Ci * g.plane + p.Co * Jr) * int64_t(sizeof(T));
  // Chunk sized for L2: every tile re-reads the chunk's dy and input rows.
  const int64_t nb = images_per_chunk(p.N, per_image, kWgradChunkBytes);
  const int64_t slack = p.sw * L + L;
  const int64_t xsize = nb * p.Ci * g.plane + slack, dsize = nb * p.Co * Jr;
  const int64_t slot_bytes = (xsize + dsize) * int64_t(sizeof(T));
  const int64_t slots =
      wgrad_parts(p.N, p.Ho * p.Wo, slot_bytes, s.weight_numel() * int64_t(sizeof(T)));
  Buffer<T> xbs(slots * xsize), dbs(slots * dsize);
  const int64_t KB = kInnerMR;
  const int64_t nkb = ceil_div64(Kg, KB), nsb = ceil_div64(p.S, 3);
  const int64_t ntiles = p.G * nkb * Cg * p.R * nsb;
  const bool unit = p.sw == 1;

  wgrad_batched(p.N, p.Ho * p.Wo, nb, slot_bytes, s.weight_numel(), dw,
                [&](int64_t slot, int64_t n0, int64_t nn, T* out, bool par) {
    T* xb = xbs.data() + slot * xsize;
    T* db = dbs.data() + slot * dsize;
    // Vector tails read just past the chunk's last plane (times zero dy):
    // keep that memory finite.
    std::fill(xb + nn * p.Ci * g.plane, xb + nn * p.Ci * g.plane + slack, T(0));
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < nn * (p.Ci + p.Co); ++i) {
      const int64_t nl = i / (p.Ci + p.Co), c = i % (p.Ci + p.Co);
      if (c < p.Ci) {
        pad_plane(p, g, x + ((n0 + nl) * p.Ci + c) * p.Hi * p.Wi, xb + (nl * p.Ci + c) * g.plane);
      } else {
        const int64_t k = c - p.Ci;
        T* d = db + (nl * p.Co + k) * Jr;
        const T* src = dy + ((n0 + nl) * p.Co + k) * p.Ho * p.Wo;
        std::fill(d, d + Jr, T(0));
        for (int64_t ho = 0; ho < p.Ho; ++ho)
          std::memcpy(d + ho * g.Wq, src + ho * p.Wo, sizeof(T) * p.Wo);
      }
    }
    // Tiles ordered with the output-channel block innermost: consecutive
    // tiles share the same shifted input rows (L1) and stream dy from L2.
#pragma omp parallel for schedule(static) if (par)
    for (int64_t t = 0; t < ntiles; ++t) {
      int64_t rem = t;
      const int64_t kb = rem % nkb; rem /= nkb;
      const int64_t sb = rem % nsb; rem /= nsb;
      const int64_t r = rem % p.R; rem /= p.R;
      const int64_t c = rem % Cg; rem /= Cg;
      const int64_t gg = rem;
      const int mr = static_cast<int>(std::min<int64_t>(KB, Kg - kb * KB));
      const int nr = static_cast<int>(std::min<int64_t>(3, p.S - sb * 3));
      const int64_t k0 = gg * Kg + kb * KB, s0 = sb * 3;
      const T* a[kInnerMR];
      const T* b[3];
      for (int i = 0; i < mr; ++i) a[i] = db + (k0 + i) * Jr;
      const T* xrow = xb + (gg * Cg + c) * g.plane + r * p.dh * g.Wp;
      for (int j = 0; j < nr; ++j) b[j] = xrow + (s0 + j) * p.dw;
      T part[kInnerMR * 3];
      if (unit)
        inner_tile_any<T, true>(mr, nr, a, b, 1, Jr / L, nn, p.Co * Jr, p.Ci * g.plane, part);
      else
        inner_tile_any<T, false>(mr, nr, a, b, p.sw, Jr / L, nn, p.Co * Jr, p.Ci * g.plane, part);
      for (int i = 0; i < mr; ++i)
        for (int j = 0; j < nr; ++j)
          out[((k0 + i) * Cg + c) * RS + r * p.S + s0 + j] += part[i * nr + j];
    }
  });
}

CB_INSTANTIATE_CONV2D_CPU_ALGO(direct_flat)

}  // namespace CB_CPU_NS
}  // namespace convbench
