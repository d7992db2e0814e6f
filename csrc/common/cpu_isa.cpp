// Which CPU variants exist and which one the dispatchers call.
#include "common/cpu_isa.h"

#include <atomic>

#include "common/check.h"

namespace convbench {

namespace {

bool cpu_runs(CpuIsa isa) {
#if defined(__GNUC__) || defined(__clang__)
#if defined(__x86_64__) || defined(__i386__)
  switch (isa) {
    case CpuIsa::Generic: return true;
    case CpuIsa::Avx2:  // (F16C: the half-type conversions; every AVX2 CPU has it)
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case CpuIsa::Avx512:
      // (libgcc also checks that the OS saves the zmm state)
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  }
#endif
#endif
  return isa == CpuIsa::Generic;
}

CpuIsa best_isa() {
  const auto isas = cpu_isas_supported();
  return isas.back();
}

std::atomic<int>& active() {
  static std::atomic<int> isa{static_cast<int>(best_isa())};
  return isa;
}

}  // namespace

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Generic: return "generic";
    case CpuIsa::Avx2: return "avx2";
    case CpuIsa::Avx512: return "avx512";
  }
  return "unknown";
}

std::vector<CpuIsa> cpu_isas_compiled() {
  std::vector<CpuIsa> out{CpuIsa::Generic};
#if defined(CONVBENCH_HAVE_AVX2_VARIANT)
  out.push_back(CpuIsa::Avx2);
#endif
#if defined(CONVBENCH_HAVE_AVX512_VARIANT)
  out.push_back(CpuIsa::Avx512);
#endif
  return out;
}

std::vector<CpuIsa> cpu_isas_supported() {
  std::vector<CpuIsa> out;
  for (CpuIsa isa : cpu_isas_compiled())
    if (cpu_runs(isa)) out.push_back(isa);
  return out;
}

CpuIsa cpu_isa_active() { return static_cast<CpuIsa>(active().load(std::memory_order_relaxed)); }

void set_cpu_isa(CpuIsa isa) {
  bool compiled = false, runs = false;
  for (CpuIsa c : cpu_isas_compiled()) compiled = compiled || c == isa;
  for (CpuIsa c : cpu_isas_supported()) runs = runs || c == isa;
  CB_CHECK(compiled, "CPU ISA build '", cpu_isa_name(isa), "' was not compiled into this build");
  CB_CHECK(runs, "this CPU cannot run the '", cpu_isa_name(isa), "' ISA build");
  active().store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace convbench
