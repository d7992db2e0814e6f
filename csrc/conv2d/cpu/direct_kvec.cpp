// Direct convolution vectorised over output channels (the "kvec" engine of
// Direct; the oneDNN/brgemm scheme): weights packed in blocks [r][s][c][block
// of output channels], and a register tile of MR output positions x NV
// vectors of output channels: each step broadcasts one input value per
// position and loads NV weight vectors. Input planes are transposed to
// [Hp][Wp][Cg] (zero-padded), so a tile reads each position's channels
// contiguously. Only real output positions are computed: it suits wide
// layers and small images, where the flat engine wastes the tails of its
// position vectors. (Broadcasting from the NCHW planes instead, one plane
// per channel step, measured 10-25% slower on 7x7-15x15 layers with 16-64
// channels: a cache line per step instead of one per 16 channels.)
// Work is split over (image, group, channel block, position block), so a
// batch of one with many channels still fills every core; a task's weight
// block is re-read from L2 by each of its position tiles, and its outputs
// are gathered [position][channel] and transposed into NCHW by L x L blocks.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/shapes.h"
#include "conv2d/cpu/conv2d_cpu_kernels.h"
#include "conv2d/cpu/microkernels.h"
#include "conv2d/cpu/problem.h"
#include "common/cpu/simd.h"
#include "common/cpu/simd_transpose.h"
#include "conv2d/cpu/tiles.h"
#include "conv2d/cpu/transposed_planes.h"

