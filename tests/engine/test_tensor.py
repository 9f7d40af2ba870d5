"""Tensor engine: creation, broadcasting gradients, accumulation, no_grad, graph freeing, deep chains."""
import importlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minires as mr


def t64(a, requires_grad=True, device="cpu"):
    return mr.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=requires_grad)


# ---- creation ----------------------------------------------------------------------------------

def test_default_dtypes():
    assert mr.tensor([1.0, 2.0]).dtype == np.float32
    assert mr.tensor([1, 2]).dtype == np.int64
    assert mr.tensor(np.zeros(3)).dtype == np.float64  # an ndarray keeps its dtype
    assert mr.zeros(2, 3).dtype == np.float32 and mr.zeros(2, 3).shape == (2, 3)
    assert mr.randn((4, 5), dtype=mr.float64).dtype == np.float64


def test_tensor_copies_its_data():
    a = np.ones(3, dtype=np.float32)
    t = mr.tensor(a)
    a[0] = 5
    assert t.numpy()[0] == 1


def test_manual_seed_reproducible():
    mr.manual_seed(3)
    a = mr.randn(5).numpy()
    mr.manual_seed(3)
    b = mr.randn(5).numpy()
    mr.manual_seed(4)
    c = mr.randn(5).numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_rng_state_roundtrip():
    mr.manual_seed(0)
    state = mr.get_rng_state()
    a = mr.rand(4).numpy()
    mr.set_rng_state(state)
    assert np.array_equal(a, mr.rand(4).numpy())


def test_bad_creation_arguments():
    with pytest.raises(ValueError, match="shape"):
        mr.zeros(2, -1)
    with pytest.raises(TypeError, match="requires_grad"):
        mr.tensor([1, 2], requires_grad=True)
    with pytest.raises(ValueError, match="device"):
        mr.zeros(2, device="tpu")
    with pytest.raises(TypeError, match="dtype"):
        mr.tensor([1.0], dtype="not-a-dtype")


@pytest.mark.skipif(mr.backend.cupy_available(), reason="checks the error raised without a GPU")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="cuda"):
        mr.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="cuda"):
        mr.zeros(2).to("cuda")


def test_item_numpy_detach():
    x = mr.tensor([[2.5]], requires_grad=True)
    assert x.item() == 2.5
    assert isinstance(x.numpy(), np.ndarray)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    with pytest.raises(ValueError, match="item"):
        mr.zeros(2).item()


# ---- arithmetic and broadcasting -------------------------------------------------------------------

def test_operator_values_match_numpy():
    a = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    b = np.array([0.5, -1.0, 2.0])
    A, B = mr.tensor(a), mr.tensor(b)
    for got, want in [(A + B, a + b), (A - B, a - b), (A * B, a * b), (A / B, a / b), (A ** 2, a ** 2),
                      (-A, -a), (A @ B, a @ b), (2 - A, 2 - a), (1 / A, 1 / a), (A.exp(), np.exp(a)),
                      (A.log(), np.log(a)), (A.sqrt(), np.sqrt(a)), (A.sum(1), a.sum(1)),
                      (A.mean(0, keepdim=True), a.mean(0, keepdims=True)), (A.max(1).values, a.max(1)),
                      (A.T, a.T), (A.reshape(3, 2), a.reshape(3, 2)), (A[:, 1:], a[:, 1:]),
                      (A.flatten(), a.reshape(-1)), (A.permute(1, 0), a.T)]:
        assert got.dtype == np.float64
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_float32_stays_float32_with_python_scalars():
    x = mr.randn(3)
    for y in (x + 1.5, x * 2, 2.0 / (x + 10), x ** 2, x - 1):
        assert y.dtype == np.float32


shapes = st.sampled_from([((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)), ((1,), (5, 2)),
                          ((2, 1, 3), (4, 1)), ((), (3, 2))])


@given(shapes, st.sampled_from(["add", "sub", "mul", "div", "pow"]))
def test_broadcast_gradients(shape_pair, op):
    rng = np.random.default_rng(0)
    sa, sb = shape_pair
    a = t64(rng.uniform(0.5, 2.0, sa))
    b = t64(rng.uniform(0.5, 2.0, sb))
    f = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
         "div": lambda a, b: a / b, "pow": lambda a, b: a ** b}[op]
    assert mr.gradcheck(f, (a, b))
    # grad shapes are the input shapes: un-broadcasting happened
    a.grad = b.grad = None
    f(a, b).sum().backward()
    assert a.grad.shape == sa and b.grad.shape == sb


