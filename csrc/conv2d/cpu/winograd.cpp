// Winograd F(m x m, 3x3), m = 2 or 4, for 3x3, stride 1, dilation 1 forward
// problems (the forward pass and, through problem.h, the input gradient of
// such a layer). Per output tile of m x m and (k, c) pair it costs
// (m+2)^2 products instead of 9 m^2: 2.25x fewer for m = 2, 4x for m = 4
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks"):
//   V = B^T d B ((m+2)^2 input tile), U = G g G^T (weights),
//   M = sum over c of U .* V, i.e. (m+2)^2 independent GEMMs, Y = A^T M A.
// Everything is vectorised over channels, as in direct_kvec.cpp: input
// planes transposed to [Hp][Wp][Cg], the input transform L channels at a
// time, each GEMM a register tile of MR tiles x NV vectors of output
// channels, the output transform L output channels at a time, and the
// outputs transposed back into NCHW. A task owns a block of tiles (across
// images and rows) and all output channels, so each input tile is
// transformed once.
// Accuracy: F(2x2) only adds, subtracts and halves, staying at the direct
// convolution's level; F(4x4)'s coefficients (up to 5 in B, 8 in A, 1/24 in
// G) cost about two decimal digits in float32 (measured ~1e-6 relative to
// the sum of |terms|, against ~1e-7 for direct).
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

// ---- the transforms, on anything with + - and * by a scalar ------------

// 3 taps -> A = m+2 transformed taps (rows of G).
template <int M, typename X>
inline void weight_1d(const X* g, X* u) {
  if constexpr (M == 2) {
    u[0] = g[0];
    u[1] = X(0.5) * (g[0] + g[1] + g[2]);
    u[2] = X(0.5) * (g[0] - g[1] + g[2]);
    u[3] = g[2];
  } else {
    u[0] = X(0.25) * g[0];
    u[1] = X(-1.0 / 6) * (g[0] + g[1] + g[2]);
    u[2] = X(-1.0 / 6) * (g[0] - g[1] + g[2]);
    u[3] = X(1.0 / 24) * g[0] + X(1.0 / 12) * g[1] + X(1.0 / 6) * g[2];
    u[4] = X(1.0 / 24) * g[0] - X(1.0 / 12) * g[1] + X(1.0 / 6) * g[2];
    u[5] = g[2];
  }
}

// A = m+2 inputs -> A transformed (rows of B^T).
template <int M, typename T, typename V>
inline void input_1d(const V* d, V* v) {
  constexpr T T2 = 2, T4 = 4, T5 = 5;
  if constexpr (M == 2) {
    v[0] = d[0] - d[2];
    v[1] = d[1] + d[2];
    v[2] = d[2] - d[1];
    v[3] = d[1] - d[3];
  } else {
    const V t0 = d[4] - d[2] * T4, t1 = d[3] - d[1] * T4;
    const V t2 = d[4] - d[2], t3 = (d[3] - d[1]) * T2;
    v[0] = d[0] * T4 - d[2] * T5 + d[4];
    v[1] = t0 + t1;
    v[2] = t0 - t1;
    v[3] = t2 + t3;
    v[4] = t2 - t3;
    v[5] = d[1] * T4 - d[3] * T5 + d[5];
  }
}

// A = m+2 products -> m outputs (rows of A^T).
template <int M, typename T, typename V>
inline void output_1d(const V* p, V* y) {
  constexpr T T2 = 2, T4 = 4, T8 = 8;
  if constexpr (M == 2) {
    y[0] = p[0] + p[1] + p[2];
    y[1] = p[1] - p[2] - p[3];
  } else {
    const V s = p[1] + p[2], t = p[1] - p[2], u = p[3] + p[4], w = p[3] - p[4];
    y[0] = p[0] + s + u;
    y[1] = t + w * T2;
    y[2] = s + u * T4;
    y[3] = t + w * T8 + p[5];
  }
}

// Tile t of a chunk as (image, tile row, tile column), stepped one tile at
// a time: no divisions in the per-tile loops.
struct TileCursor {
  int64_t nl, ty, tx, th, tw;
  TileCursor(int64_t t, int64_t th_, int64_t tw_)
      : nl(t / (th_ * tw_)), ty(t / tw_ % th_), tx(t % tw_), th(th_), tw(tw_) {}
  int64_t row() const { return nl * th + ty; }  // tile rows counted across images
  void next() {
    if (++tx == tw) {
      tx = 0;
      if (++ty == th) {
        ty = 0;
        ++nl;
      }
    }
  }
};

