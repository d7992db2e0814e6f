// CPU emulation of the little of CUDA that convbench's kernels use, so their
// indexing, tiling, bounds handling and reductions can be checked on a machine
// without a GPU (CI, laptops). Force-included (g++ -include) into the real .cu
// sources after tools/cuda_emu/build.py rewrites `k<<<g, b, smem, st>>>(args)`
// into cb_emu::launch(g, b, smem, st, k, args). A launch runs its blocks one
// after another, each CUDA thread a fiber (ucontext) on the calling thread:
// __shared__ becomes a function-static (one block at a time, so one instance
// suffices) and __syncthreads a switch back to the round-robin scheduler. It says nothing about
// speed, warps or memory ordering on a GPU; compute-sanitizer covers those.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <ucontext.h>
#include <vector>

namespace cb_emu {

inline uint3 t_idx, b_idx;
inline dim3 b_dim, g_dim;
inline cudaError_t last_error = cudaSuccess;
alignas(16) inline unsigned char dyn_smem[48 * 1024];

// The threads of a block are fibers on one OS thread, run round-robin: a
// round resumes every live thread until its next __syncthreads or its return,
// so a round is exactly the code between two barriers.
struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  uint3 idx;
  bool done;
};
inline ucontext_t scheduler;
inline Fiber* current = nullptr;
inline std::function<void()> body;

inline void fiber_entry() {
  body();
  current->done = true;  // then uc_link returns to the scheduler
}

inline void syncthreads() { swapcontext(&current->ctx, &scheduler); }

template <class Kernel, class... Args>
void launch(dim3 grid, dim3 block, size_t smem, cudaStream_t, Kernel kernel, Args... args) {
  const int nthreads = int(block.x * block.y * block.z);
  if (nthreads < 1 || nthreads > 1024 || grid.x < 1 || grid.y < 1 || grid.z < 1 ||
      grid.y > 65535 || grid.z > 65535 || smem > sizeof(dyn_smem)) {
    last_error = cudaErrorInvalidConfiguration;
    return;
  }
  std::memset(dyn_smem, 0xFF, sizeof(dyn_smem));  // garbage, like a GPU's
  b_dim = block, g_dim = grid;
  body = [&]() { kernel(args...); };
  std::vector<Fiber> fibers(nthreads);
  for (int t = 0; t < nthreads; ++t) {
    fibers[t].stack.resize(256 * 1024);
    fibers[t].idx = uint3{unsigned(t) % block.x, (unsigned(t) / block.x) % block.y,
                          unsigned(t) / (block.x * block.y)};
  }
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        b_idx = uint3{x, y, z};
        for (auto& f : fibers) {
          getcontext(&f.ctx);
          f.ctx.uc_stack.ss_sp = f.stack.data();
          f.ctx.uc_stack.ss_size = f.stack.size();
          f.ctx.uc_link = &scheduler;
          f.done = false;
          makecontext(&f.ctx, fiber_entry, 0);
        }
        for (bool live = true; live;) {
          live = false;
          for (auto& f : fibers) {
            if (f.done) continue;
            current = &f;
            t_idx = f.idx;
            swapcontext(&scheduler, &f.ctx);
            live |= !f.done;
          }
        }
      }
  current = nullptr;
}

inline cudaError_t get_last_error() {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
inline cudaError_t malloc_async(void** p, size_t bytes, cudaStream_t) {
  *p = std::malloc(bytes ? bytes : 1);
  std::memset(*p, 0xFF, bytes);  // NaN-like garbage: unwritten workspace shows up
  return cudaSuccess;
}
inline cudaError_t free_async(void* p, cudaStream_t) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t memset_async(void* p, int v, size_t n, cudaStream_t) {
  std::memset(p, v, n);
  return cudaSuccess;
}
inline cudaError_t get_device(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t set_device(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
inline const char* error_name(cudaError_t e) {
  return e == cudaSuccess ? "cudaSuccess" : "cudaErrorEmulated";
}

}  // namespace cb_emu

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __launch_bounds__(...)
#define threadIdx (cb_emu::t_idx)
#define blockIdx (cb_emu::b_idx)
#define blockDim (cb_emu::b_dim)
#define gridDim (cb_emu::g_dim)
#define __syncthreads() cb_emu::syncthreads()
#define cudaGetLastError cb_emu::get_last_error
#define cudaMallocAsync cb_emu::malloc_async
#define cudaFreeAsync cb_emu::free_async
#define cudaMemsetAsync cb_emu::memset_async
#define cudaGetDevice cb_emu::get_device
#define cudaSetDevice cb_emu::set_device
#define cudaGetErrorName cb_emu::error_name
#define cudaGetErrorString cb_emu::error_name
using std::isnan;
using std::max;
using std::min;
