// CPU emulation of the little of CUDA that convbench's kernels use, so their
// indexing, tiling, bounds handling, barriers and reductions can be checked on
// a machine without a GPU (CI, laptops). Force-included (g++ -include) into
// the real .cu sources after tools/cuda_emu/build.py has rewritten them:
//   k<<<g, b, smem, st>>>(args)   -> cb_emu::launch("k", g, b, smem, st, k, args)
//   __shared__ T name[..];        -> auto& name = cb_emu::shared_var<T[..]>(site)
//   extern __shared__ T name[];   -> T* name = cb_emu::dyn_smem()
//   __global__ ... { body }       -> __global__ ... { cb_emu::kernel_entry(BOUND); body }
// (BOUND: the kernel's __launch_bounds__, else 1024). The worker (worker.cpp)
// is built with -fsanitize=address,undefined, and every buffer it hands a
// kernel (inputs, outputs, workspace, each __shared__ array, the dynamic
// shared memory) is its own heap block of the exact size, so a read or write
// one element past any of them is reported at once.
//
// A launch runs its blocks one after another, each CUDA thread a fiber
// (its own stack) on the calling thread. A round resumes every live thread of the
// block, in a shuffled order that changes every round, until its next
// __syncthreads or its return: a missing barrier shows up as a read of data
// another thread has not written yet. Between blocks, all shared memory is
// refilled with garbage (NaN for floating point, -1 for integers), so a
// block cannot silently reuse what the previous block left there.
// Errors the emulator detects (and a GPU would hang on, or report only under
// compute-sanitizer) throw cb_emu::EmuError out of the launch:
//   - barrier divergence: threads of a block waiting at different
//     __syncthreads, or some returned while others wait at one;
//   - more threads per block than the kernel's __launch_bounds__ (a GPU
//     fails that launch: reported like one, through cudaGetLastError);
//   - static plus dynamic shared memory past 48 KB.
// It says nothing about speed, warps or memory ordering on a GPU;
// compute-sanitizer covers those on a real one.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <source_location>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CB_EMU_ASAN 1
#else
#define CB_EMU_ASAN 0
#endif

namespace cb_emu {

struct EmuError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- settings, per request (worker.cpp sets them) ----
struct Settings {
  int64_t grid_cap = 65535LL * 8;  // what grid_for() caps grid-stride launches at
  bool dry_run = false;            // record launches, run no block
  int fail_after_launch = -1;      // >= 1: leave an error pending after that launch
  uint32_t seed = 1;               // thread order within rounds
};
inline Settings settings;

// What each launch was, for the tests: name as written at the call site,
// configuration, shared memory, and the kernel's address relative to the
// executable (matches `nm`).
struct LaunchRecord {
  std::string name;
  dim3 grid, block;
  size_t dyn_smem = 0, static_smem = 0;
  uintptr_t kernel_offset = 0;
};
inline std::vector<LaunchRecord> launches;

constexpr size_t kSmemLimit = 48 * 1024;  // static + dynamic, without an opt-in

inline uint3 t_idx, b_idx;
inline dim3 b_dim, g_dim;
inline cudaError_t last_error = cudaSuccess;

// ---- shared memory: exact-size heap blocks, refilled with garbage per block ----
struct SharedBlock {
  void* p = nullptr;
  size_t bytes = 0;
};
inline std::map<int, SharedBlock> shared_vars;  // this launch's __shared__ arrays, by site
inline SharedBlock dyn_block;
inline size_t static_bytes = 0;
inline std::string pending_violation;  // set inside a fiber, thrown by the scheduler

inline void poison(void* p, size_t n) { std::memset(p, 0xFF, n); }

inline void* aligned_block(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 16, bytes ? bytes : 1) != 0) throw std::bad_alloc();
  poison(p, bytes);
  return p;
}

inline void release_shared() {
  for (auto& [site, b] : shared_vars) std::free(b.p);
  shared_vars.clear();
  std::free(dyn_block.p);
  dyn_block = {};
  static_bytes = 0;
}

template <class T>
T& shared_var(int site) {
  auto it = shared_vars.find(site);
  if (it == shared_vars.end()) {
    static_bytes += sizeof(T);
    if (static_bytes + dyn_block.bytes > kSmemLimit && pending_violation.empty())
      pending_violation = "static (" + std::to_string(static_bytes) + " B) plus dynamic (" +
                          std::to_string(dyn_block.bytes) +
                          " B) shared memory exceeds the 48 KB a launch may use";
    it = shared_vars.emplace(site, SharedBlock{aligned_block(sizeof(T)), sizeof(T)}).first;
  }
  return *static_cast<T*>(it->second.p);
}

inline unsigned char* dyn_smem() { return static_cast<unsigned char*>(dyn_block.p); }

