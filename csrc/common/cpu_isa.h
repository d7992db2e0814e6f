// CPU kernels under csrc/<op>/cpu/ are compiled twice on x86-64: once for the
// baseline ISA (namespace cpu_generic) and once with AVX2+FMA (cpu_avx2).
// CMake defines CB_CPU_NS to the namespace of the variant being compiled, and
// CONVBENCH_HAVE_AVX2_VARIANT where the AVX2 variant exists. The dispatchers
// pick a variant at run time, so the module never executes AVX2 on a CPU
// that lacks it.
#pragma once

namespace convbench {

inline bool cpu_has_avx2_fma() {
#if defined(CONVBENCH_HAVE_AVX2_VARIANT) && (defined(__GNUC__) || defined(__clang__))
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

// Name of the variant the dispatchers use on this machine ("avx2" or "generic").
inline const char* cpu_isa_name() { return cpu_has_avx2_fma() ? "avx2" : "generic"; }

}  // namespace convbench

// Calls NS::FN(ARGS...) in the best compiled variant.
#if defined(CONVBENCH_HAVE_AVX2_VARIANT)
#define CB_CPU_DISPATCH(FN, ...)                                  \
  (::convbench::cpu_has_avx2_fma() ? ::convbench::cpu_avx2::FN(__VA_ARGS__) \
                                   : ::convbench::cpu_generic::FN(__VA_ARGS__))
#else
#define CB_CPU_DISPATCH(FN, ...) (::convbench::cpu_generic::FN(__VA_ARGS__))
#endif
