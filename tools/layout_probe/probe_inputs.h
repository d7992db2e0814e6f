// The layout probe's index-encoded inputs, one formula per operand, shared by
// the probe kernel (which builds its registers with them) and the host's
// --inputs mode (which prints them without a GPU, so tests check them against
// golden.py's copy of the same formulas). Every value is a small integer, exact
// in f16, bf16 and tf32, and every product sum stays below 2^24, so the
// tensor cores' float accumulation is exact and a golden file can be compared
// bit for bit.
#pragma once
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define CB_PROBE_HD __host__ __device__
#else
#define CB_PROBE_HD
#endif

namespace layout_probe {

// The three inputs of every mma probe: "full" (A, B, C all index-encoded:
// D checks every map at once), "rows" (B = 1, C = 0: D[m][n] is A's row sum,
// so a wrong A row map or D row map shows) and "cols" (A = 1, C = 0: D is B's
// column sum).
enum Variant { kFull = 0, kRows = 1, kCols = 2 };
constexpr const char* kVariantNames[] = {"full", "rows", "cols"};

// Exact bits of a small non-negative integer (below 2048) as f16, bf16, f32.
CB_PROBE_HD inline uint32_t f32_bits(int v) {
  const float f = static_cast<float>(v);
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
CB_PROBE_HD inline uint16_t bf16_bits(int v) { return static_cast<uint16_t>(f32_bits(v) >> 16); }
CB_PROBE_HD inline uint16_t f16_bits(int v) {
  if (v == 0) return 0;
  int e = 0;
  while ((v >> (e + 1)) != 0) ++e;  // floor(log2 v)
  return static_cast<uint16_t>(((e + 15) << 10) | ((v << (10 - e)) & 0x3ff));
}

// Element i of lane l's A, B, C fragments as integers. m16n8k16 (f16, bf16):
// 8 A, 4 B, 4 C elements per lane; m16n8k8 (tf32): 4 A, 2 B, 4 C.
CB_PROBE_HD inline int a_value(Variant v, int per_lane, int lane, int i) {
  return v == kCols ? 1 : per_lane * lane + i;
}
CB_PROBE_HD inline int b_value(Variant v, int per_lane, int lane, int i) {
  return v == kRows ? 1 : per_lane * lane + i;
}
CB_PROBE_HD inline int c_value(Variant v, int lane, int i) { return v == kFull ? 4 * lane + i : 0; }

// Register r of a half-type fragment: elements 2r (low half) and 2r + 1.
template <bool kBf16>
CB_PROBE_HD inline uint32_t pack_halves(int lo, int hi) {
  const uint32_t l = kBf16 ? bf16_bits(lo) : f16_bits(lo);
  const uint32_t h = kBf16 ? bf16_bits(hi) : f16_bits(hi);
  return l | (h << 16);
}

struct Fragments {
  uint32_t a[4];
  uint32_t b[2];
  float c[4];
};

// Lane `lane`'s input registers of an m16n8k16 probe (f16 or bf16).
template <bool kBf16>
CB_PROBE_HD inline Fragments k16_inputs(Variant v, int lane) {
  Fragments f;
  for (int r = 0; r < 4; ++r)
    f.a[r] = pack_halves<kBf16>(a_value(v, 8, lane, 2 * r), a_value(v, 8, lane, 2 * r + 1));
  for (int r = 0; r < 2; ++r)
    f.b[r] = pack_halves<kBf16>(b_value(v, 4, lane, 2 * r), b_value(v, 4, lane, 2 * r + 1));
  for (int r = 0; r < 4; ++r) f.c[r] = static_cast<float>(c_value(v, lane, r));
  return f;
}

// Lane `lane`'s input registers of the m16n8k8 tf32 probe.
CB_PROBE_HD inline Fragments tf32_inputs(Variant v, int lane) {
  Fragments f;
  for (int r = 0; r < 4; ++r) f.a[r] = f32_bits(a_value(v, 4, lane, r));
  for (int r = 0; r < 2; ++r) f.b[r] = f32_bits(b_value(v, 2, lane, r));
  for (int r = 0; r < 4; ++r) f.c[r] = static_cast<float>(c_value(v, lane, r));
  return f;
}

// ldmatrix: element (row, col) of 8x8 matrix j holds 64 j + 8 row + col, and
// the rows sit kPitch halves apart (not contiguous, as ldmatrix allows).
constexpr int kPitch = 16;
CB_PROBE_HD inline uint16_t matrix_value(int j, int row, int col) {
  return static_cast<uint16_t>(64 * j + 8 * row + col);
}

// cp.async: byte i of the global source, never 0 (so zero-fill shows), and
// the bytes lane l asks for of its kBytes: l % (kBytes + 1), 0 to kBytes.
CB_PROBE_HD inline uint8_t source_byte(int i) { return static_cast<uint8_t>(i % 251 + 1); }
CB_PROBE_HD inline int source_bytes(int bytes, int lane) { return lane % (bytes + 1); }
constexpr uint8_t kPoison = 0xEE;  // what the destination held before the copy

}  // namespace layout_probe
