// bfloat16 and float16 conv2d on any engine: each operand is widened to
// float32 once (exactly), the engine's float32 kernel runs (float32
// products of the half values are exact, the sums float32), and each output
// is rounded once to the half type. The conversions are memory-bound passes
// over the operands, small beside the kernel's R*S*C/groups multiply-adds per
// output value.
#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "common/cpu/half_convert.h"
#include "common/cpu/scratch.h"
#include "conv2d/cpu/conv2d_cpu_kernels.h"

namespace convbench {
namespace CB_CPU_NS {

namespace {

constexpr int64_t kConvertChunk = 1 << 14;  // values per task

// One half operand and the float32 scratch it is widened into.
struct Operand {
  const void* src;  // nullptr: absent (no bias)
  int64_t n;
  Buffer<float> buf;
  Operand(const void* src, int64_t n) : src(src), n(n), buf(src ? n : 0) {}
  const float* ptr() { return src ? buf.data() : nullptr; }
};

// All of a call's operands in one parallel region: a region's fork and join
// cost microseconds, as much as the conversions of a small layer.
void widen_all(DType dt, std::initializer_list<Operand*> ops) {
  int64_t total = 0;
  for (const Operand* o : ops) total += o->src ? o->n : 0;
#pragma omp parallel if (total > 4 * kConvertChunk)
  for (Operand* o : ops) {
    if (!o->src) continue;
    const auto* h = static_cast<const uint16_t*>(o->src);
    float* dst = o->buf.data();
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < o->n; i += kConvertChunk)
      widen_to_float(dt, h + i, dst + i, std::min(kConvertChunk, o->n - i));
  }
}

void narrow(DType dt, const float* src, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
#pragma omp parallel for schedule(static) if (n > 4 * kConvertChunk)
  for (int64_t i = 0; i < n; i += kConvertChunk)
    narrow_from_float(dt, src + i, h + i, std::min(kConvertChunk, n - i));
}

}  // namespace

const char* conv2d_half_method() {
#if defined(__AVX512F__)
  return "float32 FMA (AVX-512) on operands widened once (AVX-512 conversions)";
#elif defined(__AVX2__) && defined(__F16C__)
  return "float32 FMA (AVX2) on operands widened once (AVX2 and F16C conversions)";
#else
  return "float32 on operands widened once (portable C++ conversions)";
#endif
}

void conv2d_forward_widened(DType dt, ForwardFn32 kernel, const Conv2dShape& s, const void* x,
                            const void* w, const void* b, void* y) {
  Operand xf(x, s.input_numel()), wf(w, s.weight_numel()), bf(b, s.K);
  widen_all(dt, {&xf, &wf, &bf});
  Buffer<float> yf(s.output_numel());
  kernel(s, xf.ptr(), wf.ptr(), bf.ptr(), yf.data());
  narrow(dt, yf.data(), y, s.output_numel());
}

void conv2d_backward_input_widened(DType dt, GradFn32 kernel, const Conv2dShape& s,
                                   const void* dy, const void* w, void* dx) {
  Operand dyf(dy, s.output_numel()), wf(w, s.weight_numel());
  widen_all(dt, {&dyf, &wf});
  Buffer<float> dxf(s.input_numel());
  kernel(s, dyf.ptr(), wf.ptr(), dxf.data());
  narrow(dt, dxf.data(), dx, s.input_numel());
}

void conv2d_backward_weight_widened(DType dt, GradFn32 kernel, const Conv2dShape& s,
                                    const void* dy, const void* x, void* dw, void* db) {
  Operand dyf(dy, s.output_numel()), xf(x, s.input_numel());
  widen_all(dt, {&dyf, &xf});
  Buffer<float> dwf(s.weight_numel()), dbf(s.K);
  kernel(s, dyf.ptr(), xf.ptr(), dwf.data());
  narrow(dt, dwf.data(), dw, s.weight_numel());
  if (db) {
    conv2d_backward_bias<float>(s, dyf.ptr(), dbf.data());
    narrow(dt, dbf.data(), db, s.K);
  }
}

}  // namespace CB_CPU_NS
}  // namespace convbench
