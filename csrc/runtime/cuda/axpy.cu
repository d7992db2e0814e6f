#include "common/cuda_check.cuh"
#include "runtime/runtime_info.h"

namespace convbench {

namespace {
__global__ void axpy_kernel(float a, const float* __restrict__ x, float* __restrict__ y,
                            int64_t n) {
  CB_GRID_STRIDE_LOOP(i, n) { y[i] = a * x[i] + y[i]; }
}
}  // namespace

void cuda_axpy(float a, const float* x, float* y, int64_t n, int device, void* stream) {
  if (n <= 0) return;
  CudaDeviceGuard guard(device);
  constexpr int kBlock = 256;
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  launch_checked("axpy_kernel", [&] { axpy_kernel<<<grid_for(n, kBlock), kBlock, 0, st>>>(a, x, y, n); });
}

}  // namespace convbench