// ---- the per-(k, c) GEMMs ---------------------------------------------

// out[t][v*L + lane] = sum over c < cn of vt[t][c] * u[c*wb + v*L + lane],
// t < MR tiles (rows past the block repeat the last).
template <typename T, int MR, int NV>
inline void gemm_tile(const T* const* vt, const T* u, int64_t cn, int64_t wb, T* out) {
  using S = Simd<T>;
  constexpr int L = S::L;
  typename S::V acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = S::zero();
  broadcast_rows<T, MR, NV>(vt, u, cn, wb, acc);
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) S::store(out + m * wb + v * L, acc[m][v]);
}

// Tiles [0, nt) of one transform point: mb[t][wb] = vb[t][Cg] * ub[Cg][wb],
// in register tiles of even heights of at most kPointerRows: a task's 32
// tiles run as 4 of 8, not 14 + 14 + 4 computed as 14 (31% of the products
// wasted at 16 channels).
// Zen 4, one thread: 1.05-1.17x faster on the homework's Winograd layers,
// 1.29x on the 64 -> 128 input gradient (14 tiles a task: 6 + 6 + 2 as 6).
template <typename T, int NV>
void gemm_point(const T* vb, int64_t nt, int64_t Cg, const T* ub, int64_t wb, T* mb) {
  constexpr int MRMAX = pointer_rows(NV);
  const int64_t mr = even_rows(nt, MRMAX);
  with_rows<MRMAX>(mr, [&](auto h) {
    constexpr int MR = h();
    for (int64_t t0 = 0; t0 < nt; t0 += MR) {
      const T* vt[MR];
      for (int m = 0; m < MR; ++m) vt[m] = vb + std::min<int64_t>(t0 + m, nt - 1) * Cg;
      alignas(64) T tmp[MR * kKvecMaxNV * 16];
      T* out = t0 + MR <= nt ? mb + t0 * wb : tmp;
      gemm_tile<T, MR, NV>(vt, ub, Cg, wb, out);
      if (out == tmp) std::memcpy(mb + t0 * wb, tmp, sizeof(T) * (nt - t0) * wb);
    }
  });
}

}  // namespace

template <typename T, int M>
void winograd_engine(const FwdProb<T>& p) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int64_t L = S::L, A = M + 2, A2 = A * A;
  const int64_t Cg = p.Cg(), Kg = p.Kg();
  const int64_t th = ceil_div64(p.Ho, M), tw = ceil_div64(p.Wo, M), TI = th * tw;
  const int64_t Kp = round_up64(Kg, L), width = std::min<int64_t>(kKvecMaxNV * L, Kp);
  const int64_t nkb = ceil_div64(Kp, width);
  PadGeom g;  // input rows M*ty .. M*ty+A-1 of every tile inside the plane
  g.Hp = M * th + 2;
  g.Wp = M * tw + 2;
  g.plane = g.Hp * g.Wp;
  g.Wq = g.Wp;
  g.J = 0;
  const int64_t gplane = g.plane * Cg;

  // U [g][kb][xi][c][wb] (zero beyond Kg), bias padded to Kp.
  Buffer<T> U(p.G * A2 * Cg * Kp), bias(p.G * Kp);