@given(st.sampled_from([((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                        ((5, 2, 3), (3, 4)), ((2, 1, 2, 3), (4, 3, 2))]))
def test_matmul_gradients(shapes):
    rng = np.random.default_rng(1)
    a, b = t64(rng.standard_normal(shapes[0])), t64(rng.standard_normal(shapes[1]))
    assert mr.gradcheck(lambda a, b: a @ b, (a, b))


def test_reduction_and_shape_gradients():
    rng = np.random.default_rng(2)
    x = t64(rng.permutation(24).reshape(2, 3, 4) / 7.0)  # distinct values: no max ties
    for f in [lambda x: x.sum(), lambda x: x.sum((0, 2), keepdim=True), lambda x: x.mean(1),
              lambda x: x.max(), lambda x: x.max(2).values, lambda x: x.amax((0, 1), keepdim=True),
              lambda x: x.min(), lambda x: x.min(1, keepdim=True).values,
              lambda x: x.permute(2, 0, 1).reshape(4, 6), lambda x: x[1, ::2, 1:3],
              lambda x: x[np.array([0, 0, 1])], lambda x: x.transpose(0, 2).flatten(1),
              lambda x: x.exp().log(), lambda x: (x + 1).sqrt(), lambda x: (x - 0.05).abs(),
              lambda x: x.unsqueeze(1).squeeze(1) * 3]:
        assert mr.gradcheck(f, (x,))


def test_max_ties_share_gradient():
    x = t64([1.0, 3.0, 3.0, 2.0])
    x.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0.5, 0.5, 0])


def test_repeated_index_accumulates():
    x = t64([1.0, 2.0, 3.0])
    x[np.array([0, 0, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2, 0, 1])


# ---- autograd semantics --------------------------------------------------------------------------

def test_gradients_accumulate_across_backward_calls():
    x = t64([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 + 2 * np.array([1.0, 2.0]))


def test_shared_subexpression_sums_both_paths():
    x = t64([2.0])
    y = x * x
    (y + y * x).sum().backward()  # d/dx (x^2 + x^3) = 2x + 3x^2
    np.testing.assert_allclose(x.grad.numpy(), [2 * 2 + 3 * 4])


def test_graph_freed_unless_retained():
    x = t64([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_no_grad_records_nothing():
    x = t64([1.0])
    with mr.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None

    @mr.no_grad()
    def f(t):
        return t * 3

    assert not f(x).requires_grad
    assert (x * 2).requires_grad  # restored after the context


def test_backward_needs_scalar_or_grad():
    x = t64([1.0, 2.0])
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    (x * 2).backward(mr.tensor(np.array([1.0, 10.0])))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 20.0])
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(np.ones(3))


def test_deep_chain_does_not_recurse():
    x = mr.tensor([1.0], dtype=mr.float64, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 10_000], rtol=1e-9)


def test_detach_blocks_gradient():
    x = t64([3.0])
    (x * x.detach()).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0])


def test_cast_is_differentiable():
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    y = x.to(mr.float64) * 2
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


# ---- errors ---------------------------------------------------------------------------------------

def test_op_errors_name_op_and_shapes():
    with pytest.raises(ValueError, match=r"add.*\(2, 3\).*\(4,\)"):
        mr.zeros(2, 3) + mr.zeros(4)
    with pytest.raises(ValueError, match="matmul"):
        mr.zeros(2, 3) @ mr.zeros(2, 3)
    with pytest.raises(TypeError, match="dtype"):
        mr.zeros(2) + mr.zeros(2, dtype=mr.float64)
    with pytest.raises(ValueError, match="reshape"):
        mr.zeros(2, 3).reshape(4)
    with pytest.raises(ValueError, match="sum"):
        mr.zeros(2, 3).sum(5)
    with pytest.raises(TypeError, match="unsupported"):
        mr.zeros(2) + "a"


