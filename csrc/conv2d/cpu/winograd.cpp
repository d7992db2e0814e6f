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
// wasted at 16 channels; measured in d5184c9's message).
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

// ---- the phases of a call ---------------------------------------------

// How a call is cut: tiles per plane, output-channel blocks, tiles per
// task, and the padded input plane every tile reads inside.
struct WinogradPlan {
  int64_t th, tw, TI;      // tile rows, tile columns and tiles of one plane
  int64_t Kp, width, nkb;  // output channels padded to L; per block; blocks (ChannelBlocks)
  int64_t TB;              // tiles per task
  int64_t window_rows;     // output rows a task's tiles can span
  PadGeom g;
};

template <typename T, int M>
WinogradPlan winograd_plan(const FwdProb<T>& p) {
  constexpr int64_t L = Simd<T>::L, A2 = (M + 2) * (M + 2);
  WinogradPlan w;
  w.th = ceil_div64(p.Ho, M);
  w.tw = ceil_div64(p.Wo, M);
  w.TI = w.th * w.tw;
  const ChannelBlocks cb(p.Kg(), L);
  w.Kp = cb.Kp;
  w.width = cb.width;
  w.nkb = cb.count;
  // input rows M*ty .. M*ty+A-1 of every tile inside the plane
  w.g.Hp = M * w.th + 2;
  w.g.Wp = M * w.tw + 2;
  w.g.plane = w.g.Hp * w.g.Wp;
  w.g.Wq = w.g.Wp;
  w.g.J = 0;
  // Tiles per task: the transformed inputs of a task ([xi][tile][Cg]) stay
  // near 128 KB (L2), at least one register tile of rows, at most 32; cut
  // to whole images or whole tile rows where those fit, so a task's outputs
  // leave in whole rows or planes (see write_window).
  const int64_t TB0 = std::max<int64_t>(
      kvec_rows(kKvecMaxNV), std::min<int64_t>(32, (128 << 10) / (A2 * p.Cg() * int64_t(sizeof(T)))));
  w.TB = w.TI <= TB0 ? TB0 / w.TI * w.TI : w.tw <= TB0 ? TB0 / w.tw * w.tw : TB0;
  // A task spans at most (TB - 1) / tw + 2 tile rows.
  w.window_rows = ((w.TB - 1) / w.tw + 2) * M;
  return w;
}

// U [g][kb][xi][c][wb] = G g G^T (zero beyond Kg); bias padded to Kp.
template <typename T, int M>
void transform_weights(const FwdProb<T>& p, const WinogradPlan& w, T* U, T* bias) {
  constexpr int A = M + 2, A2 = A * A;
  const int64_t Cg = p.Cg(), Kg = p.Kg(), Kp = w.Kp, width = w.width;
#pragma omp parallel for schedule(static) if (p.Co * Cg > 4096)
  for (int64_t t = 0; t < p.G * Kp; ++t) {
    const int64_t gg = t / Kp, k = t % Kp, kb = k / width, wb = std::min(width, Kp - kb * width);
    T* ublk = U + (gg * Kp + kb * width) * A2 * Cg;
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
  pad_bias(p, Kp, bias);
}

// Tiles [t0, t0+nt) of one transposed image-group plane xg -> V [xi][t][Cg]
// = B^T d B, L channels at a time.
template <typename T, int M>
void transform_inputs(const WinogradPlan& w, int64_t Cg, const T* xg, int64_t plane_stride,
                      int64_t t0, int64_t nt, T* Vb) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int64_t L = S::L, A = M + 2;
  const int64_t Wp = w.g.Wp, TB = w.TB, cvec = ceil_div64(Cg, L);
  TileCursor at(t0, w.th, w.tw);
  for (int64_t e = 0; e < nt; ++e, at.next()) {
    const T* d0 = xg + at.nl * plane_stride + (M * at.ty * Wp + M * at.tx) * Cg;
    for (int64_t cv = 0; cv < cvec; ++cv) {
      const int64_t c = cv * L, cl = std::min<int64_t>(L, Cg - c);
      V d[A][A], r[A][A];
      for (int i = 0; i < A; ++i)
        for (int j = 0; j < A; ++j) {
          const T* src = d0 + (i * Wp + j) * Cg + c;
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
          T* dst = Vb + ((i * A + j) * TB + e) * Cg + c;
          if (cl == L)
            S::store(dst, out[j]);
          else
            S::store_n(dst, out[j], static_cast<int>(cl));
        }
      }
    }
  }
}

// M [xi][t][wb] = V [xi][t][Cg] * U [xi][Cg][wb] for every transform point.
template <typename T, int M>
void multiply_points(const WinogradPlan& w, int64_t Cg, const T* Vb, int64_t nt, const T* ublk,
                     int64_t wb, T* Mb) {
  constexpr int64_t L = Simd<T>::L, A2 = (M + 2) * (M + 2);
  for (int64_t xi = 0; xi < A2; ++xi)
    with_rows<kKvecMaxNV>(wb / L, [&](auto nv) {
      gemm_point<T, nv()>(Vb + xi * w.TB * Cg, nt, Cg, ublk + xi * Cg * wb, wb, Mb + xi * w.TB * wb);
    });
}

