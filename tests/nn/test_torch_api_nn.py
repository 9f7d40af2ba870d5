"""PyTorch-style ops and layers: activations, softmax and losses, dropout, pad, one_hot, normalize,
layer_norm, BatchNorm1d, ModuleDict. Forward against math/NumPy closed forms and loops, backward by
gradcheck, dropout by its statistics, modules by their state_dict names, errors by their messages."""
import math
import warnings
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minires as mr
import minires.functional as F
from minires import nn
from minires.functional.erf import erf, erfc

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)
seeds = st.integers(0, 2**16)


def t(a, device="cpu", requires_grad=False, dtype=np.float64):
    return mr.tensor(np.asarray(a, dtype=dtype), device=device, requires_grad=requires_grad)


def gradcheck(fn, inputs):
    """mr.gradcheck with tolerances 100x tighter than its defaults: smooth float64 ops allow it."""
    return mr.gradcheck(fn, inputs, atol=1e-7, rtol=1e-5)


def elementwise(fn, a):
    """fn (a Python float function) applied to every element of a, one by one."""
    return np.array([fn(float(v)) for v in a.ravel()]).reshape(a.shape)


# ---- erf -------------------------------------------------------------------------------------
def test_erf_matches_math_erf_over_a_wide_range():
    x = np.concatenate([np.linspace(-30, 30, 120001), np.geomspace(1e-300, 30, 2000),
                        [0.0, 0.46875, 4.0, np.nextafter(0.46875, 1), np.nextafter(4.0, 5), 26.5, 1e300]])
    x = np.concatenate([x, -x])
    assert np.abs(erf(x) - elementwise(math.erf, x)).max() <= 1e-7
    assert np.abs(erfc(x) - elementwise(math.erfc, x)).max() <= 1e-7
    small = x < 26  # erfc(x) > 1e-296: Cody's approximation keeps its relative accuracy too
    ref = elementwise(math.erfc, x[small])
    assert (np.abs(erfc(x[small]) - ref) / ref).max() <= 1e-13


def test_erf_float32_inf_nan():
    x = np.linspace(-6, 6, 20001).astype(np.float32)
    ref = elementwise(math.erf, x)
    assert erf(x).dtype == np.float32
    assert np.abs(erf(x) - ref).max() <= 6e-8  # half an ulp of 1 (rounded once from float64)
    out = erf(np.array([np.inf, -np.inf, np.nan]))
    assert out[0] == 1 and out[1] == -1 and np.isnan(out[2])


# ---- elementwise activations -----------------------------------------------------------------
def _sigmoid(v):
    return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))


def _gelu_tanh(v):
    return 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))


ACTIVATIONS = {  # name: (minires op, reference on one Python float)
    "sigmoid": (F.sigmoid, _sigmoid),
    "tanh": (F.tanh, math.tanh),
    "gelu": (F.gelu, lambda v: v * 0.5 * (1 + math.erf(v / math.sqrt(2)))),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), _gelu_tanh),
    "leaky_relu": (F.leaky_relu, lambda v: v if v > 0 else 0.01 * v),
    "leaky_relu_0.2": (lambda x: F.leaky_relu(x, 0.2), lambda v: v if v > 0 else 0.2 * v),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@fixture_ok
@given(shape=shapes, seed=seeds)
def test_activation_forward_and_gradcheck(device, name, shape, seed):
    fn, ref = ACTIVATIONS[name]
    u = np.random.default_rng(seed).standard_normal(shape) * 3
    a = np.sign(u) * (0.05 + np.abs(u))  # away from leaky_relu's kink at 0
    x = t(a, device, requires_grad=True)
    assert np.allclose(fn(x).numpy(), elementwise(ref, a), rtol=1e-12, atol=1e-12)
    assert gradcheck(fn, [x])


def test_gelu_matches_erf_formula_over_a_wide_range():
    a = np.linspace(-40, 40, 40001)
    ref = elementwise(lambda v: v * 0.5 * (1 + math.erf(v / math.sqrt(2))), a)
    assert np.abs(F.gelu(t(a)).numpy() - ref).max() <= 1e-7 * 40


