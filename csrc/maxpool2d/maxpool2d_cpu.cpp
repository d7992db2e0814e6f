// CPU max_pool2d dispatch: dtype -> element type, ISA -> compiled ISA build;
// the entry points go into the kernel table (common/kernel_table.h).
#include "common/check.h"
#include "common/cpu_isa.h"
#include "common/kernel_table.h"
#include "maxpool2d/cpu/maxpool2d_cpu_kernels.h"
#include "maxpool2d/maxpool2d.h"

namespace convbench {

void max_pool2d_forward_cpu(DType dtype, const Pool2dShape& s, const void* x, void* y,
                            int64_t* indices) {
  CB_CHECK(dtype == DType::Float32 || dtype == DType::Float64,
           "max_pool2d on the CPU supports float32 and float64");
  if (s.output_numel() == 0) return;
  if (dtype == DType::Float32) {
    CB_CPU_DISPATCH(max_pool2d_forward<float>, s, static_cast<const float*>(x),
                    static_cast<float*>(y), indices);
  } else {
    CB_CPU_DISPATCH(max_pool2d_forward<double>, s, static_cast<const double*>(x),
                    static_cast<double*>(y), indices);
  }
}

void max_pool2d_backward_cpu(DType dtype, const Pool2dShape& s, const void* dy,
                             const int64_t* indices, void* dx) {
  CB_CHECK(dtype == DType::Float32 || dtype == DType::Float64,
           "max_pool2d on the CPU supports float32 and float64");
  if (s.input_numel() == 0) return;
  if (dtype == DType::Float32) {
    CB_CPU_DISPATCH(max_pool2d_backward<float>, s, static_cast<const float*>(dy), indices,
                    static_cast<float*>(dx));
  } else {
    CB_CPU_DISPATCH(max_pool2d_backward<double>, s, static_cast<const double*>(dy), indices,
                    static_cast<double*>(dx));
  }
}

CB_REGISTER_KERNEL("max_pool2d_forward", CPU, max_pool2d_forward_cpu, "x", "y", "indices")
CB_REGISTER_KERNEL("max_pool2d_backward", CPU, max_pool2d_backward_cpu, "dy", "indices", "dx")

}  // namespace convbench
