"""PyTorch-style tensor API: joining, splitting, broadcasting, statistics, clamping, in-place ops,
creation functions, save/load and grad modes.

Forwards are checked against NumPy (np.concatenate, np.var, np.linalg.norm, np.tile, ...), backwards
by finite differences (mr.gradcheck in float64), and identities where they exist (cat of chunk is the
original). The differentiable ops run on every `device` of tests/conftest.py, the CuPy stand-in too.
"""
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minires as mr
import minires.nn.functional as F
from minires import dispatch

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
shapes = st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple)
seeds = st.integers(0, 2**16)


def t64(a, device="cpu", requires_grad=True):
    return mr.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=requires_grad)


def distinct(rng, shape):
    """Non-zero values whose magnitudes differ by >= 0.2: no ties for max/min/clamp, no |x| kink at 0."""
    n = int(np.prod(shape))
    mags = 0.3 + 0.2 * rng.permutation(n)
    return (mags * rng.choice([-1.0, 1.0], n)).reshape(shape)


# ---- cat, stack, chunk, split ----------------------------------------------------------------------

@fixture_ok
@given(shape=shapes, data=st.data(), seed=seeds)
def test_cat_matches_numpy_and_gradchecks(device, shape, data, seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    sizes = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    rng = np.random.default_rng(seed)
    arrays = []
    for s in sizes:
        sh = list(shape)
        sh[dim] = s
        arrays.append(rng.standard_normal(sh))
    xs = [t64(a, device) for a in arrays]
    out = mr.cat(xs, dim)
    np.testing.assert_array_equal(out.numpy(), np.concatenate(arrays, axis=dim))
    assert out.device == xs[0].device
    assert mr.gradcheck(lambda *xs: mr.cat(list(xs), dim=dim), xs)


@fixture_ok
@given(shape=shapes, n=st.integers(1, 3), data=st.data(), seed=seeds)
def test_stack_matches_numpy_and_gradchecks(device, shape, n, data, seed):
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape) for _ in range(n)]
    xs = [t64(a, device) for a in arrays]
    np.testing.assert_array_equal(mr.stack(xs, dim).numpy(), np.stack(arrays, axis=dim))
    assert mr.gradcheck(lambda *xs: mr.stack(list(xs), dim) * 2, xs)


