// Portable 256-bit vectors (GCC/Clang vector extensions) for the conv kernels.
// In the cpu_avx2 variant they map onto ymm registers and FMA; in cpu_generic
// the compiler splits them into SSE2 halves. Included only by cpu/*.cpp, so
// every inline function lands in that variant's namespace.
#pragma once
#include <cstdint>
#include <cstring>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

// The vectors never cross a non-inline ABI boundary; silence GCC's note.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace convbench {
namespace CB_CPU_NS {

template <typename T>
struct Simd {
  static constexpr int L = 32 / sizeof(T);  // lanes
  typedef T V __attribute__((vector_size(32)));

  static inline V zero() { return V{}; }
  static inline V bcast(T x) {
#if defined(__AVX2__)
    if constexpr (sizeof(T) == 4) return (V)_mm256_set1_ps(x);
    else return (V)_mm256_set1_pd(x);
#else
    V v;  // (V{} + x would emit a real add of 0.0)
    for (int i = 0; i < L; ++i) v[i] = x;
    return v;
#endif
  }
  static inline V load(const T* p) {
#if defined(__AVX2__)
    if constexpr (sizeof(T) == 4) return (V)_mm256_loadu_ps(p);
    else return (V)_mm256_loadu_pd(p);
#endif
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  // Lanes p[0], p[st], p[2 st], ...: stride > 1 convolutions.
  static inline V load_strided(const T* p, int64_t st) {
    V v;
    for (int i = 0; i < L; ++i) v[i] = p[i * st];
    return v;
  }
  static inline void store(T* p, V v) { std::memcpy(p, &v, sizeof(V)); }
  static inline T hsum(V v) {
    T s = 0;
    for (int i = 0; i < L; ++i) s += v[i];
    return s;
  }
  // c + a * b, fused where the ISA has it (-std=c++17 disables contraction).
  static inline V fma(V a, V b, V c) {
#if defined(__FMA__) && defined(__AVX2__)
    if constexpr (sizeof(T) == 4) {
      return (V)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
    } else {
      return (V)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
    }
#else
    return c + a * b;
#endif
  }
};

}  // namespace CB_CPU_NS
}  // namespace convbench
