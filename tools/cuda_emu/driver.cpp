// C entry points over the emulated CUDA kernels, for ctypes (tests/test_cuda_emu.py).
// Each returns 0, or 1 with the exception's message in err.
#include <cstring>
#include <exception>
#include <string>

#include "common/shapes.h"
#include "conv2d/conv2d.h"
#include "maxpool2d/maxpool2d.h"

using namespace convbench;

namespace {
Conv2dShape conv(const long long* a) {
  return Conv2dShape{a[0], a[1], a[2], a[3], a[4],  a[5],  a[6],  a[7],
                     a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]};
}
Pool2dShape pool(const long long* a) {
  return Pool2dShape{a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13]};
}
template <class F>
int guarded(char* err, F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    std::strncpy(err, e.what(), 511);
    err[511] = 0;
    return 1;
  }
}
}  // namespace

extern "C" {
int emu_conv2d(int pass, int algo, int dtype, const long long* s, const void* a, const void* b,
               const void* bias, void* out, char* err) {
  return guarded(err, [&] {
    const auto al = static_cast<Conv2dAlgo>(algo);
    const auto dt = static_cast<DType>(dtype);
    if (pass == 0) conv2d_forward_cuda(al, dt, conv(s), a, b, bias, out, 0, nullptr);
    else if (pass == 1) conv2d_backward_input_cuda(al, dt, conv(s), a, b, out, 0, nullptr);
    else conv2d_backward_weight_cuda(al, dt, conv(s), a, b, out, 0, nullptr);
  });
}
int emu_choose(int pass, int dtype, const long long* s) {
  return static_cast<int>(conv2d_choose_algo_cuda(static_cast<Conv2dPass>(pass),
                                                   static_cast<DType>(dtype), conv(s)));
}
int emu_max_pool2d(int pass, int dtype, const long long* s, const void* a, const void* idx,
                   void* out, void* out_idx, char* err) {
  return guarded(err, [&] {
    if (pass == 0)
      max_pool2d_forward_cuda(static_cast<DType>(dtype), pool(s), a, out,
                              static_cast<int64_t*>(out_idx), 0, nullptr);
    else
      max_pool2d_backward_cuda(static_cast<DType>(dtype), pool(s), a,
                               static_cast<const int64_t*>(idx), out, 0, nullptr);
  });
}
}
