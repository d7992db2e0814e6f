// max_pool2d entry points called by the bindings. Contiguous NCHW pointers:
// input [N,C,H,W], output and indices [N,C,P,Q]; indices are int64 flat
// offsets h * W + w inside each (n, c) plane (torch's semantics; padding
// reads as -inf; NaN propagates like torch). Backward overwrites all of dx.
#pragma once
#include "common/shapes.h"

namespace convbench {

void max_pool2d_forward_cpu(DType dtype, const Pool2dShape& s, const void* x, void* y,
                            int64_t* indices);
void max_pool2d_backward_cpu(DType dtype, const Pool2dShape& s, const void* dy,
                             const int64_t* indices, void* dx);

#ifdef CONVBENCH_WITH_CUDA
void max_pool2d_forward_cuda(DType dtype, const Pool2dShape& s, const void* x, void* y,
                             int64_t* indices, int device, void* stream);
void max_pool2d_backward_cuda(DType dtype, const Pool2dShape& s, const void* dy,
                              const int64_t* indices, void* dx, int device, void* stream);
#endif

}  // namespace convbench
