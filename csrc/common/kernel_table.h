// Kernel entry points by name. An op's CPU dispatch file and its CUDA file
// each register their entry points here (CB_REGISTER_KERNEL), and the module
// (bindings.cpp: convbench._C.kernel(name)) and the CUDA emulator's worker
// call them from this table, so adding an op edits neither.
//
// An entry point is a plain function
//   void f(DType, const Shape&, buffer pointers...)                      (CPU)
//   void f(DType, const Shape&, buffer pointers..., int device, void* stream)  (CUDA)
// with Shape one of the field-list shapes (common/shapes.h). A call passes
// the shape as the numbers its field list names and the buffers as raw
// pointers in the registered order; the table records both lists, so Python
// packs its calls from them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/check.h"
#include "common/shapes.h"

namespace convbench {

enum class KernelDevice : int { CPU = 0, CUDA = 1 };

// The most buffers an entry point takes (callers keep the pointers on the stack).
constexpr size_t kMaxKernelBuffers = 8;

struct KernelCall {
  DType dtype = DType::Float32;
  const int64_t* shape = nullptr;   // the entry's shape_fields, in order
  void* const* buffers = nullptr;   // the entry's buffers, in order
  int device_index = 0;             // CUDA only
  void* stream = nullptr;           // CUDA only
};

using KernelRun = void (*)(const KernelCall&);

struct KernelEntry {
  std::vector<std::string> shape_fields;
  std::vector<std::string> buffers;
  KernelRun run[2] = {nullptr, nullptr};  // by KernelDevice
};

struct KernelTable {
  std::map<std::string, KernelEntry> entries;
  std::vector<std::string> errors;  // registrations that disagree (the module refuses to load)
};

// One table per process (a function-local static: safe from any static initialiser).
inline KernelTable& kernel_table() {
  static KernelTable table;
  return table;
}

namespace kernel_table_detail {

template <class F>
struct Params;
template <class... A>
struct Params<void (*)(A...)> {
  using type = std::tuple<A...>;
};

// Turns a KernelCall into a call of entry point F (CUDA: F's last two
// parameters are the device and the stream).
template <auto F, KernelDevice D>
struct Adapter {
  using Args = typename Params<decltype(F)>::type;
  using Shape = std::decay_t<std::tuple_element_t<1, Args>>;
  static constexpr size_t kTrailing = D == KernelDevice::CUDA ? 2 : 0;
  static constexpr size_t kBuffers = std::tuple_size_v<Args> - 2 - kTrailing;
  static_assert(std::is_same_v<std::tuple_element_t<0, Args>, DType>,
                "an entry point starts with (DType, const Shape&, ...)");
  template <size_t I>
  using Buffer = std::tuple_element_t<2 + I, Args>;

  template <size_t... I>
  static void call(const KernelCall& c, std::index_sequence<I...>) {
    const Shape s = ShapeFields<Shape>::from(c.shape);
    check_shape(s);  // each shape's own rule, beside its field list
    if constexpr (D == KernelDevice::CUDA)
      F(c.dtype, s, static_cast<Buffer<I>>(c.buffers[I])..., c.device_index, c.stream);
    else
      F(c.dtype, s, static_cast<Buffer<I>>(c.buffers[I])...);
  }
  static void run(const KernelCall& c) { call(c, std::make_index_sequence<kBuffers>{}); }
};

}  // namespace kernel_table_detail

// Registers entry point F under `name` for device D with its buffers' names.
template <auto F, KernelDevice D>
bool register_kernel(const char* name, std::initializer_list<const char*> buffers) {
  using A = kernel_table_detail::Adapter<F, D>;
  using S = typename A::Shape;
  KernelTable& t = kernel_table();
  const std::vector<std::string> fields(std::begin(ShapeFields<S>::names),
                                        std::end(ShapeFields<S>::names));
  const std::vector<std::string> names(buffers.begin(), buffers.end());
  const std::string who = std::string(name) + (D == KernelDevice::CUDA ? " (CUDA)" : " (CPU)");
  static_assert(A::kBuffers <= kMaxKernelBuffers, "raise kMaxKernelBuffers");
  if (names.size() != A::kBuffers) {
    t.errors.push_back(who + ": " + std::to_string(names.size()) + " buffer names for " +
                       std::to_string(A::kBuffers) + " buffers");
    return false;
  }
  auto [it, fresh] = t.entries.try_emplace(name);
  KernelEntry& e = it->second;
  if (fresh) {
    e.shape_fields = fields;
    e.buffers = names;
  } else if (e.shape_fields != fields || e.buffers != names) {
    t.errors.push_back(who + ": its shape or buffers differ from the other device's");
    return false;
  }
  if (e.run[static_cast<int>(D)] != nullptr) {
    t.errors.push_back(who + ": registered twice");
    return false;
  }
  e.run[static_cast<int>(D)] = &A::run;
  return true;
}

// The entry named `name`, or nullptr.
inline const KernelEntry* find_kernel(const std::string& name) {
  const auto it = kernel_table().entries.find(name);
  return it == kernel_table().entries.end() ? nullptr : &it->second;
}

// Runs entry `e` (called `name` in errors) on device d after checking the
// call against it: as many shape numbers and buffers as it names, and a
// kernel for d (nullptr: false, the caller says why). The module and the
// emulator's worker both call through here.
inline bool run_kernel(const std::string& name, const KernelEntry& e, KernelDevice d,
                       DType dtype, const std::vector<int64_t>& shape,
                       void* const* buffers, size_t n_buffers, int device_index = 0,
                       void* stream = nullptr) {
  CB_CHECK(shape.size() == e.shape_fields.size(), name, ": a shape of ",
           e.shape_fields.size(), " numbers, got ", shape.size());
  CB_CHECK(n_buffers == e.buffers.size(), name, ": ", e.buffers.size(), " buffers, got ",
           n_buffers);
  const KernelRun run = e.run[static_cast<int>(d)];
  if (run == nullptr) return false;
  KernelCall c;
  c.dtype = dtype;
  c.shape = shape.data();
  c.buffers = buffers;
  c.device_index = device_index;
  c.stream = stream;
  run(c);
  return true;
}

#define CB_KERNEL_CONCAT2(a, b) a##b
#define CB_KERNEL_CONCAT(a, b) CB_KERNEL_CONCAT2(a, b)
// CB_REGISTER_KERNEL("max_pool2d_forward", CPU, max_pool2d_forward_cpu, "x", "y", "indices");
#define CB_REGISTER_KERNEL(name, device, fn, ...)                                       \
  namespace {                                                                           \
  [[maybe_unused]] const bool CB_KERNEL_CONCAT(cb_kernel_registered_, __LINE__) =       \
      ::convbench::register_kernel<&fn, ::convbench::KernelDevice::device>(name,       \
                                                                           {__VA_ARGS__}); \
  }

}  // namespace convbench
