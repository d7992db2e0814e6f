// The one pybind11 module, convbench._C. Thin on purpose: it turns Python ints
// (data pointers, sizes, a stream handle) into the kernels' plain arguments,
// routes each call to the CPU or the CUDA entry point (on_device), and
// releases the GIL while kernels run. Validation with friendly messages lives
// in Python (convbench/_args.py); the checks here only keep bad raw calls
// from reaching a kernel. The module also exports the ABI Python builds its
// calls from: shape field order, pass, device, dtype and algorithm ids
// (python/convbench/_C.pyi lists all of it). conv2d has functions of its
// own here (its algorithm queries); every other op's kernels are reached
// through the kernel table (_C.kernel(name), common/kernel_table.h).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <tuple>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/check.h"
#include "common/cpu_isa.h"
#include "common/kernel_table.h"
#include "common/shapes.h"
#include "conv2d/conv2d.h"
#include "runtime/runtime_info.h"

namespace py = pybind11;
using namespace convbench;

namespace {

enum Device : int { kCPU = 0, kCUDA = 1 };

// A shape arrives as the numbers its ShapeFields name, in that order (common/shapes.h).
template <class S>
using ShapeArgs = std::array<int64_t, ShapeFields<S>::count>;
using ConvShapeArgs = ShapeArgs<Conv2dShape>;

template <class S>
py::tuple field_names() {
  const auto& n = ShapeFields<S>::names;
  return py::tuple(py::cast(std::vector<std::string>(std::begin(n), std::end(n))));
}

Conv2dShape to_conv_shape(const ConvShapeArgs& a) {
  const Conv2dShape s = ShapeFields<Conv2dShape>::from(a.data());
  check_shape(s);
  return s;
}

template <typename T>
const T* cptr(uintptr_t p) { return reinterpret_cast<const T*>(p); }
template <typename T>
T* mptr(uintptr_t p) { return reinterpret_cast<T*>(p); }
[[maybe_unused]] void* stream_ptr(uintptr_t s) { return reinterpret_cast<void*>(s); }

[[noreturn, maybe_unused]] void no_cuda() {
  throw std::runtime_error("convbench was built without CUDA support");
}

// on_device(device, cpu, cuda): runs cpu() or cuda(); the CUDA branch is
// written inside CB_CUDA(...), which without CUDA compiles to "not built".
template <class Cpu, class Cuda>
auto on_device(int device, Cpu&& cpu, Cuda&& cuda) {
  CB_CHECK(device == kCPU || device == kCUDA, "unknown device code ", device);
  return device == kCPU ? cpu() : cuda();
}
#ifdef CONVBENCH_WITH_CUDA
#define CB_CUDA(...) __VA_ARGS__
#define CB_CUDA_ENTRY(f) f
#else
#define CB_CUDA(...) no_cuda()
#define CB_CUDA_ENTRY(f) nullptr
#endif

template <class T>
struct NotDeduced {
  using type = T;
};

// Runs a kernel entry point: cpu(args...), or cuda(args..., device_index,
// stream) (CB_CUDA_ENTRY(f): nullptr without CUDA). The argument types are
// cpu's alone (NotDeduced), so each argument converts to them.
template <class... Args>
void call_kernel(int device, int device_index, uintptr_t stream, void (*cpu)(Args...),
                 typename NotDeduced<void (*)(Args..., int, void*)>::type cuda,
                 typename NotDeduced<Args>::type... args) {
  on_device(device, [&] { cpu(args...); },
            [&] { CB_CUDA(cuda(args..., device_index, stream_ptr(stream))); });
}

Conv2dConfig config(int algo, int engine) { return {static_cast<Conv2dAlgo>(algo), engine}; }

void conv2d_forward(int device, int device_index, uintptr_t stream, int dtype, int algo,
                    const ConvShapeArgs& shape, uintptr_t x, uintptr_t w, uintptr_t b,
                    uintptr_t y, int engine) {
  call_kernel(device, device_index, stream, conv2d_forward_cpu, CB_CUDA_ENTRY(conv2d_forward_cuda),
              config(algo, engine), static_cast<DType>(dtype), to_conv_shape(shape), cptr<void>(x),
              cptr<void>(w), cptr<void>(b), mptr<void>(y));
}

void conv2d_backward_input(int device, int device_index, uintptr_t stream, int dtype, int algo,
                           const ConvShapeArgs& shape, uintptr_t dy, uintptr_t w, uintptr_t dx,
                           int engine) {
  call_kernel(device, device_index, stream, conv2d_backward_input_cpu,
              CB_CUDA_ENTRY(conv2d_backward_input_cuda), config(algo, engine),
              static_cast<DType>(dtype), to_conv_shape(shape), cptr<void>(dy), cptr<void>(w),
              mptr<void>(dx));
}

// workspace: CUDA only, conv2d_workspace_size bytes the caller allocated
// (from PyTorch's allocator, on this stream); 0 with 0 bytes where none.
// db: CPU only, [K] for the bias gradient as well; 0 for none.
void conv2d_backward_weight(int device, int device_index, uintptr_t stream, int dtype, int algo,
                            const ConvShapeArgs& shape, uintptr_t dy, uintptr_t x, uintptr_t dw,
                            int engine, uintptr_t workspace, size_t workspace_bytes,
                            uintptr_t db) {
  const Conv2dShape s = to_conv_shape(shape);
  const auto t = static_cast<DType>(dtype);
  const Conv2dConfig c = config(algo, engine);
  on_device(device,
            [&] {
              conv2d_backward_weight_cpu(c, t, s, cptr<void>(dy), cptr<void>(x), mptr<void>(dw),
                                         mptr<void>(db));
            },
            [&] {
              CB_CHECK(db == 0, "conv2d_backward_weight: the bias gradient is computed with the "
                                "weight gradient on the CPU only");
              CB_CUDA(conv2d_backward_weight_cuda(c, t, s, cptr<void>(dy), cptr<void>(x),
                                                  mptr<void>(dw), mptr<void>(workspace),
                                                  workspace_bytes, device_index,
                                                  stream_ptr(stream)));
            });
}

int conv2d_choose_algo(int device, int pass, int dtype, const ConvShapeArgs& shape) {
  const Conv2dShape s = to_conv_shape(shape);
  const auto p = static_cast<Conv2dPass>(pass);
  const auto t = static_cast<DType>(dtype);
  const Conv2dAlgo a = on_device(device, [&] { return conv2d_choose_algo_cpu(p, t, s); },
                                 [&]() -> Conv2dAlgo { CB_CUDA(return conv2d_choose_algo_cuda(p, t, s)); });
  return static_cast<int>(a);
}

// (algo, engine) pairs the autotuner times for this pass and shape.
std::vector<std::pair<int, int>> conv2d_candidates(int pass, int dtype, const ConvShapeArgs& shape,
                                                   int device) {
  const auto p = static_cast<Conv2dPass>(pass);
  const auto t = static_cast<DType>(dtype);
  const Conv2dShape s = to_conv_shape(shape);
  const std::vector<Conv2dConfig> configs = on_device(
      device, [&] { return conv2d_candidates_cpu(p, t, s); },
      [&]() -> std::vector<Conv2dConfig> { CB_CUDA(return conv2d_candidates_cuda(p, t, s)); });
  std::vector<std::pair<int, int>> out;
  for (const Conv2dConfig& c : configs) out.emplace_back(static_cast<int>(c.algo), c.engine);
  return out;
}

// Bytes of CUDA workspace a grad-weight call with these arguments needs.
size_t conv2d_workspace_size(int pass, int dtype, int algo, int engine,
                             const ConvShapeArgs& shape) {
  return on_device(kCUDA, [] { return size_t{0}; }, [&]() -> size_t {
    CB_CUDA(return conv2d_workspace_size_cuda(config(algo, engine), static_cast<Conv2dPass>(pass),
                                              static_cast<DType>(dtype), to_conv_shape(shape)));
  });
}

std::string conv2d_engine_name(int algo, int engine, int device, int pass) {
  const auto a = static_cast<Conv2dAlgo>(algo);
  return on_device(device, [&] { return std::string(conv2d_engine_name_cpu(a, engine)); },
                   [&]() -> std::string {
                     CB_CUDA(return conv2d_engine_name_cuda(a, static_cast<Conv2dPass>(pass),
                                                             engine));
                   });
}

// The (algo, engine) a CPU request resolves to on the ISA build in use.
std::pair<int, int> conv2d_resolve(int pass, int dtype, int algo, int engine,
                                   const ConvShapeArgs& shape) {
  const Conv2dConfig c = conv2d_resolve_cpu(config(algo, engine), static_cast<Conv2dPass>(pass),
                                            static_cast<DType>(dtype), to_conv_shape(shape));
  return {static_cast<int>(c.algo), c.engine};
}

std::vector<int> conv2d_algos(int device) {
  const std::vector<Conv2dAlgo> algos = on_device(
      device, [] { return conv2d_algos_cpu(); },
      [] {
#ifdef CONVBENCH_WITH_CUDA
        return conv2d_algos_cuda();
#else
        return std::vector<Conv2dAlgo>{};  // a CPU-only build has no CUDA algorithm
#endif
      });
  std::vector<int> out;
  for (auto a : algos) out.push_back(static_cast<int>(a));
  return out;
}

// A kernel from the table (common/kernel_table.h): every op but conv2d
// registers its entry points there, so it needs no function here.
struct Kernel {
  std::string name;
  const KernelEntry* entry;
};

Kernel kernel_by_name(const std::string& name) {
  const KernelEntry* e = find_kernel(name);
  if (e == nullptr) {
    std::string known;
    for (const auto& [n, _] : kernel_table().entries) known += (known.empty() ? "" : ", ") + n;
    throw py::key_error("convbench._C has no kernel '" + name + "' (it has: " + known + ")");
  }
  return {name, e};
}

void call_table_kernel(const Kernel& k, int device, int device_index, uintptr_t stream,
                       int dtype, const std::vector<int64_t>& shape,
                       const std::vector<uintptr_t>& buffers) {
  CB_CHECK(device == kCPU || device == kCUDA, "unknown device code ", device);
  CB_CHECK(buffers.size() <= kMaxKernelBuffers, k.name, ": ", k.entry->buffers.size(),
           " buffers, got ", buffers.size());
  std::array<void*, kMaxKernelBuffers> ptrs{};
  for (size_t i = 0; i < buffers.size(); ++i) ptrs[i] = reinterpret_cast<void*>(buffers[i]);
  if (!run_kernel(k.name, *k.entry, static_cast<KernelDevice>(device), static_cast<DType>(dtype),
                  shape, ptrs.data(), buffers.size(), device_index, stream_ptr(stream))) {
    if (device == kCUDA) no_cuda();
    CB_CHECK(false, k.name, " has no CPU kernel");
  }
}

void axpy_cuda(float a, uintptr_t x, uintptr_t y, int64_t n, int device_index, uintptr_t stream) {
  on_device(kCUDA, [] {}, [&] {
    CB_CUDA(cuda_axpy(a, cptr<float>(x), mptr<float>(y), n, device_index, stream_ptr(stream)));
  });
}

std::vector<std::string> isa_names(const std::vector<CpuIsa>& isas) {
  std::vector<std::string> out;
  for (CpuIsa i : isas) out.emplace_back(cpu_isa_name(i));
  return out;
}

void set_cpu_isa_by_name(const std::string& name) {
  for (CpuIsa i : {CpuIsa::Generic, CpuIsa::Avx2, CpuIsa::Avx512})
    if (name == cpu_isa_name(i)) return set_cpu_isa(i);
  CB_CHECK(false, "unknown CPU ISA '", name, "'; choose generic, avx2 or avx512");
}

int openmp_max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  if (!kernel_table().errors.empty()) {  // a registration mistake, caught at import
    std::string all;
    for (const auto& e : kernel_table().errors) all += "\n  " + e;
    throw py::import_error("convbench._C: its kernel table is inconsistent:" + all);
  }
  m.doc() = "convbench's compiled kernels (raw pointers in, no torch dependency)";
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  // Every kernel call starts with where it runs and what it computes.
  auto call = [](auto... rest) {
    return std::make_tuple(py::arg("device"), py::arg("device_index"), py::arg("stream"),
                           py::arg("dtype"), rest...);
  };
  auto def = [&](const char* name, auto fn, const char* doc, auto args) {
    std::apply([&](auto... a) { m.def(name, fn, nogil, doc, a...); }, args);
  };