// Y = A^T M A + bias, L channels at a time, into the task's window of
// outputs in plane order, [q][column][wb] with q = (tile row - the task's
// first tile row) * M + i (columns and rows past the plane dropped).
template <typename T, int M>
void transform_outputs(const FwdProb<T>& p, const WinogradPlan& w, const T* Mb, const T* bv,
                       int64_t t0, int64_t nt, int64_t wb, T* Yb) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int64_t L = S::L, A = M + 2, A2 = A * A;
  const int64_t TB = w.TB, first_row = t0 / w.tw;  // tile rows counted across images
  TileCursor ot(t0, w.th, w.tw);
  for (int64_t e = 0; e < nt; ++e, ot.next()) {
    const int64_t rows = std::min<int64_t>(M, p.Ho - ot.ty * M);
    const int64_t cols = std::min<int64_t>(M, p.Wo - ot.tx * M);
    T* yw = Yb + ((ot.row() - first_row) * M * p.Wo + ot.tx * M) * wb;
    for (int64_t kv = 0; kv < wb; kv += L) {
      V mm[A][A], r[M][A];
      for (int xi = 0; xi < A2; ++xi) mm[xi / A][xi % A] = S::load(Mb + (xi * TB + e) * wb + kv);
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
        for (int64_t j = 0; j < cols; ++j) S::store(yw + (i * p.Wo + j) * wb + kv, out[j] + b);
      }
    }
  }
}

// Window -> NCHW (channels [k0, k0+wb) of group gg, images from n0): each
// output row's run of columns, joined with the next when both continue in
// the plane (whole rows of one image), so whole planes go through
// transpose_2d at once where the task covers them (fewer partial blocks,
// stores that stream along each channel plane; faster than row by row,
// most at small planes).
template <typename T, int M>
void write_window(const FwdProb<T>& p, const WinogradPlan& w, const T* Yb, int64_t n0, int64_t gg,
                  int64_t k0, int64_t wb, int64_t t0, int64_t nt) {
  const int64_t Kg = p.Kg(), th = w.th, tw = w.tw;
  const int64_t kn = std::min(wb, Kg - k0), HW = p.Ho * p.Wo;
  const int64_t first_row = t0 / tw, last_row = (t0 + nt - 1) / tw;
  int64_t seg_img = -1, seg_q = 0, seg_pos = 0, seg_len = 0;
  auto flush = [&]() {
    if (seg_len == 0) return;
    T* y = p.y + ((n0 + seg_img) * p.Co + gg * Kg + k0) * HW + seg_pos;
    transpose_2d(Yb + seg_q * wb, wb, y, HW, seg_len, kn);
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

}  // namespace

// Per chunk of images: transpose the inputs, then tasks of TB tiles of one
// group, each transforming its inputs once and, per output-channel block,
// multiplying, transforming back and writing its outputs.
template <typename T, int M>
void winograd_engine(const FwdProb<T>& p) {
  constexpr int64_t A2 = (M + 2) * (M + 2);
  const WinogradPlan w = winograd_plan<T, M>(p);
  const int64_t Cg = p.Cg(), gplane = w.g.plane * Cg;
  Buffer<T> U(p.G * A2 * Cg * w.Kp), bias(p.G * w.Kp);
  transform_weights<T, M>(p, w, U.data(), bias.data());
  const int64_t nb = images_per_chunk(p.N, p.G * gplane * int64_t(sizeof(T)), kChunkBytes);
  Buffer<T> xb(nb * p.G * gplane);

#pragma omp parallel
  {
    Buffer<T> Vb(A2 * w.TB * Cg), Mb(A2 * w.TB * w.width), Yb(w.window_rows * p.Wo * w.width);
    for (int64_t n0 = 0; n0 < p.N; n0 += nb) {
      const int64_t nn = std::min(nb, p.N - n0), ntile = nn * w.TI, nblk = ceil_div64(ntile, w.TB);
      transpose_inputs(p, w.g, n0, nn, xb.data());  // (an omp for: ends with a barrier)
#pragma omp for schedule(static)
      for (int64_t task = 0; task < p.G * nblk; ++task) {
        const int64_t gg = task / nblk, t0 = (task % nblk) * w.TB, nt = std::min(w.TB, ntile - t0);
        transform_inputs<T, M>(w, Cg, xb.data() + gg * gplane, p.G * gplane, t0, nt, Vb.data());
        for (int64_t kb = 0; kb < w.nkb; ++kb) {
          const int64_t k0 = kb * w.width, wb = std::min(w.width, w.Kp - k0);
          multiply_points<T, M>(w, Cg, Vb.data(), nt, U.data() + (gg * w.Kp + k0) * A2 * Cg, wb,
                                Mb.data());
          transform_outputs<T, M>(p, w, Mb.data(), bias.data() + gg * w.Kp + k0, t0, nt, wb,
                                  Yb.data());
          write_window<T, M>(p, w, Yb.data(), n0, gg, k0, wb, t0, nt);
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

CB_INSTANTIATE_CONV2D_CPU_FORWARD_PASSES(winograd_f2x2)
CB_INSTANTIATE_CONV2D_CPU_FORWARD_PASSES(winograd_f4x4)

}  // namespace CB_CPU_NS
}  // namespace convbench
