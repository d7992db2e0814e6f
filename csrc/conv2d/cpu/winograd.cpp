// Winograd F(2x2, 3x3) for 3x3, stride 1, dilation 1 forward problems (the
// forward pass and, through conv_common.h, the input gradient of such a
// layer). Each 2x2 output tile costs 16 products per (k, c) instead of 36:
//   V = B^T d B (4x4 input tile), U = G g G^T (weights), M = U .* V summed
//   over c as 16 independent GEMMs, Y = A^T M A.
// Tiles of all images in a chunk are batched: a task owns a panel of NR
// tiles, transforms their inputs into 16 packed [Cg][NR] panels, runs the
// 4 x NR register micro-kernel per transform point and output-channel block,
// then inverse-transforms. The transforms only add and subtract (and halve,
// in G), so the error stays at the direct convolution's level.
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

// U[xi][k][c] = (G g G^T)[xi] packed as [g][xi][k-block of 4][c][mr].
template <typename T>
void transform_weights(const FwdProb<T>& p, T* dst) {
  const int64_t Cg = p.Cg(), Kg = p.Kg();
  for (int64_t gg = 0; gg < p.G; ++gg)
    for (int64_t k = 0; k < Kg; ++k)
      for (int64_t c = 0; c < Cg; ++c) {
        T w[9];
        for (int i = 0; i < 9; ++i) w[i] = p.w(gg, k, c, i / 3, i % 3);
        T t[4][3], u[4][4];
        for (int j = 0; j < 3; ++j) {  // G g: rows
          t[0][j] = w[j];
          t[1][j] = T(0.5) * (w[j] + w[3 + j] + w[6 + j]);
          t[2][j] = T(0.5) * (w[j] - w[3 + j] + w[6 + j]);
          t[3][j] = w[6 + j];
        }
        for (int i = 0; i < 4; ++i) {  // (G g) G^T: columns
          u[i][0] = t[i][0];
          u[i][1] = T(0.5) * (t[i][0] + t[i][1] + t[i][2]);
          u[i][2] = T(0.5) * (t[i][0] - t[i][1] + t[i][2]);
          u[i][3] = t[i][2];
        }
        const int64_t k0 = k / 4 * 4, mr = std::min<int64_t>(4, Kg - k0);
        for (int xi = 0; xi < 16; ++xi)
          dst[((gg * 16 + xi) * Kg + k0) * Cg + c * mr + (k - k0)] = u[xi / 4][xi % 4];
      }
}

}  // namespace

