// 1x1 convolutions as GEMMs over the channel dimension: Im2colGemm's
// "pointwise" engine, where the patch matrix is the input itself.
// Forward, per group: Y[Kg x N*M] = W[Kg x Cg] * X[Cg x N*M] (M = Ho*Wo);
// input gradient: dX[Cg x N*M] = W^T[Cg x Kg] * dY[Kg x N*M]. The images'
// columns sit side by side, so the 4x4 and 7x7 planes of late layers still
// fill whole register tiles. The weights are packed once per call into
// panels of kPwMR rows; each task packs one strip of NR columns (all of the
// reduction: at most a few hundred KB, streamed from L2) and runs the
// outer-product micro-kernel over its row panels, writing each output once.
// Strided or padded layers gather the input positions they read into a dense
// block first (forward, weight gradient) or scatter the dense gradient back
// (input gradient).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/shapes.h"
#include "conv2d/cpu/conv2d_cpu_kernels.h"
#include "conv2d/cpu/microkernels.h"
#include "conv2d/cpu/problem.h"
#include "conv2d/cpu/tiles.h"

namespace convbench {
namespace CB_CPU_NS {

namespace {

// The register tile: the flat direct engine's (tiles.h), rows x vectors.
constexpr int kPwMR = kFlatMR;
constexpr int kPwNV = flat_nv(kFlatMR);

// A run of consecutive columns of one image inside a strip: image n,
// position m0 on, len of them, at column `at` of the strip.
struct ColumnRun {
  int64_t n, m0, len, at;
};

void strip_runs(int64_t j0, int64_t NR, int64_t J, int64_t M, std::vector<ColumnRun>& runs) {
  runs.clear();
  for (int64_t j = j0; j < std::min(j0 + NR, J);) {
    const int64_t n = j / M, m = j % M, len = std::min({M - m, j0 + NR - j, J - j});
    runs.push_back({n, m, len, j - j0});
    j += len;
  }
}

// out[g][row / MR][col][row % MR] = a(g, row, col): rows padded with zeros
// to whole panels.
template <typename T, typename A>
void pack_panels(int64_t G, int64_t rows, int64_t cols, const A& a, T* out) {
  const int64_t panels = ceil_div64(rows, kPwMR);
#pragma omp parallel for schedule(static) if (G * rows * cols > 65536)
  for (int64_t t = 0; t < G * panels; ++t) {
    const int64_t g = t / panels, r0 = (t % panels) * kPwMR;
    T* d = out + t * cols * kPwMR;
    if (r0 + kPwMR <= rows) {  // (no test per element: packing is a share of small layers)
      for (int64_t c = 0; c < cols; ++c)
        for (int i = 0; i < kPwMR; ++i) d[c * kPwMR + i] = a(g, r0 + i, c);
      continue;
    }
    for (int64_t c = 0; c < cols; ++c)
      for (int i = 0; i < kPwMR; ++i) d[c * kPwMR + i] = r0 + i < rows ? a(g, r0 + i, c) : T(0);
  }
}

// Y_n,g[rows x M] = A_g[rows x red] * B_n,g[red x M] (+ bias[g*rows + row])
// for all images n and groups g, from panels packed by pack_panels. b: [N][G*red][M],
// y: [N][G*rows][M].
template <typename T>
void batched_gemm(int64_t N, int64_t G, int64_t rows, int64_t red, int64_t M, const T* panels,
                  const T* b, const T* bias, T* y) {
  constexpr int64_t NR = int64_t(kPwNV) * Simd<T>::L;
  const int64_t J = N * M, strips = ceil_div64(J, NR), npan = ceil_div64(rows, kPwMR);
  // Tasks: (group, strip, block of row panels); the row panels are split
  // only where groups x strips alone would leave threads idle.
  const int64_t want = 4 * int64_t(max_threads());
  const int64_t split = std::min(npan, ceil_div64(want, G * strips));
  const int64_t per = ceil_div64(npan, split), blocks = ceil_div64(npan, per);
#pragma omp parallel
  {
    Buffer<T> strip(red * NR);
    std::vector<ColumnRun> runs;
    alignas(64) T tile[kPwMR * NR];
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < G * strips * blocks; ++t) {
      const int64_t g = t / (strips * blocks), s = t / blocks % strips, blk = t % blocks;
      strip_runs(s * NR, NR, J, M, runs);
      T* bp = strip.data();
      if (runs.back().at + runs.back().len < NR)  // the last strip: zeros past J
        for (int64_t c = 0; c < red; ++c)
          std::fill(bp + c * NR + runs.back().at + runs.back().len, bp + (c + 1) * NR, T(0));
      for (int64_t c = 0; c < red; ++c)
        for (const ColumnRun& r : runs)
          std::memcpy(bp + c * NR + r.at, b + ((r.n * G + g) * red + c) * M + r.m0,
                      sizeof(T) * r.len);
      for (int64_t p = blk * per; p < std::min(npan, (blk + 1) * per); ++p) {
        outer_tile<T, kPwMR, kPwNV, false, true>(1, red, red, panels + (g * npan + p) * red * kPwMR,
                                                 bp, nullptr, 1, tile);
        for (int i = 0; i < kPwMR && p * kPwMR + i < rows; ++i) {
          const int64_t row = g * rows + p * kPwMR + i;
          const T bv = bias ? bias[row] : T(0);
          for (const ColumnRun& r : runs) {
            T* d = y + (r.n * G * rows + row) * M + r.m0;
            const T* src = tile + i * NR + r.at;
            for (int64_t e = 0; e < r.len; ++e) d[e] = src[e] + bv;
          }
        }
      }
    }
  }
}

bool dense(const Conv2dShape& s) {
  return s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0 && s.P == s.H &&
         s.Q == s.W;
}

// Input position of output (p, q), or -1 where it lies in the padding.
inline int64_t source(const Conv2dShape& s, int64_t p, int64_t q) {
  const int64_t h = p * s.stride_h - s.pad_h, w = q * s.stride_w - s.pad_w;
  return h >= 0 && h < s.H && w >= 0 && w < s.W ? h * s.W + w : -1;
}

// The input values the outputs of a strided or padded layer read, dense:
// out[n][c][p*Q + q] (zeros for padding).
template <typename T>
void gather_positions(const Conv2dShape& s, const T* x, T* out) {
  const int64_t M = s.P * s.Q;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < s.N * s.C; ++i)
    for (int64_t p = 0; p < s.P; ++p)
      for (int64_t q = 0; q < s.Q; ++q) {
        const int64_t at = source(s, p, q);
        out[i * M + p * s.Q + q] = at < 0 ? T(0) : x[i * s.H * s.W + at];
      }
}

}  // namespace

