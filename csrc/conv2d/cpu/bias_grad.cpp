// The bias gradient, db[k] = sum over (n, p, q) of dy[n][k][p][q], computed
// in the weight-gradient call (as oneDNN's and cuDNN's backward-weights
// primitives can): dy was just read there, and one call replaces PyTorch's
// two reductions and their dispatch (~4 us a call on small layers, 1.5-2x
// slower on large ones). Each plane is summed in vector lanes, the planes
// of a channel in double, in batch order: deterministic for any thread count.
#include <cstdint>

#include "common/shapes.h"
#include "conv2d/cpu/conv2d_cpu_kernels.h"
#include "common/cpu/simd.h"

namespace convbench {
namespace CB_CPU_NS {

namespace {

template <typename T>
double plane_sum(const T* p, int64_t n) {
  using S = Simd<T>;
  constexpr int64_t L = S::L;
  typename S::V a0 = S::zero(), a1 = S::zero(), a2 = S::zero(), a3 = S::zero();
  int64_t i = 0;
  for (; i + 4 * L <= n; i += 4 * L) {  // four chains: the adds' latency hidden
    a0 += S::load(p + i);
    a1 += S::load(p + i + L);
    a2 += S::load(p + i + 2 * L);
    a3 += S::load(p + i + 3 * L);
  }
  for (; i + L <= n; i += L) a0 += S::load(p + i);
  if (i < n) a1 += S::load_n(p + i, static_cast<int>(n - i));
  return static_cast<double>(S::hsum((a0 + a1) + (a2 + a3)));
}

}  // namespace

template <typename T>
void conv2d_backward_bias(const Conv2dShape& s, const T* dy, T* db) {
  const int64_t M = s.P * s.Q;
#pragma omp parallel for schedule(static) if (s.N * s.K * M > 32768)
  for (int64_t k = 0; k < s.K; ++k) {
    double sum = 0;
    for (int64_t n = 0; n < s.N; ++n) sum += plane_sum(dy + (n * s.K + k) * M, M);
    db[k] = static_cast<T>(sum);
  }
}

template void conv2d_backward_bias<float>(const Conv2dShape&, const float*, float*);
template void conv2d_backward_bias<double>(const Conv2dShape&, const double*, double*);

}  // namespace CB_CPU_NS
}  // namespace convbench
