// Layout probe: runs every tensor-core and copy primitive of
// csrc/common/cuda_tensor_core.cuh once, in one warp, on index-encoded inputs
// (probe_inputs.h), and prints every lane's registers, one per line:
//
//   <probe> <lane> <slot> 0x<32 bits>
//
// mma probes print their inputs (a0.., b0.., c0..) and result (d0..);
// ldmatrix probes the four registers each lane receives (r0..r3); cp.async
// probes the destination words of each lane's copy (w0..). golden.py computes
// the same lines from the PTX ISA's documented layouts and compare.py says
// where the two differ, so one short GPU run settles the layouts the kernels
// and the CUDA emulator assume.
//
//   nvcc -std=c++17 -arch=sm_90 -I csrc tools/layout_probe/probe.cu -o probe
//   ./probe [-o FILE]     run on GPU 0
//   ./probe --inputs      only the mma input lines, computed on the host (no GPU)
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/cuda_tensor_core.cuh"
#include "probe_inputs.h"

namespace lp = layout_probe;
namespace tc = convbench::tc;

namespace {

constexpr int kLanes = 32;
constexpr int kMmaSlots = 14;  // a0-a3, b0-b1, c0-c3, d0-d3

enum MmaKind { kF16 = 0, kBf16 = 1, kTf32 = 2 };
constexpr const char* kMmaNames[] = {"mma.m16n8k16.f16", "mma.m16n8k16.bf16", "mma.m16n8k8.tf32"};

__host__ __device__ lp::Fragments mma_inputs(MmaKind kind, lp::Variant v, int lane) {
  if (kind == kF16) return lp::k16_inputs<false>(v, lane);
  if (kind == kBf16) return lp::k16_inputs<true>(v, lane);
  return lp::tf32_inputs(v, lane);
}

__device__ uint32_t float_bits(float f) { return __float_as_uint(f); }

// out[lane * 14 + slot]: the inputs this lane built and the D it got back.
__global__ void mma_probe(MmaKind kind, lp::Variant v, uint32_t* out) {
  const int lane = threadIdx.x;
  const lp::Fragments f = mma_inputs(kind, v, lane);
  float d[4];
  if (kind == kF16) tc::mma_m16n8k16_f16(d, f.a, f.b, f.c);
  else if (kind == kBf16) tc::mma_m16n8k16_bf16(d, f.a, f.b, f.c);
  else tc::mma_m16n8k8_tf32(d, f.a, f.b, f.c);
  uint32_t* o = out + lane * kMmaSlots;
  for (int r = 0; r < 4; ++r) o[r] = f.a[r];
  for (int r = 0; r < 2; ++r) o[4 + r] = f.b[r];
  for (int r = 0; r < 4; ++r) o[6 + r] = float_bits(f.c[r]);
  for (int r = 0; r < 4; ++r) o[10 + r] = float_bits(d[r]);
}

// Four 8x8 matrices, rows kPitch halves apart; lane l points at row l % 8 of
// matrix l / 8. out[lane * 4 + j]: register j.
__global__ void ldmatrix_probe(bool trans, uint32_t* out) {
  __shared__ __align__(16) uint16_t smem[4 * 8 * lp::kPitch];
  const int lane = threadIdx.x;
  for (int i = lane; i < 4 * 8 * lp::kPitch; i += kLanes) {
    const int row = i / lp::kPitch, col = i % lp::kPitch;
    smem[i] = col < 8 ? lp::matrix_value(row / 8, row % 8, col) : 0xFFFF;
  }
  __syncthreads();
  uint32_t r[4];
  const uint16_t* row = smem + lane * lp::kPitch;
  if (trans) tc::ldmatrix_x4_trans(r, row);
  else tc::ldmatrix_x4(r, row);
  for (int j = 0; j < 4; ++j) out[lane * 4 + j] = r[j];
}

// Each lane copies kBytes at offset lane * kBytes, asking for
// source_bytes(kBytes, lane) of them; out[lane * kBytes / 4 + k]: word k of
// its destination after the wait.
template <int kBytes>
__global__ void cp_async_probe(const uint8_t* src, uint32_t* out) {
  __shared__ __align__(16) uint8_t dst[kLanes * kBytes];
  const int lane = threadIdx.x;
  for (int i = 0; i < kBytes; ++i) dst[lane * kBytes + i] = lp::kPoison;
  __syncthreads();  // the poison is in place before any copy lands
  tc::cp_async_zfill<kBytes>(dst + lane * kBytes, src + lane * kBytes,
                             lp::source_bytes(kBytes, lane));
  tc::cp_async_commit();
  tc::cp_async_wait<0>();
  __syncthreads();
  const uint32_t* words = reinterpret_cast<const uint32_t*>(dst + lane * kBytes);
  for (int k = 0; k < kBytes / 4; ++k) out[lane * (kBytes / 4) + k] = words[k];
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    std::fprintf(stderr, "layout probe: CUDA error in %s: %s (%s)\n", what, cudaGetErrorName(err),
                 cudaGetErrorString(err));
    std::exit(2);
  }
}