template <typename T>
void conv2d_forward_pointwise(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y) {
  const int64_t G = s.groups, Kg = s.k_per_group(), Cg = s.c_per_group(), M = s.P * s.Q;
  Buffer<T> panels(G * round_up64(Kg, kPwMR) * Cg);
  pack_panels(G, Kg, Cg, [&](int64_t g, int64_t k, int64_t c) { return w[(g * Kg + k) * Cg + c]; },
              panels.data());
  if (dense(s)) {
    batched_gemm(s.N, G, Kg, Cg, M, panels.data(), x, b, y);
    return;
  }
  Buffer<T> xs(s.N * s.C * M);
  gather_positions(s, x, xs.data());
  batched_gemm(s.N, G, Kg, Cg, M, panels.data(), xs.data(), b, y);
}

template <typename T>
void conv2d_backward_input_pointwise(const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  const int64_t G = s.groups, Kg = s.k_per_group(), Cg = s.c_per_group(), M = s.P * s.Q;
  Buffer<T> panels(G * round_up64(Cg, kPwMR) * Kg);
  pack_panels(G, Cg, Kg, [&](int64_t g, int64_t c, int64_t k) { return w[(g * Kg + k) * Cg + c]; },
              panels.data());
  if (dense(s)) {
    batched_gemm(s.N, G, Cg, Kg, M, panels.data(), dy, static_cast<const T*>(nullptr), dx);
    return;
  }
  Buffer<T> dxs(s.N * s.C * M);  // the gradient at the positions the outputs read
  batched_gemm(s.N, G, Cg, Kg, M, panels.data(), dy, static_cast<const T*>(nullptr), dxs.data());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < s.N * s.C; ++i) {
    T* d = dx + i * s.H * s.W;
    std::fill(d, d + s.H * s.W, T(0));
    for (int64_t p = 0; p < s.P; ++p)
      for (int64_t q = 0; q < s.Q; ++q) {
        const int64_t at = source(s, p, q);
        if (at >= 0) d[at] = dxs.data()[i * M + p * s.Q + q];
      }
  }
}

