// The warp-level tensor-core and asynchronous-copy primitives (sm_80+), each
// one inline-PTX instruction behind a plain function. Kernels reach mma,
// ldmatrix and cp.async only through this header, so the register layouts
// they rely on are written down once, next to the PTX ISA sections that
// define them, and tools/layout_probe checks them on a GPU in one launch.
//
// Fragments are the registers one lane holds (PTX ISA, "Matrix Fragments for
// mma.m16n8k16 with floating point type" and "Matrix Fragments for
// mma.m16n8k8"); with g = lane / 4 and t = lane % 4:
//   m16n8k16 f16/bf16  A 16x16 row-major, 4 x .b32 of two halves (low half first):
//                        a[0] = A[g][2t..2t+1]     a[1] = A[g+8][2t..2t+1]
//                        a[2] = A[g][2t+8..2t+9]   a[3] = A[g+8][2t+8..2t+9]
//                      B 16x8 column-major, 2 x .b32: b[0] = B[2t..2t+1][g], b[1] = B[2t+8..2t+9][g]
//   m16n8k8 tf32       A 16x8: a[0] = A[g][t], a[1] = A[g+8][t], a[2] = A[g][t+4], a[3] = A[g+8][t+4]
//                      B 8x8:  b[0] = B[t][g], b[1] = B[t+4][g]
//   C, D (both shapes) 16x8 float: c[0..1] = C[g][2t..2t+1], c[2..3] = C[g+8][2t..2t+1]
// ldmatrix .m8n8.x4.b16 ("Warp-level matrix load instruction: ldmatrix"):
// lanes 8j..8j+7 give the row addresses of matrix j; register j of lane l
// holds row l/4, columns 2(l%4) and 2(l%4)+1 of matrix j (.trans: column l/4,
// rows 2(l%4) and 2(l%4)+1).
// cp.async ("Data Movement and Conversion Instructions: cp.async"): copies
// src_bytes of the cp-size bytes and zero-fills the rest; the data is there
// only after cp_async_wait<n>() (and a barrier, for other threads' copies).
#pragma once
#include <cstdint>

namespace convbench {
namespace tc {

// The instructions exist from sm_80; an older device traps rather than
// compute garbage, and the host pass compiles to nothing.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define CB_TC_ASM(...) asm volatile(__VA_ARGS__)
#define CB_TC_SMEM(p) static_cast<uint32_t>(__cvta_generic_to_shared(p))
#elif defined(__CUDA_ARCH__)
#define CB_TC_ASM(...) __trap()
#define CB_TC_SMEM(p) 0u
#else
#define CB_TC_ASM(...) ((void)0)
#define CB_TC_SMEM(p) 0u
#endif

// D = A * B + C on one m16n8 tile, float accumulators; TYPES names the
// shape and the A/B element type of the PTX instruction.
#define CB_TC_DEFINE_MMA(NAME, TYPES)                                                            \
  __device__ __forceinline__ void NAME(float d[4], const uint32_t a[4], const uint32_t b[2],    \
                                       const float c[4]) {                                      \
    CB_TC_ASM("mma.sync.aligned." TYPES " {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "       \
              "{%10, %11, %12, %13};\n"                                                        \
              : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])                                  \
              : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),    \
                "f"(c[1]), "f"(c[2]), "f"(c[3]));                                               \
  }

CB_TC_DEFINE_MMA(mma_m16n8k16_f16, "m16n8k16.row.col.f32.f16.f16.f32")
CB_TC_DEFINE_MMA(mma_m16n8k16_bf16, "m16n8k16.row.col.f32.bf16.bf16.f32")
// tf32 inputs are a float's bits; the low 13 mantissa bits are ignored.
CB_TC_DEFINE_MMA(mma_m16n8k8_tf32, "m16n8k8.row.col.f32.tf32.tf32.f32")
#undef CB_TC_DEFINE_MMA

// Four 8x8 b16 matrices from shared memory; `row` is this lane's row address
// (16-byte aligned). _trans: each matrix transposed on the way.
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* row) {
  CB_TC_ASM("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
            : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
            : "r"(CB_TC_SMEM(row)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void* row) {
  CB_TC_ASM("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
            : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
            : "r"(CB_TC_SMEM(row)));
}

// Starts copying kBytes (4, 8 or 16; both addresses aligned to it) from
// global to shared memory: the first src_bytes (0..kBytes) from src, zeros
// for the rest. 16-byte copies bypass L1 (.cg), smaller ones cannot (.ca).
template <int kBytes>
__device__ __forceinline__ void cp_async_zfill(void* smem_dst, const void* gmem_src,
                                               int src_bytes) {
  static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async copies 4, 8 or 16 bytes");
  if constexpr (kBytes == 16) {
    CB_TC_ASM("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(CB_TC_SMEM(smem_dst)),
              "l"(gmem_src), "r"(src_bytes));
  } else {
    CB_TC_ASM("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(CB_TC_SMEM(smem_dst)),
              "l"(gmem_src), "n"(kBytes), "r"(src_bytes));
  }
}

// Closes the group of cp.async copies this thread started since the last commit.
__device__ __forceinline__ void cp_async_commit() { CB_TC_ASM("cp.async.commit_group;\n" ::); }

// Waits until at most kPending of this thread's committed groups are in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  CB_TC_ASM("cp.async.wait_group %0;\n" ::"n"(kPending));
}

#undef CB_TC_ASM
#undef CB_TC_SMEM

}  // namespace tc
}  // namespace convbench
