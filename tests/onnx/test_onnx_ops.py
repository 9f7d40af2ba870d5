"""Each op's ONNX mapping alone: ONNX Runtime's output against minires's forward, on hypothesis-drawn shapes.

Every check also asserts that the graph holds the ONNX op the mapping should produce, so that a
recording that missed the op (and exported a constant) fails.
"""
import io
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx", reason="minires.onnx needs onnx: pip install 'minires[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="the ONNX Runtime checks need onnxruntime: pip install onnxruntime")

import minires as mr  # noqa: E402
import minires.functional as F  # noqa: E402
import minires.nn.functional as nnF  # noqa: E402
import minires.onnx as mronnx  # noqa: E402
from minires import nn  # noqa: E402

few = settings(max_examples=6, deadline=None)
dims = st.integers(1, 4)


class Fn(nn.Module):
    """A module whose forward is `fn`, holding `layers` (so their parameters become initializers)."""

    def __init__(self, fn, *layers):
        super().__init__()
        self.fn, self.layers = fn, nn.ModuleList(layers)

    def forward(self, *xs):
        return self.fn(*xs)


def check(fn, *arrays, ops=(), opset=17, layers=(), tol=1e-5):
    """Export fn on arrays, run ONNX Runtime, compare with minires; the graph must hold each of `ops`.

    The error measure is issue 22's, max abs diff / max abs value, with values below 1 measured absolutely:
    ONNX Runtime's sigmoid and tanh are not correctly rounded in their tails (3e-5 relative at -5), and
    0.5 x (1 + erf(x / sqrt 2)) cancels where minires's x Phi(x) uses erfc (ONNX has none).
    """
    xs = tuple(mr.tensor(a) for a in arrays)
    model = Fn(fn, *layers).eval()
    buf = io.BytesIO()
    mronnx.export(model, xs, buf, opset_version=opset)
    proto = onnx.load_from_string(buf.getvalue())
    types = {n.op_type for n in proto.graph.node}
    assert set(ops) <= types, f"expected {ops} in {sorted(types)}"
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {i.name: a for i, a in zip(session.get_inputs(), arrays)})
    with mr.no_grad():
        want = fn(*xs).numpy()
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(float(np.abs(want).max(initial=0)), 1.0))


def rand(seed, *shape, low=None):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return np.abs(x) + low if low is not None else x


@few
@given(st.data())
def test_conv2d_with_stride_padding_dilation_and_groups(data):
    groups = data.draw(st.sampled_from([1, 2, "depthwise"]))
    per_in, per_out = data.draw(dims), data.draw(dims)
    if groups == "depthwise":
        groups, per_in = 4, 1
    K, S, P, D = (data.draw(st.integers(lo, hi)) for lo, hi in ((1, 3), (1, 2), (0, 2), (1, 2)))
    H = data.draw(st.integers(D * (K - 1) + 1, 9))
    conv = nn.Conv2d(groups * per_in, groups * per_out, K, stride=S, padding=P, dilation=D, groups=groups,
                     bias=data.draw(st.booleans()))
    check(conv, rand(data.draw(st.integers(0, 99)), 2, groups * per_in, H, H + 1), ops={"Conv"}, layers=[conv])


@few
@given(st.integers(1, 5), st.integers(1, 3), st.booleans(), st.integers(0, 99))
def test_batch_norm_in_eval_mode(C, rank, affine, seed):
    bn = (nn.BatchNorm1d if rank < 3 else nn.BatchNorm2d)(C, affine=affine, eps=1e-3)
    rng = np.random.default_rng(seed)
    bn.running_mean.array[...] = rng.normal(0, 1, C)
    bn.running_var.array[...] = rng.uniform(0.2, 2, C)
    if affine:
        bn.weight.array[...], bn.bias.array[...] = rng.normal(1, 0.5, C), rng.normal(0, 1, C)
    shape = {1: (3, C), 2: (3, C, 5), 3: (3, C, 4, 5)}[rank]
    check(bn, rand(seed, *shape), ops={"BatchNormalization"}, layers=[bn])


