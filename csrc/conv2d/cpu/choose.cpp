// The CPU heuristic: which algorithm and engine run a pass of a layer when
// the user asks for "auto" (or names an algorithm but not its engine).
// Compiled per ISA build, since the vector width and register tiles move
// the crossovers. (The autotuner's candidates are the engine table's rows:
// conv2d_cpu.cpp.)
#include <cstdint>
#include <vector>

#include "common/shapes.h"
#include "conv2d/conv2d.h"
#include "conv2d/cpu/conv2d_cpu_kernels.h"
#include "conv2d/cpu/engines.h"
#include "conv2d/cpu/problem.h"
#include "common/cpu/simd.h"
#include "conv2d/cpu/tiles.h"

namespace convbench {
namespace CB_CPU_NS {

namespace {

constexpr int kFlat = cpu_engine::kDirectFlat, kKvec = cpu_engine::kDirectKvec;

// The phase of one axis with the most work (strided input gradients).
inline PhaseAxis main_phase(int64_t out, int64_t st, int64_t pad, int64_t dil, int64_t R) {
  PhaseAxis best = phase_axis(out, st, pad, dil, R, 0);
  for (int64_t phi = 1; phi < st; ++phi) {
    const PhaseAxis a = phase_axis(out, st, pad, dil, R, phi);
    if (a.nt * a.no > best.nt * best.no) best = a;
  }
  return best;
}

// The forward problem an engine solves for this pass (for a strided input
// gradient, its main phase: see backward_input_by_phases).
template <typename T>
FwdProb<T> problem_of(Conv2dPass pass, const Conv2dShape& s) {
  if (pass != Conv2dPass::BackwardInput)
    return forward_problem<T>(s, nullptr, nullptr, nullptr, nullptr);
  if (s.stride_h == 1 && s.stride_w == 1) return backward_input_problem<T>(s, nullptr, nullptr, nullptr);
  const PhaseAxis ah = main_phase(s.H, s.stride_h, s.pad_h, s.dil_h, s.R);
  const PhaseAxis aw = main_phase(s.W, s.stride_w, s.pad_w, s.dil_w, s.S);
  return backward_input_phase_problem<T>(s, ah, aw, nullptr, nullptr, nullptr);
}

// Positions the flat engine computes per useful one: padding columns of the
// flattened rows and the last tile's tail.
template <typename T>
double flat_waste(const FwdProb<T>& p) {
  const PadGeom g = pad_geom(p);
  const int64_t W = flat_nv(kFlatMR) * Simd<T>::L;
  return static_cast<double>(ceil_div64(g.J, W) * W) / static_cast<double>(p.Ho * p.Wo);
}

// Column taps the flat engine multiplies per one that reads data: it skips
// kernel rows that read only padding, never columns, while kvec skips both.
// Heavily padded problems (the full padding of input gradients: 12x12 from
// 8x8 by 5x5 reads data in 40 of its 60 column taps) favour kvec even where
// the flattened grid itself wastes nothing.
template <typename T>
double column_waste(const FwdProb<T>& p) {
  const int64_t lo = p.pw, hi = p.pw + (p.Wi - 1) * p.lw;
  int64_t valid = 0;
  for (int64_t wo = 0; wo < p.Wo; ++wo)
    for (int64_t s = 0; s < p.S; ++s) {
      const int64_t b = wo * p.sw + s * p.dw;
      valid += b >= lo && b <= hi && (b - lo) % p.lw == 0;
    }
  return valid > 0 ? static_cast<double>(p.Wo * p.S) / static_cast<double>(valid) : 1.0;
}

// Output positions a Winograd F(m x m) engine computes per useful one
// (whole tiles cover the output).
template <typename T>
double tile_waste(const FwdProb<T>& p, int64_t m) {
  return static_cast<double>(round_up64(p.Ho, m) * round_up64(p.Wo, m)) /
         static_cast<double>(p.Ho * p.Wo);
}

// The rules below were fitted to side-by-side runs of every engine on the
// 35 homework layers, each pass, on Zen 4 (2 cores) with AVX-512 and with
// AVX2 (tools/cpu_engine_sweep.py): how close auto comes to the fastest
// engine is in bench/results/cpu-2026-11-30-*/engines.json and README.md.
constexpr bool kRegs32 = kVecRegs == 32;

// Forward problems (forward pass, input gradient), 3x3 stride 1: Winograd
// once both channel counts reach 16 (below, its transforms cost more than
// the products saved; 16 -> 16 from 10x10 outputs up: at 8x8 direct still
// wins the input gradient by 1.1x, at 10x10 and 12x12 Winograd wins both
// passes by 1.1-1.2x since its outputs leave in plane order) and the batch has
// enough tiles to amortise transforming the weights (each (k, c) pair is
// transformed once per call, whatever the batch: ResNet's 256 channels at
// 14x14, batch 1, run at 0.5x of direct). F(4x4) where its whole tiles
// waste no more than F(2x2)'s (7x7 outputs, the full-padding input
// gradients) or with 64+ channels on both sides; F(2x2) otherwise (13x13
// outputs: F(4x4) computes 16x16).
constexpr int64_t kWinogradMinTiles = 160;

template <typename T>
int64_t batch_tiles(const FwdProb<T>& p, int64_t m) {
  return p.N * ceil_div64(p.Ho, m) * ceil_div64(p.Wo, m);
}

template <typename T>
bool winograd_pays(const FwdProb<T>& p) {
  const int64_t Cg = p.Cg(), Kg = p.Kg();
  return Cg >= 16 && Kg >= 16 && (Cg * Kg >= 512 || p.Ho * p.Wo >= 100) &&
         batch_tiles(p, 2) >= kWinogradMinTiles;
}

template <typename T>
int winograd_engine(const FwdProb<T>& p) {
  const bool f4 = batch_tiles(p, 4) >= kWinogradMinTiles &&
                  (tile_waste(p, 4) <= 1.05 * tile_waste(p, 2) || (p.Cg() >= 64 && p.Kg() >= 64));
  return f4 ? cpu_engine::kWinogradF4 : cpu_engine::kWinogradF2;
}

// Direct's engine for a forward problem. Flat wins while it wastes little
// (its flattened grid and its padding column taps): its tiles need no
// transposes. Channel-vectorised (kvec) wins past ~15% waste (small
// outputs, heavy padding) with two or more vectors of output channels; with
// a single vector only on 32 registers (tiles of 14 positions) and past 20%
// waste; and on strided problems.
template <typename T>
int direct_engine(const FwdProb<T>& p) {
  constexpr int64_t L = Simd<T>::L;
  const int64_t Kg = p.Kg();
  // (kvec steps over the taps it keeps one by one, then over the channels:
  // with few input channels those steps are short, and flat's single run
  // over (c, r, s) wins despite the padding it multiplies.)
  const double waste = flat_waste(p) * (p.Cg() >= 16 ? column_waste(p) : 1.0);
  if (Kg >= 2 * L && waste >= 1.15) return kKvec;
  if (Kg >= L && Kg % L == 0 && kRegs32 && waste >= 1.2) return kKvec;
  if (p.sw != 1 && Kg >= L) return kKvec;
  return kFlat;
}

// Direct's engine for the weight gradient. On 32 registers kvec's outer
// products win from one vector of output channels up (3+ input channels);
// on 16, from two vectors with 8+ input channels, or one vector on small
// outputs (waste >= 1.25).
template <typename T>
int direct_wgrad_engine(const Conv2dShape& s) {
  constexpr int64_t L = Simd<T>::L;
  const FwdProb<T> p = forward_problem<T>(s, nullptr, nullptr, nullptr, nullptr);
  const int64_t Kg = p.Kg(), Cg = p.Cg();
  if (kRegs32) return Kg >= L && Cg >= 3 ? kKvec : kFlat;
  if (Kg >= 2 * L && Cg >= 8) return kKvec;
  return Kg >= L && Kg % L == 0 && Cg >= 8 && flat_waste(p) >= 1.25 ? kKvec : kFlat;
}

// Im2colGemm wins the weight gradient where Direct's flat engine is
// structurally weak:
//  * column stride > 1: Direct gathers lane by lane, im2col pays the
//    strided access once;
//  * when one image's padded planes plus dy exceed Direct's L2 chunk:
//    Direct then reduces over a single image per tile (short dot products,
//    per-tile overhead), the GEMM folds several images into L (e.g. 64->128
//    at 15x15: 0.84x vs 0.62x of torch).
template <typename T>
bool wgrad_prefers_im2col(const Conv2dShape& s) {
  if (s.stride_w != 1) return true;
  const FwdProb<T> p = forward_problem<T>(s, nullptr, nullptr, nullptr, nullptr);
  const PadGeom g = pad_geom(p);
  constexpr int64_t L = Simd<T>::L;
  const int64_t per_image = (s.C * g.plane + s.K * round_up64(g.J, L)) * int64_t(sizeof(T));
  return s.N > 1 && 2 * per_image > kWgradChunkBytes;
}

// 1x1 layers: Im2colGemm's pointwise GEMM once the reduction (input channels
// forward, output channels for the input gradient) has 24+ steps; forward
// also needs 4+ column strips over the batch (at batch 1 on 7x7, kvec's
// channel vectors win the forward). Measured on MobileNetV2's and
// ResNet-50's 1x1 layers: bench/results/cpu-2026-12-08-depthwise.
template <typename T>
bool pointwise_pays(Conv2dPass pass, const Conv2dShape& s) {
  if (!conv2d_pointwise_applies(pass, s)) return false;
  const int64_t Cg = s.c_per_group(), Kg = s.k_per_group();
  // The weight gradient transposes both operands per slice, which pays
  // with wide channels on both sides or on large planes (160 -> 960 at 4x4
  // ran 1.4x slower than Direct).
  if (pass == Conv2dPass::BackwardWeight)
    return (Cg >= 192 && Kg >= 128) || (Cg >= 64 && Kg >= 64 && s.P * s.Q >= 784);
  if (pass == Conv2dPass::BackwardInput) return Kg >= 24;
  constexpr int64_t NR = int64_t(flat_nv(kFlatMR)) * Simd<T>::L;
  return Cg >= 24 && s.N * s.P * s.Q >= 4 * NR;
}

// Depthwise layers (one input channel per group, any multiplier) run
// Direct's depthwise engine in every pass: the other engines tile output
// channels within a group, which these groups cannot fill (1.4-2.7x slower
// forward and input gradient, up to 8x the weight gradient with auto's old
// im2col pick: bench/results/cpu-2026-12-08-depthwise).
template <typename T>
int engine_for(Conv2dAlgo algo, Conv2dPass pass, const Conv2dShape& s) {
  if (algo == Conv2dAlgo::Winograd) return winograd_engine(problem_of<T>(pass, s));
  if (algo != Conv2dAlgo::Direct)
    return pointwise_pays<T>(pass, s) ? cpu_engine::kPointwiseGemm : cpu_engine::kIm2colGemm;
  if (conv2d_depthwise_applies(pass, s)) return cpu_engine::kDirectDepthwise;
  return pass == Conv2dPass::BackwardWeight ? direct_wgrad_engine<T>(s)
                                            : direct_engine(problem_of<T>(pass, s));
}

template <typename T>
Conv2dAlgo algo_for(Conv2dPass pass, const Conv2dShape& s) {
  if (conv2d_depthwise_applies(pass, s)) return Conv2dAlgo::Direct;
  if (pointwise_pays<T>(pass, s)) return Conv2dAlgo::Im2colGemm;
  if (pass == Conv2dPass::BackwardWeight)  // (kvec has no per-image chunking limit)
    return direct_wgrad_engine<T>(s) == kFlat && wgrad_prefers_im2col<T>(s)
               ? Conv2dAlgo::Im2colGemm
               : Conv2dAlgo::Direct;
  if (conv2d_winograd_applies(pass, s) && winograd_pays(problem_of<T>(pass, s)))
    return Conv2dAlgo::Winograd;
  return Conv2dAlgo::Direct;
}

template <typename T>
Conv2dConfig choose(Conv2dPass pass, Conv2dAlgo algo, const Conv2dShape& s) {
  if (algo == Conv2dAlgo::Auto) algo = algo_for<T>(pass, s);
  // Winograd has no grad-weight form: a layer asked to use it still trains,
  // its weight gradient taking Auto's choice.
  if (algo == Conv2dAlgo::Winograd && pass == Conv2dPass::BackwardWeight)
    algo = algo_for<T>(pass, s);
  return {algo, engine_for<T>(algo, pass, s)};
}

}  // namespace

Conv2dConfig conv2d_choose_config(Conv2dPass pass, DType dtype, Conv2dAlgo algo,
                                  const Conv2dShape& s) {
  return dtype == DType::Float64 ? choose<double>(pass, algo, s) : choose<float>(pass, algo, s);
}

}  // namespace CB_CPU_NS
}  // namespace convbench
