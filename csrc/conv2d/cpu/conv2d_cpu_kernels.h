// CPU conv2d kernels, declared once per ISA variant (see common/cpu_isa.h).
// Each takes contiguous NCHW data and fully overwrites its output.
#pragma once
#include "common/shapes.h"

#define CB_DECLARE_CONV2D_CPU_KERNELS(NS)                                                  \
  namespace convbench {                                                                    \
  namespace NS {                                                                           \
  template <typename T>                                                                    \
  void conv2d_forward_direct(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y); \
  template <typename T>                                                                    \
  void conv2d_backward_input_direct(const Conv2dShape& s, const T* dy, const T* w, T* dx); \
  template <typename T>                                                                    \
  void conv2d_backward_weight_direct(const Conv2dShape& s, const T* dy, const T* x, T* dw); \
  }                                                                                        \
  }

CB_DECLARE_CONV2D_CPU_KERNELS(cpu_generic)
#if defined(CONVBENCH_HAVE_AVX2_VARIANT)
CB_DECLARE_CONV2D_CPU_KERNELS(cpu_avx2)
#endif
