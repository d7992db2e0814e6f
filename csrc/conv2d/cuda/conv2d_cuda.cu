// CUDA conv2d dispatch: device and stream, empty problems, dtype -> element
// type, algorithm -> kernel, and the Auto choice by shape.
#include <algorithm>
#include <string>

#include "common/check.h"
#include "conv2d/conv2d.h"
#include "conv2d/cuda/conv2d_cuda_common.cuh"

namespace convbench {

namespace {

using namespace cuda_conv;

// Forced tilings, by engine (engine v is entry v - 1; 0 picks by shape):
// the implicit GEMM's output-pixel tile rows (forward, grad-input), its
// split-K slices (grad-weight), the fused kernel's channels per thread.
constexpr int kTileRows[] = {128, 64, 32};
constexpr int kSplits[] = {1, 4, 16, 64};
constexpr int kFusedChannels[] = {1, 2, 4, 8, 16, 32};

template <size_t N>
int variant_count(const int (&)[N]) { return int(N); }

// The table an engine of (algorithm, pass) indexes; nullptr where it has none.
// (Fused's grad-weight is the implicit GEMM's, so it takes the same splits.)
const int* variant_table(Conv2dAlgo algo, Conv2dPass pass, int* count) {
  *count = 0;
  if (algo == Conv2dAlgo::Direct || algo == Conv2dAlgo::Auto) return nullptr;
  if (pass == Conv2dPass::BackwardWeight) {
    *count = variant_count(kSplits);
    return kSplits;
  }
  if (algo == Conv2dAlgo::ImplicitGemm) {
    *count = variant_count(kTileRows);
    return kTileRows;
  }
  *count = variant_count(kFusedChannels);
  return kFusedChannels;
}

// The tiling an engine sets (0 for engine 0); throws for one that does not exist.
int tiling_of(Conv2dAlgo algo, Conv2dPass pass, int engine) {
  if (engine == 0) return 0;
  int count = 0;
  const int* table = variant_table(algo, pass, &count);
  CB_CHECK(engine > 0 && engine <= count, "conv2d: CUDA algorithm '", conv2d_algo_name(algo),
           "' has no engine ", engine, " for this pass (", count, " engines)");
  return table[engine - 1];
}

Conv2dAlgo resolve(Conv2dConfig cfg, Conv2dPass pass, DType dtype, const Conv2dShape& s) {
  const Conv2dAlgo algo = cfg.algo;
  CB_CHECK(algo != Conv2dAlgo::Auto || cfg.engine == 0,
           "conv2d: an engine needs an algorithm, not 'auto'");
  if (algo == Conv2dAlgo::Auto) return conv2d_choose_algo_cuda(pass, dtype, s);
  CB_CHECK(algo == Conv2dAlgo::Direct || algo == Conv2dAlgo::ImplicitGemm ||
               algo == Conv2dAlgo::Fused,
           "conv2d: algorithm '", conv2d_algo_name(algo), "' is not implemented on CUDA");
  CB_CHECK(algo == Conv2dAlgo::Direct || fits_int32(s), "conv2d: algorithm '", conv2d_algo_name(algo),
           "' indexes with 32 bits and needs every tensor under 2^31 elements, at most "
           "4096 groups and 2^20 channels; use algo='direct' (64-bit) or 'auto'");
  tiling_of(algo, pass, cfg.engine);  // (checks the engine exists)
  return algo;
}

size_t acc_bytes(DType dtype) { return dtype == DType::Float64 ? 8 : 4; }

// What every pass's entry point does around its kernel: resolves the
// algorithm and its tiling (checked even when there is no work), returns for
// an empty result, zero-fills a gradient that no output pixel reaches (an
// empty reduction; the forward's result is then empty itself), and otherwise
// runs f(a, b, result, algorithm, tiling, stream) with the pass's two operands
// and its result as T pointers, on the device and the caller's stream
// (torch's current one, never the default stream).
template <typename F>
void run_pass(Conv2dConfig cfg, Conv2dPass pass, DType dtype, const Conv2dShape& s, const void* a,
              const void* b, void* result, int64_t result_numel, int device, void* stream,
              F&& f) {
  const Conv2dAlgo algo = resolve(cfg, pass, dtype, s);
  const int tiling = tiling_of(algo, pass, cfg.engine);
  if (result_numel == 0) return;
  dispatch_on_device(dtype, "conv2d", device, stream, [&](auto tag, cudaStream_t st) {
    using T = decltype(tag);
    T* out = static_cast<T*>(result);
    if (s.output_numel() == 0) {
      CB_CUDA_CHECK(cudaMemsetAsync(out, 0, static_cast<size_t>(result_numel) * sizeof(T), st));
      return;
    }
    f(static_cast<const T*>(a), static_cast<const T*>(b), out, algo, tiling, st);
  });
}

}  // namespace

std::vector<Conv2dAlgo> conv2d_algos_cuda() {
  return {Conv2dAlgo::Direct, Conv2dAlgo::ImplicitGemm, Conv2dAlgo::Fused};
}

std::string conv2d_engine_name_cuda(Conv2dAlgo algo, Conv2dPass pass, int engine) {
  const int tiling = tiling_of(algo, pass, engine);
  if (engine == 0) return "";
  if (pass == Conv2dPass::BackwardWeight) return "split" + std::to_string(tiling);
  return (algo == Conv2dAlgo::ImplicitGemm ? "bm" : "ch") + std::to_string(tiling);
}

// Every kernel configuration that runs this pass and shape, each once:
// Direct; the implicit GEMM's tile heights, or its split-K counts that differ
// after clipping to the k-tiles; the fused kernel's channel chunks up to the
// layer's channel count (rounded up to a power of two) whose taps fit in
// shared memory. Fused's grad-weight is the implicit GEMM's: not listed twice.
std::vector<Conv2dConfig> conv2d_candidates_cuda(Conv2dPass pass, DType dtype,
                                                 const Conv2dShape& s) {
  std::vector<Conv2dConfig> out{{Conv2dAlgo::Direct, 0}};
  if (!fits_int32(s)) return out;
  if (pass == Conv2dPass::BackwardWeight) {
    std::vector<int> seen;
    for (int v = 1; v <= variant_count(kSplits); ++v) {
      int splits = 0;
      dispatch_cuda_dtype(dtype, "conv2d", [&](auto tag) {
        splits = igemm_backward_weight_splits<decltype(tag)>(s, kSplits[v - 1]);
      });
      if (std::find(seen.begin(), seen.end(), splits) != seen.end()) continue;
      seen.push_back(splits);
      out.push_back({Conv2dAlgo::ImplicitGemm, v});
    }
    return out;
  }
  for (int v = 1; v <= variant_count(kTileRows); ++v) out.push_back({Conv2dAlgo::ImplicitGemm, v});
  const int64_t channels = pass == Conv2dPass::Forward ? s.k_per_group() : s.c_per_group();
  for (int v = 1; v <= variant_count(kFusedChannels); ++v) {
    const int c = kFusedChannels[v - 1];
    if (c > 1 && c / 2 >= channels) break;  // the chunk would be mostly empty
    if (fused_fits(s, c, acc_bytes(dtype))) out.push_back({Conv2dAlgo::Fused, v});
  }
  return out;
}

size_t conv2d_workspace_size_cuda(Conv2dConfig cfg, Conv2dPass pass, DType dtype,
                                  const Conv2dShape& s) {
  const Conv2dAlgo a = resolve(cfg, pass, dtype, s);
  if (pass != Conv2dPass::BackwardWeight || a == Conv2dAlgo::Direct) return 0;
  if (s.weight_numel() == 0 || s.output_numel() == 0) return 0;
  const int splits = tiling_of(a, pass, cfg.engine);
  size_t bytes = 0;
  dispatch_cuda_dtype(dtype, "conv2d", [&](auto tag) {
    bytes = igemm_backward_weight_workspace<decltype(tag)>(s, splits);
  });
  return bytes;
}

// Fused wins while the per-pixel channel loop is short (one output-channel
// chunk, weights in shared memory): the homework's 1-32 channel layers.
// ImplicitGemm takes wider layers, where operand reuse through shared memory
// pays; grad-weight is a reduction over N*P*Q and always goes to the split-K
// implicit GEMM. Past 2^31 elements only Direct indexes with 64 bits.
Conv2dAlgo conv2d_choose_algo_cuda(Conv2dPass pass, DType dtype, const Conv2dShape& s) {
  if (!fits_int32(s)) return Conv2dAlgo::Direct;
  const int64_t Cg = s.c_per_group(), Kg = s.k_per_group();
  if (s.R * s.S > 121) return Conv2dAlgo::ImplicitGemm;  // fused keeps taps in shared memory
  switch (pass) {
    case Conv2dPass::Forward:
      return (Kg <= 32 && Cg * Kg <= 512) ? Conv2dAlgo::Fused : Conv2dAlgo::ImplicitGemm;
    case Conv2dPass::BackwardInput:
      return (Cg <= 32 && Cg * Kg <= 512) ? Conv2dAlgo::Fused : Conv2dAlgo::ImplicitGemm;
    case Conv2dPass::BackwardWeight:
      return Conv2dAlgo::ImplicitGemm;
  }
  (void)dtype;
  return Conv2dAlgo::ImplicitGemm;
}

void conv2d_forward_cuda(Conv2dConfig cfg, DType dtype, const Conv2dShape& s, const void* x,
                         const void* w, const void* bias, void* y, int device, void* stream) {
  run_pass(cfg, Conv2dPass::Forward, dtype, s, x, w, y, s.output_numel(), device, stream,
           [&](const auto* xp, const auto* wp, auto* yp, Conv2dAlgo a, int tiling, cudaStream_t st) {
    const auto* bp = static_cast<decltype(xp)>(bias);
    if (a == Conv2dAlgo::Direct) direct_forward(s, xp, wp, bp, yp, st);
    else if (a == Conv2dAlgo::Fused) fused_forward(s, xp, wp, bp, yp, tiling, st);
    else igemm_forward(s, xp, wp, bp, yp, tiling, st);
  });
}

void conv2d_backward_input_cuda(Conv2dConfig cfg, DType dtype, const Conv2dShape& s,
                                const void* dy, const void* w, void* dx, int device,
                                void* stream) {
  run_pass(cfg, Conv2dPass::BackwardInput, dtype, s, dy, w, dx, s.input_numel(), device, stream,
           [&](const auto* dyp, const auto* wp, auto* dxp, Conv2dAlgo a, int tiling,
               cudaStream_t st) {
    if (a == Conv2dAlgo::Direct) direct_backward_input(s, dyp, wp, dxp, st);
    else if (a == Conv2dAlgo::Fused) fused_backward_input(s, dyp, wp, dxp, tiling, st);
    else igemm_backward_input(s, dyp, wp, dxp, tiling, st);
  });
}

// Fused has no grad-weight kernel of its own: grad-weight is a reduction over
// N*P*Q, which the split-K implicit GEMM already does in one pass plus a
// fixed-order reduce. Fused therefore runs that kernel for this pass.
void conv2d_backward_weight_cuda(Conv2dConfig cfg, DType dtype, const Conv2dShape& s,
                                 const void* dy, const void* x, void* dw, void* workspace,
                                 size_t workspace_bytes, int device, void* stream) {
  run_pass(cfg, Conv2dPass::BackwardWeight, dtype, s, dy, x, dw, s.weight_numel(), device, stream,
           [&](const auto* dyp, const auto* xp, auto* dwp, Conv2dAlgo a, int splits,
               cudaStream_t st) {
    if (a == Conv2dAlgo::Direct) direct_backward_weight(s, dyp, xp, dwp, st);
    else igemm_backward_weight(s, dyp, xp, dwp, workspace, workspace_bytes, splits, st);
  });
}

}  // namespace convbench
