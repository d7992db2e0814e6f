// CPU conv2d dispatch: dtype -> element type, algorithm -> kernel, ISA ->
// compiled variant; Auto resolved by shape (see conv2d_choose_algo_cpu).
#include "common/check.h"
#include "common/cpu_isa.h"
#include "conv2d/conv2d.h"
#include "conv2d/cpu/conv2d_cpu_kernels.h"

namespace convbench {

namespace {

// F(2x2, 3x3) covers the forward pass and the input gradient (a 3x3
// stride-1 forward problem too) of 3x3, stride 1, dilation 1 layers.
bool winograd_applies(Conv2dPass pass, const Conv2dShape& s) {
  return pass != Conv2dPass::BackwardWeight && s.R == 3 && s.S == 3 && s.stride_h == 1 &&
         s.stride_w == 1 && s.dil_h == 1 && s.dil_w == 1;
}

Conv2dAlgo resolve(Conv2dAlgo algo, Conv2dPass pass, DType dtype, const Conv2dShape& s) {
  if (algo == Conv2dAlgo::Auto) return conv2d_choose_algo_cpu(pass, dtype, s);
  // Winograd has no grad-weight form: a layer asked to use it still trains,
  // its weight gradient taking Auto's choice.
  if (algo == Conv2dAlgo::Winograd && pass == Conv2dPass::BackwardWeight)
    return conv2d_choose_algo_cpu(pass, dtype, s);
  CB_CHECK(algo == Conv2dAlgo::Direct || algo == Conv2dAlgo::Im2colGemm ||
               algo == Conv2dAlgo::Winograd,
           "conv2d: algorithm '", conv2d_algo_name(algo), "' (", static_cast<int>(algo),
           ") is not implemented on the CPU");
  CB_CHECK(algo != Conv2dAlgo::Winograd || winograd_applies(pass, s),
           "conv2d: algorithm 'winograd' on the CPU needs a 3x3 kernel, stride 1 and dilation 1 "
           "(got ", s.R, "x", s.S, " kernel, stride ", s.stride_h, "x", s.stride_w,
           ", dilation ", s.dil_h, "x", s.dil_w, ")");
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
  else if (a == Conv2dAlgo::Winograd)
    CB_CPU_DISPATCH(conv2d_forward_winograd<T>, s, xp, wp, bp, yp);
  else
    CB_CPU_DISPATCH(conv2d_forward_im2col<T>, s, xp, wp, bp, yp);
}

template <typename T>
void backward_input(Conv2dAlgo a, const Conv2dShape& s, const void* dy, const void* w, void* dx) {
  auto dyp = static_cast<const T*>(dy), wp = static_cast<const T*>(w);
  auto dxp = static_cast<T*>(dx);
  if (a == Conv2dAlgo::Direct)
    CB_CPU_DISPATCH(conv2d_backward_input_direct<T>, s, dyp, wp, dxp);
  else if (a == Conv2dAlgo::Winograd)
    CB_CPU_DISPATCH(conv2d_backward_input_winograd<T>, s, dyp, wp, dxp);
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

// Auto, from side-by-side runs of the algorithms on the homework layers
// (2 Zen3 cores, float32). Direct won nearly every forward and grad-input
// pass, small 7x7 images included: its register-tile waste on the flattened
// padded grid costs less than im2col's copies, and it skips kernel rows that
// only read padding. Im2colGemm wins where Direct is structurally weak:
//  * column stride > 1 (forward, grad-weight): Direct gathers lane by lane,
//    im2col pays the strided access once;
//  * grad-weight when one image's padded planes plus dy exceed Direct's L2
//    chunk: Direct then reduces over a single image per tile (short dot
//    products, per-tile overhead), the GEMM folds several images into L
//    (e.g. 64->128 at 15x15: 0.84x vs 0.62x of torch).
namespace {

constexpr int64_t kDirectWgradChunkBytes = 384 << 10;  // = kWgradChunkBytes in cpu/direct.cpp

}  // namespace

Conv2dAlgo conv2d_choose_algo_cpu(Conv2dPass pass, DType dtype, const Conv2dShape& s) {
  switch (pass) {
    case Conv2dPass::Forward:
      // Winograd's 2.25x fewer products beat its transforms only with many
      // channels on both sides (64->128 at 15x15: 1.14-1.38x over Direct;
      // 32->64: a tie; below that Direct wins).
      if (winograd_applies(pass, s) && s.c_per_group() >= 64 && s.k_per_group() >= 64)
        return Conv2dAlgo::Winograd;
      return s.stride_w == 1 ? Conv2dAlgo::Direct : Conv2dAlgo::Im2colGemm;
    case Conv2dPass::BackwardInput:  // stride-1 problem over zero-inserted dy
      return Conv2dAlgo::Direct;
    default: {
      if (s.stride_w != 1) return Conv2dAlgo::Im2colGemm;
      const int64_t elem = dtype == DType::Float64 ? 8 : 4, L = 32 / elem;
      const int64_t Hp = (s.P - 1) * s.stride_h + (s.R - 1) * s.dil_h + 1;
      const int64_t Wp = (s.Q - 1) + (s.S - 1) * s.dil_w + 1;
      const int64_t J = (s.P - 1) * s.stride_h * Wp + s.Q;
      const int64_t per_image = (s.C * Hp * Wp + s.K * ((J + L - 1) / L * L)) * elem;
      return s.N > 1 && 2 * per_image > kDirectWgradChunkBytes ? Conv2dAlgo::Im2colGemm
                                                                : Conv2dAlgo::Direct;
    }
  }
}

std::vector<Conv2dAlgo> conv2d_algos_cpu() {
  return {Conv2dAlgo::Direct, Conv2dAlgo::Im2colGemm, Conv2dAlgo::Winograd};
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