#pragma omp parallel for schedule(static) if (p.Co * Cg > 4096)
  for (int64_t t = 0; t < p.G * Kp; ++t) {
    const int64_t gg = t / Kp, k = t % Kp, kb = k / width, wb = std::min(width, Kp - kb * width);
    T* ublk = U.data() + (gg * Kp + kb * width) * A2 * Cg;
    for (int64_t c = 0; c < Cg; ++c) {
      T u[A][A];
      if (k < Kg) {
        T tmp[3][A];
        for (int r = 0; r < 3; ++r) {
          const T row[3] = {p.w(gg, k, c, r, 0), p.w(gg, k, c, r, 1), p.w(gg, k, c, r, 2)};
          weight_1d<M>(row, tmp[r]);
        }
        for (int j = 0; j < A; ++j) {
          const T col[3] = {tmp[0][j], tmp[1][j], tmp[2][j]};
          T out[A];
          weight_1d<M>(col, out);
          for (int i = 0; i < A; ++i) u[i][j] = out[i];
        }
      } else {
        for (int i = 0; i < A; ++i)
          for (int j = 0; j < A; ++j) u[i][j] = T(0);
      }
      for (int xi = 0; xi < A2; ++xi) ublk[(xi * Cg + c) * wb + (k - kb * width)] = u[xi / A][xi % A];
    }
  }
  for (int64_t gg = 0; gg < p.G; ++gg)
    for (int64_t k = 0; k < Kp; ++k) bias.data()[gg * Kp + k] = p.b && k < Kg ? p.b[gg * Kg + k] : T(0);

  // Tiles per task: the transformed inputs of a task ([xi][tile][Cg]) stay
  // near 128 KB (L2), at least one register tile of rows, at most 32; cut
  // to whole images or whole tile rows where those fit, so a task's outputs
  // leave in whole rows or planes (see the window below).
  const int64_t TB0 = std::max<int64_t>(
      kvec_rows(kKvecMaxNV), std::min<int64_t>(32, (128 << 10) / (A2 * Cg * int64_t(sizeof(T)))));
  const int64_t TB = TI <= TB0 ? TB0 / TI * TI : tw <= TB0 ? TB0 / tw * tw : TB0;
  // The outputs of a task's tiles in plane order: window row q = (tile row -
  // the task's first tile row) * M + i, p.Wo columns, [q][col][wb]. A task
  // spans at most (TB - 1) / tw + 2 tile rows.
  const int64_t window_rows = ((TB - 1) / tw + 2) * M;
  const int64_t nb = images_per_chunk(p.N, p.G * gplane * int64_t(sizeof(T)), kChunkBytes);
  Buffer<T> xb(nb * p.G * gplane);
  const int64_t cvec = ceil_div64(Cg, L);

