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

#define CB_CUDA_CHECK(call) ::convbench::cuda_check((call), #call)

// cudaGetLastError reports (and clears) whatever error is pending on this
// thread, ours or not: an asynchronous fault of earlier work, or a failed
// launch that nobody checked. So every launch goes through launch_checked:
// an error already pending before it is reported as such (naming the launch
// it preceded, and saying it is not that launch's), and the check after it
// then sees this launch's configuration error only. Asynchronous faults of
// the kernel itself surface at the next synchronising call (no host sync in
// the hot path).
inline void cuda_check_pending(const char* kernel_name) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("convbench: CUDA error pending before the launch of ") +
                             kernel_name + " (raised by earlier work, not by this launch): " +
                             cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
  }
}

// launch_checked("k", [&] { k<<<grid, block, smem, stream>>>(args); });
template <class Launch>
void launch_checked(const char* kernel_name, Launch&& launch) {
  cuda_check_pending(kernel_name);
  launch();
  cuda_check(cudaGetLastError(), kernel_name);
}


template <typename T>
__host__ __device__ constexpr T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

// Grid-stride launches are capped at this many blocks (the emulator in
// tools/cuda_emu lowers it so that its tests really loop).
#ifndef CB_MAX_GRID_BLOCKS
#define CB_MAX_GRID_BLOCKS (65535LL * 8)
#endif

// Grid for a grid-stride loop over n elements, capped so huge n needs no
// 64-bit grid dimension.
inline unsigned grid_for(int64_t n, int block, int64_t max_blocks = CB_MAX_GRID_BLOCKS) {
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
