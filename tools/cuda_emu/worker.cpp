// The emulated CUDA kernels as a process (tools/cuda_emu/worker.py drives
// it): reads requests on stdin, runs them through the real host entry points
// (conv2d_*_cuda, every table kernel's CUDA entry, cuda_axpy) and answers on
// stdout.
// Built with -fsanitize=address,undefined: every buffer a request names is
// copied into its own heap block of exactly its size, so any access past one
// is reported (and the process aborts; the client reports the sanitizer's
// message from stderr).
//
// Request: one header line of space-separated key=value, then the bytes of
// every buffer whose size is not -1, in order:
//   op=conv|kernel|describe|workspace|choose|candidates|engine_name|axpy|selftest pass= algo= engine=
//   dtype= shape=a,b,... bufs=size,size,...  grid_cap= dry=0|1 pending=0|1 fail_after= seed=
//   alpha= (axpy) name= (kernel: a table kernel's name; selftest: a kernel of selftest.cu)
// conv buffers: a, b, bias, out, workspace (forward: x, w, bias, y; grad-input:
// dy, w, -, dx; grad-weight: dy, x, -, dw, workspace). kernel: the table
// entry's buffers in its order (common/kernel_table.h); its shape, the
// entry's shape_fields; describe answers "shape_fields buffers" of table
// kernel name= (comma-separated) in the error text with status 0. axpy: x,
// y. selftest: out (128 floats). candidates answers a
// bit set, bit algo * 8 + engine per configuration; engine_name puts the
// name in the error text with status 0. A size of -1 passes
// nullptr. pending=1 leaves an error pending before the call, as an earlier
// fault would; fail_after=N makes launch N report an error.
// Answer: "status errlen nlaunches value\n", the error message, one line per
// launch "name|gx gy gz|bx by bz|dynamic smem|static smem|kernel offset",
// then every non-null buffer's bytes again (outputs written).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/kernel_table.h"
#include "common/shapes.h"
#include "conv2d/conv2d.h"
#include "runtime/runtime_info.h"

using namespace convbench;

void cb_emu_selftest(const std::string& name, float* out);  // selftest.cu

namespace {

std::vector<int64_t> ints(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(std::stoll(item));
  return out;
}

bool read_exact(void* p, size_t n) { return std::fread(p, 1, n, stdin) == n; }

bool read_line(std::string& line) {
  line.clear();
  for (int c; (c = std::getc(stdin)) != EOF;) {
    if (c == '\n') return true;
    line.push_back(char(c));
  }
  return false;
}

// A shape as the numbers its ShapeFields name, in that order (common/shapes.h).
template <class S>
S shape_of(const std::vector<int64_t>& a) {
  if (a.size() != static_cast<size_t>(ShapeFields<S>::count))
    throw std::runtime_error("a shape needs " + std::to_string(ShapeFields<S>::count) +
                             " numbers, got " + std::to_string(a.size()));
  return ShapeFields<S>::from(a.data());
}

struct Buffer {
  int64_t size = -1;
  void* p = nullptr;
};

std::string name_out;  // engine_name's answer

int64_t run(std::map<std::string, std::string>& kv, std::vector<Buffer>& b) {
  const std::string op = kv["op"];
  const int pass = std::stoi(kv["pass"].empty() ? "0" : kv["pass"]);
  const auto algo = static_cast<Conv2dAlgo>(std::stoi(kv["algo"].empty() ? "0" : kv["algo"]));
  const auto dtype = static_cast<DType>(std::stoi(kv["dtype"].empty() ? "0" : kv["dtype"]));
  const int engine = std::stoi(kv["engine"].empty() ? "0" : kv["engine"]);
  const Conv2dConfig cfg{algo, engine};
  auto buf = [&](size_t i) { return i < b.size() ? b[i].p : nullptr; };
  auto bytes = [&](size_t i) { return i < b.size() && b[i].size > 0 ? size_t(b[i].size) : 0; };
  if (op == "conv") {
    const Conv2dShape s = shape_of<Conv2dShape>(ints(kv["shape"]));
    if (pass == 0) conv2d_forward_cuda(cfg, dtype, s, buf(0), buf(1), buf(2), buf(3), 0, nullptr);
    else if (pass == 1) conv2d_backward_input_cuda(cfg, dtype, s, buf(0), buf(1), buf(3), 0, nullptr);
    else conv2d_backward_weight_cuda(cfg, dtype, s, buf(0), buf(1), buf(3), buf(4), bytes(4), 0,
                                     nullptr);
    return 0;
  }
  if (op == "workspace")
    return int64_t(conv2d_workspace_size_cuda(cfg, static_cast<Conv2dPass>(pass), dtype,
                                              shape_of<Conv2dShape>(ints(kv["shape"]))));
  if (op == "choose")
    return int64_t(conv2d_choose_algo_cuda(static_cast<Conv2dPass>(pass), dtype,
                                           shape_of<Conv2dShape>(ints(kv["shape"]))));
  if (op == "candidates") {  // bit algo * 8 + engine per configuration
    int64_t bits = 0;
    for (Conv2dConfig c : conv2d_candidates_cuda(static_cast<Conv2dPass>(pass), dtype,
                                                 shape_of<Conv2dShape>(ints(kv["shape"]))))
      bits |= int64_t{1} << (int(c.algo) * 8 + c.engine);
    return bits;
  }
  if (op == "engine_name") {
    name_out = conv2d_engine_name_cuda(algo, static_cast<Conv2dPass>(pass), engine);
    return 0;
  }
  if (op == "describe" || op == "kernel") {
    const KernelEntry* e = find_kernel(kv["name"]);
    if (e == nullptr) throw std::runtime_error("no table kernel '" + kv["name"] + "'");
    if (op == "describe") {
      auto joined = [](const std::vector<std::string>& v) {
        std::string out;
        for (const auto& x : v) out += (out.empty() ? "" : ",") + x;
        return out;
      };
      name_out = joined(e->shape_fields) + " " + joined(e->buffers);
      return 0;
    }
    std::vector<void*> ptrs;
    for (size_t i = 0; i < b.size(); ++i) ptrs.push_back(buf(i));
    if (!run_kernel(kv["name"], *e, KernelDevice::CUDA, dtype, ints(kv["shape"]), ptrs.data(),
                    ptrs.size()))
      throw std::runtime_error("no CUDA table kernel '" + kv["name"] + "'");
    return 0;
  }
  if (op == "axpy") {
    cuda_axpy(std::stof(kv["alpha"]), static_cast<const float*>(buf(0)),
              static_cast<float*>(buf(1)), int64_t(bytes(1) / sizeof(float)), 0, nullptr);
    return 0;
  }
  if (op == "selftest") {
    cb_emu_selftest(kv["name"], static_cast<float*>(buf(0)));
    return 0;
  }
  throw std::runtime_error("unknown op '" + op + "'");
}

}  // namespace

