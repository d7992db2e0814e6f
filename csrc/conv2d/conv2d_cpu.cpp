// CPU conv2d dispatch: dtype -> element type, (algorithm, engine) -> kernel
// through the engine table, ISA -> compiled ISA build (CB_CPU_DISPATCH). Auto
// and engine 0 are resolved by the ISA build's own heuristic
// (cpu/choose.cpp), in one place.
#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "common/check.h"
#include "common/cpu_isa.h"
#include "conv2d/conv2d.h"
#include "conv2d/cpu/conv2d_cpu_kernels.h"
#include "conv2d/cpu/engines.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace convbench {

namespace {

void check_dtype(DType dtype) {
  CB_CHECK(dtype == DType::Float32 || dtype == DType::Float64 || dtype == DType::Float16 ||
               dtype == DType::BFloat16,
           "conv2d on the CPU supports float32, float64, float16 and bfloat16, got dtype code ",
           static_cast<int>(dtype));
}

bool is_half(DType dtype) { return dtype == DType::Float16 || dtype == DType::BFloat16; }

// The element type an engine computes in: the half types run float32 kernels.
DType compute_dtype(DType dtype) { return is_half(dtype) ? DType::Float32 : dtype; }

inline bool any_shape(Conv2dPass, const Conv2dShape&) { return true; }

// One pass of one engine for element type T, on the ISA build in use.
template <typename T>
using ForwardFn = void (*)(const Conv2dShape&, const T*, const T*, const T*, T*);
template <typename T>
using GradFn = void (*)(const Conv2dShape&, const T*, const T*, T*);

template <typename T>
struct EngineKernels {
  ForwardFn<T> forward;
  GradFn<T> backward_input;
  GradFn<T> backward_weight;  // nullptr: the pass takes auto's choice instead
};

// Each pass of ENGINE's kernels (conv2d_cpu_kernels.h) on the ISA build in use.
#define CB_ENGINE_FORWARD(ENGINE)                                          \
  +[](const Conv2dShape& s, const T* x, const T* w, const T* b, T* y) {    \
    CB_CPU_DISPATCH(conv2d_forward_##ENGINE<T>, s, x, w, b, y);            \
  }
#define CB_ENGINE_GRAD(PASS, ENGINE)                                       \
  +[](const Conv2dShape& s, const T* dy, const T* other, T* out) {         \
    CB_CPU_DISPATCH(conv2d_##PASS##_##ENGINE<T>, s, dy, other, out);       \
  }
#define CB_ENGINE_KERNELS(ENGINE)                                          \
  EngineKernels<T> {                                                       \
    CB_ENGINE_FORWARD(ENGINE), CB_ENGINE_GRAD(backward_input, ENGINE),     \
        CB_ENGINE_GRAD(backward_weight, ENGINE)                            \
  }
#define CB_ENGINE_KERNELS_NO_WGRAD(ENGINE)                                 \
  EngineKernels<T> { CB_ENGINE_FORWARD(ENGINE), CB_ENGINE_GRAD(backward_input, ENGINE), nullptr }

// The CPU engines, one row each: what runs a (algorithm, engine) request,
// its name, and the passes and shapes it covers. Dispatch, resolve, the
// autotuner's candidates (in this order), the engine names and the algorithm
// list all read this table.
template <typename T>
struct Engine {
  Conv2dAlgo algo;
  int engine;
  const char* name;
  bool (*applies)(Conv2dPass, const Conv2dShape&);
  EngineKernels<T> kernels;
};

template <typename T>
const std::array<Engine<T>, 7>& engines() {
  using namespace cpu_engine;
  static const std::array<Engine<T>, 7> table{{
      {Conv2dAlgo::Direct, kDirectFlat, "flat", any_shape, CB_ENGINE_KERNELS(direct_flat)},
      {Conv2dAlgo::Direct, kDirectKvec, "kvec", any_shape, CB_ENGINE_KERNELS(direct_kvec)},
      {Conv2dAlgo::Direct, kDirectDepthwise, "depthwise", conv2d_depthwise_applies,
       CB_ENGINE_KERNELS(depthwise)},
      {Conv2dAlgo::Im2colGemm, kIm2colGemm, "gemm", any_shape, CB_ENGINE_KERNELS(im2col)},
      {Conv2dAlgo::Im2colGemm, kPointwiseGemm, "pointwise", conv2d_pointwise_applies,
       CB_ENGINE_KERNELS(pointwise)},
      {Conv2dAlgo::Winograd, kWinogradF2, "f2x2", conv2d_winograd_applies,
       CB_ENGINE_KERNELS_NO_WGRAD(winograd_f2x2)},
      {Conv2dAlgo::Winograd, kWinogradF4, "f4x4", conv2d_winograd_applies,
       CB_ENGINE_KERNELS_NO_WGRAD(winograd_f4x4)},
  }};
  return table;
}
#undef CB_ENGINE_FORWARD
#undef CB_ENGINE_GRAD
#undef CB_ENGINE_KERNELS
#undef CB_ENGINE_KERNELS_NO_WGRAD

// (The rows do not depend on T but for their kernels: float's serve the lookups.)
const Engine<float>* find_engine(Conv2dAlgo algo, int engine) {
  for (const auto& e : engines<float>())
    if (e.algo == algo && e.engine == engine) return &e;
  return nullptr;
}

bool has_algo(Conv2dAlgo algo) {
  for (const auto& e : engines<float>())
    if (e.algo == algo) return true;
  return false;
}

template <typename T>
const EngineKernels<T>& kernels_of(Conv2dConfig c) {
  for (const auto& e : engines<T>())
    if (e.algo == c.algo && e.engine == c.engine) return e.kernels;
  CB_CHECK(false, "conv2d: no CPU engine ", c.engine, " of '", conv2d_algo_name(c.algo), "'");
  return engines<T>()[0].kernels;  // (not reached)
}

// No products (empty batch or output): zeros, which the engines do not
// write (they assume some products). U: the storage type (the half types'
// +0.0 is all-zero bits).
template <typename U>
bool zero_if_no_products(const Conv2dShape& s, void* dw, void* db) {
  if (s.N != 0 && s.P != 0 && s.Q != 0) return false;
  std::fill_n(static_cast<U*>(dw), s.weight_numel(), U(0));
  if (db) std::fill_n(static_cast<U*>(db), s.K, U(0));
  return true;
}

template <typename T>
void backward_weight(Conv2dConfig c, const Conv2dShape& s, const void* dy, const void* x,
                     void* dw, void* db) {
  if (zero_if_no_products<T>(s, dw, db)) return;
  auto dyp = static_cast<const T*>(dy);
  auto dwp = static_cast<T*>(dw), dbp = static_cast<T*>(db);
  kernels_of<T>(c).backward_weight(s, dyp, static_cast<const T*>(x), dwp);
  if (dbp) CB_CPU_DISPATCH(conv2d_backward_bias<T>, s, dyp, dbp);
}

// A pass of fewer than kSerialMacs multiply-adds runs on the calling thread
// alone: waking the OpenMP team and joining it costs several microseconds
// (far more with the other core busy), more than such a pass computes. The
// nthreads setting is the caller's own (a per-thread ICV); it is restored.
constexpr int64_t kSerialMacs = 32768;

class SerialIfTiny {
 public:
  explicit SerialIfTiny(const Conv2dShape& s) {
#ifdef _OPENMP
    const int64_t macs = s.N * s.K * s.P * s.Q * s.c_per_group() * s.R * s.S;
    if (macs < kSerialMacs && !omp_in_parallel()) {
      saved_ = omp_get_max_threads();
      if (saved_ > 1) omp_set_num_threads(saved_);
    }
#else
    (void)s;
#endif
  }
  ~SerialIfTiny() {
#ifdef _OPENMP
    if (saved_ > 1) omp_set_num_threads(saved_);
#endif
  }
  SerialIfTiny(const SerialIfTiny&) = delete;
  SerialIfTiny& operator=(const SerialIfTiny&) = delete;

 private:
  int saved_ = 0;
};

void backward_weight_half(Conv2dConfig c, DType dtype, const Conv2dShape& s, const void* dy,
                          const void* x, void* dw, void* db) {
  if (zero_if_no_products<uint16_t>(s, dw, db)) return;
  CB_CPU_DISPATCH(conv2d_backward_weight_widened, dtype, kernels_of<float>(c).backward_weight, s,
                  dy, x, dw, db);
}

}  // namespace

Conv2dConfig conv2d_resolve_cpu(Conv2dConfig c, Conv2dPass pass, DType dtype,
                                const Conv2dShape& s) {
  check_dtype(dtype);
  CB_CHECK(c.algo == Conv2dAlgo::Auto || has_algo(c.algo),
           "conv2d: algorithm '", conv2d_algo_name(c.algo), "' (", static_cast<int>(c.algo),
           ") is not implemented on the CPU");
  CB_CHECK(c.algo != Conv2dAlgo::Winograd || pass == Conv2dPass::BackwardWeight ||
               conv2d_winograd_applies(pass, s),
           "conv2d: algorithm 'winograd' on the CPU needs a 3x3 kernel, stride 1 and dilation 1 "
           "(got ", s.R, "x", s.S, " kernel, stride ", s.stride_h, "x", s.stride_w,
           ", dilation ", s.dil_h, "x", s.dil_w, ")");
  CB_CHECK(c.algo != Conv2dAlgo::Im2colGemm || c.engine != cpu_engine::kPointwiseGemm ||
               conv2d_pointwise_applies(pass, s),
           "conv2d: the 'pointwise' engine of 'im2col' on the CPU needs a 1x1 kernel (got ", s.R,
           "x", s.S, ")");
  CB_CHECK(c.engine == 0 || (c.algo != Conv2dAlgo::Auto && find_engine(c.algo, c.engine)),
           "conv2d: algorithm '", conv2d_algo_name(c.algo), "' has no CPU engine ", c.engine);
  // An engine without this pass (Winograd's weight gradient) takes auto's choice.
  const Engine<float>* asked = c.engine ? find_engine(c.algo, c.engine) : nullptr;
  const bool lacks_pass = pass == Conv2dPass::BackwardWeight && asked &&
                          !asked->kernels.backward_weight;
  if (c.algo == Conv2dAlgo::Auto || c.engine == 0 || lacks_pass)
    c = CB_CPU_DISPATCH(conv2d_choose_config, pass, compute_dtype(dtype), c.algo, s);
  return c;
}

Conv2dAlgo conv2d_choose_algo_cpu(Conv2dPass pass, DType dtype, const Conv2dShape& s) {
  return conv2d_resolve_cpu({}, pass, dtype, s).algo;
}

std::vector<Conv2dConfig> conv2d_candidates_cpu(Conv2dPass pass, DType dtype,
                                                const Conv2dShape& s) {
  check_dtype(dtype);
  std::vector<Conv2dConfig> out;
  for (const auto& e : engines<float>())
    if (e.applies(pass, s)) out.push_back({e.algo, e.engine});
  return out;
}

std::vector<Conv2dAlgo> conv2d_algos_cpu() {
  std::vector<Conv2dAlgo> out;
  for (const auto& e : engines<float>())
    if (out.empty() || out.back() != e.algo) out.push_back(e.algo);
  return out;
}

const char* conv2d_half_method_cpu() { return CB_CPU_DISPATCH(conv2d_half_method); }

const char* conv2d_engine_name_cpu(Conv2dAlgo algo, int engine) {
  const auto* e = engine == 0 ? nullptr : find_engine(algo, engine);
  return e ? e->name : "";
}

void conv2d_forward_cpu(Conv2dConfig cfg, DType dtype, const Conv2dShape& s, const void* x,
                        const void* w, const void* bias, void* y) {
  const Conv2dConfig c = conv2d_resolve_cpu(cfg, Conv2dPass::Forward, dtype, s);
  if (s.N == 0 || s.K == 0 || s.P == 0 || s.Q == 0) return;
  const SerialIfTiny serial(s);
  if (is_half(dtype))
    CB_CPU_DISPATCH(conv2d_forward_widened, dtype, kernels_of<float>(c).forward, s, x, w, bias, y);
  else if (dtype == DType::Float32)
    kernels_of<float>(c).forward(s, static_cast<const float*>(x), static_cast<const float*>(w),
                                 static_cast<const float*>(bias), static_cast<float*>(y));
  else
    kernels_of<double>(c).forward(s, static_cast<const double*>(x), static_cast<const double*>(w),
                                  static_cast<const double*>(bias), static_cast<double*>(y));
}

void conv2d_backward_input_cpu(Conv2dConfig cfg, DType dtype, const Conv2dShape& s,
                               const void* dy, const void* w, void* dx) {
  const Conv2dConfig c = conv2d_resolve_cpu(cfg, Conv2dPass::BackwardInput, dtype, s);
  if (s.N == 0 || s.C == 0 || s.H == 0 || s.W == 0) return;
  const SerialIfTiny serial(s);
  // Handles P == 0 or Q == 0 too: dy is empty, dx is all zeros.
  if (is_half(dtype))
    CB_CPU_DISPATCH(conv2d_backward_input_widened, dtype, kernels_of<float>(c).backward_input, s,
                    dy, w, dx);
  else if (dtype == DType::Float32)
    kernels_of<float>(c).backward_input(s, static_cast<const float*>(dy),
                                        static_cast<const float*>(w), static_cast<float*>(dx));
  else
    kernels_of<double>(c).backward_input(s, static_cast<const double*>(dy),
                                         static_cast<const double*>(w), static_cast<double*>(dx));
}

void conv2d_backward_weight_cpu(Conv2dConfig cfg, DType dtype, const Conv2dShape& s,
                                const void* dy, const void* x, void* dw, void* db) {
  const Conv2dConfig c = conv2d_resolve_cpu(cfg, Conv2dPass::BackwardWeight, dtype, s);
  if (s.weight_numel() == 0) return;
  const SerialIfTiny serial(s);
  // Empty batch or output: zeros, dw and db alike (backward_weight above).
  if (is_half(dtype))
    backward_weight_half(c, dtype, s, dy, x, dw, db);
  else if (dtype == DType::Float32)
    backward_weight<float>(c, s, dy, x, dw, db);
  else
    backward_weight<double>(c, s, dy, x, dw, db);
}

}  // namespace convbench