  def("conv2d_forward", &conv2d_forward, "y = conv2d(x, w, b) into y (b may be 0)",
      call(py::arg("algo"), py::arg("shape"), py::arg("x"), py::arg("w"), py::arg("b"),
           py::arg("y"), py::arg("engine") = 0));
  def("conv2d_backward_input", &conv2d_backward_input, "dx from dy and w",
      call(py::arg("algo"), py::arg("shape"), py::arg("dy"), py::arg("w"), py::arg("dx"),
           py::arg("engine") = 0));
  def("conv2d_backward_weight", &conv2d_backward_weight,
      "dw from dy and x (CUDA: workspace of conv2d_workspace_size bytes; CPU: db, the bias "
      "gradient, too unless 0)",
      call(py::arg("algo"), py::arg("shape"), py::arg("dy"), py::arg("x"), py::arg("dw"),
           py::arg("engine") = 0, py::arg("workspace") = 0, py::arg("workspace_bytes") = 0,
           py::arg("db") = 0));
  py::class_<Kernel>(m, "Kernel", "An entry point of the kernel table: call it with (device, "
                                  "device_index, stream, dtype, shape, buffers)")
      .def_readonly("name", &Kernel::name)
      .def_property_readonly("shape_fields", [](const Kernel& k) {
        return py::tuple(py::cast(k.entry->shape_fields));
      })
      .def_property_readonly("buffers", [](const Kernel& k) {
        return py::tuple(py::cast(k.entry->buffers));
      })
      .def_property_readonly("devices", [](const Kernel& k) {
        std::vector<std::string> out;
        if (k.entry->run[kCPU]) out.emplace_back("cpu");
        if (k.entry->run[kCUDA]) out.emplace_back("cuda");
        return py::tuple(py::cast(out));
      })
      .def("__call__", &call_table_kernel, nogil, py::arg("device"), py::arg("device_index"),
           py::arg("stream"), py::arg("dtype"), py::arg("shape"), py::arg("buffers"))
      .def("__repr__", [](const Kernel& k) { return "<convbench._C.Kernel " + k.name + ">"; });
  m.def("kernel", &kernel_by_name, py::arg("name"), "The table kernel of this name (KeyError if none)");
  m.def("kernel_names", [] {
    std::vector<std::string> out;
    for (const auto& [n, e] : kernel_table().entries) out.push_back(n);
    return out;
  }, "Names of the table's kernels");
  m.def("axpy_cuda", &axpy_cuda, nogil, "y <- a * x + y on a GPU (the smallest real kernel)",
        py::arg("a"), py::arg("x"), py::arg("y"), py::arg("n"), py::arg("device_index"),
        py::arg("stream"));

