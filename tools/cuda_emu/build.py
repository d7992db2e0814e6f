"""Build the CPU emulation of convbench's CUDA kernels (see emu.h, worker.cpp).

usage: python tools/cuda_emu/build.py [BUILD_DIR]  -> prints the worker's path

Rewrites each csrc/*/cuda/*.cu (comments blanked, line numbers kept):
  k<<<g, b, smem, st>>>(args)   -> ::cb_emu::launch("k", g, b, smem, st, k, args)
  __shared__ T name[..];        -> auto& name = ::cb_emu::shared_var<T[..]>(site);
  extern __shared__ T name[];   -> T* name = reinterpret_cast<T*>(::cb_emu::dyn_smem());
  __global__ ... { body }       -> __global__ ... { ::cb_emu::kernel_entry(BOUND); body }
(BOUND: the kernel's __launch_bounds__ thread count, else 1024) and compiles
them, with worker.cpp and selftest.cu (kernels with deliberate defects, for
the emulator's own tests), into one executable with g++ -fsanitize=address,undefined
(CB_EMU_SANITIZE=0 builds it without). Rebuilds only when a source changed.
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
DYN_SMEM = re.compile(r"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s*)?([^;\[]*?)\s*(\w+)\s*\[\s*\]\s*;")
STATIC_SMEM = re.compile(r"__shared__\s+([^;\[]+?)\s+(\w+)\s*((?:\[[^\]]+\])+)\s*;")
GLOBAL = re.compile(r"\b__global__\b")
KERNEL_NAME = re.compile(r"(\w+)\s*\($")

SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer"]


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


def sanitized():
    return os.environ.get("CB_EMU_SANITIZE", "1") != "0"


def blank_comments(src):
    """Comments replaced by spaces (newlines kept), string literals untouched."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            out.append(src[i:j + 1])
            i = j + 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _balanced(src, i):
    """Index just past the parenthesis group that opens at src[i] == '('."""
    depth = 0
    for j in range(i, len(src)):
        if src[j] == "(":
            depth += 1
        elif src[j] == ")":
            depth -= 1
            if depth == 0:
                return j + 1
    raise ValueError("unbalanced parentheses")


def _first_arg(group):
    """The first top-level argument of '( a, b )'."""
    depth, start = 0, 1
    for j, c in enumerate(group):
        if c in "(<[":
            depth += 1
        elif c in ")>]":
            depth -= 1
            if depth == 0 and c == ")":
                return group[start:j].strip()
        elif c == "," and depth == 1:
            return group[start:j].strip()
    return group[start:-1].strip()


def instrument_kernels(src):
    """Inserts ::cb_emu::kernel_entry(BOUND); as every __global__ function's
    first statement and drops its __launch_bounds__. Returns (source, names)."""
    out, pos, names = [], 0, []
    for m in GLOBAL.finditer(src):
        if m.start() < pos:
            continue
        i, depth, bound, head_end = m.end(), 0, "(1024)", None
        while i < len(src):
            if src.startswith("__launch_bounds__", i):
                k = src.index("(", i)
                end = _balanced(src, k)
                bound = f"({_first_arg(src[k:end])})"
                out.append(src[pos:i])
                out.append(" " * (end - i))
                pos = i = end
                continue
            c = src[i]
            if c == "(":
                if depth == 0:
                    name = KERNEL_NAME.search(src[m.end():i + 1])
                    if name:
                        names.append(name.group(1))
                depth += 1
            elif c == ")":
                depth -= 1
            elif depth == 0 and c == ";":
                break  # a declaration, no body
            elif depth == 0 and c == "{":
                head_end = i + 1
                break
            i += 1
        if head_end is not None:
            out.append(src[pos:head_end])
            out.append(f" ::cb_emu::kernel_entry(int{bound});")
            pos = head_end
    out.append(src[pos:])
    return "".join(out), names


def rewrite(src):
    src = blank_comments(src)
    src, names = instrument_kernels(src)
    src = LAUNCH.sub(lambda m: f'::cb_emu::launch("{" ".join(m.group(1).split())}", '
                               f"{m.group(2)}, {m.group(1)}, ", src)
    src = DYN_SMEM.sub(lambda m: f"{m.group(1)}* {m.group(2)} = "
                                 f"reinterpret_cast<{m.group(1)}*>(::cb_emu::dyn_smem());", src)
    site = iter(range(1, 1 << 30))
    src = STATIC_SMEM.sub(lambda m: f"auto& {m.group(2)} = ::cb_emu::shared_var<"
                                    f"{m.group(1)} {m.group(3)}>({next(site)});", src)
    return src, names


def sources():
    return sorted(glob.glob(os.path.join(ROOT, "csrc", "*", "cuda", "*.cu")))


def kernel_names():
    """The names of every __global__ function in the CUDA sources."""
    names = set()
    for s in sources():
        with open(s) as f:
            names.update(rewrite(f.read())[1])
    return names


SELFTEST = os.path.join(HERE, "selftest.cu")


def build(build_dir=None):
    inc = cuda_include()
    if inc is None or shutil.which("g++") is None:
        raise RuntimeError("needs g++ and the CUDA headers (cuda_runtime.h)")
    build_dir = build_dir or os.path.join(ROOT, "build", "cuda-emu")
    os.makedirs(build_dir, exist_ok=True)
    srcs = sources() + [SELFTEST]
    deps = srcs + sorted(glob.glob(os.path.join(ROOT, "csrc", "**", "*.h*"), recursive=True))
    deps += [os.path.join(HERE, "emu.h"), os.path.join(HERE, "worker.cpp"), __file__]
    flags = SANITIZE if sanitized() else []
    digest = hashlib.sha1(b"".join(open(p, "rb").read() for p in deps)
                          + " ".join(flags).encode()).hexdigest()[:12]
    exe = os.path.join(build_dir, f"cb_cuda_emu_{'asan_' if flags else ''}{digest}")
    if os.path.exists(exe):
        return exe
    cpp = []
    for s in srcs:
        out = os.path.join(build_dir, os.path.basename(os.path.dirname(os.path.dirname(s)))
                           + "_" + os.path.basename(s) + ".cpp")  # (tools_selftest.cu.cpp)
        with open(s) as f, open(out, "w") as g:
            g.write(f'#line 1 "{s}"\n' + rewrite(f.read())[0])
        cpp.append(out)
    # -O1: ASan's reports stay precise; no identical-code folding, so every
    # kernel instantiation keeps its own address (the coverage test maps
    # launches to symbols).
    # (-U_FORTIFY_SOURCE: fibers _longjmp between stacks, which its checked
    # longjmp would take for a corrupt jump)
    cmd = ["g++", "-std=c++20", "-O1", "-g", "-w", "-fno-ipa-icf", "-U_FORTIFY_SOURCE", *flags,
           "-DCONVBENCH_WITH_CUDA", f"-I{os.path.join(ROOT, 'csrc')}", f"-I{inc}",
           "-include", os.path.join(HERE, "emu.h"), *cpp, os.path.join(HERE, "worker.cpp"),
           "-o", exe + ".tmp"]
    subprocess.run(cmd, check=True)
    os.replace(exe + ".tmp", exe)
    return exe


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else None))
