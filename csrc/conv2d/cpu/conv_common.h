// Shared pieces of the CPU conv kernels (both algorithms):
//  * FwdProb: a forward convolution with optional input dilation. The
//    forward pass is one directly; the input-gradient pass becomes one
//    (dy as input, zero-inserted by the stride, flipped/transposed weights),
//    so each algorithm needs a single forward engine.
//  * the zero-padded input planes both engines read without bounds checks,
//  * weight packing into MR-row panels, batch chunking, small helpers.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/shapes.h"

namespace convbench {
namespace CB_CPU_NS {

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int64_t ceil_div64(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up64(int64_t a, int64_t b) { return ceil_div64(a, b) * b; }

// y[n,co,ho,wo] = b[co] + sum w[co,ci,r,s] * xu[n, g*Cg+ci, ho*sh - ph + r*dh, wo*sw - pw + s*dw]
// where xu is x with (lh-1) zeros inserted between rows (lw-1 between
// columns) and zero outside. Padding may be negative (crop).
template <typename T>
struct FwdProb {
  int64_t N, Ci, Hi, Wi, Co, R, S, Ho, Wo;
  int64_t sh, sw, ph, pw, dh, dw, lh, lw, G;
  const T* x;
  const T* w;  // [Co, Ci/G, R, S]
  const T* b;  // [Co] or nullptr
  T* y;
  int64_t Cg() const { return Ci / G; }
  int64_t Kg() const { return Co / G; }
};

template <typename T>
FwdProb<T> forward_problem(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y) {
  return FwdProb<T>{s.N,        s.C,        s.H,     s.W,     s.K,     s.R,    s.S,
                    s.P,        s.Q,        s.stride_h, s.stride_w, s.pad_h, s.pad_w, s.dil_h,
                    s.dil_w,    1,          1,       s.groups, x,     w,      b,      y};
}

// dx = conv(zero-inserted dy, flipped weights with k and c swapped), stride 1.
// wt must hold weight_numel values; it receives the transformed weights.
template <typename T>
FwdProb<T> backward_input_problem(const Conv2dShape& s, const T* dy, const T* w, T* wt, T* dx) {
  const int64_t Cg = s.c_per_group(), Kg = s.k_per_group(), RS = s.R * s.S;
  for (int64_t g = 0; g < s.groups; ++g)
    for (int64_t k = 0; k < Kg; ++k)
      for (int64_t c = 0; c < Cg; ++c) {
        const T* src = w + ((g * Kg + k) * Cg + c) * RS;
        T* dst = wt + ((g * Cg + c) * Kg + k) * RS;
        for (int64_t i = 0; i < RS; ++i) dst[i] = src[RS - 1 - i];
      }
  return FwdProb<T>{s.N,
                    s.K,
                    s.P,
                    s.Q,
                    s.C,
                    s.R,
                    s.S,
                    s.H,
                    s.W,
                    1,
                    1,
                    (s.R - 1) * s.dil_h - s.pad_h,
                    (s.S - 1) * s.dil_w - s.pad_w,
                    s.dil_h,
                    s.dil_w,
                    s.stride_h,
                    s.stride_w,
                    s.groups,
                    dy,
                    wt,
                    nullptr,
                    dx};
}

// Geometry of the padded input planes. Padded row a / column b hold
// xu[a - ph, b - pw]; every output reads rows a = ho*sh + r*dh and columns
// wo*sw + s*dw, all inside the plane. Wp is a multiple of sw so that output
// position j = ho*Wq + wo (Wq = sh*Wp/sw) reads offset sw*j + r*dh*Wp + s*dw:
// a single linear index across rows ("flattened" outputs; columns wo >= Wo
// of each row are computed and discarded).
// Rows share their padding: the first z = max(pw, 0) columns of every row
// are zero, so reads past a row's end (up to column Wr-1 of the full-width
// row, Wr = (Wo-1)*sw + (S-1)*dw + 1) may wrap into the next row's left
// padding. Wp only has to hold the data and Wr - z columns; each plane ends
// with `tail` zeros for the last row's wrap. This cuts the discarded
// columns of heavily padded problems, above all the input gradient
// ("full" padding S-1): 13x13 from 7x7 by 7x7 goes from 19 to 13 columns.
struct PadGeom {
  int64_t Hp, Wp, plane, Wq, J;
};

template <typename T>
PadGeom pad_geom(const FwdProb<T>& p) {
  PadGeom g;
  g.Hp = (p.Ho - 1) * p.sh + (p.R - 1) * p.dh + 1;
  const int64_t Wr = (p.Wo - 1) * p.sw + (p.S - 1) * p.dw + 1;
  const int64_t z = std::max<int64_t>(p.pw, 0);
  const int64_t data_end = p.Wi > 0 ? p.pw + (p.Wi - 1) * p.lw + 1 : 0;
  // (Wp >= Wo*sw keeps the flattened rows, Wq = sh*Wp/sw, at least Wo wide.)
  g.Wp = round_up64(std::max<int64_t>({1, Wr - z, std::min(data_end, Wr), p.Wo * p.sw}), p.sw);
  g.plane = g.Hp * g.Wp + std::max<int64_t>(0, Wr - g.Wp);
  g.Wq = p.sh * g.Wp / p.sw;
  g.J = (p.Ho - 1) * g.Wq + p.Wo;
  return g;
}

// Writes one padded plane (all of it) from input plane src [Hi, Wi].
template <typename T>
void pad_plane(const FwdProb<T>& p, const PadGeom& g, const T* src, T* dst) {
  std::memset(dst, 0, sizeof(T) * g.plane);
  for (int64_t hi = 0; hi < p.Hi; ++hi) {
    const int64_t a = hi * p.lh + p.ph;
    if (a < 0 || a >= g.Hp) continue;
    T* drow = dst + a * g.Wp;
    const T* srow = src + hi * p.Wi;
    // columns wi with 0 <= wi*lw + pw < Wp
    const int64_t wlo = p.pw >= 0 ? 0 : ceil_div64(-p.pw, p.lw);
    const int64_t whi = std::min(p.Wi, ceil_div64(g.Wp - p.pw, p.lw));
    if (p.lw == 1) {
      if (whi > wlo) std::memcpy(drow + wlo + p.pw, srow + wlo, sizeof(T) * (whi - wlo));
    } else {
      for (int64_t wi = wlo; wi < whi; ++wi) drow[wi * p.lw + p.pw] = srow[wi];
    }
  }
}

// Weights [Co, Cg*R*S] -> per group, blocks of mr output channels stored
// [crs][mr] (the last block of a group has Kg % mr rows, stored densely).
// Output channel block starting at k0 of group g lives at (g*Kg + k0) * CRS.
template <typename T>
void pack_weights(const FwdProb<T>& p, int mr, T* dst) {
  const int64_t Kg = p.Kg(), CRS = p.Cg() * p.R * p.S;
  for (int64_t g = 0; g < p.G; ++g)
    for (int64_t k0 = 0; k0 < Kg; k0 += mr) {
      const int64_t m = std::min<int64_t>(mr, Kg - k0);
      T* d = dst + (g * Kg + k0) * CRS;
      const T* s = p.w + (g * Kg + k0) * CRS;
      for (int64_t i = 0; i < CRS; ++i)
        for (int64_t j = 0; j < m; ++j) d[i * m + j] = s[j * CRS + i];
    }
}

// Images per chunk so one chunk's workspace stays near `budget` bytes.
inline int64_t images_per_chunk(int64_t N, int64_t bytes_per_image, int64_t budget) {
  const int64_t nb = bytes_per_image > 0 ? budget / bytes_per_image : N;
  return std::max<int64_t>(1, std::min(N, nb));
}

// Per-thread cache of released scratch blocks. Workspaces are re-requested
// with the same sizes call after call; fresh multi-MB allocations would be
// returned to the OS by free() and page-fault again, which costs as much as
// a small convolution. Keeps at most kCacheBlocks blocks, 128 MiB, per thread.
struct ScratchCache {
  static constexpr int kCacheBlocks = 8;
  struct Block {
    std::unique_ptr<unsigned char[]> mem;
    size_t bytes = 0;
  };
  Block blocks[kCacheBlocks];

  static ScratchCache& local() {
    static thread_local ScratchCache cache;
    return cache;
  }
  // Smallest cached block of at least `bytes`, else a new one.
  Block take(size_t bytes) {
    int best = -1;
    for (int i = 0; i < kCacheBlocks; ++i)
      if (blocks[i].mem && blocks[i].bytes >= bytes &&
          (best < 0 || blocks[i].bytes < blocks[best].bytes))
        best = i;
    if (best >= 0) return std::move(blocks[best]);
    Block b;
    b.mem.reset(new unsigned char[bytes]);
    b.bytes = bytes;
    return b;
  }
  // Keeps the block, evicting the smallest cached ones while the slots or
  // the per-thread byte budget are exceeded.
  void give(Block b) {
    constexpr size_t kBudget = size_t(128) << 20;
    if (b.bytes > kBudget) return;  // huge one-offs go back to the OS
    for (;;) {
      size_t total = b.bytes;
      int free_slot = -1, smallest = -1;
      for (int i = 0; i < kCacheBlocks; ++i) {
        if (!blocks[i].mem) {
          free_slot = i;
          continue;
        }
        total += blocks[i].bytes;
        if (smallest < 0 || blocks[i].bytes < blocks[smallest].bytes) smallest = i;
      }
      if (free_slot >= 0 && total <= kBudget) {
        blocks[free_slot] = std::move(b);
        return;
      }
      if (smallest < 0) return;
      blocks[smallest] = Block{};  // evict, then retry
    }
  }
};

// 64-byte aligned scratch; uninitialised; memory recycled per thread.
template <typename T>
struct Buffer {
  ScratchCache::Block block;
  explicit Buffer(int64_t n)
      : block(ScratchCache::local().take(sizeof(T) * static_cast<size_t>(n) + 64)) {}
  ~Buffer() { ScratchCache::local().give(std::move(block)); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* data() {
    auto a = reinterpret_cast<uintptr_t>(block.mem.get());
    return reinterpret_cast<T*>((a + 63) & ~uintptr_t(63));
  }
};

// Weight-gradient batch driver shared by both algorithms. The batch is cut
// into parts (their number depends on N only); each part is reduced chunk by
// chunk, serially, into its own partial dW and the partials are summed in
// part order, so dW is bitwise identical for any thread count and no
// barrier is needed per chunk. A batch of one runs its chunks with the work
// inside each chunk parallel instead.
// chunk(slot, n0, nn, out, parallel) adds images [n0, n0+nn) into out;
// slot < wgrad_parts(N, slot_bytes) names the caller's workspace (of
// slot_bytes each; fewer parts when they are big).
inline int64_t wgrad_parts(int64_t N, int64_t slot_bytes) {
  const int64_t cap = std::max<int64_t>(1, (int64_t(256) << 20) / std::max<int64_t>(1, slot_bytes));
  return std::max<int64_t>(1, std::min<int64_t>({N, 8, cap}));
}

template <typename T, typename ChunkFn>
void wgrad_batched(int64_t N, int64_t nb, int64_t slot_bytes, int64_t wn, T* dw,
                   const ChunkFn& chunk) {
  const int64_t parts = wgrad_parts(N, slot_bytes);
  if (parts == 1) {
    std::fill(dw, dw + wn, T(0));
    for (int64_t n0 = 0; n0 < N; n0 += nb) chunk(0, n0, std::min(nb, N - n0), dw, true);
    return;
  }
  Buffer<T> partial(parts * wn);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < parts; ++i) {
    T* out = partial.data() + i * wn;
    std::fill(out, out + wn, T(0));
    const int64_t a = N * i / parts, b = N * (i + 1) / parts;
    for (int64_t n0 = a; n0 < b; n0 += nb) chunk(i, n0, std::min(nb, b - n0), out, false);
  }
  const T* pp = partial.data();
#pragma omp parallel for schedule(static) if (wn > 8192)
  for (int64_t e = 0; e < wn; ++e) {
    T sum = pp[e];
    for (int64_t i = 1; i < parts; ++i) sum += pp[i * wn + e];
    dw[e] = sum;
  }
}


// Channel-vectorised direct engine (direct_kvec.cpp), chosen by Direct for
// small outputs with many channels.
template <typename T>
void direct_kvec_engine(const FwdProb<T>& p);
// Its weight-gradient counterpart; needs Kg % lanes == 0, unit input dilation.
template <typename T>
void direct_kvec_wgrad(const Conv2dShape& s, const T* dy, const T* x, T* dw);

}  // namespace CB_CPU_NS
}  // namespace convbench
