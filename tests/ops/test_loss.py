"""cross_entropy: forward against explicit log-sum-exp loops, backward by finite differences, errors, on every
implementation (the `device` fixture); the dispatcher's choice of the CUDA kernels; labels checked on the host,
deferred on the device."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minires as mr
import minires.functional as F
from minires import dispatch
from minires.functional.loss import CrossEntropy, check_targets
from minires.kernels.cuda.loss import CrossEntropyCUDA

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def t(a, device="cpu", requires_grad=False, dtype=np.float64):
    return mr.tensor(np.asarray(a, dtype=dtype), device=device, requires_grad=requires_grad)


def loop_losses(a, target, eps):
    """Per-row smoothed cross entropy: -log p = log(sum_j exp(a_j)) - a_i, on small values in float64."""
    out = []
    for n in range(a.shape[0]):
        lse = math.log(sum(math.exp(v) for v in a[n]))
        neglogp = [lse - v for v in a[n]]
        out.append((1 - eps) * neglogp[target[n]] + eps * sum(neglogp) / len(neglogp))
    return np.array(out)


@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
def test_forward_matches_loops(device, eps):
    rng = np.random.default_rng(0)
    a, target = rng.standard_normal((6, 5)) * 2, rng.integers(0, 5, 6)
    ref = loop_losses(a, target, eps)
    x = t(a, device)
    none = F.cross_entropy(x, target, label_smoothing=eps, reduction="none")
    assert none.shape == (6,) and np.allclose(none.numpy(), ref, atol=1e-12)
    assert np.isclose(F.cross_entropy(x, target, eps, "sum").item(), ref.sum(), atol=1e-12)
    mean = F.cross_entropy(x, target, label_smoothing=eps)
    assert mean.shape == () and np.isclose(mean.item(), ref.mean(), atol=1e-12)


def test_gradient_closed_form(device):
    # mean reduction: (softmax - ((1 - eps) * onehot + eps / C)) / N, written out with loops
    a, target, eps = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]), np.array([2, 0]), 0.2
    x = t(a, device, True)
    F.cross_entropy(x, target, label_smoothing=eps).backward()
    for n in range(2):
        z = sum(math.exp(v) for v in a[n])
        for c in range(3):
            q = (1 - eps) * (c == target[n]) + eps / 3
            assert math.isclose(x.grad.numpy()[n, c], (math.exp(a[n, c]) / z - q) / 2, abs_tol=1e-12)


@fixture_ok
@given(n=st.integers(1, 5), c=st.integers(1, 5), eps=st.sampled_from([0.0, 0.05, 0.5, 1.0]),
       reduction=st.sampled_from(["mean", "sum", "none"]), seed=st.integers(0, 2**16))
def test_gradcheck(device, n, c, eps, reduction, seed):
    rng = np.random.default_rng(seed)
    x = t(rng.standard_normal((n, c)) * 2, device, True)
    target = rng.integers(0, c, n)
    assert mr.gradcheck(lambda x: F.cross_entropy(x, target, eps, reduction), [x])


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_target_kinds(device, dtype):
    a = np.random.default_rng(1).standard_normal((4, 3))
    target = np.array([0, 2, 1, 2], dtype=dtype)
    ref = loop_losses(a, target, 0.0).mean()
    assert np.isclose(F.cross_entropy(t(a, device), target).item(), ref, atol=1e-12)
    tt = mr.tensor(target, device=device)
    assert np.isclose(F.cross_entropy(t(a, device), tt).item(), ref, atol=1e-12)


def test_large_logits_do_not_overflow(device):
    x = t([[1e4, 0.0, -1e4], [5e3, 5e3, -2e4]], device, True, np.float32)
    loss = F.cross_entropy(x, np.array([1, 0]), reduction="none")
    assert np.allclose(loss.numpy(), [1e4, math.log(2)], rtol=1e-6)
    loss.sum().backward()
    g = x.grad.numpy()
    assert np.isfinite(g).all() and np.allclose(g, [[1, -1, 0], [-0.5, 0.5, 0]], atol=1e-6)


def test_nan_logits_give_nan_loss(device):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning either
        loss = F.cross_entropy(t([[math.nan, 0.0], [1.0, 2.0]], device), np.array([1, 0]), reduction="none")
    out = loss.numpy()
    assert math.isnan(out[0]) and np.isclose(out[1], math.log(1 + math.e))
    assert math.isnan(F.cross_entropy(t([[math.nan, 0.0]], device), np.array([0])).item())


def test_float32_stays_float32(device):
    x = t(np.random.default_rng(2).standard_normal((3, 4)), device, True, np.float32)
    for eps in (0.0, 0.1):
        loss = F.cross_entropy(x, np.array([0, 1, 3]), label_smoothing=eps)
        assert loss.dtype == np.float32
        loss.backward()
    assert x.grad.dtype == np.float32


def test_empty_batch(device):
    x = t(np.zeros((0, 3)), device)
    assert math.isnan(F.cross_entropy(x, np.zeros(0, dtype=np.int64)).item())
    assert F.cross_entropy(x, np.zeros(0, dtype=np.int64), reduction="sum").item() == 0.0


def test_errors(device):
    x = t(np.zeros((3, 4)), device)
    good = np.array([0, 1, 3])
    with pytest.raises(ValueError, match="cross_entropy.*target 4 is out of bounds for 4 classes"):
        F.cross_entropy(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="cross_entropy.*target -1"):
        F.cross_entropy(x, np.array([0, -1, 1]))
    with pytest.raises(TypeError, match="cross_entropy.*target.*float"):
        F.cross_entropy(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="cross_entropy.*target.*float32"):
        F.cross_entropy(x, mr.tensor([0.0, 1.0, 2.0], device=device))
    with pytest.raises(TypeError, match="cross_entropy.*target.*bool"):
        F.cross_entropy(x, np.array([True, False, True]))
    with pytest.raises(TypeError, match="cross_entropy.*target.*list"):
        F.cross_entropy(x, [0, 1, 2])
    with pytest.raises(ValueError, match=r"cross_entropy.*\(3,\).*\(2,\)"):
        F.cross_entropy(x, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"cross_entropy.*\(3,\).*\(3, 1\)"):
        F.cross_entropy(x, good[:, None])
    with pytest.raises(ValueError, match="cross_entropy.*input.*2-D"):
        F.cross_entropy(t(np.zeros((3, 4, 2)), device), good)
    with pytest.raises(ValueError, match="cross_entropy.*input.*2-D"):
        F.cross_entropy(t(np.zeros(4), device), np.array([1]))
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="cross_entropy.*label_smoothing"):
            F.cross_entropy(x, good, label_smoothing=bad)
    with pytest.raises(ValueError, match="cross_entropy.*reduction.*'avg'"):
        F.cross_entropy(x, good, reduction="avg")
    with pytest.raises(TypeError, match="cross_entropy.*floating"):
        F.cross_entropy(mr.zeros(3, 4, dtype=mr.int64, device=device), good)


def test_dispatch_picks_the_kernels_on_the_device_and_the_reference_elsewhere(standin):
    target = np.array([0, 1])
    on_gpu, on_cpu = mr.zeros(2, 3, device="cuda"), mr.zeros(2, 3)
    params = {"target": target, "label_smoothing": 0.0, "reduction": "mean"}
    with dispatch.use_impl("fast"):  # (the suite also runs under MINIRES_IMPL=reference)
        assert dispatch.choose(CrossEntropy, (on_gpu,), params) is CrossEntropyCUDA
        assert dispatch.choose(CrossEntropy, (on_gpu[:0],), dict(params, target=target[:0])) is CrossEntropy
        assert dispatch.choose(CrossEntropy, (on_cpu,), params) is CrossEntropy
    with dispatch.use_impl("reference"):
        assert dispatch.choose(CrossEntropy, (on_gpu,), params) is CrossEntropy


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_labels_on_the_device_give_a_nan_row_and_are_named_later(standin, impl):
    """No sync inside the loss: an out-of-range label already on the device gives its row a NaN loss
    (check_targets names it afterwards); labels given on the host are checked at once."""
    logits = mr.tensor(np.zeros((3, 4)), device="cuda")
    labels = mr.tensor([0, 7, -1], device="cuda")
    with dispatch.use_impl(impl):
        standin.transfers.reset()
        loss = F.cross_entropy(logits, labels, reduction="none")
        assert standin.transfers.d2h == 0
        out = loss.numpy()
        assert np.isnan(out[1:]).all() and np.isclose(out[0], math.log(4))
        with pytest.raises(ValueError, match="cross_entropy: target 7 is out of bounds for 4 classes"):
            F.cross_entropy(logits, np.array([0, 7, 1]))  # host labels: checked before the copy
    with pytest.raises(ValueError, match="cross_entropy: target -1 is out of bounds for 4 classes"):
        check_targets(labels.array, 4)


@pytest.mark.gpu
def test_target_tensor_on_other_device():
    with pytest.raises(ValueError, match="cross_entropy.*target.*cpu"):
        F.cross_entropy(mr.zeros(2, 3, device="cuda"), mr.tensor([0, 1]))
    loss = F.cross_entropy(mr.zeros(2, 3, device="cuda"), np.array([0, 1]))  # a NumPy array follows
    assert np.isclose(loss.item(), math.log(3))
