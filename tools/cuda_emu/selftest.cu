// Deliberately broken kernels, compiled into the emulator worker only (never
// for a GPU): tests/test_cuda_emu.py runs each and checks that the emulator
// reports its defect, so a detector that stops working fails a test.
#include <string>

#include "common/check.h"
#include "common/cuda_check.cuh"

namespace cb_selftest {

constexpr int kThreads = 64;

// Half the block waits at one barrier, half at another.
__global__ void __launch_bounds__(kThreads) divergent_barrier(float* out) {
  if (threadIdx.x < 32) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.0f;
}

// One thread leaves while the others wait at a barrier.
__global__ void __launch_bounds__(kThreads) exit_before_barrier(float* out) {
  if (threadIdx.x == 5) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

// Only block 0 stores to shared memory; block 1 must not see its values.
__global__ void __launch_bounds__(kThreads) stale_shared(float* out) {
  __shared__ float s[kThreads];
  if (blockIdx.x == 0) s[threadIdx.x] = 7.0f;
  __syncthreads();
  out[blockIdx.x * kThreads + threadIdx.x] = s[threadIdx.x];
}

// Each thread reads the store of the thread before it, with no barrier
// between (in thread order the store would always have happened).
__global__ void __launch_bounds__(kThreads) missing_barrier(float* out) {
  __shared__ float s[kThreads];
  s[threadIdx.x] = float(threadIdx.x);
  out[threadIdx.x] = s[threadIdx.x == 0 ? 0 : threadIdx.x - 1];
}

// The last thread stores one element past the shared array, through a
// pointer (an index into the array itself UBSan's bounds check reports too).
__global__ void __launch_bounds__(kThreads) shared_overrun(float* out) {
  __shared__ float s[kThreads];
  float* p = s;
  p[threadIdx.x + 1] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x];
}

// 40 KB static plus the dynamic shared memory of the launch.
__global__ void __launch_bounds__(kThreads) big_shared(float* out) {
  __shared__ float s[10 * 1024];
  extern __shared__ float dyn[];
  s[threadIdx.x] = 1.0f;
  dyn[threadIdx.x] = 1.0f;
  out[threadIdx.x] = s[threadIdx.x] + dyn[threadIdx.x];
}

// Launched with more threads than its bound.
__global__ void __launch_bounds__(kThreads) bounded(float* out) { out[threadIdx.x] = 1.0f; }

// 32-bit index arithmetic that overflows (undefined behaviour).
__global__ void __launch_bounds__(kThreads) int_overflow(float* out) {
  const int t = int(threadIdx.x);
  const int index = 2147483600 + t * 1000;
  out[threadIdx.x] = float(index % 7);
}

// Correct: a barrier between the stores and the reads of other threads'.
__global__ void __launch_bounds__(kThreads) reverse(float* out) {
  __shared__ float s[kThreads];
  s[threadIdx.x] = float(threadIdx.x);
  __syncthreads();
  out[blockIdx.x * kThreads + threadIdx.x] = s[kThreads - 1 - threadIdx.x];
}

}  // namespace cb_selftest

// out holds 2 * 64 floats.
void cb_emu_selftest(const std::string& name, float* out) {
  using namespace cb_selftest;
  using convbench::launch_checked;
  if (name == "divergent_barrier")
    launch_checked("divergent_barrier", [&] { divergent_barrier<<<1, kThreads, 0, 0>>>(out); });
  else if (name == "exit_before_barrier")
    launch_checked("exit_before_barrier", [&] { exit_before_barrier<<<1, kThreads, 0, 0>>>(out); });
  else if (name == "stale_shared")
    launch_checked("stale_shared", [&] { stale_shared<<<2, kThreads, 0, 0>>>(out); });
  else if (name == "missing_barrier")
    launch_checked("missing_barrier", [&] { missing_barrier<<<1, kThreads, 0, 0>>>(out); });
  else if (name == "shared_overrun")
    launch_checked("shared_overrun", [&] { shared_overrun<<<1, kThreads, 0, 0>>>(out); });
  else if (name == "big_shared")
    launch_checked("big_shared", [&] { big_shared<<<1, kThreads, 16 * 1024, 0>>>(out); });
  else if (name == "too_many_threads")
    launch_checked("bounded", [&] { bounded<<<1, 2 * kThreads, 0, 0>>>(out); });
  else if (name == "int_overflow")
    launch_checked("int_overflow", [&] { int_overflow<<<1, kThreads, 0, 0>>>(out); });
  else if (name == "reverse")
    launch_checked("reverse", [&] { reverse<<<2, kThreads, 0, 0>>>(out); });
  else
    CB_CHECK(false, "unknown self-test '", name, "'");
}