@fixture_ok
@given(shape=shapes, data=st.data(), seed=seeds)
def test_chunk_and_split_match_numpy_and_cat_back(device, shape, data, seed):
    dim = data.draw(st.integers(0, len(shape) - 1))
    chunks = data.draw(st.integers(1, 5))
    a = np.random.default_rng(seed).standard_normal(shape)
    x = t64(a, device)
    n = shape[dim]
    # PyTorch's chunk: pieces of ceil(n / chunks), so fewer than `chunks` may come back
    # (np.array_split would spread the remainder instead; the two agree when chunks divides n).
    size = -(-n // chunks)
    pieces = x.chunk(chunks, dim)
    want = np.split(a, list(range(size, n, size)), axis=dim)
    assert len(pieces) == len(want) <= chunks
    for p, w in zip(pieces, want):
        np.testing.assert_array_equal(p.numpy(), w)
    if n % chunks == 0:
        for p, w in zip(pieces, np.array_split(a, chunks, axis=dim)):
            np.testing.assert_array_equal(p.numpy(), w)
    np.testing.assert_array_equal(mr.cat(list(pieces), dim).numpy(), a)  # identity
    sections = data.draw(st.lists(st.integers(0, n), min_size=1, max_size=3).filter(lambda s: sum(s) <= n))
    sections = sections + [n - sum(sections)]
    parts = x.split(sections, dim)
    assert [p.shape[dim] for p in parts] == sections
    for p, w in zip(parts, np.split(a, np.cumsum(sections)[:-1], axis=dim)):
        np.testing.assert_array_equal(p.numpy(), w)
    np.testing.assert_array_equal(mr.cat(list(parts), dim).numpy(), a)
    # each piece weighted differently, so a gradient routed to the wrong piece fails
    assert mr.gradcheck(lambda x: mr.cat([p * (i + 1) for i, p in enumerate(x.chunk(chunks, dim))], dim), [x])
    assert mr.gradcheck(lambda x: x.split(sections, dim)[-1].exp(), [x])


def test_split_by_size_and_empty_dims():
    x = mr.arange(7)
    assert [p.tolist() for p in x.split(3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [p.shape for p in mr.zeros(0, 2).chunk(3)] == [(0, 2)] * 3  # as PyTorch: `chunks` empty pieces
    assert [p.shape for p in mr.zeros(0, 2).split(2)] == [(0, 2)]
    assert [p.shape for p in mr.zeros(5).chunk(4)] == [(2,), (2,), (1,)]


# ---- where, maximum, minimum, exp, log -----------------------------------------------------------

broadcast_triples = st.sampled_from([((3,), (3,), (3,)), ((2, 3), (3,), (2, 1)), ((1,), (2, 3), ()),
                                     ((2, 1, 3), (4, 1), (1, 3)), ((), (2,), (2,))])


@fixture_ok
@given(shapes3=broadcast_triples, seed=seeds)
def test_where_matches_numpy_and_gradchecks(device, shapes3, seed):
    rng = np.random.default_rng(seed)
    sc, sa, sb = shapes3
    c = rng.random(sc) < 0.5
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    cond = mr.tensor(c, device=device)
    x, y = t64(a, device), t64(b, device)
    np.testing.assert_array_equal(mr.where(cond, x, y).numpy(), np.where(c, a, b))
    np.testing.assert_array_equal(mr.where(cond, x, 0.5).numpy(), np.where(c, a, 0.5))
    assert mr.gradcheck(lambda x, y: mr.where(cond, x, y), [x, y])
    assert mr.gradcheck(lambda x: mr.where(cond, 2.0, x * 3), [x])


def test_where_with_numbers_and_condition_alone():
    c = np.array([[True, False], [False, True]])
    out = mr.where(mr.tensor(c), 1.0, 0)
    assert out.dtype == np.float32 and out.tolist() == [[1, 0], [0, 1]]
    rows, cols = mr.where(mr.tensor(c))
    assert rows.tolist() == [0, 1] and cols.tolist() == [0, 1]
    x = mr.tensor([1.0, -2.0, 3.0])
    assert mr.where(x > 0, x, mr.zeros(3)).tolist() == [1.0, 0.0, 3.0]


@fixture_ok
@given(pair=st.sampled_from([((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 2))]), seed=seeds)
def test_maximum_minimum_match_numpy_and_gradcheck(device, pair, seed):
    rng = np.random.default_rng(seed)
    both = distinct(rng, (int(np.prod(pair[0])) + int(np.prod(pair[1])),))  # no ties between a and b
    a, b = both[:int(np.prod(pair[0]))].reshape(pair[0]), both[int(np.prod(pair[0])):].reshape(pair[1])
    x, y = t64(a, device), t64(b, device)
    np.testing.assert_array_equal(mr.maximum(x, y).numpy(), np.maximum(a, b))
    np.testing.assert_array_equal(mr.minimum(x, y).numpy(), np.minimum(a, b))
    assert mr.gradcheck(mr.maximum, [x, y])
    assert mr.gradcheck(mr.minimum, [x, y])


def test_maximum_tie_splits_the_gradient(device):
    x, y = t64([1.0, 2.0, 3.0], device), t64([1.0, 5.0, 0.0], device)
    mr.maximum(x, y).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.5, 0, 1])
    np.testing.assert_array_equal(y.grad.numpy(), [0.5, 1, 0])


def test_maximum_of_integers():
    assert mr.minimum(mr.tensor([0, 200], dtype=mr.uint8), mr.tensor([2, 100], dtype=mr.uint8)).tolist() == [0, 100]


def test_top_level_exp_log(device):
    a = np.array([[0.5, 1.0], [2.0, 3.0]])
    x = t64(a, device)
    np.testing.assert_allclose(mr.exp(x).numpy(), np.exp(a), rtol=1e-14)
    np.testing.assert_allclose(mr.log(x).numpy(), np.log(a), rtol=1e-14)
    assert mr.gradcheck(lambda x: mr.log(mr.exp(x) + x), [x])


# ---- clamp ---------------------------------------------------------------------------------------

@fixture_ok
@given(shape=shapes, lo=st.sampled_from([None, -0.8, 0.2]), hi=st.sampled_from([None, 1.0, 2.0]), seed=seeds)
def test_clamp_matches_numpy_clip_and_gradchecks(device, shape, lo, hi, seed):
    if lo is None and hi is None:
        lo = 0.0
    a = distinct(np.random.default_rng(seed), shape)  # magnitudes 0.3, 0.5, ...: never on these bounds
    x = t64(a, device)
    np.testing.assert_array_equal(x.clamp(lo, hi).numpy(), np.clip(a, lo, hi))
    np.testing.assert_array_equal(x.clip(min=lo, max=hi).numpy(), np.clip(a, lo, hi))
    assert mr.gradcheck(lambda x: x.clamp(min=lo, max=hi), [x])


@fixture_ok
@given(seed=seeds)
def test_clamp_with_tensor_bounds_gradchecks(device, seed):
    rng = np.random.default_rng(seed)
    v = distinct(rng, (8,))  # all distinct: x, min and max never tie (min > max somewhere is fine)
    a, lo, hi = v[:4].reshape(2, 2), v[4:6], v[6:].reshape(2, 1)
    x, tlo, thi = t64(a, device), t64(lo, device), t64(hi, device)
    np.testing.assert_array_equal(x.clamp(tlo, thi).numpy(), np.minimum(np.maximum(a, lo), hi))
    assert mr.gradcheck(lambda x, lo, hi: x.clamp(lo, hi), [x, tlo, thi])


def test_clamp_gradient_includes_the_bounds():
    x = t64([-1.0, 0.0, 0.5, 1.0, 2.0])
    x.clamp(0, 1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 1, 0])  # PyTorch's rule: ends included


