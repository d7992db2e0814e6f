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

// Forced tilings, by variant (variant v is entry v - 1; 0 picks by shape):
// the implicit GEMM's output-pixel tile rows (forward, grad-input), its
// split-K slices (grad-weight), the fused kernel's channels per thread.
constexpr int kTileRows[] = {128, 64, 32};
constexpr int kSplits[] = {1, 4, 16, 64};
constexpr int kFusedChannels[] = {1, 2, 4, 8, 16, 32};

template <size_t N>
int variant_count(const int (&)[N]) { return int(N); }

// The table a variant of (algorithm, pass) indexes; nullptr where it has none.
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

// The knob a variant sets (0 for variant 0); throws for one that does not exist.
int variant_knob(Conv2dAlgo algo, Conv2dPass pass, int variant) {
  if (variant == 0) return 0;
  int count = 0;
  const int* table = variant_table(algo, pass, &count);
  CB_CHECK(variant > 0 && variant <= count, "conv2d: CUDA algorithm '", conv2d_algo_name(algo),
           "' has no variant ", variant, " for this pass (", count, " variants)");
  return table[variant - 1];
}

Conv2dAlgo resolve(Conv2dConfig cfg, Conv2dPass pass, DType dtype, const Conv2dShape& s) {
  const Conv2dAlgo algo = cfg.algo;
  CB_CHECK(algo != Conv2dAlgo::Auto || cfg.variant == 0,
           "conv2d: a variant needs an algorithm, not 'auto'");
  if (algo == Conv2dAlgo::Auto) return conv2d_choose_algo_cuda(pass, dtype, s);
  CB_CHECK(algo == Conv2dAlgo::Direct || algo == Conv2dAlgo::ImplicitGemm ||
               algo == Conv2dAlgo::Fused,
           "conv2d: algorithm '", conv2d_algo_name(algo), "' is not implemented on CUDA");
  CB_CHECK(algo == Conv2dAlgo::Direct || fits_int32(s), "conv2d: algorithm '", conv2d_algo_name(algo),
           "' indexes with 32 bits and needs every tensor under 2^31 elements, at most "
           "4096 groups and 2^20 channels; use algo='direct' (64-bit) or 'auto'");
  variant_knob(algo, pass, cfg.variant);  // (checks the variant exists)
  return algo;
}

// Kernels run on the caller's stream (torch's current stream), never the default one.
cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

template <typename T>
size_t bytes_of(int64_t n) {
  return static_cast<size_t>(n) * sizeof(T);
}

size_t acc_bytes(DType dtype) { return dtype == DType::Float64 ? 8 : 4; }

}  // namespace

std::vector<Conv2dAlgo> conv2d_algos_cuda() {
  return {Conv2dAlgo::Direct, Conv2dAlgo::ImplicitGemm, Conv2dAlgo::Fused};
}

std::string conv2d_variant_name_cuda(Conv2dAlgo algo, Conv2dPass pass, int variant) {
  const int knob = variant_knob(algo, pass, variant);
  if (variant == 0) return "";
  if (pass == Conv2dPass::BackwardWeight) return "split" + std::to_string(knob);
  return (algo == Conv2dAlgo::ImplicitGemm ? "bm" : "ch") + std::to_string(knob);
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
  const int splits = variant_knob(a, pass, cfg.variant);
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
  const Conv2dAlgo a = resolve(cfg, Conv2dPass::Forward, dtype, s);
  const int knob = variant_knob(a, Conv2dPass::Forward, cfg.variant);
  if (s.output_numel() == 0) return;
  CudaDeviceGuard guard(device);
  const cudaStream_t st = as_stream(stream);
  dispatch_cuda_dtype(dtype, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x);
    const T* wp = static_cast<const T*>(w);
    const T* bp = static_cast<const T*>(bias);
    T* yp = static_cast<T*>(y);
    if (a == Conv2dAlgo::Direct) direct_forward<T>(s, xp, wp, bp, yp, st);
    else if (a == Conv2dAlgo::Fused) fused_forward<T>(s, xp, wp, bp, yp, knob, st);
    else igemm_forward<T>(s, xp, wp, bp, yp, knob, st);
  });
}

void conv2d_backward_input_cuda(Conv2dConfig cfg, DType dtype, const Conv2dShape& s,
                                const void* dy, const void* w, void* dx, int device,
                                void* stream) {
  const Conv2dAlgo a = resolve(cfg, Conv2dPass::BackwardInput, dtype, s);
  const int knob = variant_knob(a, Conv2dPass::BackwardInput, cfg.variant);
  if (s.input_numel() == 0) return;
  CudaDeviceGuard guard(device);
  const cudaStream_t st = as_stream(stream);
  dispatch_cuda_dtype(dtype, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    T* dxp = static_cast<T*>(dx);
    if (s.output_numel() == 0) {  // no output pixel: the gradient is zero
      CB_CUDA_CHECK(cudaMemsetAsync(dxp, 0, bytes_of<T>(s.input_numel()), st));
      return;
    }
    const T* dyp = static_cast<const T*>(dy);
    const T* wp = static_cast<const T*>(w);
    if (a == Conv2dAlgo::Direct) direct_backward_input<T>(s, dyp, wp, dxp, st);
    else if (a == Conv2dAlgo::Fused) fused_backward_input<T>(s, dyp, wp, dxp, knob, st);
    else igemm_backward_input<T>(s, dyp, wp, dxp, knob, st);
  });
}

// Fused has no grad-weight kernel of its own: grad-weight is a reduction over
// N*P*Q, which the split-K implicit GEMM already does in one pass plus a
// fixed-order reduce. Fused therefore runs that kernel for this pass.
void conv2d_backward_weight_cuda(Conv2dConfig cfg, DType dtype, const Conv2dShape& s,
                                 const void* dy, const void* x, void* dw, void* workspace,
                                 size_t workspace_bytes, int device, void* stream) {
  const Conv2dAlgo a = resolve(cfg, Conv2dPass::BackwardWeight, dtype, s);
  const int splits = variant_knob(a, Conv2dPass::BackwardWeight, cfg.variant);
  if (s.weight_numel() == 0) return;
  CudaDeviceGuard guard(device);
  const cudaStream_t st = as_stream(stream);
  dispatch_cuda_dtype(dtype, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    T* dwp = static_cast<T*>(dw);
    if (s.output_numel() == 0) {  // empty reduction: the gradient is zero
      CB_CUDA_CHECK(cudaMemsetAsync(dwp, 0, bytes_of<T>(s.weight_numel()), st));
      return;
    }
    const T* dyp = static_cast<const T*>(dy);
    const T* xp = static_cast<const T*>(x);
    if (a == Conv2dAlgo::Direct) direct_backward_weight<T>(s, dyp, xp, dwp, st);
    else igemm_backward_weight<T>(s, dyp, xp, dwp, workspace, workspace_bytes, splits, st);
  });
}

}  // namespace convbench