int main() {
  if (!kernel_table().errors.empty()) {  // as the module refuses to load
    for (const auto& e : kernel_table().errors) std::fprintf(stderr, "kernel table: %s\n", e.c_str());
    return 3;
  }
  std::string line;
  while (read_line(line)) {
    std::map<std::string, std::string> kv;
    std::stringstream ss(line);
    for (std::string tok; ss >> tok;) {
      const size_t eq = tok.find('=');
      if (eq != std::string::npos) kv[tok.substr(0, eq)] = tok.substr(eq + 1);
    }
    std::vector<Buffer> bufs;
    for (int64_t n : ints(kv["bufs"])) {
      Buffer b;
      b.size = n;
      if (n >= 0) {
        b.p = std::malloc(n ? size_t(n) : 1);  // exact size: its end is a redzone
        if (!read_exact(b.p, size_t(n))) return 1;
      }
      bufs.push_back(b);
    }
    cb_emu::settings = cb_emu::Settings{};
    if (!kv["grid_cap"].empty()) cb_emu::settings.grid_cap = std::stoll(kv["grid_cap"]);
    cb_emu::settings.dry_run = kv["dry"] == "1";
    if (!kv["fail_after"].empty()) cb_emu::settings.fail_after_launch = std::stoi(kv["fail_after"]);
    if (!kv["seed"].empty()) cb_emu::settings.seed = uint32_t(std::stoul(kv["seed"]));
    cb_emu::launches.clear();
    cb_emu::last_error = kv["pending"] == "1" ? cudaErrorLaunchFailure : cudaSuccess;

    int status = 0;
    int64_t value = 0;
    std::string err;
    name_out.clear();
    try {
      value = run(kv, bufs);
      err = name_out;
    } catch (const std::exception& e) {
      status = dynamic_cast<const cb_emu::EmuError*>(&e) ? 2 : 1;
      err = e.what();
    }
    std::printf("%d %zu %zu %lld\n", status, err.size(), cb_emu::launches.size(),
                static_cast<long long>(value));
    std::fwrite(err.data(), 1, err.size(), stdout);
    for (const auto& r : cb_emu::launches)
      std::printf("%s|%u %u %u|%u %u %u|%zu|%zu|%llu\n", r.name.c_str(), r.grid.x, r.grid.y,
                  r.grid.z, r.block.x, r.block.y, r.block.z, r.dyn_smem, r.static_smem,
                  static_cast<unsigned long long>(r.kernel_offset));
    for (Buffer& b : bufs) {
      if (b.size < 0) continue;
      std::fwrite(b.p, 1, size_t(b.size), stdout);
      std::free(b.p);
    }
    std::fflush(stdout);
  }
  return 0;
}
