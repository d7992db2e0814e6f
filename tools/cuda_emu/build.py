"""Build the CPU emulation of convbench's CUDA kernels (see emu.h).

usage: python tools/cuda_emu/build.py [BUILD_DIR]  -> prints the path of the .so
Rewrites each csrc/*/cuda/*.cu launch `k<<<g, b, smem, st>>>(args)` into
cb_emu::launch(g, b, smem, st, k, args) and compiles the sources with g++.
Rebuilds only when a source changed.
"""
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

LAUNCH = re.compile(r"([A-Za-z_]\w*(?:<[^;<>]*>)?)\s*<<<(.*?)>>>\s*\(", re.S)
DYN_SMEM = re.compile(r"extern\s+__shared__[^;]*?(\w+)\s*\[\s*\]\s*;")


def cuda_include():
    for d in (os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"):
        if d and os.path.exists(os.path.join(d, "include", "cuda_runtime.h")):
            return os.path.join(d, "include")
    nvcc = shutil.which("nvcc")
    if nvcc:
        inc = os.path.join(os.path.dirname(os.path.dirname(nvcc)), "include")
        if os.path.exists(os.path.join(inc, "cuda_runtime.h")):
            return inc
    return None


def rewrite(src):
    src = LAUNCH.sub(lambda m: f"::cb_emu::launch({m.group(2)}, {m.group(1)}, ", src)
    return DYN_SMEM.sub(lambda m: f"unsigned char* {m.group(1)} = ::cb_emu::dyn_smem;", src)


def build(build_dir=None):
    inc = cuda_include()
    if inc is None or shutil.which("g++") is None:
        raise RuntimeError("needs g++ and the CUDA headers (cuda_runtime.h)")
    build_dir = build_dir or os.path.join(ROOT, "build", "cuda-emu")
    os.makedirs(build_dir, exist_ok=True)
    sources = sorted(glob.glob(os.path.join(ROOT, "csrc", "*", "cuda", "*.cu")))
    deps = sources + sorted(glob.glob(os.path.join(ROOT, "csrc", "**", "*.h*"), recursive=True))
    deps += [os.path.join(HERE, "emu.h"), os.path.join(HERE, "driver.cpp"), __file__]
    digest = hashlib.sha1(b"".join(open(p, "rb").read() for p in deps)).hexdigest()[:12]
    lib = os.path.join(build_dir, f"cb_cuda_emu_{digest}.so")
    if os.path.exists(lib):
        return lib
    cpp = []
    for s in sources:
        out = os.path.join(build_dir, os.path.basename(os.path.dirname(os.path.dirname(s)))
                           + "_" + os.path.basename(s) + ".cpp")
        with open(s) as f, open(out, "w") as g:
            g.write(f'#line 1 "{s}"\n' + rewrite(f.read()))
        cpp.append(out)
    cmd = ["g++", "-std=c++20", "-O2", "-g", "-fPIC", "-shared", "-w",
           "-DCONVBENCH_WITH_CUDA", f"-I{os.path.join(ROOT, 'csrc')}", f"-I{inc}",
           "-include", os.path.join(HERE, "emu.h"), *cpp, os.path.join(HERE, "driver.cpp"),
           "-o", lib + ".tmp"]
    subprocess.run(cmd, check=True)
    os.replace(lib + ".tmp", lib)
    return lib


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else None))
