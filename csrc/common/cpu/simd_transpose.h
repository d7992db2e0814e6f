// Transposes of L x L blocks (L = Simd<T>::L), the layout changes between
// NCHW tensors and the channel-vectorised engines' [position][channel]
// buffers. The only ISA-specific shuffles of the CPU kernels live here: the
// AVX-512 and AVX2 sequences are the usual unpack / shuffle / lane-permute
// ladders (64 and 24 shuffles for 16x16 and 8x8 floats); cpu_generic copies.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/cpu/simd.h"

// GCC 12's AVX-512 unpack/shuffle intrinsics start from _mm512_undefined_*()
// and trip -Wuninitialized (a known false positive; no value is used).
#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace convbench {
namespace CB_CPU_NS {

// dst[j * ldd + i] = src[i * lds + j] for 0 <= i, j < L.
template <typename T>
inline void transpose_block(const T* src, int64_t lds, T* dst, int64_t ldd) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
      r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
      r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
      r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
      r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    // r[4q + j] holds, in each 128-bit lane l, column 4l + j of rows 4q..4q+3.
    for (int q = 0; q < 2; ++q)
      for (int j = 0; j < 4; ++j) {
        const __m512 a = r[8 * q + j], b = r[8 * q + 4 + j];
        t[8 * q + j] = _mm512_shuffle_f32x4(a, b, 0x88);      // lanes 0, 2 of a, b
        t[8 * q + 4 + j] = _mm512_shuffle_f32x4(a, b, 0xDD);  // lanes 1, 3
      }
    for (int j = 0; j < 4; ++j)
      for (int h = 0; h < 2; ++h) {
        const __m512 a = t[4 * h + j], b = t[8 + 4 * h + j];
        _mm512_storeu_ps(dst + (j + 4 * h) * ldd, _mm512_shuffle_f32x4(a, b, 0x88));
        _mm512_storeu_ps(dst + (j + 4 * h + 8) * ldd, _mm512_shuffle_f32x4(a, b, 0xDD));
      }
    return;
  } else {
    __m512d r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm512_loadu_pd(src + i * lds);
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);
    }
    // t[2p + j] holds, in each 128-bit lane l, column 2l + j of rows 2p, 2p+1.
    for (int j = 0; j < 2; ++j)
      for (int p = 0; p < 4; p += 2) {
        r[2 * p + j] = _mm512_shuffle_f64x2(t[2 * p + j], t[2 * p + 2 + j], 0x88);
        r[2 * p + 2 + j] = _mm512_shuffle_f64x2(t[2 * p + j], t[2 * p + 2 + j], 0xDD);
      }
    // r[0 + j], r[4 + j]: lanes (0, 2) of rows 0-3 / 4-7; r[2 + j], r[6 + j]: lanes (1, 3).
    for (int j = 0; j < 2; ++j)
      for (int h = 0; h < 2; ++h) {
        const __m512d a = r[2 * h + j], b = r[4 + 2 * h + j];
        _mm512_storeu_pd(dst + (j + 2 * h) * ldd, _mm512_shuffle_f64x2(a, b, 0x88));
        _mm512_storeu_pd(dst + (j + 2 * h + 4) * ldd, _mm512_shuffle_f64x2(a, b, 0xDD));
      }
    return;
  }
#elif defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
      r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
      r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
      r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int j = 0; j < 4; ++j) {
      _mm256_storeu_ps(dst + j * ldd, _mm256_permute2f128_ps(r[j], r[4 + j], 0x20));
      _mm256_storeu_ps(dst + (j + 4) * ldd, _mm256_permute2f128_ps(r[j], r[4 + j], 0x31));
    }
    return;
  } else {
    __m256d r[4], t[4];
    for (int i = 0; i < 4; ++i) r[i] = _mm256_loadu_pd(src + i * lds);
    t[0] = _mm256_unpacklo_pd(r[0], r[1]);
    t[1] = _mm256_unpackhi_pd(r[0], r[1]);
    t[2] = _mm256_unpacklo_pd(r[2], r[3]);
    t[3] = _mm256_unpackhi_pd(r[2], r[3]);
    _mm256_storeu_pd(dst, _mm256_permute2f128_pd(t[0], t[2], 0x20));
    _mm256_storeu_pd(dst + ldd, _mm256_permute2f128_pd(t[1], t[3], 0x20));
    _mm256_storeu_pd(dst + 2 * ldd, _mm256_permute2f128_pd(t[0], t[2], 0x31));
    _mm256_storeu_pd(dst + 3 * ldd, _mm256_permute2f128_pd(t[1], t[3], 0x31));
    return;
  }
#else
  constexpr int L = Simd<T>::L;
  for (int i = 0; i < L; ++i)
    for (int j = 0; j < L; ++j) dst[j * ldd + i] = src[i * lds + j];
#endif
}

// dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols, by L x L
// blocks; partial blocks at the edges go through a buffer (small planes and
// channel counts below L are common here).
template <typename T>
void transpose_2d(const T* src, int64_t lds, T* dst, int64_t ldd, int64_t rows, int64_t cols) {
  using S = Simd<T>;
  constexpr int64_t L = S::L;
  alignas(64) T in[L * L], out[L * L];
  for (int64_t i = 0; i < rows; i += L)
    for (int64_t j = 0; j < cols; j += L) {
      const int ni = static_cast<int>(std::min(L, rows - i));
      const int nj = static_cast<int>(std::min(L, cols - j));
      if (ni == L && nj == L) {
        transpose_block(src + i * lds + j, lds, dst + j * ldd + i, ldd);
        continue;
      }
      // Masked row copies: nothing outside the block is read or written.
      for (int a = 0; a < ni; ++a) S::store(in + a * L, S::load_n(src + (i + a) * lds + j, nj));
      transpose_block(in, L, out, L);
      for (int b = 0; b < nj; ++b) {
        if (S::kFastStoreN) {
          S::store_n(dst + (j + b) * ldd + i, S::load(out + b * L), ni);
        } else {
          for (int a = 0; a < ni; ++a) dst[(j + b) * ldd + i + a] = out[b * L + a];
        }
      }
    }
}

}  // namespace CB_CPU_NS
}  // namespace convbench