  m.def("conv2d_choose_algo", &conv2d_choose_algo, "The algorithm id 'auto' resolves to",
        py::arg("device"), py::arg("pass_"), py::arg("dtype"), py::arg("shape"));
  m.def("conv2d_algos", &conv2d_algos, "Algorithm ids a device implements (besides auto)",
        py::arg("device"));
  m.def("conv2d_candidates", &conv2d_candidates, py::arg("pass_"), py::arg("dtype"),
        py::arg("shape"), py::arg("device") = 0,
        "(algo, engine) pairs the autotuner times for a pass and shape on a device");
  m.def("conv2d_workspace_size", &conv2d_workspace_size, py::arg("pass_"), py::arg("dtype"),
        py::arg("algo"), py::arg("engine"), py::arg("shape"),
        "Bytes of CUDA workspace a conv2d call needs (0: none)");
  m.def("conv2d_resolve", &conv2d_resolve, py::arg("pass_"), py::arg("dtype"), py::arg("algo"),
        py::arg("engine"), py::arg("shape"),
        "The CPU (algo, engine) a request resolves to on the ISA build in use");
  m.def("conv2d_engine_name", &conv2d_engine_name, py::arg("algo"), py::arg("engine"),
        py::arg("device") = 0, py::arg("pass_") = 0,
        "Name of an engine or tiling ('flat', 'kvec', 'bm64', 'split16', 'ch4', ...)");