def test_sigmoid_is_stable_for_large_inputs(device):
    x = t([-1000.0, -100.0, 0.0, 100.0, 1000.0], device, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in exp
        y = F.sigmoid(x).numpy()
        assert F.tanh(x).numpy().tolist() == [-1, -1, 0, 1, 1]
    assert y.dtype == np.float32 and y[0] == 0 and y[2] == 0.5 and y[3] == 1 and y[4] == 1
    assert 0 < y[1] < 1e-40  # exp(-100) survives as a float32 subnormal


def test_activations_keep_float32(device):
    x = t([-1.0, 0.5, 2.0], device, requires_grad=True, dtype=np.float32)
    for fn, _ in ACTIVATIONS.values():
        out = fn(x)
        assert out.dtype == np.float32
        out.sum().backward()
    assert x.grad.dtype == np.float32


# ---- softmax, log_softmax --------------------------------------------------------------------
def loop_softmax(a, dim):
    out = np.empty_like(a)
    for idx in np.ndindex(*np.delete(a.shape, dim)):
        index = idx[:dim] + (slice(None),) + idx[dim:]
        row = [math.exp(v) for v in a[index]]
        out[index] = [v / sum(row) for v in row]
    return out


@fixture_ok
@given(shape=shapes, seed=seeds, data=st.data())
def test_softmax_and_log_softmax(device, shape, seed, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    a = np.random.default_rng(seed).standard_normal(shape) * 2
    x = t(a, device, requires_grad=True)
    ref = loop_softmax(a, dim % len(shape))
    assert np.allclose(F.softmax(x, dim).numpy(), ref, rtol=1e-12, atol=1e-15)
    assert np.allclose(F.log_softmax(x, dim).numpy(), np.log(ref), rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda v: F.softmax(v, dim), [x])
    assert gradcheck(lambda v: F.log_softmax(v, dim), [x])


def test_softmax_large_logits_and_scalar(device):
    x = t([[1e4, 0.0, -1e4], [5.0, 5.0, 5.0]], device, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p, lp = F.softmax(x, 1).numpy(), F.log_softmax(x, 1).numpy()
    assert p[0].tolist() == [1, 0, 0] and np.allclose(p[1], 1 / 3)
    assert lp[0].tolist() == [0, -1e4, -2e4] and np.allclose(lp[1], -math.log(3))
    assert F.softmax(t(3.0, device), 0).item() == 1.0 and F.log_softmax(t(3.0, device), -1).item() == 0.0
    assert np.allclose(nn.Softmax(dim=0)(x).numpy()[:, 1], [1 / (1 + math.exp(5)), 1 / (1 + math.exp(-5))])
    assert np.array_equal(nn.LogSoftmax(1)(x).numpy(), lp)


def test_autocast_widens_softmax_unless_a_dtype_is_given(device):
    """The policy table runs softmax, log_softmax and the losses in float32; an explicit dtype wins, as in PyTorch."""
    a = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]])
    x16, x32 = t(a, device, dtype=np.float16), t(a, device, dtype=np.float32)
    labels = mr.tensor([2, 0], device=device)
    with mr.amp.autocast():
        assert F.softmax(x16, 1).dtype == F.log_softmax(x16, 1).dtype == np.float32
        assert F.softmax(x32, 1, dtype=mr.float16).dtype == np.float16
        assert F.log_softmax(x16, 1, dtype=mr.float64).dtype == np.float64
        assert F.nll_loss(x16, labels, weight=t([1.0, 2.0, 3.0], device, dtype=np.float16)).dtype == np.float32
        assert F.mse_loss(x16, x32).dtype == F.normalize(x16).dtype == np.float32
        assert F.layer_norm(x16, 3, t(np.ones(3), device, dtype=np.float32)).dtype == np.float32
    assert np.allclose(F.softmax(x32, 1, dtype=mr.float16).numpy(), loop_softmax(a, 1), atol=1e-3)


