"""The CPU fast path of the exact gelu in float32 (minires/kernels/cpu/gelu.py): forward and gradient against
x Phi(x) and Phi(x) + x phi(x) from math.erfc in float64, special values, memory layouts, thread splits, and
that the dispatcher really runs it (float32 on the CPU only). The float64 reference is gradchecked in
tests/nn/test_torch_api_nn.py (test_activation_forward_and_gradcheck), so not here."""
import math
import warnings

import numpy as np
import pytest

import minires as mr
import minires.functional as F
from minires import dispatch, parallel, tuning
from minires.functional.elementwise import GELU
from minires.kernels.cpu.gelu import GELUCPU

SQRT2, SQRT2PI = math.sqrt(2.0), math.sqrt(2.0 * math.pi)


@pytest.fixture(params=["1-thread", "3-threads"])
def fast(request, monkeypatch):
    """The fast implementations, on one thread or cut into up to 3 parts whatever the size."""
    scope = dispatch.use_impl("fast")  # (the suite also runs under MINIRES_IMPL=reference)
    scope.__enter__()
    request.addfinalizer(lambda: scope.__exit__(None, None, None))
    if request.param == "3-threads":
        monkeypatch.setattr(tuning, "MIN_PART_ELEMENTS", 1)
        previous = parallel.get_num_threads()
        parallel.set_num_threads(3)
        request.addfinalizer(lambda: parallel.set_num_threads(previous))
    return request.param


def true_phi(x64):
    """Phi(x) per element from math.erfc (float64), and the density phi(x)."""
    cdf = np.array([0.5 * math.erfc(-v / SQRT2) for v in x64.ravel()]).reshape(x64.shape)
    return cdf, np.exp(-0.5 * x64 * x64) / SQRT2PI


def gelu_and_grad(a, g=None):
    """(gelu(a), d/da of sum(g * gelu(a))) as NumPy arrays, through minires' autograd."""
    x = mr.tensor(a, requires_grad=True)
    y = F.gelu(x)
    y.backward(mr.tensor(np.ones_like(a) if g is None else g))
    return y.numpy(), x.grad.numpy()


def grid():
    """float32: a dense grid over [-12, 12] (every Hermite interval many times, both clipped ends) and normals."""
    dense = np.linspace(-12.0, 12.0, 120001)
    normals = np.random.default_rng(0).standard_normal(50000) * 2
    knots = np.arange(-8.0, 8.0 + 1 / 64, 1 / 64)  # the knots and the interval midpoints
    return np.concatenate([dense, normals, knots]).astype(np.float32)


def test_forward_and_gradient_within_1e7_of_the_closed_forms(fast):
    a = grid()
    x64 = a.astype(np.float64)  # the float32 inputs, exactly
    cdf, pdf = true_phi(x64)
    out, grad = gelu_and_grad(a)
    assert out.dtype == np.float32 and grad.dtype == np.float32 and out.shape == a.shape
    # Phi within 1e-7 of the truth, plus the rounding of the float32 output
    half_ulp = np.spacing(np.abs(out)).astype(np.float64) / 2
    err = np.abs(out.astype(np.float64) - x64 * cdf)
    worst = np.argmax(err - 1e-7 * np.maximum(1.0, np.abs(x64)) - half_ulp)
    assert err[worst] <= 1e-7 * max(1.0, abs(x64[worst])) + half_ulp[worst], f"gelu({a[worst]!r}) = {out[worst]!r}"
    gerr = np.abs(grad.astype(np.float64) - (cdf + x64 * pdf))
    assert gerr.max() <= 3e-7, f"gradient at {a[np.argmax(gerr)]!r} off by {gerr.max():.3g}"


def test_gradient_scales_the_incoming_gradient(fast):
    rng = np.random.default_rng(1)
    a = (rng.standard_normal((7, 300)) * 3).astype(np.float32)
    g = rng.standard_normal(a.shape).astype(np.float32)
    cdf, pdf = true_phi(a.astype(np.float64))
    _, grad = gelu_and_grad(a, g)
    np.testing.assert_allclose(grad, g * (cdf + a * pdf), rtol=0, atol=3e-7 * np.abs(g).max())