namespace convbench {
namespace CB_CPU_NS {

namespace {

// Smallest / largest tap index t in [0, n) with some output o in [oa, ob]
// reading a data row/column: lo <= o*st + t*dil <= hi. Empty: first > second.
inline void tap_range(int64_t oa, int64_t ob, int64_t st, int64_t dil, int64_t n, int64_t lo,
                      int64_t hi, int64_t& t0, int64_t& t1) {
  t0 = 0;
  t1 = n - 1;
  while (t0 <= t1 && ob * st + t0 * dil < lo) ++t0;
  while (t1 >= t0 && oa * st + t1 * dil > hi) --t1;
}

// Weights of group g, output channels [k0, k0 + wb), input channels
// [c0, c0 + cn) -> [r][s][cn][wb] (zero rows k >= Kg). Forward views (taps
// contiguous per output channel) go through L x L transposes of
// [k][c*RS + rs]; the input-gradient view (output channels k' = input
// channels of the layer, taps flipped) is contiguous in (k', tap) for each
// c' and copies element by element.
template <typename T>
void pack_kvec_block(const FwdProb<T>& p, int64_t g, int64_t k0, int64_t wb, int64_t c0,
                     int64_t cn, T* dst) {
  constexpr int64_t L = Simd<T>::L;
  const WeightView<T>& w = p.w;
  const int64_t RS = p.R * p.S, kn = std::min(wb, p.Kg() - k0);
  if (kn < wb)
    for (int64_t i = 0; i < cn * RS; ++i) std::fill(dst + i * wb + kn, dst + (i + 1) * wb, T(0));
  if (w.ss == 1 && w.sr == p.S && w.sc == RS) {  // rows k of Cg*RS contiguous values
    const T* src = &w(g, k0, c0, 0, 0);
    const int64_t J = cn * RS, kb = kn / L * L, jb = J / L * L;
    alignas(64) T tmp[L * L];
    // j outer: each destination row (rs, c) is written whole before moving on.
    for (int64_t j = 0; j < jb; j += L) {
      T* rows[L];
      for (int64_t jj = 0; jj < L; ++jj) rows[jj] = dst + (((j + jj) % RS) * cn + (j + jj) / RS) * wb;
      for (int64_t k = 0; k < kb; k += L) {
        transpose_block(src + k * w.sk + j, w.sk, tmp, L);
        for (int64_t jj = 0; jj < L; ++jj) std::memcpy(rows[jj] + k, tmp + jj * L, sizeof(T) * L);
      }
    }
    for (int64_t k = 0; k < kn; ++k)
      for (int64_t j = k < kb ? jb : 0; j < J; ++j)
        dst[((j % RS) * cn + j / RS) * wb + k] = src[k * w.sk + j];
    return;
  }
  for (int64_t c = 0; c < cn; ++c)
    for (int64_t k = 0; k < kn; ++k)
      for (int64_t r = 0; r < p.R; ++r) {
        const T* s = &w(g, k0 + k, c0 + c, r, 0);
        T* d = dst + (r * p.S * cn + c) * wb + k;
        for (int64_t sx = 0; sx < p.S; ++sx) d[sx * cn * wb] = s[sx * w.ss];
      }
}

// One reduction chunk of a task: input channels [c0, c0 + cn), weights w
// packed [r][s][cn][wb]; the first chunk starts the sums, later ones add
// to the task's buffer; the last adds the bias.
template <typename T>
struct Chunk {
  int64_t c0, cn;
  const T* w;
  bool first;
  const T* bias;  // (wb values) on the last chunk, else nullptr
  // The taps of a kernel row and the chunk's channels form one run in both
  // operands: x's [Wp][Cg] (column dilation 1, the chunk is every channel)
  // and w's [s][cn][wb].
  bool rows_contiguous;
};

// acc[m][v] = (first ? 0 : out) + sum over taps [r0,r1] x [s0,s1] and the
// chunk's channels of x(position m) * w; out[m * wb + v*L + lane] = acc
// (+ bias). xp[m]: position m's pixel in the transposed planes.
template <typename T, int MR, int NV>
inline void kvec_tile(int64_t r0, int64_t r1, int64_t s0, int64_t s1, int64_t S_,
                      const int64_t* offrs, const T* const* xp, const Chunk<T>& ck, int64_t wb,
                      T* out) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int L = S::L;
  V acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = ck.first ? S::zero() : S::load(out + m * wb + v * L);
  const T* xm[MR];
  // With contiguous rows (see Chunk), a kernel row is one run of steps:
  // 3x3 over 8 channels is 3 runs of 24 instead of 9 of 8 (each run
  // re-derives MR pointers and restarts the loop).
  const int64_t run = ck.rows_contiguous ? s1 - s0 + 1 : 1;
  for (int64_t r = r0; r <= r1; ++r)
    for (int64_t sx = s0; sx <= s1; sx += run) {
      const int64_t rs = r * S_ + sx;
      for (int m = 0; m < MR; ++m) xm[m] = xp[m] + offrs[rs] + ck.c0;
      broadcast_rows<T, MR, NV>(xm, ck.w + rs * ck.cn * wb, run * ck.cn, wb, acc);
    }
  for (int v = 0; v < NV; ++v) {
    const V bv = ck.bias ? S::load(ck.bias + v * L) : S::zero();
    for (int m = 0; m < MR; ++m) S::store(out + m * wb + v * L, acc[m][v] + bv);
  }
}

// The kernel taps [r0, r1] x [s0, s1] that touch data for some position of
// the tile of cnt positions from ma (m = ho*Wo + wo).
struct TapBox {
  int64_t r0, r1, s0, s1;
  int64_t count() const { return r1 < r0 || s1 < s0 ? 0 : (r1 - r0 + 1) * (s1 - s0 + 1); }
};

template <typename T>
TapBox tile_taps(const FwdProb<T>& p, int64_t ma, int64_t cnt) {
  const int64_t ha = ma / p.Wo, hb = (ma + cnt - 1) / p.Wo;
  const int64_t wa = ha == hb ? ma % p.Wo : 0, wz = ha == hb ? (ma + cnt - 1) % p.Wo : p.Wo - 1;
  TapBox t;
  tap_range(ha, hb, p.sh, p.dh, p.R, p.ph, p.ph + (p.Hi - 1) * p.lh, t.r0, t.r1);
  tap_range(wa, wz, p.sw, p.dw, p.S, p.pw, p.pw + (p.Wi - 1) * p.lw, t.s0, t.s1);
  if (p.Hi == 0 || p.Wi == 0) t.r1 = t.r0 - 1;
  return t;
}

// One tile of up to MR output positions starting at ma.
template <typename T, int MR, int NV>
void kvec_positions(const FwdProb<T>& p, const PadGeom& g, const T* xbase, const int64_t* offrs,
                    int64_t ma, int64_t cnt, const Chunk<T>& ck, int64_t wb, T* out) {
  const int64_t Cg = p.Cg();
  const T* xp[MR];
  for (int m = 0; m < MR; ++m) {
    const int64_t mm = ma + std::min<int64_t>(m, cnt - 1);  // tail: repeat the last
    const int64_t ho = mm / p.Wo, wo = mm % p.Wo;
    xp[m] = xbase + (ho * p.sh * g.Wp + wo * p.sw) * Cg;
  }
  const TapBox t = tile_taps(p, ma, cnt);
  kvec_tile<T, MR, NV>(t.r0, t.r1, t.s0, t.s1, p.S, offrs, xp, ck, wb, out);
}

// How positions [m0, m1) split into tiles: of mr positions over [m0, whole),
// then one of tail positions. rows > 0: tiles of that many whole output rows
// (m0 starts a row), so a tile on the first or last rows of a padded image
// skips the kernel rows that read only padding. Else as few tiles as the
// register file allows, of even heights (even_rows).
struct TilePlan {
  int64_t mr, whole, tail;
};

inline TilePlan tile_plan(int64_t m0, int64_t m1, int64_t rows, int64_t Wo, int mrmax) {
  if (rows > 0) {
    const int64_t mr = rows * Wo, whole = m0 + (m1 - m0) / mr * mr;
    return {mr, whole, m1 - whole};
  }
  return {even_rows(m1 - m0, mrmax), m1, 0};
}

// Positions [m0, m1) of one channel block, one chunk: out is [m - m0][wb].
template <typename T, int NV>
void kvec_block(const FwdProb<T>& p, const PadGeom& g, const T* xbase, const int64_t* offrs,
                int64_t m0, int64_t m1, int64_t rows, const Chunk<T>& ck, int64_t wb, T* out) {
  constexpr int MRMAX = kvec_rows(NV);
  auto tiles = [&](int64_t a, int64_t b, int64_t mr) {
    with_rows<MRMAX>(mr, [&](auto h) {
      constexpr int MR = h();
      for (int64_t ma = a; ma < b; ma += MR)
        kvec_positions<T, MR, NV>(p, g, xbase, offrs, ma, std::min<int64_t>(MR, b - ma), ck, wb,
                                  out + (ma - m0) * wb);
    });
  };
  const TilePlan tp = tile_plan(m0, m1, rows, p.Wo, MRMAX);
  tiles(m0, tp.whole, tp.mr);
  if (tp.tail > 0) tiles(tp.whole, m1, tp.tail);
}

// How an image's M positions split into tasks: by whole rows (blocks of
// `width` positions, tiles of `rows` output rows) or evenly into `count`
// blocks of at most `width` (rows 0: even tiles).
struct PositionBlocks {
  int64_t M, count, width, rows;
  bool by_rows() const { return rows > 0; }
  int64_t m0(int64_t b) const { return by_rows() ? b * width : M * b / count; }
  int64_t m1(int64_t b) const {
    return by_rows() ? std::min(M, m0(b) + width) : M * (b + 1) / count;
  }
};

// Multiply-adds per output channel vector and input channel of one image
// under these blocks, tiled by tile_plan: computed positions (tails repeat
// the last) times the taps each tile keeps.
template <typename T>
int64_t kvec_image_work(const FwdProb<T>& p, const PositionBlocks& pb, int mrmax) {
  int64_t work = 0;
  for (int64_t b = 0; b < pb.count; ++b) {
    const int64_t m0 = pb.m0(b), m1 = pb.m1(b);
    const TilePlan tp = tile_plan(m0, m1, pb.rows, p.Wo, mrmax);
    for (int64_t ma = m0; ma < m1;) {
      const int64_t mr = ma < tp.whole ? tp.mr : tp.tail, cnt = std::min(mr, m1 - ma);
      work += mr * tile_taps(p, ma, cnt).count();
      ma += cnt;
    }
  }
  return work;
}

template <typename T>
void kvec_block_any(int64_t nv, const FwdProb<T>& p, const PadGeom& g, const T* xbase,
                    const int64_t* offrs, int64_t m0, int64_t m1, int64_t rows,
                    const Chunk<T>& ck, int64_t wb, T* out) {
  with_rows<kKvecMaxNV>(nv, [&](auto n) {
    kvec_block<T, n()>(p, g, xbase, offrs, m0, m1, rows, ck, wb, out);
  });
}

// Two schedules. Packed: all weights packed once, tasks (image, group,
// channel block, position block) re-read their block from L2. Streamed,
// for weights too big to stay in cache that few positions reuse (wide
// layers at batch 1: 512 channels at 7x7 is 9.4 MB of weights for 49
// positions): a task owns a whole image x channel block and packs its
// weights chunk by chunk of input channels into a small buffer it uses at
// once, so the weights cross memory once, with no packed copy written out.
struct KvecSchedule {
  bool streamed;
  PositionBlocks blocks;  // an image's positions per task
  int64_t cc;             // input channels per weight chunk (Cg when packed)
};

template <typename T>
KvecSchedule kvec_schedule(const FwdProb<T>& p, const ChannelBlocks& cb) {
  constexpr int64_t L = Simd<T>::L;
  const int64_t Cg = p.Cg(), RS = p.R * p.S, M = p.Ho * p.Wo;
  const int64_t wbytes = p.G * cb.Kp * RS * Cg * int64_t(sizeof(T));
  // Positions per task (packed schedule): a few vectors' worth, so a task's
  // [position][channel] buffer stays in L1 beside the input rows it reads.
  const int64_t PB = 4 * L;
  KvecSchedule k;
  k.streamed = wbytes > 2 * kL2WeightBytes && p.N * ceil_div64(M, PB) <= 8;
  // Row tiles (see tile_plan; tasks then hold whole tiles' rows too) where
  // whole output rows fit the widest block's tile and they save 3% or more
  // of the multiply-adds, from skipped padding rows and no repeated tail
  // positions (measured in 2125a86's message: padded layers gain, and an
  // unpadded 8x8 saving 1.5% ran slower, its even tiles being taller).
  const int mrmax = kvec_rows(cb.vectors(0));
  const int64_t tile_rows = p.Wo > 0 ? mrmax / p.Wo : 0;
  const int64_t task_rows =
      tile_rows * std::max<int64_t>(1, PB / std::max<int64_t>(1, tile_rows * p.Wo));
  const PositionBlocks even = k.streamed ? PositionBlocks{M, 1, M, 0}
                                         : PositionBlocks{M, ceil_div64(M, PB), PB, 0};
  const PositionBlocks rows{M, tile_rows > 0 ? ceil_div64(p.Ho, task_rows) : 0,
                            task_rows * p.Wo, tile_rows};
  k.blocks = !k.streamed && tile_rows > 0 &&
                     100 * kvec_image_work(p, rows, mrmax) <= 97 * kvec_image_work(p, even, mrmax)
                 ? rows
                 : even;
  // Streamed chunks: input channels whose packed weights fill ~kL2WeightBytes / 4.
  k.cc = k.streamed ? std::max<int64_t>(
      1, std::min(Cg, (kL2WeightBytes / 4) / (RS * cb.width * int64_t(sizeof(T))))) : Cg;
  return k;
}

// Packed schedule: every group's channel blocks, wt [g][Kp][r][s][Cg]
// blocked as pack_kvec_block writes them.
template <typename T>
void pack_kvec_weights(const FwdProb<T>& p, const ChannelBlocks& cb, T* wt) {
  const int64_t Cg = p.Cg(), RS = p.R * p.S;
  const int64_t wbytes = p.G * cb.Kp * RS * Cg * int64_t(sizeof(T));
#pragma omp parallel for schedule(static) if (wbytes > (128 << 10))
  for (int64_t t = 0; t < p.G * cb.count; ++t) {
    const int64_t gg = t / cb.count, b = t % cb.count;
    pack_kvec_block(p, gg, cb.k0(b), cb.size(b), 0, Cg, wt + (gg * cb.Kp + cb.k0(b)) * RS * Cg);
  }
}

// One task's share of a chunk of images: group gg, channel block b,
// positions [m0, m1) of images [nl0, nl1) of the chunk.
struct KvecTask {
  int64_t gg, b, m0, m1, nl0, nl1;
};

// Packed: tasks (image, group, channel block, position block), the
// position blocks of one channel block back to back on a thread.
// Streamed: tasks (group, channel block), each over all the chunk's
// images, so each weight chunk is packed once per call.
inline int64_t kvec_task_count(const KvecSchedule& k, const ChannelBlocks& cb, int64_t G,
                               int64_t nn) {
  return k.streamed ? G * cb.count : nn * G * cb.count * k.blocks.count;
}

inline KvecTask kvec_task(const KvecSchedule& k, const ChannelBlocks& cb, int64_t G, int64_t nn,
                          int64_t t) {
  if (k.streamed) return {t / cb.count, t % cb.count, k.blocks.m0(0), k.blocks.m1(0), 0, nn};
  const int64_t npb = k.blocks.count, pb = t % npb, nl0 = t / (npb * cb.count * G);
  return {(t / (npb * cb.count)) % G, (t / npb) % cb.count, k.blocks.m0(pb), k.blocks.m1(pb),
          nl0, nl0 + 1};
}

}  // namespace

template <typename T>
void kvec_forward_engine(const FwdProb<T>& p) {
  constexpr int64_t L = Simd<T>::L;
  const PadGeom g = pad_geom(p);
  const int64_t Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S, M = p.Ho * p.Wo;
  const ChannelBlocks cb(Kg, L);
  const KvecSchedule k = kvec_schedule(p, cb);
  const int64_t gplane = g.plane * Cg;  // one image-group, transposed
  Buffer<T> wt(k.streamed ? 0 : p.G * cb.Kp * RS * Cg), bias(p.G * cb.Kp);
  if (!k.streamed) pack_kvec_weights(p, cb, wt.data());
  pad_bias(p, cb.Kp, bias.data());
  std::vector<int64_t> offrs(RS);
  for (int64_t r = 0; r < p.R; ++r)
    for (int64_t s = 0; s < p.S; ++s) offrs[r * p.S + s] = (r * p.dh * g.Wp + s * p.dw) * Cg;

  const int64_t nb = images_per_chunk(p.N, gplane * p.G * int64_t(sizeof(T)), kChunkBytes);
  Buffer<T> xb(nb * p.G * gplane);
  const int64_t span = k.blocks.width + 16;  // a task's outputs per image, [position][wb]

#pragma omp parallel
  {
    // Streamed tasks hold every image of a chunk: [image][position][wb].
    Buffer<T> obuf((k.streamed ? nb : 1) * span * cb.width);
    Buffer<T> wchunk(k.streamed ? RS * k.cc * cb.width : 0);
    for (int64_t n0 = 0; n0 < p.N; n0 += nb) {
      const int64_t nn = std::min(nb, p.N - n0);
      transpose_inputs(p, g, n0, nn, xb.data());  // (an omp for: ends with a barrier)
      const int64_t ntask = kvec_task_count(k, cb, p.G, nn);
#pragma omp for schedule(static)
      for (int64_t t = 0; t < ntask; ++t) {
        const KvecTask a = kvec_task(k, cb, p.G, nn, t);
        const int64_t k0 = cb.k0(a.b), wb = cb.size(a.b);
        const T* bv = bias.data() + a.gg * cb.Kp + k0;
        // The reduction over input channels, chunk by chunk of weights.
        for (int64_t c0 = 0; c0 < Cg; c0 += k.cc) {
          const int64_t cn = std::min(k.cc, Cg - c0);
          const T* w = wt.data() + (a.gg * cb.Kp + k0) * RS * Cg;
          if (k.streamed) {
            pack_kvec_block(p, a.gg, k0, wb, c0, cn, wchunk.data());
            w = wchunk.data();
          }
          const Chunk<T> ck{c0, cn, w, c0 == 0, c0 + cn == Cg ? bv : nullptr,
                            p.dw == 1 && cn == Cg};
          for (int64_t nl = a.nl0; nl < a.nl1; ++nl)
            kvec_block_any(wb / L, p, g, xb.data() + (nl * p.G + a.gg) * gplane, offrs.data(),
                           a.m0, a.m1, k.blocks.rows, ck, wb,
                           obuf.data() + (nl - a.nl0) * span * wb);
        }
        // [position][channel] -> NCHW.
        for (int64_t nl = a.nl0; nl < a.nl1; ++nl) {
          T* y = p.y + ((n0 + nl) * p.Co + a.gg * Kg + k0) * M + a.m0;
          transpose_2d(obuf.data() + (nl - a.nl0) * span * wb, wb, y, M, a.m1 - a.m0,
                       std::min(wb, Kg - k0));
        }
      }
    }
  }
}

CB_CONV2D_CPU_FORWARD_PASSES(direct_kvec, kvec_forward_engine)

CB_INSTANTIATE_CONV2D_CPU_FORWARD_PASSES(direct_kvec)

}  // namespace CB_CPU_NS
}  // namespace convbench
