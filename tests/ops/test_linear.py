"""linear and flatten: forward against loops, backward by finite differences, errors, on every
implementation (the `device` fixture); the dispatcher's choice of LinearCPU."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minires as mr
import minires.functional as F
from minires import dispatch
from minires.functional.linear import Linear
from minires.kernels.cpu.linear import LinearCPU

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def t(a, device="cpu", requires_grad=False, dtype=np.float64):
    return mr.tensor(np.asarray(a, dtype=dtype), device=device, requires_grad=requires_grad)


def loop_linear(a, w, b):
    lead = a.shape[:-1]
    rows = a.reshape(-1, a.shape[-1])
    out = np.zeros((rows.shape[0], w.shape[0]))
    for n in range(rows.shape[0]):
        for o in range(w.shape[0]):
            acc = 0.0 if b is None else b[o]
            for i in range(w.shape[1]):
                acc += rows[n, i] * w[o, i]
            out[n, o] = acc
    return out.reshape(lead + (w.shape[0],))


@pytest.mark.parametrize("xshape", [(4, 3), (3,), (2, 3, 3), (1, 2, 1, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_loops(device, xshape, bias):
    rng = np.random.default_rng(0)
    a, w = rng.standard_normal(xshape), rng.standard_normal((5, 3))
    b = rng.standard_normal(5) if bias else None
    y = F.linear(t(a, device), t(w, device), t(b, device) if bias else None)
    assert y.shape == xshape[:-1] + (5,)
    assert np.allclose(y.numpy(), loop_linear(a, w, b), atol=1e-12)


@fixture_ok
@given(lead=st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple), fin=st.integers(1, 4),
       fout=st.integers(1, 4), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_gradcheck(device, lead, fin, fout, bias, seed):
    rng = np.random.default_rng(seed)
    x = t(rng.standard_normal(lead + (fin,)), device, True)
    w = t(rng.standard_normal((fout, fin)), device, True)
    inputs = [x, w] + ([t(rng.standard_normal(fout), device, True)] if bias else [])
    assert mr.gradcheck(F.linear, inputs)


def test_float16_products_and_empty_batches(device):
    rng = np.random.default_rng(2)
    a, w, b = rng.standard_normal((4, 3)), rng.standard_normal((5, 3)), rng.standard_normal(5)
    h = [v.astype(np.float16).astype(np.float64) for v in (a, w, b)]  # the float16 values, exactly
    y = F.linear(*(t(v, device, dtype=np.float16) for v in h))
    assert y.dtype == np.float16 and np.allclose(y.numpy(), loop_linear(*h), rtol=2e-3, atol=2e-3)
    x, wt = t(np.zeros((0, 3)), device, True), t(w, device, True)
    y = F.linear(x, wt, t(b, device, True))
    assert y.shape == (0, 5)
    y.sum().backward()
    assert x.grad.shape == (0, 3) and np.array_equal(wt.grad.numpy(), np.zeros((5, 3)))


def test_dispatch_picks_linear_cpu_on_numpy_arrays_and_the_reference_when_asked():
    x, w, b = t(np.ones((2, 3))), t(np.ones((4, 3))), t(np.ones(4))
    with dispatch.use_impl("fast"):  # (the suite also runs under MINIRES_IMPL=reference)
        assert dispatch.choose(Linear, (x, w, b), {}) is LinearCPU
        assert dispatch.choose(Linear, (x, w, None), {}) is LinearCPU
    with dispatch.use_impl("reference"):
        assert dispatch.choose(Linear, (x, w, b), {}) is Linear


def test_dispatch_runs_the_reference_on_the_device(standin):
    x, w = mr.ones(2, 3, device="cuda"), mr.ones(4, 3, device="cuda")
    with dispatch.use_impl("fast"):
        assert dispatch.choose(Linear, (x, w, None), {}) is Linear  # CuPy's matmul is cuBLAS already


def test_float32_stays_float32(device):
    x = t(np.ones((2, 3)), device, True, np.float32)
    w, b = t(np.ones((4, 3)), device, True, np.float32), t(np.ones(4), device, True, np.float32)
    y = F.linear(x, w, b)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32
    assert b.grad.numpy().tolist() == [2.0] * 4


def test_linear_errors(device):
    x, w = t(np.zeros((2, 3)), device), t(np.zeros((4, 3)), device)
    with pytest.raises(ValueError, match=r"linear.*3.*\(2, 3\).*5.*\(4, 5\)"):
        F.linear(x, t(np.zeros((4, 5)), device))
    with pytest.raises(ValueError, match=r"linear.*bias.*\(4,\).*\(3,\)"):
        F.linear(x, w, t(np.zeros(3), device))
    with pytest.raises(ValueError, match="linear.*weight.*2-D"):
        F.linear(x, t(np.zeros(3), device))
    with pytest.raises(ValueError, match="linear.*input"):
        F.linear(t(np.zeros(()), device), w)
    with pytest.raises(TypeError, match="linear.*dtype"):
        F.linear(x, t(np.zeros((4, 3)), device, dtype=np.float32))
    with pytest.raises(TypeError, match="linear.*floating"):
        F.linear(mr.zeros(2, 3, dtype=mr.int64, device=device), w)
    with pytest.raises(TypeError, match="linear.*Tensor"):
        F.linear(np.zeros((2, 3)), w)


@pytest.mark.parametrize("shape,start,end,expected", [
    ((2, 3, 4, 5), 1, -1, (2, 60)),
    ((2, 3, 4, 5), 0, -1, (120,)),
    ((2, 3, 4, 5), 1, 2, (2, 12, 5)),
    ((2, 3, 4, 5), -2, -1, (2, 3, 20)),
    ((2, 3), 1, -1, (2, 3)),
    ((7,), 0, -1, (7,)),
])
def test_flatten_shapes_and_values(device, shape, start, end, expected):
    a = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    y = F.flatten(t(a, device), start, end)
    assert y.shape == expected
    # row-major order: element k of the flat data stays element k
    assert y.numpy().ravel().tolist() == list(range(int(np.prod(shape))))


def test_flatten_gradcheck(device):
    x = t(np.random.default_rng(1).standard_normal((2, 3, 2, 2)), device, True)
    assert mr.gradcheck(lambda x: F.flatten(x) * t(np.arange(12.0), device), [x])


def test_flatten_errors(device):
    with pytest.raises(ValueError, match="flatten"):
        F.flatten(t(np.zeros(3), device))  # start_dim=1 does not exist on 1-D input
    with pytest.raises(ValueError, match="flatten"):
        F.flatten(t(np.zeros((2, 3, 4)), device), 2, 1)
    with pytest.raises(TypeError, match="flatten.*Tensor"):
        F.flatten(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="flatten.*start_dim"):
        F.flatten(t(np.zeros((2, 3)), device), 1.0)