# ---- losses ------------------------------------------------------------------------------------
def loop_nll(a, target, weight, ignore_index, reduction):
    """PyTorch's definition with explicit loops over samples (and spatial positions)."""
    a = a.reshape(a.shape[0], a.shape[1], -1)
    target = np.asarray(target).reshape(a.shape[0], -1)
    losses, weights = np.zeros(target.shape), np.zeros(target.shape)
    for n in range(a.shape[0]):
        for k in range(a.shape[2]):
            c = int(target[n, k])
            if c != ignore_index:
                weights[n, k] = 1.0 if weight is None else weight[c]
                losses[n, k] = -weights[n, k] * a[n, c, k]
    if reduction == "none":
        return losses
    return losses.sum() / (weights.sum() if reduction == "mean" else 1)


@pytest.mark.parametrize("shape", [(5, 3), (3, 4, 2)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss(device, shape, reduction, weighted):
    rng = np.random.default_rng(3)
    a = rng.standard_normal(shape)
    target = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    target.reshape(-1)[1] = -100  # ignored
    weight = rng.uniform(0.5, 2.0, shape[1]) if weighted else None
    x = t(a, device, requires_grad=True)
    tt, wt = mr.tensor(target, device=device), None if weight is None else t(weight, device)
    out = F.nll_loss(x, tt, weight=wt, reduction=reduction)
    assert np.allclose(out.numpy().reshape(-1), np.reshape(loop_nll(a, target, weight, -100, reduction), -1))
    assert gradcheck(lambda v: F.nll_loss(v, tt, weight=wt, reduction=reduction), [x])


def test_nll_of_log_softmax_is_cross_entropy(device):
    rng = np.random.default_rng(4)
    x, target = t(rng.standard_normal((6, 4)), device), mr.tensor(rng.integers(0, 4, 6), device=device)
    for reduction in ("mean", "sum", "none"):
        ce = F.cross_entropy(x, target, reduction=reduction).numpy()
        assert np.allclose(F.nll_loss(F.log_softmax(x, 1), target, reduction=reduction).numpy(), ce, atol=1e-12)
        assert np.allclose(nn.CrossEntropyLoss(reduction=reduction)(x, target).numpy(), ce, atol=1e-12)
    smoothed = F.cross_entropy(x, target, label_smoothing=0.2).item()
    assert nn.CrossEntropyLoss(label_smoothing=0.2)(x, target).item() == smoothed
    weight = t([1.0, 2.0, 0.5, 1.5], device)
    expected = loop_nll(np.log(loop_softmax(x.numpy(), 1)), target.numpy(), weight.numpy(), -100, "mean")
    assert np.isclose(nn.CrossEntropyLoss(weight)(x, target).item(), expected)
    assert list(nn.CrossEntropyLoss(weight).state_dict()) == ["weight"]
    assert math.isnan(F.nll_loss(x, mr.tensor(np.full(6, -100), device=device)).item())  # nothing counted


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(device, reduction):
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    x, y = t(a, device, requires_grad=True), t(b, device, requires_grad=True)
    sq = (a - b) ** 2
    expected = {"mean": sq.sum() / sq.size, "sum": sq.sum(), "none": sq}[reduction]
    assert np.allclose(F.mse_loss(x, y, reduction=reduction).numpy(), expected, rtol=1e-13)
    assert np.allclose(nn.MSELoss(reduction=reduction)(x, y).numpy(), expected, rtol=1e-13)
    assert gradcheck(lambda u, v: F.mse_loss(u, v, reduction=reduction), [x, y])


# ---- dropout -----------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(device, p):
    mr.manual_seed(0)
    n = 200_000
    x = t(np.ones(n), device, requires_grad=True, dtype=np.float32)
    y = F.dropout(x, p).numpy()
    zeroed = y == 0
    assert abs(zeroed.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)  # fraction zeroed ~ p
    assert np.all(y[~zeroed] == np.float32(1 / (1 - p)))  # the rest scaled by 1/(1-p)
    assert abs(y.mean() - 1) < 5 * math.sqrt(p / (1 - p) / n)  # so the mean is preserved
    mr.manual_seed(0)
    out = F.dropout(x, p)
    assert np.array_equal(out.numpy(), y)  # one seed, one mask
    out.sum().backward()
    assert np.array_equal(x.grad.numpy(), y)  # d/dx sum(x * mask) = mask, which is y for x = 1


def test_dropout_identity_seed_and_gradcheck(device):
    a = np.random.default_rng(6).standard_normal((4, 5))
    x = t(a, device, requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x and F.dropout(x, 0.0) is x
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    m = nn.Dropout(0.5)
    assert m.eval()(x) is x
    mr.manual_seed(7)
    first = m.train()(x).numpy()
    mr.manual_seed(7)
    on_cpu = F.dropout(t(a), 0.5).numpy()
    assert np.array_equal(first, on_cpu)  # one seed, one mask, whatever the device
    assert gradcheck(lambda v: (mr.manual_seed(1), F.dropout(v, 0.3))[1], [x])


# ---- pad ---------------------------------------------------------------------------------------
NP_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@pytest.mark.parametrize("mode", sorted(NP_MODES))
@fixture_ok
@given(data=st.data(), seed=seeds)
def test_pad_against_numpy_pad(device, mode, data, seed):
    k = data.draw(st.integers(1, 2))
    shape = tuple(data.draw(st.lists(st.integers(2, 4), min_size=k + 1, max_size=k + 2)))
    limit = lambda size: size - 1 if mode == "reflect" else size  # noqa: E731
    pad = []
    for axis in range(len(shape) - 1, len(shape) - 1 - k, -1):
        pad += [data.draw(st.integers(0, limit(shape[axis]))) for _ in range(2)]
    a = np.random.default_rng(seed).standard_normal(shape)
    widths = [(0, 0)] * (len(shape) - k) + [(pad[2 * i], pad[2 * i + 1]) for i in reversed(range(k))]
    x = t(a, device, requires_grad=True)
    kwargs = {"value": 1.5} if mode == "constant" else {}
    np_kwargs = {"constant_values": 1.5} if mode == "constant" else {}
    out = F.pad(x, tuple(pad), mode=mode, **kwargs)
    assert np.array_equal(out.numpy(), np.pad(a, widths, mode=NP_MODES[mode], **np_kwargs))
    assert gradcheck(lambda v: F.pad(v, tuple(pad), mode=mode, **kwargs), [x])


def test_pad_constant_three_dims_and_integers(device):
    a = np.arange(6).reshape(1, 2, 3)
    out = F.pad(mr.tensor(a, device=device), (1, 0, 0, 2, 1, 1))
    assert out.dtype == np.int64 and np.array_equal(out.numpy(), np.pad(a, [(1, 1), (0, 2), (1, 0)]))


# ---- one_hot, normalize ------------------------------------------------------------------------
def test_one_hot(device):
    labels = np.array([[0, 3], [2, 2], [1, 0]])
    out = F.one_hot(mr.tensor(labels, device=device))
    expected = np.zeros((3, 2, 4), dtype=np.int64)
    for i in range(3):
        for j in range(2):
            expected[i, j, labels[i, j]] = 1
    assert out.dtype == np.int64 and np.array_equal(out.numpy(), expected)
    assert F.one_hot(mr.tensor([1], device=device), num_classes=3).numpy().tolist() == [[0, 1, 0]]


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@fixture_ok
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=3).map(tuple), seed=seeds)
def test_normalize(device, p, shape, seed):
    u = np.random.default_rng(seed).standard_normal(shape)
    a = np.sign(u) * (0.1 + np.abs(u))  # away from |x|'s kink for p = 1
    x = t(a, device, requires_grad=True)
    norm = np.sum(np.abs(a) ** p, axis=1, keepdims=True) ** (1 / p)
    assert np.allclose(F.normalize(x, p=p).numpy(), a / np.maximum(norm, 1e-12), rtol=1e-12)
    assert gradcheck(lambda v: F.normalize(v, p=p), [x])


def test_normalize_clamps_small_norms(device):
    a = np.array([[0.0, 0.0], [0.3, -0.4], [3.0, 4.0]])
    x = t(a, device, requires_grad=True)
    assert np.allclose(F.normalize(x, dim=1, eps=1.0).numpy(), [[0, 0], [0.3, -0.4], [0.6, 0.8]])
    assert gradcheck(lambda v: F.normalize(v, dim=1, eps=1.0), [x])  # rows 0, 1: x / eps
    assert np.allclose(F.normalize(t(a[1:], device), dim=0).numpy(), a[1:] / np.sqrt([[9.09, 16.16]]))  # column norms


# ---- layer_norm, LayerNorm ---------------------------------------------------------------------
def numpy_layer_norm(a, k, w, b, eps):
    axes = tuple(range(a.ndim - k, a.ndim))
    mean = a.mean(axis=axes, keepdims=True)
    var = ((a - mean) ** 2).mean(axis=axes, keepdims=True)
    return (a - mean) / np.sqrt(var + eps) * w + b


@pytest.mark.parametrize("shape,k", [((4, 5), 1), ((2, 3, 4), 2), ((3, 2, 4), 1)])
def test_layer_norm(device, shape, k):
    rng = np.random.default_rng(8)
    a = rng.standard_normal(shape) * 3 + 1
    w, b = rng.standard_normal(shape[-k:]), rng.standard_normal(shape[-k:])
    x, wt, bt = (t(v, device, requires_grad=True) for v in (a, w, b))
    out = F.layer_norm(x, shape[-k:], wt, bt, eps=1e-3)
    assert np.allclose(out.numpy(), numpy_layer_norm(a, k, w, b, 1e-3), rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda u, v, c: F.layer_norm(u, shape[-k:], v, c, eps=1e-3), [x, wt, bt])
    assert gradcheck(lambda u: F.layer_norm(u, shape[-k:]), [x])


def test_layer_norm_module():
    m = nn.LayerNorm(4)
    assert list(m.state_dict()) == ["weight", "bias"] and m.weight.shape == (4,)
    assert list(nn.LayerNorm((2, 3), elementwise_affine=False).state_dict()) == []
    assert list(nn.LayerNorm(3, bias=False).state_dict()) == ["weight"]
    a = np.random.default_rng(9).standard_normal((5, 4)).astype(np.float32)
    m.weight.array[...] = 2
    out = m(mr.tensor(a))
    assert out.dtype == np.float32 and np.allclose(out.numpy(), numpy_layer_norm(a, 1, 2.0, 0.0, 1e-5), atol=1e-5)
    assert repr(m) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True)"


