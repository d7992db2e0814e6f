// avg_pool2d on the CPU, one (n, c) plane per OpenMP task (so the backward's
// overlapping windows never race and it is deterministic). A window's sum is
// separable: the forward first sums the window's rows into one row (long,
// contiguous, vectorised loads), then each output adds its kernel_w columns
// of that row; the backward spreads dy / divisor along a row first, then
// adds that row to each input row of the window. So the per-output work is
// kernel_w adds however tall the window is.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "avgpool2d/avg_pool2d.h"

namespace convbench {
namespace CB_CPU_NS {

namespace {

// The column windows: the same for every output row.
std::vector<AvgSpan> column_spans(const AvgPool2dShape& s) {
  std::vector<AvgSpan> cols(static_cast<size_t>(s.Q));
  for (int64_t q = 0; q < s.Q; ++q) cols[q] = avg_cols(s, q);
  return cols;
}

}  // namespace

template <typename T>
void avg_pool2d_forward(const AvgPool2dShape& s, const T* x, T* y) {
  const std::vector<AvgSpan> cols = column_spans(s);
  const int64_t planes = s.N * s.C, W = s.W;
#pragma omp parallel
  {
    std::vector<T> rows(static_cast<size_t>(W));  // a window's rows, summed
    T* const summed = rows.data();
#pragma omp for schedule(static)
    for (int64_t plane = 0; plane < planes; ++plane) {
      const T* xp = x + plane * s.H * W;
      T* yp = y + plane * s.P * s.Q;
      for (int64_t p = 0; p < s.P; ++p) {
        const AvgSpan r = avg_rows(s, p);
        T* out = yp + p * s.Q;
        if (r.begin >= r.end) {
          std::fill(out, out + s.Q, T(0));
          continue;
        }
        const T* first = xp + r.begin * W;
        const T* sum = first;  // a window of one row: the row itself
        if (r.end - r.begin > 1) {
          const T* second = first + W;
#pragma omp simd
          for (int64_t w = 0; w < W; ++w) summed[w] = first[w] + second[w];
          for (int64_t h = r.begin + 2; h < r.end; ++h) {
            const T* row = xp + h * W;
#pragma omp simd
            for (int64_t w = 0; w < W; ++w) summed[w] += row[w];
          }
          sum = summed;
        }
        for (int64_t q = 0; q < s.Q; ++q) {
          const AvgSpan& c = cols[q];
          T acc = T(0);
          for (int64_t w = c.begin; w < c.end; ++w) acc += sum[w];
          out[q] = c.begin < c.end ? acc / static_cast<T>(avg_divisor(s, r, c)) : T(0);
        }
      }
    }
  }
}

template <typename T>
void avg_pool2d_backward(const AvgPool2dShape& s, const T* dy, T* dx) {
  const std::vector<AvgSpan> cols = column_spans(s);
  const int64_t planes = s.N * s.C, W = s.W;
#pragma omp parallel
  {
    std::vector<T> spread(static_cast<size_t>(W));  // one output row's dy / divisor, by column
    T* g = spread.data();
#pragma omp for schedule(static)
    for (int64_t plane = 0; plane < planes; ++plane) {
      T* dxp = dx + plane * s.H * W;
      const T* dyp = dy + plane * s.P * s.Q;
      std::fill(dxp, dxp + s.H * W, T(0));
      for (int64_t p = 0; p < s.P; ++p) {
        const AvgSpan r = avg_rows(s, p);
        if (r.begin >= r.end) continue;
        std::fill(g, g + W, T(0));
        for (int64_t q = 0; q < s.Q; ++q) {
          const AvgSpan& c = cols[q];
          if (c.begin >= c.end) continue;
          const T v = dyp[p * s.Q + q] / static_cast<T>(avg_divisor(s, r, c));
          for (int64_t w = c.begin; w < c.end; ++w) g[w] += v;
        }
        for (int64_t h = r.begin; h < r.end; ++h) {
          T* row = dxp + h * W;
#pragma omp simd
          for (int64_t w = 0; w < W; ++w) row[w] += g[w];
        }
      }
    }
  }
}

#define CB_INSTANTIATE(T)                                                        \
  template void avg_pool2d_forward<T>(const AvgPool2dShape&, const T*, T*);      \
  template void avg_pool2d_backward<T>(const AvgPool2dShape&, const T*, T*);
CB_INSTANTIATE(float)
CB_INSTANTIATE(double)
#undef CB_INSTANTIATE

}  // namespace CB_CPU_NS
}  // namespace convbench
