// Direct convolution per group: the "depthwise" engine of Direct, for
// layers with one (or a few) input channels per group, above all depthwise
// ones (groups == in_channels, any channel multiplier). The other engines
// block output channels within a group, which a group of one channel
// cannot fill; this one vectorises along each output row instead (the row
// layout, below), or, for multiplier 1 on short or strided rows, along
// channels (depthwise_cvec.cpp).
//  * Each task pads one image's input planes of one group into scratch, split
//    by column phase (column b of the padded plane lands in phase b % sw at
//    b / sw), so every tap of a strided layer reads consecutive values too.
//  * Forward problems (the forward pass, and the input gradient through
//    problem.h's stride phases): a register tile of RH output rows x NV
//    vectors, one broadcast weight and one load per FMA for each tap.
//  * Weight gradient: per (output channel, input channel), up to kTapBlock
//    taps accumulated at once as dot products of dy rows with shifted
//    input rows, the batch summed in order (deterministic).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "common/shapes.h"
#include "conv2d/cpu/conv2d_cpu_kernels.h"
#include "conv2d/cpu/depthwise_cvec.h"
#include "conv2d/cpu/problem.h"
#include "conv2d/cpu/tiles.h"

namespace convbench {
namespace CB_CPU_NS {

namespace {

// Accumulators of one forward tile: at least 8 to cover the FMA latency (2
// pipes x 4 cycles), at most what fits beside the broadcast (the loads are
// memory operands of the FMAs).
constexpr int kDwAccMax = kVecRegs == 32 ? 16 : 14;
// Taps of one weight-gradient tile (3x3 in one pass; each needs its own
// accumulator beside dy's vector).
constexpr int kTapBlock = kVecRegs == 32 ? 16 : 9;

// Geometry of one group's padded, phase-split input planes: channel c,
// phase f, row a, column j at c*plane + f*phase + a*Wj + j.
struct PhasedGeom {
  int64_t rows;   // padded rows, enough for the tiles' whole row blocks
  int64_t Wj;     // columns per phase row, enough for whole column chunks
  int64_t phase;  // rows * Wj
  int64_t plane;  // sw * phase
};

template <typename T>
PhasedGeom phased_geom(const FwdProb<T>& p, int64_t out_rows, int64_t out_cols) {
  PhasedGeom g;
  g.rows = (out_rows - 1) * p.sh + (p.R - 1) * p.dh + 1;
  g.Wj = out_cols + ((p.S - 1) * p.dw) / p.sw;
  g.phase = g.rows * g.Wj;
  g.plane = p.sw * g.phase;
  return g;
}

// Copies input plane src [Hi, Wi] into its padded, phase-split place:
// padded row a, column b hold xu[a - ph, b - pw] (xu: the input with lh-1 /
// lw-1 zeros inserted; padding may be negative). Writes the data positions
// only, which are the same for every plane: the rest of a thread's planes is
// zeroed once (PhasedPlanes), and stays zero. (A memset and a memcpy call
// per row took twice as long as the taps on 14x14 planes.)
template <typename T>
void copy_phased(const FwdProb<T>& p, const PhasedGeom& g, const T* src, T* dst) {
  using S = Simd<T>;
  // Rows a = hi*lh + ph (no division per row: it cost more than the copy).
  for (int64_t hi = std::max<int64_t>(0, ceil_div64(-p.ph, p.lh)); hi < p.Hi; ++hi) {
    const int64_t a = hi * p.lh + p.ph;
    if (a >= g.rows) break;
    const T* srow = src + hi * p.Wi;
    if (p.sw == 1 && p.lw == 1) {  // the common case: a contiguous run per row
      const int64_t b0 = std::max<int64_t>(0, p.pw), b1 = std::min(g.Wj, p.pw + p.Wi);
      const T* from = srow + b0 - p.pw;
      T* to = dst + a * g.Wj + b0;
      int64_t i = 0;
      for (; i + S::L <= b1 - b0; i += S::L) S::store(to + i, S::load(from + i));
      // The tail as a whole vector, zeros past the data: they land in padding
      // or in data positions written later (rows and planes go in order; the
      // last plane has a vector of slack).
      if (i < b1 - b0) S::store(to + i, S::load_n(from + i, static_cast<int>(b1 - b0 - i)));
      continue;
    }
    // Stride 2: both phases of a row at once, 2L values per step, where the
    // whole step lies inside the data and the phase rows (the rest below).
    // Padded column 2j + f holds src[2j + f - pw], so the values from
    // src[2j - pw] on split into phase 0 (even lanes) and 1 (odd), both at j.
    int64_t jv0 = 0, jv1 = 0;
    if (p.sw == 2 && p.lw == 1) {
      jv0 = ceil_div64(std::max<int64_t>(p.pw, 0), 2);
      for (jv1 = jv0; jv1 + S::L <= g.Wj && 2 * (jv1 + S::L) - p.pw <= p.Wi; jv1 += S::L) {
        typename S::V even, odd;
        S::deinterleave2(srow + 2 * jv1 - p.pw, even, odd);
        S::store(dst + a * g.Wj + jv1, even);
        S::store(dst + g.phase + a * g.Wj + jv1, odd);
      }
    }
    for (int64_t f = 0; f < p.sw; ++f) {
      T* drow = dst + f * g.phase + a * g.Wj;
      // phase columns j whose padded column j*sw + f holds data: ub = j*sw + f - pw
      // in [0, (Wi-1)*lw], ub % lw == 0
      for (int64_t j = std::max<int64_t>(0, ceil_div64(p.pw - f, p.sw)); j < g.Wj; ++j) {
        if (j == jv0 && jv1 > jv0) j = jv1;  // (copied above)
        if (j >= g.Wj) break;
        const int64_t ub = j * p.sw + f - p.pw;
        if (ub >= p.Wi * p.lw) break;
        if (p.lw == 1) drow[j] = srow[ub];
        else if (ub % p.lw == 0) drow[j] = srow[ub / p.lw];
      }
    }
  }
}

// A thread's padded planes for `count` input channels, zeroed once.
template <typename T>
struct PhasedPlanes {
  Buffer<T> buf;
  PhasedPlanes(const PhasedGeom& g, int64_t count) : buf(count * g.plane + Simd<T>::L) {
    std::memset(buf.data(), 0, sizeof(T) * (count * g.plane + Simd<T>::L));
  }
  T* data() { return buf.data(); }
};

// Where tap (c, r, s) of an output at padded row ho*sh, phase column wo
// reads: c*plane + (s*dw % sw)*phase + r*dh*Wj + s*dw / sw.
template <typename T>
std::vector<int64_t> tap_offsets(const FwdProb<T>& p, const PhasedGeom& g) {
  std::vector<int64_t> off;
  off.reserve(p.Cg() * p.R * p.S);
  for (int64_t c = 0; c < p.Cg(); ++c)
    for (int64_t r = 0; r < p.R; ++r)
      for (int64_t s = 0; s < p.S; ++s)
        off.push_back(c * g.plane + (s * p.dw % p.sw) * g.phase + r * p.dh * g.Wj +
                      s * p.dw / p.sw);
  return off;
}

// The output tile: RH rows (rows apart in the padded planes by row_step) x
// NV vectors from `in`; all taps; `rows` x `cols` of it stored to y (row
// stride Wo).
template <typename T, int NV, int RH>
inline void forward_tile(const T* in, int64_t row_step, const int64_t* off, const T* wk,
                         int64_t ntaps, T bias, T* y, int64_t Wo, int64_t rows, int64_t cols) {
  using S = Simd<T>;
  constexpr int L = S::L;
  typename S::V acc[RH][NV];
  const auto bb = S::bcast(bias);
  for (int i = 0; i < RH; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = bb;
  for (int64_t t = 0; t < ntaps; ++t) {
    const auto wv = S::bcast(wk[t]);
    const T* pt = in + off[t];
    for (int i = 0; i < RH; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] = S::fma(wv, S::load(pt + i * row_step + v * L), acc[i][v]);
  }
  // (Constant indices throughout, so the tile stays in registers.)
  for (int i = 0; i < RH; ++i) {
    if (i >= rows) break;
    for (int v = 0; v < NV; ++v) {
      const int64_t c0 = int64_t(v) * L;
      T* d = y + i * Wo + c0;
      if (c0 + L <= cols) {
        S::store(d, acc[i][v]);
      } else if (c0 < cols) {
        const int n = static_cast<int>(cols - c0);
        if (S::kFastStoreN) {
          S::store_n(d, acc[i][v], n);
        } else {
          T tmp[L];
          S::store(tmp, acc[i][v]);
          std::memcpy(d, tmp, sizeof(T) * n);
        }
      }
    }
  }
}

// One output plane of RH-row x NV-vector tiles (the last row block may run
// past Ho into padded rows that exist in the scratch; only Ho rows store).
template <typename T, int NV, int RH>
void forward_plane(const FwdProb<T>& p, const PhasedGeom& g, const T* in, const int64_t* off,
                   const T* wk, int64_t ntaps, T bias, T* y) {
  constexpr int64_t W = int64_t(NV) * Simd<T>::L;
  for (int64_t ho = 0; ho < p.Ho; ho += RH)
    for (int64_t wo = 0; wo < p.Wo; wo += W)
      forward_tile<T, NV, RH>(in + ho * p.sh * g.Wj + wo, p.sh * g.Wj, off, wk, ntaps, bias,
                              y + ho * p.Wo + wo, p.Wo, std::min<int64_t>(RH, p.Ho - ho),
                              std::min(W, p.Wo - wo));
}

// Tile width in vectors for rows of Wo outputs: as wide as the row allows
// (up to 8), the rest of the accumulators spent on more rows.
template <typename T>
int tile_vectors(int64_t Wo) {
  const int64_t nvec = ceil_div64(Wo, Simd<T>::L);
  return nvec >= 8 ? 8 : nvec >= 4 ? 4 : nvec >= 2 ? 2 : 1;
}

template <typename T>
using PlaneFn = void (*)(const FwdProb<T>&, const PhasedGeom&, const T*, const int64_t*, const T*,
                         int64_t, T, T*);

// forward_plane<T, NV, RH> for RH = 1 .. kDwAccMax / NV.
template <typename T, int NV>
PlaneFn<T> plane_fn_rows(int rh) {
  PlaneFn<T> fn = nullptr;
  with_rows<kDwAccMax / NV>(rh, [&](auto r) { fn = forward_plane<T, NV, r()>; });
  return fn;
}

template <typename T>
PlaneFn<T> plane_fn(int nv, int rh) {
  switch (nv) {
    case 8: return plane_fn_rows<T, 8>(rh);
    case 4: return plane_fn_rows<T, 4>(rh);
    case 2: return plane_fn_rows<T, 2>(rh);
    default: return plane_fn_rows<T, 1>(rh);
  }
}

// Rows per tile for Ho output rows: all of them if they fit, else between
// half and all of the rows that fit, the one computing the fewest rows past Ho (14 rows of 14x14 planes in
// one block, not 16 in four), more rows on ties.
inline int tile_rows(int nv, int64_t Ho) {
  const int most = kDwAccMax / nv;
  if (Ho <= most) return static_cast<int>(Ho);  // one block (4x4 planes: 4 rows, not 7)
  int best = most;
  for (int r = most; r >= std::max(1, most / 2); --r)
    if (round_up64(Ho, r) < round_up64(Ho, best)) best = r;
  return best;
}

// The weights of problem p per output channel, taps (c, r, s) contiguous.
template <typename T>
std::vector<T> taps_per_channel(const FwdProb<T>& p) {
  const int64_t Kg = p.Kg(), Cg = p.Cg();
  std::vector<T> wk(p.Co * Cg * p.R * p.S);
  T* d = wk.data();
  for (int64_t g = 0; g < p.G; ++g)
    for (int64_t k = 0; k < Kg; ++k)
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t r = 0; r < p.R; ++r)
          for (int64_t s = 0; s < p.S; ++s) *d++ = p.w(g, k, c, r, s);
  return wk;
}

// What a forward problem's tasks share: the scratch geometry, where each tap
// reads, the weights per output channel and the tile shape.
template <typename T>
struct ForwardPlan {
  FwdProb<T> p;
  PhasedGeom g;
  std::vector<int64_t> off;
  std::vector<T> wk;
  PlaneFn<T> plane;
  int64_t ntaps;

