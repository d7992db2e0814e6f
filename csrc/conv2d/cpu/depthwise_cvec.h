// The depthwise engine's second layout (depthwise_cvec.cpp): channels in
// the vector lanes, for depthwise layers of multiplier 1 on small or strided
// planes, where a vector along each output row is mostly waste.
#pragma once
#include <cstdint>

#include "common/shapes.h"

namespace convbench {
namespace CB_CPU_NS {

// Whether the channel-vectorised layout runs this depthwise layer: one
// output channel per group, and output rows shorter than two vectors or a
// stride (the row layout splits strided planes by phase and, for the input
// gradient, solves every phase separately: 0.4-0.7x of PyTorch on
// MobileNetV2's strided layers).
bool depthwise_cvec_applies(const Conv2dShape& s, int lanes);

template <typename T>
void depthwise_cvec_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y);
template <typename T>
void depthwise_cvec_backward_input(const Conv2dShape& s, const T* dy, const T* w, T* dx);
template <typename T>
void depthwise_cvec_backward_weight(const Conv2dShape& s, const T* dy, const T* x, T* dw);

}  // namespace CB_CPU_NS
}  // namespace convbench
