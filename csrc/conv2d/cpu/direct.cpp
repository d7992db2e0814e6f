// Direct convolution: the plain seven-loop definition, OpenMP over
// independent output planes. The simple CPU baseline.
#include <algorithm>
#include <cstdint>

#include "common/shapes.h"

namespace convbench {
namespace CB_CPU_NS {

template <typename T>
void conv2d_forward_direct(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y) {
  const int64_t Cg = s.c_per_group(), Kg = s.k_per_group();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    for (int64_t k = 0; k < s.K; ++k) {
      const int64_t g = k / Kg;
      T* yp = y + (n * s.K + k) * s.P * s.Q;
      for (int64_t i = 0; i < s.P * s.Q; ++i) yp[i] = b ? b[k] : T(0);
      for (int64_t c = 0; c < Cg; ++c) {
        const T* xp = x + (n * s.C + g * Cg + c) * s.H * s.W;
        const T* wp = w + (k * Cg + c) * s.R * s.S;
        for (int64_t r = 0; r < s.R; ++r) {
          for (int64_t t = 0; t < s.S; ++t) {
            const T wv = wp[r * s.S + t];
            for (int64_t p = 0; p < s.P; ++p) {
              const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
              if (h < 0 || h >= s.H) continue;
              for (int64_t q = 0; q < s.Q; ++q) {
                const int64_t ww = q * s.stride_w - s.pad_w + t * s.dil_w;
                if (ww < 0 || ww >= s.W) continue;
                yp[p * s.Q + q] += wv * xp[h * s.W + ww];
              }
            }
          }
        }
      }
    }
  }
}

template <typename T>
void conv2d_backward_input_direct(const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  const int64_t Cg = s.c_per_group(), Kg = s.k_per_group();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    for (int64_t c = 0; c < s.C; ++c) {
      const int64_t g = c / Cg, cg = c % Cg;
      T* dxp = dx + (n * s.C + c) * s.H * s.W;
      std::fill(dxp, dxp + s.H * s.W, T(0));
      for (int64_t k = g * Kg; k < (g + 1) * Kg; ++k) {
        const T* dyp = dy + (n * s.K + k) * s.P * s.Q;
        const T* wp = w + (k * Cg + cg) * s.R * s.S;
        for (int64_t r = 0; r < s.R; ++r) {
          for (int64_t t = 0; t < s.S; ++t) {
            const T wv = wp[r * s.S + t];
            for (int64_t p = 0; p < s.P; ++p) {
              const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
              if (h < 0 || h >= s.H) continue;
              for (int64_t q = 0; q < s.Q; ++q) {
                const int64_t ww = q * s.stride_w - s.pad_w + t * s.dil_w;
                if (ww < 0 || ww >= s.W) continue;
                dxp[h * s.W + ww] += wv * dyp[p * s.Q + q];
              }
            }
          }
        }
      }
    }
  }
}

template <typename T>
void conv2d_backward_weight_direct(const Conv2dShape& s, const T* dy, const T* x, T* dw) {
  const int64_t Cg = s.c_per_group(), Kg = s.k_per_group();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t k = 0; k < s.K; ++k) {
    for (int64_t c = 0; c < Cg; ++c) {
      const int64_t g = k / Kg;
      T* dwp = dw + (k * Cg + c) * s.R * s.S;
      for (int64_t r = 0; r < s.R; ++r) {
        for (int64_t t = 0; t < s.S; ++t) {
          T acc = 0;
          for (int64_t n = 0; n < s.N; ++n) {
            const T* dyp = dy + (n * s.K + k) * s.P * s.Q;
            const T* xp = x + (n * s.C + g * Cg + c) * s.H * s.W;
            for (int64_t p = 0; p < s.P; ++p) {
              const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
              if (h < 0 || h >= s.H) continue;
              for (int64_t q = 0; q < s.Q; ++q) {
                const int64_t ww = q * s.stride_w - s.pad_w + t * s.dil_w;
                if (ww < 0 || ww >= s.W) continue;
                acc += dyp[p * s.Q + q] * xp[h * s.W + ww];
              }
            }
          }
          dwp[r * s.S + t] = acc;
        }
      }
    }
  }
}

#define CB_INSTANTIATE(T)                                                                   \
  template void conv2d_forward_direct<T>(const Conv2dShape&, const T*, const T*, const T*, T*); \
  template void conv2d_backward_input_direct<T>(const Conv2dShape&, const T*, const T*, T*); \
  template void conv2d_backward_weight_direct<T>(const Conv2dShape&, const T*, const T*, T*);
CB_INSTANTIATE(float)
CB_INSTANTIATE(double)
#undef CB_INSTANTIATE

}  // namespace CB_CPU_NS
}  // namespace convbench
