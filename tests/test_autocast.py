"""torch.autocast over convbench's functions, operators and layers against
torch's own ops in the same autocast region.

torch's policy: conv2d casts floating inputs of the autocast device (float64
excepted) to the autocast dtype; max-pool is on no list and keeps its input's
dtype. On the CPU our kernels compute on the rounded inputs in float32 and
round the output once (README), which is what oneDNN's bf16/fp16 convolution
computes too: outputs may differ from torch's by the output's rounding where
the two float32 sums fall on either side of a rounding boundary, so values are
compared within one unit in the last place of the half type (2^-7 for
bfloat16, 2^-10 for float16, relative), norm-wise.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

import convbench

HALF_ULP = {torch.bfloat16: 2.0 ** -7, torch.float16: 2.0 ** -10}


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).norm() / b.norm()).item()


def conv_op(x, w, b):
    return torch.ops.convbench.conv2d(x, w, b, [2, 1], [1, 1, 0, 0], [1, 1], 2, "auto")


CONVS = {
    "functional": lambda x, w, b: convbench.conv2d(x, w, b, stride=(2, 1), padding=(1, 0),
                                                   groups=2),
    "op": conv_op,
}


@pytest.mark.parametrize("name", CONVS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_cpu_autocast_conv_follows_torch(name, dtype):
    x = torch.randn(3, 4, 12, 10)
    w = torch.randn(6, 2, 3, 3, requires_grad=True)
    b = torch.randn(6, requires_grad=True)
    with torch.autocast("cpu", dtype=dtype):
        ours = CONVS[name](x, w, b)
        ref = F.conv2d(x, w, b, stride=(2, 1), padding=(1, 0), groups=2)
    assert ours.dtype == ref.dtype == dtype
    assert rel(ours, ref) <= HALF_ULP[dtype]
    # Gradients reach the float32 leaves in float32; torch's backward of a
    # half convolution rounds differently inside, so allow a few units.
    g = torch.randn(ref.shape).to(dtype)
    for a, r in zip(torch.autograd.grad(ours, (w, b), g), torch.autograd.grad(ref, (w, b), g)):
        assert a.dtype == r.dtype == torch.float32
        assert rel(a, r) <= 4 * HALF_ULP[dtype]


def test_cpu_autocast_leaves_float64_alone():
    x, w = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.randn(4, 3, 3, 3, dtype=torch.float64)
    with torch.autocast("cpu"):
        ours, ref = convbench.conv2d(x, w), F.conv2d(x, w)
    assert ours.dtype == ref.dtype == torch.float64
    assert torch.equal(ours, convbench.conv2d(x, w))


def test_cpu_autocast_max_pool_keeps_its_dtype():
    # Not on torch's autocast lists: float32 stays float32, a bfloat16 input
    # (a convolution's output under autocast) is pooled in bfloat16, exactly.
    x = torch.randn(2, 3, 10, 9)
    with torch.autocast("cpu"):
        assert convbench.max_pool2d(x, 2).dtype == torch.float32
        for half in (torch.bfloat16, torch.float16):
            xh = x.to(half)
            ours = convbench.max_pool2d(xh, 3, 2, padding=1, return_indices=True)
            ref = F.max_pool2d(xh, 3, 2, padding=1, return_indices=True)
            assert ours[0].dtype == half
            assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1])


@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16], ids=str)
def test_cpu_half_max_pool_backward(half):
    x = torch.randn(2, 3, 12, 12).to(half).requires_grad_()
    g = torch.randn(2, 3, 6, 6).to(half)
    # Windows that do not overlap: one gradient per input, exact.
    (ours,) = torch.autograd.grad(convbench.max_pool2d(x, 2), x, g)
    (ref,) = torch.autograd.grad(F.max_pool2d(x, 2), x, g)
    assert ours.dtype == half and torch.equal(ours, ref)
    # Overlapping windows: we sum in float32 and round once, torch rounds after
    # every addition; with at most 9 terms per input the difference is within
    # 9 roundings of the sum of |terms|.
    g = torch.randn(2, 3, 10, 10).to(half)
    (ours,) = torch.autograd.grad(convbench.max_pool2d(x, 3, 1), x, g)
    (ref,) = torch.autograd.grad(F.max_pool2d(x, 3, 1), x, g)
    (mag,) = torch.autograd.grad(F.max_pool2d(x.float(), 3, 1), x, g.float().abs())
    assert (ours.float() - ref.float()).abs().le(9 * HALF_ULP[half] * mag.float()).all()


def test_cpu_autocast_converted_model():
    torch.manual_seed(3)
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 4, 3))
    ours = convbench.nn.convert(copy.deepcopy(ref))
    x = torch.randn(4, 3, 16, 16)
    with torch.autocast("cpu"):
        a, r = ours(x), ref(x)
    assert a.dtype == r.dtype == torch.bfloat16
    # Two layers: the first's rounding feeds the second.
    assert rel(a, r) <= 2 * HALF_ULP[torch.bfloat16]


def test_autocast_reaches_the_op_under_compile():
    x, w = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3)

    @torch.compile(backend="aot_eager", fullgraph=True)
    def f(x, w):
        with torch.autocast("cpu"):
            return convbench.conv2d(x, w)

    out = f(x, w)
    with torch.autocast("cpu"):
        ref = F.conv2d(x, w)
    assert out.dtype == ref.dtype == torch.bfloat16
    assert rel(out, ref) <= HALF_ULP[torch.bfloat16]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("algo", ["auto", "direct", "implicit_gemm"])
def test_cuda_autocast_conv_follows_torch(dtype, algo):
    # Our CUDA kernels run in the autocast dtype (float32 accumulation), as
    # cuDNN does; outputs differ by the output's rounding (plus cuDNN's own
    # summation order), gradients by a few roundings.
    dev = "cuda"
    x = torch.randn(4, 8, 20, 18, device=dev)
    w = torch.randn(16, 8, 3, 3, device=dev, requires_grad=True)
    b = torch.randn(16, device=dev, requires_grad=True)
    with torch.autocast(dev, dtype=dtype):
        ours = convbench.conv2d(x, w, b, padding=1, algo=algo)
        ref = F.conv2d(x, w, b, padding=1)
        pooled = convbench.max_pool2d(ours, 2)
    assert ours.dtype == ref.dtype == pooled.dtype == dtype
    assert rel(ours, ref) <= 2 * HALF_ULP[dtype]
    assert torch.equal(pooled, F.max_pool2d(ours, 2))
    g = torch.randn(ref.shape, device=dev).to(dtype)
    for a, r in zip(torch.autograd.grad(ours, (w, b), g), torch.autograd.grad(ref, (w, b), g)):
        assert a.dtype == r.dtype == torch.float32
        assert rel(a, r) <= 8 * HALF_ULP[dtype]
