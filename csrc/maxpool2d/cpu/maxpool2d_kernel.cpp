// max_pool2d on the CPU: one (n, c) plane per OpenMP task, so the backward
// scatter never races and is deterministic even when windows overlap.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/shapes.h"
#include "maxpool2d/pool_window.h"

namespace convbench {
namespace CB_CPU_NS {

template <typename T>
void max_pool2d_forward(const Pool2dShape& s, const T* x, T* y, int64_t* indices) {
  const int64_t planes = s.N * s.C;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const T* xp = x + plane * s.H * s.W;
    T* yp = y + plane * s.P * s.Q;
    int64_t* ip = indices + plane * s.P * s.Q;
    for (int64_t p = 0; p < s.P; ++p) {
      const int64_t h0 = p * s.stride_h - s.pad_h;
      for (int64_t q = 0; q < s.Q; ++q) {
        const int64_t w0 = q * s.stride_w - s.pad_w;
        // Like torch: the first maximum wins, every NaN replaces the running
        // maximum (so the last NaN gives the index), and a window with no
        // element above -inf reports its first in-bounds position (h0, w0
        // stepped past the padding by the dilation).
        const int64_t h_first = pool_first_in_bounds(h0, s.dil_h);
        const int64_t w_first = pool_first_in_bounds(w0, s.dil_w);
        T best = -INFINITY;
        int64_t best_idx = h_first * s.W + w_first;
        for (int64_t h = h_first; h < std::min(h0 + (s.kernel_h - 1) * s.dil_h + 1, s.H);
             h += s.dil_h) {
          for (int64_t w = w_first; w < std::min(w0 + (s.kernel_w - 1) * s.dil_w + 1, s.W);
               w += s.dil_w) {
            const T v = xp[h * s.W + w];
            if (v > best || std::isnan(v)) {
              best = v;
              best_idx = h * s.W + w;
            }
          }
        }
        yp[p * s.Q + q] = best;
        ip[p * s.Q + q] = best_idx;
      }
    }
  }
}

// Whether window row p (or column q) reads at least one input position; a
// window that reads only padding gets no gradient (see pool_window_holds).
inline std::vector<char> windows_with_input(int64_t n_out, int64_t size, int64_t stride,
                                            int64_t pad, int64_t kernel, int64_t dil) {
  std::vector<char> ok(static_cast<size_t>(n_out));
  for (int64_t o = 0; o < n_out; ++o) {
    const int64_t start = o * stride - pad;
    const int64_t first = pool_first_in_bounds(start, dil);
    ok[o] = first < size && first <= start + (kernel - 1) * dil;
  }
  return ok;
}

template <typename T>
void max_pool2d_backward(const Pool2dShape& s, const T* dy, const int64_t* indices, T* dx) {
  const int64_t planes = s.N * s.C;
  const int64_t hw = s.H * s.W, pq = s.P * s.Q;  // per plane
  // Indices from our forward lie in their window unless the window reads only
  // padding; checking that per row and column (not per element with
  // divisions) keeps the scatter memory-bound. The range check stops any
  // index, even a user's, from writing outside the plane.
  const auto row_ok = windows_with_input(s.P, s.H, s.stride_h, s.pad_h, s.kernel_h, s.dil_h);
  const auto col_ok = windows_with_input(s.Q, s.W, s.stride_w, s.pad_w, s.kernel_w, s.dil_w);
  bool all_ok = true;
  for (char c : row_ok) all_ok = all_ok && c;
  for (char c : col_ok) all_ok = all_ok && c;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane) {
    T* dxp = dx + plane * hw;
    std::fill(dxp, dxp + hw, T(0));
    const T* dyp = dy + plane * pq;
    const int64_t* ip = indices + plane * pq;
    if (all_ok) {
      for (int64_t i = 0; i < pq; ++i) {
        const int64_t j = ip[i];
        if (static_cast<uint64_t>(j) < static_cast<uint64_t>(hw)) dxp[j] += dyp[i];
      }
      continue;
    }
    for (int64_t p = 0; p < s.P; ++p) {
      if (!row_ok[p]) continue;
      for (int64_t q = 0; q < s.Q; ++q) {
        const int64_t j = ip[p * s.Q + q];
        if (col_ok[q] && static_cast<uint64_t>(j) < static_cast<uint64_t>(hw))
          dxp[j] += dyp[p * s.Q + q];
      }
    }
  }
}

#define CB_INSTANTIATE(T)                                                              \
  template void max_pool2d_forward<T>(const Pool2dShape&, const T*, T*, int64_t*);     \
  template void max_pool2d_backward<T>(const Pool2dShape&, const T*, const int64_t*, T*);
CB_INSTANTIATE(float)
CB_INSTANTIATE(double)
#undef CB_INSTANTIATE

}  // namespace CB_CPU_NS
}  // namespace convbench