#pragma omp parallel
  {
    Buffer<T> Vb(A2 * TB * Cg), Mb(A2 * TB * width), Yb(window_rows * p.Wo * width);
    for (int64_t n0 = 0; n0 < p.N; n0 += nb) {
      const int64_t nn = std::min(nb, p.N - n0), ntile = nn * TI, nblk = ceil_div64(ntile, TB);
      transpose_inputs(p, g, n0, nn, xb.data());  // (an omp for: ends with a barrier)
#pragma omp for schedule(static)
      for (int64_t task = 0; task < p.G * nblk; ++task) {
        const int64_t gg = task / nblk, t0 = (task % nblk) * TB, nt = std::min(TB, ntile - t0);
        // Input transform: V[xi][t][c], L channels at a time.
        TileCursor at(t0, th, tw);
        for (int64_t e = 0; e < nt; ++e, at.next()) {
          const T* d0 = xb.data() + (at.nl * p.G + gg) * gplane + (M * at.ty * g.Wp + M * at.tx) * Cg;
          for (int64_t cv = 0; cv < cvec; ++cv) {
            const int64_t c = cv * L, cl = std::min<int64_t>(L, Cg - c);
            V d[A][A], r[A][A];
            for (int i = 0; i < A; ++i)
              for (int j = 0; j < A; ++j) {
                const T* src = d0 + (i * g.Wp + j) * Cg + c;
                d[i][j] = cl == L ? S::load(src) : S::load_n(src, static_cast<int>(cl));
              }
            for (int j = 0; j < A; ++j) {  // B^T d: columns
              V col[A], out[A];
              for (int i = 0; i < A; ++i) col[i] = d[i][j];
              input_1d<M, T>(col, out);
              for (int i = 0; i < A; ++i) r[i][j] = out[i];
            }
            for (int i = 0; i < A; ++i) {  // (B^T d) B: rows
              V out[A];
              input_1d<M, T>(r[i], out);
              for (int j = 0; j < A; ++j) {
                T* dst = Vb.data() + ((i * A + j) * TB + e) * Cg + c;
                if (cl == L)
                  S::store(dst, out[j]);
                else
                  S::store_n(dst, out[j], static_cast<int>(cl));
              }
            }
          }
        }
        for (int64_t kb = 0; kb < nkb; ++kb) {
          const int64_t k0 = kb * width, wb = std::min(width, Kp - k0);
          const T* ublk = U.data() + (gg * Kp + k0) * A2 * Cg;
          for (int64_t xi = 0; xi < A2; ++xi)
            with_rows<kKvecMaxNV>(wb / L, [&](auto nv) {
              gemm_point<T, nv()>(Vb.data() + xi * TB * Cg, nt, Cg, ublk + xi * Cg * wb, wb,
                                  Mb.data() + xi * TB * wb);
            });
          // Output transform: A^T M A + bias, L channels at a time, into the
          // window in plane order (columns and rows past the plane dropped).
          const T* bv = bias.data() + gg * Kp + k0;
          const int64_t first_row = t0 / tw;  // tile rows counted across images
          TileCursor ot(t0, th, tw);
          for (int64_t e = 0; e < nt; ++e, ot.next()) {
            const int64_t rows = std::min<int64_t>(M, p.Ho - ot.ty * M);
            const int64_t cols = std::min<int64_t>(M, p.Wo - ot.tx * M);
            T* yw = Yb.data() + ((ot.row() - first_row) * M * p.Wo + ot.tx * M) * wb;
            for (int64_t kv = 0; kv < wb; kv += L) {
              V mm[A][A], r[M][A];
              for (int xi = 0; xi < A2; ++xi)
                mm[xi / A][xi % A] = S::load(Mb.data() + (xi * TB + e) * wb + kv);
              for (int j = 0; j < A; ++j) {
                V col[A], out[M];
                for (int i = 0; i < A; ++i) col[i] = mm[i][j];
                output_1d<M, T>(col, out);
                for (int i = 0; i < M; ++i) r[i][j] = out[i];
              }
              const V b = S::load(bv + kv);
              for (int64_t i = 0; i < rows; ++i) {
                V out[M];
                output_1d<M, T>(r[i], out);
                for (int64_t j = 0; j < cols; ++j)
                  S::store(yw + (i * p.Wo + j) * wb + kv, out[j] + b);
              }
            }
          }
          // Window -> NCHW: each output row's run of columns, joined with the
          // next when both continue in the plane (whole rows of one image),
          // so whole planes go through transpose_2d at once where the task
          // covers them (2.2x faster than row by row, 16 -> 16 channels at
          // 14x14 in isolation: fewer partial blocks, stores that stream
          // along each channel plane).
          const int64_t kn = std::min(wb, Kg - k0), HW = p.Ho * p.Wo;
          const int64_t last_row = (t0 + nt - 1) / tw;
          int64_t seg_img = -1, seg_q = 0, seg_pos = 0, seg_len = 0;
          auto flush = [&]() {
            if (seg_len == 0) return;
            T* y = p.y + ((n0 + seg_img) * p.Co + gg * Kg + k0) * HW + seg_pos;
            transpose_2d(Yb.data() + seg_q * wb, wb, y, HW, seg_len, kn);
            seg_len = 0;
          };
          for (int64_t tr = first_row; tr <= last_row; ++tr) {
            const int64_t nl = tr / th, ty = tr % th;
            const int64_t c0 = tr == first_row ? (t0 % tw) * M : 0;
            const int64_t c1 = tr == last_row ? std::min(((t0 + nt - 1) % tw + 1) * M, p.Wo) : p.Wo;
            for (int64_t i = 0; i < M && ty * M + i < p.Ho; ++i) {
              const int64_t q = ((tr - first_row) * M + i) * p.Wo + c0;
              const int64_t pos = (ty * M + i) * p.Wo + c0;
              if (!(seg_len > 0 && seg_img == nl && seg_q + seg_len == q && seg_pos + seg_len == pos))
                flush();
              if (seg_len == 0) {
                seg_img = nl;
                seg_q = q;
                seg_pos = pos;
              }
              seg_len += c1 - c0;
            }
          }
          flush();
        }
      }
    }
  }
}

template <typename T>
void winograd_f2x2_engine(const FwdProb<T>& p) {
  winograd_engine<T, 2>(p);
}

template <typename T>
void winograd_f4x4_engine(const FwdProb<T>& p) {
  winograd_engine<T, 4>(p);
}

// (Winograd applies at stride 1 only: its input gradient is one phase.)
CB_CONV2D_CPU_FORWARD_PASSES(winograd_f2x2, winograd_f2x2_engine)
CB_CONV2D_CPU_FORWARD_PASSES(winograd_f4x4, winograd_f4x4_engine)

#define CB_INSTANTIATE(T)                                                                       \
  template void conv2d_forward_winograd_f2x2<T>(const Conv2dShape&, const T*, const T*, const T*, T*);  \
  template void conv2d_backward_input_winograd_f2x2<T>(const Conv2dShape&, const T*, const T*, T*);  \
  template void conv2d_forward_winograd_f4x4<T>(const Conv2dShape&, const T*, const T*, const T*, T*); \
  template void conv2d_backward_input_winograd_f4x4<T>(const Conv2dShape&, const T*, const T*, T*);
CB_INSTANTIATE(float)
CB_INSTANTIATE(double)
#undef CB_INSTANTIATE

}  // namespace CB_CPU_NS
}  // namespace convbench
