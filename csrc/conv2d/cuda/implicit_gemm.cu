// Implicit-GEMM convolution: each pass is a GEMM whose operands are gathered
// from the NCHW tensors on the fly (no im2col buffer).
//   forward        rows (n,p,q) x cols k        reduce over (c,r,s)
//   grad-input     rows (n,h,w) x cols c        reduce over (k,r,s)
//   grad-weight    rows (c,r,s) x cols k        reduce over (n,p,q), split-K
// One block computes a BM x BN tile: BK-deep slices of both operands are staged
// in shared memory (converted to the accumulator type once), and each thread
// keeps a TM x TN register block; the next slice's loads overlap the current
// slice's multiply (register prefetch into a second shared buffer). The decomposition of the reduction index
// (divisions) is done once per slice into a small shared table, and once per
// thread for its row, so the inner loops are adds, compares and loads.
// 32-bit offsets: the dispatcher only sends shapes that pass fits_int32().
#include <algorithm>

#include "conv2d/cuda/conv2d_cuda_common.cuh"

namespace convbench {
namespace cuda_conv {

namespace {

constexpr int kFar = -(1 << 30);  // an offset that fails every bounds check

struct Dims {  // 32-bit copy of Conv2dShape
  int N, C, H, W, K, R, S, P, Q, sh, sw, ph, pw, dh, dw, G, Cg, Kg;
  int HW, PQ, RS;
};

Dims make_dims(const Conv2dShape& s) {
  Dims d;
  d.N = int(s.N), d.C = int(s.C), d.H = int(s.H), d.W = int(s.W), d.K = int(s.K);
  d.R = int(s.R), d.S = int(s.S), d.P = int(s.P), d.Q = int(s.Q);
  d.sh = int(s.stride_h), d.sw = int(s.stride_w), d.ph = int(s.pad_h), d.pw = int(s.pad_w);
  d.dh = int(s.dil_h), d.dw = int(s.dil_w), d.G = int(s.groups);
  d.Cg = int(s.c_per_group()), d.Kg = int(s.k_per_group());
  d.HW = d.H * d.W, d.PQ = d.P * d.Q, d.RS = d.R * d.S;
  return d;
}

// ---- the three problems. row(m): per-thread state of its A row; kk(k): the
// shared table entry of reduction index k; load_a/load_b: operand values
// (zero outside the tensors); store: one result. ----

template <typename T>
struct Forward {
  Dims d;
  const T* x;
  const T* w;
  const T* b;
  T* y;
  int M, NC, KR;

  __device__ int4 row(int m, int g) const {
    if (m >= M) return make_int4(0, kFar, kFar, 0);
    const int n = m / d.PQ, pq = m % d.PQ;
    const int h0 = (pq / d.Q) * d.sh - d.ph, w0 = (pq % d.Q) * d.sw - d.pw;
    return make_int4((n * d.C + g * d.Cg) * d.HW + h0 * d.W + w0, h0, w0, 0);
  }
  __device__ int4 kk(int k, int) const {
    if (k >= KR) return make_int4(0, kFar, kFar, -1);
    const int c = k / d.RS, rs = k % d.RS;
    const int dr = (rs / d.S) * d.dh, ds = (rs % d.S) * d.dw;
    return make_int4(c * d.HW + dr * d.W + ds, dr, ds, k);
  }
  __device__ acc_t<T> load_a(int4 r, int4 t) const {
    const int h = r.y + t.y, ww = r.z + t.z;
    return (unsigned(h) < unsigned(d.H) && unsigned(ww) < unsigned(d.W)) ? to_acc<T>(x[r.x + t.x])
                                                                         : acc_t<T>(0);
  }
  __device__ acc_t<T> load_b(int4 t, int j, int g) const {
    return (t.w >= 0 && j < NC) ? to_acc<T>(w[(g * d.Kg + j) * KR + t.w]) : acc_t<T>(0);
  }
  __device__ void store(int m, int j, int g, int, acc_t<T> v) const {
    const int k = g * d.Kg + j, n = m / d.PQ, pq = m % d.PQ;
    if (b) v += to_acc<T>(b[k]);
    y[(n * d.K + k) * d.PQ + pq] = from_acc<T>(v);
  }
};

template <typename T>
struct BackwardInput {
  Dims d;
  const T* dy;
  const T* w;
  T* dx;
  int M, NC, KR;

