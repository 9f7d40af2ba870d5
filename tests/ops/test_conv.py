"""conv2d on every implementation (the `device` fixture): forward against a naive loop, backward against
finite differences; which implementation the dispatcher picks; im2col/col2im adjoint; errors."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minires as mr
import minires.functional as F
from minires import dispatch, nn, parallel, tuning
from minires.backend import to_numpy
from minires.functional.conv import Conv2d
from minires.kernels.cpu import conv as cpu_conv
from minires.kernels.cpu.conv import Conv2dCPU
from minires.kernels.cpu.im2col import col2im, im2col
from minires.kernels.cuda.conv import Conv2dCUDA
from minires.kernels.cuda.grouped import GroupedConv2dCUDA
from minires.testing import conv_configs

# The `device` fixture is a plain string, so reusing it across hypothesis examples is safe.
fixture_ok = settings(suppress_health_check=[*settings().suppress_health_check, HealthCheck.function_scoped_fixture])


def naive_conv2d(x, w, b, stride, padding, dilation, groups):
    """Direct definition: one dot product per output element, zero padding via np.pad."""
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
    xpad = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    out = np.zeros((N, O, OH, OW))
    Og = O // groups
    for n in range(N):
        for o in range(O):
            c0 = (o // Og) * Cg
            for oh in range(OH):
                for ow in range(OW):
                    acc = 0.0
                    for c in range(Cg):
                        for i in range(KH):
                            for j in range(KW):
                                acc += xpad[n, c0 + c, oh * SH + i * DH, ow * SW + j * DW] * w[o, c, i, j]
                    out[n, o, oh, ow] = acc + (b[o] if b is not None else 0.0)
    return out


def make(cfg, device, rng, requires_grad=True):
    x = mr.tensor(rng.standard_normal(cfg.input_shape), device=device, requires_grad=requires_grad)
    w = mr.tensor(rng.standard_normal(cfg.weight_shape), device=device, requires_grad=requires_grad)
    b = mr.tensor(rng.standard_normal(cfg.C_out), device=device, requires_grad=requires_grad) if cfg.bias else None
    return x, w, b


@fixture_ok
@given(cfg=conv_configs(max_size=6), seed=st.integers(0, 2**16))
def test_forward_matches_naive_loops(device, cfg, seed):
    x, w, b = make(cfg, device, np.random.default_rng(seed), requires_grad=False)
    out = F.conv2d(x, w, b, **cfg.kwargs())
    assert out.shape == cfg.output_shape
    expected = naive_conv2d(x.numpy(), w.numpy(), None if b is None else b.numpy(), cfg.stride, cfg.padding,
                            cfg.dilation, cfg.groups)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10)


@fixture_ok
@given(cfg=conv_configs(max_batch=2, max_channels=3, max_size=5), seed=st.integers(0, 2**16))
def test_gradcheck_full_tiny(device, cfg, seed):
    x, w, b = make(cfg, device, np.random.default_rng(seed))
    inputs = [x, w] + ([b] if b is not None else [])
    assert mr.gradcheck(lambda *t: F.conv2d(*t, **cfg.kwargs()), inputs)


@settings(fixture_ok, max_examples=15)
@given(cfg=conv_configs(max_batch=3, max_channels=8, max_size=10, max_kernel=5, max_groups=4),
       seed=st.integers(0, 2**16))
def test_gradcheck_fast_mode_larger(device, cfg, seed):
    x, w, b = make(cfg, device, np.random.default_rng(seed))
    inputs = [x, w] + ([b] if b is not None else [])
    assert mr.gradcheck(lambda *t: F.conv2d(*t, **cfg.kwargs()), inputs, fast_mode=True)


@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((1, 3, 7, 5), (4, 3, 3, 3), dict(padding=1)),                      # batch 1, odd non-square
    ((2, 4, 6, 6), (4, 4, 1, 1), dict(stride=2)),                       # ResNet 1x1 shortcut
    ((2, 4, 9, 8), (6, 2, 3, 2), dict(stride=(2, 1), padding=(1, 0), dilation=(2, 1), groups=2)),
    ((1, 4, 5, 5), (4, 1, 3, 3), dict(padding=1, groups=4)),            # depthwise
])
def test_named_cases_forward_and_gradcheck(device, x_shape, w_shape, kw):
    rng = np.random.default_rng(0)
    x = mr.tensor(rng.standard_normal(x_shape), device=device, requires_grad=True)
    w = mr.tensor(rng.standard_normal(w_shape), device=device, requires_grad=True)
    b = mr.tensor(rng.standard_normal(w_shape[0]), device=device, requires_grad=True)
    out = F.conv2d(x, w, b, **kw)
    full = {**dict(stride=1, padding=0, dilation=1, groups=1), **kw}
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    expected = naive_conv2d(x.numpy(), w.numpy(), b.numpy(), pair(full["stride"]), pair(full["padding"]),
                            pair(full["dilation"]), full["groups"])
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10)
    assert mr.gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b])


@pytest.mark.parametrize("row_split", [False, True])  # both CPU column layouts, forced
@pytest.mark.parametrize("images", [1, 2])  # per chunk; with N=3 the last chunk of 2 is partial
@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, padding=1), dict(padding=(0, 1), groups=2),
                                dict(stride=(1, 2), dilation=2, groups=2), dict(padding=(0, 1)),
                                dict(stride=(1, 2), padding=(2, 1), dilation=(2, 1))])
def test_batch_chunking_matches_naive(fast, monkeypatch, images, kw, row_split):
    # Conv2dCPU itself, groups included: the grouped/depthwise classes tried before it would take groups=2.
    monkeypatch.setitem(dispatch._others, "conv2d", (Conv2dCPU, Conv2dCUDA))
    for name in ("ROW_SPLIT_MAX_K", "ROW_SPLIT_DW_MAX_K"):
        monkeypatch.setattr(tuning, name, 10**9 if row_split else 0)
    rng = np.random.default_rng(8)
    x = mr.tensor(rng.standard_normal((3, 4, 6, 5)), requires_grad=True)
    w = mr.tensor(rng.standard_normal((4, 2 if "groups" in kw else 4, 3, 3)), requires_grad=True)
    b = mr.tensor(rng.standard_normal(4), requires_grad=True)
    full = {**dict(stride=1, padding=0, dilation=1, groups=1), **kw}
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    expected = naive_conv2d(x.numpy(), w.numpy(), b.numpy(), pair(full["stride"]), pair(full["padding"]),
                            pair(full["dilation"]), full["groups"])
    monkeypatch.setattr(cpu_conv, "_chunk_images", lambda *args: images)
    out = F.conv2d(x, w, b, **kw)
    assert type(out.grad_fn) is Conv2dCPU
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10)
    assert mr.gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b])


def _arrays(xp, x_shape, w_shape):
    return xp.zeros(x_shape), xp.zeros(w_shape), None


PARAMS = dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1))


def test_dispatch_runs_the_cpu_fast_path_on_numpy_and_the_reference_when_asked(fast):
    for groups, w_shape in ((1, (4, 4, 3, 3)), (2, (4, 2, 3, 3))):
        inputs, params = _arrays(np, (2, 4, 5, 5), w_shape), dict(PARAMS, groups=groups)
        # groups > 1: the grouped classes tried before Conv2dCPU take it; Conv2dCPU still supports it.
        assert dispatch.choose(Conv2d, inputs, params) is Conv2dCPU or groups > 1
        assert Conv2dCPU.supports(*inputs, **params) and dispatch.choose(Conv2d, inputs, params) is not Conv2d
        with dispatch.use_impl("reference"):
            assert dispatch.choose(Conv2d, inputs, params) is Conv2d
    # an empty batch runs on the reference
    assert dispatch.choose(Conv2d, _arrays(np, (0, 4, 5, 5), (4, 4, 3, 3)), dict(PARAMS, groups=1)) is Conv2d
    x = mr.zeros(2, 4, 5, 5, requires_grad=True)
    assert type(F.conv2d(x, mr.zeros(4, 4, 3, 3), padding=1).grad_fn) is Conv2dCPU
    with dispatch.use_impl("reference"):
        assert type(F.conv2d(x, mr.zeros(4, 4, 3, 3), padding=1).grad_fn) is Conv2d


def test_dispatch_runs_the_cuda_kernels_on_cupy_arrays(fast, standin):
    inputs = _arrays(standin, (2, 4, 5, 5), (4, 4, 3, 3))
    assert dispatch.choose(Conv2d, inputs, dict(PARAMS, groups=1)) is Conv2dCUDA
    grouped = _arrays(standin, (2, 4, 5, 5), (4, 2, 3, 3))
    assert dispatch.choose(Conv2d, grouped, dict(PARAMS, groups=2)) is GroupedConv2dCUDA
    with dispatch.use_impl("reference"):
        assert dispatch.choose(Conv2d, inputs, dict(PARAMS, groups=1)) is Conv2d
    x = mr.zeros(2, 4, 5, 5, device="cuda", requires_grad=True)
    assert type(F.conv2d(x, mr.zeros(4, 4, 3, 3, device="cuda"), padding=1).grad_fn) is Conv2dCUDA


def test_only_requested_grads_are_computed(device):
    rng = np.random.default_rng(1)
    x = mr.tensor(rng.standard_normal((2, 3, 5, 5)), device=device)
    w = mr.tensor(rng.standard_normal((4, 3, 3, 3)), device=device, requires_grad=True)
    F.conv2d(x, w, padding=1).sum().backward()
    assert x.grad is None and w.grad is not None
    # dw of sum(conv) = sum over positions of the input window: check against the naive conv's linearity.
    expected = np.zeros((4, 3, 3, 3))
    for c in range(3):
        for i in range(3):
            for j in range(3):
                e = np.zeros((1, 3, 3, 3))
                e[0, c, i, j] = 1.0
                expected[:, c, i, j] = naive_conv2d(x.numpy(), e, None, (1, 1), (1, 1), (1, 1), 1).sum()
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-10)


@fixture_ok
@given(cfg=conv_configs(max_size=7), seed=st.integers(0, 2**16))
def test_im2col_col2im_adjoint(device, cfg, seed):
    rng = np.random.default_rng(seed)
    xp = mr.backend.xp_for(device)
    x = xp.asarray(rng.standard_normal(cfg.input_shape))
    args = dict(stride=cfg.stride, padding=cfg.padding, dilation=cfg.dilation)
    cols = im2col(x, (cfg.KH, cfg.KW), **args)
    OH, OW = cfg.output_shape[2:]
    assert cols.shape == (cfg.N, OH, OW, cfg.KH, cfg.KW, cfg.C_in)
    y = xp.asarray(rng.standard_normal(cols.shape))
    lhs = float((to_numpy(col2im(y, x.shape, **args)) * to_numpy(x)).sum())
    rhs = float((to_numpy(y) * to_numpy(cols)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


def test_float32_stays_float32(device):
    rng = np.random.default_rng(2)
    x = mr.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), device=device, requires_grad=True)
    w = mr.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), device=device, requires_grad=True)
    b = mr.tensor(rng.standard_normal(4).astype(np.float32), device=device, requires_grad=True)
    out = F.conv2d(x, w, b, padding=1, stride=2)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32
    expected = naive_conv2d(x.numpy().astype(np.float64), w.numpy().astype(np.float64),
                            b.numpy().astype(np.float64), (2, 2), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_nan_propagates(device):
    x = np.ones((1, 2, 5, 5))
    x[0, 1, 2, 2] = np.nan
    x = mr.tensor(x, device=device, requires_grad=True)
    w = mr.tensor(np.ones((3, 2, 3, 3)), device=device, requires_grad=True)
    out = F.conv2d(x, w, padding=1)
    nan = np.isnan(out.numpy())
    assert nan[0, :, 1:4, 1:4].all() and nan.sum() == 3 * 9  # exactly the windows covering the NaN
    out.sum().backward()
    dw = w.grad.numpy()
    assert np.isnan(dw[:, 1]).all() and not np.isnan(dw[:, 0]).any()  # only channel 1 saw the NaN
    assert not np.isnan(x.grad.numpy()).any()  # dx only involves the (finite) weights


def _t(shape, dtype=np.float64, device="cpu"):
    return mr.tensor(np.zeros(shape, dtype=dtype), device=device)


# The rows tests/engine/test_fuzz.py never draws (it covers input rank, channels, spans, stride/padding/
# dilation/groups values and types, dtypes and non-tensors): weight rank, out channels vs groups, bias shapes.
@pytest.mark.parametrize("args, kwargs, exc, words", [
    ((_t((1, 3, 5, 5)), _t((2, 3, 3))), {}, ValueError, ["weight", "(2, 3, 3)"]),
    ((_t((1, 4, 5, 5)), _t((3, 2, 3, 3))), dict(groups=2), ValueError, ["groups", "(3, 2, 3, 3)"]),
    ((_t((1, 3, 5, 5)), _t((2, 3, 3, 3)), _t((3,))), {}, ValueError, ["bias", "(3,)"]),
    ((_t((1, 3, 5, 5)), _t((2, 3, 3, 3)), _t((2, 1))), {}, ValueError, ["bias", "(2, 1)"]),
])
def test_bad_input_raises_clear_error(args, kwargs, exc, words):
    with pytest.raises(exc) as info:
        F.conv2d(*args, **kwargs)
    msg = str(info.value)
    assert "conv2d" in msg
    for word in words:
        assert word in msg, msg


def test_padding_same_and_valid_match_loops():
    # torch.nn.functional's conv2d (minires.nn.functional) resolves the strings, then calls F.conv2d
    # 'same' keeps H, W; an even kernel span puts the extra row/column at the end (PyTorch's rule); checked
    # against a plain loop over the explicitly padded input
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 4, 5))
    for kernel, dilation in (((3, 3), 1), ((4, 4), 1), ((2, 2), 1), ((3, 2), 2)):
        w, b = rng.standard_normal((3, 2) + kernel), rng.standard_normal(3)
        span = [dilation * (k - 1) for k in kernel]
        xp = np.pad(x, ((0, 0), (0, 0), (span[0] // 2, span[0] - span[0] // 2), (span[1] // 2, span[1] - span[1] // 2)))
        ref = np.zeros((1, 3, 4, 5))
        for o in range(3):
            for i in range(4):
                for j in range(5):
                    patch = xp[0, :, i:i + span[0] + 1:dilation, j:j + span[1] + 1:dilation]
                    ref[0, o, i, j] = (patch * w[o]).sum() + b[o]
        got = nn.functional.conv2d(mr.tensor(x), mr.tensor(w), mr.tensor(b), padding="same", dilation=dilation)
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-12)
    w = mr.tensor(rng.standard_normal((3, 2, 3, 3)))
    assert nn.functional.conv2d(mr.tensor(x), w, padding="valid").shape == (1, 3, 2, 3)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("C, O, H, k, s", [(16, 16, 32, 3, 1), (32, 64, 16, 3, 2), (64, 64, 8, 3, 1), (64, 16, 16, 1, 1)])
def test_forward_backward_peak_memory_is_bounded(C, O, H, k, s, threads):
    # Issue 4's budget for the CPU fast path: forward + backward allocate at most 12x the input's size beyond it (the
    # columns are built in cache-sized chunks, never for the whole batch). NumPy reports to tracemalloc. With T
    # threads the batch is split into T parts whose chunks are alive at once: each part past the first may hold one
    # more chunk of columns and its (KH*KW*C, O) partial weight gradient.
    import tracemalloc
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, H, H, C)).astype(np.float32).transpose(0, 3, 1, 2)  # channels-last, as in a net
    w = rng.standard_normal((O, C, k, k)).astype(np.float32)
    OH = (H + 2 * (k // 2) - k) // s + 1
    g = rng.standard_normal((32, O, OH, OH)).astype(np.float32)
    before = parallel.get_num_threads()
    parallel.set_num_threads(threads)
    tracemalloc.start()
    try:
        with parallel.hold_blas():  # BLAS at one thread: the GEMM parts split over `threads`
            base = tracemalloc.get_traced_memory()[0]
            f = Conv2dCPU()
            f.needs_input_grad = (True, True)
            f.forward(x, w, None, stride=(s, s), padding=(k // 2, k // 2), dilation=(1, 1), groups=1)
            f.backward(g)
            peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        parallel.set_num_threads(before)
    per_extra_part = tuning.CPU_CHUNK_BYTES + w.nbytes
    budget = 12 * x.nbytes + (threads - 1) * per_extra_part
    assert peak <= budget, f"peak extra {peak / x.nbytes:.1f}x the input ({threads} threads, budget {budget} bytes)"


@pytest.mark.parametrize("C", [1, 3])  # 3 channels: row-split dw (KW*C = 9 <= ROW_SPLIT_DW_MAX_K)
def test_an_inf_in_one_image_reaches_only_the_weight_gradients_it_touches(device, C):
    """dw[o, c, i, j] = sum over (n, oh, ow) of g * xpad: an inf at x[1, 0, 0, 0] makes exactly the
    entries whose window covers it inf; every other entry stays finite and exact (no 0 * inf NaN)."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, C, 5, 5))
    x[1, 0, 0, 0] = np.inf
    w = rng.standard_normal((2, C, 3, 3))
    xt = mr.tensor(x, device=device)
    wt = mr.tensor(w, device=device, requires_grad=True)
    F.conv2d(xt, wt, padding=1).sum().backward()
    xpad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    expected = np.empty_like(w)
    for i in range(3):
        for j in range(3):
            expected[:, :, i, j] = xpad[:, :, i:i + 5, j:j + 5].sum(axis=(0, 2, 3))  # g = 1 everywhere
    np.testing.assert_allclose(wt.grad.numpy(), expected, rtol=1e-10)           # inf where expected is inf
    assert not np.isnan(wt.grad.numpy()).any()


