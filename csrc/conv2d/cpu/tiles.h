// Every tuning constant of the CPU conv kernels, per ISA build: register
// tiles (how many accumulators fit beside the loads and broadcasts) and
// cache budgets. Measured on Zen 3 (AVX2, 16 ymm) and Zen 4 (AVX-512, 32
// zmm; its FMA throughput in FLOPs equals AVX2's, Zen 5's is twice that).
#pragma once
#include <cstdint>
#include <type_traits>

#include "common/cpu/simd.h"

namespace convbench {
namespace CB_CPU_NS {

#if defined(__AVX512F__)
constexpr int kVecRegs = 32;
#else
constexpr int kVecRegs = 16;
#endif
// Accumulators of an outer-product tile: the rest of the register file
// holds the NV loaded vectors and a broadcast. Enough to hide the FMA
// latency (2 pipes x 4 cycles = 8 in flight) with room to spare.
constexpr int kAccRegs = kVecRegs == 32 ? 24 : 12;

// Channel-vectorised engines (direct_kvec.cpp): widest tile, in vectors of
// output channels; a narrower block takes more positions per tile.
constexpr int kKvecMaxNV = kVecRegs == 32 ? 4 : 2;
constexpr int kvec_rows(int nv) { return kAccRegs / nv > 14 ? 14 : kAccRegs / nv; }

// Output channels of a group, padded to whole vectors, cut into blocks of
// at most kKvecMaxNV vectors; block b holds [k0, k0 + width). (The blocks
// of the channel-vectorised engines: direct_kvec and Winograd.)
struct ChannelBlocks {
  int64_t L, Kp, width, count;
  ChannelBlocks(int64_t Kg, int64_t lanes) : L(lanes) {
    Kp = (Kg + L - 1) / L * L;
    width = kKvecMaxNV * L < Kp ? kKvecMaxNV * L : Kp;
    count = (Kp + width - 1) / width;
  }
  int64_t k0(int64_t b) const { return b * width; }
  int64_t size(int64_t b) const { return Kp - b * width < width ? Kp - b * width : width; }
  int vectors(int64_t b) const { return static_cast<int>(size(b) / L); }
};
// Rows of tiles whose every row keeps its own input pointer in a general
// register (16 in all) through the inner loop: the weight gradient's (r, s,
// c) rows and Winograd's GEMM tiles. At 14 rows GCC moved 6 pointers
// through vector registers every step, and both ran slower than at 9
// (measured in 8d27379's message). The forward kvec tiles keep 14: its
// pointer setup is per tap, not per step.
constexpr int kPointerRows = 9;
constexpr int pointer_rows(int nv) {
  return kvec_rows(nv) < kPointerRows ? kvec_rows(nv) : kPointerRows;
}

// Height of the fewest tiles of at most `max` rows that cover n rows, made
// as even as possible (49 rows at most 12 high: 5 tiles of 10, not 4 of 12
// and one of 1, or a last tile computed whole for one row).
inline int64_t even_rows(int64_t n, int64_t max) {
  const int64_t tiles = (n + max - 1) / max;
  return (n + tiles - 1) / tiles;
}

// Inner-product tiles of the weight gradients (flat direct, im2col): up to
// kInnerMR output channels x 3 kernel columns, vectorised along the
// reduction. 8 x 3 on 32 registers loads 11 vectors per 24 products where
// 4 x 3 loads 7 per 12.
constexpr int kInnerMR = kVecRegs == 32 ? 8 : 4;

// Flattened-position engine (direct.cpp): mr <= kFlatMR output channels x
// flat_nv(mr) vectors of positions (wider tiles waste more of small images).
constexpr int kFlatMR = kVecRegs == 32 ? 8 : 4;
constexpr int kFlatMaxNV = kVecRegs == 32 ? 3 : 4;
constexpr int flat_nv(int mr) { return kAccRegs / mr > kFlatMaxNV ? kFlatMaxNV : kAccRegs / mr; }

// f(std::integral_constant<int, m>) for the runtime row count 1 <= m <= MAX
// (MAX <= 16): turns a tile height into a template argument.
template <int MAX, typename F>
inline void with_rows(int64_t m, F&& f) {
  static_assert(MAX <= 16, "extend with_rows");
  switch (m) {
#define CB_ROWS_CASE(I) \
  case I: if constexpr (I <= MAX) f(std::integral_constant<int, I>{}); break;
    CB_ROWS_CASE(1) CB_ROWS_CASE(2) CB_ROWS_CASE(3) CB_ROWS_CASE(4) CB_ROWS_CASE(5)
    CB_ROWS_CASE(6) CB_ROWS_CASE(7) CB_ROWS_CASE(8) CB_ROWS_CASE(9) CB_ROWS_CASE(10)
    CB_ROWS_CASE(11) CB_ROWS_CASE(12) CB_ROWS_CASE(13) CB_ROWS_CASE(14) CB_ROWS_CASE(15)
    CB_ROWS_CASE(16)
#undef CB_ROWS_CASE
  }
}

// Workspace budgets.
constexpr int64_t kChunkBytes = int64_t(1) << 20;     // padded input planes per batch chunk
constexpr int64_t kWgradChunkBytes = 384 << 10;       // weight gradient: about one L2
constexpr int64_t kWgradDyChunkBytes = 256 << 10;     // im2col weight gradient: dy rows in L2
constexpr int64_t kWgradPartialsBytes = int64_t(256) << 20;  // all partial dW of a batch
constexpr int64_t kWgradPartWeightBytes = 512 << 10;  // larger dW: one part, parallel inside
constexpr int64_t kL2WeightBytes = 512 << 10;         // a weight block re-read from L2

}  // namespace CB_CPU_NS
}  // namespace convbench