  __device__ int4 row(int m, int g) const {
    if (m >= M) return make_int4(0, -1, -1, 0);
    const int n = m / d.HW, hw = m % d.HW;
    return make_int4((n * d.K + g * d.Kg) * d.PQ, hw / d.W + d.ph, hw % d.W + d.pw, 0);
  }
  __device__ int4 kk(int k, int g) const {
    if (k >= KR) return make_int4(0, 1 << 30, 1 << 30, -1);
    const int kc = k / d.RS, rs = k % d.RS;
    return make_int4(kc * d.PQ, (rs / d.S) * d.dh, (rs % d.S) * d.dw,
                     (g * d.Kg + kc) * d.Cg * d.RS + rs);
  }
  // Output pixel (p, q) reads this input pixel through tap (r, s) iff
  // h + ph - r*dh = p*sh with 0 <= p < P (and likewise for w).
  __device__ acc_t<T> load_a(int4 r, int4 t) const {
    int hp = r.y - t.y, wq = r.z - t.z;
    if ((hp | wq) < 0) return acc_t<T>(0);
    if (d.sh != 1) {
      if (hp % d.sh) return acc_t<T>(0);
      hp /= d.sh;
    }
    if (d.sw != 1) {
      if (wq % d.sw) return acc_t<T>(0);
      wq /= d.sw;
    }
    if (hp >= d.P || wq >= d.Q) return acc_t<T>(0);
    return to_acc<T>(dy[r.x + t.x + hp * d.Q + wq]);
  }
  __device__ acc_t<T> load_b(int4 t, int j, int) const {
    return (t.w >= 0 && j < NC) ? to_acc<T>(w[t.w + j * d.RS]) : acc_t<T>(0);
  }
  __device__ void store(int m, int j, int g, int, acc_t<T> v) const {
    const int n = m / d.HW, hw = m % d.HW;
    dx[(n * d.C + g * d.Cg + j) * d.HW + hw] = from_acc<T>(v);
  }
};

// Rows are (c, r, s) so consecutive threads write consecutive dw elements.
template <typename T>
struct BackwardWeight {
  Dims d;
  const T* dy;
  const T* x;
  T* dw;              // written directly when splits == 1
  acc_t<T>* partial;  // [splits][K][Cg*R*S] otherwise
  int M, NC, KR;

