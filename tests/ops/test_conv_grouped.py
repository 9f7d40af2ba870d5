"""The grouped and depthwise conv2d fast paths (kernels/cpu/grouped.py, depthwise.py): which calls they take,
forward against naive loops, backward against float64 finite differences on the fast path itself, both
input layouts, thread splits, and the one error for channels that do not divide by groups."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minires as mr
import minires.functional as F
from minires import dispatch, parallel, tuning
from minires.functional.conv import Conv2d
from minires.kernels.cpu import depthwise, grouped
from minires.kernels.cpu.conv import Conv2dCPU
from minires.kernels.cpu.depthwise import DepthwiseConv2dCPU
from minires.kernels.cpu.grouped import GroupedConv2dCPU
from test_conv import naive_conv2d  # the direct definition: one dot product per output value

PARAMS = dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1))


@st.composite
def grouped_configs(draw, depthwise_only=False):
    """(x shape, w shape, kwargs) of a conv with groups > 1: depthwise (any multiplier) or 2+ channels per group."""
    G = draw(st.integers(2, 4))
    Cg = 1 if depthwise_only else draw(st.integers(1, 3))                    # Cg == 1: depthwise
    O = G * draw(st.integers(1, 3 if depthwise_only else 2))  # outputs per group (the multiplier)
    KH, KW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    H = draw(st.integers(max(1, dilation[0] * (KH - 1) + 1 - 2 * padding[0]), 6))
    W = draw(st.integers(max(1, dilation[1] * (KW - 1) + 1 - 2 * padding[1]), 6))
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=G)
    return (draw(st.integers(1, 3)), G * Cg, H, W), (O, Cg, KH, KW), kw


def _input(rng, shape, channels_last):
    x = rng.standard_normal(shape)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) if channels_last else x


def _expected_class(w_shape):
    return DepthwiseConv2dCPU if w_shape[1] == 1 else GroupedConv2dCPU


def _check(x_shape, w_shape, kw, channels_last, seed, bias=True, fast_mode=False):
    """Forward against the naive loops and backward against finite differences, on the fast path it must take."""
    rng = np.random.default_rng(seed)
    x = mr.tensor(_input(rng, x_shape, channels_last), requires_grad=True)
    w = mr.tensor(rng.standard_normal(w_shape), requires_grad=True)
    b = mr.tensor(rng.standard_normal(w_shape[0]), requires_grad=True) if bias else None
    out = F.conv2d(x, w, b, **kw)
    assert type(out.grad_fn) is _expected_class(w_shape)
    expected = naive_conv2d(x.numpy(), w.numpy(), None if b is None else b.numpy(), kw["stride"], kw["padding"],
                            kw["dilation"], kw["groups"])
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10)
    inputs = [x, w] + ([b] if bias else [])
    assert mr.gradcheck(lambda *t: F.conv2d(*t, **kw), inputs, fast_mode=fast_mode)


@settings(max_examples=30, deadline=None)
@given(cfg=grouped_configs(depthwise_only=True), channels_last=st.booleans(), seed=st.integers(0, 2**16))
def test_depthwise_matches_naive_loops_and_finite_differences(cfg, channels_last, seed):
    with dispatch.use_impl("fast"):  # MINIRES_IMPL=reference may be set
        _check(*cfg, channels_last, seed)


@settings(max_examples=20, deadline=None)
@given(cfg=grouped_configs(), channels_last=st.booleans(), seed=st.integers(0, 2**16))
def test_grouped_matches_naive_loops_and_finite_differences(cfg, channels_last, seed):
    with dispatch.use_impl("fast"):
        _check(*cfg, channels_last, seed)


@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((3, 6, 7, 6), (6, 1, 3, 3), dict(PARAMS, stride=(2, 2), groups=6)),     # MobileNet-like, stride 2
    ((2, 4, 6, 6), (12, 1, 3, 3), dict(PARAMS, groups=4)),                   # channel multiplier 3
    ((3, 8, 6, 5), (8, 2, 3, 3), dict(PARAMS, groups=4)),                    # blocks of several groups
    ((3, 12, 5, 5), (12, 6, 3, 3), dict(PARAMS, stride=(2, 1), groups=2)),   # 6 channels per group
    ((3, 6, 6, 5), (6, 2, 3, 3), dict(PARAMS, groups=3)),                    # 4-channel blocks: 2 groups + 1 left
    ((3, 6, 7, 7), (9, 2, 3, 3), dict(PARAMS, stride=(2, 2), groups=3)),     # the same, strided dx
])
@pytest.mark.parametrize("chunk", [1, 2])  # images per chunk: with N=3 the last chunk is partial
@pytest.mark.parametrize("block", [16, 4])  # grouped.BLOCK_CHANNELS: 4 leaves a smaller last block
@pytest.mark.parametrize("threads", [1, 3])  # 1: one part runs every chunk; 3: a part per image
def test_threads_and_chunks_match_naive(fast, monkeypatch, x_shape, w_shape, kw, chunk, block, threads):
    monkeypatch.setattr(tuning, "MIN_PART_ELEMENTS", 1)                     # every image may be a part
    monkeypatch.setattr(grouped, "BLOCK_CHANNELS", block)
    monkeypatch.setattr(grouped, "BLOCK_CHANNELS_MAX", max(block, 24 * (block == 16)))
    monkeypatch.setattr(depthwise, "_chunk", lambda N, per_image: chunk)
    monkeypatch.setattr(grouped, "_chunk_images", lambda N, per_image: chunk)
    previous = parallel.get_num_threads()
    parallel.set_num_threads(threads)
    try:
        with parallel.hold_blas():
            for channels_last in (False, True):
                _check(x_shape, w_shape, kw, channels_last, seed=chunk, fast_mode=True)
    finally:
        parallel.set_num_threads(previous)


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_with_an_inf_weight_matches_the_reference_nan_for_nan(fast, stride):
    """The stride-1 dx as a window sum would meet the inf with the zero border (0 * inf); it must not."""
    rng = np.random.default_rng(4)
    x, w, g = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((3, 1, 3, 3)), None
    w[1, 0, 0, 2] = np.inf
    grads = []
    for impl in ("fast", "reference"):
        with dispatch.use_impl(impl), np.errstate(invalid="ignore"):
            xt, wt = mr.tensor(x, requires_grad=True), mr.tensor(w, requires_grad=True)
            out = F.conv2d(xt, wt, stride=stride, padding=1, groups=3)
            assert type(out.grad_fn) is (DepthwiseConv2dCPU if impl == "fast" else Conv2d)
            g = rng.standard_normal(out.shape) if g is None else g
            out.backward(mr.tensor(g))
            grads.append((out.numpy(), xt.grad.numpy(), wt.grad.numpy()))
    for fast_value, reference_value in zip(*grads):
        np.testing.assert_allclose(fast_value, reference_value, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_blocks_merge_whole_groups_up_to_the_limit():
    assert grouped.pieces(46, 8) == [(0, 46, 2)] and grouped.pieces(3, 8) == [(0, 3, 3)]
    assert grouped.pieces(7, 8) == [(0, 6, 2), (6, 7, 1)] and grouped.pieces(19, 8) == [(0, 18, 2), (18, 19, 1)]
    assert grouped.pieces(32, 4) == [(0, 32, 4)] and grouped.pieces(2, 64) == [(0, 2, 1)]
    # the dense block weights are zero outside each group's (Cg, Og) block, and unblock_dw reads them back
    rng = np.random.default_rng(0)
    w = rng.standard_normal((12, 2, 3, 3))                                   # 6 groups of 2 -> 2 outputs
    wb = grouped.block_weights(w, 6, 3)                                      # (2, 9*6, 6)
    assert wb.shape == (2, 54, 6)
    blocks = wb.reshape(2, 3, 3, 3, 2, 3, 2)                                 # (G/b, KH, KW, k, Cg, k', Og)
    for k in range(3):
        for k2 in range(3):
            got = blocks[:, :, :, k, :, k2, :]
            if k != k2:
                assert not got.any()
            else:
                want = w.reshape(2, 3, 2, 2, 3, 3)[:, k].transpose(0, 3, 4, 2, 1)
                np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(grouped.unblock_dw(wb, w.shape, 6, 3), w)


def test_only_requested_gradients_and_float32(fast):
    rng = np.random.default_rng(3)
    for w_shape, G in (((8, 1, 3, 3), 8), ((8, 2, 3, 3), 4)):
        x = mr.tensor(rng.standard_normal((2, 8, 5, 5)).astype(np.float32))
        w = mr.tensor(rng.standard_normal(w_shape).astype(np.float32), requires_grad=True)
        out = F.conv2d(x, w, padding=1, groups=G)
        assert type(out.grad_fn) is _expected_class(w_shape) and out.dtype == np.float32
        g = rng.standard_normal(out.shape).astype(np.float32)
        out.backward(mr.tensor(g))
        assert x.grad is None and w.grad.dtype == np.float32
        # dw[o, c, i, j] = sum over (n, oh, ow) of g[n, o] * xpad[n, group(o)*Cg + c] at the offset
        xpad = np.pad(x.numpy().astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
        Cg, Og = w_shape[1], 8 // G
        expected = np.zeros(w_shape)
        for o in range(8):
            for c in range(Cg):
                for i in range(3):
                    for j in range(3):
                        expected[o, c, i, j] = (g[:, o] * xpad[:, (o // Og) * Cg + c, i:i + 5, j:j + 5]).sum()
        np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_the_output_is_channels_last_and_any_input_layout_is_taken(fast):
    rng = np.random.default_rng(4)
    for w_shape, G in (((6, 1, 3, 3), 6), ((6, 3, 3, 3), 2)):
        w = mr.tensor(rng.standard_normal(w_shape))
        outs = [F.conv2d(mr.tensor(_input(np.random.default_rng(5), (2, 6, 4, 4), cl)), w,
                         padding=1, groups=G) for cl in (False, True)]
        for out in outs:
            assert out.array.transpose(0, 2, 3, 1).flags.c_contiguous   # an NCHW view of NHWC memory
        np.testing.assert_array_equal(outs[0].numpy(), outs[1].numpy())


def test_dispatch_picks_the_fast_paths_only_for_their_calls(fast):
    zeros = lambda x_shape, w_shape, dtype=np.float64: [np.zeros(x_shape, dtype), np.zeros(w_shape, dtype), None]  # noqa: E731
    assert dispatch.choose(Conv2d, zeros((2, 4, 5, 5), (4, 1, 3, 3)), dict(PARAMS, groups=4)) is DepthwiseConv2dCPU
    assert dispatch.choose(Conv2d, zeros((2, 4, 5, 5), (8, 1, 3, 3)), dict(PARAMS, groups=4)) is DepthwiseConv2dCPU
    assert dispatch.choose(Conv2d, zeros((2, 4, 5, 5), (4, 2, 3, 3)), dict(PARAMS, groups=2)) is GroupedConv2dCPU
    assert dispatch.choose(Conv2d, zeros((2, 4, 5, 5), (4, 4, 3, 3)), dict(PARAMS, groups=1)) is Conv2dCPU
    assert dispatch.choose(Conv2d, zeros((2, 1, 5, 5), (3, 1, 3, 3)), dict(PARAMS, groups=1)) is Conv2dCPU
    # float16 keeps Conv2dCPU's float32 GEMMs; an empty batch and MINIRES_IMPL=reference take the reference
    for w_shape, G in (((4, 1, 3, 3), 4), ((4, 2, 3, 3), 2)):
        assert dispatch.choose(Conv2d, zeros((2, 4, 5, 5), w_shape, np.float16), dict(PARAMS, groups=G)) is Conv2dCPU
        assert dispatch.choose(Conv2d, zeros((0, 4, 5, 5), w_shape), dict(PARAMS, groups=G)) is Conv2d
        with dispatch.use_impl("reference"):
            assert dispatch.choose(Conv2d, zeros((2, 4, 5, 5), w_shape), dict(PARAMS, groups=G)) is Conv2d


def test_the_cupy_standin_keeps_the_reference_for_grouped_convs(fast, standin):
    # both fast paths are NumPy code: a device array never reaches them (the CUDA side has its own)
    for w_shape, G in (((4, 1, 3, 3), 4), ((4, 2, 3, 3), 2)):
        inputs = [standin.zeros((2, 4, 5, 5)), standin.zeros(w_shape), None]
        assert dispatch.choose(Conv2d, inputs, dict(PARAMS, groups=G)) not in (DepthwiseConv2dCPU, GroupedConv2dCPU)
        x = mr.tensor(np.random.default_rng(6).standard_normal((1, 4, 4, 4)), device="cuda")
        w = mr.tensor(np.random.default_rng(7).standard_normal(w_shape), device="cuda")
        expected = naive_conv2d(x.numpy(), w.numpy(), None, (1, 1), (1, 1), (1, 1), G)
        np.testing.assert_allclose(F.conv2d(x, w, padding=1, groups=G).numpy(), expected, rtol=1e-10, atol=1e-10)


_BAD = "import numpy as np, minires as mr, minires.functional as F\n" \
       "try:\n    F.conv2d(mr.zeros(1, 6, 5, 5), mr.zeros(4, 2, 3, 3), groups=4)\n" \
       "except ValueError as e:\n    print(e)\n"


def test_channels_that_do_not_divide_by_groups_are_one_error_on_every_implementation(fast):
    messages = []
    for impl in ("fast", "reference"):
        with dispatch.use_impl(impl):
            with pytest.raises(ValueError) as info:
                F.conv2d(mr.zeros(1, 6, 5, 5), mr.zeros(4, 2, 3, 3), groups=4)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    for word in ("conv2d", "6 channels", "groups=4", "(4, 2, 3, 3)"):
        assert word in messages[0], messages[0]
    # and through the environment switch, in a fresh process
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for impl in ("fast", "reference"):
        run = subprocess.run([sys.executable, "-c", _BAD], capture_output=True, text=True, cwd=root, timeout=120,
                             env={**os.environ, "MINIRES_IMPL": impl, "PYTHONPATH": root})
        assert run.stdout.strip() == messages[0], run.stderr
