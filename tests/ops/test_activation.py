"""relu and add_relu: forward against elementwise loops, backward by finite differences, errors, NaN,
on every implementation (the `device` fixture), and which implementation the dispatcher picks."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minires as mr
import minires.functional as F
from minires import dispatch
from minires.kernels.cuda import ops as cuda_ops
from minires.functional.activation import AddReLU, ReLU
from minires.kernels.cpu.activation import AddReLUCPU, ReLUCPU
from minires.kernels.cuda.activation import AddReLUCUDA, ReLUCUDA

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


def test_relu_of_a_0d_tensor(device):
    x = mr.tensor(-2.0, device=device, requires_grad=True)
    y = mr.tensor(3.0, device=device, requires_grad=True)
    assert F.relu(x).item() == 0.0 and F.relu(y).item() == 3.0
    (F.relu(x) + F.relu(y)).backward()
    assert x.grad.item() == 0.0 and y.grad.item() == 1.0


def channels_last(a, device, requires_grad=False):
    """An NCHW tensor over NHWC memory, as conv outputs are."""
    return mr.tensor(np.ascontiguousarray(a.transpose(0, 2, 3, 1)), device=device,
                     requires_grad=requires_grad).permute(0, 3, 1, 2)


@pytest.mark.parametrize("x_layout, y_layout, g_layout", [("nchw", "nchw", "nhwc"), ("nhwc", "nhwc", "nhwc"),
                                                          ("nhwc", "nhwc", "nchw"), ("nhwc", "nchw", "nchw")])
def test_add_relu_in_every_memory_layout(device, x_layout, y_layout, g_layout):
    # Alike layouts take the fused CUDA kernel, others the generic code; a gradient laid out unlike
    # the mask takes the generic product instead of the mask_grad kernel.
    rng = np.random.default_rng(7)
    a, b, g = (rng.standard_normal((2, 3, 4, 5)) for _ in range(3))
    as_tensor = lambda v, layout: (channels_last(v, device) if layout == "nhwc"  # noqa: E731
                                   else mr.tensor(v, device=device))
    x, y = as_tensor(a, x_layout), as_tensor(b, y_layout)
    x.requires_grad, y.requires_grad = True, True
    out = F.add_relu(x, y)
    np.testing.assert_array_equal(out.numpy(), loop_relu(a + b))
    out.backward(as_tensor(g, g_layout))
    expected = g * ((a + b) > 0)
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    np.testing.assert_array_equal(y.grad.numpy(), expected)
    relu_in = as_tensor(a, x_layout)
    relu_in.requires_grad = True
    F.relu(relu_in).backward(as_tensor(g, g_layout))
    np.testing.assert_array_equal(relu_in.grad.numpy(), g * (a > 0))


def _ran(*outs):
    return [type(out.grad_fn) for out in outs]


@dispatch.use_impl("fast")  # even in a run with MINIRES_IMPL=reference
def test_dispatch_runs_the_cpu_fast_paths_and_the_references_when_asked():
    x, y = mr.randn(2, 3, requires_grad=True), mr.randn(2, 3)
    assert dispatch.choose(ReLU, (x,), {}) is ReLUCPU and dispatch.choose(AddReLU, (x, y), {}) is AddReLUCPU
    assert _ran(F.relu(x), F.add_relu(x, y), x.relu()) == [ReLUCPU, AddReLUCPU, ReLUCPU]
    with dispatch.use_impl("reference"):
        assert dispatch.choose(ReLU, (x,), {}) is ReLU and dispatch.choose(AddReLU, (x, y), {}) is AddReLU
        assert _ran(F.relu(x), F.add_relu(x, y)) == [ReLU, AddReLU]
    # A 0-d tensor has no batch to split: the reference.
    assert _ran(F.relu(mr.tensor(1.0, requires_grad=True))) == [ReLU]


@dispatch.use_impl("fast")  # even in a run with MINIRES_IMPL=reference
def test_dispatch_runs_the_cuda_kernels(standin, monkeypatch):
    masked = []
    mask_grad = cuda_ops.mask_grad
    monkeypatch.setattr(cuda_ops, "mask_grad", lambda *a: masked.append(mask_grad(*a)) or masked[-1])
    a, b = np.ones((2, 3, 4, 4)), -np.ones((2, 3, 4, 4))
    x, y = mr.tensor(a, device="cuda", requires_grad=True), mr.tensor(b, device="cuda")
    outs = F.relu(x), F.add_relu(x, y)
    # Layouts differ: the fused kernel declines and the reference runs.
    assert _ran(*outs, F.add_relu(channels_last(a, "cuda", True), y)) == [ReLUCUDA, AddReLUCUDA, AddReLU]
    for out in outs:
        out.sum().backward()
    assert len(masked) == 2 and all(d is not None for d in masked)  # both backwards ran the mask_grad kernel
    with dispatch.use_impl("reference"):
        assert _ran(F.relu(x), F.add_relu(x, y)) == [ReLU, AddReLU]


def test_elementwise_ops_run_through_dispatch(device, monkeypatch):
    called = []
    call = dispatch.call
    monkeypatch.setattr(dispatch, "call", lambda ref, *a, **k: called.append(ref.op_name()) or call(ref, *a, **k))
    x = mr.tensor([-1.0, 0.5, 2.0], device=device)
    F.sigmoid(x), F.tanh(x), F.gelu(x), F.gelu(x, approximate="tanh"), F.leaky_relu(x, 0.2), F.dropout(x, 0.5)
    F.relu(x), F.add_relu(x, x)
    assert called == ["sigmoid", "tanh", "gelu", "gelu", "leaky_relu", "dropout", "relu", "add_relu"]


def test_errors(device):
    x = mr.zeros(2, 3, device=device)
    with pytest.raises(ValueError, match=r"add_relu.*\(2, 3\).*\(3,\)"):
        F.add_relu(x, mr.zeros(3, device=device))  # broadcasting would hide a shape bug
    with pytest.raises(ValueError, match="add_relu"):
        F.add_relu(x, mr.zeros(1, 3, device=device))
    with pytest.raises(TypeError, match="add_relu.*dtype"):
        F.add_relu(x, mr.zeros(2, 3, dtype=mr.float64, device=device))
    with pytest.raises(TypeError, match="add_relu.*dtype"):  # no type promotion either
        F.add_relu(mr.zeros(2, 3, dtype=mr.int64, device=device), x)
    with pytest.raises(ValueError, match="add_relu.*'x'.*dimension"):
        F.add_relu(mr.tensor(1.0, device=device), mr.tensor(2.0, device=device))
    with pytest.raises(TypeError, match="relu.*Tensor"):
        F.relu(np.zeros(3))
    with pytest.raises(TypeError, match="add_relu.*'y'"):
        F.add_relu(x, 1.0)


@pytest.mark.gpu
def test_add_relu_device_mismatch():
    with pytest.raises(ValueError, match="add_relu.*device"):
        F.add_relu(mr.zeros(2), mr.zeros(2, device="cuda"))