// ---- threads: fibers, one round between two barriers ----
// A fiber starts through setcontext (makecontext's entry) and then switches
// with __builtin_setjmp/__builtin_longjmp: no system call (swapcontext sets
// the signal mask every time) and, the jump being made from a function
// AddressSanitizer does not instrument, none of its no-return bookkeeping
// (sigaltstack, unpoisoning the stack) either: each stack resumes exactly
// where it stopped, so its shadow stays right. A barrier costs two jumps.
struct Fiber {
  ucontext_t ctx;
  void* jmp[5];
  char* stack = nullptr;  // kStackBytes, below it a guard page
  uint3 idx;
  bool started = false, done = false;
  std::source_location barrier;  // where it waits (when not done)
};
constexpr size_t kGuardBytes = 4096;
constexpr size_t kStackBytes = 64 * 1024;  // kernels use a few KB, even under ASan
inline void* scheduler[5];
inline Fiber* current = nullptr;
inline std::function<void()> body;
inline const void* sched_stack_bottom = nullptr;
inline size_t sched_stack_size = 0;

// The jumps live in functions the sanitizers leave alone: in an instrumented
// one GCC follows every __builtin_setjmp with __asan_handle_no_return
// (a sigaltstack call and a stack unpoisoning, per switch).
#define CB_EMU_UNINSTRUMENTED [[gnu::noinline, gnu::no_sanitize("address", "undefined")]]

CB_EMU_UNINSTRUMENTED inline void jump_to(void** buf) { __builtin_longjmp(buf, 1); }

// Saves where this stack stands in `save` and continues at `to`; returns when
// something jumps back to `save`.
CB_EMU_UNINSTRUMENTED inline void switch_to(void** save, void** to) {
  if (__builtin_setjmp(save) == 0) jump_to(to);
}

CB_EMU_UNINSTRUMENTED inline void resume(Fiber& f) {
  if (__builtin_setjmp(scheduler) == 0) {
    if (!f.started) {
      f.started = true;
      setcontext(&f.ctx);
    }
    jump_to(f.jmp);
  }
}

