"""Build facts and the CUDA plumbing: import works without a GPU, the build
reports what it contains, and the small CUDA kernel (axpy) that proves the
CUDA part compiles, links and is reachable runs where a GPU is usable."""
import numpy as np
import pytest
import torch

import convbench
from convbench import _C


def test_build_info_is_consistent():
    info = convbench.build_info()
    assert info["cuda_compiled"] == convbench.has_cuda()
    assert info["cuda_available"] == convbench.cuda_available()
    assert info["cpu_isa"] in info["cpu_isas_supported"]
    assert set(info["cpu_isas_supported"]) <= set(info["cpu_isas_compiled"])
    assert info["cpu_isas_compiled"][0] == "generic"
    assert info["openmp_threads"] >= 1
    assert {"direct", "im2col"} <= set(info["conv2d_algos_cpu"])
    assert convbench.algorithms("cpu")[0] == "auto"
    if convbench.has_cuda():
        assert info["cuda_runtime"] and info["cuda_architectures"]
        assert {"direct", "implicit_gemm"} <= set(info["conv2d_algos_cuda"])
    else:
        assert convbench.algorithms("cuda") == ("auto",)
    # The commit, written at build time (CONVBENCH_COMMIT or git's HEAD): a
    # copied tree without .git still says what it is.
    assert info["commit"] == "unknown" or (
        info["commit"] and all(c.isalnum() or c in "-_." for c in info["commit"]))


def test_cpu_kernels_take_numpy_arrays():
    # The binding takes raw pointers: NumPy arrays reach the CPU kernels
    # without torch (shape16 = N C H W K R S P Q stride pad dil groups).
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 5))
    w = np.random.default_rng(1).standard_normal((4, 3, 3, 3))
    y = np.empty((2, 4, 4, 3))
    shape = (2, 3, 6, 5, 4, 3, 3, 4, 3, 1, 1, 0, 0, 1, 1, 1)
    _C.conv2d_forward(_C.DEVICE_CPU, 0, 0, _C.DTYPE_IDS["float64"], 1, shape, x.ctypes.data,
                      w.ctypes.data, 0, y.ctypes.data)
    np.testing.assert_allclose(y, convbench.reference.conv2d(x, w), rtol=1e-12, atol=1e-12)


def test_cuda_entry_points_fail_cleanly_without_gpu():
    if convbench.cuda_available():
        pytest.skip("a GPU is usable here")
    x = torch.zeros(4)
    # No CUDA build: a clear message; CUDA build but no GPU: a CUDA error as
    # an exception (never a crash).
    with pytest.raises(RuntimeError, match="CUDA|cuda"):
        _C.axpy_cuda(1.0, x.data_ptr(), x.data_ptr(), 4, 0, 0)


@pytest.mark.cuda
def test_cuda_axpy_on_the_current_stream():
    n = 1 << 20
    x = torch.randn(n, device="cuda")
    y = torch.randn(n, device="cuda")
    expected = 2.5 * x + y
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        _C.axpy_cuda(2.5, x.data_ptr(), y.data_ptr(), n, x.device.index, stream.cuda_stream)
    stream.synchronize()
    torch.testing.assert_close(y, expected, rtol=1e-6, atol=1e-6)


def test_the_type_stub_lists_the_module():
    # python/convbench/_C.pyi (shipped in the wheel) names every function and
    # constant of the compiled module, and each function's arguments.
    import ast
    import inspect
    import pathlib

    stub = ast.parse((pathlib.Path(convbench.__file__).parent / "_C.pyi").read_text())
    funcs = {n.name: [a.arg for a in n.args.args] for n in stub.body
             if isinstance(n, ast.FunctionDef)}
    consts = {n.target.id for n in stub.body if isinstance(n, ast.AnnAssign)}
    classes = {n.name: n for n in stub.body if isinstance(n, ast.ClassDef)}
    public = {k for k in dir(_C) if not k.startswith("_")}
    assert public == set(funcs) | consts | set(classes)
    for name, node in classes.items():  # a class's attributes and methods too
        members = {m.target.id if isinstance(m, ast.AnnAssign) else m.name for m in node.body
                   if isinstance(m, (ast.AnnAssign, ast.FunctionDef))}
        assert members <= set(dir(getattr(_C, name))), (name, members)
    for name, args in funcs.items():
        doc = getattr(_C, name).__doc__
        assert doc.startswith(f"{name}(" + ", ".join(f"{a}:" for a in args[:1])), (name, doc)
        assert all(f"{a}:" in doc.split("->")[0] for a in args), (name, args, doc)
    assert all(inspect.isbuiltin(getattr(_C, n)) for n in funcs)


