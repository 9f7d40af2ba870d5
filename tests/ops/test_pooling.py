"""Pooling: forward against naive loops, backward against finite differences and the tie rule, errors,
on every implementation (the `device` fixture), and which implementation the dispatcher picks."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minires as mr
import minires.functional as F
from minires import dispatch
from minires.functional.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from minires.kernels.cpu.pooling import AdaptiveAvgPool2dCPU, AvgPool2dCPU, MaxPool2dCPU
from minires.kernels.cuda.pooling import AdaptiveAvgPool2dCUDA, MaxPool2dCUDA
from minires.testing import distinct_arrays, pool_configs

fixture_ok = settings(suppress_health_check=[*settings().suppress_health_check, HealthCheck.function_scoped_fixture])


def naive_pool(x, kernel_size, stride, padding, kind):
    """Loop over windows of the padded input; returns (out, argmax as flat index into x or -1)."""
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
    OH, OW = (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1
    out = np.zeros((N, C, OH, OW))
    arg = -np.ones((N, C, OH, OW), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    best, where, total = -math.inf, -1, 0.0
                    for i in range(KH):
                        for j in range(KW):
                            h, w = oh * SH - PH + i, ow * SW - PW + j
                            inside = 0 <= h < H and 0 <= w < W
                            v = x[n, c, h, w] if inside else (-math.inf if kind == "max" else 0.0)
                            total += v
                            if v > best or math.isnan(v):  # PyTorch: `val > max || isnan(val)`
                                best, where = v, (n * C + c) * H * W + h * W + w if inside else -1
                    out[n, c, oh, ow] = best if kind == "max" else total / (KH * KW)
                    arg[n, c, oh, ow] = where
    return out, arg


def naive_adaptive_avg(x, OH, OW):
    N, C, H, W = x.shape
    out = np.zeros((N, C, OH, OW))
    for i in range(OH):
        h0, h1 = math.floor(i * H / OH), math.ceil((i + 1) * H / OH)
        for j in range(OW):
            w0, w1 = math.floor(j * W / OW), math.ceil((j + 1) * W / OW)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


@fixture_ok
@given(cfg=pool_configs(), seed=st.integers(0, 2**16))
def test_max_and_avg_forward_match_naive(device, cfg, seed):
    x = np.random.default_rng(seed).standard_normal(cfg.input_shape)
    t = mr.tensor(x, device=device)
    for kind, fn in (("max", F.max_pool2d), ("avg", F.avg_pool2d)):
        out = fn(t, **cfg.kwargs())
        assert out.shape == cfg.output_shape
        expected, _ = naive_pool(x, cfg.kernel_size, cfg.stride, cfg.padding, kind)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


@fixture_ok
@given(cfg=pool_configs(max_size=6), data=st.data())
def test_gradcheck_max_pool_away_from_ties(device, cfg, data):
    x = data.draw(distinct_arrays(cfg.input_shape, margin=1e-3))
    t = mr.tensor(x, device=device, requires_grad=True)
    assert mr.gradcheck(lambda t: F.max_pool2d(t, **cfg.kwargs()), [t])


@fixture_ok
@given(cfg=pool_configs(max_size=6), seed=st.integers(0, 2**16))
def test_gradcheck_avg_pool(device, cfg, seed):
    t = mr.tensor(np.random.default_rng(seed).standard_normal(cfg.input_shape), device=device, requires_grad=True)
    assert mr.gradcheck(lambda t: F.avg_pool2d(t, **cfg.kwargs()), [t])


@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0)])
def test_max_pool_ties_route_to_first_max(device, kernel, stride, padding):
    # Integer-valued input with many ties: the gradient must follow PyTorch's first-max rule.
    x = np.random.default_rng(3).integers(0, 3, size=(2, 2, 7, 6)).astype(np.float64)
    t = mr.tensor(x, device=device, requires_grad=True)
    out = F.max_pool2d(t, kernel, stride, padding)
    g = np.random.default_rng(4).standard_normal(out.shape)
    out.backward(mr.tensor(g, device=device))
    _, arg = naive_pool(x, (kernel, kernel), (stride, stride), (padding, padding), "max")
    expected = np.zeros(x.size)
    np.add.at(expected, arg.ravel(), g.ravel())  # test-side reference only
    np.testing.assert_allclose(t.grad.numpy().ravel(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, out_size", [((2, 3, 7, 5), (3, 2)), ((1, 2, 4, 4), 1), ((1, 2, 5, 6), (5, 6)),
                                             ((1, 1, 3, 4), (5, 7)), ((2, 2, 8, 8), (3, None))])
def test_adaptive_avg_pool_matches_bins_and_gradcheck(device, shape, out_size):
    x = np.random.default_rng(5).standard_normal(shape)
    t = mr.tensor(x, device=device, requires_grad=True)
    out = F.adaptive_avg_pool2d(t, out_size)
    OH, OW = (out_size, out_size) if isinstance(out_size, int) else out_size
    OW = shape[3] if OW is None else OW
    np.testing.assert_allclose(out.numpy(), naive_adaptive_avg(x, OH, OW), rtol=1e-12, atol=1e-12)
    assert mr.gradcheck(lambda t: F.adaptive_avg_pool2d(t, out_size), [t])


def test_global_average_pool_gradient_is_uniform(device):
    t = mr.tensor(np.random.default_rng(6).standard_normal((2, 3, 4, 5)), device=device, requires_grad=True)
    F.adaptive_avg_pool2d(t, 1).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), np.full((2, 3, 4, 5), 1 / 20))


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
def test_global_average_pool_in_every_memory_layout(device, layout):
    # Conv outputs are NCHW views of NHWC memory; each layout takes its own path in the kernel.
    rng = np.random.default_rng(8)
    base = rng.standard_normal((3, 4, 10 if layout == "strided" else 5, 6))
    if layout == "channels_last":
        base = np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    leaf = mr.tensor(base, device=device, requires_grad=True)
    t = leaf[:, :, ::2] if layout == "strided" else leaf  # every other row: a strided view
    x = base[:, :, ::2] if layout == "strided" else base
    data = mr.backend.to_numpy(t.array) if device == "cpu" else x
    assert data.flags.c_contiguous == (layout == "nchw")  # the layout reached the op
    out = F.adaptive_avg_pool2d(t, 1)
    np.testing.assert_allclose(out.numpy(), x.sum(axis=(2, 3), keepdims=True) / 30, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal((3, 4, 1, 1))
    out.backward(mr.tensor(g, device=device))
    expected = np.zeros(base.shape)
    (expected[:, :, ::2] if layout == "strided" else expected)[...] = g / 30  # zero on the skipped rows
    np.testing.assert_allclose(leaf.grad.numpy(), expected, rtol=1e-12, atol=0)


def test_float32_stays_float32(device):
    x = mr.tensor(np.random.default_rng(7).standard_normal((2, 3, 8, 8)).astype(np.float32), device=device,
                  requires_grad=True)
    for fn in (lambda t: F.max_pool2d(t, 3, 2, 1), lambda t: F.avg_pool2d(t, 2),
               lambda t: F.adaptive_avg_pool2d(t, 1), lambda t: F.adaptive_avg_pool2d(t, (3, 2))):
        x.grad = None
        out = fn(x)
        assert out.dtype == np.float32
        out.sum().backward()
        assert x.grad.dtype == np.float32


def test_nan_propagates(device):
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    t = mr.tensor(x, device=device, requires_grad=True)
    for fn in (lambda t: F.max_pool2d(t, 2), lambda t: F.avg_pool2d(t, 2)):
        out = fn(t).numpy()
        assert np.isnan(out[0, 0, 0, 0]) and not np.isnan(out.ravel()[1:]).any()
    assert np.isnan(F.adaptive_avg_pool2d(t, 1).numpy()).all()
    F.max_pool2d(t, 2).sum().backward()
    assert t.grad.numpy()[0, 0, 0, 1] == 1.0  # the NaN was the "max" of its window


def test_max_pool_with_more_than_127_offsets(device):
    # 12 x 11 = 132 kernel offsets: the CPU kernel's argmax no longer fits int8.
    x = np.random.default_rng(9).integers(0, 4, size=(2, 2, 13, 12)).astype(np.float64)
    t = mr.tensor(x, device=device, requires_grad=True)
    out = F.max_pool2d(t, (12, 11), 1)
    expected, arg = naive_pool(x, (12, 11), (1, 1), (0, 0), "max")
    np.testing.assert_array_equal(out.numpy(), expected)
    g = np.random.default_rng(10).standard_normal(out.shape)
    out.backward(mr.tensor(g, device=device))
    dx = np.zeros(x.size)
    np.add.at(dx, arg.ravel(), g.ravel())
    np.testing.assert_allclose(t.grad.numpy().ravel(), dx, rtol=1e-12, atol=1e-12)


def test_max_pool_backward_of_a_non_finite_gradient(device):
    # inf goes to each window's maximum and nowhere else (inf * False would put NaN in the other pixels).
    x = np.arange(32.0).reshape(1, 2, 4, 4)
    t = mr.tensor(x, device=device, requires_grad=True)
    g = np.full((1, 2, 2, 2), np.inf)
    g[0, 1, 1, 1] = -np.inf
    F.max_pool2d(t, 2).backward(mr.tensor(g, device=device))
    expected = np.zeros(x.shape)
    expected[:, :, 1::2, 1::2] = g  # the max of each 2x2 window of an increasing ramp is its last pixel
    np.testing.assert_array_equal(t.grad.numpy(), expected)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pools_of_a_channels_last_view(device, kind):
    # Conv outputs are NCHW views of NHWC memory: the pools take them as they are.
    fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    nhwc = np.random.default_rng(11).standard_normal((2, 5, 6, 3))
    expected, _ = naive_pool(nhwc.transpose(0, 3, 1, 2), (3, 3), (2, 2), (1, 1), kind)
    xh = mr.tensor(nhwc, device=device, requires_grad=True)
    np.testing.assert_allclose(fn(xh.permute(0, 3, 1, 2), 3, 2, 1).numpy(), expected, rtol=1e-12, atol=1e-12)
    assert mr.gradcheck(lambda xh: fn(xh.permute(0, 3, 1, 2), 3, 2, 1), [xh])


@pytest.mark.parametrize("out_size", [(1, 4), (2, 3), 1])
def test_adaptive_avg_pool_keeps_non_finite_values_in_their_bins(device, out_size):
    x = np.random.default_rng(12).standard_normal((2, 2, 3, 4))
    x[0, 0, 0, 0], x[1, 1, 2, 3] = np.nan, np.inf
    out = F.adaptive_avg_pool2d(mr.tensor(x, device=device), out_size).numpy()
    OH, OW = (1, 1) if out_size == 1 else out_size
    with np.errstate(invalid="ignore"):
        expected = naive_adaptive_avg(x, OH, OW)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)  # NaN (and inf) exactly where expected has them


@pytest.mark.parametrize("fn, out_shape", [(lambda t: F.max_pool2d(t, 3, 2, 1), (0, 3, 3, 3)),
                                           (lambda t: F.avg_pool2d(t, 2), (0, 3, 2, 2)),
                                           (lambda t: F.adaptive_avg_pool2d(t, (2, 3)), (0, 3, 2, 3)),
                                           (lambda t: F.adaptive_avg_pool2d(t, 1), (0, 3, 1, 1))])
def test_empty_batch_gives_an_empty_output(device, fn, out_shape):
    t = mr.tensor(np.zeros((0, 3, 5, 5)), device=device, requires_grad=True)
    out = fn(t)
    assert out.shape == out_shape and out.dtype == np.float64
    out.sum().backward()
    assert t.grad.shape == (0, 3, 5, 5)


def _ran(x):
    """The Function classes that ran max_pool2d, avg_pool2d and adaptive_avg_pool2d (global and 2x3) on x."""
    outs = (F.max_pool2d(x, 2), F.avg_pool2d(x, 2), F.adaptive_avg_pool2d(x, 1), F.adaptive_avg_pool2d(x, (2, 3)))
    return [type(out.grad_fn) for out in outs]


@dispatch.use_impl("fast")  # even in a run with MINIRES_IMPL=reference
def test_dispatch_runs_the_cpu_fast_paths_and_the_references_when_asked():
    x = mr.randn(2, 3, 4, 4, requires_grad=True)
    params = {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0)}
    assert dispatch.choose(MaxPool2d, (x,), params) is MaxPool2dCPU
    assert _ran(x) == [MaxPool2dCPU, AvgPool2dCPU, AdaptiveAvgPool2dCPU, AdaptiveAvgPool2dCPU]
    with dispatch.use_impl("reference"):
        assert dispatch.choose(MaxPool2d, (x,), params) is MaxPool2d
        assert _ran(x) == [MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveAvgPool2d]
    # An empty batch: the reference (the kernel's NaN probe needs values).
    assert type(F.max_pool2d(mr.zeros(0, 3, 4, 4, requires_grad=True), 2).grad_fn) is MaxPool2d


@dispatch.use_impl("fast")  # even in a run with MINIRES_IMPL=reference
def test_dispatch_runs_the_cuda_max_pool_kernel(standin):
    x = mr.randn(2, 3, 4, 4, device="cuda", requires_grad=True)
    # avg and non-global adaptive pools have no CUDA fast path: their references run on the device arrays.
    assert _ran(x) == [MaxPool2dCUDA, AvgPool2d, AdaptiveAvgPool2dCUDA, AdaptiveAvgPool2d]
    with dispatch.use_impl("reference"):
        assert _ran(x)[0] is MaxPool2d
    # An empty batch: the reference (no kernel launch with an empty grid).
    assert type(F.max_pool2d(mr.zeros(0, 3, 4, 4, device="cuda", requires_grad=True), 2).grad_fn) is MaxPool2d


def _t(shape, dtype=np.float64):
    return mr.tensor(np.zeros(shape, dtype=dtype))


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("args, exc, words", [
    ((_t((3, 4, 4)), 2), ValueError, ["input", "(3, 4, 4)"]),
    ((_t((1, 1, 4, 4)), 0), ValueError, ["kernel_size"]),
    ((_t((1, 1, 4, 4)), 2, 0), ValueError, ["stride"]),
    ((_t((1, 1, 4, 4)), 2, 2, -1), ValueError, ["padding"]),
    ((_t((1, 1, 4, 4)), 3, 1, 2), ValueError, ["padding", "half"]),
    ((_t((1, 1, 2, 4)), 3), ValueError, ["kernel", "(1, 1, 2, 4)"]),
    ((_t((1, 1, 4, 4)), 2.5), TypeError, ["kernel_size"]),
    ((_t((1, 1, 4, 4), np.int64), 2), TypeError, ["input", "int64"]),
])
def test_pool_bad_input_raises(name, args, exc, words):
    with pytest.raises(exc) as info:
        getattr(F, name)(*args)
    msg = str(info.value)
    assert name in msg
    for word in words:
        assert word in msg, msg


@pytest.mark.parametrize("args, exc, words", [
    ((_t((4, 4)), 1), ValueError, ["input", "(4, 4)"]),
    ((_t((1, 1, 4, 4)), 0), ValueError, ["output_size"]),
    ((_t((1, 1, 4, 4)), (2, 2, 2)), TypeError, ["output_size"]),
    ((_t((1, 1, 4, 4), np.int32), 1), TypeError, ["input", "int32"]),
])
def test_adaptive_bad_input_raises(args, exc, words):
    with pytest.raises(exc) as info:
        F.adaptive_avg_pool2d(*args)
    msg = str(info.value)
    assert "adaptive_avg_pool2d" in msg
    for word in words:
        assert word in msg, msg


@dispatch.use_impl("fast")  # even in a run with MINIRES_IMPL=reference
def test_global_pool_on_cuda_keeps_a_channels_last_layout(standin):
    """The ResNet head on the GPU: a channels-last conv output gets a channels-last gradient back."""
    xh = np.random.default_rng(3).standard_normal((2, 4, 4, 5))              # (N, H, W, C) memory
    x = mr.tensor(xh, device="cuda").permute(0, 3, 1, 2)                       # (N, C, H, W) view
    x.requires_grad_(True)
    out = F.adaptive_avg_pool2d(x, 1)
    assert type(out.grad_fn) is AdaptiveAvgPool2dCUDA
    np.testing.assert_allclose(out.numpy(), naive_adaptive_avg(xh.transpose(0, 3, 1, 2), 1, 1), rtol=1e-12)
    g = np.random.default_rng(4).standard_normal((2, 5, 1, 1))
    dx = out.grad_fn.backward(mr.tensor(g, device="cuda").array)  # what reaches the op below (a leaf's .grad is a copy)
    assert dx.transpose(0, 2, 3, 1).flags.c_contiguous                          # laid out like x
    np.testing.assert_allclose(mr.Tensor(dx).numpy(), np.broadcast_to(g / 16, (2, 5, 4, 4)), rtol=1e-12)


@pytest.mark.parametrize("out_size", [(2, 3), (3, 1)])
def test_adaptive_avg_pool_backward_keeps_a_non_finite_gradient_in_its_bins(device, out_size):
    """dx[pixel] = sum over the bins holding it of g[bin] / bin size: a NaN or inf in g reaches only its bins."""
    x = mr.tensor(np.random.default_rng(5).standard_normal((2, 2, 5, 4)), device=device, requires_grad=True)
    g = np.random.default_rng(6).standard_normal((2, 2) + out_size)
    g[0, 0, 0, 0], g[1, 1, -1, -1] = np.nan, np.inf
    F.adaptive_avg_pool2d(x, out_size).backward(mr.tensor(g, device=device))
    N, C, H, W = x.shape
    expected = np.zeros((N, C, H, W))
    for i in range(out_size[0]):
        h0, h1 = math.floor(i * H / out_size[0]), math.ceil((i + 1) * H / out_size[0])
        for j in range(out_size[1]):
            w0, w1 = math.floor(j * W / out_size[1]), math.ceil((j + 1) * W / out_size[1])
            expected[:, :, h0:h1, w0:w1] += g[:, :, i:i + 1, j:j + 1] / ((h1 - h0) * (w1 - w0))
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert np.isfinite(x.grad.numpy()[1, 0]).all()                             # untouched by the NaN and inf


def _stale_heap(shape, value):
    """Leave a freed array of `shape` full of `value` behind, so that a later np.empty of that size likely
    reuses it: a kernel that skips writing part of its output then shows `value` instead of a lucky 0."""
    a = np.full(shape, value)
    del a


@pytest.mark.parametrize("shape, kernel, padding",
                         [((2, 3, 7, 9), 2, 0), ((3, 2, 8, 7), 3, 0), ((2, 3, 7, 6), 2, 1)])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_max_pool_gradient_is_zero_past_the_last_window(device, shape, kernel, padding, layout):
    # stride = kernel: the windows tile the top-left of the input and the last rows/columns get no gradient
    rng = np.random.default_rng(13)
    x = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.5 - 10  # distinct values: no ties
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    t = mr.tensor(x, device=device, requires_grad=True)
    out = F.max_pool2d(t, kernel, kernel, padding)
    expected, arg = naive_pool(x, (kernel,) * 2, (kernel,) * 2, (padding,) * 2, "max")
    np.testing.assert_array_equal(out.numpy(), expected)
    g = rng.standard_normal(out.shape)
    _stale_heap(shape, 7.0)
    out.backward(mr.tensor(g, device=device))
    dx = np.zeros(x.size)
    np.add.at(dx, arg.ravel()[arg.ravel() >= 0], g.ravel()[arg.ravel() >= 0])
    np.testing.assert_array_equal(t.grad.numpy().ravel(order="C"), dx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_nan_in_some_images_of_a_split_batch(device, dtype):
    # The NaN check runs per block of the batch, on the output: only blocks with a NaN in a window run the
    # isnan pass again; a NaN outside every window (the 5th row of a 2x2 pool of 5 rows) is ignored.
    rng = np.random.default_rng(14)
    x = rng.permutation(6 * 3 * 5 * 5).reshape(6, 3, 5, 5).astype(dtype)
    x[1, 0, 0, 1] = np.nan  # a window's second offset, after a smaller first
    x[1, 2, 2, 2] = x[1, 2, 3, 3] = np.nan  # two NaNs in one window: the later one is its "max"
    x[4, 1, 3, 0] = np.nan  # a window's third offset
    x[5, 0, 4, 2] = np.nan  # outside every window
    t = mr.tensor(x, device=device, requires_grad=True)
    out = F.max_pool2d(t, 2)
    expected, arg = naive_pool(x.astype(np.float64), (2, 2), (2, 2), (0, 0), "max")
    np.testing.assert_array_equal(out.numpy(), expected.astype(dtype))  # NaN == NaN here
    assert np.isnan(out.numpy()).sum() == 3
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(mr.tensor(g, device=device))
    dx = np.zeros(x.size)
    np.add.at(dx, arg.ravel(), g.ravel().astype(np.float64))
    np.testing.assert_array_equal(t.grad.numpy().ravel(), dx.astype(dtype))