// AddressSanitizer is told about every stack switch (which stack is current).
inline void enter_fiber(Fiber& f) {
#if CB_EMU_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f.stack, kStackBytes);
  if (!f.started) ASAN_UNPOISON_MEMORY_REGION(f.stack, kStackBytes);  // no old frames
#endif
  resume(f);
#if CB_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

inline void fiber_entry() {
#if CB_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &sched_stack_bottom, &sched_stack_size);
#endif
  body();
  current->done = true;
#if CB_EMU_ASAN
  __sanitizer_start_switch_fiber(nullptr, sched_stack_bottom, sched_stack_size);  // dying
#endif
  jump_to(scheduler);
}

inline void syncthreads(std::source_location where = std::source_location::current()) {
  Fiber* self = current;
  self->barrier = where;
#if CB_EMU_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, sched_stack_bottom, sched_stack_size);
#endif
  switch_to(self->jmp, scheduler);
#if CB_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, &sched_stack_bottom, &sched_stack_size);
#endif
}

// ---- kernel limits: the first statement of every kernel ----
inline bool probing = false;
inline int probed_bound = 0;
struct ProbeDone {};

inline void kernel_entry(int max_threads) {
  if (probing) {
    probed_bound = max_threads;
    throw ProbeDone{};
  }
}

// Runs the kernel's first statement on this stack to learn its
// __launch_bounds__ (nothing after kernel_entry executes).
template <class Kernel, class... Args>
int launch_bound(Kernel kernel, const Args&... args) {
  probing = true;
  probed_bound = 0;
  try {
    kernel(args...);
  } catch (const ProbeDone&) {
  }
  probing = false;
  if (probed_bound <= 0) throw EmuError("kernel has no cb_emu::kernel_entry (build.py rewrite)");
  return probed_bound;
}

inline std::string where(const std::source_location& s) {
  return std::string(s.file_name()) + ":" + std::to_string(s.line()) + ":" +
         std::to_string(s.column());
}
inline std::string str(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}
inline bool same_site(const std::source_location& a, const std::source_location& b) {
  return a.line() == b.line() && a.column() == b.column() &&
         std::strcmp(a.file_name(), b.file_name()) == 0;
}

// Fiber stacks, kept for the process; each has a PROT_NONE page below it, so
// a kernel overflowing its stack crashes instead of corrupting another's.
inline std::vector<Fiber>& fiber_pool(int n) {
  static std::vector<Fiber> pool(1024);
  for (int i = 0; i < n; ++i) {
    if (pool[i].stack) continue;
    void* p = mmap(nullptr, kGuardBytes + kStackBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    mprotect(p, kGuardBytes, PROT_NONE);
    pool[i].stack = static_cast<char*>(p) + kGuardBytes;
  }
  return pool;
}

// Runs one block; throws EmuError on barrier divergence or a limit violation.
inline void run_block(const char* name, std::vector<Fiber>& fibers, int nthreads,
                      std::mt19937& rng) {
  for (int t = 0; t < nthreads; ++t) {
    Fiber& f = fibers[t];
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = nullptr;  // fiber_entry never returns: it jumps back
    f.started = f.done = false;
    makecontext(&f.ctx, fiber_entry, 0);
  }
  std::vector<int> order(nthreads);
  for (int t = 0; t < nthreads; ++t) order[t] = t;
  for (;;) {
    std::shuffle(order.begin(), order.end(), rng);
    for (int t : order) {
      Fiber& f = fibers[t];
      if (f.done) continue;
      current = &f;
      t_idx = f.idx;
      enter_fiber(f);
    }
    current = nullptr;
    if (!pending_violation.empty()) {
      const std::string v = pending_violation;
      pending_violation.clear();
      throw EmuError(std::string(name) + ", block " + str(b_idx) + ": " + v);
    }
    const Fiber* waiting = nullptr;
    const Fiber* exited = nullptr;
    for (int t = 0; t < nthreads; ++t) {
      const Fiber& f = fibers[t];
      if (f.done) {
        if (!exited) exited = &f;
        continue;
      }
      if (!waiting) {
        waiting = &f;
      } else if (!same_site(waiting->barrier, f.barrier)) {
        throw EmuError(std::string(name) + ", block " + str(b_idx) +
                       ": barrier divergence: thread " + str(waiting->idx) + " waits at " +
                       where(waiting->barrier) + ", thread " + str(f.idx) + " at " +
                       where(f.barrier));
      }
    }
    if (!waiting) return;  // every thread returned
    if (exited)
      throw EmuError(std::string(name) + ", block " + str(b_idx) +
                     ": barrier divergence: thread " + str(exited->idx) +
                     " returned while thread " + str(waiting->idx) + " waits at " +
                     where(waiting->barrier));
  }
}

inline uintptr_t image_offset(const void* fn) {
  Dl_info info{};
  if (dladdr(fn, &info) && info.dli_fbase)
    return reinterpret_cast<uintptr_t>(fn) - reinterpret_cast<uintptr_t>(info.dli_fbase);
  return 0;
}

template <class Kernel, class... Args>
void launch(const char* name, dim3 grid, dim3 block, size_t smem, cudaStream_t, Kernel kernel,
            Args... args) {
  const int64_t nthreads = int64_t(block.x) * block.y * block.z;
  LaunchRecord rec{name, grid, block, smem, 0, image_offset(reinterpret_cast<const void*>(kernel))};
  if (nthreads < 1 || nthreads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 ||
      grid.x < 1 || grid.y < 1 || grid.z < 1 || grid.x > 2147483647u || grid.y > 65535 ||
      grid.z > 65535 || smem > kSmemLimit) {
    last_error = cudaErrorInvalidConfiguration;
    launches.push_back(rec);
    return;
  }
  if (settings.dry_run) {
    launches.push_back(rec);
    if (int(launches.size()) == settings.fail_after_launch) last_error = cudaErrorLaunchFailure;
    return;
  }
  const int bound = launch_bound(kernel, args...);
  if (nthreads > bound) {  // a GPU refuses it: too many resources requested for launch
    last_error = cudaErrorLaunchOutOfResources;
    launches.push_back(rec);
    return;
  }
  b_dim = block, g_dim = grid;
  body = [&]() { kernel(args...); };
  std::vector<Fiber>& fibers = fiber_pool(int(nthreads));
  for (int t = 0; t < int(nthreads); ++t)
    fibers[t].idx = uint3{unsigned(t) % block.x, (unsigned(t) / block.x) % block.y,
                          unsigned(t) / (block.x * block.y)};
  release_shared();
  dyn_block = SharedBlock{aligned_block(smem), smem};
  std::mt19937 rng(settings.seed);
  try {
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) {
          b_idx = uint3{x, y, z};
          for (auto& [site, b] : shared_vars) poison(b.p, b.bytes);
          poison(dyn_block.p, dyn_block.bytes);
          run_block(name, fibers, int(nthreads), rng);
        }
  } catch (...) {
    rec.static_smem = static_bytes;
    launches.push_back(rec);
    release_shared();
    throw;
  }
  rec.static_smem = static_bytes;
  launches.push_back(rec);
  release_shared();
  if (int(launches.size()) == settings.fail_after_launch) last_error = cudaErrorLaunchFailure;
}

inline cudaError_t get_last_error() {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
inline cudaError_t memset_async(void* p, int v, size_t n, cudaStream_t) {
  if (!settings.dry_run) std::memset(p, v, n);
  return cudaSuccess;
}
inline cudaError_t get_device(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t set_device(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
inline const char* error_name(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    default: return "cudaErrorEmulated";
  }
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
#define __launch_bounds__(...)
#define threadIdx (cb_emu::t_idx)
#define blockIdx (cb_emu::b_idx)
#define blockDim (cb_emu::b_dim)
#define gridDim (cb_emu::g_dim)
#define __syncthreads() cb_emu::syncthreads()
// What grid_for() caps grid-stride grids at: small in the tests, so the
// grid-stride loops really loop.
#define CB_MAX_GRID_BLOCKS (::cb_emu::settings.grid_cap)
#define cudaGetLastError cb_emu::get_last_error
#define cudaMemsetAsync cb_emu::memset_async
#define cudaGetDevice cb_emu::get_device
#define cudaSetDevice cb_emu::set_device
#define cudaGetErrorName cb_emu::error_name
#define cudaGetErrorString cb_emu::error_name
using std::isnan;
using std::max;
using std::min;