# ---- BatchNorm1d ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
def test_batchnorm1d_against_numpy(device, shape):
    rng = np.random.default_rng(10)
    m = nn.BatchNorm1d(3, momentum=0.3).double().to(device)
    m.weight.array[...] = m.weight.array * 0 + mr.tensor([1.0, 2.0, 0.5], device=device).array
    axes = (0,) if len(shape) == 2 else (0, 2)
    running_mean, running_var = np.zeros(3), np.ones(3)
    for _ in range(2):
        a = rng.standard_normal(shape) * 2 + 1
        out = m(t(a, device)).numpy()
        mean, var = a.mean(axis=axes), a.var(axis=axes)
        bc = (slice(None), None) if len(shape) == 3 else (slice(None),)
        expected = (a - mean[bc]) / np.sqrt(var[bc] + 1e-5) * np.array([1.0, 2.0, 0.5])[bc]
        assert np.allclose(out, expected, atol=1e-12)
        n = a.size // 3
        running_mean = 0.7 * running_mean + 0.3 * mean
        running_var = 0.7 * running_var + 0.3 * var * n / (n - 1)
    assert np.allclose(m.running_mean.numpy(), running_mean) and np.allclose(m.running_var.numpy(), running_var)
    assert m.num_batches_tracked.item() == 2
    m.eval()
    a = rng.standard_normal(shape)
    bc = (slice(None), None) if len(shape) == 3 else (slice(None),)
    expected = (a - running_mean[bc]) / np.sqrt(running_var[bc] + 1e-5) * np.array([1.0, 2.0, 0.5])[bc]
    assert np.allclose(m(t(a, device)).numpy(), expected, atol=1e-12)
    x = t(rng.standard_normal(shape), device, requires_grad=True)
    assert gradcheck(m.train(), [x])  # (running stats change between calls; outputs do not use them)