  m.def("cuda_compiled", &cuda_compiled, "Whether the CUDA kernels were compiled in");
  m.def("cuda_device_count", &cuda_device_count, "Usable CUDA devices (0 without CUDA or a GPU)");
  m.def("cuda_runtime_version", &cuda_runtime_version, "CUDA runtime version ('' without CUDA)");
  m.def("cuda_driver_version", &cuda_driver_version, "CUDA driver version ('' without a driver)");
  m.def("cuda_architectures", &cuda_architectures, "CUDA architectures compiled for");
  m.def("build_commit", &build_commit, "The source commit the module was built from");
  m.def("cpu_isa", [] { return std::string(cpu_isa_name(cpu_isa_active())); },
        "Name of the CPU ISA build in use");
  m.def("cpu_isas_compiled", [] { return isa_names(cpu_isas_compiled()); },
        "CPU ISA builds in this build");
  m.def("cpu_isas_supported", [] { return isa_names(cpu_isas_supported()); },
        "Compiled CPU engines this CPU can run");
  m.def("set_cpu_isa", &set_cpu_isa_by_name, py::arg("name"),
        "Use this CPU engine from now on (ValueError if not compiled or not runnable here)");
  m.def("openmp_max_threads", &openmp_max_threads, "OpenMP threads a parallel region gets");
  m.def("conv2d_cpu_half_method", [] { return std::string(conv2d_half_method_cpu()); },
        "How the CPU ISA build in use runs float16/bfloat16 conv2d");

