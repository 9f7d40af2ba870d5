"""relu and add_relu: forward against elementwise loops, backward by finite differences, errors, NaN."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minires as mr
import minires.functional as F

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


def away_from_kink(rng, shape, gap=0.1):
    """Values with |v| >= gap, so finite differences never straddle the ReLU kink at 0."""
    u = rng.standard_normal(shape)
    return np.sign(u + (u == 0)) * (gap + np.abs(u))


def loop_relu(a):
    return np.array([v if v > 0 else 0.0 for v in a.ravel()], dtype=a.dtype).reshape(a.shape)


@fixture_ok
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_relu_forward_and_gradcheck(device, shape, seed):
    a = away_from_kink(np.random.default_rng(seed), shape)
    x = mr.tensor(a, device=device, requires_grad=True)
    assert np.array_equal(F.relu(x).numpy(), loop_relu(a))
    assert mr.gradcheck(F.relu, [x])


@fixture_ok
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_add_relu_forward_and_gradcheck(device, shape, seed):
    rng = np.random.default_rng(seed)
    b = rng.standard_normal(shape)
    a = away_from_kink(rng, shape) - b  # the sum a + b stays away from 0
    x = mr.tensor(a, device=device, requires_grad=True)
    y = mr.tensor(b, device=device, requires_grad=True)
    assert np.allclose(F.add_relu(x, y).numpy(), loop_relu(a + b), rtol=0, atol=1e-12)
    assert mr.gradcheck(F.add_relu, [x, y])


def test_add_relu_gradient_reaches_both_inputs(device):
    a = np.array([[1.0, -2.0, 3.0], [-0.5, 0.5, 2.0]])
    b = np.array([[-3.0, 1.0, 1.0], [1.0, -1.0, -4.0]])
    x = mr.tensor(a, device=device, requires_grad=True)
    y = mr.tensor(b, device=device, requires_grad=True)
    g = np.arange(6.0).reshape(2, 3) + 1
    F.add_relu(x, y).backward(mr.tensor(g, device=device))
    expected = g * ((a + b) > 0)
    assert np.array_equal(x.grad.numpy(), expected) and np.array_equal(y.grad.numpy(), expected)


def test_add_relu_same_tensor_twice_doubles_gradient(device):
    x = mr.tensor([-1.0, 2.0, 0.5], device=device, requires_grad=True)
    out = F.add_relu(x, x)
    assert np.array_equal(out.numpy(), np.array([0.0, 4.0, 1.0], dtype=np.float32))
    out.sum().backward()
    assert np.array_equal(x.grad.numpy(), np.array([0.0, 2.0, 2.0], dtype=np.float32))


def test_float32_stays_float32(device):
    x = mr.tensor(np.array([-1.0, 2.0], dtype=np.float32), device=device, requires_grad=True)
    y = mr.tensor(np.array([0.5, -0.5], dtype=np.float32), device=device, requires_grad=True)
    for out in (F.relu(x), F.add_relu(x, y), x.relu()):
        assert out.dtype == np.float32
        out.sum().backward()
    assert x.grad.dtype == np.float32 and y.grad.dtype == np.float32


def test_relu_gradient_is_zero_at_and_below_zero(device):
    x = mr.tensor([-2.0, 0.0, 3.0], device=device, requires_grad=True)
    F.relu(x).sum().backward()
    assert x.grad.numpy().tolist() == [0.0, 0.0, 1.0]  # PyTorch's choice at the kink: 0


def test_nan_propagates(device):
    x = mr.tensor([math.nan, -1.0, 1.0], device=device)
    assert np.isnan(F.relu(x).numpy()[0])
    out = F.add_relu(x, mr.tensor([1.0, 1.0, math.inf], device=device)).numpy()
    assert np.isnan(out[0]) and out[1] == 0 and out[2] == math.inf


def test_relu_on_integers(device):
    x = mr.tensor([-3, 0, 4], device=device)
    out = F.relu(x)
    assert out.dtype == np.int64 and out.numpy().tolist() == [0, 0, 4]


def test_errors(device):
    x = mr.zeros(2, 3, device=device)
    with pytest.raises(ValueError, match=r"add_relu.*\(2, 3\).*\(3,\)"):
        F.add_relu(x, mr.zeros(3, device=device))  # broadcasting would hide a shape bug
    with pytest.raises(ValueError, match="add_relu"):
        F.add_relu(x, mr.zeros(1, 3, device=device))
    with pytest.raises(TypeError, match="add_relu.*dtype"):
        F.add_relu(x, mr.zeros(2, 3, dtype=mr.float64, device=device))
    with pytest.raises(TypeError, match="relu.*Tensor"):
        F.relu(np.zeros(3))
    with pytest.raises(TypeError, match="add_relu.*'y'"):
        F.add_relu(x, 1.0)


@pytest.mark.gpu
def test_add_relu_device_mismatch():
    with pytest.raises(ValueError, match="add_relu.*device"):
        F.add_relu(mr.zeros(2), mr.zeros(2, device="cuda"))
