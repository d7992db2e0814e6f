#include "runtime/runtime_info.h"

#ifdef CONVBENCH_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace convbench {

namespace {
#ifdef CONVBENCH_WITH_CUDA
std::string version_string(int v) {
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}
#endif
}  // namespace

bool cuda_compiled() {
#ifdef CONVBENCH_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef CONVBENCH_WITH_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

std::string cuda_runtime_version() {
#ifdef CONVBENCH_WITH_CUDA
  int v = 0;
  return cudaRuntimeGetVersion(&v) == cudaSuccess ? version_string(v) : std::string();
#else
  return {};
#endif
}

std::string cuda_driver_version() {
#ifdef CONVBENCH_WITH_CUDA
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess || v == 0) return {};
  return version_string(v);
#else
  return {};
#endif
}

std::string cuda_architectures() {
#ifdef CONVBENCH_CUDA_ARCHITECTURES
  return CONVBENCH_CUDA_ARCHITECTURES;
#else
  return {};
#endif
}

std::string build_commit() {
#ifdef CONVBENCH_COMMIT
  return CONVBENCH_COMMIT;
#else
  return "unknown";
#endif
}

}  // namespace convbench