  __device__ int4 row(int m, int) const {
    if (m >= M) return make_int4(0, kFar, kFar, 0);
    const int c = m / d.RS, rs = m % d.RS;
    return make_int4(c * d.HW, (rs / d.S) * d.dh, (rs % d.S) * d.dw, 0);
  }
  __device__ int4 kk(int k, int g) const {
    if (k >= KR) return make_int4(0, kFar, kFar, -1);
    const int n = k / d.PQ, pq = k % d.PQ;
    return make_int4((n * d.C + g * d.Cg) * d.HW, (pq / d.Q) * d.sh - d.ph,
                     (pq % d.Q) * d.sw - d.pw, (n * d.K + g * d.Kg) * d.PQ + pq);
  }
  __device__ acc_t<T> load_a(int4 r, int4 t) const {
    const int h = r.y + t.y, ww = r.z + t.z;
    return (unsigned(h) < unsigned(d.H) && unsigned(ww) < unsigned(d.W))
               ? to_acc<T>(x[t.x + r.x + h * d.W + ww])
               : acc_t<T>(0);
  }
  __device__ acc_t<T> load_b(int4 t, int j, int) const {
    return (t.w >= 0 && j < NC) ? to_acc<T>(dy[t.w + j * d.PQ]) : acc_t<T>(0);
  }
  __device__ void store(int m, int j, int g, int split, acc_t<T> v) const {
    const int e = (g * d.Kg + j) * M + m;
    if (partial) {
      partial[int64_t(split) * d.K * M + e] = v;
    } else {
      dw[e] = from_acc<T>(v);
    }
  }
};

template <typename T, class Prob, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    igemm_kernel(Prob pb, int splits, int tiles_per_split) {
  using A = acc_t<T>;
  constexpr int TX = BM / TM, TY = BN / TN, NT = TX * TY;
  static_assert(NT % BM == 0, "each thread loads one fixed A row");
  static_assert((BM * BK) % NT == 0 && (BK * BN) % NT == 0, "tiles split evenly");
  constexpr int LA = BM * BK / NT, LB = BK * BN / NT;  // loads per thread per slice
  // Two buffers of everything: while the block multiplies slice i out of one,
  // its threads' loads of slice i+1 are in flight into registers, and the
  // table of slice i+2 is built in the other; one barrier per slice.
  __shared__ A As[2][BK][BM];
  __shared__ A Bs[2][BK][BN + 1];
  __shared__ int4 tab[2][BK];

  const int tid = threadIdx.x;
  const int g = blockIdx.z / splits, split = blockIdx.z % splits;
  const int m0 = blockIdx.x * BM, j0 = blockIdx.y * BN;
  const int ml = tid % BM;
  const int4 row = pb.row(m0 + ml, g);
  const int tx = tid % TX, ty = tid / TX;
  const int kt_begin = split * tiles_per_split;
  const int kt_end = min(kt_begin + tiles_per_split, (pb.KR + BK - 1) / BK);

  A acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = A(0);

  A ra[LA], rb[LB];
  auto load_regs = [&](const int4* t) {
#pragma unroll
    for (int i = 0; i < LA; ++i) ra[i] = pb.load_a(row, t[tid / BM + i * (NT / BM)]);
#pragma unroll
    for (int i = 0; i < LB; ++i) {
      const int e = tid + i * NT;
      rb[i] = pb.load_b(t[e % BK], j0 + e / BK, g);
    }
  };
  auto store_regs = [&](int buf) {
#pragma unroll
    for (int i = 0; i < LA; ++i) As[buf][tid / BM + i * (NT / BM)][ml] = ra[i];
#pragma unroll
    for (int i = 0; i < LB; ++i) {
      const int e = tid + i * NT;
      Bs[buf][e % BK][e / BK] = rb[i];
    }
  };

  if (kt_begin < kt_end) {
    if (tid < BK) tab[0][tid] = pb.kk(kt_begin * BK + tid, g);
    __syncthreads();
    load_regs(tab[0]);
    store_regs(0);
    if (tid < BK) tab[1][tid] = pb.kk((kt_begin + 1) * BK + tid, g);
    __syncthreads();
  }
  for (int kt = kt_begin, buf = 0; kt < kt_end; ++kt, buf ^= 1) {
    const bool next = kt + 1 < kt_end;
    if (next) load_regs(tab[buf ^ 1]);
#pragma unroll
    for (int kl = 0; kl < BK; ++kl) {
      A a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = As[buf][kl][tx + i * TX];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = Bs[buf][kl][ty + j * TY];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
    }
    if (next) {
      store_regs(buf ^ 1);  // slice kt-1 lived there; the last barrier retired it
      if (tid < BK) tab[buf][tid] = pb.kk((kt + 2) * BK + tid, g);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + tx + i * TX;
    if (m >= pb.M) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int jj = j0 + ty + j * TY;
      if (jj < pb.NC) pb.store(m, jj, g, split, acc[i][j]);
    }
  }
}

// Sums the split-K partials in split order: the same bits on every run.
template <typename T>
__global__ void __launch_bounds__(256)
    reduce_splits_kernel(const acc_t<T>* __restrict__ partial, int splits, int n,
                         T* __restrict__ dw) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= n) return;
  acc_t<T> s = 0;
#pragma unroll 8  // independent loads in flight; the adds stay in split order
  for (int i = 0; i < splits; ++i) s += partial[int64_t(i) * n + e];
  dw[e] = from_acc<T>(s);
}

template <typename T, int BM, int BN, int BK, int TM, int TN, class Prob>
void launch(const Prob& pb, int groups, int splits, int tiles_per_split, cudaStream_t st,
            const char* name) {
  constexpr int threads = (BM / TM) * (BN / TN);
  const dim3 grid(ceil_div(pb.M, BM), ceil_div(pb.NC, BN), groups * splits);
  launch_checked(name, [&] {
    igemm_kernel<T, Prob, BM, BN, BK, TM, TN><<<grid, threads, 0, st>>>(pb, splits,
                                                                        tiles_per_split);
  });
}

// Forward and grad-input: BN sized to the channel count (the homework has
// 1-32 channels, so a fixed 64 wastes most lanes), BM = 128 output pixels, or
// 64 or 32 where 128 leaves fewer than kFillBlocks blocks (the 7x7 and 13x13
// layers). Each thread keeps a (BM/32) x TN register block. tile_rows
// forces BM (the tuning sweep's engines).
template <typename T, int BN, int TN, class Prob>
void launch_pixels(const Prob& pb, int groups, int tile_rows, cudaStream_t st, const char* name) {
  const int64_t col_blocks = int64_t(ceil_div(pb.NC, BN)) * groups;
  auto blocks = [&](int bm) { return int64_t(ceil_div(pb.M, bm)) * col_blocks; };
  int bm = tile_rows;
  if (bm == 0) bm = blocks(128) >= kFillBlocks ? 128 : blocks(64) >= kFillBlocks ? 64 : 32;
  CB_CHECK(bm == 128 || bm == 64 || bm == 32, "conv2d: implicit GEMM tile of ", bm,
           " rows does not exist (128, 64 or 32)");
  if (bm == 128) launch<T, 128, BN, 8, 4, TN>(pb, groups, 1, 1 << 30, st, name);
  else if (bm == 64) launch<T, 64, BN, 8, 2, TN>(pb, groups, 1, 1 << 30, st, name);
  else launch<T, 32, BN, 8, 1, TN>(pb, groups, 1, 1 << 30, st, name);
}

template <typename T, class Prob>
void launch_pixels_by_channels(const Prob& pb, int groups, int tile_rows, cudaStream_t st,
                               const char* name) {
  if (pb.NC <= 16) launch_pixels<T, 16, 4>(pb, groups, tile_rows, st, name);
  else if (pb.NC <= 32) launch_pixels<T, 32, 4>(pb, groups, tile_rows, st, name);
  else launch_pixels<T, 64, 8>(pb, groups, tile_rows, st, name);
}

// Grad-weight tiles: BM = 64 rows (c, r, s), BN by the channel count, BK
// slices of the N*P*Q reduction, split-K in `splits` slices of
// tiles_per_split k-tiles each, slice i's partial sums at
// workspace[i][K][Cg*R*S] when splits > 1.
template <typename T>
struct WgradPlan {
  static constexpr int BM = 64;
  static constexpr int BK = sizeof(acc_t<T>) == 8 ? 16 : 32;  // double buffers fit 48 KB
  int bn = 16, splits = 1, tiles_per_split = 1;
  size_t workspace_bytes = 0;
};

// The split depends on the shape only (never on the device or on the
// workspace given): the same bits on every GPU and every run. forced_splits
// > 0 asks for that many slices instead (a tuning engine; at most one per
// k-tile and 65535 / groups in all).
template <typename T>
WgradPlan<T> wgrad_plan(const Conv2dShape& s, int forced_splits) {
  using P = WgradPlan<T>;
  WgradPlan<T> plan;
  const int64_t M = s.c_per_group() * s.R * s.S, NC = s.k_per_group(), KR = s.N * s.P * s.Q;
  plan.bn = NC <= 16 ? 16 : NC <= 32 ? 32 : 64;
  const int64_t tiles_mn = ceil_div<int64_t>(M, P::BM) * ceil_div<int64_t>(NC, plan.bn) * s.groups;
  const int64_t ktiles = std::max<int64_t>(1, ceil_div<int64_t>(KR, P::BK));
  constexpr int64_t kTargetBlocks = 1024;  // a few waves on an A100/H100
  constexpr int64_t kMinTilesPerSplit = 8;  // keeps the serial reduce short...
  const int64_t max_splits = 65535 / s.groups;  // grid.z = groups * splits
  const int64_t want = std::min<int64_t>({std::max<int64_t>(1, kTargetBlocks / tiles_mn),
                                          std::max<int64_t>(1, ktiles / kMinTilesPerSplit),
                                          max_splits});
  int64_t tps = ceil_div<int64_t>(ktiles, want);
  // ...unless the grid would then not fill the SMs: then as many slices as
  // that takes, down to one k-tile each.
  if (tiles_mn * ceil_div<int64_t>(ktiles, tps) < kFillBlocks) {
    const int64_t fill = std::min<int64_t>(ceil_div<int64_t>(kFillBlocks, tiles_mn), max_splits);
    tps = std::max<int64_t>(1, ktiles / fill);  // ceil(ktiles / tps) >= fill
  }
  if (forced_splits > 0)
    tps = ceil_div<int64_t>(ktiles, std::min<int64_t>({forced_splits, ktiles, max_splits}));
  plan.tiles_per_split = int(tps);
  plan.splits = int(ceil_div<int64_t>(ktiles, tps));
  if (plan.splits > 1)
    plan.workspace_bytes = size_t(plan.splits) * size_t(s.weight_numel()) * sizeof(acc_t<T>);
  return plan;
}

}  // namespace

