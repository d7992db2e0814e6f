"""Bad input raises the exception torch would raise, with a message that
names the problem; it never crashes or returns a wrong answer."""
import pytest
import torch

import convbench

x4 = torch.randn(2, 4, 8, 8)
w4 = torch.randn(6, 4, 3, 3)


def conv(**kw):
    args = dict(input=x4, weight=w4)
    args.update(kw)
    return lambda: convbench.conv2d(**args)


def pool(input=x4, kernel_size=2, **kw):
    return lambda: convbench.max_pool2d(input, kernel_size, **kw)


CONV_CASES = {
    "2d input": (conv(input=torch.randn(8, 8)), RuntimeError, "Expected 3D .* or 4D"),
    "5d input": (conv(input=torch.randn(1, 2, 4, 8, 8)), RuntimeError, "Expected 3D .* or 4D"),
    "3d weight": (conv(weight=torch.randn(6, 4, 3)), RuntimeError, "weight must have shape"),
    "channels": (conv(input=torch.randn(2, 5, 8, 8)), RuntimeError, "to have 4 channels, but got 5"),
    "groups vs in": (conv(weight=torch.randn(6, 4, 3, 3), groups=2), RuntimeError,
                     "to have 8 channels"),
    "groups vs out": (conv(weight=torch.randn(5, 2, 3, 3), groups=2), RuntimeError,
                      r"out_channels \(5\) must be divisible by groups \(2\)"),
    "groups zero": (conv(groups=0), ValueError, "groups must be a positive integer"),
    "kernel too big": (conv(weight=torch.randn(6, 4, 9, 9)), RuntimeError,
                       "Kernel size can't be greater than actual input size"),
    "dilated kernel too big": (conv(dilation=4), RuntimeError, r"Kernel size: \(9 x 9\)"),
    "stride zero": (conv(stride=0), ValueError, "stride must be positive"),
    "stride negative": (conv(stride=(1, -2)), ValueError, "stride must be positive"),
    "dilation zero": (conv(dilation=(0, 1)), ValueError, "dilation must be positive"),
    "padding negative": (conv(padding=-1), ValueError, "padding must be non-negative"),
    "padding triple": (conv(padding=(1, 1, 1)), TypeError, "padding must be an int or a tuple"),
    "padding string": (conv(padding="full"), ValueError, "Invalid padding string 'full'"),
    "same strided": (conv(padding="same", stride=2), ValueError,
                     "'same' is not supported for strided"),
    "padding mode": (conv(padding=1, padding_mode="mirror"), ValueError, "padding_mode"),
    "int dtype": (conv(input=x4.int(), weight=w4.int()), TypeError, "dtype torch.int32"),
    "complex": (conv(input=x4.to(torch.complex64), weight=w4.to(torch.complex64)), TypeError,
                "only float32, float64, float16, bfloat16 are supported"),
    "mixed dtype": (conv(weight=w4.double()), RuntimeError, "should be the same"),
    "mixed device": (conv(weight=w4.to("meta")), RuntimeError,
                     "Expected all tensors to be on the same device"),
    "bias shape": (conv(bias=torch.randn(5)), RuntimeError, r"bias must have shape \(6,\)"),
    "bias dtype": (conv(bias=torch.randn(6, dtype=torch.float64)), RuntimeError,
                   "bias type"),
    "weight not tensor": (conv(weight=[[1.0]]), TypeError, "weight must be a tensor"),
    "unknown algo": (conv(algo="fft"), ValueError, "unknown conv2d algo 'fft'"),
    "no out channels": (conv(weight=torch.randn(0, 4, 3, 3)), RuntimeError,
                        "expected weight to be at least 1 at dimension 0"),
    "empty kernel": (conv(weight=torch.randn(6, 4, 0, 3)), RuntimeError,
                     "kernel size should be greater than zero"),
    "zero channels vs groups": (conv(input=torch.randn(2, 0, 8, 8), weight=torch.randn(5, 0, 3, 3),
                                     groups=2), RuntimeError, "must be divisible by groups"),
    "winograd 5x5": (conv(weight=torch.randn(6, 4, 5, 5), algo="winograd"), ValueError,
                     "winograd.*needs a 3x3 kernel"),
}