template <typename T>
void winograd_forward_engine(const FwdProb<T>& p) {
  using S = Simd<T>;
  constexpr int64_t L = S::L, NR = 3 * L;
  const int64_t Cg = p.Cg(), Kg = p.Kg();
  const int64_t th = ceil_div64(p.Ho, 2), tw = ceil_div64(p.Wo, 2), TI = th * tw;
  PadGeom g;  // input rows 2*ty .. 2*ty+3 of every tile inside the plane
  g.Hp = 2 * th + 2;
  g.Wp = 2 * tw + 2;
  g.plane = g.Hp * g.Wp;
  g.Wq = g.Wp;
  g.J = 0;
  Buffer<T> U(p.G * 16 * Kg * Cg);
  transform_weights(p, U.data());
  const int64_t nkb = ceil_div64(Kg, 4);
  const int64_t nb = images_per_chunk(p.N, p.Ci * g.plane * int64_t(sizeof(T)), kChunkBytes);
  Buffer<T> xb(nb * p.Ci * g.plane);

#pragma omp parallel
  {
    Buffer<T> V(16 * Cg * NR);   // [xi][c][NR]
    Buffer<T> Mb(16 * Kg * NR);  // [xi][k][NR]
    for (int64_t n0 = 0; n0 < p.N; n0 += nb) {
      const int64_t nn = std::min(nb, p.N - n0), ntile = nn * TI, npan = ceil_div64(ntile, NR);
#pragma omp for schedule(static)
      for (int64_t i = 0; i < nn * p.Ci; ++i)
        pad_plane(p, g, p.x + (n0 * p.Ci + i) * p.Hi * p.Wi, xb.data() + i * g.plane);
#pragma omp for schedule(static)
      for (int64_t task = 0; task < p.G * npan; ++task) {
        const int64_t gg = task / npan, t0 = (task % npan) * NR;
        const int64_t nt = std::min(NR, ntile - t0);
        // Tile positions, once per panel: input offset (channel 0 of the
        // group), output offset and whether the tile's second row/column exist.
        int64_t xoff[NR], yoff[NR];
        bool has_h1[NR], has_w1[NR];
        for (int64_t e = 0; e < nt; ++e) {
          const int64_t t = t0 + e, nl = t / TI, ty = (t % TI) / tw, tx = t % tw;
          xoff[e] = (nl * p.Ci + gg * Cg) * g.plane + 2 * ty * g.Wp + 2 * tx;
          yoff[e] = (n0 + nl) * p.Co * p.Ho * p.Wo + 2 * ty * p.Wo + 2 * tx;
          has_h1[e] = 2 * ty + 1 < p.Ho;
          has_w1[e] = 2 * tx + 1 < p.Wo;
        }
        // Input transform of the panel's tiles (missing tiles: zeros).
        for (int64_t c = 0; c < Cg; ++c) {
          for (int64_t e = 0; e < NR; ++e) {
            T v[16];
            if (e < nt) {
              const T* d = xb.data() + xoff[e] + c * g.plane;
              T r[4][4];
              for (int j = 0; j < 4; ++j) {  // B^T d
                const T d0 = d[j], d1 = d[g.Wp + j], d2 = d[2 * g.Wp + j], d3 = d[3 * g.Wp + j];
                r[0][j] = d0 - d2;
                r[1][j] = d1 + d2;
                r[2][j] = d2 - d1;
                r[3][j] = d1 - d3;
              }
              for (int i = 0; i < 4; ++i) {  // (B^T d) B
                v[i * 4 + 0] = r[i][0] - r[i][2];
                v[i * 4 + 1] = r[i][1] + r[i][2];
                v[i * 4 + 2] = r[i][2] - r[i][1];
                v[i * 4 + 3] = r[i][1] - r[i][3];
              }
            } else {
              for (int xi = 0; xi < 16; ++xi) v[xi] = T(0);
            }
            for (int xi = 0; xi < 16; ++xi) V.data()[(xi * Cg + c) * NR + e] = v[xi];
          }
        }
        // Transform point outer: its V panel stays in L1 while the weight
        // blocks stream through once per panel.
        for (int xi = 0; xi < 16; ++xi) {
          const T* b = V.data() + xi * Cg * NR;
          for (int64_t kb = 0; kb < nkb; ++kb) {
            const int64_t k0 = kb * 4;
            const int mr = static_cast<int>(std::min<int64_t>(4, Kg - k0));
            const T* a = U.data() + ((gg * 16 + xi) * Kg + k0) * Cg;
            T* m = Mb.data() + (xi * Kg + k0) * NR;
            switch (mr) {
              case 4: outer_tile<T, 4, 3, false, true>(1, 0, Cg, a, b, nullptr, 1, m); break;
              case 3: outer_tile<T, 3, 3, false, true>(1, 0, Cg, a, b, nullptr, 1, m); break;
              case 2: outer_tile<T, 2, 3, false, true>(1, 0, Cg, a, b, nullptr, 1, m); break;
              default: outer_tile<T, 1, 3, false, true>(1, 0, Cg, a, b, nullptr, 1, m); break;
            }
          }
        }
        for (int64_t kb = 0; kb < nkb; ++kb) {
          const int64_t k0 = kb * 4;
          const int mr = static_cast<int>(std::min<int64_t>(4, Kg - k0));
          // Output transform Y = A^T M A, A^T = [1 1 1 0; 0 1 -1 -1].
          for (int q = 0; q < mr; ++q) {
            const int64_t k = gg * Kg + k0 + q;
            const T bv = p.b ? p.b[k] : T(0);
            for (int64_t e = 0; e < nt; ++e) {
              T mm[16];
              for (int xi = 0; xi < 16; ++xi) mm[xi] = Mb.data()[(xi * Kg + k0 + q) * NR + e];
              T s0[4], s1[4];
              for (int j = 0; j < 4; ++j) {
                s0[j] = mm[j] + mm[4 + j] + mm[8 + j];
                s1[j] = mm[4 + j] - mm[8 + j] - mm[12 + j];
              }
              const T y00 = s0[0] + s0[1] + s0[2], y01 = s0[1] - s0[2] - s0[3];
              const T y10 = s1[0] + s1[1] + s1[2], y11 = s1[1] - s1[2] - s1[3];
              T* y = p.y + yoff[e] + k * p.Ho * p.Wo;
              y[0] = y00 + bv;
              if (has_w1[e]) y[1] = y01 + bv;
              if (has_h1[e]) y[p.Wo] = y10 + bv;
              if (has_h1[e] && has_w1[e]) y[p.Wo + 1] = y11 + bv;
            }
          }
        }
      }
    }
  }
}

template <typename T>
void conv2d_forward_winograd(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y) {
  winograd_forward_engine(forward_problem(s, x, w, b, y));
}

template <typename T>
void conv2d_backward_input_winograd(const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  winograd_forward_engine(backward_input_problem(s, dy, w, dx));
}

#define CB_INSTANTIATE(T)                                                                      \
  template void conv2d_forward_winograd<T>(const Conv2dShape&, const T*, const T*, const T*, T*); \
  template void conv2d_backward_input_winograd<T>(const Conv2dShape&, const T*, const T*, T*);
CB_INSTANTIATE(float)
CB_INSTANTIATE(double)
#undef CB_INSTANTIATE

}  // namespace CB_CPU_NS
}  // namespace convbench
