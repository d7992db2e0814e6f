// CPU conv2d dispatch: dtype -> element type, algorithm -> kernel, ISA ->
// compiled variant; Auto resolved by shape (see conv2d_choose_algo_cpu).
#include "common/check.h"
#include "common/cpu_isa.h"
#include "conv2d/conv2d.h"
#include "conv2d/cpu/conv2d_cpu_kernels.h"

namespace convbench {

namespace {

const char* algo_name(Conv2dAlgo a) {
  switch (a) {
    case Conv2dAlgo::Auto: return "auto";
    case Conv2dAlgo::Direct: return "direct";
    case Conv2dAlgo::Im2colGemm: return "im2col";
    case Conv2dAlgo::ImplicitGemm: return "implicit_gemm";
    case Conv2dAlgo::Winograd: return "winograd";
    case Conv2dAlgo::Fused: return "fused";
  }
  return "unknown";
}

Conv2dAlgo resolve(Conv2dAlgo algo, Conv2dPass pass, DType dtype, const Conv2dShape& s) {
  if (algo == Conv2dAlgo::Auto) return conv2d_choose_algo_cpu(pass, dtype, s);
  CB_CHECK(algo == Conv2dAlgo::Direct || algo == Conv2dAlgo::Im2colGemm, "conv2d: algorithm '",
           algo_name(algo), "' (", static_cast<int>(algo), ") is not implemented on the CPU");
  return algo;
}

void check_dtype(DType dtype) {
  CB_CHECK(dtype == DType::Float32 || dtype == DType::Float64,
           "conv2d on the CPU supports float32 and float64, got dtype code ",
           static_cast<int>(dtype));
}

template <typename T>
void forward(Conv2dAlgo a, const Conv2dShape& s, const void* x, const void* w, const void* b,
             void* y) {
  auto xp = static_cast<const T*>(x), wp = static_cast<const T*>(w), bp = static_cast<const T*>(b);
  auto yp = static_cast<T*>(y);
  if (a == Conv2dAlgo::Direct)
    CB_CPU_DISPATCH(conv2d_forward_direct<T>, s, xp, wp, bp, yp);
  else
    CB_CPU_DISPATCH(conv2d_forward_im2col<T>, s, xp, wp, bp, yp);
}

template <typename T>
void backward_input(Conv2dAlgo a, const Conv2dShape& s, const void* dy, const void* w, void* dx) {
  auto dyp = static_cast<const T*>(dy), wp = static_cast<const T*>(w);
  auto dxp = static_cast<T*>(dx);
  if (a == Conv2dAlgo::Direct)
    CB_CPU_DISPATCH(conv2d_backward_input_direct<T>, s, dyp, wp, dxp);
  else
    CB_CPU_DISPATCH(conv2d_backward_input_im2col<T>, s, dyp, wp, dxp);
}

template <typename T>
void backward_weight(Conv2dAlgo a, const Conv2dShape& s, const void* dy, const void* x, void* dw) {
  auto dyp = static_cast<const T*>(dy), xp = static_cast<const T*>(x);
  auto dwp = static_cast<T*>(dw);
  if (a == Conv2dAlgo::Direct)
    CB_CPU_DISPATCH(conv2d_backward_weight_direct<T>, s, dyp, xp, dwp);
  else
    CB_CPU_DISPATCH(conv2d_backward_weight_im2col<T>, s, dyp, xp, dwp);
}

}  // namespace

// Auto. Both algorithms run the same register tiles (4 channels x 3 vectors)
// and differ in what they waste: Direct computes output positions on a
// flattened padded grid (row ends and tile tails are thrown away), which
// hurts small images, while Im2colGemm computes only real positions (the
// batch is folded into the GEMM columns) but pays one im2col copy per
// (position, c, r, s), amortised over the output channels. Direct also needs
// unit column stride for plain vector loads. Measured on 2 Zen3 cores with
// the homework layers: a copy costs about kCopyCost output-channel FMAs.
namespace {

constexpr double kCopyCost = 6.0;

// Positions Direct computes per useful one, for output Ho x Wo read through
// kernel width S (dilation dw) at strides sh, sw.
double direct_waste(int64_t Ho, int64_t Wo, int64_t S, int64_t sh, int64_t sw, int64_t dw,
                    int64_t tile) {
  const int64_t Wp = ((Wo - 1) * sw + (S - 1) * dw + 1 + sw - 1) / sw * sw;
  const int64_t Wq = sh * Wp / sw;
  const int64_t J = (Ho - 1) * Wq + Wo;
  const int64_t computed = (J + tile - 1) / tile * tile;
  return static_cast<double>(computed) / static_cast<double>(Ho * Wo);
}

}  // namespace

Conv2dAlgo conv2d_choose_algo_cpu(Conv2dPass pass, DType dtype, const Conv2dShape& s) {
  const int64_t tile = dtype == DType::Float64 ? 12 : 24;
  if (s.N == 0 || s.P == 0 || s.Q == 0 || s.H == 0 || s.W == 0) return Conv2dAlgo::Direct;
  double waste, channels;
  switch (pass) {
    case Conv2dPass::Forward:
      if (s.stride_w != 1) return Conv2dAlgo::Im2colGemm;
      waste = direct_waste(s.P, s.Q, s.S, s.stride_h, 1, s.dil_w, tile);
      channels = static_cast<double>((s.k_per_group() + 3) / 4 * 4);
      break;
    case Conv2dPass::BackwardInput:  // a stride-1 forward over zero-inserted dy
      waste = direct_waste(s.H, s.W, s.S, 1, 1, s.dil_w, tile);
      channels = static_cast<double>((s.c_per_group() + 3) / 4 * 4);
      break;
    default:  // BackwardWeight: reduction along flattened rows, vector tails only
      if (s.stride_w != 1) return Conv2dAlgo::Im2colGemm;
      waste = direct_waste(s.P, s.Q, s.S, s.stride_h, 1, s.dil_w, tile / 3);
      channels = static_cast<double>((s.k_per_group() + 3) / 4 * 4);
      break;
  }
  return waste * channels <= channels + kCopyCost ? Conv2dAlgo::Direct : Conv2dAlgo::Im2colGemm;
}

std::vector<Conv2dAlgo> conv2d_algos_cpu() {
  return {Conv2dAlgo::Direct, Conv2dAlgo::Im2colGemm};
}

void conv2d_forward_cpu(Conv2dAlgo algo, DType dtype, const Conv2dShape& s, const void* x,
                        const void* w, const void* bias, void* y) {
  check_dtype(dtype);
  const Conv2dAlgo a = resolve(algo, Conv2dPass::Forward, dtype, s);
  if (s.N == 0 || s.K == 0 || s.P == 0 || s.Q == 0) return;
  if (dtype == DType::Float32)
    forward<float>(a, s, x, w, bias, y);
  else
    forward<double>(a, s, x, w, bias, y);
}

void conv2d_backward_input_cpu(Conv2dAlgo algo, DType dtype, const Conv2dShape& s,
                               const void* dy, const void* w, void* dx) {
  check_dtype(dtype);
  const Conv2dAlgo a = resolve(algo, Conv2dPass::BackwardInput, dtype, s);
  if (s.N == 0 || s.C == 0 || s.H == 0 || s.W == 0) return;
  // Handles P == 0 or Q == 0 too: dy is empty, dx is all zeros.
  if (dtype == DType::Float32)
    backward_input<float>(a, s, dy, w, dx);
  else
    backward_input<double>(a, s, dy, w, dx);
}

void conv2d_backward_weight_cpu(Conv2dAlgo algo, DType dtype, const Conv2dShape& s,
                                const void* dy, const void* x, void* dw) {
  check_dtype(dtype);
  const Conv2dAlgo a = resolve(algo, Conv2dPass::BackwardWeight, dtype, s);
  if (s.weight_numel() == 0) return;
  // Empty batch or output: the kernels write zeros.
  if (dtype == DType::Float32)
    backward_weight<float>(a, s, dy, x, dw);
  else
    backward_weight<double>(a, s, dy, x, dw);
}

}  // namespace convbench
