// The forward problem every CPU conv engine solves, and the zero-padded
// input planes the engines read without bounds checks.
//  * FwdProb: a forward convolution with optional input dilation. The
//    forward pass is one directly; the input-gradient pass becomes one (dy
//    as input, zero-inserted by the stride, taps flipped and channels
//    swapped, which the weight view expresses without a copy), so each
//    algorithm needs a single forward engine.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/shapes.h"
#include "common/cpu/scratch.h"

namespace convbench {
namespace CB_CPU_NS {

// Weights read through strides: w(g, k, c, r, s) = p[g*sg + k*sk + c*sc +
// r*sr + s*ss] for output channel k < Kg and input channel c < Cg of group g.
template <typename T>
struct WeightView {
  const T* p;
  int64_t sg, sk, sc, sr, ss;
  const T& operator()(int64_t g, int64_t k, int64_t c, int64_t r, int64_t s) const {
    return p[g * sg + k * sk + c * sc + r * sr + s * ss];
  }
};

// y[n,co,ho,wo] = b[co] + sum w(g,co',ci,r,s) * xu[n, g*Cg+ci, ho*sh - ph + r*dh, wo*sw - pw + s*dw]
// where xu is x with (lh-1) zeros inserted between rows (lw-1 between
// columns) and zero outside. Padding may be negative (crop).
template <typename T>
struct FwdProb {
  int64_t N, Ci, Hi, Wi, Co, R, S, Ho, Wo;
  int64_t sh, sw, ph, pw, dh, dw, lh, lw, G;
  const T* x;
  WeightView<T> w;
  const T* b;  // [Co] or nullptr
  T* y;
  int64_t Cg() const { return Ci / G; }
  int64_t Kg() const { return Co / G; }
};

template <typename T>
FwdProb<T> forward_problem(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y) {
  const int64_t RS = s.R * s.S, CRS = s.c_per_group() * RS;
  const WeightView<T> wv{w, s.k_per_group() * CRS, CRS, RS, s.S, 1};
  return FwdProb<T>{s.N,   s.C,   s.H,        s.W,        s.K,     s.R,     s.S,
                    s.P,   s.Q,   s.stride_h, s.stride_w, s.pad_h, s.pad_w, s.dil_h,
                    s.dil_w, 1,   1,          s.groups,   x,       wv,      b,       y};
}

// dx = conv(zero-inserted dy, w with taps flipped and k, c swapped), stride 1.
template <typename T>
FwdProb<T> backward_input_problem(const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  const int64_t RS = s.R * s.S, Cg = s.c_per_group(), Kg = s.k_per_group();
  // w'(g, k'=c, c'=k, r, s) = w[g*Kg + k][c][R-1-r][S-1-s]
  const WeightView<T> wv{w + RS - 1, Kg * Cg * RS, RS, Cg * RS, -s.S, -1};
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
                    wv,
                    nullptr,
                    dx};
}

// The input gradient of a strided layer, one output phase at a time. dx rows
// h with (h + ph) % sh == phi only receive taps r with r*dh % sh == phi
// (every sh / gcd(dh, sh)-th tap), read from consecutive dy rows: a
// stride-1 forward problem over dy itself (no zero-inserted rows, whose
// products are all zero: 3/4 of the work at stride 2) with a sub-kernel of
// those taps, flipped. Likewise for columns. PhaseAxis describes one
// dimension of one phase.
struct PhaseAxis {
  int64_t o0, no;      // outputs o0, o0 + st, ... (no of them)
  int64_t t0, step, nt;  // taps t0, t0 + step, ... (nt of them; 0: no gradient)
  int64_t dil, pad;    // the sub-problem's dilation and (possibly negative) padding
};

inline PhaseAxis phase_axis(int64_t out, int64_t st, int64_t pad, int64_t dil, int64_t R,
                            int64_t phi) {
  PhaseAxis a{};
  a.o0 = ((phi - pad) % st + st) % st;
  a.no = a.o0 < out ? (out - 1 - a.o0) / st + 1 : 0;
  int64_t g = st, d = dil;  // step = st / gcd(dil, st)
  while (d) { const int64_t t = g % d; g = d; d = t; }
  a.step = st / g;
  a.t0 = -1;
  for (int64_t r = 0; r < std::min(R, a.step); ++r)
    if ((r * dil) % st == phi) { a.t0 = r; break; }
  a.nt = a.t0 < 0 ? 0 : (R - 1 - a.t0) / a.step + 1;
  if (a.nt == 0) return a;
  a.dil = a.step * dil / st;
  const int64_t base = (a.o0 + pad - a.t0 * dil) / st;  // dy row of output o0, tap t0
  a.pad = (a.nt - 1) * a.dil - base;
  return a;
}

// The stride-1 forward problem of phase (ah, aw): dy as input, its output
// the phase's [no_h][no_w] planes (dense, in y), taps flipped and k, c swapped.
template <typename T>
FwdProb<T> backward_input_phase_problem(const Conv2dShape& s, const PhaseAxis& ah,
                                        const PhaseAxis& aw, const T* dy, const T* w, T* y) {
  const int64_t RS = s.R * s.S, Cg = s.c_per_group(), Kg = s.k_per_group();
  // w'(g, k'=c, c'=k, t, u) = w[g*Kg + k][c][t0 + (nt-1-t)*step][...]
  const T* last = w + (ah.t0 + (ah.nt - 1) * ah.step) * s.S + aw.t0 + (aw.nt - 1) * aw.step;
  const WeightView<T> wv{last, Kg * Cg * RS, RS, Cg * RS, -ah.step * s.S, -aw.step};
  return FwdProb<T>{s.N,   s.K,    s.P,    s.Q,    s.C,    ah.nt,  aw.nt, ah.no, aw.no, 1,
                    1,     ah.pad, aw.pad, ah.dil, aw.dil, 1,      1,     s.groups, dy,  wv,
                    nullptr, y};
}

// dx by phases, each solved by run(FwdProb) into a dense buffer, then
// scattered into its rows and columns of dx; outputs no tap reaches get 0.
template <typename T, typename Run>
void backward_input_by_phases(const Conv2dShape& s, const T* dy, const T* w, T* dx,
                              const Run& run) {
  if (s.stride_h == 1 && s.stride_w == 1) {
    run(backward_input_problem(s, dy, w, dx));
    return;
  }
  Buffer<T> tmp(s.N * s.C * s.H * s.W);
  for (int64_t ph = 0; ph < s.stride_h; ++ph)
    for (int64_t pw = 0; pw < s.stride_w; ++pw) {
      const PhaseAxis ah = phase_axis(s.H, s.stride_h, s.pad_h, s.dil_h, s.R, ph);
      const PhaseAxis aw = phase_axis(s.W, s.stride_w, s.pad_w, s.dil_w, s.S, pw);
      if (ah.no == 0 || aw.no == 0) continue;
      const bool taps = ah.nt > 0 && aw.nt > 0 && s.P > 0 && s.Q > 0;
      if (taps) run(backward_input_phase_problem(s, ah, aw, dy, w, tmp.data()));
      const int64_t plane = ah.no * aw.no;
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < s.N * s.C; ++i) {
        const T* src = tmp.data() + i * plane;
        T* d = dx + i * s.H * s.W + ah.o0 * s.W + aw.o0;
        for (int64_t a = 0; a < ah.no; ++a)
          for (int64_t b = 0; b < aw.no; ++b)
            d[a * s.stride_h * s.W + b * s.stride_w] = taps ? src[a * aw.no + b] : T(0);
      }
    }
}

