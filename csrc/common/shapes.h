// Problem descriptions shared by every kernel. Plain structs of 64-bit sizes:
// kernels index with int64_t so tensors past 2^31 elements stay correct.
#pragma once
#include <cstdint>
#include <cstring>

#include "common/check.h"

namespace convbench {

enum class DType : int { Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3 };

// Conv algorithms. Auto lets the backend choose by shape and pass.
enum class Conv2dAlgo : int {
  Auto = 0,
  Direct = 1,
  Im2colGemm = 2,    // CPU: explicit im2col + our blocked GEMM
  ImplicitGemm = 3,  // CUDA: tiled implicit GEMM through shared memory
  Winograd = 4,
  Fused = 5,
};

// The names Python uses for the algorithms (error messages say them too).
inline const char* conv2d_algo_name(Conv2dAlgo a) {
  switch (a) {
    case Conv2dAlgo::Auto: return "auto";
    case Conv2dAlgo::Direct: return "direct";
    case Conv2dAlgo::Im2colGemm: return "im2col";
    case Conv2dAlgo::ImplicitGemm: return "implicit_gemm";
    case Conv2dAlgo::Winograd: return "winograd";
    case Conv2dAlgo::Fused: return "fused";
  }
  return "unknown";
}

enum class Conv2dPass : int { Forward = 0, BackwardInput = 1, BackwardWeight = 2 };

// A concrete kernel: an algorithm and one of its engines. Engine 0 lets the
// algorithm pick its engine by shape. CPU Direct: 1 "flat" (vectorised along
// output positions), 2 "kvec" (along output channels); CPU Im2colGemm: 1;
// CPU Winograd: 1 F(2x2,3x3), 2 F(4x4,3x3) (conv2d/cpu/engines.h). A CUDA
// engine is a tiling: ImplicitGemm 1-3 tiles of 128/64/32 output pixels
// (forward, grad-input) or 1/4/16/64 split-K slices (grad-weight), Fused 1-6
// chunks of 1-32 channels per thread (see conv2d_cuda.cu). Words used
// throughout: isa (which compiled build of the CPU kernels), engine (this
// slot), tiling (a CUDA engine's block sizes).
struct Conv2dConfig {
  Conv2dAlgo algo = Conv2dAlgo::Auto;
  int engine = 0;
};

// A shape is declared once, as its list of fields: the struct's members,
// the order Python passes the numbers in (the module exports the names:
// CONV2D_SHAPE_FIELDS, and each table kernel's shape_fields) and every
// reader of that order (bindings.cpp, the CUDA emulator's worker) come from
// the list. An op's own shape lives in its header (csrc/<op>/<op>.h) the
// same way, with a check_shape rule beside it.
#define CB_SHAPE_MEMBER(name) int64_t name;
#define CB_SHAPE_NAME(name) #name,
#define CB_SHAPE_COUNT(name) +1

// ShapeFields<S>: the field names of shape S in order, and S from that many numbers.
template <class S>
struct ShapeFields;

#define CB_SHAPE_FIELDS_OF(Shape, FIELDS)                                         \
  template <>                                                                     \
  struct ShapeFields<Shape> {                                                     \
    static constexpr int count = 0 FIELDS(CB_SHAPE_COUNT);                        \
    static constexpr const char* names[count] = {FIELDS(CB_SHAPE_NAME)};          \
    static Shape from(const int64_t* v) {                                         \
      Shape s;                                                                    \
      std::memcpy(&s, v, sizeof(Shape));                                          \
      return s;                                                                   \
    }                                                                             \
  };                                                                              \
  static_assert(sizeof(Shape) == ShapeFields<Shape>::count * sizeof(int64_t),     \
                #Shape " must hold its fields and nothing else")

// NCHW input [N, C, H, W], weight [K, C / groups, R, S], output [N, K, P, Q].
// Padding is top/left only: rows/cols read past H/W are zero, so asymmetric
// ('same' with even kernels) padding is expressed through P and Q.
#define CB_CONV2D_SHAPE_FIELDS(X)                                                  \
  X(N) X(C) X(H) X(W) X(K) X(R) X(S) X(P) X(Q) X(stride_h) X(stride_w) X(pad_h) X(pad_w) \
  X(dil_h) X(dil_w) X(groups)

struct Conv2dShape {
  CB_CONV2D_SHAPE_FIELDS(CB_SHAPE_MEMBER)

  int64_t c_per_group() const { return C / groups; }
  int64_t k_per_group() const { return K / groups; }
  int64_t input_numel() const { return N * C * H * W; }
  int64_t weight_numel() const { return K * c_per_group() * R * S; }
  int64_t output_numel() const { return N * K * P * Q; }
};
CB_SHAPE_FIELDS_OF(Conv2dShape, CB_CONV2D_SHAPE_FIELDS);

// Each shape's sanity rule, run on every call that arrives as numbers (the
// module, the emulator): the friendly checks are Python's; these keep a bad
// raw call from reaching a kernel.
inline void check_shape(const Conv2dShape& s) {
  CB_CHECK(s.N >= 0 && s.C > 0 && s.H >= 0 && s.W >= 0 && s.K > 0 && s.R > 0 && s.S > 0 &&
               s.P >= 0 && s.Q >= 0,
           "conv2d: invalid sizes");
  CB_CHECK(s.stride_h > 0 && s.stride_w > 0 && s.dil_h > 0 && s.dil_w > 0 && s.pad_h >= 0 &&
               s.pad_w >= 0,
           "conv2d: stride and dilation must be positive, padding non-negative");
  CB_CHECK(s.groups > 0 && s.C % s.groups == 0 && s.K % s.groups == 0,
           "conv2d: groups must divide in_channels (", s.C, ") and out_channels (", s.K, ")");
}

// NCHW input [N, C, H, W] -> output [N, C, P, Q]. Indices are flat offsets
// h * W + w inside each (n, c) plane, as torch.nn.functional.max_pool2d returns.
#define CB_POOL2D_SHAPE_FIELDS(X)                                                  \
  X(N) X(C) X(H) X(W) X(P) X(Q) X(kernel_h) X(kernel_w) X(stride_h) X(stride_w) X(pad_h) \
  X(pad_w) X(dil_h) X(dil_w)

// A pooling shape (input [N, C, H, W], output [N, C, P, Q]): its field
// list's members, the element counts every pool uses, and its ShapeFields.
#define CB_POOL_SHAPE(Shape, FIELDS)                                \
  struct Shape {                                                    \
    FIELDS(CB_SHAPE_MEMBER)                                         \
    int64_t input_numel() const { return N * C * H * W; }           \
    int64_t output_numel() const { return N * C * P * Q; }          \
  };                                                                \
  CB_SHAPE_FIELDS_OF(Shape, FIELDS)

CB_POOL_SHAPE(Pool2dShape, CB_POOL2D_SHAPE_FIELDS);

// The sizes every pooling shape has (N, C, H, W, P, Q, kernel, stride, padding).
template <class S>
void check_pool_window_sizes(const S& s, const char* op) {
  CB_CHECK(s.N >= 0 && s.C >= 0 && s.H > 0 && s.W > 0 && s.P >= 0 && s.Q >= 0 &&
               s.kernel_h > 0 && s.kernel_w > 0 && s.stride_h > 0 && s.stride_w > 0 &&
               s.pad_h >= 0 && s.pad_w >= 0,
           op, ": invalid sizes");
}

inline void check_shape(const Pool2dShape& s) {
  check_pool_window_sizes(s, "max_pool2d");
  CB_CHECK(s.dil_h > 0 && s.dil_w > 0, "max_pool2d: invalid sizes");
}

}  // namespace convbench