def test_nan_propagates():
    x = mr.tensor([np.nan, 1.0], requires_grad=True)
    y = (x * 2).exp().sum()
    assert np.isnan(y.item())
    y.backward()
    assert np.isnan(x.grad.numpy()[0]) and np.isfinite(x.grad.numpy()[1])


class _DoubleInPlace(mr.Function):
    """A bad custom op: its backward scales the incoming gradient in place."""

    def forward(self, x):
        return x * 2

    def backward(self, g):
        g *= 2
        return g


def test_backward_writing_into_its_gradient_is_a_clear_error():
    # y feeds both the bad op and a plain sum: a write into y's gradient would corrupt the other path.
    x = t64([1.0, 2.0])
    y = x * 3
    out = _DoubleInPlace.apply(y).sum() + y.sum()
    with pytest.raises(RuntimeError, match=r"_doubleinplace: backward wrote into its incoming gradient \(shape \(2,\)\)"):
        out.backward()


class _OwnValueError(mr.Function):
    """A backward that fails on its own, with a message that happens to say read-only."""

    def forward(self, x):
        return x * 2

    def backward(self, g):
        raise ValueError("_ownvalueerror: the saved table is read-only")


def test_a_backwards_own_value_error_is_not_taken_for_a_write_into_its_gradient():
    # the walk rewords only NumPy's own two read-only messages, and runs backward once
    out = _OwnValueError.apply(t64([1.0, 2.0])).sum()
    with pytest.raises(ValueError, match="the saved table is read-only") as info:
        out.backward()
    assert type(info.value) is ValueError


class _WrongGradient(mr.Function):
    """A bad custom op: its backward returns whatever `make(g)` gives."""

    def forward(self, x, make=None):
        self.make = make
        return x * 2

    def backward(self, g):
        return self.make(g)


@pytest.mark.parametrize("make, got", [
    (lambda g: g.astype(np.float32), r"shape \(2,\) dtype float32"),  # was cast silently
    (lambda g: g[:1] * 2, r"shape \(1,\) dtype float64"),
    (lambda g: np.ones((2, 1)), r"shape \(2, 1\) dtype float64"),
    (lambda g: 2.0, "a float"),
])
def test_a_gradient_of_the_wrong_dtype_or_shape_is_an_error_naming_the_op(make, got):
    x = t64([1.0, 2.0])
    out = _WrongGradient.apply(x, make=make).sum()
    with pytest.raises(RuntimeError, match=rf"_wronggradient: backward returned a gradient of {got} "
                                           rf"for 'input 0' of shape \(2,\) dtype float64"):
        out.backward()


class _Scale(mr.Function):
    input_names = ("input", "scale")

    def forward(self, x, s):
        self.x, self.s = x, s
        return x * s

    def backward(self, g):
        return g * self.s, (g * self.x).astype(np.float16)  # the second has the wrong dtype


def test_the_wrong_gradient_error_names_the_input():
    x, s = t64([1.0, 2.0]), t64([3.0, 4.0])
    with pytest.raises(RuntimeError, match=r"_scale: .*dtype float16 for 'scale' of shape \(2,\) dtype float64"):
        _Scale.apply(x, s).sum().backward()


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_every_tensor_op_returns_gradients_of_its_inputs_dtype(dtype):
    # the walk raises on a gradient of another dtype, so one backward through each op checks them all
    rng = np.random.default_rng(0)
    a = mr.tensor(rng.uniform(0.5, 2.0, (2, 3)).astype(dtype), requires_grad=True)
    b = mr.tensor(rng.uniform(0.5, 2.0, (2, 3)).astype(dtype), requires_grad=True)
    c = mr.tensor(rng.uniform(0.5, 2.0, (3, 2)).astype(dtype), requires_grad=True)
    outs = [a + b, a - b, a * b, a / b, a ** b, -a, a @ c, a.exp(), a.log(), a.sqrt(), a.abs(),
            mr.maximum(a, b), mr.minimum(a, b), a.clamp(0.7, 1.5), a.clamp(b, None),
            mr.where(a > b, a, b), a.sum(1), a.mean(0), a.max(), a.min(1).values, a.amax((0, 1)),
            a.var(1), a.std(), a.norm(), a.norm(1, dim=0), a.norm(float("inf")), a.norm(3),
            a.reshape(3, 2), a.permute(1, 0), a.T, a.transpose(0, 1), a.flatten(), a.unsqueeze(0).squeeze(0),
            a[0], a[[0, 0]], a[:, None].expand(2, 4, 3), a.repeat(2, 1), mr.cat([a, b]), mr.stack([a, b], 1),
            a.split(1, 1)[2], a.chunk(2)[0], a.clone(), a.T.contiguous(), a.to(mr.float64),
            a.relu(), a.sigmoid(), a.tanh()]
    sum((o.to(mr.float32) * 1.0).sum() for o in outs).backward()
    for t in (a, b, c):
        assert t.grad.dtype == dtype and t.grad.shape == t.shape


