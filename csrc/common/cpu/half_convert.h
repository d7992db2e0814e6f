// bfloat16 / float16 <-> float32 for the CPU kernels, per ISA build.
// Widening is exact; narrowing rounds to nearest, ties to even, as torch's
// c10::BFloat16 / c10::Half do (NaN stays NaN, too large becomes inf for
// float16). float16 uses F16C where the build has it (the AVX2 and AVX-512
// builds), else the exact bit-level conversions of the FP16 library
// (github.com/Maratyszcza/FP16), which rely on float arithmetic rounding to
// nearest (no -ffast-math in these builds).
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "common/shapes.h"

namespace convbench {
namespace CB_CPU_NS {

inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bf16_to_float(uint16_t h) { return bits_float(uint32_t(h) << 16); }
inline uint16_t float_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // quiet NaN
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline float fp16_to_float(uint16_t h) {
  const uint32_t w = uint32_t(h) << 16, sign = w & 0x80000000u, two_w = w + w;
  const float normal = bits_float((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  const float subnormal = bits_float((two_w >> 17) | (126u << 23)) - 0.5f;
  return bits_float(sign | float_bits(two_w < (1u << 27) ? subnormal : normal));
}
inline uint16_t float_to_fp16(float f) {
  float base = (__builtin_fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
  const uint32_t w = float_bits(f), shl1_w = w + w, sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = bits_float((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = float_bits(base);
  const uint32_t nonsign = ((bits >> 13) & 0x7C00u) + (bits & 0x0FFFu);
  return uint16_t((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

inline bool is_half_dtype(DType dt) { return dt == DType::BFloat16 || dt == DType::Float16; }

// dst[i] = src[i] as float, n values.
inline void widen_to_float(DType dt, const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  if (dt == DType::BFloat16) {
#if defined(__AVX512F__)
    // (the maskz forms: GCC 12 warns on the plain ones' undefined operand)
    for (; i + 16 <= n; i += 16) {
      const __m256i h16 = _mm256_loadu_si256((const __m256i*)(src + i));
      const __m512i h = _mm512_maskz_cvtepu16_epi32(0xFFFF, h16);
      _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, h, 16)));
    }
#elif defined(__AVX2__)
    for (; i + 8 <= n; i += 8) {
      const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)(src + i)));
      _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(h, 16)));
    }
#endif
    for (; i < n; ++i) dst[i] = bf16_to_float(src[i]);
    return;
  }
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i,
                     _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256((const __m256i*)(src + i))));
#elif defined(__F16C__)
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(src + i))));
#endif
  for (; i < n; ++i) dst[i] = fp16_to_float(src[i]);
}

#if defined(__AVX2__)
// Eight floats rounded to bfloat16 (nearest, ties to even; NaN kept quiet).
inline __m128i float8_to_bf16(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  r = _mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x400000)), nan);
  r = _mm256_srli_epi32(r, 16);  // 16-bit values in 32-bit lanes
  const __m256i packed = _mm256_packus_epi32(r, r);  // per 128-bit lane
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}
#endif

// dst[i] = src[i] rounded to dt, n values.
inline void narrow_from_float(DType dt, const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  if (dt == DType::BFloat16) {
#if defined(__AVX2__)
    for (; i + 8 <= n; i += 8)
      _mm_storeu_si128((__m128i*)(dst + i), float8_to_bf16(_mm256_loadu_ps(src + i)));
#endif
    for (; i < n; ++i) dst[i] = float_to_bf16(src[i]);
    return;
  }
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256((__m256i*)(dst + i),
                        _mm512_maskz_cvtps_ph(0xFFFF, _mm512_loadu_ps(src + i),
                                              _MM_FROUND_TO_NEAREST_INT));
#elif defined(__F16C__)
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i*)(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
  for (; i < n; ++i) dst[i] = float_to_fp16(src[i]);
}

}  // namespace CB_CPU_NS
}  // namespace convbench
