// Window arithmetic shared by the CPU and CUDA max-pool kernels, so both
// follow torch's index rule and agree on which outputs feed an input.
#pragma once

#include <cstdint>

#include "common/shapes.h"

#ifdef __CUDACC__
#define CB_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define CB_HOST_DEVICE inline
#endif

namespace convbench {

// First position of a window's grid at or after 0: torch's argmax start. A
// window that reads only padding keeps it (it may then lie past the input).
CB_HOST_DEVICE int64_t pool_first_in_bounds(int64_t start, int64_t dilation) {
  return start < 0 ? start + ((-start + dilation - 1) / dilation) * dilation : start;
}

// Whether flat in-plane index j is one of the input positions window (p, q)
// reads. Backward kernels route a gradient only through such an index, so a
// window of only padding (torch's -inf, whose index points elsewhere) gives
// no gradient instead of a wrong one or an out-of-bounds write.
CB_HOST_DEVICE bool pool_window_holds(const Pool2dShape& s, int64_t p, int64_t q, int64_t j) {
  if (j < 0 || j >= s.H * s.W) return false;
  const int64_t dh = j / s.W - (p * s.stride_h - s.pad_h);
  const int64_t dw = j % s.W - (q * s.stride_w - s.pad_w);
  return dh >= 0 && dw >= 0 && dh % s.dil_h == 0 && dw % s.dil_w == 0 &&
         dh / s.dil_h < s.kernel_h && dw / s.dil_w < s.kernel_w;
}

}  // namespace convbench
