// CPU max_pool2d kernels, declared once per ISA build (see common/cpu_isa.h).
#pragma once
#include <cstdint>

#include "common/shapes.h"

#define CB_DECLARE_MAXPOOL2D_CPU_KERNELS(NS)                                               \
  namespace convbench {                                                                    \
  namespace NS {                                                                           \
  template <typename T>                                                                    \
  void max_pool2d_forward(const Pool2dShape& s, const T* x, T* y, int64_t* indices);      \
  template <typename T>                                                                    \
  void max_pool2d_backward(const Pool2dShape& s, const T* dy, const int64_t* indices, T* dx); \
  }                                                                                        \
  }

CB_DECLARE_MAXPOOL2D_CPU_KERNELS(cpu_generic)
#if defined(CONVBENCH_HAVE_AVX2_VARIANT)
CB_DECLARE_MAXPOOL2D_CPU_KERNELS(cpu_avx2)
#endif
#if defined(CONVBENCH_HAVE_AVX512_VARIANT)
CB_DECLARE_MAXPOOL2D_CPU_KERNELS(cpu_avx512)
#endif