def _loop_clamp(a, lo, hi):
    """Element by element: the value limited to [lo, hi] (NaN stays NaN), and whether x passed through."""
    out, passed = [], []
    for v in a.ravel():
        c = v if math.isnan(v) else min(max(v, -math.inf if lo is None else lo), math.inf if hi is None else hi)
        out.append(c)
        passed.append(not math.isnan(v) and (lo is None or v >= lo) and (hi is None or v <= hi))
    return np.array(out).reshape(a.shape), np.array(passed, dtype=float).reshape(a.shape)


@pytest.mark.parametrize("lo, hi", [(0.0, 6.0), (-1, 1), (None, 0.25), (0.5, None), (0.25, 0.25)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels_last", [False, True])
def test_clamp_with_number_bounds_matches_loops_at_the_bounds_and_on_nan(device, lo, hi, dtype, channels_last):
    """relu6/hardtanh's clamp: exact bounds get the gradient (ends included), NaN propagates and gets none."""
    rng = np.random.default_rng(3)
    a = rng.choice(np.array([-1.0, 0.0, 0.25, 0.5, 1.0, 6.0, 7.0, -0.0, np.nan]), size=(3, 4, 2, 3)).astype(dtype)
    a[0, 0, 0, :2] = [np.inf, -np.inf]
    g = rng.standard_normal(a.shape).astype(dtype)
    x = mr.tensor(np.ascontiguousarray(a.transpose(0, 2, 3, 1)), device=device).permute(0, 3, 1, 2) \
        if channels_last else mr.tensor(a, device=device)
    x.requires_grad = True
    y = x.clamp(lo, hi)
    out, passed = _loop_clamp(a.astype(np.float64), lo, hi)
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y.numpy(), out.astype(dtype))
    y.backward(mr.tensor(g, device=device))
    np.testing.assert_array_equal(x.grad.numpy(), g * passed.astype(dtype))
    with mr.no_grad():  # no mask is kept then; the values are the same
        np.testing.assert_array_equal(x.clamp(lo, hi).numpy(), out.astype(dtype))


@dispatch.use_impl("fast")  # even in a run with MINIRES_IMPL=reference
def test_clamp_runs_the_cpu_fast_path_only_for_number_bounds():
    x = mr.randn(2, 3, requires_grad=True)
    ran = lambda y: type(y.grad_fn).__name__  # noqa: E731
    assert ran(x.clamp(0.0, 6.0)) == ran(F.relu6(x)) == ran(F.hardtanh(x)) == ran(x.clamp(max=1)) == "ClampCPU"
    # tensor, NumPy-scalar or NaN bounds, lo > hi and a 0-d input take the reference's rules
    for y in (x.clamp(mr.zeros(3)), x.clamp(np.float64(0.5)), x.clamp(math.nan, 1.0), x.clamp(2.0, 1.0),
              mr.tensor(1.0, requires_grad=True).clamp(0.0, 0.5)):
        assert ran(y) == "Clamp"
    with dispatch.use_impl("reference"):
        assert ran(F.relu6(x)) == "Clamp"


# ---- var, std, norm -------------------------------------------------------------------------------

@fixture_ok
@given(shape=shapes, data=st.data(), seed=seeds)
def test_var_std_match_numpy_and_gradcheck(device, shape, data, seed):
    dim = data.draw(st.sampled_from([None] + list(range(-len(shape), len(shape)))))
    keepdim = data.draw(st.booleans())
    a = np.random.default_rng(seed).standard_normal(shape)
    x = t64(a, device)
    n = a.size if dim is None else shape[dim]
    for unbiased, ddof in ((True, 1), (False, 0)):
        if n > ddof:
            want = np.var(a, axis=dim, ddof=ddof, keepdims=keepdim)
            np.testing.assert_allclose(x.var(dim, unbiased, keepdim).numpy(), want, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(x.std(dim, unbiased=unbiased, keepdim=keepdim).numpy(), np.sqrt(want),
                                       rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(x.var(dim, correction=ddof, keepdim=keepdim).numpy(), want,
                                       rtol=1e-12, atol=1e-15)
            assert mr.gradcheck(lambda x: x.var(dim, unbiased, keepdim), [x])
            assert mr.gradcheck(lambda x: x.std(dim, unbiased=unbiased, keepdim=keepdim), [x])


def test_var_defaults_and_overloads():
    a = np.array([[1.0, 2.0, 4.0], [3.0, 5.0, 9.0]])
    x = mr.tensor(a)
    assert np.isclose(x.var().item(), np.var(a, ddof=1))  # unbiased by default, as PyTorch
    assert np.isclose(x.var(False).item(), np.var(a))  # the old var(unbiased) overload
    np.testing.assert_allclose(x.std((0, 1)).numpy(), np.std(a, ddof=1), rtol=1e-6)
    assert np.isnan(mr.tensor([1.0]).var().item())  # N - 1 = 0, as PyTorch: NaN, no error


def test_std_gradient_is_zero_for_constant_input():
    x = t64([2.0, 2.0, 2.0])
    x.std().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0, 0])


@fixture_ok
@given(shape=shapes, p=st.sampled_from([1, 2, 3, 1.5, np.inf, -np.inf, "fro"]), data=st.data(), seed=seeds)
def test_norm_matches_numpy_and_gradchecks(device, shape, p, data, seed):
    dim = data.draw(st.sampled_from([None] + list(range(len(shape)))))
    keepdim = data.draw(st.booleans())
    a = distinct(np.random.default_rng(seed), shape)
    x = t64(a, device)
    order = 2 if p == "fro" else p
    if dim is None:
        want = np.linalg.norm(a.reshape(-1), ord=order)
        want = np.reshape(want, (1,) * a.ndim) if keepdim else want
    else:
        want = np.linalg.norm(a, ord=order, axis=dim, keepdims=keepdim)
    got = x.norm(p, dim, keepdim)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert mr.gradcheck(lambda x: x.norm(p=p, dim=dim, keepdim=keepdim), [x])


def test_norm_special_values():
    x = t64([[0.0, 3.0], [-4.0, 0.0]])
    assert x.norm().item() == 5.0 and x.norm(0).item() == 2.0
    z = t64([0.0, 0.0])
    z.norm().backward()
    np.testing.assert_array_equal(z.grad.numpy(), [0, 0])  # 0 at the origin, as PyTorch (not NaN)
    y = t64([1.0, -3.0, 3.0])
    y.norm(float("inf")).backward()
    np.testing.assert_array_equal(y.grad.numpy(), [0, -0.5, 0.5])  # ties share the gradient


# ---- expand, repeat, clone, contiguous, casts ---------------------------------------------------

expand_cases = st.sampled_from([((3,), (2, 3)), ((1,), (4,)), ((2, 1), (2, 4)), ((2, 1), (3, -1, 2)),
                                ((), (2, 2)), ((1, 3, 1), (2, 3, 3)), ((2, 3), (2, 3))])


@fixture_ok
@given(case=expand_cases, seed=seeds)
def test_expand_matches_broadcast_to_and_gradchecks(device, case, seed):
    shape, sizes = case
    a = np.random.default_rng(seed).standard_normal(shape)
    x = t64(a, device)
    want_shape = tuple(s if s != -1 else shape[i - (len(sizes) - len(shape))] for i, s in enumerate(sizes))
    np.testing.assert_array_equal(x.expand(*sizes).numpy(), np.broadcast_to(a, want_shape))
    np.testing.assert_array_equal(x.expand(sizes).numpy(), np.broadcast_to(a, want_shape))
    assert mr.gradcheck(lambda x: x.expand(*sizes) * mr.arange(want_shape[-1], dtype=mr.float64, device=device),
                        [x])


@fixture_ok
@given(shape=shapes, extra=st.lists(st.integers(1, 2), max_size=1), data=st.data(), seed=seeds)
def test_repeat_matches_tile_and_gradchecks(device, shape, extra, data, seed):
    reps = tuple(extra) + tuple(data.draw(st.lists(st.integers(0, 3), min_size=len(shape), max_size=len(shape))))
    a = np.random.default_rng(seed).standard_normal(shape)
    x = t64(a, device)
    np.testing.assert_array_equal(x.repeat(*reps).numpy(), np.tile(a, reps))
    assert mr.gradcheck(lambda x: x.repeat(reps) ** 2, [x])


def test_clone_and_contiguous(device):
    a = np.arange(6.0).reshape(2, 3)
    x = t64(a, device)
    c = x.clone()
    with mr.no_grad():
        x.fill_(7)
    np.testing.assert_array_equal(c.numpy(), a)  # a copy, not a view
    assert c.requires_grad and mr.gradcheck(lambda x: x.clone() * x, [x])
    assert x.contiguous() is x
    t = x.T
    ct = t.contiguous()
    assert ct is not t and ct.array.flags.c_contiguous and np.array_equal(ct.numpy(), t.numpy())
    assert mr.gradcheck(lambda x: x.T.contiguous().reshape(6) * mr.arange(6, dtype=mr.float64, device=device), [x])


def test_long_and_int_leave_the_graph():
    x = mr.tensor([1.7, -2.2], requires_grad=True)
    assert x.long().dtype == np.int64 and x.long().tolist() == [1, -2] and not x.long().requires_grad
    assert x.int().dtype == np.int32 and x.to(mr.int64).dtype == np.int64


# ---- in-place ------------------------------------------------------------------------------------

def test_inplace_ops_match_numpy_and_return_self(device):
    a = np.arange(6.0).reshape(2, 3)
    x = t64(a, device, requires_grad=False)
    assert x.add_(t64([1.0, 2.0, 3.0], device, False), alpha=2) is x
    want = a + 2 * np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(x.numpy(), want)
    assert x.mul_(t64([[2.0], [3.0]], device, False)) is x
    want = want * [[2.0], [3.0]]
    np.testing.assert_array_equal(x.numpy(), want)
    x.add_(1)
    x.mul_(0.5)
    np.testing.assert_array_equal(x.numpy(), (want + 1) * 0.5)
    x[0, 1:] = 9.0
    x[1] = t64([4.0, 5.0, 6.0], device, False)
    x[mr.tensor(np.array([True, False]), device=device), 0] = -1.0
    np.testing.assert_array_equal(x.numpy(), [[-1, 9, 9], [4, 5, 6]])
    assert x.copy_(t64([1.0, 2.0, 3.0], requires_grad=False)) is x  # broadcast, from the CPU
    np.testing.assert_array_equal(x.numpy(), [[1, 2, 3], [1, 2, 3]])
    assert x.fill_(2.5) is x and np.all(x.numpy() == 2.5)
    assert x.zero_() is x and np.all(x.numpy() == 0)


def test_inplace_on_a_tensor_requiring_grad():
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    for op, call in [("zero_", lambda: x.zero_()), ("fill_", lambda: x.fill_(1)),
                     ("copy_", lambda: x.copy_(mr.zeros(2))), ("add_", lambda: x.add_(1)),
                     ("mul_", lambda: x.mul_(2)), ("setitem", lambda: x.__setitem__(0, 5.0))]:
        with pytest.raises(RuntimeError, match=f"{op}: .*requires grad"):
            call()
    assert x.tolist() == [1.0, 2.0]
    with mr.no_grad():  # as PyTorch: allowed outside the graph (an optimizer step)
        x.mul_(3)
        x[1] = 0.0
    assert x.tolist() == [3.0, 0.0] and x.requires_grad
    w = mr.tensor([1.0, 1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="add_: .*must not require grad"):
        mr.zeros(2).add_(w)


def test_inplace_errors_name_op_and_shapes():
    x = mr.zeros(2, 3)
    with pytest.raises(ValueError, match=r"add_: .*\(4,\).*\(2, 3\)"):
        x.add_(mr.zeros(4))
    with pytest.raises(ValueError, match=r"copy_: .*\(3, 3\).*\(2, 3\)"):
        x.copy_(mr.zeros(3, 3))
    with pytest.raises(ValueError, match=r"mul_: .*\(2, 1, 3\)"):
        x.mul_(mr.zeros(2, 1, 3))  # would broadcast the output itself
    with pytest.raises(TypeError, match="add_"):
        mr.zeros(2, dtype=mr.int64).add_(1.5)  # as PyTorch: a float result cannot go into int64
    with pytest.raises(TypeError, match="fill_"):
        x.fill_("a")
    with pytest.raises(IndexError, match=r"setitem: .*\(2, 3\)"):
        x[5] = 1.0
    with pytest.raises(ValueError, match="setitem"):
        x[0] = mr.zeros(4)
    with pytest.raises(RuntimeError, match="fill_: .*read-only"):
        mr.zeros(3).expand(2, 3).fill_(1)


def test_inplace_writes_into_read_only_memory_are_refused_by_its_flag():
    frozen = np.zeros(3)
    frozen.flags.writeable = False
    t = mr.from_numpy(frozen)
    for op, call in [("add_", lambda: t.add_(1)), ("copy_", lambda: t.copy_(mr.ones(3, dtype=mr.float64))),
                     ("setitem", lambda: t.__setitem__(0, 5.0))]:
        with pytest.raises(RuntimeError, match=rf"{op}: the tensor \(shape \(3,\)\) is read-only"):
            call()
    assert t.tolist() == [0.0, 0.0, 0.0]
    t.clone().add_(1)  # a copy owns writeable memory


# ---- errors of the differentiable ops ------------------------------------------------------------

def test_errors_name_the_op_argument_and_shapes():
    with pytest.raises(ValueError, match=r"cat: .*\(2, 3\).*\(2, 4\)"):
        mr.cat([mr.zeros(2, 3), mr.zeros(2, 4)])
    with pytest.raises(ValueError, match="cat: .*number"):
        mr.cat([mr.zeros(2, 3), mr.zeros(3)])
    with pytest.raises(ValueError, match="cat: .*non-empty"):
        mr.cat([])
    with pytest.raises(TypeError, match="cat: expected a list"):
        mr.cat(mr.zeros(2, 3))
    with pytest.raises(TypeError, match="cat: element 1"):
        mr.cat([mr.zeros(2), np.zeros(2)])
    with pytest.raises(ValueError, match="cat: dim 2"):
        mr.cat([mr.zeros(2, 3)], 2)
    with pytest.raises(ValueError, match=r"stack: .*\(2,\).*\(3,\)"):
        mr.stack([mr.zeros(2), mr.zeros(3)])
    with pytest.raises(ValueError, match="chunk: chunks must be positive, got 0"):
        mr.zeros(4).chunk(0)
    with pytest.raises(ValueError, match="chunk: .*at least one dimension"):
        mr.tensor(1.0).chunk(2)
    with pytest.raises(ValueError, match=r"split: sections \[1, 2\].*size 4"):
        mr.zeros(4).split([1, 2])
    with pytest.raises(ValueError, match="split: split_size must be positive"):
        mr.zeros(4).split(0)
    with pytest.raises(ValueError, match=r"expand: cannot expand dim 1 of size 3 to 4 \(shape \(2, 3\)"):
        mr.zeros(2, 3).expand(2, 4)
    with pytest.raises(ValueError, match="expand: 1 sizes"):
        mr.zeros(2, 3).expand(3)
    with pytest.raises(ValueError, match="expand: size -1 is not allowed for the new leading dim"):
        mr.zeros(3).expand(-1, 3)
    with pytest.raises(ValueError, match="repeat: 1 sizes"):
        mr.zeros(2, 3).repeat(2)
    with pytest.raises(ValueError, match="repeat: sizes must be non-negative"):
        mr.zeros(2).repeat(-1)
    with pytest.raises(ValueError, match=r"where: .*\(2,\).*\(3,\)"):
        mr.where(mr.zeros(2) > 0, mr.zeros(3), mr.zeros(2))
    with pytest.raises(TypeError, match="where: argument 'condition' must be a bool tensor"):
        mr.where(mr.zeros(2), mr.zeros(2), mr.zeros(2))
    with pytest.raises(ValueError, match=r"maximum: .*\(2,\).*\(3,\)"):
        mr.maximum(mr.zeros(2), mr.zeros(3))
    with pytest.raises(TypeError, match="minimum: argument 'input'"):
        mr.minimum([1.0], mr.zeros(1))
    with pytest.raises(ValueError, match="clamp: at least one"):
        mr.zeros(2).clamp()
    with pytest.raises(TypeError, match="clamp: argument 'min'"):
        mr.zeros(2).clamp(min="a")
    with pytest.raises(TypeError, match="var: input must be a floating-point tensor"):
        mr.tensor([1, 2]).var()
    with pytest.raises(ValueError, match="std: dim 3"):
        mr.zeros(2, 2).std(3)
    with pytest.raises(ValueError, match="norm: p="):
        mr.zeros(2).norm("nuc")
    with pytest.raises(ValueError, match="norm: p must be"):
        mr.zeros(2).norm(-1)
    with pytest.raises(ValueError, match="norm: the inf-norm of an empty"):
        mr.zeros(0).norm(float("inf"))


# ---- creation -------------------------------------------------------------------------------------

def test_arange_linspace_eye_match_numpy():
    for args in [(5,), (2, 9, 3), (10, 0, -3), (0, 0)]:
        t = mr.arange(*args)
        assert t.dtype == np.int64 and t.tolist() == np.arange(*args).tolist()
    t = mr.arange(0, 1, 0.25)
    assert t.dtype == np.float32 and np.array_equal(t.numpy(), np.arange(0, 1, 0.25, dtype=np.float32))
    assert mr.arange(3, dtype=mr.float64).dtype == np.float64
    np.testing.assert_allclose(mr.linspace(-1, 2, 7).numpy(), np.linspace(-1, 2, 7), rtol=1e-6)
    assert mr.linspace(0, 1, 5).dtype == np.float32 and mr.linspace(0, 1, 0).shape == (0,)
    assert np.array_equal(mr.eye(3).numpy(), np.eye(3)) and np.array_equal(mr.eye(2, 4).numpy(), np.eye(2, 4))
    assert mr.eye(2).dtype == np.float32
    with pytest.raises(ValueError, match="arange: step must be nonzero"):
        mr.arange(0, 5, 0)
    with pytest.raises(ValueError, match="arange: the sign of step"):
        mr.arange(5, 0)
    with pytest.raises(ValueError, match="linspace: argument 'steps'"):
        mr.linspace(0, 1, -1)
    with pytest.raises(TypeError, match="eye: argument 'n'"):
        mr.eye(2.5)


def test_randint_bounds_dtype_and_seed():
    mr.manual_seed(0)
    t = mr.randint(3, 7, (200,))
    assert t.dtype == np.int64 and t.shape == (200,)
    assert t.numpy().min() >= 3 and t.numpy().max() <= 6 and set(t.tolist()) == {3, 4, 5, 6}
    assert set(mr.randint(2, (50,)).tolist()) <= {0, 1}
    mr.manual_seed(1)
    a = mr.randint(0, 100, (5,)).tolist()
    mr.manual_seed(1)
    assert mr.randint(0, 100, (5,)).tolist() == a
    with pytest.raises(ValueError, match=r"randint: low \(5\) must be less than high \(5\)"):
        mr.randint(5, 5, (2,))
    with pytest.raises(TypeError, match="randint: size"):
        mr.randint(0, 5, 3)


def test_like_functions_and_empty(device):
    x = mr.zeros(2, 3, dtype=mr.float64, device=device)
    for f, value in [(mr.zeros_like, 0.0), (mr.ones_like, 1.0)]:
        t = f(x)
        assert t.shape == (2, 3) and t.dtype == np.float64 and t.device == x.device and np.all(t.numpy() == value)
    t = mr.full_like(x, 4, dtype=mr.int32)
    assert t.dtype == np.int32 and np.all(t.numpy() == 4)
    for f in (mr.empty_like, mr.rand_like, mr.randn_like):
        t = f(x)
        assert t.shape == (2, 3) and t.dtype == np.float64 and t.device == x.device
    r = mr.rand_like(x).numpy()
    assert np.all((0 <= r) & (r < 1))
    assert mr.ones_like(x, device="cpu").device == "cpu"
    assert mr.empty(4, 5).shape == (4, 5) and mr.empty((2,), dtype=mr.int64).dtype == np.int64
    assert mr.zeros_like(x, requires_grad=True).requires_grad
    with pytest.raises(TypeError, match="randn_like: needs a floating-point dtype"):
        mr.randn_like(mr.zeros(2, dtype=mr.int64))
    with pytest.raises(TypeError, match="zeros_like: argument 'input'"):
        mr.zeros_like(np.zeros(2))


def test_from_numpy_shares_memory():
    a = np.arange(4.0)
    t = mr.from_numpy(a)
    assert t.dtype == np.float64
    a[0] = 10
    assert t.tolist()[0] == 10
    with mr.no_grad():
        t[1] = 20
    assert a[1] == 20
    with pytest.raises(TypeError, match="from_numpy: expected a numpy.ndarray"):
        mr.from_numpy([1, 2])
    with pytest.raises(TypeError, match="from_numpy: unsupported dtype"):
        mr.from_numpy(np.array(["a"]))


# ---- save / load ----------------------------------------------------------------------------------

def test_save_load_tensor_and_state_dict(tmp_path):
    pytest.importorskip("safetensors")
    t = mr.tensor(np.arange(6.0).reshape(2, 3))
    mr.save(t, tmp_path / "t.safetensors")
    back = mr.load(tmp_path / "t.safetensors")
    assert isinstance(back, mr.Tensor) and back.dtype == np.float64 and np.array_equal(back.numpy(), t.numpy())
    model = mr.nn.Linear(3, 2)
    sd = dict(model.state_dict())
    sd["zz_int"] = mr.tensor([1, 2], dtype=mr.int32)
    sd["aa_bool"] = mr.tensor([True, False])
    mr.save(sd, str(tmp_path / "sd.safetensors"))
    loaded = mr.load(str(tmp_path / "sd.safetensors"))
    assert list(loaded) == list(sd)  # order kept
    for k, v in sd.items():
        assert loaded[k].dtype == v.dtype and np.array_equal(loaded[k].numpy(), v.numpy())
    model2 = mr.nn.Linear(3, 2)
    model2.load_state_dict(loaded if "zz_int" not in loaded else {k: loaded[k] for k in model.state_dict()})
    assert np.array_equal(model2.weight.numpy(), model.weight.numpy())
    assert sorted(os.listdir(tmp_path)) == ["sd.safetensors", "t.safetensors"]  # no temp files left


def test_save_refuses_other_objects_and_load_names_bad_files(tmp_path):
    pytest.importorskip("safetensors")
    # what save refuses under a .pt name is the serialization tests' (tests/nn/test_serialization*.py)
    with pytest.raises(TypeError, match="save: a .safetensors file holds a Tensor or a flat dict"):
        mr.save({"a": np.zeros(2)}, tmp_path / "x.safetensors")
    assert not os.path.exists(tmp_path / "x.safetensors")
    (tmp_path / "bad").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"load: .*bad.* is a text file \(it starts with 'not a safetensors file'\), "
                                         r"not a PyTorch checkpoint or a safetensors file"):
        mr.load(tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match="load: "):
        mr.load(tmp_path / "missing")


def test_load_map_location(standin, tmp_path):
    pytest.importorskip("safetensors")
    mr.save({"w": mr.ones(2, device="cuda")}, tmp_path / "w.safetensors")
    assert mr.load(tmp_path / "w.safetensors")["w"].device == "cpu"
    assert mr.load(tmp_path / "w.safetensors", map_location="cuda")["w"].device == "cuda:0"


# ---- grad modes and mr.cuda -------------------------------------------------------------------------

def test_inference_mode_and_set_grad_enabled():
    x = mr.tensor([1.0], requires_grad=True)
    with mr.inference_mode():
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad

    @mr.inference_mode
    def f(x):
        return x * 2

    @mr.inference_mode()
    def g(x):
        return x * 2
    assert not f(x).requires_grad and not g(x).requires_grad and mr.is_grad_enabled()
    with mr.no_grad(), mr.inference_mode(False):
        assert not mr.is_grad_enabled()  # mode=False changes nothing, as PyTorch
    try:
        mr.set_grad_enabled(False)  # as a function: takes effect at once
        assert not (x * 2).requires_grad
    finally:
        mr.set_grad_enabled(True)
    with mr.set_grad_enabled(False):
        assert not mr.is_grad_enabled()
        with mr.set_grad_enabled(True):
            assert (x * 2).requires_grad
        assert not mr.is_grad_enabled()
    assert mr.is_grad_enabled()

    @mr.set_grad_enabled(False)
    def h(x):
        return x * 2
    assert mr.is_grad_enabled() and not h(x).requires_grad and mr.is_grad_enabled()


def test_cuda_namespace(standin):
    assert mr.cuda.is_available() and mr.cuda.device_count() == 1
    assert mr.cuda.current_device() == 0  # the rest of the namespace: tests/cuda/test_cuda_namespace.py


@pytest.mark.skipif(mr.backend.cupy_available(), reason="checks the answer without a GPU")
def test_cuda_namespace_without_gpu():
    assert mr.cuda.is_available() is False and mr.cuda.device_count() == 0
