"""Grouped and depthwise conv2d on CuPy arrays (minires/kernels/cuda/grouped.py) without a GPU.

Two routes: NumPy arrays sent through the CUDA classes with kernels.cu run by the emulator (tiny
blocks and grids so every grid-stride loop wraps; 32- and 64-bit index builds), and the CuPy
stand-in end to end (device "cuda", dispatch, transfers). Forward against tests/ops/test_conv.py's
naive loops; backward against float64 finite differences (mr.gradcheck) and, for float32 and
float16, against the chain rule written as loops (naive_conv2d_backward below).
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import minires as mr
import minires.functional as F
from minires import dispatch, tuning
from minires.functional.conv import Conv2d
from minires.kernels import registry
from minires.kernels.cuda import launcher
from minires.kernels.cuda.conv import Conv2dCUDA
from minires.kernels.cuda.grouped import DepthwiseConv2dCUDA, GroupedConv2dCUDA

from cuda_emulator import EmulatedLauncher, compiler

_spec = importlib.util.spec_from_file_location("conv_loops", Path(__file__).parents[1] / "ops" / "test_conv.py")
_conv_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conv_tests)
naive_conv2d = _conv_tests.naive_conv2d  # one naive forward for every conv test

pytestmark = pytest.mark.skipif(compiler() is None, reason="needs a C++ compiler to emulate the kernels")
MINE = (DepthwiseConv2dCUDA, GroupedConv2dCUDA)


def examples(n):
    """Hypothesis settings: n examples; the fixtures (patched dispatch, launcher) hold for all of them."""
    return settings(max_examples=n, suppress_health_check=[*settings().suppress_health_check,
                                                            HealthCheck.function_scoped_fixture])


def naive_conv2d_backward(x, w, g, stride, padding, dilation, groups):
    """(dx, dw) of sum(conv(x, w) * g) by the chain rule, one loop over every product of the forward."""
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
    xpad = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    dxpad, dw = np.zeros_like(xpad), np.zeros((O, Cg, KH, KW))
    Og = O // groups
    for n, o, oh, ow in np.ndindex(*g.shape):
        c0 = (o // Og) * Cg
        for c, i, j in np.ndindex(Cg, KH, KW):
            h, v = oh * SH + i * DH, ow * SW + j * DW
            dxpad[n, c0 + c, h, v] += g[n, o, oh, ow] * w[o, c, i, j]
            dw[o, c, i, j] += g[n, o, oh, ow] * xpad[n, c0 + c, h, v]
    return dxpad[:, :, PH:PH + H, PW:PW + W], dw


@st.composite
def grouped_configs(draw, depthwise=None):
    """A conv2d call with groups > 1: depthwise (Cg = 1, channel multiplier Og) or grouped (Cg = 2..3)."""
    G = draw(st.integers(2, 3))
    dw = draw(st.booleans()) if depthwise is None else depthwise
    Cg, Og = (1 if dw else draw(st.integers(2, 3))), draw(st.integers(1, 2))
    K = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 1)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    size = [draw(st.integers(max(1, dilation[a] * (K[a] - 1) + 1 - 2 * padding[a]), 6)) for a in (0, 1)]
    return dict(x=(draw(st.integers(1, 2)), G * Cg, *size), w=(G * Og, Cg, *K), bias=draw(st.booleans()),
                cl=draw(st.booleans()), kw=dict(stride=stride, padding=padding, dilation=dilation, groups=G))


def _layout(a, cl):
    """a as C-order NCHW, or as an NCHW view of channels-last memory."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) if cl else np.ascontiguousarray(a)


def _inputs(cfg, rng, dtype=np.float64, device="cpu"):
    x = mr.tensor(_layout(rng.standard_normal(cfg["x"]).astype(dtype), cfg["cl"]), device=device, requires_grad=True)
    w = mr.tensor(rng.standard_normal(cfg["w"]).astype(dtype), device=device, requires_grad=True)
    b = rng.standard_normal(cfg["w"][0]).astype(dtype)
    return x, w, (mr.tensor(b, device=device, requires_grad=True) if cfg["bias"] else None)


def _expected_class(cfg):
    return DepthwiseConv2dCUDA if cfg["w"][1] == 1 else GroupedConv2dCUDA


