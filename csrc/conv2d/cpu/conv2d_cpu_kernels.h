// CPU conv2d kernels, declared once per ISA build (see common/cpu_isa.h).
// Each takes contiguous NCHW data and fully overwrites its output.
#pragma once
#include <vector>

#include "common/shapes.h"

namespace convbench {
// A float32 pass of one engine, as the engine table holds it: what
// half_precision.cpp runs on the widened operands of a half-type call.
using ForwardFn32 = void (*)(const Conv2dShape&, const float*, const float*, const float*, float*);
using GradFn32 = void (*)(const Conv2dShape&, const float*, const float*, float*);
}  // namespace convbench

#define CB_DECLARE_CONV2D_CPU_ALGO(ENGINE)                                                   \
  template <typename T>                                                                    \
  void conv2d_forward_##ENGINE(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y); \
  template <typename T>                                                                    \
  void conv2d_backward_input_##ENGINE(const Conv2dShape& s, const T* dy, const T* w, T* dx); \
  template <typename T>                                                                    \
  void conv2d_backward_weight_##ENGINE(const Conv2dShape& s, const T* dy, const T* x, T* dw);

// An engine's passes, compiled for both CPU element types (at the end of
// the source file that defines them): the forward problems (forward and
// input gradient), the weight gradient, or all three.
#define CB_INSTANTIATE_CONV2D_CPU_FORWARD_PASSES_T(ENGINE, T)                               \
  template void conv2d_forward_##ENGINE<T>(const Conv2dShape&, const T*, const T*, const T*, T*); \
  template void conv2d_backward_input_##ENGINE<T>(const Conv2dShape&, const T*, const T*, T*);
#define CB_INSTANTIATE_CONV2D_CPU_WEIGHT_PASS_T(ENGINE, T) \
  template void conv2d_backward_weight_##ENGINE<T>(const Conv2dShape&, const T*, const T*, T*);
#define CB_INSTANTIATE_CONV2D_CPU_FORWARD_PASSES(ENGINE)   \
  CB_INSTANTIATE_CONV2D_CPU_FORWARD_PASSES_T(ENGINE, float) \
  CB_INSTANTIATE_CONV2D_CPU_FORWARD_PASSES_T(ENGINE, double)
#define CB_INSTANTIATE_CONV2D_CPU_WEIGHT_PASS(ENGINE)   \
  CB_INSTANTIATE_CONV2D_CPU_WEIGHT_PASS_T(ENGINE, float) \
  CB_INSTANTIATE_CONV2D_CPU_WEIGHT_PASS_T(ENGINE, double)
#define CB_INSTANTIATE_CONV2D_CPU_ALGO(ENGINE)  \
  CB_INSTANTIATE_CONV2D_CPU_FORWARD_PASSES(ENGINE) \
  CB_INSTANTIATE_CONV2D_CPU_WEIGHT_PASS(ENGINE)

// ENGINE = direct_flat (direct.cpp: vectorised along output positions),
// direct_kvec (direct_kvec.cpp, weight gradient in direct_kvec_wgrad.cpp:
// along output channels), depthwise (depthwise.cpp: per group along output
// rows), im2col
// (im2col_gemm.cpp); pointwise (pointwise.cpp: 1x1 layers as GEMMs); winograd_f2x2 / winograd_f4x4 (winograd.cpp: F(2x2,3x3) /
// F(4x4,3x3)): forward and input gradient of 3x3, stride 1, dilation 1
// layers only.
#define CB_DECLARE_CONV2D_CPU_KERNELS(NS)                                                  \
  namespace convbench {                                                                    \
  namespace NS {                                                                           \
  CB_DECLARE_CONV2D_CPU_ALGO(direct_flat)                                                  \
  CB_DECLARE_CONV2D_CPU_ALGO(direct_kvec)                                                  \
  CB_DECLARE_CONV2D_CPU_ALGO(depthwise)                                                    \
  CB_DECLARE_CONV2D_CPU_ALGO(im2col)                                                       \
  CB_DECLARE_CONV2D_CPU_ALGO(pointwise)                                                    \
  template <typename T>                                                                    \
  void conv2d_forward_winograd_f2x2(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y); \
  template <typename T>                                                                    \
  void conv2d_backward_input_winograd_f2x2(const Conv2dShape& s, const T* dy, const T* w, T* dx); \
  template <typename T>                                                                    \
  void conv2d_forward_winograd_f4x4(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y); \
  template <typename T>                                                                    \
  void conv2d_backward_input_winograd_f4x4(const Conv2dShape& s, const T* dy, const T* w, T* dx); \
  /* bias_grad.cpp: db[k] = sum of dy over (n, p, q) */                                    \
  template <typename T>                                                                    \
  void conv2d_backward_bias(const Conv2dShape& s, const T* dy, T* db);                     \
  /* half_precision.cpp: bfloat16/float16 through a float32 kernel */                      \
  void conv2d_forward_widened(DType dt, ForwardFn32 kernel, const Conv2dShape& s,          \
                              const void* x, const void* w, const void* b, void* y);       \
  void conv2d_backward_input_widened(DType dt, GradFn32 kernel, const Conv2dShape& s,      \
                                     const void* dy, const void* w, void* dx);             \
  void conv2d_backward_weight_widened(DType dt, GradFn32 kernel, const Conv2dShape& s,     \
                                      const void* dy, const void* x, void* dw, void* db);  \
  const char* conv2d_half_method();                                                        \
  /* choose.cpp: the heuristic (algo Auto: any algorithm) */                              \
  Conv2dConfig conv2d_choose_config(Conv2dPass pass, DType dtype, Conv2dAlgo algo,         \
                                    const Conv2dShape& s);                                 \
  }                                                                                        \
  }

CB_DECLARE_CONV2D_CPU_KERNELS(cpu_generic)
#if defined(CONVBENCH_HAVE_AVX2_VARIANT)
CB_DECLARE_CONV2D_CPU_KERNELS(cpu_avx2)
#endif
#if defined(CONVBENCH_HAVE_AVX512_VARIANT)
CB_DECLARE_CONV2D_CPU_KERNELS(cpu_avx512)
#endif
// Inside an ISA build's own sources, its namespace's (one build calling
// another of its kernels: half_precision.cpp).
#if defined(CB_CPU_NS)
CB_DECLARE_CONV2D_CPU_KERNELS(CB_CPU_NS)
#endif
