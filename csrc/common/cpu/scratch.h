// Scratch memory of the CPU kernels and small integer helpers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace convbench {
namespace CB_CPU_NS {

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int64_t ceil_div64(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up64(int64_t a, int64_t b) { return ceil_div64(a, b) * b; }

// Per-thread cache of released scratch blocks. Workspaces are re-requested
// with the same sizes call after call; fresh multi-MB allocations would be
// returned to the OS by free() and page-fault again, which costs as much as
// a small convolution. Keeps at most kCacheBlocks blocks, 128 MiB, per thread.
// (8 blocks were too few for a training step's mix of passes and engines:
// fwd+bwd of a 1 -> 16 layer at 32x32 then page-faulted 35-140 times a call,
// 1.1-1.2x slower; 32 hold them all.)
struct ScratchCache {
  static constexpr int kCacheBlocks = 32;
  struct Block {
    std::unique_ptr<unsigned char[]> mem;
    size_t bytes = 0;
  };
  Block blocks[kCacheBlocks];

  static ScratchCache& local() {
    static thread_local ScratchCache cache;
    return cache;
  }
  // Smallest cached block of at least `bytes`, else a new one.
  Block take(size_t bytes) {
    int best = -1;
    for (int i = 0; i < kCacheBlocks; ++i)
      if (blocks[i].mem && blocks[i].bytes >= bytes &&
          (best < 0 || blocks[i].bytes < blocks[best].bytes))
        best = i;
    if (best >= 0) return std::move(blocks[best]);
    Block b;
    b.mem.reset(new unsigned char[bytes]);
    b.bytes = bytes;
    return b;
  }
  // Keeps the block, evicting the smallest cached ones while the slots or
  // the per-thread byte budget are exceeded.
  void give(Block b) {
    constexpr size_t kBudget = size_t(128) << 20;
    if (b.bytes > kBudget) return;  // huge one-offs go back to the OS
    for (;;) {
      size_t total = b.bytes;
      int free_slot = -1, smallest = -1;
      for (int i = 0; i < kCacheBlocks; ++i) {
        if (!blocks[i].mem) {
          free_slot = i;
          continue;
        }
        total += blocks[i].bytes;
        if (smallest < 0 || blocks[i].bytes < blocks[smallest].bytes) smallest = i;
      }
      if (free_slot >= 0 && total <= kBudget) {
        blocks[free_slot] = std::move(b);
        return;
      }
      if (smallest < 0) return;
      blocks[smallest] = Block{};  // evict, then retry
    }
  }
};

// Software prefetch of n values from p on, a cache line at a time (into
// L1 and L2; Far: into L2 only, for data needed a chunk later).
template <bool Far = false, typename T>
inline void prefetch_lines(const T* p, int64_t n) {
  constexpr int64_t kLine = 64 / int64_t(sizeof(T));
  for (int64_t j = 0; j < n; j += kLine) __builtin_prefetch(p + j, 0, Far ? 2 : 3);
}

// Share `i` of `parts` of [p, p + n): a chunked engine fetches the next
// chunk's inputs a slice per task while it computes the current chunk.
template <typename T>
inline void prefetch_share(const T* p, int64_t n, int64_t i, int64_t parts) {
  const int64_t a = n * i / parts, b = n * (i + 1) / parts;
  prefetch_lines<true>(p + a, b - a);
}

// 64-byte aligned scratch; uninitialised; memory recycled per thread.
template <typename T>
struct Buffer {
  ScratchCache::Block block;
  explicit Buffer(int64_t n)
      : block(ScratchCache::local().take(sizeof(T) * static_cast<size_t>(n) + 64)) {}
  ~Buffer() { ScratchCache::local().give(std::move(block)); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* data() {
    auto a = reinterpret_cast<uintptr_t>(block.mem.get());
    return reinterpret_cast<T*>((a + 63) & ~uintptr_t(63));
  }
};

}  // namespace CB_CPU_NS
}  // namespace convbench
