// avg_pool2d: its shape, its window rule (shared by the CPU and CUDA
// kernels), its entry points (registered in the kernel table by
// avg_pool2d_cpu.cpp and cuda/avg_pool2d_cuda.cu) and the CPU kernels of
// each ISA build. Contiguous NCHW: input [N,C,H,W], output [N,C,P,Q].
// Semantics are torch.nn.functional.avg_pool2d's, ceil_mode included (P and
// Q say how many windows there are).
#pragma once
#include <cstdint>

#include "common/check.h"
#include "common/shapes.h"

#ifdef __CUDACC__
#define CB_AVG_HD __host__ __device__ __forceinline__
#else
#define CB_AVG_HD inline
#endif

namespace convbench {

// count_include_pad: 0 or 1; divisor: torch's divisor_override, 0 for none.
#define CB_AVG_POOL2D_SHAPE_FIELDS(X)                                                      \
  X(N) X(C) X(H) X(W) X(P) X(Q) X(kernel_h) X(kernel_w) X(stride_h) X(stride_w) X(pad_h) \
  X(pad_w) X(count_include_pad) X(divisor)

CB_POOL_SHAPE(AvgPool2dShape, CB_AVG_POOL2D_SHAPE_FIELDS);

inline void check_shape(const AvgPool2dShape& s) {
  check_pool_window_sizes(s, "avg_pool2d");
  CB_CHECK(s.pad_h <= s.kernel_h / 2 && s.pad_w <= s.kernel_w / 2 &&
               (s.count_include_pad == 0 || s.count_include_pad == 1),
           "avg_pool2d: padding above half the kernel, or count_include_pad not 0 or 1");
}

// One window along one axis, as torch's kernels compute it: it reads input
// positions [begin, end); `padded` is its length clipped to the padded
// input, the count count_include_pad divides by.
struct AvgSpan {
  int64_t begin, end, padded;
};

CB_AVG_HD AvgSpan avg_span(int64_t o, int64_t size, int64_t stride, int64_t pad, int64_t kernel) {
  const int64_t start = o * stride - pad;
  const int64_t stop = start + kernel < size + pad ? start + kernel : size + pad;
  return {start > 0 ? start : 0, stop < size ? stop : size, stop - start};
}

// Output row p's window and output column q's.
CB_AVG_HD AvgSpan avg_rows(const AvgPool2dShape& s, int64_t p) {
  return avg_span(p, s.H, s.stride_h, s.pad_h, s.kernel_h);
}
CB_AVG_HD AvgSpan avg_cols(const AvgPool2dShape& s, int64_t q) {
  return avg_span(q, s.W, s.stride_w, s.pad_w, s.kernel_w);
}

// What window (p, q) divides its sum by (at least 1 input position is in
// every window the shape's P, Q allow; an empty one outputs 0).
CB_AVG_HD int64_t avg_divisor(const AvgPool2dShape& s, const AvgSpan& h, const AvgSpan& w) {
  if (s.divisor != 0) return s.divisor;
  if (s.count_include_pad) return h.padded * w.padded;
  return (h.end - h.begin) * (w.end - w.begin);
}

void avg_pool2d_forward_cpu(DType dtype, const AvgPool2dShape& s, const void* x, void* y);
void avg_pool2d_backward_cpu(DType dtype, const AvgPool2dShape& s, const void* dy, void* dx);
#ifdef CONVBENCH_WITH_CUDA
void avg_pool2d_forward_cuda(DType dtype, const AvgPool2dShape& s, const void* x, void* y,
                             int device, void* stream);
void avg_pool2d_backward_cuda(DType dtype, const AvgPool2dShape& s, const void* dy, void* dx,
                              int device, void* stream);
#endif

}  // namespace convbench

// The CPU kernels, once per ISA build (common/cpu_isa.h).
#define CB_DECLARE_AVG_POOL2D_CPU_KERNELS(NS)                                    \
  namespace convbench {                                                          \
  namespace NS {                                                                 \
  template <typename T>                                                          \
  void avg_pool2d_forward(const AvgPool2dShape& s, const T* x, T* y);           \
  template <typename T>                                                          \
  void avg_pool2d_backward(const AvgPool2dShape& s, const T* dy, T* dx);        \
  }                                                                              \
  }
CB_DECLARE_AVG_POOL2D_CPU_KERNELS(cpu_generic)
#if defined(CONVBENCH_HAVE_AVX2_VARIANT)
CB_DECLARE_AVG_POOL2D_CPU_KERNELS(cpu_avx2)
#endif
#if defined(CONVBENCH_HAVE_AVX512_VARIANT)
CB_DECLARE_AVG_POOL2D_CPU_KERNELS(cpu_avx512)
#endif