def test_batchnorm1d_module_names_and_errors():
    m = nn.BatchNorm1d(4)
    assert list(m.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert repr(m).startswith("BatchNorm1d(4, eps=1e-05, momentum=0.1")
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 2-D or 3-D input .*\(2, 4, 3, 3\)"):
        m(mr.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4-D input .*\(2, 4\)"):
        nn.BatchNorm2d(4)(mr.zeros(2, 4))
    with pytest.raises(ValueError, match="BatchNorm1d: num_features"):
        nn.BatchNorm1d(0)


# ---- modules and containers ------------------------------------------------------------------------
def test_activation_modules_match_functional():
    x = t(np.linspace(-3, 3, 12).reshape(3, 4))
    pairs = [(nn.Sigmoid(), F.sigmoid(x)), (nn.Tanh(), F.tanh(x)), (nn.GELU(), F.gelu(x)),
             (nn.GELU("tanh"), F.gelu(x, approximate="tanh")), (nn.LeakyReLU(0.2), F.leaky_relu(x, 0.2)),
             (nn.Softmax(1), F.softmax(x, 1))]
    for m, expected in pairs:
        assert np.array_equal(m(x).numpy(), expected.numpy()) and list(m.state_dict()) == []
    assert nn.Identity(3, foo=1)(x) is x
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')" and repr(nn.Dropout()) == "Dropout(p=0.5, inplace=False)"


def test_module_dict():
    d = nn.ModuleDict({"enc": nn.Linear(2, 3), "act": nn.Tanh()})
    d["dec"] = nn.Linear(3, 1)
    d.update([("norm", nn.LayerNorm(3))])
    assert list(d) == ["enc", "act", "dec", "norm"] and len(d) == 4 and "act" in d and "x" not in d
    assert list(d.state_dict()) == ["enc.weight", "enc.bias", "dec.weight", "dec.bias", "norm.weight", "norm.bias"]
    assert d.enc is d["enc"] and len(list(d.parameters())) == 6
    assert isinstance(d.pop("act"), nn.Tanh) and list(d.keys()) == ["enc", "dec", "norm"]
    del d["norm"]
    assert [k for k, _ in d.items()] == ["enc", "dec"] and all(isinstance(v, nn.Linear) for v in d.values())
    d.eval()
    assert not d["dec"].training
    nested = nn.Sequential(OrderedDict(heads=nn.ModuleDict({"a": nn.Linear(1, 1)})))
    assert list(nested.state_dict()) == ["heads.a.weight", "heads.a.bias"]
    d.clear()
    assert len(d) == 0 and list(d.parameters()) == []
    with pytest.raises(TypeError, match="ModuleDict: keys must be strings"):
        d[1] = nn.Tanh()
    with pytest.raises(ValueError, match="ModuleDict: key 'a.b'"):
        d["a.b"] = nn.Tanh()
    with pytest.raises(KeyError):
        del d["missing"]
    with pytest.raises(ValueError, match="ModuleDict.update: element 0"):
        d.update([("a", nn.Tanh(), 3)])


# ---- errors --------------------------------------------------------------------------------------------
def _errors(device):
    x, xi = mr.zeros(2, 3, device=device), mr.tensor([[1, 2]], device=device)
    labels = mr.tensor([0, 1], device=device)
    return [
        (lambda: F.softmax(x, 2), ValueError, r"softmax: argument 'dim' \(2\).*\(2, 3\)"),
        (lambda: F.log_softmax(x, None), TypeError, "log_softmax: argument 'dim'"),
        (lambda: nn.Softmax()(x), TypeError, "softmax: argument 'dim'"),
        (lambda: F.sigmoid(np.zeros(3)), TypeError, "sigmoid: argument 'input' must be a Tensor"),
        (lambda: F.tanh(xi), TypeError, "tanh: argument 'input' must be a floating-point"),
        (lambda: F.gelu(x, approximate="fast"), ValueError, "gelu: argument 'approximate'"),
        (lambda: F.leaky_relu(x, "a"), TypeError, "leaky_relu: argument 'negative_slope'"),
        (lambda: F.dropout(x, 1.5), ValueError, "dropout: argument 'p'"),
        (lambda: nn.Dropout(-0.1), ValueError, "Dropout: p"),
        (lambda: F.nll_loss(x, mr.tensor([0, 3], device=device)), ValueError, r"nll_loss: target 3 .*3 classes"),
        (lambda: F.nll_loss(x, labels[:1]), ValueError, r"nll_loss: 'target' must have shape \(2,\)"),
        (lambda: F.nll_loss(x, x), TypeError, "nll_loss: argument 'target' must hold integer"),
        (lambda: F.nll_loss(x, labels, reduction="avg"), ValueError, "nll_loss: argument 'reduction'"),
        (lambda: F.nll_loss(x, labels, weight=mr.ones(2, device=device)), ValueError,
         r"nll_loss: argument 'weight'.*\(3,\)"),
        (lambda: F.mse_loss(x, mr.zeros(3, device=device)), ValueError, r"mse_loss: .*\(2, 3\) and \(3,\)"),
        (lambda: F.mse_loss(x, mr.zeros(2, 3, dtype=mr.float64, device=device)), TypeError, "mse_loss: .*dtype"),
        (lambda: F.pad(x, (1,)), ValueError, r"pad: argument 'pad' must have an even length.*\(2, 3\)"),
        (lambda: F.pad(x, (3, 0), mode="reflect"), ValueError, r"pad: mode 'reflect' needs each pad <.*\(2, 3\)"),
        (lambda: F.pad(x, (1, 1, 1, 1), mode="reflect"), ValueError, "pad: mode 'reflect' pads the last 1 to 3"),
        (lambda: F.pad(x, (-1, 0)), ValueError, "pad: negative padding"),
        (lambda: F.pad(x, (1, 1), mode="symmetric"), ValueError, "pad: argument 'mode'"),
        (lambda: F.one_hot(x), TypeError, "one_hot: argument 'tensor' must hold integer"),
        (lambda: F.one_hot(labels, 1), ValueError, r"one_hot: class index 1 .*num_classes=1.*\(2,\)"),
        (lambda: F.one_hot(mr.tensor([-1, 0], device=device)), ValueError, "one_hot: class index -1"),
        (lambda: F.normalize(x, p=0.5), ValueError, "normalize: argument 'p'"),
        (lambda: F.normalize(x, dim=3), ValueError, r"normalize: argument 'dim' \(3\).*\(2, 3\)"),
        (lambda: F.layer_norm(x, (2,)), ValueError, r"layer_norm: input of shape \(2, 3\).*\(2,\)"),
        (lambda: F.layer_norm(x, 3, mr.ones(2, device=device)), ValueError, r"layer_norm: argument 'weight'.*\(3,\)"),
        (lambda: nn.LayerNorm((3, 0)), ValueError, "LayerNorm: normalized_shape"),
        (lambda: nn.GELU("x")(x), ValueError, "gelu: argument 'approximate'"),
        (lambda: nn.CrossEntropyLoss(reduction="avg")(x, labels), ValueError, "cross_entropy: argument 'reduction'"),
        (lambda: nn.NLLLoss(reduction="avg")(x, labels), ValueError, "nll_loss: argument 'reduction'"),
        (lambda: nn.CrossEntropyLoss(label_smoothing=2.0)(x, labels), ValueError, "cross_entropy: .*label_smoothing"),
        (lambda: nn.LayerNorm(3, eps=0.0)(x), ValueError, "layer_norm: argument 'eps'"),
        (lambda: F.layer_norm(x, 3, eps=math.inf), ValueError, "layer_norm: argument 'eps'"),
        (lambda: F.layer_norm(x, 3, mr.ones(3, device=device, dtype=mr.float64)), TypeError, "layer_norm: .*dtype"),
        (lambda: F.nll_loss(x, labels, weight=mr.ones(3, device=device, dtype=mr.float64)), TypeError,
         "nll_loss: .*dtype"),
        (lambda: nn.MSELoss("sum"), TypeError, "positional"),  # keyword-only: no silent misplacement
    ]


def test_errors_name_the_op(device):
    for fn, exc, pattern in _errors(device):
        with pytest.raises(exc, match=pattern):
            fn()


def test_nll_loss_refuses_a_weight_that_requires_grad():
    x = mr.tensor(np.log(np.full((3, 4), 0.25)), requires_grad=True)
    weight = mr.tensor([1.0, 2.0, 0.5, 1.5], dtype=mr.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="nll_loss: the derivative for 'weight'"):
        F.nll_loss(x, mr.tensor([0, 1, 2]), weight)
    F.nll_loss(x, mr.tensor([0, 1, 2]), weight.detach()).backward()  # detached: fine, x gets its gradient
    assert x.grad is not None and weight.grad is None
    with mr.no_grad():
        F.nll_loss(x, mr.tensor([0, 1, 2]), weight)


def test_pool_layers_take_pytorchs_signature():
    x = mr.tensor(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
    ref = np.arange(16).reshape(2, 2, 2, 2).max(axis=(1, 3))  # 2x2 windows of a ramp: their bottom-right value
    for pool in (nn.MaxPool2d(2, 2, 0, 1, False, False), nn.MaxPool2d(2, dilation=(1, 1), ceil_mode=False)):
        np.testing.assert_array_equal(pool(x).numpy()[0, 0], ref)
    np.testing.assert_array_equal(nn.functional.max_pool2d(x, 2, dilation=[1, 1]).numpy()[0, 0], ref)
    mean = np.arange(16).reshape(2, 2, 2, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(nn.AvgPool2d(2, ceil_mode=False, count_include_pad=True)(x).numpy()[0, 0], mean)
    with pytest.raises(NotImplementedError, match=r"MaxPool2d: ceil_mode=True is not supported by minires"):
        nn.MaxPool2d(3, stride=2, ceil_mode=True)  # torchvision's GoogLeNet: named at construction
    with pytest.raises(NotImplementedError, match=r"max_pool2d: dilation=\(2, 1\) is not supported"):
        nn.functional.max_pool2d(x, 2, dilation=(2, 1))
    with pytest.raises(NotImplementedError, match="AvgPool2d: divisor_override=3 is not supported"):
        nn.AvgPool2d(2, divisor_override=3)


def test_conv2d_layer_takes_padding_same_and_valid():
    # the layer hands the string to F.conv2d, which resolves it (its values: tests/ops/test_conv.py)
    x = mr.tensor(np.random.default_rng(3).standard_normal((1, 2, 4, 5)))
    for kernel, dilation in (((2, 2), 1), ((3, 2), 2)):
        conv = nn.Conv2d(2, 3, kernel, padding="same", dilation=dilation, dtype=mr.float64)
        np.testing.assert_array_equal(conv(x).numpy(), nn.functional.conv2d(
            x, conv.weight, conv.bias, padding="same", dilation=dilation).numpy())
        assert conv(x).shape == (1, 3, 4, 5)
    valid = nn.Conv2d(2, 3, 3, padding="valid", dtype=mr.float64)
    assert valid(x).shape == (1, 3, 2, 3)
    with pytest.raises(ValueError, match="Conv2d: padding='same' is not supported for strided convolutions"):
        nn.Conv2d(2, 3, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="Conv2d: padding must be an int, a pair, 'valid' or 'same', got 'full'"):
        nn.Conv2d(2, 3, 3, padding="full")


def test_loss_modules_take_the_deprecated_size_average_and_reduce():
    """Old scripts' nn.CrossEntropyLoss(size_average=False): mapped to reduction with a warning, as PyTorch."""
    x = mr.tensor([[1.0, 2.0, 0.5], [0.1, 0.2, 3.0]])
    y = mr.tensor([0, 2])
    logp = np.log(np.exp(x.numpy()) / np.exp(x.numpy()).sum(1, keepdims=True))
    expected = -(logp[0, 0] + logp[1, 2])
    with pytest.warns(UserWarning, match="deprecated"):
        assert nn.CrossEntropyLoss(size_average=False)(x, y).item() == pytest.approx(expected, rel=1e-6)
    with pytest.warns(UserWarning):
        assert nn.NLLLoss(reduce=False)(mr.tensor(logp), y).shape == (2,)
    with pytest.warns(UserWarning):
        assert nn.MSELoss(size_average=False)(x, mr.zeros(2, 3)).item() == pytest.approx((x.numpy() ** 2).sum(), rel=1e-6)
    with pytest.warns(UserWarning):
        assert nn.L1Loss(reduce=False)(x, mr.zeros(2, 3)).shape == (2, 3)