  // The ABI: what Python builds its calls from.
  m.attr("DEVICE_CPU") = static_cast<int>(kCPU);
  m.attr("DEVICE_CUDA") = static_cast<int>(kCUDA);
  py::dict devices;
  devices["cpu"] = static_cast<int>(kCPU);
  devices["cuda"] = static_cast<int>(kCUDA);
  m.attr("DEVICE_IDS") = devices;
  py::dict passes;
  passes["forward"] = static_cast<int>(Conv2dPass::Forward);
  passes["backward_input"] = static_cast<int>(Conv2dPass::BackwardInput);
  passes["backward_weight"] = static_cast<int>(Conv2dPass::BackwardWeight);
  m.attr("CONV2D_PASS_IDS") = passes;
  m.attr("CONV2D_SHAPE_FIELDS") = field_names<Conv2dShape>();
  py::dict algos;
  for (int i = 0; i <= static_cast<int>(Conv2dAlgo::Fused); ++i)
    algos[conv2d_algo_name(static_cast<Conv2dAlgo>(i))] = i;
  m.attr("CONV2D_ALGO_IDS") = algos;
  py::dict dtypes;
  dtypes["float32"] = static_cast<int>(DType::Float32);
  dtypes["float64"] = static_cast<int>(DType::Float64);
  dtypes["float16"] = static_cast<int>(DType::Float16);
  dtypes["bfloat16"] = static_cast<int>(DType::BFloat16);
  m.attr("DTYPE_IDS") = dtypes;
}