def test_shapes_are_built_by_the_fields_the_module_names():
    # The ABI's shape order comes from C++ (one field list per shape in
    # csrc/common/shapes.h, exported as CONV2D_SHAPE_FIELDS); the packers the
    # launch layer, the tests' helper and the tools use follow it by name.
    from _helpers import conv_shape16
    from convbench import _shapes

    assert _C.CONV2D_SHAPE_FIELDS[:9] == ("N", "C", "H", "W", "K", "R", "S", "P", "Q")
    x, w = torch.zeros(2, 6, 9, 8), torch.zeros(4, 3, 3, 2)
    want = dict(N=2, C=6, H=9, W=8, K=4, R=3, S=2, P=4, Q=9, stride_h=2, stride_w=1, pad_h=0,
                pad_w=1, dil_h=1, dil_w=1, groups=2)
    expect = [want[f] for f in _C.CONV2D_SHAPE_FIELDS]
    args = (x.shape, w.shape, (4, 9), (2, 1), (0, 0, 1, 1), (1, 1), 2)
    assert list(_shapes.conv2d_shape(*args)) == expect
    assert conv_shape16(x, w, (2, 1), (0, 1), 1, 2) == expect
    # A module naming another order gets the numbers in that order; one naming
    # a field this layer does not know, or lacking one, is refused at import.
    theirs = tuple(reversed(_C.CONV2D_SHAPE_FIELDS))
    pack = _shapes.packer("p", _shapes._CONV_PARAMS, _shapes._CONV_VALUES, theirs)
    assert list(pack(*args)) == [want[f] for f in theirs]
    for bad in (theirs[:-1] + ("bogus",), theirs[:-1]):
        with pytest.raises(ImportError, match="fields"):
            _shapes.packer("p", _shapes._CONV_PARAMS, _shapes._CONV_VALUES, bad)
    from convbench.ops import max_pool2d

    pool = dict(N=2, C=6, H=9, W=8, P=4, Q=4, kernel_h=3, kernel_w=2, stride_h=2, stride_w=2,
                pad_h=1, pad_w=0, dil_h=1, dil_w=1)
    assert list(max_pool2d._pool_shape(x.shape, (4, 4), (3, 2), (2, 2), (1, 0), (1, 1))) == [
        pool[f] for f in _C.kernel("max_pool2d_forward").shape_fields]


def test_the_kernel_table_names_its_shapes_and_buffers_and_refuses_bad_calls():
    # Every op but conv2d reaches its kernels through the table
    # (csrc/common/kernel_table.h); a raw call is checked against the entry.
    names = _C.kernel_names()
    assert {"max_pool2d_forward", "max_pool2d_backward"} <= set(names)
    for name in names:
        k = _C.kernel(name)
        assert k.name == name and "cpu" in k.devices
        assert ("cuda" in k.devices) == _C.cuda_compiled()
        assert k.shape_fields[:4] == ("N", "C", "H", "W") and len(k.buffers) >= 2
    k = _C.kernel("max_pool2d_forward")
    assert k.buffers == ("x", "y", "indices")
    n = len(k.shape_fields)
    with pytest.raises(ValueError, match="a shape of 14 numbers, got 2"):
        k(_C.DEVICE_CPU, 0, 0, 0, [1, 2], [0, 0, 0])
    with pytest.raises(ValueError, match="3 buffers, got 1"):
        k(_C.DEVICE_CPU, 0, 0, 0, [1] * n, [0])
    with pytest.raises(ValueError, match="invalid sizes"):
        k(_C.DEVICE_CPU, 0, 0, 0, [1, 1, 1, 1, 1, 1, 0] + [1] * (n - 7), [0, 0, 0])
    with pytest.raises(ValueError, match="unknown device"):
        k(7, 0, 0, 0, [1] * n, [0, 0, 0])
    with pytest.raises(KeyError, match="no kernel 'nope'.*max_pool2d_forward"):
        _C.kernel("nope")