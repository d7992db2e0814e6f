// The one vector type the CPU kernels are written against. Its width follows
// the ISA build being compiled (see common/cpu_isa.h): 512 bits in
// cpu_avx512 (zmm, FMA, mask registers for tails), 256 bits in cpu_avx2 (ymm,
// FMA) and in cpu_generic (GCC/Clang vector extensions, split into SSE2
// halves). Kernels use Simd<T>::L lanes and never name an ISA; their register
// tiles come from cpu/tiles.h. Included only by the per-ISA sources
// (conv2d/cpu/*.cpp and maxpool2d/cpu/*.cpp), so every inline function lands
// in that ISA build's namespace.
#pragma once
#include <cstdint>
#include <cstring>
#include <utility>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

// The vectors never cross a non-inline ABI boundary; silence GCC's note.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace convbench {
namespace CB_CPU_NS {

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#else
constexpr int kVecBytes = 32;
#endif

template <typename T>
struct Simd {
  static constexpr int L = kVecBytes / sizeof(T);  // lanes
  typedef T V __attribute__((vector_size(kVecBytes)));

  static inline V zero() { return V{}; }
  static inline V bcast(T x) {
#if defined(__AVX512F__)
    if constexpr (sizeof(T) == 4) return (V)_mm512_set1_ps(x);
    else return (V)_mm512_set1_pd(x);
#elif defined(__AVX2__)
    if constexpr (sizeof(T) == 4) return (V)_mm256_set1_ps(x);
    else return (V)_mm256_set1_pd(x);
#else
    V v;  // (V{} + x would emit a real add of 0.0)
    for (int i = 0; i < L; ++i) v[i] = x;
    return v;
#endif
  }
  static inline V load(const T* p) {
#if defined(__AVX512F__)
    if constexpr (sizeof(T) == 4) return (V)_mm512_loadu_ps(p);
    else return (V)_mm512_loadu_pd(p);
#elif defined(__AVX2__)
    if constexpr (sizeof(T) == 4) return (V)_mm256_loadu_ps(p);
    else return (V)_mm256_loadu_pd(p);
#else
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
#endif
  }
  // The first n lanes from p (0 <= n <= L), zeros above; reads nothing past p[n-1].
  static inline V load_n(const T* p, int n) {
#if defined(__AVX512F__)
    if constexpr (sizeof(T) == 4) return (V)_mm512_maskz_loadu_ps(lane_mask(n), p);
    else return (V)_mm512_maskz_loadu_pd(lane_mask(n), p);
#elif defined(__AVX2__)
    if constexpr (sizeof(T) == 4) return (V)_mm256_maskload_ps(p, lane_mask(n));
    else return (V)_mm256_maskload_pd(p, lane_mask(n));
#else
    V v = zero();
    for (int i = 0; i < n; ++i) v[i] = p[i];
    return v;
#endif
  }
  // Lanes p[0], p[st], p[2 st], ...: stride > 1 convolutions.
  static inline V load_strided(const T* p, int64_t st) {
    V v;
    for (int i = 0; i < L; ++i) v[i] = p[i * st];
    return v;
  }
  // Lanes p[0], p[2], ... into even and p[1], p[3], ... into odd (2L values
  // read): splits a row by column parity (stride-2 layers).
  static inline void deinterleave2(const T* p, V& even, V& odd) {
    deinterleave2_(load(p), load(p + L), even, odd, std::make_integer_sequence<int, L>{});
  }
  // The inverse: p[0], p[2], ... from even and p[1], p[3], ... from odd (2L
  // values written).
  static inline void interleave2_store(T* p, V even, V odd) {
    interleave2_(p, even, odd, std::make_integer_sequence<int, L>{});
  }
  static inline void store(T* p, V v) {
#if defined(__AVX512F__)
    if constexpr (sizeof(T) == 4) _mm512_storeu_ps(p, (__m512)v);
    else _mm512_storeu_pd(p, (__m512d)v);
#else
    std::memcpy(p, &v, sizeof(V));
#endif
  }
  // Whether store_n is about as fast as a plain store: AVX-512's masked
  // stores are; AVX2's vmaskmov stores are microcoded on AMD Zen (a row's
  // masked tail measured 2-3% slower there than its scalar stores).
  static constexpr bool kFastStoreN = kVecBytes == 64;
  // The first n lanes of v to p (0 <= n <= L); writes nothing past p[n-1].
  static inline void store_n(T* p, V v, int n) {
#if defined(__AVX512F__)
    if constexpr (sizeof(T) == 4) _mm512_mask_storeu_ps(p, lane_mask(n), (__m512)v);
    else _mm512_mask_storeu_pd(p, lane_mask(n), (__m512d)v);
#elif defined(__AVX2__)
    if constexpr (sizeof(T) == 4) _mm256_maskstore_ps(p, lane_mask(n), (__m256)v);
    else _mm256_maskstore_pd(p, lane_mask(n), (__m256d)v);
#else
    for (int i = 0; i < n; ++i) p[i] = v[i];
#endif
  }
  static inline T hsum(V v) {
    T s = 0;
    for (int i = 0; i < L; ++i) s += v[i];
    return s;
  }
  // c + a * b, fused where the ISA has it (-std=c++17 disables contraction).
  static inline V fma(V a, V b, V c) {
#if defined(__AVX512F__)
    if constexpr (sizeof(T) == 4) return (V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
    else return (V)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif defined(__FMA__) && defined(__AVX2__)
    if constexpr (sizeof(T) == 4) return (V)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
    else return (V)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
    return c + a * b;
#endif
  }

 private:
  template <int... I>
  static inline void deinterleave2_(V a, V b, V& even, V& odd, std::integer_sequence<int, I...>) {
    even = __builtin_shufflevector(a, b, (2 * I)...);
    odd = __builtin_shufflevector(a, b, (2 * I + 1)...);
  }
  template <int... I>
  static inline void interleave2_(T* p, V even, V odd, std::integer_sequence<int, I...>) {
    store(p, __builtin_shufflevector(even, odd, (I % 2 ? L + I / 2 : I / 2)...));
    store(p + L, __builtin_shufflevector(even, odd, (I % 2 ? L + L / 2 + I / 2 : L / 2 + I / 2)...));
  }
#if defined(__AVX512F__)
  // Mask of the low n lanes (n <= 16).
  static inline __mmask16 lane_mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
#elif defined(__AVX2__)
  // Lanes i < n all ones (the sign bit selects), as 32- or 64-bit integers.
  static inline __m256i lane_mask(int n) {
    if constexpr (sizeof(T) == 4)
      return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    else
      return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
#endif
};

}  // namespace CB_CPU_NS
}  // namespace convbench
