// CPU kernels under csrc/<op>/cpu/ are compiled once per ISA build on
// x86-64: baseline (namespace cpu_generic), AVX2+FMA+F16C (cpu_avx2) and AVX-512
// F/VL/BW/DQ (cpu_avx512). CMake defines CB_CPU_NS to the namespace of the
// ISA build being compiled, and CONVBENCH_HAVE_<ISA>_VARIANT for each build
// it built. The dispatchers call the ISA build in use (cpu_isa_active): the
// best one this CPU runs, unless set_cpu_isa chose another, so the module
// never executes an instruction the CPU lacks.
#pragma once
#include <vector>

namespace convbench {

enum class CpuIsa : int { Generic = 0, Avx2 = 1, Avx512 = 2 };

const char* cpu_isa_name(CpuIsa isa);         // "generic", "avx2", "avx512"
std::vector<CpuIsa> cpu_isas_compiled();      // variants in this build
std::vector<CpuIsa> cpu_isas_supported();     // compiled and runnable on this CPU
CpuIsa cpu_isa_active();                      // the ISA build the dispatchers call
// Forces an ISA build; throws std::invalid_argument (ValueError in Python) for
// one that was not compiled or that this CPU cannot run.
void set_cpu_isa(CpuIsa isa);

}  // namespace convbench

// Calls NS::FN(ARGS...) in the ISA build in use.
#if defined(CONVBENCH_HAVE_AVX512_VARIANT)
#define CB_CPU_DISPATCH_AVX512(FN, ...) \
  case ::convbench::CpuIsa::Avx512: return ::convbench::cpu_avx512::FN(__VA_ARGS__);
#else
#define CB_CPU_DISPATCH_AVX512(FN, ...)
#endif
#if defined(CONVBENCH_HAVE_AVX2_VARIANT)
#define CB_CPU_DISPATCH_AVX2(FN, ...) \
  case ::convbench::CpuIsa::Avx2: return ::convbench::cpu_avx2::FN(__VA_ARGS__);
#else
#define CB_CPU_DISPATCH_AVX2(FN, ...)
#endif
#define CB_CPU_DISPATCH(FN, ...)                            \
  ([&] {                                                    \
    switch (::convbench::cpu_isa_active()) {                \
      CB_CPU_DISPATCH_AVX512(FN, __VA_ARGS__)               \
      CB_CPU_DISPATCH_AVX2(FN, __VA_ARGS__)                 \
      default: return ::convbench::cpu_generic::FN(__VA_ARGS__); \
    }                                                       \
  }())