def test_identities_gelu_x_minus_gelu_minus_x_is_x(fast):
    # x Phi(x) - (-x) Phi(-x) = x (Phi(x) + Phi(-x)) = x; gelu'(x) + gelu'(-x) = 1: both only through Phi's symmetry
    a = np.linspace(-10, 10, 4001).astype(np.float32)
    out, grad = gelu_and_grad(a)
    out_neg, grad_neg = gelu_and_grad(-a)
    x64 = a.astype(np.float64)
    np.testing.assert_allclose(out.astype(np.float64) - out_neg, x64, rtol=0, atol=3e-7 * np.abs(x64).max())
    np.testing.assert_allclose(grad.astype(np.float64) + grad_neg, 1.0, rtol=0, atol=5e-7)


def test_special_values_as_x_times_phi(fast):
    a = np.array([np.nan, np.inf, -np.inf, -20.0, -100.0, -1e30, 0.0, -0.0, 20.0], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf * 0 in numpy
        out, grad = gelu_and_grad(a)
    assert np.isnan(out[0]) and out[1] == np.inf and np.isnan(out[2])  # -inf * Phi(-inf) = -inf * 0
    assert np.all(out[3:6] == 0) and np.all(np.signbit(out[3:6]))  # x * 0 for x < 0: -0.0
    assert out[6] == 0 and not np.signbit(out[6]) and out[7] == 0 and np.signbit(out[7])
    assert out[8] == np.float32(20.0)
    assert np.isnan(grad[0]) and np.isnan(grad[2])  # -inf * phi(-inf) = -inf * 0
    assert np.all(grad[3:6] == 0) and grad[6] == 0.5 and grad[7] == 0.5 and grad[8] == 1.0


def test_gradient_of_large_positive_values_is_one_and_nan_at_inf(fast):
    a = np.array([1e14, 1e20, 1e30, 3e38, np.inf], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _, grad = gelu_and_grad(a)
    assert np.all(grad[:4] == 1.0), grad  # Phi(x) + x phi(x) = 1 + x * 0 in float32
    assert np.isnan(grad[4])  # inf * phi(inf) = inf * 0, as the reference


def test_float32_reference_gives_the_same_special_values():
    # (the reference is what the fast path is measured against: its float32 answers at the ends)
    a = np.array([np.nan, np.inf, -np.inf, -30.0, 30.0], dtype=np.float32)
    with dispatch.use_impl("reference"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out, grad = gelu_and_grad(a)
    assert np.isnan(out[0]) and out[1] == np.inf and np.isnan(out[2]) and out[3] == 0 and out[4] == 30
    assert np.isnan(grad[0]) and np.isnan(grad[1]) and np.isnan(grad[2]) and grad[3] == 0 and grad[4] == 1


def test_float64_reference_far_left_tail():
    from minires.functional.erf import erfc
    assert np.all(erfc(np.array([28.0, 40.0, 1e10, np.inf])) == 0)  # erfc(28) ~ 6e-343 underflows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = F.gelu(mr.tensor(np.array([-40.0, -1e30, -np.inf]))).numpy()
    assert out[0] == 0 and out[1] == 0 and np.isnan(out[2])


def test_channels_last_and_strided_views_give_the_values_of_the_contiguous_array(fast):
    rng = np.random.default_rng(2)
    nhwc = (rng.standard_normal((3, 9, 7, 40)) * 3).astype(np.float32)
    views = {
        "channels_last": nhwc.transpose(0, 3, 1, 2),  # (N, C, H, W) view of NHWC memory
        "strided": nhwc[:, ::2, 1:, ::3],
        "reversed": nhwc[::-1, :, ::-1],
        "broadcast": np.broadcast_to(nhwc[:1, :1], (4, 5, 7, 40)),
    }
    for name, v in views.items():
        dense = np.ascontiguousarray(v)
        cdf, pdf = true_phi(dense.astype(np.float64))
        g = rng.standard_normal(v.shape).astype(np.float32)
        out, grad = gelu_and_grad(v, g)
        out_dense, grad_dense = gelu_and_grad(dense, g)
        assert out.shape == v.shape and grad.shape == v.shape, name
        np.testing.assert_array_equal(out, out_dense, err_msg=name)
        np.testing.assert_array_equal(grad, grad_dense, err_msg=name)
        np.testing.assert_allclose(out, dense * cdf, rtol=0, atol=1e-6, err_msg=name)  # and both right
        np.testing.assert_allclose(grad, g * (cdf + dense * pdf), rtol=0, atol=1e-6, err_msg=name)


def test_larger_than_one_chunk_and_empty(fast):
    # > 2 chunks of 2**15 elements, a ragged last one; then an empty array
    a = (np.random.default_rng(3).standard_normal((5, 20001)) * 4).astype(np.float32)
    cdf, _ = true_phi(a.astype(np.float64))
    out, _ = gelu_and_grad(a)
    np.testing.assert_allclose(out, a * cdf, rtol=0, atol=1e-6)
    empty, grad = gelu_and_grad(np.zeros((0, 3), dtype=np.float32))
    assert empty.shape == (0, 3) and grad.shape == (0, 3)


def test_dispatch_runs_the_fast_path_for_float32_on_the_cpu_only(monkeypatch):
    calls = []
    forward = GELUCPU.forward
    monkeypatch.setattr(GELUCPU, "forward", lambda self, *a, **k: (calls.append(a[0].dtype), forward(self, *a, **k))[1])
    x32, x64 = mr.randn(4, 5, dtype=mr.float32), mr.randn(4, 5, dtype=mr.float64)
    with dispatch.use_impl("fast"):
        assert dispatch.choose(GELU, (x32,), {"approximate": "none"}) is GELUCPU
        assert dispatch.choose(GELU, (x64,), {"approximate": "none"}) is GELU
        assert dispatch.choose(GELU, (x32,), {"approximate": "tanh"}) is GELU
        F.gelu(x32), F.gelu(x64), F.gelu(x32, approximate="tanh"), mr.nn.GELU()(x32)
    assert calls == [np.float32, np.float32]
    with dispatch.use_impl("reference"):
        assert dispatch.choose(GELU, (x32,), {"approximate": "none"}) is GELU
        F.gelu(x32)
    assert len(calls) == 2


def test_bad_input_is_refused_naming_gelu():
    with pytest.raises(ValueError, match="gelu: argument 'approximate'"):
        F.gelu(mr.randn(3, dtype=mr.float32), approximate="fast")
    with pytest.raises(TypeError, match="gelu"):
        F.gelu(mr.zeros(3, dtype=mr.int64))


def test_broadcast_input_matches_its_contiguous_copy():
    # A stride-0 view ravels into a copy whose element order differs from a fresh output's layout: the
    # fast path must not pair them (a review found rows scrambled by up to 1.8).
    base = np.arange(6, dtype=np.float32) - 2.5
    for shape in ((4, 6), (3, 50, 6)):
        view = np.broadcast_to(base, shape)
        got = mr.nn.GELU()(mr.tensor(view)).numpy()
        want = mr.nn.GELU()(mr.tensor(np.ascontiguousarray(view))).numpy()
        assert got.shape == shape
        np.testing.assert_array_equal(got, want)


def test_special_values_inside_large_arrays_leave_their_neighbours_right(fast):
    # NaN turns into a garbage table index (wrapped into the table) and +-8 sit on the clip bounds: scattered
    # through > 2 pieces of 2**15 values, they must not disturb the values around them.
    rng = np.random.default_rng(4)
    a = (rng.standard_normal(3 * 2**15 + 123) * 3).astype(np.float32)
    top = np.nextafter(np.float32(8), np.float32(0))
    specials = np.array([np.nan, 8.0, -8.0, top, -top, 7.99, -7.99, 1 / 32, -1 / 32, 0.0], dtype=np.float32)
    where = rng.choice(a.size, size=400, replace=False)
    a[where] = np.resize(specials, where.size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN cast to an integer index
        out, grad = gelu_and_grad(a)
    nan = np.isnan(a)
    assert np.array_equal(np.isnan(out), nan) and np.array_equal(np.isnan(grad), nan)
    x64 = a[~nan].astype(np.float64)
    cdf, pdf = true_phi(x64)
    half_ulp = np.spacing(np.abs(out[~nan])).astype(np.float64) / 2
    assert np.all(np.abs(out[~nan] - x64 * cdf) <= 1e-7 * np.maximum(1.0, np.abs(x64)) + half_ulp)
    assert np.abs(grad[~nan] - (cdf + x64 * pdf)).max() <= 3e-7


def test_forward_without_a_gradient_to_come_gives_the_same_values(fast):
    # under no_grad the fast path skips the derivative: the values are those of the closed form all the same
    a = np.concatenate([grid(), (np.random.default_rng(5).standard_normal(70000) * 3).astype(np.float32)])
    x64 = a.astype(np.float64)
    cdf, _ = true_phi(x64)
    with mr.no_grad():
        out = F.gelu(mr.tensor(a, requires_grad=True)).numpy()
    half_ulp = np.spacing(np.abs(out)).astype(np.float64) / 2
    assert np.all(np.abs(out - x64 * cdf) <= 1e-7 * np.maximum(1.0, np.abs(x64)) + half_ulp)
    with_grad, _ = gelu_and_grad(a)
    np.testing.assert_array_equal(out, with_grad)
