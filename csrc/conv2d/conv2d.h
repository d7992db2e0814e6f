// conv2d entry points called by the bindings. Kernels know nothing of
// PyTorch: contiguous NCHW pointers (input [N,C,H,W], weight [K,C/G,R,S],
// bias [K] or nullptr, output [N,K,P,Q]), a Conv2dShape and, for CUDA, a
// device index and a cudaStream_t passed as void*. dtype selects the element
// type the void pointers point at. Outputs are fully overwritten (no need to
// zero them first). Empty problems (any size 0) return at once.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "common/shapes.h"

namespace convbench {

// Winograd (F(2x2,3x3) and F(4x4,3x3) engines) covers the forward pass and the
// input gradient (a 3x3 stride-1 forward problem too) of 3x3, stride 1,
// dilation 1 layers.
// (static: no one definition shared by the builds for other ISAs)
static inline bool conv2d_winograd_applies(Conv2dPass pass, const Conv2dShape& s) {
  return pass != Conv2dPass::BackwardWeight && s.R == 3 && s.S == 3 && s.stride_h == 1 &&
         s.stride_w == 1 && s.dil_h == 1 && s.dil_w == 1;
}

// Direct's depthwise engine (any shape, but built for few input channels per
// group) is a candidate where a group has one input channel: depthwise
// layers, any channel multiplier.
static inline bool conv2d_depthwise_applies(Conv2dPass, const Conv2dShape& s) {
  return s.groups > 1 && s.c_per_group() == 1;
}

// Im2colGemm's pointwise engine covers 1x1 layers (any stride, padding,
// groups), every pass.
static inline bool conv2d_pointwise_applies(Conv2dPass, const Conv2dShape& s) {
  return s.R == 1 && s.S == 1;
}

// ---- CPU (float32, float64; float16, bfloat16 through float32 kernels) ----
// cfg.engine 0 lets the algorithm pick its engine (see Conv2dConfig).
void conv2d_forward_cpu(Conv2dConfig cfg, DType dtype, const Conv2dShape& s, const void* x,
                        const void* w, const void* bias, void* y);
void conv2d_backward_input_cpu(Conv2dConfig cfg, DType dtype, const Conv2dShape& s,
                               const void* dy, const void* w, void* dx);
// db: nullptr, or [K] to receive the bias gradient too (dy summed over
// n, p, q), while dy is at hand.
void conv2d_backward_weight_cpu(Conv2dConfig cfg, DType dtype, const Conv2dShape& s,
                                const void* dy, const void* x, void* dw, void* db);
// The kernel a request resolves to on the ISA build in use (never Auto,
// never engine 0); throws for an algorithm or engine that cannot run it.
Conv2dConfig conv2d_resolve_cpu(Conv2dConfig cfg, Conv2dPass pass, DType dtype,
                                const Conv2dShape& s);
// The algorithm Auto resolves to for this pass and shape (never Auto).
Conv2dAlgo conv2d_choose_algo_cpu(Conv2dPass pass, DType dtype, const Conv2dShape& s);
// Every kernel that can run this pass and shape: what the autotuner times.
std::vector<Conv2dConfig> conv2d_candidates_cpu(Conv2dPass pass, DType dtype,
                                                const Conv2dShape& s);
// Algorithms the CPU backend implements (besides Auto).
std::vector<Conv2dAlgo> conv2d_algos_cpu();
// Name of an engine ("flat", "kvec", "f2x2", ...; "" for engine 0).
const char* conv2d_engine_name_cpu(Conv2dAlgo algo, int engine);
// How the ISA build in use runs float16/bfloat16 (for results files).
const char* conv2d_half_method_cpu();

#ifdef CONVBENCH_WITH_CUDA
// ---- CUDA (float32, float64, float16, bfloat16 with float32 accumulation) ----
// Runs on `stream` of `device`; asynchronous; every launch checked.
// cfg.engine 0 lets the algorithm pick its tiles by shape; 1, 2, ... force
// one tiling (conv2d_engine_name_cuda names them): the tuning sweep and the
// autotuner time them, the results are the same up to summation order.
void conv2d_forward_cuda(Conv2dConfig cfg, DType dtype, const Conv2dShape& s, const void* x,
                         const void* w, const void* bias, void* y, int device, void* stream);
void conv2d_backward_input_cuda(Conv2dConfig cfg, DType dtype, const Conv2dShape& s,
                                const void* dy, const void* w, void* dx, int device,
                                void* stream);
// workspace: device memory of at least conv2d_workspace_size_cuda(...) bytes
// for this call (the caller allocates it, on `stream`; the kernels never
// allocate). nullptr with 0 bytes is allowed: the implicit GEMM then reduces
// unsplit (same result, slower on large N*P*Q).
void conv2d_backward_weight_cuda(Conv2dConfig cfg, DType dtype, const Conv2dShape& s,
                                 const void* dy, const void* x, void* dw, void* workspace,
                                 size_t workspace_bytes, int device, void* stream);
// Bytes of workspace the call with these arguments uses (0 for passes and
// algorithms that need none); throws where the call would (unknown algorithm).
size_t conv2d_workspace_size_cuda(Conv2dConfig cfg, Conv2dPass pass, DType dtype,
                                  const Conv2dShape& s);
Conv2dAlgo conv2d_choose_algo_cuda(Conv2dPass pass, DType dtype, const Conv2dShape& s);
std::vector<Conv2dAlgo> conv2d_algos_cuda();
// Every (algorithm, forced tiling) that can run this pass and shape, each
// kernel configuration once: what the tuning sweep and the autotuner time.
std::vector<Conv2dConfig> conv2d_candidates_cuda(Conv2dPass pass, DType dtype,
                                                 const Conv2dShape& s);
// Name of a forced tiling ("bm64", "split16", "oct4", ...; "" for engine 0);
// throws for an engine the algorithm and pass do not have.
std::string conv2d_engine_name_cuda(Conv2dAlgo algo, Conv2dPass pass, int engine);
#endif

}  // namespace convbench