POOL_CASES = {
    "2d input": (pool(torch.randn(8, 8)), RuntimeError, "Expected 3D or 4D"),
    "kernel zero": (pool(kernel_size=0), ValueError, "kernel_size must be positive"),
    "stride zero": (pool(stride=(1, 0)), ValueError, "stride must be positive"),
    "dilation zero": (pool(dilation=0), ValueError, "dilation must be positive"),
    "pad too big": (pool(kernel_size=2, padding=2), ValueError,
                    "pad should be at most half of kernel size"),
    "output too small": (pool(torch.randn(1, 1, 2, 2), kernel_size=3), RuntimeError,
                         "too small"),
    "int dtype": (pool(x4.long()), TypeError, "dtype torch.int64"),
    "not a tensor": (pool([[1.0]]), TypeError, "input must be a tensor"),
    "ceil_mode type": (pool(ceil_mode="yes"), TypeError, "ceil_mode must be a bool"),
    # torch: only the batch dimension may be empty
    "zero channels": (pool(torch.randn(1, 0, 50, 32)), RuntimeError,
                      r"optional 0 dim batch size for input, but got: \[1, 0, 50, 32\]"),
    "zero height": (pool(torch.randn(2, 3, 0, 5)), RuntimeError, "optional 0 dim batch size"),
    "zero width, empty batch": (pool(torch.randn(0, 3, 5, 0)), RuntimeError,
                                "optional 0 dim batch size"),
    "unbatched zero channels": (pool(torch.randn(0, 5, 5)), RuntimeError,
                                r"but got: \[0, 5, 5\]"),
}


@pytest.mark.parametrize("name", CONV_CASES)
def test_conv2d_rejects(name):
    call, exc, msg = CONV_CASES[name]
    with pytest.raises(exc, match=msg):
        call()


@pytest.mark.parametrize("name", POOL_CASES)
def test_max_pool2d_rejects(name):
    call, exc, msg = POOL_CASES[name]
    with pytest.raises(exc, match=msg):
        call()


def test_ops_validate_their_own_arguments():
    # Called directly (not through convbench.conv2d) the ops still check.
    ops = torch.ops.convbench
    with pytest.raises(RuntimeError, match="to have 4 channels"):
        ops.conv2d(torch.randn(1, 3, 8, 8), w4, None, [1, 1], [0, 0, 0, 0], [1, 1], 1)
    with pytest.raises(RuntimeError, match="grad_output has shape"):
        ops.conv2d_backward_input(torch.randn(2, 6, 5, 5), w4, [2, 4, 8, 8], [1, 1],
                                  [0, 0, 0, 0], [1, 1], 1)
    with pytest.raises(RuntimeError, match="grad_output has shape"):
        ops.conv2d_backward_weight(torch.randn(2, 6, 5, 5), x4, [6, 4, 3, 3], [1, 1],
                                   [0, 0, 0, 0], [1, 1], 1)
    with pytest.raises(ValueError, match="padding must be 4 non-negative"):
        ops.conv2d(x4, w4, None, [1, 1], [0, -1, 0, 0], [1, 1], 1)
    with pytest.raises(RuntimeError, match="optional 0 dim batch size"):
        ops.max_pool2d(torch.randn(1, 0, 8, 8), [2, 2], [2, 2], [0, 0], [1, 1], False)
    y, idx = ops.max_pool2d(x4, [2, 2], [2, 2], [0, 0], [1, 1], False)
    with pytest.raises(RuntimeError, match="max_pool2d_backward"):
        ops.max_pool2d_backward(torch.randn(2, 4, 3, 3), idx, [2, 4, 8, 8], [2, 2], [2, 2],
                                [0, 0], [1, 1])


