// CPU avg_pool2d dispatch: dtype -> element type, ISA -> compiled ISA build;
// the entry points go into the kernel table (common/kernel_table.h).
#include "avgpool2d/avg_pool2d.h"
#include "common/check.h"
#include "common/cpu_isa.h"
#include "common/kernel_table.h"

namespace convbench {

namespace {

template <typename F>
void on_cpu_dtype(DType dtype, F&& f) {
  CB_CHECK(dtype == DType::Float32 || dtype == DType::Float64,
           "avg_pool2d's CPU kernels take float32 and float64");
  if (dtype == DType::Float32) f(float{});
  else f(double{});
}

}  // namespace

void avg_pool2d_forward_cpu(DType dtype, const AvgPool2dShape& s, const void* x, void* y) {
  on_cpu_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if (s.output_numel() == 0) return;
    CB_CPU_DISPATCH(avg_pool2d_forward<T>, s, static_cast<const T*>(x), static_cast<T*>(y));
  });
}

void avg_pool2d_backward_cpu(DType dtype, const AvgPool2dShape& s, const void* dy, void* dx) {
  on_cpu_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if (s.input_numel() == 0) return;
    CB_CPU_DISPATCH(avg_pool2d_backward<T>, s, static_cast<const T*>(dy), static_cast<T*>(dx));
  });
}

CB_REGISTER_KERNEL("avg_pool2d_forward", CPU, avg_pool2d_forward_cpu, "x", "y")
CB_REGISTER_KERNEL("avg_pool2d_backward", CPU, avg_pool2d_backward_cpu, "dy", "dx")

}  // namespace convbench
