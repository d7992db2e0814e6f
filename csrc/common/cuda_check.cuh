// CUDA error handling and launch helpers shared by every .cu file.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace convbench {

// Thrown as RuntimeError in Python; the message names the kernel or call.
inline void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("convbench: CUDA error in ") + what + ": " +
                             cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
  }
}

// After every launch: configuration errors surface here, asynchronous faults
// at the next synchronising call (no host sync in the hot path).
#define CB_CUDA_CHECK(call) ::convbench::cuda_check((call), #call)
#define CB_CUDA_CHECK_LAUNCH(kernel_name) ::convbench::cuda_check(cudaGetLastError(), kernel_name)

template <typename T>
__host__ __device__ constexpr T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

// Grid for a grid-stride loop over n elements, capped so huge n needs no
// 64-bit grid dimension.
inline unsigned grid_for(int64_t n, int block, int64_t max_blocks = 65535LL * 8) {
  int64_t g = ceil_div<int64_t>(n, block);
  if (g < 1) g = 1;
  return static_cast<unsigned>(g < max_blocks ? g : max_blocks);
}

#define CB_GRID_STRIDE_LOOP(i, n)                                                  \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// Sets the current device for the scope of a call and restores it after, so
// a tensor on cuda:1 runs on device 1 without disturbing the caller.
class CudaDeviceGuard {
 public:
  explicit CudaDeviceGuard(int device) {
    CB_CUDA_CHECK(cudaGetDevice(&previous_));
    if (device != previous_) CB_CUDA_CHECK(cudaSetDevice(device));
  }
  ~CudaDeviceGuard() { cudaSetDevice(previous_); }
  CudaDeviceGuard(const CudaDeviceGuard&) = delete;
  CudaDeviceGuard& operator=(const CudaDeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace convbench