// An algorithm's forward and input-gradient entry points, from its engine
// for forward problems (void ENGINE(const FwdProb<T>&)): the input gradient
// is that engine run on each stride phase.
#define CB_CONV2D_CPU_FORWARD_PASSES(ALGO, ENGINE)                                          \
  template <typename T>                                                                    \
  void conv2d_forward_##ALGO(const Conv2dShape& s, const T* x, const T* w, const T* b,     \
                             T* y) {                                                       \
    ENGINE(forward_problem(s, x, w, b, y));                                                \
  }                                                                                        \
  template <typename T>                                                                    \
  void conv2d_backward_input_##ALGO(const Conv2dShape& s, const T* dy, const T* w, T* dx) { \
    backward_input_by_phases(s, dy, w, dx, [](const FwdProb<T>& p) { ENGINE(p); });        \
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

// Weights -> per group, blocks of mr output channels stored [crs][mr] (the
// last block of a group has Kg % mr rows, stored densely). Output channel
// block starting at k0 of group g lives at (g*Kg + k0) * CRS.
template <typename T>
void pack_weights(const FwdProb<T>& p, int mr, T* dst) {
  const int64_t Kg = p.Kg(), Cg = p.Cg(), RS = p.R * p.S, CRS = Cg * RS;
  const int64_t nkb = ceil_div64(Kg, mr);
#pragma omp parallel for schedule(static) if (p.Co * CRS > 32768)
  for (int64_t t = 0; t < p.G * nkb; ++t) {
    const int64_t g = t / nkb, k0 = (t % nkb) * mr;
    const int64_t m = std::min<int64_t>(mr, Kg - k0);
    T* d = dst + (g * Kg + k0) * CRS;
    for (int64_t c = 0, i = 0; c < Cg; ++c)
      for (int64_t r = 0; r < p.R; ++r)
        for (int64_t s = 0; s < p.S; ++s, ++i)
          for (int64_t j = 0; j < m; ++j) d[i * m + j] = p.w(g, k0 + j, c, r, s);
  }
}

// The bias per group padded with zeros to Kp channels, [g][Kp] (no bias:
// all zeros), for engines that add it a whole vector at a time.
template <typename T>
void pad_bias(const FwdProb<T>& p, int64_t Kp, T* dst) {
  const int64_t Kg = p.Kg();
  for (int64_t g = 0; g < p.G; ++g)
    for (int64_t k = 0; k < Kp; ++k) dst[g * Kp + k] = p.b && k < Kg ? p.b[g * Kg + k] : T(0);
}

// Images per chunk so one chunk's workspace stays near `budget` bytes.
inline int64_t images_per_chunk(int64_t N, int64_t bytes_per_image, int64_t budget) {
  const int64_t nb = bytes_per_image > 0 ? budget / bytes_per_image : N;
  return std::max<int64_t>(1, std::min(N, nb));
}

}  // namespace CB_CPU_NS
}  // namespace convbench