@pytest.fixture(scope="module", params=["idx32", "idx64"])
def launch(request):
    """The emulated launcher (blocks of 7 threads, at most 5 blocks), with 32-bit and with 64-bit indices."""
    limit = launcher.IDX32_LIMIT
    if request.param == "idx64":
        launcher.IDX32_LIMIT = 0
    try:
        yield EmulatedLauncher()
    finally:
        launcher.IDX32_LIMIT = limit


@pytest.fixture
def kernels(monkeypatch, launch):
    """conv2d on NumPy arrays through the CUDA classes only, their kernels run by the emulator."""
    monkeypatch.setattr(launcher, "enabled", lambda xp, dtype: dtype in (np.float16, np.float32, np.float64))
    monkeypatch.setattr(launcher, "cupy_launcher", lambda: launch)
    monkeypatch.setattr(dispatch, "_others", {"conv2d": (Conv2dCUDA,) + MINE})
    with dispatch.use_impl("fast"):
        yield launch


@pytest.fixture
def standin_table(standin):
    """The stand-in, with the package's table plus these classes (a no-op once the registry lists them)."""
    table = dict(registry.FAST)
    table["conv2d"] = tuple(c for c in table["conv2d"] if c not in MINE) + MINE
    dispatch.install(table)
    try:
        with dispatch.use_impl("fast"):
            yield standin
    finally:
        registry.install()


def _ran(launch, before):
    return {name for name, _, _ in launch.launches[before:]}


@examples(30)
@given(cfg=grouped_configs(), seed=st.integers(0, 2**16), dtype=st.sampled_from([np.float32, np.float64]))
def test_forward_matches_naive_loops(kernels, cfg, seed, dtype):
    x, w, b = _inputs(cfg, np.random.default_rng(seed), dtype)
    before = len(kernels.launches)
    out = F.conv2d(x, w, b, **cfg["kw"])
    assert type(out.grad_fn) is _expected_class(cfg) and out.dtype == dtype
    assert _ran(kernels, before) == ({"depthwise_forward"} if cfg["w"][1] == 1 else {"im2col"})
    want = naive_conv2d(x.numpy().astype(np.float64), w.numpy().astype(np.float64),
                        None if b is None else b.numpy().astype(np.float64), **cfg["kw"])
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out.numpy(), want, rtol=tol, atol=tol)


def _cfg(x, w, bias, cl, stride, padding, dilation, groups):
    return dict(x=x, w=w, bias=bias, cl=cl, kw=dict(stride=stride, padding=padding, dilation=dilation, groups=groups))


_BRANCHES = [  # grouped: flip (stride 1), col2im (stride 2), col2im at stride 1 (padding beyond the span); depthwise
    _cfg((2, 4, 5, 5), (6, 2, 3, 3), True, False, (1, 1), (1, 1), (1, 1), 2),
    _cfg((2, 6, 5, 4), (3, 2, 3, 2), False, True, (2, 1), (1, 0), (1, 2), 3),
    _cfg((1, 4, 3, 4), (4, 2, 1, 1), True, True, (1, 1), (1, 1), (1, 1), 2),
    _cfg((2, 3, 6, 5), (6, 1, 3, 3), True, True, (2, 2), (1, 2), (2, 1), 3),
]


@examples(12)
@given(cfg=grouped_configs(), seed=st.integers(0, 2**16))
@example(cfg=_BRANCHES[0], seed=0)
@example(cfg=_BRANCHES[1], seed=1)
@example(cfg=_BRANCHES[2], seed=2)
@example(cfg=_BRANCHES[3], seed=3)
def test_backward_passes_gradcheck(kernels, cfg, seed):
    x, w, b = _inputs(cfg, np.random.default_rng(seed))
    before = len(kernels.launches)
    assert mr.gradcheck(lambda *a: F.conv2d(*a, **cfg["kw"]), [t for t in (x, w, b) if t is not None])
    ran = _ran(kernels, before)
    if cfg["w"][1] == 1:
        assert {"depthwise_backward_input", "depthwise_backward_weight"} <= ran
    else:  # stride 1 takes the flipped kernel where its padding d*(k-1) - p is >= 0, else col2im
        (KH, KW), (PH, PW), (DH, DW) = cfg["w"][2:], cfg["kw"]["padding"], cfg["kw"]["dilation"]
        flip = cfg["kw"]["stride"] == (1, 1) and PH <= DH * (KH - 1) and PW <= DW * (KW - 1)
        assert "im2col" in ran and ("col2im" in ran) != flip