// Launches, checks the launch and the run, and copies `count` words back.
template <class Launch>
std::vector<uint32_t> run(const char* name, uint32_t* dev_out, int count, Launch&& launch) {
  check(cudaMemset(dev_out, 0xA5, count * sizeof(uint32_t)), "cudaMemset");
  launch();
  check(cudaGetLastError(), name);
  check(cudaDeviceSynchronize(), name);
  std::vector<uint32_t> host(count);
  check(cudaMemcpy(host.data(), dev_out, count * sizeof(uint32_t), cudaMemcpyDeviceToHost),
        "cudaMemcpy");
  return host;
}

void line(FILE* f, const std::string& probe, int lane, const std::string& slot, uint32_t v) {
  std::fprintf(f, "%s %d %s 0x%08x\n", probe.c_str(), lane, slot.c_str(), v);
}

const char* const kMmaSlotNames[kMmaSlots] = {"a0", "a1", "a2", "a3", "b0", "b1", "c0",
                                              "c1", "c2", "c3", "d0", "d1", "d2", "d3"};

std::string mma_probe_name(int kind, int v) {
  return std::string(kMmaNames[kind]) + "/" + lp::kVariantNames[v];
}

// The mma probes' input lines, from the host's copy of the formulas.
void print_inputs(FILE* f) {
  for (int kind = 0; kind < 3; ++kind)
    for (int v = 0; v < 3; ++v)
      for (int lane = 0; lane < kLanes; ++lane) {
        const lp::Fragments in = mma_inputs(MmaKind(kind), lp::Variant(v), lane);
        uint32_t words[10];
        std::memcpy(words, in.a, 16);
        std::memcpy(words + 4, in.b, 8);
        std::memcpy(words + 6, in.c, 16);
        for (int s = 0; s < 10; ++s) line(f, mma_probe_name(kind, v), lane, kMmaSlotNames[s], words[s]);
      }
}

void print_gpu(FILE* f) {
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  std::fprintf(stderr, "layout probe on %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
  uint32_t* dev_out = nullptr;
  uint8_t* dev_src = nullptr;
  const int max_words = kLanes * kMmaSlots;
  check(cudaMalloc(&dev_out, max_words * sizeof(uint32_t)), "cudaMalloc");
  std::vector<uint8_t> src(kLanes * 16);
  for (size_t i = 0; i < src.size(); ++i) src[i] = lp::source_byte(int(i));
  check(cudaMalloc(&dev_src, src.size()), "cudaMalloc");
  check(cudaMemcpy(dev_src, src.data(), src.size(), cudaMemcpyHostToDevice), "cudaMemcpy");

  for (int kind = 0; kind < 3; ++kind)
    for (int v = 0; v < 3; ++v) {
      const auto got = run(kMmaNames[kind], dev_out, max_words, [&] {
        mma_probe<<<1, kLanes>>>(MmaKind(kind), lp::Variant(v), dev_out);
      });
      for (int lane = 0; lane < kLanes; ++lane)
        for (int s = 0; s < kMmaSlots; ++s)
          line(f, mma_probe_name(kind, v), lane, kMmaSlotNames[s], got[lane * kMmaSlots + s]);
    }
  for (int trans = 0; trans < 2; ++trans) {
    const char* name = trans ? "ldmatrix.x4.trans" : "ldmatrix.x4";
    const auto got = run(name, dev_out, kLanes * 4,
                         [&] { ldmatrix_probe<<<1, kLanes>>>(trans != 0, dev_out); });
    for (int lane = 0; lane < kLanes; ++lane)
      for (int j = 0; j < 4; ++j) line(f, name, lane, "r" + std::to_string(j), got[lane * 4 + j]);
  }
  const int sizes[] = {16, 8, 4};
  for (int bytes : sizes) {
    const std::string name = "cp.async." + std::to_string(bytes);
    const int words = bytes / 4;
    const auto got = run(name.c_str(), dev_out, kLanes * words, [&] {
      if (bytes == 16) cp_async_probe<16><<<1, kLanes>>>(dev_src, dev_out);
      else if (bytes == 8) cp_async_probe<8><<<1, kLanes>>>(dev_src, dev_out);
      else cp_async_probe<4><<<1, kLanes>>>(dev_src, dev_out);
    });
    for (int lane = 0; lane < kLanes; ++lane)
      for (int k = 0; k < words; ++k)
        line(f, name, lane, "w" + std::to_string(k), got[lane * words + k]);
  }
  check(cudaFree(dev_out), "cudaFree");
  check(cudaFree(dev_src), "cudaFree");
}

}  // namespace

int main(int argc, char** argv) {
  bool inputs_only = false;
  const char* path = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--inputs") == 0) {
      inputs_only = true;
    } else if (std::strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
      path = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--inputs] [-o FILE]\n", argv[0]);
      return 2;
    }
  }
  FILE* f = path ? std::fopen(path, "w") : stdout;
  if (!f) {
    std::perror(path);
    return 2;
  }
  if (inputs_only) print_inputs(f);
  else print_gpu(f);
  if (path) std::fclose(f);
  return 0;
}
