"""The CUDA kernels' arithmetic, indexing and launches, checked without a GPU.

tools/cuda_emu compiles the real csrc/*/cuda/*.cu sources for the CPU into a
worker process built with -fsanitize=address,undefined (each CUDA thread a
fiber, run in a shuffled order between barriers; __shared__ arrays, dynamic
shared memory, inputs, outputs and workspaces each an exact-size heap block,
shared memory refilled with garbage for every block; barrier divergence and
launch limits reported). Here every kernel, pass and dtype is run on shapes
that cover every tile edge and compared with torch, every compiled kernel
instantiation is seen to run, launch errors are seen to be attributed to the
right launch, and the emulator's own detectors are seen to fire on kernels
with deliberate defects (tools/cuda_emu/selftest.cu). Speed, warps and memory
ordering on a real GPU are what tests/test_cuda_ops.py and compute-sanitizer
check on one. Shapes are small: the emulation runs every CUDA thread.
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from _helpers import conv_shape16, pair, random_conv_cases

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
    spec = importlib.util.spec_from_file_location(
        f"convbench_cuda_emu_{name}", os.path.join(ROOT, "tools", "cuda_emu", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # (dataclasses look their module up)
    spec.loader.exec_module(mod)
    return mod


emu_build = _load("build")
emu_worker = _load("worker")
# The NumPy oracle, loaded from its file: it imports only NumPy, and these
# tests run without the compiled module.
_spec = importlib.util.spec_from_file_location(
    "convbench_reference", os.path.join(ROOT, "python", "convbench", "reference.py"))
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)
KernelError, EmuError, EmuCrash = emu_worker.KernelError, emu_worker.EmuError, emu_worker.EmuCrash

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DTYPE_ID = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
ALGO_ID = {"auto": 0, "direct": 1, "im2col": 2, "implicit_gemm": 3, "fused": 5}
ALGOS = ["direct", "implicit_gemm", "fused", "auto"]
UNIT = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}
TOL = {torch.float32: 1e-5, torch.float64: 1e-12, torch.float16: 2 * UNIT[torch.float16],
       torch.bfloat16: 2 * UNIT[torch.bfloat16]}
H100_SMS = 132


def _bytes(t):
    t = t.contiguous()
    return t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def _tensor(b, dtype, shape):
    if not b:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(b), dtype=torch.uint8).view(dtype).reshape(shape)


class Emu:
    """Tensor-level calls into the worker; remembers every kernel it launched."""

    def __init__(self, exe):
        self.exe = exe
        self.worker = emu_worker.Worker(exe)
        self.launched = set()  # kernel offsets in the executable
        self.swept = set()  # dtypes _sweep has run

    def request(self, op, buffers, **fields):
        res = self.worker.request(op, buffers, **fields)
        self.launched.update(l.kernel_offset for l in res.launches)
        return res

    def kernel(self, name, dtype, shape, buffers, **opts):
        """Table kernel `name` (shape: by field name; buffers: the entry's order)."""
        res = self.worker.kernel(name, dtype, shape, buffers, **opts)
        self.launched.update(l.kernel_offset for l in res.launches)
        return res

    def workspace_size(self, pass_, algo, dtype, s, engine=0):
        return self.request("workspace", [], pass_=pass_, algo=ALGO_ID[algo], engine=engine,
                            dtype=DTYPE_ID[dtype], shape=s).value

    def conv(self, pass_, algo, dtype, s, a, b, bias, out_shape, workspace="exact", **opts):
        """pass 0: (x, w) -> y; 1: (dy, w) -> dx; 2: (dy, x) -> dw. workspace:
        'exact' (the size the C++ side reports, NaN-filled), None or a byte count."""
        if workspace == "exact":
            workspace = (self.workspace_size(pass_, algo, dtype, s, opts.get("engine", 0))
                         if pass_ == 2 else 0)
            ws = b"\xff" * workspace if workspace else None
        else:
            ws = None if workspace is None else b"\xff" * workspace
        out = torch.full(out_shape, float("nan"), dtype=dtype)
        bufs = [None if t is None else _bytes(t) for t in (a, b, bias)] + [_bytes(out), ws]
        res = self.request("conv", bufs, pass_=pass_, algo=ALGO_ID[algo], dtype=DTYPE_ID[dtype],
                           shape=s, **opts)
        return _tensor(res.buffers[3], dtype, out_shape), res

    def conv_all(self, x, w, b, dy, cfg, algo, **opts):
        s = _shape(x, w, **cfg)
        y = self.conv(0, algo, x.dtype, s, x, w, b, dy.shape, **opts)[0]
        dx = self.conv(1, algo, x.dtype, s, dy, w, None, x.shape, **opts)[0]
        dw = self.conv(2, algo, x.dtype, s, dy, x, None, w.shape, **opts)[0]
        return y, dx, dw

    def close(self):
        self.worker.close()


@pytest.fixture(scope="module")
def emu():
    if emu_build.cuda_include() is None or shutil.which("g++") is None:
        pytest.skip("needs g++ and the CUDA headers")
    e = Emu(emu_build.build())
    yield e
    e.close()


def _shape(x, w, stride=1, padding=0, dilation=1, groups=1, P=None, Q=None):
    return conv_shape16(x, w, stride, padding, dilation, groups, P, Q)


def torch_all(x, w, b, dy, cfg):
    x, w = x.double().requires_grad_(), w.double().requires_grad_()
    y = F.conv2d(x, w, None if b is None else b.double(), **cfg)
    dx, dw = torch.autograd.grad(y, (x, w), dy.double())
    return y.detach(), dx, dw


def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def check_all(ours, ref, dtype, what=""):
    for name, o, r in zip(("forward", "grad-input", "grad-weight"), ours, ref):
        assert o.dtype == dtype
        assert torch.isfinite(o).all(), f"{what} {name}: unwritten (NaN-poisoned) elements"
        err = rel_err(o, r)
        assert err <= TOL[dtype], f"{what} {name}: relative error {err:.2e}"


def make(case, dtype, seed=0):
    N, C, H, W, K, R, S, stride, padding, dilation, groups, bias = case
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64).to(dtype)
    w = torch.randn(K, C // groups, R, S, generator=g, dtype=torch.float64).to(dtype)
    b = torch.randn(K, generator=g, dtype=torch.float64).to(dtype) if bias else None
    cfg = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = F.conv2d(x.double(), w.double(), None, **cfg)
    dy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(dtype)
    return x, w, b, dy, cfg


def _case_id(c):
    return "x".join(map(str, c[:7])) + (f"-g{c[10]}" if c[10] != 1 else "")


# ------------------------------------------------------------------ conv2d

# (N, C, H, W, K, R, S, stride, padding, dilation, groups, bias)
CASES = [
    (2, 1, 10, 9, 16, 3, 3, 1, 0, 1, 1, True),
    (2, 16, 8, 8, 8, 5, 5, 1, 0, 1, 1, True),
    (1, 3, 9, 11, 5, 3, 5, 2, (1, 2), 1, 1, True),
    (2, 6, 11, 7, 9, 3, 3, (2, 1), 2, (2, 3), 3, False),
    (1, 8, 6, 6, 8, 3, 3, 1, 1, 1, 8, False),     # depthwise
    (1, 4, 5, 5, 70, 2, 2, 3, 1, 1, 1, True),     # K past one fused chunk, even kernel
    (1, 24, 5, 4, 40, 1, 1, 1, 0, 1, 1, True),    # 1x1, wide: BN = 64 tiles
    (1, 3, 5, 6, 4, 5, 5, 1, 2, 2, 1, True),      # window larger than the image
    (1, 40, 3, 3, 3, 3, 3, 1, 1, 1, 1, False),    # fused grad-input: Cg past one chunk
    (1, 2, 13, 11, 3, 3, 3, 3, 2, 2, 1, True),    # stride 3, dilation 2: sparse gather taps
]


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("case", CASES + random_conv_cases(6, 99), ids=_case_id)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_emulated_conv2d_all_passes(emu, case, algo, dtype):
    x, w, b, dy, cfg = make(case, dtype)
    check_all(emu.conv_all(x, w, b, dy, cfg, algo), torch_all(x, w, b, dy, cfg), dtype)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_emulated_conv2d_half_types(emu, algo, dtype):
    # float32 accumulation and one rounding of each result: a few unit roundoffs
    # of the storage type against the float64 function of the same inputs.
    for case in (CASES[1], CASES[3], CASES[9]):
        x, w, b, dy, cfg = make(case, dtype)
        check_all(emu.conv_all(x, w, b, dy, cfg, algo), torch_all(x, w, b, dy, cfg), dtype)


# Shapes that reach every kernel instantiation: 132 (66) groups make grids of
# 132 blocks out of small problems, so the implicit GEMM keeps BM = 128 (64)
# tiles and the fused kernel its widest channel chunk; one group leaves small
# grids (BM = 32, narrowed fused chunks). Channel counts pick every BN (16, 32,
# 64) and fused chunk (1, 2, 4, 8, 16, 32, and 32 twice over); rows, columns
# and reduction lengths end inside a tile everywhere.
# (case, algos)
SWEEP = [
    ((1, 132, 12, 12, 132, 3, 3, 1, 1, 1, 132, True), ("fused",)),                      # 1 ch
    ((1, 264, 12, 12, 264, 3, 3, 1, 1, 1, 132, True), ("fused",)),                      # 2 ch
    ((1, 396, 12, 12, 396, 3, 3, 1, 1, 1, 132, True), ("implicit_gemm", "fused")),      # 3 ch
    ((1, 198, 10, 10, 198, 3, 3, 1, 1, 1, 66, False), ("implicit_gemm",)),              # BM 64
    ((1, 1056, 12, 12, 1056, 1, 1, 1, 0, 1, 132, False), ("fused",)),                   # 8 ch
    ((1, 1584, 12, 12, 1584, 1, 1, 1, 0, 1, 132, False), ("fused",)),                   # 12 ch
    ((1, 2640, 12, 12, 2640, 1, 1, 1, 0, 1, 132, True), ("implicit_gemm", "fused")),    # 20 ch
    ((1, 1320, 10, 10, 1320, 1, 1, 1, 0, 1, 66, False), ("implicit_gemm",)),            # BM 64
    ((1, 132, 12, 12, 4356, 1, 1, 1, 0, 1, 132, True), ("implicit_gemm", "fused")),     # 1 -> 33
    ((1, 4356, 12, 12, 132, 1, 1, 1, 0, 1, 132, False), ("implicit_gemm", "fused")),    # 33 -> 1
    ((1, 66, 10, 10, 2178, 1, 1, 1, 0, 1, 66, False), ("implicit_gemm",)),              # BM 64
    ((1, 2178, 10, 10, 66, 1, 1, 1, 0, 1, 66, False), ("implicit_gemm",)),              # BM 64
    ((2, 3, 7, 9, 40, 3, 2, 1, (1, 0), 1, 1, True), ("implicit_gemm", "fused")),        # BM 32
    ((2, 35, 6, 5, 20, 2, 3, 2, 1, 1, 1, False), ("implicit_gemm", "fused")),
    ((2, 24, 6, 5, 4, 3, 3, 1, 1, 1, 1, True), ("implicit_gemm",)),
    ((3, 5, 13, 12, 6, 3, 3, 1, 1, 1, 1, True), ("implicit_gemm", "fused", "direct")),  # split-K
]


def _sweep(emu, dtype):
    for case, algos in SWEEP:
        x, w, b, dy, cfg = make(case, dtype)
        ref = torch_all(x, w, b, dy, cfg)
        for algo in algos:
            check_all(emu.conv_all(x, w, b, dy, cfg, algo), ref, dtype, f"{algo} {case}")
    emu.swept.add(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_emulated_tile_edges_every_algorithm(emu, dtype):
    _sweep(emu, dtype)


def _kernel_symbols(exe):
    """offset -> demangled name of every CUDA kernel instantiation in the worker."""
    names = emu_build.kernel_names()
    pat = re.compile(r"(?:^|[\s:])(" + "|".join(map(re.escape, names)) + r")(?:<.*>)?\(.*\)$")
    out = {}
    for line in subprocess.run(["nm", "-C", "--defined-only", exe], capture_output=True,
                               text=True, check=True).stdout.splitlines():
        addr, _, name = line.split(" ", 2)
        if pat.search(name) and "{lambda" not in name and "[clone" not in name:
            out[int(addr, 16)] = name
    return out


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs nm")
def test_emulated_every_kernel_instantiation_runs(emu):
    # Each compiled kernel instantiation (dtype, tile shape, fused chunk, pass)
    # is launched, and gives the right answer, somewhere in this sweep.
    for dtype in DTYPES:
        if dtype not in emu.swept:  # (the tile-edge tests ran it in this session)
            _sweep(emu, dtype)
        _pool_case(emu, POOL_CASES[1], dtype)
        _avg_pool_case(emu, AVG_POOL_CASES[1], dtype)
    _axpy(emu, 1000, grid_cap=3)
    symbols = _kernel_symbols(emu.exe)
    assert len(symbols) >= 150, sorted(symbols.values())
    missed = sorted(n for off, n in symbols.items() if off not in emu.launched)
    assert not missed, "never launched:\n" + "\n".join(missed)


@pytest.mark.parametrize("algo", ["direct", "implicit_gemm"])
def test_emulated_grad_weight_split_k_deterministic(emu, algo):
    # N*P*Q spans many split-K chunks; the result is bitwise stable.
    x, w, b, dy, cfg = make((8, 2, 12, 12, 3, 3, 3, 1, 1, 1, 1, False), torch.float32)
    s = _shape(x, w, **cfg)
    first, res = emu.conv(2, algo, torch.float32, s, dy, x, None, w.shape)
    again = emu.conv(2, algo, torch.float32, s, dy, x, None, w.shape, seed=7)[0]
    assert torch.equal(first, again)
    assert rel_err(first, torch_all(x, w, b, dy, cfg)[2]) <= 1e-5
    if algo == "implicit_gemm":
        assert [l.name for l in res.launches][-1].startswith("reduce_splits_kernel")


ALGO_NAME = {i: n for n, i in ALGO_ID.items()}


def _candidates(emu, pass_, dtype, s):
    """(algo name, engine) of every configuration conv2d_candidates_cuda lists."""
    bits = emu.request("candidates", [], pass_=pass_, dtype=DTYPE_ID[dtype], shape=s).value
    return [(ALGO_NAME[i // 8], i % 8) for i in range(64) if bits >> i & 1]


# Shapes whose candidate lists differ: 3 -> 5 channels (fused chunks 1-8),
# grouped 16 -> 24 with stride 2, and a grad-weight reduction long enough for
# several split-K counts.
VARIANT_CASES = [
    (2, 3, 9, 7, 5, 3, 3, 1, 1, 1, 1, True),
    (3, 16, 6, 6, 24, 3, 3, 2, 1, 1, 2, True),
    (4, 2, 24, 24, 3, 3, 3, 1, 1, 1, 1, False),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_emulated_every_tuning_variant(emu, dtype):
    # What the tuning sweep and the CUDA autotuner time: every candidate
    # (algorithm, forced tiling) of every pass gives the function's answer.
    for case in VARIANT_CASES:
        x, w, b, dy, cfg = make(case, dtype)
        ref = torch_all(x, w, b, dy, cfg)
        s = _shape(x, w, **cfg)
        for pass_, (a, b_, bias, out_shape) in enumerate(
                [(x, w, b, dy.shape), (dy, w, None, x.shape), (dy, x, None, w.shape)]):
            cands = _candidates(emu, pass_, dtype, s)
            assert ("direct", 0) in cands and ("implicit_gemm", 1) in cands, cands
            for algo, v in cands:
                got = emu.conv(pass_, algo, dtype, s, a, b_, bias, out_shape, engine=v)[0]
                assert torch.isfinite(got).all(), f"{algo}:{v} pass {pass_} {case}: unwritten"
                err = rel_err(got, ref[pass_])
                assert err <= TOL[dtype], f"{algo}:{v} pass {pass_} {case}: {err:.2e}"


def test_emulated_variants_are_named_and_checked(emu):
    s = (4, 2, 24, 24, 3, 3, 3, 22, 22, 1, 1, 0, 0, 1, 1, 1)
    names = {(a, v, p): emu.request("engine_name", [], algo=ALGO_ID[a], engine=v, pass_=p).text
             for a, v, p in [("implicit_gemm", 2, 0), ("implicit_gemm", 3, 2), ("fused", 3, 1),
                             ("fused", 0, 0)]}
    assert names == {("implicit_gemm", 2, 0): "bm64", ("implicit_gemm", 3, 2): "split16",
                     ("fused", 3, 1): "ch4", ("fused", 0, 0): ""}
    # The split-K candidates differ in their real split count, and each forced
    # split's workspace is what that count needs.
    wgrad = [v for a, v in _candidates(emu, 2, torch.float32, s) if a == "implicit_gemm"]
    sizes = [emu.workspace_size(2, "implicit_gemm", torch.float32, s, v) for v in wgrad]
    assert sizes[0] == 0 and len(set(sizes)) == len(sizes), sizes  # split1: no workspace
    # Each forced tiling is the launch it names: BM rows per block (grid.x),
    # split-K slices (grid.z), fused channels per thread (grid.y).
    x, w, dy = torch.randn(4, 2, 24, 24), torch.randn(3, 2, 3, 3), torch.randn(4, 3, 22, 22)
    grid = lambda p, a, v, *t: emu.conv(p, a, torch.float32, s, *t, engine=v)[1].launches[0].grid
    assert [grid(0, "implicit_gemm", v, x, w, None, dy.shape)[0] for v in (1, 2, 3)] == [
        -(-4 * 22 * 22 // bm) for bm in (128, 64, 32)]
    # (64 slices clipped to the 61 k-tiles of 4*22*22 = 1936 rows)
    assert [grid(2, "implicit_gemm", v, dy, x, None, w.shape)[2] for v in wgrad] == [1, 4, 16, 61]
    assert [grid(0, "fused", v, x, w, None, dy.shape)[1] for v in (1, 2, 3)] == [3, 2, 1]
    for a, v in [("direct", 1), ("implicit_gemm", 4), ("fused", 7), ("auto", 1)]:
        with pytest.raises(KernelError, match="engine"):
            emu.conv(0, a, torch.float32, s, torch.zeros(4, 2, 24, 24), torch.zeros(3, 2, 3, 3),
                     None, (4, 3, 22, 22), engine=v)
    with pytest.raises(KernelError, match="channels per thread"):  # 32 taps x 49^2 do not fit
        big = (1, 1, 60, 60, 1, 49, 49, 12, 12, 1, 1, 0, 0, 1, 1, 1)
        emu.conv(0, "fused", torch.float32, big, torch.zeros(1, 1, 60, 60),
                 torch.zeros(1, 1, 49, 49), None, (1, 1, 12, 12), engine=6)


def test_emulated_asymmetric_padding_and_empty(emu):
    x, w, b, dy, _ = make((2, 3, 7, 6, 4, 4, 4, 1, 0, 1, 1, True), torch.float64)
    s = _shape(x, w, 1, 1, 1, 1, P=7, Q=6)  # 'same' with an even kernel
    xp = F.pad(x, (1, 2, 1, 2))
    dy = torch.randn(2, 4, 7, 6, dtype=torch.float64)
    for algo in ALGOS:
        y = emu.conv(0, algo, torch.float64, s, x, w, b, (2, 4, 7, 6))[0]
        assert rel_err(y, F.conv2d(xp, w, b)) <= 1e-12
        dx = emu.conv(1, algo, torch.float64, s, dy, w, None, x.shape)[0]
        xr = x.clone().requires_grad_()
        (ref_dx,) = torch.autograd.grad(F.conv2d(F.pad(xr, (1, 2, 1, 2)), w), (xr,), dy)
        assert rel_err(dx, ref_dx) <= 1e-12
    # empty batch: grad-weight of an empty sum is zero
    x0 = torch.empty(0, 3, 7, 6, dtype=torch.float64)
    s0 = _shape(x0, w, 1, 0, 1, 1)
    dw = emu.conv(2, "auto", torch.float64, s0, torch.empty(0, 4, 4, 3, dtype=torch.float64), x0,
                  None, w.shape)[0]
    assert torch.equal(dw, torch.zeros_like(dw))


def test_emulated_unknown_algo_raises(emu):
    x, w, b, dy, cfg = make(CASES[0], torch.float32)
    with pytest.raises(KernelError, match="im2col"):
        emu.conv(0, "im2col", torch.float32, _shape(x, w, **cfg), x, w, b, dy.shape)


# ------------------------------------------------------------------ workspace


def test_emulated_grad_weight_workspace_is_what_the_size_function_says(emu):
    # The split-K partial sums live in the caller's workspace (a torch tensor on
    # a GPU): exactly the size conv2d_workspace_size reports, every byte of it
    # written before it is read (it starts as NaN), none past its end (ASan).
    x, w, b, dy, cfg = make((3, 5, 13, 12, 6, 3, 3, 1, 1, 1, 1, False), torch.float32)
    s = _shape(x, w, **cfg)
    ref = torch_all(x, w, b, dy, cfg)[2]
    n = emu.workspace_size(2, "implicit_gemm", torch.float32, s)
    dw, res = emu.conv(2, "implicit_gemm", torch.float32, s, dy, x, None, w.shape, workspace=n)
    splits = res.launches[0].grid[2]
    assert splits > 1 and n == splits * w.numel() * 4
    assert rel_err(dw, ref) <= 1e-5
    # float64 partials are float64 (and its k-tiles shorter: other splits)
    n64 = emu.workspace_size(2, "implicit_gemm", torch.float64, s)
    res64 = emu.conv(2, "implicit_gemm", torch.float64, s, dy.double(), x.double(), None,
                     w.shape, workspace=n64)[1]
    assert n64 == res64.launches[0].grid[2] * w.numel() * 8
    # forward, grad-input and direct need none
    assert emu.workspace_size(0, "implicit_gemm", torch.float32, s) == 0
    assert emu.workspace_size(1, "fused", torch.float32, s) == 0
    assert emu.workspace_size(2, "direct", torch.float32, s) == 0
    assert emu.workspace_size(2, "fused", torch.float32, s) == n  # fused's wgrad is the GEMM's
    # one byte short: refused before any launch
    with pytest.raises(KernelError, match="workspace"):
        emu.conv(2, "implicit_gemm", torch.float32, s, dy, x, None, w.shape, workspace=n - 1)
    # none at all: one unsplit pass, same answer
    dw1, res1 = emu.conv(2, "implicit_gemm", torch.float32, s, dy, x, None, w.shape,
                         workspace=None)
    assert [l.name for l in res1.launches] == ["igemm_kernel<T, Prob, BM, BN, BK, TM, TN>"]
    assert res1.launches[0].grid[2] == 1
    assert rel_err(dw1, ref) <= 1e-5


def test_emulated_kernels_allocate_nothing():
    # Device memory comes from the caller (PyTorch's allocator): no kernel
    # source allocates or frees any.
    for path in emu_build.sources():
        with open(path) as f:
            src = emu_build.blank_comments(f.read())
        assert not re.search(r"cudaMalloc|cudaFree", src), path


# ------------------------------------------------------------------ grids


# Every conv layer of the homework networks (bench/layers.py's catalogue):
# (N, C, H, W, K, kernel, padding)
HOMEWORK = [
    (50, 1, 32, 32, 16, 3, 0), (50, 16, 30, 30, 8, 5, 0), (50, 8, 13, 13, 16, 7, 0),
    (50, 16, 30, 30, 8, 3, 0), (50, 8, 28, 28, 16, 5, 0), (50, 16, 12, 12, 16, 5, 0),
    (50, 1, 32, 32, 8, 3, 0), (50, 8, 30, 30, 16, 3, 0), (50, 16, 28, 28, 8, 3, 0),
    (50, 8, 26, 26, 16, 3, 0), (50, 16, 12, 12, 16, 3, 0), (50, 16, 10, 10, 8, 3, 0),
    (50, 3, 32, 32, 16, 3, 0), (50, 3, 32, 32, 8, 3, 0), (50, 1, 28, 28, 16, 3, 0),
    (50, 16, 26, 26, 8, 7, 0), (50, 8, 10, 10, 16, 5, 0), (50, 16, 26, 26, 8, 5, 0),
    (50, 8, 22, 22, 8, 3, 0), (50, 16, 26, 26, 8, 3, 0), (50, 8, 24, 24, 8, 3, 0),
    (50, 8, 10, 10, 16, 3, 0), (50, 16, 8, 8, 16, 3, 0), (128, 1, 28, 28, 8, 3, 1),
    (128, 8, 14, 14, 16, 3, 1), (128, 16, 7, 7, 32, 3, 1), (128, 8, 28, 28, 8, 3, 1),
    (128, 16, 14, 14, 16, 3, 1), (128, 32, 7, 7, 32, 3, 1), (64, 3, 32, 32, 16, 3, 0),
    (64, 16, 15, 15, 32, 3, 0), (64, 3, 32, 32, 32, 3, 0), (64, 32, 15, 15, 64, 3, 0),
    (64, 3, 32, 32, 64, 3, 0), (64, 64, 15, 15, 128, 3, 0),
]


def _homework_shape(layer):
    N, C, H, W, K, R, pad = layer
    P, Q = H + 2 * pad - R + 1, W + 2 * pad - R + 1
    return [N, C, H, W, K, R, R, P, Q, 1, 1, pad, pad, 1, 1, 1]


def _dry_launches(emu, pass_, algo, s):
    """The launches of one call, planned but not run (no data)."""
    ws = emu.workspace_size(pass_, algo, torch.float32, s) if pass_ == 2 else 0
    res = emu.request("conv", [None, None, None, None, b"\0" * ws if ws else None], pass_=pass_,
                      algo=ALGO_ID[algo], dtype=0, shape=s, dry=True)
    return [l for l in res.launches if not l.name.startswith("reduce_splits")]


@pytest.mark.parametrize("algo", ["auto", "fused", "implicit_gemm"])
def test_homework_grids_fill_an_h100(emu, algo):
    # What runs on the homework layers launches at least one block per SM of an
    # H100 in every pass (it launched 21-110 blocks on a third of them, when
    # tiles, channel chunks and split-K did not depend on the grid). The
    # implicit GEMM's forward and grad-input, which auto leaves to the fused
    # kernel on the smallest layers, go down to their narrowest tile (BM = 32)
    # there and may stay below.
    symbols = _kernel_symbols(emu.exe) if shutil.which("nm") else {}
    small = []
    for layer in HOMEWORK:
        s = _homework_shape(layer)
        for pass_ in range(3):
            for l in _dry_launches(emu, pass_, algo, s):
                if l.blocks >= H100_SMS:
                    continue
                name = symbols.get(l.kernel_offset, "")
                if algo == "implicit_gemm" and pass_ < 2 and re.search(r">, 32, \d+, 8, 1,", name):
                    continue
                small.append((layer, pass_, l.name, l.blocks))
    assert not small, small


def test_fused_chunk_matches_the_channel_count(emu):
    # 1-channel grad-input (the first layers) runs fused_kernel<.., 1>: one
    # FMA per tap and pixel, none wasted; 2 and 3-4 channels get 2 and 4.
    symbols = _kernel_symbols(emu.exe) if shutil.which("nm") else None
    for C, want in ((1, 1), (2, 2), (3, 4), (5, 8), (16, 16), (20, 32)):
        s = _homework_shape((50, C, 32, 32, 16, 3, 0))
        (l,) = _dry_launches(emu, 1, "fused", s)
        assert l.grid[1] == -(-C // want), (C, l.grid)
        if symbols is not None:
            assert re.search(rf"fused_kernel<\w+, true, {want}>", symbols[l.kernel_offset])


# ------------------------------------------------------------------ 32-bit limit


def test_int32_kernels_keep_a_margin_for_tile_overrun(emu):
    # The 32-bit kernels index up to a few tiles past the end of a dimension
    # (before the bounds checks discard it): shapes within 2^16 of 2^31 elements
    # go to direct (64-bit), and asking for a 32-bit algorithm there fails
    # before anything is launched.
    limit = 2**31 - 1 - 2**16

    def shape(numel_out):  # 1x1 conv, one channel: output numel = N*P*Q
        return [1, 1, numel_out, 1, 1, 1, 1, numel_out, 1, 1, 1, 0, 0, 1, 1, 1]

    for pass_, auto in enumerate(("fused", "fused", "implicit_gemm")):
        assert emu.request("choose", [], pass_=pass_, dtype=0,
                           shape=shape(limit)).value == ALGO_ID[auto]
        assert emu.request("choose", [], pass_=pass_, dtype=0,
                           shape=shape(limit + 1)).value == ALGO_ID["direct"]
        assert emu.request("choose", [], pass_=pass_, dtype=0,
                           shape=shape(2**31 - 200)).value == ALGO_ID["direct"]
        for algo in ("implicit_gemm", "fused"):
            with pytest.raises(KernelError, match="32 bits"):
                emu.request("conv", [None] * 5, pass_=pass_, algo=ALGO_ID[algo], dtype=0,
                            shape=shape(2**31 - 200), dry=True)
        emu.request("conv", [None] * 5, pass_=pass_, algo=ALGO_ID["implicit_gemm"], dtype=0,
                    shape=shape(limit), dry=True)


# ------------------------------------------------------------------ grid-stride loops


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_emulated_grid_stride_loops_cover_everything(emu, dtype):
    # With grids capped at a few blocks, every grid-stride kernel (direct
    # conv passes, max- and average pooling) still writes every element: blocks loop.
    x, w, b, dy, cfg = make((2, 3, 9, 8, 5, 3, 3, 1, 1, 1, 1, True), dtype)
    for cap in (1, 3):
        ours = emu.conv_all(x, w, b, dy, cfg, "direct", grid_cap=cap)
        check_all(ours, torch_all(x, w, b, dy, cfg), dtype, f"cap {cap}")
        s = _shape(x, w, **cfg)
        for pass_, (a, bb, out) in enumerate(((x, w, dy), (dy, w, x), (dy, x, w))):
            res = emu.conv(pass_, "direct", dtype, s, a, bb, None, out.shape, grid_cap=cap)[1]
            assert all(l.grid[0] <= cap for l in res.launches), res.launches
        _pool_case(emu, POOL_CASES[1], dtype, grid_cap=cap)
        _avg_pool_case(emu, AVG_POOL_CASES[2], dtype, grid_cap=cap)


# ------------------------------------------------------------------ launch errors


CALLS = [  # (op, pass, algo): every host entry point's launches
    ("conv", 0, "direct"), ("conv", 1, "direct"), ("conv", 2, "direct"),
    ("conv", 0, "implicit_gemm"), ("conv", 1, "implicit_gemm"), ("conv", 2, "implicit_gemm"),
    ("conv", 0, "fused"), ("conv", 1, "fused"), ("pool", 0, None), ("pool", 1, None),
    ("avg_pool", 0, None), ("avg_pool", 1, None),
]


def _call(emu, op, pass_, algo, **opts):
    if op == "pool":  # 2x2/2 pooling of 1x2x6x6
        s = _pool_fields(1, 2, 6, 6, 3, 3, 2, 2, 2, 2, 0, 0, 1, 1)
        idx = _bytes(torch.zeros(1, 2, 3, 3, dtype=torch.int64))
        small, big = _bytes(torch.randn(1, 2, 3, 3)), _bytes(torch.randn(1, 2, 6, 6))
        name, bufs = (("max_pool2d_forward", [big, small, idx]) if pass_ == 0 else
                      ("max_pool2d_backward", [small, idx, big]))
        return emu.kernel(name, 0, s, bufs, **opts)
    if op == "avg_pool":  # 2x2/2 average pooling of 1x2x6x6
        s = _avg_fields(1, 2, 6, 6, 3, 3, 2, 2, 2, 2, 0, 0, 1, 0)
        small, big = _bytes(torch.randn(1, 2, 3, 3)), _bytes(torch.randn(1, 2, 6, 6))
        name, bufs = (("avg_pool2d_forward", [big, small]) if pass_ == 0 else
                      ("avg_pool2d_backward", [small, big]))
        return emu.kernel(name, 0, s, bufs, **opts)
    x, w, b, dy, cfg = make((3, 5, 13, 12, 6, 3, 3, 1, 1, 1, 1, False), torch.float32)
    a, bb, out = ((x, w, dy), (dy, w, x), (dy, x, w))[pass_]
    return emu.conv(pass_, algo, torch.float32, _shape(x, w, **cfg), a, bb, None, out.shape,
                    **opts)[1]


@pytest.mark.parametrize("op,pass_,algo", CALLS)
def test_launch_errors_are_attributed_to_the_right_launch(emu, op, pass_, algo):
    launches = [l.name for l in _call(emu, op, pass_, algo).launches]
    assert launches
    # An error left pending by earlier work is reported as such, before our
    # first launch, instead of as that launch's own error.
    with pytest.raises(KernelError, match=r"pending before the launch of \w+.*not by this launch"):
        _call(emu, op, pass_, algo, pending=True)
    # Every launch is checked right after it: an error of launch i names it.
    for i in range(1, len(launches) + 1):
        with pytest.raises(KernelError) as err:
            _call(emu, op, pass_, algo, fail_after=i)
        kernel = launches[i - 1].split("<")[0]
        assert re.match(rf"convbench: CUDA error in {kernel}\b.*cudaErrorLaunchFailure",
                        str(err.value)), (i, str(err.value))


# ------------------------------------------------------------------ the emulator's detectors


def _selftest(emu, name):
    out = torch.full((128,), float("nan"))
    res = emu.request("selftest", [_bytes(out)], name=name)
    return _tensor(res.buffers[0], torch.float32, (128,))


def test_emulator_runs_a_correct_kernel(emu):
    out = _selftest(emu, "reverse")
    assert torch.equal(out, torch.arange(63, -1, -1, dtype=torch.float32).repeat(2))


def test_emulator_detects_barrier_divergence(emu):
    with pytest.raises(EmuError, match=r"barrier divergence: thread \(\d+,0,0\) waits at "
                                       r".*selftest.cu:\d+:\d+, thread \(\d+,0,0\) at "):
        _selftest(emu, "divergent_barrier")
    with pytest.raises(EmuError, match=r"barrier divergence: thread \(5,0,0\) returned while"):
        _selftest(emu, "exit_before_barrier")


def test_emulator_poisons_shared_memory_between_blocks(emu):
    out = _selftest(emu, "stale_shared")
    assert torch.equal(out[:64], torch.full((64,), 7.0))
    assert out[64:].isnan().all(), "block 1 saw block 0's shared memory"


def test_emulator_runs_threads_out_of_order_between_barriers(emu):
    out = _selftest(emu, "missing_barrier")
    assert out.isnan().any(), "every thread saw its neighbour's store without a barrier"


def test_emulator_checks_shared_memory_and_thread_limits(emu):
    with pytest.raises(EmuError, match=r"static \(40960 B\) plus dynamic \(16384 B\) shared"):
        _selftest(emu, "big_shared")
    with pytest.raises(KernelError, match="CUDA error in bounded: cudaErrorLaunchOutOfResources"):
        _selftest(emu, "too_many_threads")


def test_emulator_is_built_with_address_and_ub_sanitizers(emu):
    if not emu_build.sanitized():
        pytest.skip("CB_EMU_SANITIZE=0")
    with pytest.raises(EmuCrash, match="heap-buffer-overflow"):
        _selftest(emu, "shared_overrun")
    with pytest.raises(EmuCrash, match="signed integer overflow"):
        _selftest(emu, "int_overflow")
    _selftest(emu, "reverse")  # and a fresh worker carries on


# ------------------------------------------------------------------ max_pool2d and axpy


POOL_CASES = [
    (2, 3, 8, 8, 2, 2, 0, 1, False),
    (1, 2, 9, 7, 3, 2, 1, 1, False),
    (1, 2, 7, 8, 3, 1, 1, 1, False),
    (1, 2, 11, 12, (3, 2), (2, 1), (1, 0), (2, 3), True),
]


def _pool_out(n, k, s, p, d, ceil_mode):
    num = n + 2 * p - d * (k - 1) - 1
    out = (num + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _pool_fields(*values):
    names = ("N C H W P Q kernel_h kernel_w stride_h stride_w pad_h pad_w dil_h dil_w").split()
    return dict(zip(names, values))


def _pool_case(emu, case, dtype, **opts):
    N, C, H, W, k, st, p, d, ceil_mode = case
    x = torch.randn(N, C, H, W).to(dtype)
    if dtype == torch.float32:
        x[0, 0, 1, 1] = float("nan")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (k, st, p, d))
    P, Q = _pool_out(H, kh, sh, ph, dh, ceil_mode), _pool_out(W, kw, sw, pw, dw, ceil_mode)
    s = _pool_fields(N, C, H, W, P, Q, kh, kw, sh, sw, ph, pw, dh, dw)
    y = torch.full((N, C, P, Q), float("nan"), dtype=dtype)
    idx = torch.full((N, C, P, Q), -7, dtype=torch.int64)
    res = emu.kernel("max_pool2d_forward", DTYPE_ID[dtype], s,
                     [_bytes(x), _bytes(y), _bytes(idx)], **opts)
    y, idx = _tensor(res.buffers[1], dtype, y.shape), _tensor(res.buffers[2], torch.int64, y.shape)
    ref, ref_idx = F.max_pool2d(x.float(), k, st, p, d, ceil_mode=ceil_mode, return_indices=True)
    assert torch.equal(idx, ref_idx)
    assert torch.equal(y.float().nan_to_num(7.0), ref.nan_to_num(7.0))
    dy = torch.randn(N, C, P, Q).to(dtype)
    dx = torch.full(x.shape, float("nan"), dtype=dtype)
    res = emu.kernel("max_pool2d_backward", DTYPE_ID[dtype], s,
                     [_bytes(dy), _bytes(ref_idx), _bytes(dx)], **opts)
    dx = _tensor(res.buffers[2], dtype, x.shape)
    ref_dx = torch.zeros(N, C, H * W, dtype=torch.float64).scatter_add_(
        2, ref_idx.flatten(2), dy.double().flatten(2)).reshape(x.shape)
    tol = {torch.float64: 1e-15, torch.float32: 1e-7}.get(dtype, UNIT.get(dtype))
    assert rel_err(dx, ref_dx) <= tol


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(map(str, c[:5])))
def test_emulated_max_pool2d(emu, case, dtype):
    _pool_case(emu, case, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(map(str, c[:5])))
def test_emulated_max_pool2d_last_nan_and_ties(emu, case, dtype):
    # Small integers (ties everywhere) with NaN, -inf, inf: every NaN replaces
    # the running maximum (the last NaN gives the index), ties keep the first,
    # as torch's CPU and CUDA kernels do; compared bit for bit with torch's CPU.
    N, C, H, W, k, st, p, d, ceil_mode = case
    g = torch.Generator().manual_seed(5)
    x = torch.randint(-2, 3, (N, C, H, W), generator=g).double()
    u = torch.rand(N, C, H, W, generator=g, dtype=torch.float64)
    x[u < 0.25] = float("nan")
    x[(u >= 0.25) & (u < 0.35)] = -float("inf")
    x[(u >= 0.35) & (u < 0.40)] = float("inf")
    x = x.to(dtype)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (k, st, p, d))
    P, Q = _pool_out(H, kh, sh, ph, dh, ceil_mode), _pool_out(W, kw, sw, pw, dw, ceil_mode)
    s = _pool_fields(N, C, H, W, P, Q, kh, kw, sh, sw, ph, pw, dh, dw)
    y = torch.full((N, C, P, Q), 5.0, dtype=dtype)
    idx = torch.full((N, C, P, Q), -7, dtype=torch.int64)
    res = emu.kernel("max_pool2d_forward", DTYPE_ID[dtype], s, [_bytes(x), _bytes(y), _bytes(idx)])
    y, idx = _tensor(res.buffers[1], dtype, y.shape), _tensor(res.buffers[2], torch.int64, y.shape)
    ref, ref_idx = F.max_pool2d(x.double(), k, st, p, d, ceil_mode=ceil_mode,
                                return_indices=True)
    assert torch.equal(idx, ref_idx)
    assert torch.equal(y.double().nan_to_num(7.0), ref.nan_to_num(7.0))


# (N, C, H, W, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
# ceil_mode's clipped last windows, overlapping windows (stride 1), each divisor rule.
AVG_POOL_CASES = [
    (2, 3, 8, 8, 2, 2, 0, False, True, None),
    (1, 2, 9, 7, 3, 2, 1, True, False, None),
    (1, 2, 7, 8, 3, 1, 1, True, True, None),
    (1, 2, 11, 12, (3, 2), (2, 1), (1, 0), True, False, 5),
    (1, 1, 10, 9, (2, 4), (3, 3), (1, 2), True, True, -3),
]


def _avg_fields(*values):
    names = ("N C H W P Q kernel_h kernel_w stride_h stride_w pad_h pad_w count_include_pad "
             "divisor").split()
    return dict(zip(names, values))


def _avg_pool_case(emu, case, dtype, **opts):
    N, C, H, W, k, st, p, ceil_mode, cip, div = case
    x = torch.randn(N, C, H, W).to(dtype)
    args = (k, st, p, ceil_mode, cip, div)
    ref = torch.from_numpy(reference.avg_pool2d(x.double().numpy(), *args))
    (kh, kw), (sh, sw), (ph, pw) = map(pair, (k, st, p))
    s = _avg_fields(N, C, H, W, ref.shape[2], ref.shape[3], kh, kw, sh, sw, ph, pw, int(cip),
                    div or 0)
    y = torch.full(ref.shape, float("nan"), dtype=dtype)
    res = emu.kernel("avg_pool2d_forward", DTYPE_ID[dtype], s, [_bytes(x), _bytes(y)], **opts)
    # float32: sums of at most 12 terms; the half types: summed in float, rounded once.
    tol = {torch.float64: 1e-15, torch.float32: 1e-6}.get(dtype, UNIT.get(dtype))
    assert rel_err(_tensor(res.buffers[1], dtype, ref.shape), ref) <= tol
    dy = torch.randn(ref.shape).to(dtype)
    dx = torch.full(x.shape, float("nan"), dtype=dtype)
    res = emu.kernel("avg_pool2d_backward", DTYPE_ID[dtype], s, [_bytes(dy), _bytes(dx)], **opts)
    ref_dx = torch.from_numpy(reference.avg_pool2d_backward(dy.double().numpy(), x.shape, *args))
    assert rel_err(_tensor(res.buffers[1], dtype, x.shape), ref_dx) <= tol


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", AVG_POOL_CASES, ids=lambda c: "x".join(map(str, c[:5])))
def test_emulated_avg_pool2d(emu, case, dtype):
    _avg_pool_case(emu, case, dtype)


def _axpy(emu, n, **opts):
    x, y = torch.randn(n), torch.randn(n)
    res = emu.request("axpy", [_bytes(x), _bytes(y)], alpha=0.5, **opts)
    assert torch.allclose(_tensor(res.buffers[1], torch.float32, (n,)), 0.5 * x + y)


def test_emulated_axpy(emu):
    _axpy(emu, 1000, grid_cap=3)
