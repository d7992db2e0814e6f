// The weight-gradient batch driver shared by every engine. The batch is cut
// into parts (their number depends on N only); each part is reduced chunk by
// chunk, serially, into its own partial dW and the partials are summed in
// part order, so dW is bitwise identical for any thread count and no
// barrier is needed per chunk. A batch of one runs its chunks with the work
// inside each chunk parallel instead.
#pragma once
#include <algorithm>
#include <cstdint>

#include "common/cpu/scratch.h"
#include "conv2d/cpu/tiles.h"

namespace convbench {
namespace CB_CPU_NS {

// chunk(slot, n0, nn, out, parallel) adds images [n0, n0+nn) into out;
// slot < wgrad_parts(N, positions, slot_bytes, weight_bytes) (positions:
// output positions per image) names the caller's
// workspace (of slot_bytes each). Fewer parts when workspaces are big, and
// a single part (the work inside each chunk parallel) once dW outgrows L2:
// a partial dW per part, zeroed and summed, would cost more memory traffic
// than the gradient itself (512 -> 512 3x3: 9.4 MB per part). Likewise when
// a part would reduce over fewer than ~256 output positions (then each dW
// element gets fewer products than the memory operations its partial sums
// cost: 1x1 256 -> 512 at 4x4, batch 8, ran at 0.56x of torch with 8 parts).
inline int64_t wgrad_parts(int64_t N, int64_t positions, int64_t slot_bytes,
                           int64_t weight_bytes) {
  if (weight_bytes > kWgradPartWeightBytes) return 1;
  const int64_t cap = std::max<int64_t>(
      1, kWgradPartialsBytes / std::max<int64_t>(1, slot_bytes + weight_bytes));
  const int64_t work = std::max<int64_t>(1, N * positions / 256);
  return std::max<int64_t>(1, std::min<int64_t>({N, 8, cap, work}));
}

// finish(slot, out, parallel) runs after the last chunk of each part (an
// engine that accumulates in its own layout writes out there).
template <typename T, typename ChunkFn, typename FinishFn>
void wgrad_batched(int64_t N, int64_t positions, int64_t nb, int64_t slot_bytes, int64_t wn,
                   T* dw, const ChunkFn& chunk, const FinishFn& finish) {
  const int64_t parts = wgrad_parts(N, positions, slot_bytes, wn * int64_t(sizeof(T)));
  if (parts == 1) {
    std::fill(dw, dw + wn, T(0));
    for (int64_t n0 = 0; n0 < N; n0 += nb) chunk(0, n0, std::min(nb, N - n0), dw, true);
    finish(0, dw, true);
    return;
  }
  Buffer<T> partial(parts * wn);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < parts; ++i) {
    T* out = partial.data() + i * wn;
    std::fill(out, out + wn, T(0));
    const int64_t a = N * i / parts, b = N * (i + 1) / parts;
    for (int64_t n0 = a; n0 < b; n0 += nb) chunk(i, n0, std::min(nb, b - n0), out, false);
    finish(i, out, false);
  }
  const T* pp = partial.data();
#pragma omp parallel for schedule(static) if (wn > 8192)
  for (int64_t e = 0; e < wn; ++e) {
    T sum = pp[e];
    for (int64_t i = 1; i < parts; ++i) sum += pp[i * wn + e];
    dw[e] = sum;
  }
}

template <typename T, typename ChunkFn>
void wgrad_batched(int64_t N, int64_t positions, int64_t nb, int64_t slot_bytes, int64_t wn,
                   T* dw, const ChunkFn& chunk) {
  wgrad_batched(N, positions, nb, slot_bytes, wn, dw, chunk, [](int64_t, T*, bool) {});
}

}  // namespace CB_CPU_NS
}  // namespace convbench