def test_an_integer_and_a_float_operand_give_the_float_its_own_gradient_dtype():
    # NumPy computes int32 with float16 in float64; the float16 input's gradient comes back float16
    f = mr.tensor(np.array([0.5, 1.5], dtype=np.float16), requires_grad=True)
    i = mr.tensor(np.array([1, 2], dtype=np.int32))
    outs = [f + i, i - f, f * i, i / f, f ** i, i ** f, i @ f, mr.maximum(f, i), mr.minimum(i, f),
            mr.where(mr.tensor([True, False]), i, f), f.clamp(i, None), mr.cat([i, f]), mr.stack([f, i])]
    assert all(o.dtype == np.float64 for o in outs)
    sum(o.sum() for o in outs).backward()
    assert f.grad.dtype == np.float16 and f.grad.shape == (2,)


def test_caller_gradient_stays_writeable():
    x = t64([1.0, 2.0])
    seed = np.ones(2)
    (x * 2).backward(seed)  # the walk hands ops a read-only view, not the caller's array frozen
    assert seed.flags.writeable
    seed[0] = 5.0
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


# ---- gradcheck itself can fail -----------------------------------------------------------------------

class _WrongSquare(mr.Function):
    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return g * self.x  # should be 2 * x


def test_gradcheck_catches_a_wrong_gradient():
    x = t64([1.0, -2.0, 0.5])
    with pytest.raises(mr.GradcheckError, match="input 0"):
        mr.gradcheck(lambda x: _WrongSquare.apply(x), (x,))
    with pytest.raises(mr.GradcheckError, match="directional"):
        mr.gradcheck(lambda x: _WrongSquare.apply(x), (x,), fast_mode=True)


def test_gradcheck_requires_float64():
    with pytest.raises(TypeError, match="float64"):
        mr.gradcheck(lambda x: x * 2, (mr.tensor([1.0], requires_grad=True),))


def test_gradcheck_leaves_inputs_unchanged():
    data = np.array([1.0, 2.0, 3.0])
    x = t64(data)
    mr.gradcheck(lambda x: (x * x).sum(), (x,))
    np.testing.assert_array_equal(x.numpy(), data)
    assert x.grad is None


def test_get_array_module_cpu():
    assert mr.backend.get_array_module(np.zeros(1), mr.zeros(1)) is np
    assert mr.backend.parse_device("cuda") == "cuda:0"
    assert mr.backend.parse_device("CUDA:1") == "cuda:1"


class _NanAround(mr.Function):
    """NaN everywhere except exactly at the test point: finite differences are NaN."""

    def forward(self, x):
        xp = mr.backend.get_array_module(x)
        self.x = x
        return xp.where(x == 1.0, x, xp.nan)

    def backward(self, g):
        return g * 123.0


def test_gradcheck_fails_on_nan_finite_differences():
    x = t64([1.0, 1.0])
    with pytest.raises(mr.GradcheckError, match="nan"):
        mr.gradcheck(lambda x: _NanAround.apply(x), (x,))
    with pytest.raises(mr.GradcheckError):
        mr.gradcheck(lambda x: _NanAround.apply(x), (x,), fast_mode=True)


def test_truth_value():
    assert bool(mr.tensor([2.0]) > 1) and not bool(mr.tensor(0.0))
    with pytest.raises(ValueError, match="ambiguous"):
        bool(mr.tensor([1.0, 2.0]))
    a, b = mr.tensor([1.0]), mr.tensor([2.0])
    assert (a == b).item() is False


# ---- PyTorch's sequence behaviour and (values, indices) ---------------------------------------------