@examples(15)
@given(cfg=grouped_configs(), seed=st.integers(0, 2**16), dtype=st.sampled_from([np.float16, np.float32]))
def test_low_precision_backward_matches_the_chain_rule_in_float64(kernels, cfg, seed, dtype):
    """float32 and float16 gradients against the loops in float64 (float16: the kernels accumulate in float32)."""
    rng = np.random.default_rng(seed)
    x, w, b = _inputs(cfg, rng, dtype)
    out = F.conv2d(x, w, b, **cfg["kw"])
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(mr.tensor(g))
    dx, dw = naive_conv2d_backward(x.numpy().astype(np.float64), w.numpy().astype(np.float64),
                                   g.astype(np.float64), **{k: v for k, v in cfg["kw"].items()})
    assert x.grad.dtype == w.grad.dtype == dtype
    # the error bound grows with the number of terms summed; float16 also rounds each input product's result
    tol = 2e-2 if dtype == np.float16 else 1e-4
    scale = 1 + np.sqrt(g.size / g.shape[1])
    np.testing.assert_allclose(x.grad.numpy(), dx, rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(w.grad.numpy(), dw, rtol=tol, atol=tol * scale * np.sqrt(g.size))
    if b is not None:
        np.testing.assert_allclose(b.grad.numpy(), g.astype(np.float64).sum(axis=(0, 2, 3)), rtol=tol,
                                   atol=tol * scale)


@pytest.mark.parametrize("slices", ["one", "one-per-row"])
@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels-last"])
def test_depthwise_weight_gradient_for_any_number_of_partial_sums(kernels, monkeypatch, slices, cl):
    """dw's S partial sums per tap: one over every output row, or one per row (N*OH of them)."""
    if slices == "one":
        monkeypatch.setattr(tuning, "STAT_THREADS", 1)
    else:
        monkeypatch.setattr(tuning, "STAT_MIN_VALUES", 1)
    rng = np.random.default_rng(5)
    kw = dict(stride=(2, 1), padding=(2, 1), dilation=(1, 2), groups=3)
    x = mr.tensor(_layout(rng.standard_normal((3, 3, 7, 6)), cl), requires_grad=True)
    w = mr.tensor(rng.standard_normal((6, 1, 3, 3)), requires_grad=True)
    out = F.conv2d(x, w, **kw)
    g = rng.standard_normal(out.shape)
    out.backward(mr.tensor(g))
    dx, dw = naive_conv2d_backward(x.numpy(), w.numpy(), g, **kw)
    np.testing.assert_allclose(w.grad.numpy(), dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), dx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels-last"])
def test_depthwise_output_and_dx_keep_the_input_layout(kernels, cl):
    rng = np.random.default_rng(4)
    x = mr.tensor(_layout(rng.standard_normal((2, 3, 5, 5)), cl), requires_grad=True)
    w = mr.tensor(rng.standard_normal((6, 1, 3, 3)), requires_grad=True)
    out = F.conv2d(x, w, padding=1, groups=3)
    assert out.array.transpose(0, 2, 3, 1).flags.c_contiguous == cl and out.array.flags.c_contiguous != cl
    dx, dw, _ = out.grad_fn.backward(rng.standard_normal(out.shape))  # what the Function hands back
    assert dx.transpose(0, 2, 3, 1).flags.c_contiguous == cl and dx.flags.c_contiguous != cl
    assert dw.shape == (6, 1, 3, 3) and dw.flags.c_contiguous


@pytest.mark.parametrize("kind, w_shape, groups", [("depthwise", (8, 1, 3, 3), 4), ("grouped", (6, 2, 3, 3), 2)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels-last"])
def test_standin_runs_these_classes_for_grouped_calls_and_they_pass_gradcheck(standin_table, kind, w_shape,
                                                                              groups, stride, cl):
    rng = np.random.default_rng(stride)
    xa = _layout(rng.standard_normal((2, 4, 6, 5)), cl)
    x = mr.tensor(xa, device="cuda", requires_grad=True)
    w = mr.tensor(rng.standard_normal(w_shape), device="cuda", requires_grad=True)
    b = mr.tensor(rng.standard_normal(w_shape[0]), device="cuda", requires_grad=True)
    kw = dict(stride=stride, padding=1, groups=groups)
    want = DepthwiseConv2dCUDA if kind == "depthwise" else GroupedConv2dCUDA
    assert dispatch.choose(Conv2d, [x, w, b], dict(kw, stride=(stride,) * 2, padding=(1, 1), dilation=(1, 1))) is want
    out = F.conv2d(x, w, b, **kw)
    assert type(out.grad_fn) is want and out.device == x.device
    np.testing.assert_allclose(out.numpy(), naive_conv2d(xa, w.numpy(), b.numpy(), (stride,) * 2, (1, 1), (1, 1),
                                                         groups), rtol=1e-12, atol=1e-12)
    assert mr.gradcheck(lambda *a: F.conv2d(*a, **kw), [x, w, b])
    x16 = mr.tensor(xa.astype(np.float16), device="cuda", requires_grad=True)  # float16 takes the same class
    assert type(F.conv2d(x16, w.detach().to(dtype=mr.float16), groups=groups).grad_fn) is want


def test_groups_1_and_other_dtypes_go_elsewhere(standin_table):
    x = standin_table.zeros((2, 4, 5, 5))
    params = dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1))
    assert dispatch.choose(Conv2d, [x, standin_table.zeros((4, 4, 3, 3)), None], dict(params, groups=1)) is Conv2dCUDA
    xi = standin_table.zeros((2, 4, 5, 5), dtype=np.int32)
    assert not DepthwiseConv2dCUDA.supports(xi, standin_table.zeros((4, 1, 3, 3), dtype=np.int32), groups=4)
    assert not GroupedConv2dCUDA.supports(np.zeros((2, 4, 5, 5)), np.zeros((4, 2, 3, 3)), groups=2)  # NumPy: CPU
    empty = standin_table.zeros((0, 4, 5, 5))
    assert dispatch.choose(Conv2d, [empty, standin_table.zeros((4, 2, 3, 3)), None], dict(params, groups=2)) is not \
        GroupedConv2dCUDA


@pytest.mark.parametrize("x_shape, w_shape, groups, numbers", [
    ((1, 6, 5, 5), (8, 1, 3, 3), 4, ["6 channels", "groups=4"]),     # input channels not divisible by groups
    ((1, 6, 5, 5), (6, 2, 3, 3), 4, ["6 channels", "groups=4"]),
    ((1, 4, 5, 5), (6, 1, 3, 3), 4, ["out channels 6", "groups=4"]),  # output channels not divisible by groups
])
def test_channels_not_divisible_by_groups_is_one_error_naming_both(device, x_shape, w_shape, groups, numbers):
    x, w = mr.zeros(*x_shape, device=device), mr.zeros(*w_shape, device=device)
    with pytest.raises(ValueError) as info:
        F.conv2d(x, w, groups=groups)
    msg = str(info.value)
    assert msg.startswith("conv2d:") and all(n in msg for n in numbers), msg


@pytest.mark.gpu
@pytest.mark.parametrize("kind, w_shape, groups", [("depthwise", (64, 1, 3, 3), 32), ("grouped", (64, 8, 3, 3), 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_grouped_kernels_on_the_gpu_match_the_loops(kind, w_shape, groups, dtype):
    rng = np.random.default_rng(0)
    xa = _layout(rng.standard_normal((3, 32, 9, 8)), True).astype(dtype)
    wa = rng.standard_normal(w_shape).astype(dtype)
    x = mr.tensor(xa, device="cuda", requires_grad=True)
    w = mr.tensor(wa, device="cuda", requires_grad=True)
    with dispatch.use_impl("fast"):
        out = F.conv2d(x, w, stride=2, padding=1, groups=groups)
        assert type(out.grad_fn) in MINE
        g = rng.standard_normal(out.shape).astype(dtype)
        out.backward(mr.tensor(g, device="cuda"))
    f64 = np.float64
    tol = 2e-2 if dtype == np.float16 else 1e-4
    np.testing.assert_allclose(out.numpy(), naive_conv2d(xa.astype(f64), wa.astype(f64), None, (2, 2), (1, 1), (1, 1),
                                                         groups), rtol=tol, atol=tol * 10)
    dx, dw = naive_conv2d_backward(xa.astype(f64), wa.astype(f64), g.astype(f64), (2, 2), (1, 1), (1, 1), groups)
    np.testing.assert_allclose(x.grad.numpy(), dx, rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(w.grad.numpy(), dw, rtol=tol, atol=tol * 100)