def test_the_max_pool_gradient_op_checks_the_forwards_geometry():
    # Called directly, the gradient takes only what the forward could have
    # made: padding beyond half the kernel would reach windows of nothing but
    # padding that the kernel assumes away (it once summed them wrongly).
    ops = torch.ops.convbench
    dy = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 1, 4)
    idx = torch.zeros(1, 1, 1, 4, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"pad should be at most half.*pad=\(0, 2\)"):
        ops.max_pool2d_backward(dy, idx, [1, 1, 1, 1], [1, 2], [1, 1], [0, 2], [1, 1])
    for bad, what in (([0, 2], "kernel_size must be positive"), ([2, -1], "stride")):
        args = ([1, 2], bad, [0, 0], [1, 1]) if what == "stride" else (bad, [1, 1], [0, 0], [1, 1])
        with pytest.raises(ValueError, match=what):
            ops.max_pool2d_backward(dy, idx, [1, 1, 1, 5], *args)
    # grad_output must be the size the forward gives input_size (either ceil_mode).
    x = torch.randn(1, 2, 7, 7)
    y, i = ops.max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], True)      # 4x4 (3x3 floor)
    ops.max_pool2d_backward(y, i, [1, 2, 7, 7], [2, 2], [2, 2], [0, 0], [1, 1])
    ops.max_pool2d_backward(y[..., :3, :3].contiguous(), i[..., :3, :3].contiguous(),
                            [1, 2, 7, 7], [2, 2], [2, 2], [0, 0], [1, 1])
    with pytest.raises(ValueError, match=r"grad_output's size \[4, 4\] is not max_pool2d's "
                                         r"output size \(\[2, 2\] or \[3, 3\]\) for input_size"):
        ops.max_pool2d_backward(y, i, [1, 2, 5, 5], [2, 2], [2, 2], [0, 0], [1, 1])


def test_cuda_tensor_without_cuda_build_or_gpu():
    if convbench.cuda_available():
        pytest.skip("a GPU is usable here")
    # Without a GPU torch itself refuses to make CUDA tensors; our entry
    # points must not crash on the way either.
    with pytest.raises((RuntimeError, AssertionError)):
        convbench.conv2d(x4.to("cuda"), w4.to("cuda"))


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(in_channels=4, out_channels=6, kernel_size=3, groups=3), ValueError,
     "in_channels must be divisible by groups"),
    (dict(in_channels=4, out_channels=6, kernel_size=3, padding_mode="mirror"), ValueError,
     "padding_mode"),
    (dict(in_channels=4, out_channels=6, kernel_size=3, algo="fft"), ValueError,
     "unknown conv2d algo 'fft'"),
])
def test_layer_constructor_rejects(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        convbench.nn.Conv2d(**kwargs)


def test_remembered_geometry_does_not_hide_errors():
    # The eager path caches checked geometries; a call that differs only in
    # what the key must capture (groups' type, bias shape) is still checked.
    convbench.conv2d(x4, w4, torch.randn(6), groups=1)
    with pytest.raises(ValueError, match="groups must be a positive integer"):
        convbench.conv2d(x4, w4, torch.randn(6), groups=1.0)
    with pytest.raises(RuntimeError, match="bias must have shape"):
        convbench.conv2d(x4, w4, torch.randn(6, 1), groups=1)
    convbench.max_pool2d(x4, 2)
    with pytest.raises(RuntimeError, match="too small"):
        convbench.max_pool2d(x4[..., :1, :1], 2)


def test_inference_path_matches_autograd_path():
    x, w = torch.randn(2, 4, 8, 8, dtype=torch.float64), torch.randn(6, 4, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        plain = convbench.conv2d(x, w, padding=1)
        pooled = convbench.max_pool2d(x, 3, 2, 1, return_indices=True)
    graphed = convbench.conv2d(x.requires_grad_(), w, padding=1)
    assert plain.grad_fn is None and graphed.grad_fn is not None
    assert torch.equal(plain, graphed.detach())
    ref = torch.nn.functional.max_pool2d(x.detach(), 3, 2, 1, return_indices=True)
    assert torch.equal(pooled[0], ref[0]) and torch.equal(pooled[1], ref[1])


# convbench's own arguments (algo) and what torch too rejects with ValueError
# (nn.Conv2d's padding_mode) stay plain ValueErrors.
_OWN_VALUE_ERRORS = {"padding mode", "unknown algo", "winograd 5x5"}


@pytest.mark.parametrize("name", [n for n in CONV_CASES if CONV_CASES[n][1] is ValueError
                                  and n not in _OWN_VALUE_ERRORS]
                         + [f"pool: {n}" for n in POOL_CASES if POOL_CASES[n][1] is ValueError])
def test_bad_values_raise_what_torch_raises_too(name):
    # torch raises RuntimeError for bad argument values; convbench's error is
    # both that and the ValueError Python code expects.
    call = POOL_CASES[name[6:]][0] if name.startswith("pool: ") else CONV_CASES[name][0]
    with pytest.raises(RuntimeError) as info:
        call()
    assert isinstance(info.value, ValueError)
