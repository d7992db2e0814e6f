// CPU conv2d dispatch: dtype -> element type, algorithm -> kernel, ISA ->
// compiled variant.
#include "common/check.h"
#include "common/cpu_isa.h"
#include "conv2d/conv2d.h"
#include "conv2d/cpu/conv2d_cpu_kernels.h"

namespace convbench {

namespace {

bool is_empty(const Conv2dShape& s) { return s.N == 0 || s.P == 0 || s.Q == 0; }

Conv2dAlgo resolve(Conv2dAlgo algo, Conv2dPass pass, DType dtype, const Conv2dShape& s) {
  if (algo == Conv2dAlgo::Auto) return conv2d_choose_algo_cpu(pass, dtype, s);
  CB_CHECK(algo == Conv2dAlgo::Direct, "conv2d: algorithm ", static_cast<int>(algo),
           " is not implemented on the CPU");
  return algo;
}

void check_dtype(DType dtype) {
  CB_CHECK(dtype == DType::Float32 || dtype == DType::Float64,
           "conv2d on the CPU supports float32 and float64");
}

}  // namespace

Conv2dAlgo conv2d_choose_algo_cpu(Conv2dPass, DType, const Conv2dShape&) {
  return Conv2dAlgo::Direct;
}

std::vector<Conv2dAlgo> conv2d_algos_cpu() { return {Conv2dAlgo::Direct}; }

void conv2d_forward_cpu(Conv2dAlgo algo, DType dtype, const Conv2dShape& s, const void* x,
                        const void* w, const void* bias, void* y) {
  check_dtype(dtype);
  resolve(algo, Conv2dPass::Forward, dtype, s);
  if (is_empty(s)) return;
  if (dtype == DType::Float32) {
    CB_CPU_DISPATCH(conv2d_forward_direct<float>, s, static_cast<const float*>(x),
                    static_cast<const float*>(w), static_cast<const float*>(bias),
                    static_cast<float*>(y));
  } else {
    CB_CPU_DISPATCH(conv2d_forward_direct<double>, s, static_cast<const double*>(x),
                    static_cast<const double*>(w), static_cast<const double*>(bias),
                    static_cast<double*>(y));
  }
}

void conv2d_backward_input_cpu(Conv2dAlgo algo, DType dtype, const Conv2dShape& s,
                               const void* dy, const void* w, void* dx) {
  check_dtype(dtype);
  resolve(algo, Conv2dPass::BackwardInput, dtype, s);
  if (s.N == 0 || s.H == 0 || s.W == 0) return;
  if (dtype == DType::Float32) {
    CB_CPU_DISPATCH(conv2d_backward_input_direct<float>, s, static_cast<const float*>(dy),
                    static_cast<const float*>(w), static_cast<float*>(dx));
  } else {
    CB_CPU_DISPATCH(conv2d_backward_input_direct<double>, s, static_cast<const double*>(dy),
                    static_cast<const double*>(w), static_cast<double*>(dx));
  }
}

void conv2d_backward_weight_cpu(Conv2dAlgo algo, DType dtype, const Conv2dShape& s,
                                const void* dy, const void* x, void* dw) {
  check_dtype(dtype);
  resolve(algo, Conv2dPass::BackwardWeight, dtype, s);
  if (dtype == DType::Float32) {
    CB_CPU_DISPATCH(conv2d_backward_weight_direct<float>, s, static_cast<const float*>(dy),
                    static_cast<const float*>(x), static_cast<float*>(dw));
  } else {
    CB_CPU_DISPATCH(conv2d_backward_weight_direct<double>, s, static_cast<const double*>(dy),
                    static_cast<const double*>(x), static_cast<double*>(dw));
  }
}

}  // namespace convbench
