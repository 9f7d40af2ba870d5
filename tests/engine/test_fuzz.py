"""Fuzzing every public op: random shapes (empty, wrong rank), dtypes, NaN/inf and bad arguments.

Each generated case must either give the right result (checked against NumPy or naive loops, and
finite inputs must give finite outputs) or raise ValueError/TypeError whose message names the op
and the offending argument; anything else (IndexError, ZeroDivisionError, NumPy's own messages,
silent garbage) fails. Expected outcomes are derived here from PyTorch's rules, not from minires.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minires as mr
import minires.functional as F
from minires import nn

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")



def fuzz(n):
    """The loaded profile (derandomized on CI) with at least n examples; the n sum to the CI budget (590)."""
    return settings(max_examples=max(n, settings.default.max_examples), deadline=None, suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

DTYPES = [np.bool_, np.int32, np.int64, np.float16, np.float32, np.float64, np.complex64]
FLOATS = [np.float16, np.float32, np.float64]
# Bad values for int-or-pair arguments (stride, padding, kernel_size, dilation, groups, output_size).
BAD_INTS = [-1, 0, 1.5, None, "a", True, (1,), (1, 2, 3), (1, -1), (2.0, 1), [1, None]]


def make_array(shape, dtype, seed, special=False):
    """Values in [-3, 3) cast to dtype; with `special`, some NaN and +-inf (float/complex only)."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(-3, 3, shape)
    if special and v.size and np.dtype(dtype).kind in "fc":
        flat = v.reshape(-1)
        idx = rng.integers(0, v.size, max(1, v.size // 4))
        flat[idx] = rng.choice([np.nan, np.inf, -np.inf], len(idx))
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return v > 0
    if dtype.kind in "iu":
        return np.round(v).astype(dtype)
    if dtype.kind == "c":
        return (v + 1j * rng.uniform(-3, 3, shape)).astype(dtype)
    return v.astype(dtype)


@st.composite
def shapes(draw, min_dims=0, max_dims=4, max_side=3):
    return tuple(draw(st.lists(st.integers(0, max_side), min_size=min_dims, max_size=max_dims)))


@st.composite
def arrays(draw, shape=None, dtypes=DTYPES, special=None):
    shape = draw(shapes()) if shape is None else shape
    dtype = draw(st.sampled_from(dtypes))
    special = draw(st.booleans()) if special is None else special
    return make_array(shape, dtype, draw(st.integers(0, 2**16)), special)


def outcome(fn):
    """(result, None) or (None, exception) for the allowed exception types (IndexError for an index
    out of range, as PyTorch); anything else propagates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(), None
        except (ValueError, TypeError, IndexError) as exc:
            return None, exc


def numpy_outcome(fn):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return fn(), None
        except Exception as exc:  # noqa: BLE001 - any NumPy refusal counts as "invalid"
            return None, exc


def assert_names(exc, op, *words):
    """A clean error: ValueError/TypeError whose message starts with or names the op and names each word."""
    assert exc is not None, f"{op}: expected a ValueError/TypeError naming {words}"
    msg = str(exc)
    assert op.lower() in msg.lower(), f"error does not name the op {op!r}: {msg}"
    for w in words:
        assert str(w) in msg, f"{op}: error does not name {w!r}: {msg}"


def assert_same(ours, ref):
    ours = ours.numpy() if isinstance(ours, mr.Tensor) else np.asarray(ours)
    ref = np.asarray(ref)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    assert ours.dtype == ref.dtype, (ours.dtype, ref.dtype)
    if ref.dtype.kind in "fc":
        tol = 1e-2 if ref.dtype in (np.float16,) else 1e-5
        assert np.allclose(ours, ref, rtol=tol, atol=tol, equal_nan=True)
        assert np.array_equal(np.isnan(ours), np.isnan(ref))
    else:
        assert np.array_equal(ours, ref)


def finite_in_finite_out(out, *inputs):
    if all(np.isfinite(x.numpy()).all() for x in inputs if x is not None):
        assert np.isfinite(out.numpy()).all()


# ---- Tensor operators ------------------------------------------------------------------------------
BINARY = {"add": (lambda a, b: a + b, np.add), "sub": (lambda a, b: a - b, np.subtract),
          "mul": (lambda a, b: a * b, np.multiply), "div": (lambda a, b: a / b, np.true_divide),
          "pow": (lambda a, b: a ** b, np.power), "matmul": (lambda a, b: a @ b, np.matmul),
          "eq": (lambda a, b: a == b, np.equal), "lt": (lambda a, b: a < b, np.less)}


@fuzz(70)
@given(op=st.sampled_from(sorted(BINARY)), a=arrays(), b=arrays(), grad=st.booleans())
def test_binary_operators(op, a, b, grad):
    ta, tb = mr.tensor(a), mr.tensor(b)
    if grad:
        for t in (ta, tb):
            if t.dtype.kind == "f":
                t.requires_grad_()
    ours, err = outcome(lambda: BINARY[op][0](ta, tb))
    ref, np_err = numpy_outcome(lambda: BINARY[op][1](a, b))
    floats = {x.dtype for x in (a, b) if x.dtype.kind in "fc"}
    if op == "lt" and np_err is None and "c" in (a.dtype.kind, b.dtype.kind):  # PyTorch: complex has no order
        assert_names(err, op, "complex")
    elif len(floats) > 1 and op not in ("eq", "lt"):  # PyTorch refuses float32 + float64 in minires' stricter rule: one float dtype
        assert_names(err, op, *[str(d) for d in floats])
    elif np_err is not None:
        assert_names(err, op)
        if op != "matmul" and isinstance(np_err, ValueError) and "broadcast" in str(np_err):
            assert_names(err, op, a.shape, b.shape)
    else:
        assert err is None, f"{op} {a.dtype}{a.shape} {b.dtype}{b.shape}: unexpected {err!r}"
        assert_same(ours, ref)
        if ours.requires_grad and ours.dtype.kind == "f":
            ours.sum().backward()
            for t in (ta, tb):
                if t.requires_grad:
                    assert t.grad.shape == t.shape and t.grad.dtype == t.dtype
                    if op in ("add", "sub", "mul", "matmul") and np.isfinite(a).all() and np.isfinite(b).all():
                        assert np.isfinite(t.grad.numpy()).all()


@pytest.mark.parametrize("other", ["a", None, [1.0, 2.0], {"x": 1}, object()])
@pytest.mark.parametrize("op", sorted(BINARY))
def test_operators_refuse_non_numeric_operands(op, other):
    with pytest.raises(TypeError, match=f"^{op}: unsupported operand type"):
        BINARY[op][0](mr.randn(2), other)


UNARY = {"neg": (lambda t: -t, np.negative), "exp": (lambda t: t.exp(), np.exp), "log": (lambda t: t.log(), np.log),
         "sqrt": (lambda t: t.sqrt(), np.sqrt), "abs": (lambda t: t.abs(), np.abs)}


@fuzz(30)
@given(op=st.sampled_from(sorted(UNARY)), a=arrays())
def test_unary_operators(op, a):
    ours, err = outcome(lambda: UNARY[op][0](mr.tensor(a)))
    ref, np_err = numpy_outcome(lambda: UNARY[op][1](a))
    if np_err is not None:
        assert_names(err, op)
    else:
        assert err is None, f"{op} {a.dtype}{a.shape}: unexpected {err!r}"
        assert_same(ours, ref)


DIMS = st.one_of(st.none(), st.integers(-5, 5), st.tuples(st.integers(-4, 4), st.integers(-4, 4)),
                 st.sampled_from([1.0, "a", True, [0], (0, 0)]))


def _axes(dim, ndim):
    """PyTorch's rule: None, an int or a tuple/list of distinct ints in [-ndim, ndim) (0-d: -1 and 0)."""
    if dim is None:
        return None
    dims = [dim] if isinstance(dim, int) and not isinstance(dim, bool) else dim
    if not isinstance(dims, (list, tuple)) or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        return "type"
    n = max(ndim, 1)
    if not all(-n <= d < n for d in dims) or len({d % n for d in dims}) != len(dims):
        return "value"
    return () if ndim == 0 else tuple(d % n for d in dims)


@fuzz(50)
@given(op=st.sampled_from(["sum", "mean", "max"]), a=arrays(dtypes=[np.int64, np.float32, np.float64, np.complex64]),
       dim=DIMS, keepdim=st.sampled_from([False, True, "yes"]))
def test_reductions(op, a, dim, keepdim):
    if op == "max" and a.dtype.kind == "c":
        a = a.real.copy()
    t = mr.tensor(a)
    method = "amax" if op == "max" else op  # max(dim) is PyTorch's (values, indices) over one dim
    ours, err = outcome(lambda: getattr(t, method)(dim=dim, keepdim=keepdim))
    axes = _axes(dim, a.ndim)
    if axes in ("type", "value"):
        assert_names(err, op, "dim")
    elif keepdim == "yes":
        assert_names(err, op, "keepdim")
    elif op == "max" and a.size == 0:
        assert_names(err, op, "empty", a.shape)
    else:
        assert err is None, f"{op}(dim={dim!r}) of {a.dtype}{a.shape}: unexpected {err!r}"
        ref = getattr(np, op)(a, axis=axes, keepdims=keepdim)
        assert_same(ours, ref)


@fuzz(25)
@given(a=arrays(dtypes=[np.int64, np.float32]), dim=st.sampled_from([None, -3, -1, 0, 1, 2, 5, 1.0, "x"]),
       keepdim=st.booleans())
def test_argmax(a, dim, keepdim):
    ours, err = outcome(lambda: mr.tensor(a).argmax(dim=dim, keepdim=keepdim))
    axes = _axes(dim, a.ndim)
    if axes in ("type", "value"):
        assert_names(err, "argmax", "dim")
    elif a.size == 0 and (not axes or a.shape[axes[0]] == 0):
        assert_names(err, "argmax", "empty")
    else:
        assert err is None, err
        ax = None if not axes else axes[0]
        ref = np.argmax(a, axis=ax)
        if keepdim and ax is not None:
            ref = np.expand_dims(ref, ax)
        assert_same(ours, ref)


SHAPE_OPS = ["reshape", "permute", "transpose", "unsqueeze", "squeeze", "flatten", "F.flatten", "getitem"]


@st.composite
def shape_op_args(draw, op, shape):
    ints = st.integers(-len(shape) - 2, len(shape) + 2)
    junk = st.sampled_from([1.5, "a", None])
    if op == "reshape":
        return draw(st.lists(st.one_of(st.integers(-2, 6), junk), max_size=4)),
    if op == "permute":
        return tuple(draw(st.lists(st.one_of(ints, junk), min_size=max(0, len(shape) - 1), max_size=len(shape) + 1)))
    if op in ("transpose",):
        return draw(st.one_of(ints, junk)), draw(ints)
    if op in ("unsqueeze", "squeeze"):
        return draw(st.one_of(ints, junk)),
    if op in ("flatten", "F.flatten"):
        return draw(st.one_of(ints, junk)), draw(ints)
    item = st.one_of(ints, st.just(slice(None)), st.just(None),
                     st.just(Ellipsis), st.sampled_from([1.5, "a"]), st.builds(slice, ints, ints))
    return tuple(draw(st.lists(item, max_size=len(shape) + 2))),


def _shape_reference(op, a, args):
    """The PyTorch result via NumPy, or raise for an invalid call."""
    nd = a.ndim

    def axis(d, n):
        if not isinstance(d, int) or isinstance(d, bool):
            raise TypeError("not an int")
        if not -max(n, 1) <= d < max(n, 1):
            raise ValueError("out of range")
        return d % max(n, 1)

    if op == "reshape":
        return a.reshape(args[0]) if all(isinstance(s, int) for s in args[0]) else np.asarray(None).reshape(args[0])
    if op == "permute":
        dims = [axis(d, nd) for d in args]
        if sorted(dims) != list(range(nd)):
            raise ValueError("not a permutation")
        return a.transpose(dims) if nd else a
    if op == "transpose":
        i, j = axis(args[0], nd), axis(args[1], nd)
        return np.swapaxes(a, i, j) if nd else a
    if op == "unsqueeze":
        return np.expand_dims(a, axis(args[0], nd + 1))
    if op == "squeeze":
        if args[0] is None:  # squeeze() / squeeze(None): every size-1 axis
            return a.reshape([s for s in a.shape if s != 1])
        i = axis(args[0], nd)
        return np.squeeze(a, i) if nd and a.shape[i] == 1 else a
    if op in ("flatten", "F.flatten"):
        if nd == 0:
            axis(args[0], 0), axis(args[1], 0)
            return a.reshape(1)
        s, e = axis(args[0], nd), axis(args[1], nd)
        if s > e:
            raise ValueError("start after end")
        return a.reshape(a.shape[:s] + (int(np.prod(a.shape[s:e + 1])),) + a.shape[e + 1:])
    return a[args[0]]


def _call_shape_op(op, t, args):
    if op == "getitem":
        return t[args[0]]
    if op == "reshape":
        return t.reshape(*args[0]) if args[0] else t.reshape(())
    if op == "F.flatten":
        return F.flatten(t, *args)
    return getattr(t, op)(*args)


@fuzz(60)
@given(op=st.sampled_from(SHAPE_OPS), data=st.data(),
       a=arrays(dtypes=[np.float32, np.int64, np.bool_], special=False))
def test_shape_ops(op, data, a):
    args = data.draw(shape_op_args(op, a.shape))
    t = mr.tensor(a, requires_grad=a.dtype.kind == "f")
    ours, err = outcome(lambda: _call_shape_op(op, t, args))
    ref, np_err = numpy_outcome(lambda: _shape_reference(op, a, args))
    if np_err is not None:
        assert_names(err, op.replace("F.", ""))
    else:
        assert err is None, f"{op}{args} of {a.shape}: unexpected {err!r}"
        assert_same(ours, ref)
        if t.requires_grad and ours.numel():
            ours.sum().backward()
            assert t.grad.shape == t.shape and np.isfinite(t.grad.numpy()).all()


# ---- functional ops ---------------------------------------------------------------------------------
def naive_conv(x, w, b, stride, padding, dilation, groups):
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    OH = (H + 2 * padding[0] - dilation[0] * (KH - 1) - 1) // stride[0] + 1
    OW = (W + 2 * padding[1] - dilation[1] * (KW - 1) - 1) // stride[1] + 1
    out = np.zeros((N, O, OH, OW))
    Og = O // groups
    for o in range(O):
        g = o // Og
        for i in range(OH):
            for j in range(OW):
                patch = xp[:, g * Cg:(g + 1) * Cg, i * stride[0]:i * stride[0] + dilation[0] * (KH - 1) + 1:dilation[0],
                           j * stride[1]:j * stride[1] + dilation[1] * (KW - 1) + 1:dilation[1]]
                out[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3)) + (b[o] if b is not None else 0)
    return out


def _pair_ok(v, minimum):
    """PyTorch's int-or-pair rule; None for bad type, False for a bad value."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        v = (v, v)
    if not (isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(u, int) and not isinstance(u, bool) for u in v)):
        return None
    return tuple(v) if min(v) >= minimum else False


def _check_pair_args(op, err, named):
    """If one of `named` ({name: (value, minimum)}) is bad, the error must name it; returns pairs or None."""
    pairs = {}
    for name, (v, minimum) in named.items():
        p = _pair_ok(v, minimum)
        if p is None or p is False:
            assert isinstance(err, TypeError if p is None else ValueError), f"{op} {name}={v!r}: {err!r}"
            assert_names(err, op, name)
            return None
        pairs[name] = p
    return pairs


def _bad_or(valid, bad=BAD_INTS):
    return st.one_of(valid, valid, valid, st.sampled_from(bad))


def _tensor_arg_error(op, name, arr, ndim, floating=True):
    """The error a bad tensor argument must give (type, words), or None if the tensor is acceptable."""
    if not isinstance(arr, np.ndarray):
        return TypeError, [name]
    if floating and arr.dtype.kind != "f":
        return TypeError, [name, str(arr.dtype)]
    if arr.ndim not in ndim:
        return ValueError, [name, str(arr.shape)]
    return None


def _as_input(arr):
    return mr.tensor(arr) if isinstance(arr, np.ndarray) else arr


@st.composite
def image_batch(draw, valid_rank=4):
    """Mostly valid (N, C, H, W) float arrays; sometimes a wrong rank, a non-float dtype or not a tensor."""
    kind = draw(st.sampled_from(["ok"] * 6 + ["rank", "dtype", "list"]))
    shape = (draw(st.integers(0, 2)), draw(st.integers(0, 3)), draw(st.integers(0, 5)), draw(st.integers(0, 5)))
    if kind == "rank":
        shape = draw(shapes(max_dims=5).filter(lambda s: len(s) != valid_rank))
    dtype = draw(st.sampled_from(FLOATS[1:] if kind != "dtype" else [np.bool_, np.int64, np.complex64]))
    if kind == "ok" and draw(st.booleans()):
        shape = (max(shape[0], 1), max(shape[1], 1), max(shape[2], 1), max(shape[3], 1))  # non-empty half the time
    arr = make_array(shape, dtype, draw(st.integers(0, 2**16)), special=draw(st.booleans()))
    return arr.tolist() if kind == "list" else arr


@fuzz(50)
@given(x=image_batch(), O=st.integers(1, 3), K=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       stride=_bad_or(st.integers(1, 3)), padding=_bad_or(st.integers(0, 2)), dilation=_bad_or(st.integers(1, 2)),
       groups=st.sampled_from([1, 1, 1, 2, 0, -1, 1.0, None, "1"]), bias=st.booleans(),
       wdtype=st.sampled_from([None, None, None, np.float16, np.int64]), seed=st.integers(0, 99))
def test_conv2d(x, O, K, stride, padding, dilation, groups, bias, wdtype, seed):
    C = x.shape[1] if isinstance(x, np.ndarray) and x.ndim == 4 else 1
    g_ok = isinstance(groups, int) and not isinstance(groups, bool) and groups >= 1
    Cg = max(C // groups, 1) if g_ok else C
    O = O * groups if g_ok else O
    wd = wdtype or (x.dtype if isinstance(x, np.ndarray) else np.float32)
    w = make_array((O, Cg) + K, wd, seed)
    b = make_array((O,), wd, seed + 1) if bias else None
    out, err = outcome(lambda: F.conv2d(_as_input(x), mr.tensor(w), None if b is None else mr.tensor(b),
                                        stride, padding, dilation, groups))
    bad = _tensor_arg_error("conv2d", "input", x, (4,))
    if bad:
        assert isinstance(err, bad[0]), err
        return assert_names(err, "conv2d", *bad[1])
    if w.dtype.kind != "f":
        return assert_names(err, "conv2d", "weight", w.dtype)
    pairs = _check_pair_args("conv2d", err, {"stride": (stride, 1), "padding": (padding, 0), "dilation": (dilation, 1)})
    if pairs is None:
        return
    if not g_ok:
        return assert_names(err, "conv2d", "groups")
    s, p, d = pairs["stride"], pairs["padding"], pairs["dilation"]
    N, C, H, W = x.shape
    spans = [H + 2 * p[0] - d[0] * (K[0] - 1) - 1, W + 2 * p[1] - d[1] * (K[1] - 1) - 1]
    if C != Cg * groups or C == 0:
        return assert_names(err, "conv2d", "channels")
    if H == 0 or W == 0:  # an empty image is refused; an empty batch gives an empty result, as in PyTorch
        return assert_names(err, "conv2d", "empty")
    if min(spans) < 0:
        return assert_names(err, "conv2d", "kernel", "padded input")
    if w.dtype != x.dtype:  # the one device/dtype check (Function.apply) runs after the argument spec
        return assert_names(err, "conv2d", str(w.dtype), str(x.dtype))
    assert err is None, f"conv2d {x.shape} {w.shape} s={s} p={p} d={d} g={groups}: {err!r}"
    ref = naive_conv(x, w, b, s, p, d, groups)
    assert out.shape == ref.shape and out.dtype == x.dtype
    finite_in_finite_out(out, mr.tensor(x), mr.tensor(w))
    if np.isfinite(x).all():
        assert np.allclose(out.numpy(), ref, rtol=1e-4, atol=1e-4)


def naive_pool(x, k, s, p, kind):
    N, C, H, W = x.shape
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p[0],) * 2, (p[1],) * 2), constant_values=fill)
    OH, OW = (H + 2 * p[0] - k[0]) // s[0] + 1, (W + 2 * p[1] - k[1]) // s[1] + 1
    out = np.zeros((N, C, OH, OW))
    for i in range(OH):
        for j in range(OW):
            win = xp[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]].reshape(N, C, k[0] * k[1])
            if kind == "max":  # PyTorch: NaN in a window wins
                out[:, :, i, j] = np.where(np.isnan(win).any(-1), np.nan, win.max(-1) if win.size else 0)
            else:
                out[:, :, i, j] = win.mean(-1)
    return out


@fuzz(50)
@given(kind=st.sampled_from(["max", "avg"]), x=image_batch(), k=_bad_or(st.integers(1, 3)),
       stride=_bad_or(st.sampled_from([None, 1, 2, (1, 2)])), padding=_bad_or(st.integers(0, 1)))
def test_pooling(kind, x, k, stride, padding):
    op = f"{kind}_pool2d"
    fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    out, err = outcome(lambda: fn(_as_input(x), k, stride, padding))
    bad = _tensor_arg_error(op, "input", x, (4,))
    if bad:
        assert isinstance(err, bad[0]), err
        return assert_names(err, op, *bad[1])
    args = {"kernel_size": (k, 1)}
    if stride is not None:
        args["stride"] = (stride, 1)
    args["padding"] = (padding, 0)
    if kind == "max" and min(x.shape[1:]) == 0:  # empty channels or images are refused; an empty batch is not
        return assert_names(err, op, "input", "empty")
    pairs = _check_pair_args(op, err, args)
    if pairs is None:
        return
    kk, p = pairs["kernel_size"], pairs["padding"]
    s = pairs.get("stride", kk)
    N, C, H, W = x.shape
    if p[0] > kk[0] // 2 or p[1] > kk[1] // 2:
        return assert_names(err, op, "padding")
    if H + 2 * p[0] < kk[0] or W + 2 * p[1] < kk[1]:
        return assert_names(err, op, "kernel", "padded input")
    assert err is None, f"{op} {x.shape} k={kk} s={s} p={p}: {err!r}"
    ref = naive_pool(x, kk, s, p, kind)
    assert out.shape == ref.shape and out.dtype == x.dtype
    finite_in_finite_out(out, mr.tensor(x))
    assert np.allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5, equal_nan=True)


@fuzz(25)
@given(x=image_batch(), size=_bad_or(st.sampled_from([1, 2, 3, (1, 2), (None, 2)])))
def test_adaptive_avg_pool2d(x, size):
    op = "adaptive_avg_pool2d"
    out, err = outcome(lambda: F.adaptive_avg_pool2d(_as_input(x), size))
    bad = _tensor_arg_error(op, "input", x, (4,))
    if bad:
        assert isinstance(err, bad[0]), err
        return assert_names(err, op, *bad[1])
    if isinstance(size, (tuple, list)) and len(size) == 2:
        size = tuple(x.shape[2 + i] if v is None else v for i, v in enumerate(size))
    if _check_pair_args(op, err, {"output_size": (size, 1)}) is None:
        return
    if min(x.shape[2:]) == 0:
        return assert_names(err, op, "empty")
    assert err is None, err
    oh, ow = _pair_ok(size, 1)
    N, C, H, W = x.shape
    ref = np.zeros((N, C, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, h1 = i * H // oh, -(-(i + 1) * H // oh)
            w0, w1 = j * W // ow, -(-(j + 1) * W // ow)
            ref[:, :, i, j] = x[:, :, h0:h1, w0:w1].astype(np.float64).mean(axis=(2, 3))
    assert out.shape == ref.shape and out.dtype == x.dtype
    assert np.allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5, equal_nan=True)


@fuzz(40)
@given(x=image_batch(valid_rank=4), training=st.booleans(), affine=st.booleans(),
       momentum=st.sampled_from([0.1, 0.0, 1.0, "a", None]), eps=st.sampled_from([1e-5, 1e-3, 0.0, -1.0, "x"]),
       stat_len=st.sampled_from([0, 1, -1]))
def test_batch_norm(x, training, affine, momentum, eps, stat_len):
    op = "batch_norm"
    C = x.shape[1] if isinstance(x, np.ndarray) and x.ndim >= 2 else 1
    dt = x.dtype if isinstance(x, np.ndarray) and x.dtype.kind == "f" else np.float32
    Cs = max(C + stat_len, 0)
    rm, rv = mr.zeros(Cs, dtype=dt), mr.ones(Cs, dtype=dt)
    w = mr.tensor(make_array((Cs,), dt, 1)) if affine else None
    bb = mr.tensor(make_array((Cs,), dt, 2)) if affine else None
    out, err = outcome(lambda: F.batch_norm(_as_input(x), rm, rv, w, bb, training, momentum, eps))
    bad = _tensor_arg_error(op, "input", x, (2, 3, 4))
    if bad:
        assert isinstance(err, bad[0]), err
        return assert_names(err, op, *bad[1])
    if min(x.shape[1:]) == 0:  # empty channels or positions are refused; an empty batch is not (see below)
        return assert_names(err, op, "input", "empty")
    if Cs != C:
        return assert_names(err, op, "running_mean", f"({C},)")
    for name, v in (("momentum", momentum), ("eps", eps)):
        if not isinstance(v, (int, float)):
            return assert_names(err, op, name)
    if eps <= 0:
        return assert_names(err, op, "eps")
    M = x.size // C
    if training and M <= 1:
        return assert_names(err, op, "more than 1 value per channel")
    assert err is None, f"batch_norm {x.shape} training={training}: {err!r}"
    axes = (0,) + tuple(range(2, x.ndim))
    xd = x.astype(np.float64)
    if training:
        mean, var = xd.mean(axis=axes), xd.var(axis=axes)
    else:
        mean, var = np.zeros(C), np.ones(C)
    bshape = (1, C) + (1,) * (x.ndim - 2)
    ref = (xd - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + eps)
    if affine:
        ref = ref * w.numpy().astype(np.float64).reshape(bshape) + bb.numpy().astype(np.float64).reshape(bshape)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert np.allclose(out.numpy(), ref, rtol=1e-3, atol=1e-3, equal_nan=True)
    if np.isfinite(x).all() and (not training or M > 1):
        assert np.isfinite(out.numpy()).all()


@fuzz(30)
@given(x=arrays(shape=None, dtypes=[np.float32, np.float64, np.int64]), out_f=st.integers(0, 3), bias=st.booleans(),
       wdtype=st.sampled_from([None, None, np.float16]), seed=st.integers(0, 99))
def test_linear(x, out_f, bias, wdtype, seed):
    fin = x.shape[-1] if x.ndim else 1
    wd = wdtype or (x.dtype if x.dtype.kind == "f" else np.float32)
    w = make_array((out_f, fin), wd, seed)
    b = make_array((out_f,), wd, seed + 1) if bias else None
    out, err = outcome(lambda: F.linear(mr.tensor(x), mr.tensor(w), None if b is None else mr.tensor(b)))
    if x.dtype.kind != "f":
        return assert_names(err, "linear", "input", x.dtype)
    if x.ndim == 0:
        return assert_names(err, "linear", "input")
    if w.dtype != x.dtype:
        return assert_names(err, "linear", str(w.dtype), str(x.dtype))
    assert err is None, err
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + (b if b is not None else 0)
    assert out.shape == ref.shape and out.dtype == x.dtype
    finite_in_finite_out(out, mr.tensor(x))
    assert np.allclose(out.numpy(), ref, rtol=1e-4, atol=1e-4, equal_nan=True)


@fuzz(30)
@given(op=st.sampled_from(["relu", "add_relu"]), a=arrays(), b_same=st.booleans(), seed=st.integers(0, 99))
def test_relu_and_add_relu(op, a, b_same, seed):
    b = make_array(a.shape if b_same else a.shape + (2,), a.dtype, seed)
    if op == "relu":
        out, err = outcome(lambda: F.relu(mr.tensor(a)))
        ref = None if a.dtype.kind in "bc" else np.maximum(a, 0)
    else:
        out, err = outcome(lambda: F.add_relu(mr.tensor(a), mr.tensor(b)))
        ref = None if a.dtype.kind in "bc" or not b_same else np.maximum(a + b, 0)
    if a.dtype.kind in "bc":
        return assert_names(err, op, str(a.dtype))
    if op == "add_relu" and a.ndim == 0:  # refused (add_relu declares min_ndim=1); PyTorch has no public add_relu
        return assert_names(err, op, "x", "dimension")
    if ref is None:
        return assert_names(err, op, a.shape, b.shape)
    assert err is None, err
    assert_same(out, ref)


@fuzz(30)
@given(logits=arrays(dtypes=[np.float32, np.float64, np.int64, np.complex64]),
       target=st.sampled_from(["ok", "float", "list", "oob", "shape"]),
       ls=st.sampled_from([0.0, 0.1, 1.0, -0.1, 1.5, "a", float("nan")]),
       reduction=st.sampled_from(["mean", "sum", "none", "avg"]), seed=st.integers(0, 99))
def test_cross_entropy(logits, target, ls, reduction, seed):
    op = "cross_entropy"
    N = logits.shape[0] if logits.ndim else 1
    C = logits.shape[1] if logits.ndim > 1 else 1
    y = np.random.default_rng(seed).integers(0, max(C, 1), N)
    tgt = {"ok": mr.tensor(y), "float": mr.tensor(y.astype(np.float32)), "list": y.tolist(),
           "oob": mr.tensor(y + C), "shape": mr.tensor(np.append(y, 0))}[target]
    out, err = outcome(lambda: F.cross_entropy(mr.tensor(logits), tgt, label_smoothing=ls, reduction=reduction))
    if logits.dtype.kind != "f" or logits.ndim != 2:
        return assert_names(err, op, "input")
    if target in ("float", "list", "shape"):
        return assert_names(err, op, "target")
    if C == 0:
        return assert_names(err, op, "class")
    if target == "oob" and N:
        return assert_names(err, op, "target")
    if not isinstance(ls, float) or not 0 <= ls <= 1:
        return assert_names(err, op, "label_smoothing")
    if reduction == "avg":
        return assert_names(err, op, "reduction")
    assert err is None, err
    z = logits.astype(np.float64)
    with np.errstate(all="ignore"):
        logp = z - z.max(axis=1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
        loss = -(1 - ls) * logp[np.arange(N), y] - (ls * logp.mean(axis=1) if ls > 0 else 0)
    ref = {"none": loss, "sum": loss.sum(), "mean": loss.mean() if N else np.nan}[reduction]
    assert out.shape == np.shape(ref) and out.dtype == logits.dtype
    assert np.allclose(out.numpy(), ref, rtol=1e-4, atol=1e-4, equal_nan=True)
    if np.isfinite(logits).all() and N:
        assert np.isfinite(out.numpy()).all()


def test_adaptive_avg_pool2d_keeps_nan_in_its_bin():
    """A NaN/inf stays in its own bin (the matrix form would spread it through 0 * NaN)."""
    x = mr.tensor([[[[np.nan, 1.0, 2.0, np.inf]]]])
    out = F.adaptive_avg_pool2d(x, (1, 4)).numpy().ravel()
    assert np.isnan(out[0]) and out[1] == 1.0 and out[2] == 2.0 and out[3] == np.inf


@fuzz(40)
@given(op=st.sampled_from(["conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm", "linear",
                           "cross_entropy", "relu", "add_relu"]),
       N=st.integers(0, 3), C=st.integers(1, 3), H=st.integers(1, 5), W=st.integers(1, 5),
       dtype=st.sampled_from(FLOATS), seed=st.integers(0, 99))
def test_backward_of_valid_calls(op, N, C, H, W, dtype, seed):
    """Valid calls (empty batches included where the op allows them) backpropagate input-shaped, finite gradients."""
    if op == "batch_norm":
        N = max(N, 2)  # training needs 2 values per channel (test_empty_batches covers eval)
    x = mr.tensor(make_array((N, C, H, W), dtype, seed), requires_grad=True)
    params = []
    if op == "conv2d":
        w = mr.tensor(make_array((2, C, min(H, 3), min(W, 2)), dtype, seed + 1), requires_grad=True)
        params = [w]
        out = F.conv2d(x, w, padding=(1, 0), stride=(1, 2))
    elif op == "max_pool2d":
        out = F.max_pool2d(x, (min(H, 2), min(W, 3)), stride=1)
    elif op == "avg_pool2d":
        out = F.avg_pool2d(x, (min(H, 2), min(W, 2)), padding=(min(H, 2) // 2, 0))
    elif op == "adaptive_avg_pool2d":
        out = F.adaptive_avg_pool2d(x, (2, 3))
    elif op == "batch_norm":
        wb = [mr.tensor(make_array((C,), dtype, seed + k), requires_grad=True) for k in (1, 2)]
        params = wb
        out = F.batch_norm(x, mr.zeros(C, dtype=dtype), mr.ones(C, dtype=dtype), wb[0], wb[1], training=True)
    elif op == "linear":
        w = mr.tensor(make_array((3, W), dtype, seed + 1), requires_grad=True)
        params = [w]
        out = F.linear(x, w)
    elif op == "cross_entropy":
        logits = x.reshape(N, C * H * W)
        out = F.cross_entropy(logits, mr.tensor(np.random.default_rng(seed).integers(0, C * H * W, N)),
                              label_smoothing=0.1)
    elif op == "relu":
        out = F.relu(x)
    else:
        y = mr.tensor(make_array((N, C, H, W), dtype, seed + 1), requires_grad=True)
        params = [y]
        out = F.add_relu(x, y)
    assert out.dtype == dtype
    out.sum().backward()
    for t in [x] + params:
        assert t.grad is not None and t.grad.shape == t.shape and t.grad.dtype == t.dtype, op
        assert np.isfinite(t.grad.numpy()).all(), op


def test_empty_batches_give_empty_outputs_and_zero_parameter_gradients():
    """As in PyTorch: a batch of zero images passes through (eval) with the output shape of a full batch."""
    x = mr.zeros(0, 3, 9, 9, requires_grad=True)
    w, b = mr.ones(4, 3, 3, 3, requires_grad=True), mr.ones(4, requires_grad=True)
    gamma, beta = mr.ones(4, requires_grad=True), mr.ones(4, requires_grad=True)
    y = F.conv2d(x, w, b, stride=2, padding=1)                                   # (0, 4, 5, 5)
    y = F.batch_norm(y, mr.zeros(4), mr.ones(4), gamma, beta, training=False)
    y = F.max_pool2d(y, 2)                                                       # (0, 4, 2, 2)
    assert y.shape == (0, 4, 2, 2) and y.dtype == np.float32
    y.sum().backward()
    assert x.grad.shape == (0, 3, 9, 9)
    for p in (w, b, gamma, beta):  # sums over no samples
        assert p.grad.shape == p.shape and not p.grad.numpy().any()
    with pytest.raises(ValueError, match="batch_norm: Expected more than 1 value per channel"):
        F.batch_norm(x, mr.zeros(3), mr.ones(3), training=True)
    model = mr.models.get("resnet20", num_classes=10).eval()
    assert model(mr.zeros(0, 3, 32, 32)).shape == (0, 10)


@pytest.mark.parametrize("grad, exc, words", [
    ("a", TypeError, "backward: grad must be"), ([1.0, 2.0], ValueError, "backward: grad of shape (2,)"),
    (None, RuntimeError, "implicitly created only for scalar"),
])
def test_backward_bad_grad(grad, exc, words):
    x = mr.randn(2, 3, requires_grad=True)
    with pytest.raises(exc) as info:
        (x * 2).backward(grad)
    assert words in str(info.value)


# ---- nn modules ------------------------------------------------------------------------------------
MODULES = {
    "Conv2d": lambda a: nn.Conv2d(*a), "BatchNorm2d": lambda a: nn.BatchNorm2d(*a),
    "Linear": lambda a: nn.Linear(*a), "MaxPool2d": lambda a: nn.MaxPool2d(*a),
    "AvgPool2d": lambda a: nn.AvgPool2d(*a), "AdaptiveAvgPool2d": lambda a: nn.AdaptiveAvgPool2d(*a),
}
CTOR_ARGS = {
    "Conv2d": st.tuples(st.sampled_from([2, 0, -1, 2.5, None]), st.sampled_from([3, 0, "3"]),
                        _bad_or(st.integers(1, 3)), _bad_or(st.integers(1, 2)), _bad_or(st.integers(0, 1))),
    "BatchNorm2d": st.tuples(st.sampled_from([2, 0, -2, 2.0, None]), st.sampled_from([1e-5, 0.0, -1.0, "e", float("nan")]),
                             st.sampled_from([0.1, None, 2.0, -0.5, "m"])),
    "Linear": st.tuples(st.sampled_from([5, 0, -1, 5.0, None, "5"]), st.sampled_from([3, 0, 1.5])),
    "MaxPool2d": st.tuples(_bad_or(st.integers(1, 3)), _bad_or(st.sampled_from([None, 1, 2])), _bad_or(st.integers(0, 1))),
    "AvgPool2d": st.tuples(_bad_or(st.integers(1, 3)), _bad_or(st.sampled_from([None, 1, 2])), _bad_or(st.integers(0, 1))),
    "AdaptiveAvgPool2d": st.tuples(_bad_or(st.sampled_from([1, 2, (1, 2)]))),
}
INPUT_SHAPE = {"Conv2d": (2, 2, 5, 5), "BatchNorm2d": (3, 2, 2, 2), "Linear": (2, 5), "MaxPool2d": (1, 2, 5, 5),
               "AvgPool2d": (1, 2, 5, 5), "AdaptiveAvgPool2d": (1, 2, 5, 5)}


@fuzz(60)
@given(name=st.sampled_from(sorted(MODULES)), data=st.data(),
       x_kind=st.sampled_from(["ok", "ok", "ok", "rank", "int", "array", "f64"]), seed=st.integers(0, 99))
def test_nn_modules_in_sequential(name, data, x_kind, seed):
    args = data.draw(CTOR_ARGS[name])
    mr.manual_seed(seed)
    mod, err = outcome(lambda: MODULES[name](args))
    if err is not None:  # the constructor refused: it must say which module and why
        return assert_names(err, name)
    shape = INPUT_SHAPE[name]
    x = make_array(shape if x_kind != "rank" else shape[1:], np.float64 if x_kind == "f64" else np.float32, seed)
    xt = {"int": mr.tensor(x.astype(np.int64)), "array": x}.get(x_kind, mr.tensor(x))
    model = nn.Sequential(mod, nn.ReLU())
    out, ferr = outcome(lambda: model(xt))
    if ferr is not None:
        # Every refusal must name the op (module or functional name) in the message.
        names = {name.lower(), name.lower().replace("2d", "_2d"), "conv2d", "batch_norm", "linear", "max_pool2d",
                 "avg_pool2d", "adaptive_avg_pool2d", "batchnorm2d", "relu"}
        msg = str(ferr).lower()
        assert any(n in msg for n in names), msg
        if x_kind == "ok":  # then a constructor argument was bad: the message names it
            assert any(w in msg for w in ("kernel", "stride", "padding", "output_size", "dilation")), msg
        return
    assert x_kind in ("ok", "f64") or (x_kind == "rank" and name == "Linear"), f"{name}{args} accepted {x_kind} input"
    assert out.ndim == len(shape if x_kind != "rank" else shape[1:])
    assert np.isfinite(out.numpy()).all() and (out.numpy() >= 0).all()
    if out.dtype.kind == "f" and any(p.requires_grad for p in model.parameters()):
        out.sum().backward()
        for p in model.parameters():
            assert p.grad is not None and p.grad.shape == p.shape and np.isfinite(p.grad.numpy()).all()


@pytest.mark.parametrize("index", ["a", 1.5, None, 7, -8])
def test_sequential_bad_index(index):
    seq = nn.Sequential(nn.ReLU(), nn.ReLU())
    if index is None or isinstance(index, (str, float)):
        with pytest.raises(TypeError, match="Sequential: index"):
            seq[index]
    else:
        with pytest.raises(IndexError, match="Sequential: index"):  # IndexError is Python's rule for sequences
            seq[index]


def test_tensor_creation_refuses_non_numeric_data():
    for data in ("abc", [[1], [1, 2]], {"a": 1}, [None]):
        with pytest.raises(TypeError, match="tensor: data must be numeric"):
            mr.tensor(data)
    with pytest.raises(ValueError, match="shape: dimensions"):
        mr.zeros(-1)
    assert math.isnan(mr.zeros(0).mean().item())  # PyTorch: the mean of nothing is NaN