ACTIVATIONS = {
    "relu": (F.relu, "Relu"), "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), "LeakyRelu"),
    "sigmoid": (mr.sigmoid, "Sigmoid"), "tanh": (mr.tanh, "Tanh"), "gelu": (F.gelu, "Erf"),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), "Tanh"), "silu": (nnF.silu, "Sigmoid"),
    "swish_product": (lambda x: x * mr.sigmoid(x), "Mul"), "relu6": (nnF.relu6, "Min"),
    "hardswish": (nnF.hardswish, "Max"), "elu": (nnF.elu, "Exp"),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@few
@given(st.lists(dims, min_size=1, max_size=4), st.integers(0, 99))
def test_activations(name, shape, seed):
    fn, op = ACTIVATIONS[name]
    check(fn, rand(seed, *shape) * 4, ops={op})


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_is_onnx_gelu_from_opset_20(approximate):
    check(lambda x: F.gelu(x, approximate=approximate), rand(0, 3, 7) * 4, ops={"Gelu"}, opset=20)


@few
@given(st.sampled_from(["max", "avg"]), st.integers(1, 3), st.integers(1, 3), st.integers(0, 99), st.data())
def test_max_and_avg_pooling(kind, K, S, seed, data):
    P = data.draw(st.integers(0, K // 2))
    H = data.draw(st.integers(max(K - 2 * P, 1), 8))
    pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    check(lambda x: pool(x, K, S, P), rand(seed, 2, 3, H, H + 2), ops={"MaxPool" if kind == "max" else "AveragePool"})


@few
@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4), st.integers(1, 4), st.integers(0, 99))
def test_adaptive_and_global_average_pooling(H, W, OH, OW, seed):
    check(lambda x: F.adaptive_avg_pool2d(x, (min(OH, H), min(OW, W))), rand(seed, 2, 3, H, W))


def test_global_max_pool_and_global_average_pool():
    check(lambda x: F.max_pool2d(x, tuple(x.shape[2:])), rand(0, 2, 3, 5, 6), ops={"MaxPool"})
    check(lambda x: F.adaptive_avg_pool2d(x, 1), rand(1, 2, 3, 5, 6), ops={"GlobalAveragePool"})


@few
@given(st.integers(1, 5), st.integers(1, 5), st.booleans(), st.booleans(), st.integers(0, 99))
def test_linear_on_2d_and_3d_input(fin, fout, bias, three, seed):
    fc = nn.Linear(fin, fout, bias=bias)
    shape = (2, 3, fin) if three else (4, fin)
    check(fc, rand(seed, *shape), ops={"MatMul" if three else "Gemm"}, layers=[fc])


@few
@given(st.lists(dims, min_size=2, max_size=4), st.integers(0, 99), st.data())
def test_reshape_view_flatten_permute_unsqueeze_expand_repeat(shape, seed, data):
    x = rand(seed, *shape)
    n = len(shape)
    start = data.draw(st.integers(0, n - 1))
    perm = data.draw(st.permutations(range(n)))
    check(lambda t: t.flatten(start), x, ops={"Reshape"})
    check(lambda t: t.view(-1), x, ops={"Reshape"})
    check(lambda t: t.reshape(t.shape[0], -1) * 2, x, ops={"Reshape"})
    check(lambda t: t.permute(*perm) + 0, x, ops={"Transpose"})
    check(lambda t: t.transpose(0, -1) + 0, x, ops={"Transpose"})
    check(lambda t: t.unsqueeze(1).squeeze(1) + t, x)
    check(lambda t: t[:, :1].expand(*shape) + 0, x, ops={"Expand"})
    check(lambda t: t.repeat(2, *([1] * (n - 1))), x, ops={"Tile"})
    check(lambda t: t.repeat(2, *([1] * n)), x, ops={"Tile"})


