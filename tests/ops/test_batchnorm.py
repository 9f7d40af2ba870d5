"""batch_norm: statistics against per-channel loops, running-stat updates, gradcheck, eval mode, errors,
on every implementation (the `device` fixture), and which implementation the dispatcher picks."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minires as mr
import minires.functional as F
from minires import amp, dispatch
from minires.functional.batchnorm import BatchNorm
from minires.kernels.cpu.batchnorm import BatchNormCPU
from minires.kernels.cuda.batchnorm import BatchNormCUDA

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def t(a, device="cpu", requires_grad=False, dtype=np.float64):
    return mr.tensor(np.asarray(a, dtype=dtype), device=device, requires_grad=requires_grad)


def channel_values(a, c):
    """Every value of channel c as a flat Python list (an explicit loop, no axis tricks)."""
    vals = []
    for n in range(a.shape[0]):
        vals.extend(np.asarray(a[n, c]).ravel().tolist())
    return vals


def loop_stats(a):
    """Per-channel mean, biased and unbiased variance by explicit sums."""
    means, biased, unbiased = [], [], []
    for c in range(a.shape[1]):
        v = channel_values(a, c)
        m = sum(v) / len(v)
        ss = sum((u - m) ** 2 for u in v)
        means.append(m)
        biased.append(ss / len(v))
        unbiased.append(ss / (len(v) - 1) if len(v) > 1 else math.nan)
    return np.array(means), np.array(biased), np.array(unbiased)


def loop_normalize(a, mean, var, w, b, eps):
    out = np.empty_like(a, dtype=np.float64)
    for n in range(a.shape[0]):
        for c in range(a.shape[1]):
            out[n, c] = (a[n, c] - mean[c]) / math.sqrt(var[c] + eps) * w[c] + b[c]
    return out


@pytest.mark.parametrize("shape", [(5, 3), (4, 2, 7), (3, 4, 5, 6), (2, 1, 1, 2)])
def test_training_forward_matches_loops(device, shape):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape) * 3 + 2
    w, b = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    y = F.batch_norm(t(a, device), None, None, t(w, device), t(b, device), training=True, eps=1e-3)
    mean, var, _ = loop_stats(a)
    assert np.allclose(y.numpy(), loop_normalize(a, mean, var, w, b, 1e-3), atol=1e-10)


@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0, 0.0])
def test_running_stats_over_several_steps(device, momentum):
    rng = np.random.default_rng(1)
    C = 3
    rm, rv = t(np.zeros(C), device), t(np.ones(C), device)
    hand_m, hand_v = [0.0] * C, [1.0] * C
    for step in range(4):
        a = rng.standard_normal((4, C, 2, 3)) * (step + 1) + step
        F.batch_norm(t(a, device), rm, rv, training=True, momentum=momentum)
        mean, _, unbiased = loop_stats(a)
        for c in range(C):
            hand_m[c] = (1 - momentum) * hand_m[c] + momentum * mean[c]
            hand_v[c] = (1 - momentum) * hand_v[c] + momentum * unbiased[c]
    assert np.allclose(rm.numpy(), hand_m, atol=1e-12) and np.allclose(rv.numpy(), hand_v, atol=1e-12)


def test_running_var_is_unbiased_for_two_values():
    rm, rv = t([0.0]), t([0.0])
    F.batch_norm(t([[1.0], [3.0]]), rm, rv, training=True, momentum=1.0)
    assert rm.numpy().tolist() == [2.0] and rv.numpy().tolist() == [2.0]  # ((1-2)^2 + (3-2)^2) / (2-1)


@pytest.mark.parametrize("shape", [(3, 2), (3, 2, 5), (3, 2, 4, 4)])
def test_eval_uses_running_stats_and_leaves_them(device, shape):
    rng = np.random.default_rng(2)
    a = rng.standard_normal(shape)
    m, v = np.array([0.5, -1.0]), np.array([2.0, 0.25])
    w, b = np.array([1.5, -0.5]), np.array([0.1, 0.2])
    rm, rv = t(m, device), t(v, device)
    y = F.batch_norm(t(a, device), rm, rv, t(w, device), t(b, device), training=False)
    assert np.allclose(y.numpy(), loop_normalize(a, m, v, w, b, 1e-5), atol=1e-12)
    assert np.array_equal(rm.numpy(), m) and np.array_equal(rv.numpy(), v)


def test_eval_gradient_is_a_per_channel_scale(device):
    rng = np.random.default_rng(3)
    a, g = rng.standard_normal((2, 2, 3, 3)), rng.standard_normal((2, 2, 3, 3))
    v, w = np.array([4.0, 0.5]), np.array([2.0, -3.0])
    x = t(a, device, requires_grad=True)
    F.batch_norm(x, t([1.0, 0.0], device), t(v, device), t(w, device), training=False).backward(t(g, device))
    expected = g * (w / np.sqrt(v + 1e-5))[None, :, None, None]
    assert np.allclose(x.grad.numpy(), expected, atol=1e-12)


batch_shapes = st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)).filter(
    lambda s: s[0] * s[2] * s[3] > 1)  # training needs more than one value per channel


@fixture_ok
@given(shape=batch_shapes, affine=st.sampled_from(["both", "weight", "bias", "none"]), training=st.booleans(),
       flat=st.booleans(), seed=st.integers(0, 2**16))
def test_gradcheck(device, shape, affine, training, flat, seed):
    rng = np.random.default_rng(seed)
    if flat:  # the (N, C) layout of BatchNorm1d
        shape = (shape[0] * shape[2] * shape[3] if shape[0] == 1 else shape[0], shape[1])
    C = shape[1]
    x = t(rng.standard_normal(shape) * 2 + 1, device, requires_grad=True)
    w = t(rng.standard_normal(C), device, requires_grad=True) if affine in ("both", "weight") else None
    b = t(rng.standard_normal(C), device, requires_grad=True) if affine in ("both", "bias") else None
    rm, rv = t(rng.standard_normal(C), device), t(rng.random(C) + 0.5, device)
    inputs = [i for i in (x, w, b) if i is not None]

    def fn(*args):
        it = iter(args)
        return F.batch_norm(next(it), rm, rv, next(it) if w is not None else None,
                            next(it) if b is not None else None, training=training, momentum=0.0)
    assert mr.gradcheck(fn, inputs)


def test_training_gradient_identities(device):
    # For y = xhat (no affine, eps -> 0), dx is orthogonal to 1 and to xhat in each channel.
    rng = np.random.default_rng(4)
    a, g = rng.standard_normal((6, 3, 4, 5)), rng.standard_normal((6, 3, 4, 5))
    x = t(a, device, requires_grad=True)
    y = F.batch_norm(x, None, None, training=True, eps=1e-12)
    y.backward(t(g, device))
    dx, yv = x.grad.numpy(), y.numpy()
    assert np.allclose(dx.sum(axis=(0, 2, 3)), 0, atol=1e-10)
    assert np.allclose((dx * yv).sum(axis=(0, 2, 3)), 0, atol=1e-10)


def test_batch_of_one_ok_in_training_with_spatial_values(device):
    x = t(np.arange(8.0).reshape(1, 2, 2, 2), device, requires_grad=True)
    y = F.batch_norm(x, None, None, training=True)
    mean, var, _ = loop_stats(np.arange(8.0).reshape(1, 2, 2, 2))
    assert np.allclose(y.numpy(), loop_normalize(np.arange(8.0).reshape(1, 2, 2, 2), mean, var, [1, 1], [0, 0], 1e-5))


def test_float32_stays_float32(device):
    f32 = np.float32
    x = t(np.random.default_rng(5).standard_normal((4, 3, 2, 2)), device, requires_grad=True, dtype=f32)
    w, b = t(np.ones(3), device, True, f32), t(np.zeros(3), device, True, f32)
    rm, rv = t(np.zeros(3), device, dtype=f32), t(np.ones(3), device, dtype=f32)
    for training in (True, False):
        y = F.batch_norm(x, rm, rv, w, b, training=training)
        assert y.dtype == f32
        y.sum().backward()
    assert x.grad.dtype == f32 and w.grad.dtype == f32 and b.grad.dtype == f32
    assert rm.dtype == f32 and rv.dtype == f32


def test_float32_large_mean_is_accurate():
    # NOTE: a naive E[x^2] - E[x]^2 variance loses everything here in float32.
    a = np.random.default_rng(6).standard_normal((64, 2, 8, 8)) + 1000.0
    y = F.batch_norm(t(a, dtype=np.float32), None, None, training=True)
    mean, var, _ = loop_stats(a.astype(np.float32).astype(np.float64))
    ref = loop_normalize(a.astype(np.float32).astype(np.float64), mean, var, [1, 1], [0, 0], 1e-5)
    assert np.abs(y.numpy() - ref).max() < 1e-3


def test_errors(device):
    x = t(np.zeros((4, 3, 2, 2)), device)
    rm, rv = t(np.zeros(3), device), t(np.ones(3), device)
    with pytest.raises(ValueError, match=r"batch_norm.*input.*\(3,\)"):
        F.batch_norm(t(np.zeros(3), device), rm, rv)
    with pytest.raises(ValueError, match="batch_norm.*input"):
        F.batch_norm(t(np.zeros((1, 3, 1, 1, 1)), device), rm, rv)
    with pytest.raises(ValueError, match=r"batch_norm.*running_mean.*\(3,\).*\(4,\)"):
        F.batch_norm(x, t(np.zeros(4), device), rv)
    with pytest.raises(ValueError, match=r"batch_norm.*running_var"):
        F.batch_norm(x, rm, t(np.ones((3, 1)), device))
    with pytest.raises(ValueError, match=r"batch_norm.*weight"):
        F.batch_norm(x, rm, rv, weight=t(np.ones(2), device))
    with pytest.raises(ValueError, match=r"batch_norm.*bias"):
        F.batch_norm(x, rm, rv, bias=t(np.ones(4), device))
    for one in ((1, 3), (1, 3, 1, 1), (1, 3, 1)):
        with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
            F.batch_norm(t(np.zeros(one), device), rm, rv, training=True)
    F.batch_norm(t(np.zeros((1, 3)), device), rm, rv, training=False)  # fine in eval
    with pytest.raises(ValueError, match="batch_norm.*running_mean"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(TypeError, match="batch_norm.*dtype"):
        F.batch_norm(x, t(np.zeros(3), device, dtype=np.float32), rv)
    with pytest.raises(TypeError, match="batch_norm.*floating"):
        F.batch_norm(mr.zeros(4, 3, dtype=mr.int64, device=device), rm, rv)
    with pytest.raises(TypeError, match="batch_norm.*Tensor"):
        F.batch_norm(np.zeros((4, 3)), rm, rv)
    with pytest.raises(ValueError, match="batch_norm.*eps"):
        F.batch_norm(x, rm, rv, eps=0.0)


def test_device_mismatch(standin):
    with pytest.raises(ValueError, match="batch_norm.*running_mean.*device"):
        F.batch_norm(mr.zeros(4, 3, device="cuda"), mr.zeros(3), mr.ones(3))
    with pytest.raises(ValueError, match="batch_norm.*device"):
        F.batch_norm(mr.zeros(4, 3, device="cuda"), mr.zeros(3, device="cuda"), mr.ones(3, device="cuda"),
                     weight=mr.ones(3), training=True)


@pytest.mark.parametrize("training", [True, False])
def test_channels_last_input_matches_loops_and_gradcheck(device, training):
    # conv2d returns NCHW views of NHWC memory; batch_norm works on those in place of a copy.
    rng = np.random.default_rng(7)
    a = rng.standard_normal((3, 4, 5, 6)) * 2 + 1                          # NCHW values
    w, b = rng.standard_normal(4), rng.standard_normal(4)
    rm, rv = rng.standard_normal(4), rng.random(4) + 0.5
    x = t(np.ascontiguousarray(a.transpose(0, 2, 3, 1)), device, requires_grad=True)  # NHWC memory
    xcl = x.permute(0, 3, 1, 2)
    assert not xcl.array.flags.c_contiguous
    y = F.batch_norm(xcl, t(rm, device), t(rv, device), t(w, device), t(b, device), training=training,
                     momentum=0.0, eps=1e-3)
    mean, var, _ = loop_stats(a) if training else (rm, rv, None)
    assert y.shape == (3, 4, 5, 6)
    assert np.allclose(y.numpy(), loop_normalize(a, mean, var, w, b, 1e-3), atol=1e-10)
    g = rng.standard_normal((3, 4, 5, 6))

    def fn(xh, wt, bt):  # a plain NCHW-contiguous multiplier makes the incoming gradient NCHW too
        out = F.batch_norm(xh.permute(0, 3, 1, 2), t(rm, device), t(rv, device), wt, bt, training=training,
                           momentum=0.0)
        return out * t(g, device)
    assert mr.gradcheck(fn, [x, t(w, device, requires_grad=True), t(b, device, requires_grad=True)])
    assert mr.gradcheck(lambda xh: F.batch_norm(xh.permute(0, 3, 1, 2), t(rm, device), t(rv, device),
                                                training=training, momentum=0.0), [x])


@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 4), (0, 3, 2, 2)])
def test_empty_batch_in_eval_gives_an_empty_output_and_zero_parameter_gradients(device, shape):
    x = t(np.zeros(shape), device, requires_grad=True)
    w, b = t(np.ones(3), device, requires_grad=True), t(np.ones(3), device, requires_grad=True)
    y = F.batch_norm(x, t(np.zeros(3), device), t(np.ones(3), device), w, b, training=False)
    assert y.shape == shape and y.dtype == np.float64
    y.sum().backward()
    assert x.grad.shape == shape
    for p in (w, b):  # sums over no samples
        assert p.grad.shape == (3,) and not p.grad.numpy().any()


def _call(x, w, b, rm, rv, training):
    """(inputs, params) of the dispatch.call that F.batch_norm makes."""
    return (x, w, b), dict(running_mean=rm.array, running_var=rv.array, training=training, momentum=0.1, eps=1e-5)


def test_dispatch_picks_the_cpu_fast_path_and_the_reference_when_asked(fast, monkeypatch):
    rng = np.random.default_rng(8)
    x, w, b = t(rng.standard_normal((4, 3, 2, 2))), t(np.ones(3)), t(np.zeros(3))
    rm, rv = t(np.zeros(3)), t(np.ones(3))
    for training in (True, False):
        assert dispatch.choose(BatchNorm, *_call(x, w, b, rm, rv, training)) is BatchNormCPU
        with dispatch.use_impl("reference"):
            assert dispatch.choose(BatchNorm, *_call(x, w, b, rm, rv, training)) is BatchNorm
    empty = t(np.zeros((0, 3, 2, 2)))  # the reference takes empty batches
    assert dispatch.choose(BatchNorm, *_call(empty, w, b, rm, rv, False)) is BatchNorm
    ran = []  # and F.batch_norm runs what choose picks
    forward = BatchNormCPU.forward
    monkeypatch.setattr(BatchNormCPU, "forward", lambda self, *a, **k: ran.append(type(self)) or forward(self, *a, **k))
    F.batch_norm(x, rm, rv, w, b, training=True)
    with dispatch.use_impl("reference"):
        F.batch_norm(x, rm, rv, w, b, training=True)
    assert ran == [BatchNormCPU]


def test_dispatch_picks_the_cuda_kernels_in_training_only(fast, standin):
    rng = np.random.default_rng(9)
    x = t(rng.standard_normal((4, 3, 2, 2)), "cuda")
    w, b, rm, rv = t(np.ones(3), "cuda"), t(np.zeros(3), "cuda"), t(np.zeros(3), "cuda"), t(np.ones(3), "cuda")
    assert dispatch.choose(BatchNorm, *_call(x, w, b, rm, rv, True)) is BatchNormCUDA
    assert dispatch.choose(BatchNorm, *_call(x, w, b, rm, rv, False)) is BatchNorm  # eval: generic array code
    assert dispatch.choose(BatchNorm, *_call(x[:, :, :, :1], w, b, rm, rv, True)) is BatchNorm  # a strided slice
    with dispatch.use_impl("reference"):
        assert dispatch.choose(BatchNorm, *_call(x, w, b, rm, rv, True)) is BatchNorm


def test_float16_input_with_float32_parameters_only_under_autocast(fast, standin):
    """Outside autocast the dtypes must agree; under autocast batch_norm's policy widens float16 input to
    float32 before the implementation is chosen, so the CUDA kernels train on float32 (and eval runs in
    float32 too), while x's gradient comes back float16."""
    rng = np.random.default_rng(10)
    a = rng.standard_normal((4, 3, 2, 2))
    x = t(a, "cuda", requires_grad=True, dtype=np.float16)
    w, b = (t(rng.standard_normal(3), "cuda", requires_grad=True, dtype=np.float32) for _ in range(2))
    rm, rv = t(np.zeros(3), "cuda", dtype=np.float32), t(np.ones(3), "cuda", dtype=np.float32)
    with pytest.raises(TypeError, match="batch_norm.*dtype"):
        F.batch_norm(x, rm, rv, w, b, training=True)
    with amp.autocast():
        assert dispatch.choose(BatchNorm, *_call(x.float(), w, b, rm, rv, True)) is BatchNormCUDA
        y = F.batch_norm(x, rm, rv, w, b, training=True, momentum=1.0)
        assert F.batch_norm(x, rm, rv, w, b, training=False).dtype == np.float32
    assert y.dtype == np.float32 and rm.dtype == rv.dtype == np.float32
    a16 = a.astype(np.float16).astype(np.float64)
    mean, var, unbiased = loop_stats(a16)
    np.testing.assert_allclose(y.numpy(), loop_normalize(a16, mean, var, w.numpy(), b.numpy(), 1e-5), atol=1e-2)
    np.testing.assert_allclose(rm.numpy(), mean, atol=1e-3)
    np.testing.assert_allclose(rv.numpy(), unbiased, rtol=1e-3)
    y.sum().backward()
    assert x.grad.dtype == np.float16 and w.grad.dtype == b.grad.dtype == np.float32
    np.testing.assert_allclose(b.grad.numpy(), [16.0] * 3)  # sum of g = 1 over 16 values per channel