template <typename T>
void igemm_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y,
                   int tile_rows, cudaStream_t st) {
  const Dims d = make_dims(s);
  Forward<T> pb{d, x, w, b, y, d.N * d.PQ, d.Kg, d.Cg * d.RS};
  launch_pixels_by_channels<T>(pb, d.G, tile_rows, st, "igemm_kernel<Forward>");
}

template <typename T>
void igemm_backward_input(const Conv2dShape& s, const T* dy, const T* w, T* dx,
                          int tile_rows, cudaStream_t st) {
  const Dims d = make_dims(s);
  BackwardInput<T> pb{d, dy, w, dx, d.N * d.HW, d.Cg, d.Kg * d.RS};
  launch_pixels_by_channels<T>(pb, d.G, tile_rows, st, "igemm_kernel<BackwardInput>");
}

// Split-K over N*P*Q into a fixed number of chunks that depends on the shape
// only (never on the device), each written to its own workspace slice, then a
// fixed-order reduce: deterministic, and no float atomics.
template <typename T>
size_t igemm_backward_weight_workspace(const Conv2dShape& s, int splits) {
  return wgrad_plan<T>(s, splits).workspace_bytes;
}

template <typename T>
int igemm_backward_weight_splits(const Conv2dShape& s, int splits) {
  return wgrad_plan<T>(s, splits).splits;
}