@pytest.fixture(params=[1, 3])  # 3: the parts' dw summed, each part's dx rows written apart
def kernel_threads(request, monkeypatch):
    """The CPU kernels on 1 or 3 threads, parts from one element on; restored after."""
    monkeypatch.setattr(tuning, "MIN_PART_ELEMENTS", 1)
    before = parallel.get_num_threads()
    parallel.set_num_threads(request.param)
    yield request.param
    parallel.set_num_threads(before)


def _no_columns(*args, **kwargs):
    raise AssertionError("a path that should not run ran")


@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (2, 1)])
@pytest.mark.parametrize("channels_last", [False, True])  # a view of NHWC memory, or a strided NCHW input
def test_pointwise_1x1_builds_no_columns_and_matches_naive(fast, monkeypatch, stride, channels_last, kernel_threads):
    for name in ("_columns", "_row_columns", "_conv_gemm", "_dx_col2im"):
        monkeypatch.setattr(cpu_conv, name, _no_columns)
    rng = np.random.default_rng(3)
    xa = rng.standard_normal((3, 5, 7, 4))                               # (N, H, W, C) memory
    xa = xa.transpose(0, 3, 1, 2) if channels_last else np.ascontiguousarray(xa.transpose(0, 3, 1, 2))
    x = mr.tensor(xa, requires_grad=True)
    w = mr.tensor(rng.standard_normal((6, 4, 1, 1)), requires_grad=True)
    b = mr.tensor(rng.standard_normal(6), requires_grad=True)
    out = F.conv2d(x, w, b, stride=stride)
    assert type(out.grad_fn) is Conv2dCPU
    np.testing.assert_allclose(out.numpy(), naive_conv2d(xa, w.numpy(), b.numpy(), stride, (0, 0), (1, 1), 1), rtol=1e-10)
    assert mr.gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=stride), [x, w, b])
    xo, wo = mr.tensor(xa), mr.tensor(w.numpy())  # one gradient asked for: the other is not computed
    assert mr.gradcheck(lambda t: F.conv2d(t, wo, stride=stride), [mr.tensor(xa, requires_grad=True)])
    assert mr.gradcheck(lambda t: F.conv2d(xo, t, stride=stride), [mr.tensor(w.numpy(), requires_grad=True)])


