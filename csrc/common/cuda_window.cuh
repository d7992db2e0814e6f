// The taps of a dilated sliding window that land inside the plane: the loop
// the direct conv and the max-pool forward kernels both gather over.
#pragma once
#include <cstdint>

namespace convbench {

// f(r, u, h, w) for each tap (r, u) of a taps_h x taps_w window whose tap
// (0, 0) sits at (h0, w0) and whose taps are dil_h / dil_w apart, with (h, w)
// inside the H x W plane; row by row, in tap order (the max-pool's first-
// maximum rule depends on it).
template <typename F>
__device__ __forceinline__ void for_each_tap_inside(int64_t h0, int64_t w0, int64_t taps_h,
                                                    int64_t taps_w, int64_t dil_h, int64_t dil_w,
                                                    int64_t H, int64_t W, F&& f) {
  for (int64_t r = 0; r < taps_h; ++r) {
    const int64_t h = h0 + r * dil_h;
    if (h < 0 || h >= H) continue;
    for (int64_t u = 0; u < taps_w; ++u) {
      const int64_t w = w0 + u * dil_w;
      if (w < 0 || w >= W) continue;
      f(r, u, h, w);
    }
  }
}

}  // namespace convbench