def test_iteration_and_unpacking_go_over_the_first_axis():
    a = np.arange(6.0).reshape(3, 2)
    t = mr.tensor(a, requires_grad=True)
    rows = list(t)
    assert len(rows) == 3 and all(r.shape == (2,) for r in rows)
    np.testing.assert_array_equal(np.stack([r.numpy() for r in rows]), a)
    first, second = mr.tensor(a[:2])
    np.testing.assert_array_equal(second.numpy(), a[1])
    sum(r.sum() * (i + 1) for i, r in enumerate(t)).backward()  # each row is a differentiable view
    np.testing.assert_array_equal(t.grad.numpy(), [[1, 1], [2, 2], [3, 3]])
    with pytest.raises(TypeError, match="0-d"):
        iter(mr.tensor(1.0))


def test_out_of_range_index_is_an_index_error_naming_the_shape():
    t = mr.zeros(3, 2)
    with pytest.raises(IndexError, match=r"getitem: index 3 .*\(3, 2\)"):
        t[3]
    with pytest.raises(IndexError, match="getitem"):
        t[:, -3]


@pytest.mark.parametrize("keepdim", [False, True])
def test_max_and_min_along_a_dim_return_named_values_and_indices(keepdim):
    a = np.array([[3.0, 7.0, 7.0, -1.0], [0.5, -2.0, 4.0, 4.5]])
    t = mr.tensor(a)
    for name, ref, arg in (("max", np.max, np.argmax), ("min", np.min, np.argmin)):
        values, indices = getattr(t, name)(1, keepdim=keepdim)
        result = getattr(t, name)(dim=1, keepdim=keepdim)
        assert result.values is result[0] and result.indices is result[1]
        np.testing.assert_array_equal(values.numpy(), ref(a, axis=1, keepdims=keepdim))
        want = arg(a, axis=1)  # the first extreme on ties, as NumPy (PyTorch leaves ties unspecified)
        np.testing.assert_array_equal(indices.numpy(), want[:, None] if keepdim else want)
        assert indices.dtype == np.int64
    assert t.max().item() == 7.0 and t.min().item() == -2.0
    with pytest.raises(TypeError, match="max: dim must be an int.*amax"):
        t.max((0, 1))


def test_observers_are_told_of_each_op_and_of_values_leaving_for_python():
    tensor_module = importlib.import_module("minires.tensor")  # mr.tensor is the creation function

    class Recorder:
        def __init__(self):
            self.ops, self.left = [], []

        def op(self, cls, inputs, params, result):
            self.ops.append((cls.op_name(), len(inputs), dict(params), result.shape))

        def leaves_graph(self, t):
            self.left.append(t.shape)

    rec = Recorder()
    x = t64([[1.0, -2.0], [3.0, 4.0]])
    tensor_module.observers.append(rec)
    try:
        y = (x * 2).sum(1)
        float(y[0])
    finally:
        tensor_module.observers.remove(rec)
    assert [name for name, *_ in rec.ops] == ["mul", "sum", "getitem"]
    assert rec.ops[1][2].get("axis", rec.ops[1][2].get("dim")) in (1, (1,)), rec.ops[1]
    assert rec.ops[1][3] == (2,) and rec.left == [()]
    (x + 1).sum()
    assert len(rec.ops) == 3  # removed: told nothing more


@pytest.mark.parametrize("write", [lambda g: g.sort(), lambda g: np.einsum("i->i", g * 1, out=g),
                                   lambda g: np.putmask(g, g > 0, 0.0), lambda g: np.place(g, g > 0, [0.0]),
                                   lambda g: np.multiply(g, 2, out=g)],
                         ids=["sort", "einsum-out", "putmask", "place", "ufunc-out"])
def test_every_numpy_refusal_of_a_write_into_the_gradient_names_the_op(write):
    class _Writes(mr.Function):
        def forward(self, x):
            return x * 2

        def backward(self, g):
            write(g)
            return g * 2

    out = _Writes.apply(t64([1.0, 2.0, 3.0])) + 0  # the add hands _Writes a gradient it also owns
    with pytest.raises(RuntimeError, match=r"_writes: backward wrote into its incoming gradient \(shape \(3,\)\)"):
        out.sum().backward()
