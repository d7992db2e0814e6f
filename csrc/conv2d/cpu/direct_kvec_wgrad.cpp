// Weight gradient of the channel-vectorised Direct engine (direct_kvec.cpp
// has its forward problems): dW^T[(r,s,c) x Kg] accumulated as outer
// products over output positions, x broadcast from the transposed padded
// planes (an implicit im2col), dy transposed to [position][Kp]. No
// horizontal sums, no wasted positions. Batch handled by wgrad_batched
// (fixed-order partials, bitwise reproducible).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/shapes.h"
#include "common/cpu/simd.h"
#include "common/cpu/simd_transpose.h"
#include "conv2d/cpu/conv2d_cpu_kernels.h"
#include "conv2d/cpu/problem.h"
#include "conv2d/cpu/tiles.h"
#include "conv2d/cpu/transposed_planes.h"
#include "conv2d/cpu/wgrad_batch.h"

namespace convbench {
namespace CB_CPU_NS {

namespace {

// (Out of line: each instantiation gets the whole register file to itself,
// faster on one vector of output channels: 8d27379.)
template <typename T, int MR, int NV>
__attribute__((noinline)) void kvec_wgrad_tile(const FwdProb<T>& p, const PadGeom& g,
                                                int64_t nn, int64_t xstr, int64_t dstr,
                                                const T* xg, const T* dg, const int64_t* off,
                                                int64_t Kp, T* out) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int L = S::L;
  const int64_t Cg = p.Cg();
  V acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = S::zero();
  const int64_t xs = p.sw * Cg;
  for (int64_t nl = 0; nl < nn; ++nl) {
    const T* xi = xg + nl * xstr;
    const T* di = dg + nl * dstr;
    for (int64_t ho = 0; ho < p.Ho; ++ho) {
      const T* xr[MR];
      for (int m = 0; m < MR; ++m) xr[m] = xi + ho * p.sh * g.Wp * Cg + off[m];
      const T* dr = di + ho * p.Wo * Kp;
      for (int64_t wo = 0; wo < p.Wo; ++wo) {
        V dv[NV];
        for (int v = 0; v < NV; ++v) dv[v] = S::load(dr + wo * Kp + v * L);
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

// A tile of mr rows (cnt of them real: the rest repeat the last).
template <typename T, int NV>
void kvec_wgrad_rows(const FwdProb<T>& p, const PadGeom& g, int64_t nn, int64_t xstr,
                     int64_t dstr, const T* xg, const T* dg, const int64_t* off, int64_t mr,
                     int64_t cnt, int64_t Kp, T* out) {
  with_rows<pointer_rows(NV)>(mr, [&](auto h) {
    constexpr int MR = h();
    int64_t o[MR];
    for (int m = 0; m < MR; ++m) o[m] = off[std::min<int64_t>(m, cnt - 1)];
    kvec_wgrad_tile<T, MR, NV>(p, g, nn, xstr, dstr, xg, dg, o, Kp, out);
  });
}


// How a call is cut: images per chunk, the per-slot workspaces, and the
// row tiles of dW^T per channel block.
struct KvecWgradPlan {
  KvecWgradPlan(int64_t Kg, int64_t L) : cb(Kg, L) {}
  ChannelBlocks cb;
  int64_t CRS, nb;
  int64_t gplane, dplane;       // one image-group: transposed x, dy [position][Kp]
  int64_t xsize, dsize, tsize;  // per slot: a chunk's x and dy, the part's dW^T
  int64_t slot_bytes, slots;
  std::vector<int64_t> off;         // tile rows (r, s, c) as offsets into [Hp][Wp][Cg]
  std::vector<int64_t> first_task;  // per channel block: its first row tile
  int64_t ntiles;                   // row tiles of all groups
  // Tile rows of even heights, at most kPointerRows: 3x3 over 8 channels (72
  // rows) as 8 tiles of 9, not 6 of 14 with 84 computed (3648c7d, 8d27379).
  int64_t rows(int64_t b) const {
    return even_rows(CRS, pointer_rows(cb.vectors(b)));
  }
};

template <typename T>
KvecWgradPlan kvec_wgrad_plan(const Conv2dShape& s, const FwdProb<T>& p, const PadGeom& g) {
  constexpr int64_t L = Simd<T>::L;
  KvecWgradPlan w(p.Kg(), L);
  const int64_t Cg = p.Cg(), M = p.Ho * p.Wo;
  w.CRS = Cg * p.R * p.S;
  w.gplane = g.plane * Cg;
  w.dplane = M * w.cb.Kp;
  // Chunks sized so the chunk's planes stay near L2 -- but with a dW too big
  // for partial sums (one part), each chunk re-runs every tile: give those
  // tiles >= ~1024 positions to reduce over (512 -> 512 at 4x4: 3 images of
  // 16 positions per chunk made the per-tile overhead rival the products).
  const int64_t per_image = p.G * (w.gplane + w.dplane) * int64_t(sizeof(T));
  w.nb = images_per_chunk(p.N, per_image, kWgradChunkBytes);
  if (s.weight_numel() * int64_t(sizeof(T)) > kWgradPartWeightBytes)
    w.nb = std::min(p.N, std::max(w.nb, ceil_div64(1024, M)));
  w.xsize = w.nb * p.G * w.gplane;
  w.dsize = w.nb * p.G * w.dplane;
  // Sums accumulate per part in dW^T [g][(r, s, c)][Kp], whole vectors per
  // tile row, and reach dW's [k][c][r][s] once, by transposes, at the end
  // of the part (scattering each tile into dW instead is a scalar
  // read-modify-write per weight and chunk: 4.7 MB of them at 256 -> 512).
  w.tsize = p.G * w.CRS * w.cb.Kp;
  w.slot_bytes = (w.xsize + w.dsize) * int64_t(sizeof(T));
  w.slots = wgrad_parts(p.N, M, w.slot_bytes, s.weight_numel() * int64_t(sizeof(T)));
  w.off.resize(w.CRS);
  for (int64_t r = 0, i = 0; r < p.R; ++r)
    for (int64_t sx = 0; sx < p.S; ++sx)
      for (int64_t c = 0; c < Cg; ++c, ++i) w.off[i] = (r * p.dh * g.Wp + sx * p.dw) * Cg + c;
  // Row tiles per channel block (the tile height depends on the block width).
  w.first_task.assign(w.cb.count + 1, 0);
  for (int64_t b = 0; b < w.cb.count; ++b)
    w.first_task[b + 1] = w.first_task[b] + ceil_div64(w.CRS, w.rows(b));
  w.ntiles = p.G * w.first_task[w.cb.count];
  return w;
}

// dy of images [n0, n0+nn) -> db [image][group][position][Kp], zero beyond
// Kg. (An omp for: call inside a parallel region.)
template <typename T>
void transpose_dy(const FwdProb<T>& p, const KvecWgradPlan& w, const T* dy, int64_t n0,
                  int64_t nn, T* db) {
  const int64_t Kg = p.Kg(), Kp = w.cb.Kp, M = p.Ho * p.Wo;
#pragma omp for schedule(static)
  for (int64_t i = 0; i < nn * p.G; ++i) {
    const int64_t nl = i / p.G, gg = i % p.G;
    T* e = db + i * w.dplane;
    const T* src = dy + ((n0 + nl) * p.Co + gg * Kg) * M;
    // The next (image, group)'s Kg x M values follow contiguously: fetch
    // them while this one is transposed (cold gradients stream in).
    if (i + 1 < nn * p.G) prefetch_lines(src + Kg * M, Kg * M);
    transpose_2d(src, M, e, Kp, Kg, M);
    if (Kp > Kg)
      for (int64_t m = 0; m < M; ++m) std::fill(e + m * Kp + Kg, e + (m + 1) * Kp, T(0));
  }
}

// Every row tile of dW^T over the chunk's nn images (xb, db), stored
// (the part's first chunk) or added into dwt. Meanwhile the next chunk's
// images (the next part's, on a part's last chunk: the same thread's, as
// parts go to threads in order) stream into L2, a slice per tile. (An omp
// for: call inside a parallel region.)
template <typename T>
void accumulate_tiles(const FwdProb<T>& p, const PadGeom& g, const KvecWgradPlan& w, const T* dy,
                      const T* xb, const T* db, int64_t n0, int64_t nn, bool first, T* dwt) {
  using S = Simd<T>;
  constexpr int64_t L = S::L;
  const ChannelBlocks& cb = w.cb;
  const int64_t CRS = w.CRS, M = p.Ho * p.Wo, per_group = w.first_task[cb.count];
  const int64_t n1 = n0 + nn, nn1 = std::min(w.nb, p.N - n1);
  const T* x1 = p.x + n1 * p.Ci * p.Hi * p.Wi;
  const T* dy1 = dy + n1 * p.Co * M;
  const int64_t xstr = p.G * w.gplane, dstr = p.G * w.dplane;
#pragma omp for schedule(static)
  for (int64_t t = 0; t < w.ntiles; ++t) {
    if (nn1 > 0) {
      prefetch_share(x1, nn1 * p.Ci * p.Hi * p.Wi, t, w.ntiles);
      prefetch_share(dy1, nn1 * p.Co * M, t, w.ntiles);
    }
    const int64_t gg = t / per_group, u = t % per_group;
    int64_t b = 0;
    while (u >= w.first_task[b + 1]) ++b;
    const int64_t mr = w.rows(b), i0 = (u - w.first_task[b]) * mr;
    const int64_t cnt = std::min(mr, CRS - i0), k0 = cb.k0(b), wb = cb.size(b);
    alignas(64) T tile[kAccRegs * L];
    with_rows<kKvecMaxNV>(wb / L, [&](auto nv) {
      kvec_wgrad_rows<T, nv()>(p, g, nn, xstr, dstr, xb + gg * w.gplane, db + gg * w.dplane + k0,
                               w.off.data() + i0, mr, cnt, cb.Kp, tile);
    });
    for (int64_t m = 0; m < cnt; ++m) {
      T* row = dwt + (gg * CRS + i0 + m) * cb.Kp + k0;
      for (int64_t v = 0; v < wb; v += L) {
        const auto add = S::load(tile + m * wb + v);
        S::store(row + v, first ? add : S::load(row + v) + add);
      }
    }
  }
}

// dW^T [g][(r, s, c)][Kp] -> out [g*Kg + k][c][r][s], by blocks of L
// output channels: a block's rows of out (L x C*R*S) stay in cache while
// each tap (r, s) scatters into them (a pass per tap over all of dW would
// write every line of a 9 MB dW nine times). (An omp for: call inside a
// parallel region.)
template <typename T>
void scatter_dwt(const FwdProb<T>& p, const KvecWgradPlan& w, const T* dwt, T* out) {
  constexpr int64_t L = Simd<T>::L;
  const int64_t Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S, CRS = w.CRS, Kp = w.cb.Kp;
  const int64_t kblocks = ceil_div64(Kg, L);
  Buffer<T> kc(L * Cg);
#pragma omp for schedule(static)
  for (int64_t t = 0; t < p.G * kblocks; ++t) {
    const int64_t gg = t / kblocks, k0 = (t % kblocks) * L, kn = std::min(L, Kg - k0);
    T* dst = out + (gg * Kg + k0) * CRS;
    for (int64_t rs = 0; rs < RS; ++rs) {
      const T* src = dwt + (gg * CRS + rs * Cg) * Kp + k0;  // rows c, columns k
      if (RS == 1) {
        transpose_2d(src, Kp, dst, CRS, Cg, kn);
        continue;
      }
      transpose_2d(src, Kp, kc.data(), Cg, Cg, kn);
      for (int64_t k = 0; k < kn; ++k)
        for (int64_t c = 0; c < Cg; ++c) dst[k * CRS + c * RS + rs] = kc.data()[k * Cg + c];
    }
  }
}

}  // namespace

// Per chunk of a part: transpose x and dy, then accumulate every row tile;
// at the part's end, dW^T goes out in dW's layout.
template <typename T>
void conv2d_backward_weight_direct_kvec(const Conv2dShape& s, const T* dy, const T* x, T* dw) {
  const FwdProb<T> p = forward_problem<T>(s, x, nullptr, nullptr, nullptr);
  const PadGeom g = pad_geom(p);
  const KvecWgradPlan w = kvec_wgrad_plan(s, p, g);
  Buffer<T> xbs(w.slots * w.xsize), dbs(w.slots * w.dsize), dwts(w.slots * w.tsize);
  std::vector<char> fresh(w.slots, 1);
  auto chunk = [&](int64_t slot, int64_t n0, int64_t nn, T*, bool par) {
    T* xb = xbs.data() + slot * w.xsize;
    T* db = dbs.data() + slot * w.dsize;
    const bool first = fresh[slot];
    fresh[slot] = 0;
#pragma omp parallel if (par)
    {
      transpose_inputs(p, g, n0, nn, xb);
      transpose_dy(p, w, dy, n0, nn, db);
      accumulate_tiles(p, g, w, dy, xb, db, n0, nn, first, dwts.data() + slot * w.tsize);
    }
  };
  auto finish = [&](int64_t slot, T* out, bool par) {
    fresh[slot] = 1;
#pragma omp parallel if (par)
    scatter_dwt(p, w, dwts.data() + slot * w.tsize, out);
  };
  wgrad_batched(p.N, p.Ho * p.Wo, w.nb, w.slot_bytes, s.weight_numel(), dw, chunk, finish);
}

CB_INSTANTIATE_CONV2D_CPU_WEIGHT_PASS(direct_kvec)

}  // namespace CB_CPU_NS
}  // namespace convbench