template <typename T>
void igemm_backward_weight(const Conv2dShape& s, const T* dy, const T* x, T* dw, void* workspace,
                           size_t workspace_bytes, int splits_asked, cudaStream_t st) {
  using P = WgradPlan<T>;
  WgradPlan<T> plan = wgrad_plan<T>(s, splits_asked);
  if (workspace == nullptr) {  // no workspace: one unsplit pass straight into dw
    plan.splits = 1;
    plan.tiles_per_split = 1 << 30;
  } else {
    CB_CHECK(workspace_bytes >= plan.workspace_bytes, "conv2d: the implicit GEMM's grad-weight "
             "workspace holds ", workspace_bytes, " bytes; this shape needs ",
             plan.workspace_bytes, " (conv2d_workspace_size)");
  }
  const Dims d = make_dims(s);
  BackwardWeight<T> pb{d, dy, x, dw, nullptr, d.Cg * d.RS, d.Kg, d.N * d.PQ};
  if (plan.splits > 1) pb.partial = static_cast<acc_t<T>*>(workspace);
  const char* name = "igemm_kernel<BackwardWeight>";
  const int splits = plan.splits, tps = plan.tiles_per_split;
  if (plan.bn == 16) launch<T, P::BM, 16, P::BK, 2, 4>(pb, d.G, splits, tps, st, name);
  else if (plan.bn == 32) launch<T, P::BM, 32, P::BK, 2, 4>(pb, d.G, splits, tps, st, name);
  else launch<T, P::BM, 64, P::BK, 2, 8>(pb, d.G, splits, tps, st, name);
  if (pb.partial) {
    const int n = int(s.weight_numel());
    launch_checked("reduce_splits_kernel", [&] {
      reduce_splits_kernel<T><<<ceil_div(n, 256), 256, 0, st>>>(pb.partial, splits, n, dw);
    });
  }
}

#define CB_INSTANTIATE(T)                                                                   \
  template void igemm_forward<T>(const Conv2dShape&, const T*, const T*, const T*, T*, int, \
                                 cudaStream_t);                                             \
  template void igemm_backward_input<T>(const Conv2dShape&, const T*, const T*, T*, int,    \
                                        cudaStream_t);                                      \
  template size_t igemm_backward_weight_workspace<T>(const Conv2dShape&, int);              \
  template int igemm_backward_weight_splits<T>(const Conv2dShape&, int);                    \
  template void igemm_backward_weight<T>(const Conv2dShape&, const T*, const T*, T*, void*,  \
                                         size_t, int, cudaStream_t);
CB_FOR_EACH_CUDA_DTYPE(CB_INSTANTIATE)
#undef CB_INSTANTIATE

}  // namespace cuda_conv
}  // namespace convbench