// Weight gradient, per group: dW[Kg x Cg] = dY[Kg x J] * X[Cg x J]^T over the
// J = N*M columns of the batch. The reduction runs in slices of kPwSlice
// columns, each transposed into panels (dy: kPwMR channels per column, x: NR
// channels per column) and multiplied by the same micro-kernel; a task owns
// some strips of input channels for the whole reduction, so every dW value
// is summed by one task in column order (the same bits for any thread count).
constexpr int64_t kPwSlice = 256;

template <typename T>
void conv2d_backward_weight_pointwise(const Conv2dShape& s, const T* dy, const T* x, T* dw) {
  constexpr int64_t NR = int64_t(kPwNV) * Simd<T>::L;
  const int64_t G = s.groups, Kg = s.k_per_group(), Cg = s.c_per_group(), M = s.P * s.Q;
  const int64_t J = s.N * M, npan = ceil_div64(Kg, kPwMR), nstrip = ceil_div64(Cg, NR);
  Buffer<T> gathered(dense(s) ? 0 : s.N * s.C * M);
  if (!dense(s)) {
    gather_positions(s, x, gathered.data());
    x = gathered.data();
  }
  // Tasks: (group, block of input-channel strips).
  const int64_t per_group = std::max<int64_t>(
      1, std::min(nstrip, ceil_div64(int64_t(max_threads()), G)));
  const int64_t per = ceil_div64(nstrip, per_group), blocks = ceil_div64(nstrip, per);
#pragma omp parallel
  {
    Buffer<T> a(npan * kPwSlice * kPwMR), b(per * kPwSlice * NR), sum(Kg * per * NR);
    std::vector<ColumnRun> runs;
    alignas(64) T tile[kPwMR * NR];
#pragma omp for schedule(static)
    for (int64_t t = 0; t < G * blocks; ++t) {
      const int64_t g = t / blocks, s0 = t % blocks * per, ns = std::min(per, nstrip - s0);
      std::fill(sum.data(), sum.data() + Kg * ns * NR, T(0));
      for (int64_t j0 = 0; j0 < J; j0 += kPwSlice) {
        const int64_t nj = std::min(kPwSlice, J - j0);
        strip_runs(j0, kPwSlice, J, M, runs);
        // a[panel][j][i] = dy[n][g*Kg + panel*MR + i][m]; b[strip][j][i] likewise from x.
        auto transpose = [&](const T* src, int64_t chans, int64_t c0, int64_t count, int64_t w,
                             int64_t ch_total, T* out) {
          for (int64_t c = 0; c < count; ++c) {
            T* d = out + (c / w) * nj * w + c % w;
            if (c0 + c >= ch_total) {  // (zero rows past the channels)
              for (int64_t j = 0; j < nj; ++j) d[j * w] = T(0);
              continue;
            }
            for (const ColumnRun& r : runs) {
              const T* row = src + (r.n * chans + g * ch_total + c0 + c) * M + r.m0;
              for (int64_t e = 0; e < r.len; ++e) d[(r.at + e) * w] = row[e];
            }
          }
        };
        transpose(dy, s.K, 0, npan * kPwMR, kPwMR, Kg, a.data());
        transpose(x, s.C, s0 * NR, ns * NR, NR, Cg, b.data());
        for (int64_t p = 0; p < npan; ++p)
          for (int64_t st = 0; st < ns; ++st) {
            outer_tile<T, kPwMR, kPwNV, false, true>(1, nj, nj, a.data() + p * nj * kPwMR,
                                                     b.data() + st * nj * NR, nullptr, 1, tile);
            for (int i = 0; i < kPwMR && p * kPwMR + i < Kg; ++i) {
              T* d = sum.data() + (p * kPwMR + i) * ns * NR + st * NR;
              for (int64_t e = 0; e < NR; ++e) d[e] += tile[i * NR + e];
            }
          }
      }
      for (int64_t k = 0; k < Kg; ++k)
        for (int64_t c = s0 * NR; c < std::min(Cg, (s0 + ns) * NR); ++c)
          dw[(g * Kg + k) * Cg + c] = sum.data()[k * ns * NR + (c - s0 * NR)];
    }
  }
}

CB_INSTANTIATE_CONV2D_CPU_ALGO(pointwise)

}  // namespace CB_CPU_NS
}  // namespace convbench
