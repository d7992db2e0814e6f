// The numbers of the CPU conv2d engines within their algorithm (a
// Conv2dConfig's engine; 0 lets the algorithm choose). The engine table
// (conv2d_cpu.cpp) lists each engine's kernels, name and shapes; the
// heuristic (choose.cpp) picks among them by these numbers.
#pragma once

namespace convbench {
namespace cpu_engine {

constexpr int kDirectFlat = 1;  // Direct, vectorised along output positions (direct.cpp)
constexpr int kDirectKvec = 2;  // Direct, vectorised along output channels (direct_kvec.cpp)
constexpr int kDirectDepthwise = 3;  // Direct, per group along output rows (depthwise.cpp)
constexpr int kIm2colGemm = 1;  // im2col + our blocked GEMM (im2col_gemm.cpp)
constexpr int kPointwiseGemm = 2;  // 1x1: a GEMM over the channels, no patch matrix (pointwise.cpp)
constexpr int kWinogradF2 = 1;  // Winograd F(2x2,3x3) (winograd.cpp)
constexpr int kWinogradF4 = 2;  // Winograd F(4x4,3x3) (winograd.cpp)

}  // namespace cpu_engine
}  // namespace convbench