@few
@given(st.lists(dims, min_size=1, max_size=4), st.integers(1, 3), st.integers(0, 99), st.data())
def test_cat_along_any_dim(shape, k, seed, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    parts = [rand(seed + i, *[s + i if d % len(shape) == dim % len(shape) else s for d, s in enumerate(shape)])
             for i in range(k)]
    check(lambda *ts: mr.cat(list(ts), dim), *parts, ops={"Concat"})


def _broadcastable(data, shape):
    """A shape that broadcasts against `shape`: some dims 1, maybe fewer dims."""
    lead = data.draw(st.integers(0, len(shape)))
    return [1 if data.draw(st.booleans()) else s for s in shape[lead:]] or [1]


@few
@given(st.lists(dims, min_size=1, max_size=4), st.integers(0, 99), st.data())
def test_add_sub_mul_div_with_broadcasting_and_scalars(shape, seed, data):
    other = _broadcastable(data, shape)
    a, b = rand(seed, *shape), rand(seed + 1, *other, low=0.5)
    check(lambda x, y: x + y, a, b, ops={"Add"})
    check(lambda x, y: y - x, a, b, ops={"Sub"})
    check(lambda x, y: x * y, a, b, ops={"Mul"})
    check(lambda x, y: x / y, a, b, ops={"Div"})
    check(lambda x: (2 - x) * 0.5 + 1 / (x * x + 1), a, ops={"Sub", "Div"})
    check(lambda x, y: F.add_relu(x, mr.zeros(x.shape) + y), a, b, ops={"Relu"})


@few
@given(st.lists(dims, min_size=1, max_size=3), st.integers(0, 99))
def test_unary_ops_clamp_pow_and_matmul(shape, seed):
    x, pos = rand(seed, *shape), rand(seed, *shape, low=0.1)
    check(lambda t: -t.abs().exp(), x, ops={"Abs", "Exp", "Neg"})
    check(lambda t: t.log() + t.sqrt(), pos, ops={"Log", "Sqrt"})
    check(lambda t: t.clamp(-0.5, 0.7) + t.clamp(min=0.1) + t.clamp(max=0.2), x, ops={"Max", "Min"})
    check(lambda t: t ** 2 + mr.maximum(t, mr.zeros(shape)), x, ops={"Pow"})
    check(lambda a, b: a @ b, rand(seed, 3, shape[-1]), rand(seed + 1, shape[-1], 2), ops={"MatMul"})


@few
@given(st.lists(dims, min_size=3, max_size=4), st.sampled_from(["constant", "reflect", "replicate", "circular"]),
       st.integers(0, 99), st.data())
def test_pad_in_every_mode(shape, mode, seed, data):
    k = data.draw(st.integers(1, min(3, len(shape) - 1)))
    limit = [s - (mode == "reflect") for s in shape[::-1][:k]]
    pads = tuple(p for lim in limit for p in (data.draw(st.integers(0, max(lim, 0))),
                                                data.draw(st.integers(0, max(lim, 0)))))
    value = 1.5 if mode == "constant" else None
    check(lambda t: F.pad(t, pads, mode=mode, value=value), rand(seed, *shape), ops={"Pad"},
          opset=19 if mode == "circular" else 17)


def test_circular_pad_before_opset_19_is_refused():
    with pytest.raises(mronnx.UnsupportedOperatorError, match="op 'pad' has no ONNX export with mode 'circular'"):
        mronnx.export(Fn(lambda t: F.pad(t, (1, 1), mode="circular")), mr.randn(1, 2, 3), io.BytesIO())


@few
@given(st.lists(dims, min_size=1, max_size=4), st.sampled_from([11, 13, 17]), st.integers(0, 99), st.data())
def test_softmax_and_log_softmax_along_any_dim_and_opset(shape, opset, seed, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = rand(seed, *shape) * 3
    check(lambda t: F.softmax(t, dim), x, ops={"Softmax"}, opset=opset)
    check(lambda t: F.log_softmax(t, dim), x, ops={"LogSoftmax"}, opset=opset)


@few
@given(st.lists(dims, min_size=1, max_size=4), st.booleans(), st.sampled_from([11, 17, 18]), st.integers(0, 99),
       st.data())
def test_mean_sum_max_var_std_norm_over_axes(shape, keepdim, opset, seed, data):
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
    x = rand(seed, *shape)
    check(lambda t: t.mean(dim=axes, keepdim=keepdim), x, ops={"ReduceMean"}, opset=opset)
    check(lambda t: t.sum(dim=axes, keepdim=keepdim) + t.sum(), x, ops={"ReduceSum"}, opset=opset)
    check(lambda t: t.amax(dim=axes, keepdim=keepdim), x, ops={"ReduceMax"}, opset=opset)
    check(lambda t: t.max(dim=axes[0], keepdim=keepdim)[0], x, ops={"ReduceMax"}, opset=opset)
    check(lambda t: t.norm(dim=axes, keepdim=keepdim), x, ops={"ReduceL2"}, opset=opset)
    if all(shape[a] > 1 for a in axes):
        check(lambda t: t.var(dim=axes, keepdim=keepdim) + t.std(dim=axes, keepdim=keepdim), x, opset=opset)


_index = st.one_of(st.integers(-2, 1), st.none(), st.just(Ellipsis),
                   st.builds(slice, st.one_of(st.none(), st.integers(-3, 3)), st.one_of(st.none(), st.integers(-3, 3)),
                             st.sampled_from([None, 1, 2, -1])))


@few
@given(st.lists(st.integers(2, 4), min_size=1, max_size=4), st.lists(_index, min_size=1, max_size=3), st.integers(0, 99))
def test_getitem_with_ints_slices_none_and_ellipsis(shape, index, seed):
    x = rand(seed, *shape)
    index = tuple(index)
    try:
        want = x[index]
    except IndexError:
        return  # not a valid index for this shape
    if want.size == 0:
        return  # ONNX Runtime and NumPy agree on empty slices, but nothing is left to compare
    check(lambda t: t[index] * 1, x)


def test_getitem_with_a_tensor_index_is_refused_in_one_line():
    idx = mr.tensor(np.array([0, 2]))
    with pytest.raises(mronnx.UnsupportedOperatorError, match=r"^Fn \(top level\): op 'getitem' has no ONNX export "
                                                              r"with a tensor, list or boolean index"):
        mronnx.export(Fn(lambda t: t[idx]), mr.randn(3, 2), io.BytesIO())


@few
@given(st.lists(dims, min_size=2, max_size=4), st.integers(1, 2), st.sampled_from([13, 17]), st.integers(0, 99))
def test_layer_norm_and_normalize(shape, k, opset, seed):
    ln = nn.LayerNorm(shape[-k:])
    rng = np.random.default_rng(seed)
    ln.weight.array[...], ln.bias.array[...] = rng.normal(1, 0.3, ln.weight.shape), rng.normal(0, 1, ln.bias.shape)
    check(ln, rand(seed, *shape), layers=[ln], opset=opset)
    check(lambda t: F.normalize(t, dim=1) + F.normalize(t, p=1, dim=-1), rand(seed, *shape), ops={"Div"})


def test_dropout_is_the_identity_in_eval_mode():
    drop = nn.Dropout(0.5)
    check(lambda t: drop(t) * 2, rand(0, 4, 5), layers=[drop])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check(lambda t: F.dropout(t, 0.0001, training=True) * 0 + t, rand(0, 4, 5))
    assert any("exported as the identity" in str(w.message) for w in caught)


def test_casts_and_float64_models():
    check(lambda t: t.double() * 2, rand(0, 3, 2), ops={"Cast"})
    check(lambda t: t * t, rand(0, 3, 2).astype(np.float64), ops={"Mul"})
