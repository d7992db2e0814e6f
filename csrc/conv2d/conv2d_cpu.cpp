// CPU conv2d dispatch: dtype -> element type, (algorithm, engine) -> kernel,
// ISA -> compiled variant. Auto and variant 0 are resolved by the variant's
// own heuristic (cpu/choose.cpp), in one place.
#include "common/check.h"
#include "common/cpu_isa.h"
#include "conv2d/conv2d.h"
#include "conv2d/cpu/conv2d_cpu_kernels.h"

namespace convbench {

namespace {

constexpr int kDirectFlat = 1, kWinogradF2 = 1;

int variants_of(Conv2dAlgo a) {
  return a == Conv2dAlgo::Direct || a == Conv2dAlgo::Winograd ? 2 : 1;
}

void check_dtype(DType dtype) {
  CB_CHECK(dtype == DType::Float32 || dtype == DType::Float64,
           "conv2d on the CPU supports float32 and float64, got dtype code ",
           static_cast<int>(dtype));
}

template <typename T>
void forward(Conv2dConfig c, const Conv2dShape& s, const void* x, const void* w, const void* b,
             void* y) {
  auto xp = static_cast<const T*>(x), wp = static_cast<const T*>(w), bp = static_cast<const T*>(b);
  auto yp = static_cast<T*>(y);
  if (c.algo == Conv2dAlgo::Direct && c.variant == kDirectFlat)
    CB_CPU_DISPATCH(conv2d_forward_direct_flat<T>, s, xp, wp, bp, yp);
  else if (c.algo == Conv2dAlgo::Direct)
    CB_CPU_DISPATCH(conv2d_forward_direct_kvec<T>, s, xp, wp, bp, yp);
  else if (c.algo == Conv2dAlgo::Winograd && c.variant == kWinogradF2)
    CB_CPU_DISPATCH(conv2d_forward_winograd<T>, s, xp, wp, bp, yp);
  else if (c.algo == Conv2dAlgo::Winograd)
    CB_CPU_DISPATCH(conv2d_forward_winograd4<T>, s, xp, wp, bp, yp);
  else
    CB_CPU_DISPATCH(conv2d_forward_im2col<T>, s, xp, wp, bp, yp);
}

template <typename T>
void backward_input(Conv2dConfig c, const Conv2dShape& s, const void* dy, const void* w,
                    void* dx) {
  auto dyp = static_cast<const T*>(dy), wp = static_cast<const T*>(w);
  auto dxp = static_cast<T*>(dx);
  if (c.algo == Conv2dAlgo::Direct && c.variant == kDirectFlat)
    CB_CPU_DISPATCH(conv2d_backward_input_direct_flat<T>, s, dyp, wp, dxp);
  else if (c.algo == Conv2dAlgo::Direct)
    CB_CPU_DISPATCH(conv2d_backward_input_direct_kvec<T>, s, dyp, wp, dxp);
  else if (c.algo == Conv2dAlgo::Winograd && c.variant == kWinogradF2)
    CB_CPU_DISPATCH(conv2d_backward_input_winograd<T>, s, dyp, wp, dxp);
  else if (c.algo == Conv2dAlgo::Winograd)
    CB_CPU_DISPATCH(conv2d_backward_input_winograd4<T>, s, dyp, wp, dxp);
  else
    CB_CPU_DISPATCH(conv2d_backward_input_im2col<T>, s, dyp, wp, dxp);
}

template <typename T>
void backward_weight(Conv2dConfig c, const Conv2dShape& s, const void* dy, const void* x,
                     void* dw, void* db) {
  auto dyp = static_cast<const T*>(dy), xp = static_cast<const T*>(x);
  auto dwp = static_cast<T*>(dw);
  if (c.algo == Conv2dAlgo::Direct && c.variant == kDirectFlat)
    CB_CPU_DISPATCH(conv2d_backward_weight_direct_flat<T>, s, dyp, xp, dwp);
  else if (c.algo == Conv2dAlgo::Direct)
    CB_CPU_DISPATCH(conv2d_backward_weight_direct_kvec<T>, s, dyp, xp, dwp);
  else
    CB_CPU_DISPATCH(conv2d_backward_weight_im2col<T>, s, dyp, xp, dwp);
  if (db) CB_CPU_DISPATCH(conv2d_backward_bias<T>, s, dyp, static_cast<T*>(db));
}

}  // namespace

Conv2dConfig conv2d_resolve_cpu(Conv2dConfig c, Conv2dPass pass, DType dtype,
                                const Conv2dShape& s) {
  check_dtype(dtype);
  CB_CHECK(c.algo == Conv2dAlgo::Auto || c.algo == Conv2dAlgo::Direct ||
               c.algo == Conv2dAlgo::Im2colGemm || c.algo == Conv2dAlgo::Winograd,
           "conv2d: algorithm '", conv2d_algo_name(c.algo), "' (", static_cast<int>(c.algo),
           ") is not implemented on the CPU");
  CB_CHECK(c.algo != Conv2dAlgo::Winograd || pass == Conv2dPass::BackwardWeight ||
               conv2d_winograd_applies(pass, s),
           "conv2d: algorithm 'winograd' on the CPU needs a 3x3 kernel, stride 1 and dilation 1 "
           "(got ", s.R, "x", s.S, " kernel, stride ", s.stride_h, "x", s.stride_w,
           ", dilation ", s.dil_h, "x", s.dil_w, ")");
  CB_CHECK(c.variant >= 0 && (c.algo == Conv2dAlgo::Auto ? c.variant == 0
                                                          : c.variant <= variants_of(c.algo)),
           "conv2d: algorithm '", conv2d_algo_name(c.algo), "' has no CPU engine ", c.variant);
  if (c.algo == Conv2dAlgo::Auto || c.variant == 0 ||
      (c.algo == Conv2dAlgo::Winograd && pass == Conv2dPass::BackwardWeight))
    c = CB_CPU_DISPATCH(conv2d_choose_config, pass, dtype, c.algo, s);
  return c;
}

Conv2dAlgo conv2d_choose_algo_cpu(Conv2dPass pass, DType dtype, const Conv2dShape& s) {
  return conv2d_resolve_cpu({}, pass, dtype, s).algo;
}

std::vector<Conv2dConfig> conv2d_candidates_cpu(Conv2dPass pass, DType dtype,
                                                const Conv2dShape& s) {
  check_dtype(dtype);
  return CB_CPU_DISPATCH(conv2d_candidate_configs, pass, dtype, s);
}

std::vector<Conv2dAlgo> conv2d_algos_cpu() {
  return {Conv2dAlgo::Direct, Conv2dAlgo::Im2colGemm, Conv2dAlgo::Winograd};
}

const char* conv2d_variant_name_cpu(Conv2dAlgo algo, int variant) {
  if (variant == 0) return "";
  if (algo == Conv2dAlgo::Direct) return variant == kDirectFlat ? "flat" : "kvec";
  if (algo == Conv2dAlgo::Winograd) return variant == kWinogradF2 ? "f2x2" : "f4x4";
  return "gemm";
}

void conv2d_forward_cpu(Conv2dConfig cfg, DType dtype, const Conv2dShape& s, const void* x,
                        const void* w, const void* bias, void* y) {
  const Conv2dConfig c = conv2d_resolve_cpu(cfg, Conv2dPass::Forward, dtype, s);
  if (s.N == 0 || s.K == 0 || s.P == 0 || s.Q == 0) return;
  if (dtype == DType::Float32)
    forward<float>(c, s, x, w, bias, y);
  else
    forward<double>(c, s, x, w, bias, y);
}

void conv2d_backward_input_cpu(Conv2dConfig cfg, DType dtype, const Conv2dShape& s,
                               const void* dy, const void* w, void* dx) {
  const Conv2dConfig c = conv2d_resolve_cpu(cfg, Conv2dPass::BackwardInput, dtype, s);
  if (s.N == 0 || s.C == 0 || s.H == 0 || s.W == 0) return;
  // Handles P == 0 or Q == 0 too: dy is empty, dx is all zeros.
  if (dtype == DType::Float32)
    backward_input<float>(c, s, dy, w, dx);
  else
    backward_input<double>(c, s, dy, w, dx);
}

void conv2d_backward_weight_cpu(Conv2dConfig cfg, DType dtype, const Conv2dShape& s,
                                const void* dy, const void* x, void* dw, void* db) {
  const Conv2dConfig c = conv2d_resolve_cpu(cfg, Conv2dPass::BackwardWeight, dtype, s);
  if (s.weight_numel() == 0) return;
  // Empty batch or output: the kernels write zeros (db too).
  if (dtype == DType::Float32)
    backward_weight<float>(c, s, dy, x, dw, db);
  else
    backward_weight<double>(c, s, dy, x, dw, db);
}

}  // namespace convbench