  explicit ForwardPlan(const FwdProb<T>& prob) : p(prob) {
    const int nv = tile_vectors<T>(p.Wo);
    const int rh = tile_rows(nv, p.Ho);
    const int64_t W = int64_t(nv) * Simd<T>::L;
    g = phased_geom(p, round_up64(p.Ho, rh), round_up64(p.Wo, W));
    off = tap_offsets(p, g);
    wk = taps_per_channel(p);
    plane = plane_fn<T>(nv, rh);
    ntaps = p.Cg() * p.R * p.S;
  }
  // One task: pads group gg of image n into buf (a PhasedPlanes of Cg
  // planes) and writes the group's Kg output planes [Ho, Wo] from out on.
  void run(int64_t n, int64_t gg, T* buf, T* out) const {
    const int64_t Cg = p.Cg(), Kg = p.Kg();
    for (int64_t c = 0; c < Cg; ++c)
      copy_phased(p, g, p.x + ((n * p.Ci) + gg * Cg + c) * p.Hi * p.Wi, buf + c * g.plane);
    for (int64_t k = 0; k < Kg; ++k) {
      const int64_t co = gg * Kg + k;
      plane(p, g, buf, off.data(), wk.data() + co * ntaps, ntaps, p.b ? p.b[co] : T(0),
            out + k * p.Ho * p.Wo);
    }
  }
};

// Forward problem: one task per (image, group) pads the group's input
// planes once and computes all of its output channels.
template <typename T>
void depthwise_forward(const FwdProb<T>& p) {
  const ForwardPlan<T> plan(p);
#pragma omp parallel
  {
    PhasedPlanes<T> buf(plan.g, p.Cg());
#pragma omp for schedule(static)
    for (int64_t t = 0; t < p.N * p.G; ++t) {
      const int64_t n = t / p.G, gg = t % p.G;
      plan.run(n, gg, buf.data(), p.y + (n * p.Co + gg * p.Kg()) * p.Ho * p.Wo);
    }
  }
}

// Row phase fh's outputs into dx: its stride_w column phases (f[0..sw),
// planes [no_h][no_w] at tmp + f.tmp, or zeros where f has no plan) merged
// into every stride_h-th row. Stride 2 interleaves two vectors at a time.
template <typename T, typename Phase>
void scatter_phase_rows(const Conv2dShape& s, const Phase* f, const T* tmp, int64_t Cg, T* dxg) {
  using S = Simd<T>;
  const int64_t sw = s.stride_w, rows = f[0].ah.no, o0h = f[0].ah.o0;
  auto src = [&](const Phase& p, int64_t c, int64_t a) {
    return p.plan ? tmp + p.tmp + (c * rows + a) * p.aw.no : nullptr;
  };
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t a = 0; a < rows; ++a) {
      T* d = dxg + c * s.H * s.W + (o0h + a * s.stride_h) * s.W;
      int64_t done = 0;  // outputs b < done of both column phases written
      if (sw == 2 && f[0].aw.no > 0 && f[1].aw.no > 0) {
        const bool swap = f[0].aw.o0 == 1;  // (the phase of even columns first)
        const Phase& pe = f[swap ? 1 : 0];
        const Phase& po = f[swap ? 0 : 1];
        const T* e = src(pe, c, a);
        const T* o = src(po, c, a);
        const int64_t both = std::min(pe.aw.no, po.aw.no);
        for (; done + S::L <= both; done += S::L)
          S::interleave2_store(d + 2 * done, e ? S::load(e + done) : S::zero(),
                               o ? S::load(o + done) : S::zero());
      }
      for (int64_t fw = 0; fw < sw; ++fw) {
        const Phase& p = f[fw];
        const T* v = src(p, c, a);
        for (int64_t b = done; b < p.aw.no; ++b) d[p.aw.o0 + b * sw] = v ? v[b] : T(0);
      }
    }
}

// The input gradient. Stride 1: one forward problem. Strided: problem.h's
// stride phases (each a stride-1 problem over dy with a sub-kernel), but
// solved plane by plane: a task runs every phase of one (image, group) into
// small dense planes and scatters them into dx while all of it is in cache
// (phase by phase over the whole batch streamed dy and dx once per phase,
// 2x slower at stride 2).
template <typename T>
void depthwise_backward_input(const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  if (s.stride_h == 1 && s.stride_w == 1) {
    depthwise_forward(backward_input_problem(s, dy, w, dx));
    return;
  }
  // The phases, [fh][fw]; those no tap reaches (no plan) give zeros.
  struct Phase {
    PhaseAxis ah, aw;
    std::unique_ptr<ForwardPlan<T>> plan;
    int64_t tmp;  // where its planes start in a task's scratch
  };
  const int64_t Cg = s.c_per_group(), Kg = s.k_per_group();  // (the phases swap them)
  std::vector<Phase> phases;
  int64_t tmp_size = 0;
  for (int64_t fh = 0; fh < s.stride_h; ++fh)
    for (int64_t fw = 0; fw < s.stride_w; ++fw) {
      Phase f{phase_axis(s.H, s.stride_h, s.pad_h, s.dil_h, s.R, fh),
              phase_axis(s.W, s.stride_w, s.pad_w, s.dil_w, s.S, fw), nullptr, tmp_size};
      if (f.ah.no > 0 && f.aw.no > 0 && f.ah.nt > 0 && f.aw.nt > 0 && s.P > 0 && s.Q > 0) {
        f.plan = std::make_unique<ForwardPlan<T>>(
            backward_input_phase_problem(s, f.ah, f.aw, dy, w, static_cast<T*>(nullptr)));
        tmp_size += Cg * f.ah.no * f.aw.no;
      }
      phases.push_back(std::move(f));
    }
#pragma omp parallel
  {
    std::vector<std::unique_ptr<PhasedPlanes<T>>> bufs;
    for (const Phase& f : phases)
      bufs.push_back(f.plan ? std::make_unique<PhasedPlanes<T>>(f.plan->g, Kg) : nullptr);
    Buffer<T> tmp(tmp_size + 1);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < s.N * s.groups; ++t) {
      const int64_t n = t / s.groups, gg = t % s.groups;
      for (size_t i = 0; i < phases.size(); ++i)
        if (phases[i].plan) phases[i].plan->run(n, gg, bufs[i]->data(), tmp.data() + phases[i].tmp);
      T* dxg = dx + (n * s.C + gg * Cg) * s.H * s.W;
      for (int64_t fh = 0; fh < s.stride_h; ++fh)
        scatter_phase_rows(s, &phases[fh * s.stride_w], tmp.data(), Cg, dxg);
    }
  }
}

// Weight gradient of up to kTapBlock taps: out[t] += sum over the plane of
// dy * (the input row shifted by tap t). dy rows end in a masked tail, so
// the shifted reads past Wo meet zeros.
template <typename T, int TB>
void wgrad_taps(int64_t row_step, const T* in, const int64_t* off,
                const T* dy, int64_t Ho, int64_t Wo, T* out) {
  using S = Simd<T>;
  constexpr int L = S::L;
  typename S::V acc[TB];
  for (int t = 0; t < TB; ++t) acc[t] = S::zero();
  for (int64_t ho = 0; ho < Ho; ++ho) {
    const T* row = in + ho * row_step;
    const T* dyr = dy + ho * Wo;
    int64_t j = 0;
    for (; j + L <= Wo; j += L) {
      const auto d = S::load(dyr + j);
      for (int t = 0; t < TB; ++t) acc[t] = S::fma(d, S::load(row + off[t] + j), acc[t]);
    }
    if (j < Wo) {
      const auto d = S::load_n(dyr + j, static_cast<int>(Wo - j));
      for (int t = 0; t < TB; ++t) acc[t] = S::fma(d, S::load(row + off[t] + j), acc[t]);
    }
  }
  for (int t = 0; t < TB; ++t) out[t] += S::hsum(acc[t]);
}

template <typename T>
void depthwise_backward_weight(const Conv2dShape& s, const T* dy, const T* x, T* dw) {
  const FwdProb<T> p = forward_problem<T>(s, x, nullptr, nullptr, nullptr);
  constexpr int64_t L = Simd<T>::L;
  // Columns past Wo up to whole vectors are read (times zero dy).
  const PhasedGeom g = phased_geom(p, p.Ho, round_up64(p.Wo, L));
  const std::vector<int64_t> off = tap_offsets(p, g);
  const int64_t Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S;
  // One task per group: its dW block summed over the batch in image order.
#pragma omp parallel
  {
    PhasedPlanes<T> buf(g, Cg);
    std::vector<T> sum(Kg * Cg * RS);
#pragma omp for schedule(static)
    for (int64_t gg = 0; gg < p.G; ++gg) {
      std::fill(sum.begin(), sum.end(), T(0));
      for (int64_t n = 0; n < p.N; ++n) {
        for (int64_t c = 0; c < Cg; ++c)
          copy_phased(p, g, x + ((n * p.Ci) + gg * Cg + c) * p.Hi * p.Wi, buf.data() + c * g.plane);
        for (int64_t k = 0; k < Kg; ++k) {
          const T* dyk = dy + (n * p.Co + gg * Kg + k) * p.Ho * p.Wo;
          for (int64_t t0 = 0; t0 < Cg * RS; t0 += kTapBlock) {
            const int tb = static_cast<int>(std::min<int64_t>(kTapBlock, Cg * RS - t0));
            with_rows<kTapBlock>(tb, [&](auto n) {
              wgrad_taps<T, n()>(p.sh * g.Wj, buf.data(), off.data() + t0, dyk, p.Ho, p.Wo,
                                 sum.data() + k * Cg * RS + t0);
            });
          }
        }
      }
      std::copy(sum.begin(), sum.end(), dw + gg * Kg * Cg * RS);
    }
  }
}

}  // namespace

// Each pass takes the channel-vectorised layout where it applies
// (depthwise_cvec.h), else this file's row layout.
template <typename T>
void conv2d_forward_depthwise(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y) {
  if (depthwise_cvec_applies(s, Simd<T>::L))
    depthwise_cvec_forward(s, x, w, b, y);
  else
    depthwise_forward(forward_problem(s, x, w, b, y));
}

template <typename T>
void conv2d_backward_input_depthwise(const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  if (depthwise_cvec_applies(s, Simd<T>::L))
    depthwise_cvec_backward_input(s, dy, w, dx);
  else
    depthwise_backward_input(s, dy, w, dx);
}

template <typename T>
void conv2d_backward_weight_depthwise(const Conv2dShape& s, const T* dy, const T* x, T* dw) {
  if (depthwise_cvec_applies(s, Simd<T>::L))
    depthwise_cvec_backward_weight(s, dy, x, dw);
  else
    depthwise_backward_weight(s, dy, x, dw);
}

CB_INSTANTIATE_CONV2D_CPU_ALGO(depthwise)

}  // namespace CB_CPU_NS
}  // namespace convbench
