// What the build contains and what the machine offers, for convbench's
// has_cuda()/cuda_available() and build_info().
#pragma once
#include <cstdint>
#include <string>

namespace convbench {

bool cuda_compiled();
// Number of usable CUDA devices; 0 (never an exception) when the build has no
// CUDA, or the machine has no driver or GPU.
int cuda_device_count();
// "13.0" style versions; empty when not compiled with CUDA / no driver.
std::string cuda_runtime_version();
std::string cuda_driver_version();
std::string cuda_architectures();
// The source commit the module was built from (CONVBENCH_COMMIT at configure
// time, else git's HEAD, else "unknown"): known without the .git folder.
std::string build_commit();

#ifdef CONVBENCH_WITH_CUDA
// y <- a * x + y on `device`/`stream`: the smallest real kernel, used by the
// tests to prove the CUDA part of the module compiles, links and launches.
void cuda_axpy(float a, const float* x, float* y, int64_t n, int device, void* stream);
#endif

}  // namespace convbench
