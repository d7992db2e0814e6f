// The CPU heuristic: which algorithm and engine run a pass of a layer when
// the user asks for "auto" (or names an algorithm but not its engine), and
// which candidates the autotuner times. Compiled per ISA variant, since the
// vector width and register tiles move the crossovers.
#include <cstdint>
#include <vector>

#include "common/shapes.h"
#include "conv2d/conv2d.h"
#include "conv2d/cpu/conv2d_cpu_kernels.h"
#include "conv2d/cpu/problem.h"
#include "conv2d/cpu/simd.h"
#include "conv2d/cpu/tiles.h"

namespace convbench {
namespace CB_CPU_NS {

namespace {

constexpr int kFlat = 1, kKvec = 2;

template <typename T>
FwdProb<T> problem_of(Conv2dPass pass, const Conv2dShape& s) {
  return pass == Conv2dPass::BackwardInput
             ? backward_input_problem<T>(s, nullptr, nullptr, nullptr)
             : forward_problem<T>(s, nullptr, nullptr, nullptr, nullptr);
}

// Positions the flat engine computes per useful one: padding columns of the
// flattened rows and the last tile's tail.
template <typename T>
double flat_waste(const FwdProb<T>& p) {
  const PadGeom g = pad_geom(p);
  const int64_t W = flat_nv(kFlatMR) * Simd<T>::L;
  return static_cast<double>(ceil_div64(g.J, W) * W) / static_cast<double>(p.Ho * p.Wo);
}

// Direct's engine for a forward problem (forward pass or input gradient).
// Flat wins while its flattened grid wastes little: its tiles need no
// transposes. Past ~15% waste (small outputs, strides) the channel-
// vectorised engine wins when its channel vectors are mostly full
// (measured: 7x7..15x15 outputs with 16..128 channels, 1.1-1.6x).
template <typename T>
int direct_engine(const FwdProb<T>& p) {
  constexpr int64_t L = Simd<T>::L;
  const int64_t Kg = p.Kg();
  const bool full = Kg % L == 0 || Kg >= 2 * L;
  return Kg >= L && full && (flat_waste(p) >= 1.15 || p.sw != 1) ? kKvec : kFlat;
}

// Direct's engine for the weight gradient: the kvec engine needs >= 8 input
// channels (tiles hold (r, s, c) rows; measured 1.05-2x over the flattened
// engine there). A single vector of output channels pays off later: 16->8
// 7x7 at 26x26 (waste 1.32) 0.65 -> 0.77x of torch, 5x5 at 26x26 / 30x30
// (1.17-1.19) no better.
template <typename T>
int direct_wgrad_engine(const Conv2dShape& s) {
  constexpr int64_t L = Simd<T>::L;
  const FwdProb<T> p = forward_problem<T>(s, nullptr, nullptr, nullptr, nullptr);
  const int64_t Kg = p.Kg();
  const double min_waste = Kg >= 2 * L ? 1.15 : 1.25;
  return Kg >= L && Kg % L == 0 && p.Cg() >= 8 && (flat_waste(p) >= min_waste || p.sw != 1)
             ? kKvec
             : kFlat;
}

// Im2colGemm wins the weight gradient where Direct is structurally weak:
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

template <typename T>
int variant_for(Conv2dAlgo algo, Conv2dPass pass, const Conv2dShape& s) {
  if (algo == Conv2dAlgo::Winograd) return 2;  // F(4x4, 3x3)
  if (algo != Conv2dAlgo::Direct) return 1;
  return pass == Conv2dPass::BackwardWeight ? direct_wgrad_engine<T>(s)
                                            : direct_engine(problem_of<T>(pass, s));
}

template <typename T>
Conv2dAlgo algo_for(Conv2dPass pass, const Conv2dShape& s) {
  switch (pass) {
    case Conv2dPass::Forward:
      // Winograd's 2.25x fewer products beat its transforms only with many
      // channels on both sides (64->128 at 15x15: 1.14-1.38x over Direct;
      // 32->64: a tie; below that Direct wins).
      if (conv2d_winograd_applies(pass, s) && s.c_per_group() >= 64 && s.k_per_group() >= 64)
        return Conv2dAlgo::Winograd;
      return s.stride_w == 1 ? Conv2dAlgo::Direct : Conv2dAlgo::Im2colGemm;
    case Conv2dPass::BackwardInput:  // stride-1 problem over zero-inserted dy
      return Conv2dAlgo::Direct;
    default:
      return wgrad_prefers_im2col<T>(s) ? Conv2dAlgo::Im2colGemm : Conv2dAlgo::Direct;
  }
}

template <typename T>
Conv2dConfig choose(Conv2dPass pass, Conv2dAlgo algo, const Conv2dShape& s) {
  if (algo == Conv2dAlgo::Auto) algo = algo_for<T>(pass, s);
  // Winograd has no grad-weight form: a layer asked to use it still trains,
  // its weight gradient taking Auto's choice.
  if (algo == Conv2dAlgo::Winograd && pass == Conv2dPass::BackwardWeight)
    algo = algo_for<T>(pass, s);
  return {algo, variant_for<T>(algo, pass, s)};
}

}  // namespace

Conv2dConfig conv2d_choose_config(Conv2dPass pass, DType dtype, Conv2dAlgo algo,
                                  const Conv2dShape& s) {
  return dtype == DType::Float64 ? choose<double>(pass, algo, s) : choose<float>(pass, algo, s);
}

std::vector<Conv2dConfig> conv2d_candidate_configs(Conv2dPass pass, DType dtype,
                                                   const Conv2dShape& s) {
  std::vector<Conv2dConfig> out{{Conv2dAlgo::Direct, kFlat},
                                {Conv2dAlgo::Direct, kKvec},
                                {Conv2dAlgo::Im2colGemm, 1}};
  if (conv2d_winograd_applies(pass, s)) {
    out.push_back({Conv2dAlgo::Winograd, 1});
    out.push_back({Conv2dAlgo::Winograd, 2});
  }
  return out;
}

}  // namespace CB_CPU_NS
}  // namespace convbench
