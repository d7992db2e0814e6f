// Shared by the CUDA conv2d kernels: the 32-bit offset limit
// and the launchers each algorithm file defines.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/cuda_check.cuh"
#include "common/cuda_types.cuh"
#include "common/shapes.h"

namespace convbench {
namespace cuda_conv {

// Headroom the 32-bit kernels need past the largest tensor: their index
// arithmetic runs past the end of a dimension before the bounds checks throw
// the value away (the implicit GEMM's reduction index up to 3 k-tiles plus a
// tile width past the end while it prefetches, rows rounded up to BM, the
// fused kernel's pixels rounded up to a block). 2^16 covers every tile and
// block size here many times over.
constexpr int64_t kInt32IndexMargin = int64_t{1} << 16;

// True when every flat offset the 32-bit kernels form, overruns included,
// fits in int32 and their grids fit (groups on grid.z, channel tiles on grid.y).
inline bool fits_int32(const Conv2dShape& s) {
  constexpr int64_t kMax = (int64_t{1} << 31) - 1 - kInt32IndexMargin;
  return s.input_numel() <= kMax && s.output_numel() <= kMax && s.weight_numel() <= kMax &&
         s.groups <= 4096 && s.C <= (1 << 20) && s.K <= (1 << 20);
}

// Grids with fewer blocks than an H100 has SMs (132; an A100 has 108) leave
// SMs idle: launchers split the work further (narrower tiles or channel
// chunks, more split-K slices) until a grid has at least this many blocks,
// where the problem allows.
constexpr int64_t kFillBlocks = 132;

// ---- launchers (one file per algorithm) ----
// Direct: one thread per output element (64-bit indexing, any size).
template <typename T>
void direct_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y,
                    cudaStream_t st);
template <typename T>
void direct_backward_input(const Conv2dShape& s, const T* dy, const T* w, T* dx, cudaStream_t st);
template <typename T>
void direct_backward_weight(const Conv2dShape& s, const T* dy, const T* x, T* dw,
                            cudaStream_t st);

// ImplicitGemm: shared-memory tiled GEMM over gathered operands (needs fits_int32).
// tile_rows: output pixels per block tile (128, 64 or 32); 0 picks by shape
// (the widest that still gives kFillBlocks blocks).
template <typename T>
void igemm_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y,
                   int tile_rows, cudaStream_t st);
template <typename T>
void igemm_backward_input(const Conv2dShape& s, const T* dy, const T* w, T* dx, int tile_rows,
                          cudaStream_t st);
// Split-K grad-weight: the partial sums go to `workspace` (device memory the
// caller allocates, igemm_backward_weight_workspace(s, splits) bytes; the
// kernels never allocate). With no workspace (nullptr, 0 bytes) the reduction
// runs unsplit, correct but slower on large N*P*Q; a non-null one that is too
// small throws. splits: slices of the N*P*Q reduction asked for (0: by shape);
// igemm_backward_weight_splits says how many it becomes (at most one per k-tile).
template <typename T>
size_t igemm_backward_weight_workspace(const Conv2dShape& s, int splits);
template <typename T>
int igemm_backward_weight_splits(const Conv2dShape& s, int splits);
template <typename T>
void igemm_backward_weight(const Conv2dShape& s, const T* dy, const T* x, T* dw, void* workspace,
                           size_t workspace_bytes, int splits, cudaStream_t st);

// Fused small-layer kernel: one thread per output pixel computes a chunk of
// 1, 2, 4, 8, 16 or 32 output channels of its group (`channels`; 0 picks by
// shape), weights resident in shared memory (needs fits_int32).
// fused_fits(s, pass, channels, acc_bytes): that chunk's taps fit in shared memory.
template <typename T>
void fused_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y, int channels,
                   cudaStream_t st);
template <typename T>
void fused_backward_input(const Conv2dShape& s, const T* dy, const T* w, T* dx, int channels,
                          cudaStream_t st);
constexpr int64_t kFusedSmemMax = 48 * 1024;  // per block, without an opt-in
inline bool fused_fits(const Conv2dShape& s, int channels, size_t acc_bytes) {
  return int64_t(s.R * s.S) * int64_t(acc_bytes) * channels <= kFusedSmemMax;
}

}  // namespace cuda_conv
}  // namespace convbench