def test_pointwise_float32_channels_last_in_and_out(fast):
    rng = np.random.default_rng(4)
    xa = rng.standard_normal((2, 4, 4, 3)).astype(np.float32).transpose(0, 3, 1, 2)  # NHWC memory
    x = mr.tensor(xa, requires_grad=True)
    w = mr.tensor(rng.standard_normal((5, 3, 1, 1)).astype(np.float32), requires_grad=True)
    out = F.conv2d(x, w)
    assert out.dtype == mr.float32 and out.numpy().transpose(0, 2, 3, 1).flags.c_contiguous
    np.testing.assert_allclose(out.numpy(), naive_conv2d(xa, w.numpy(), None, (1, 1), (0, 0), (1, 1), 1), rtol=1e-5, atol=1e-5)
    g = mr.ones(out.shape, dtype=mr.float32)
    out.backward(g)
    assert (g.numpy() == 1).all()  # the incoming gradient is read, never written (its rows may be views)
    assert x.grad.dtype == mr.float32 and w.grad.dtype == mr.float32
    np.testing.assert_allclose(w.grad.numpy()[:, :, 0, 0], np.broadcast_to(xa.sum(axis=(0, 2, 3)), (5, 3)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(w.numpy().sum(axis=0)[None], xa.shape), atol=1e-5)


@pytest.mark.parametrize("kernel, kw", [((2, 3), dict(padding=(1, 1))), ((4, 2), dict(padding=(2, 0), dilation=(2, 1))),
                                        ((5, 3), dict(padding=(2, 1), stride=(1, 2)))])
def test_row_split_any_kernel_height_builds_no_full_columns(fast, monkeypatch, kernel, kw):
    # KH = 2, 4 and 5 kernel rows (shifted GEMMs), dilated and W-strided; x and dx both row-split.
    for name in ("ROW_SPLIT_MAX_K", "ROW_SPLIT_DW_MAX_K"):
        monkeypatch.setattr(tuning, name, 10**9)
    monkeypatch.setattr(cpu_conv, "_columns", _no_columns)
    monkeypatch.setattr(cpu_conv, "_chunk_images", lambda *args: 2)       # N=3: a partial last chunk
    rng = np.random.default_rng(5)
    x = mr.tensor(rng.standard_normal((3, 3, 8, 7)), requires_grad=True)
    w = mr.tensor(rng.standard_normal((3, 3) + kernel), requires_grad=True)
    out = F.conv2d(x, w, None, **kw)
    np.testing.assert_allclose(out.numpy(), naive_conv2d(x.numpy(), w.numpy(), None, kw.get("stride", (1, 1)), kw["padding"],
                                                         kw.get("dilation", (1, 1)), 1), rtol=1e-10, atol=1e-10)
    assert mr.gradcheck(lambda x, w: F.conv2d(x, w, None, **kw), [x, w])


@pytest.mark.parametrize("O, kw", [(4, dict(padding=1)), (3, dict(padding=(2, 0), dilation=(2, 1))), (2, dict(padding=(0, 1)))])
def test_dx_and_dw_from_the_columns_of_g_match_finite_differences(fast, monkeypatch, O, kw, kernel_threads):
    monkeypatch.setattr(tuning, "ROW_SPLIT_MAX_K", 0)                      # plain columns, so dx and dw share them
    monkeypatch.setattr(cpu_conv, "_chunk_images", lambda *args: 2)
    real_dw = cpu_conv._dw
    monkeypatch.setattr(cpu_conv, "_dw", _no_columns)                    # dw must come from g's columns
    rng = np.random.default_rng(6)
    x = mr.tensor(rng.standard_normal((3, 5, 6, 4)).transpose(0, 3, 1, 2), requires_grad=True)  # O <= C = 4
    w = mr.tensor(rng.standard_normal((O, 4, 3, 3)), requires_grad=True)
    assert mr.gradcheck(lambda x, w: F.conv2d(x, w, None, **kw), [x, w])
    monkeypatch.setattr(cpu_conv, "_dw", real_dw)  # a non-finite part takes the separate columns
    xa = x.numpy().copy()
    xa[1, 0, 0, 0] = np.inf
    xi, wi = mr.tensor(xa, requires_grad=True), mr.tensor(w.numpy(), requires_grad=True)
    F.conv2d(xi, wi, None, padding=1).sum().backward()
    assert not np.isnan(wi.grad.numpy()).any() and np.isinf(wi.grad.numpy()).any()
