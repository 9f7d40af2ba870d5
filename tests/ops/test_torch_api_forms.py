"""The forms PyTorch scripts use (issue 20): top-level functions (mr.max(t, 1), mr.flatten, mr.topk, ...),
Tensor forms (eq, t(), type(), __index__, np.asarray), device objects, to() overloads, Module forms,
DataParallel's state_dict keys, nn.functional's PyTorch signatures, autograd.grad / Variable /
PyTorch-style Functions, backends flags, and missing APIs named in PyTorch's terms.

Forwards are checked against NumPy or closed forms, gradients of the new differentiable forms with
mr.gradcheck in float64.
"""
import math
import pickle
import warnings

import numpy as np
import pytest

import minires as mr
import minires.nn.functional as F
from minires import nn

RNG = np.random.default_rng(0)
A = RNG.permutation(12).reshape(3, 4).astype(np.float64) - 5.5  # distinct values: no ties
B = RNG.standard_normal((3, 4))


def t(a, **kw):
    return mr.tensor(a, **kw)


def t64(a):
    return mr.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


# ---- top-level function forms ---------------------------------------------------------------------

def test_max_min_forms_match_numpy():
    x = t(A)
    assert mr.max(x).item() == A.max() and mr.min(x).item() == A.min()
    values, indices = mr.max(x, 1)  # the evaluation loop's `_, predicted = torch.max(outputs.data, 1)`
    np.testing.assert_array_equal(values.numpy(), A.max(1))
    np.testing.assert_array_equal(indices.numpy(), A.argmax(1))
    kept = mr.min(x, dim=0, keepdim=True)
    assert kept.values.shape == (1, 4) and np.array_equal(kept.indices.numpy(), A.argmin(0)[None])
    np.testing.assert_array_equal(mr.max(x, t(B)).numpy(), np.maximum(A, B))  # the binary form
    np.testing.assert_array_equal(mr.min(x, t(B)).numpy(), np.minimum(A, B))
    assert mr.gradcheck(lambda a: mr.max(a, 1).values, [t64(A)])
    assert mr.gradcheck(lambda a: mr.min(a, 0, True)[0], [t64(A)])


def test_reduction_and_shape_forms_match_numpy():
    x, x4 = t(A), t(RNG.standard_normal((2, 3, 4, 5)))
    checks = [
        (mr.sum(x), A.sum()), (mr.sum(x, 1), A.sum(1)), (mr.sum(x, dim=(0, 1), keepdim=True), A.sum((0, 1), keepdims=True)),
        (mr.mean(x, 0), A.mean(0)), (mr.argmax(x), A.argmax()), (mr.argmax(x, dim=1), A.argmax(1)),
        (mr.argmin(x, 0), A.argmin(0)), (mr.abs(x), np.abs(A)), (mr.sqrt(mr.abs(x)), np.sqrt(np.abs(A))),
        (mr.clamp(x, min=-1, max=2), np.clip(A, -1, 2)), (mr.matmul(x, t(B).T), A @ B.T), (mr.mm(x, t(B).T), A @ B.T),
        (mr.transpose(x, 0, 1), A.T), (mr.t(x), A.T), (mr.permute(x4, (0, 2, 3, 1)), x4.numpy().transpose(0, 2, 3, 1)),
        (mr.reshape(x, (2, -1)), A.reshape(2, -1)), (mr.squeeze(t(A[None])), A), (mr.unsqueeze(x, 1), A[:, None]),
        (mr.flatten(x4), x4.numpy().reshape(-1)), (mr.flatten(x4, 1), x4.numpy().reshape(2, -1)),
        (mr.flatten(x4, 1, 2), x4.numpy().reshape(2, 12, 5)), (mr.var(x, 1), A.var(1, ddof=1)),
        (mr.add(x, t(B), alpha=2), A + 2 * B), (mr.sub(x, t(B)), A - B), (mr.mul(x, 3.0), A * 3), (mr.div(x, 2.0), A / 2),
    ]
    for got, want in checks:
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    assert mr.sum(t([1, 2, 3]), dtype=mr.float64).dtype == np.float64
    e = np.exp(A - A.max(1, keepdims=True))
    np.testing.assert_allclose(x.softmax(1).numpy(), e / e.sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(mr.log_softmax(x, dim=1).numpy(), np.log(e / e.sum(1, keepdims=True)), rtol=1e-12)
    np.testing.assert_allclose(mr.sigmoid(x).numpy(), 1 / (1 + np.exp(-A)), rtol=1e-12)
    np.testing.assert_array_equal(mr.relu(x).numpy(), np.maximum(A, 0))
    bats = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((2, 4, 5))
    np.testing.assert_allclose(mr.bmm(t(bats[0]), t(bats[1])).numpy(), bats[0] @ bats[1], rtol=1e-12)
    assert mr.numel(x) == 12 and mr.is_tensor(x) and not mr.is_tensor(A) and mr.is_floating_point(x)
    assert mr.equal(x, t(A.copy())) and not mr.equal(x, t(B)) and not mr.equal(x, t(A[:2]))
    for op in ("eq", "ne", "lt", "le", "gt", "ge"):
        want = getattr(np, {"eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal", "gt": "greater",
                            "ge": "greater_equal"}[op])(A, 0.5)
        np.testing.assert_array_equal(getattr(mr, op)(x, 0.5).numpy(), want)
        np.testing.assert_array_equal(getattr(x, op)(0.5).numpy(), want)
    with pytest.raises(ValueError, match=r"mm: 'input' must be 2-D, got shape \(2, 3, 4\)"):
        mr.mm(t(bats[0]), t(B))
    with pytest.raises(TypeError, match="max: argument 'input' must be a Tensor, got ndarray"):
        mr.max(A, 1)


def test_topk_sort_argsort_match_numpy_and_gradcheck():
    x = t(A)
    for dim in (0, 1, -1):
        order = np.argsort(-A, axis=dim, kind="stable")
        values, indices = mr.sort(x, dim=dim, descending=True)
        np.testing.assert_array_equal(indices.numpy(), order)
        np.testing.assert_array_equal(values.numpy(), np.take_along_axis(A, order, dim))
        np.testing.assert_array_equal(mr.argsort(x, dim).numpy(), np.argsort(A, axis=dim))
        top = x.topk(2, dim)
        np.testing.assert_array_equal(top.indices.numpy(), np.take(order, [0, 1], axis=dim))
        low = mr.topk(x, 2, dim, largest=False)
        np.testing.assert_array_equal(low.values.numpy(), np.take(np.sort(A, axis=dim), [0, 1], axis=dim))
    ties = t([2.0, 1.0, 2.0, 1.0])
    assert ties.sort().indices.tolist() == [1, 3, 0, 2] and ties.sort(descending=True).indices.tolist() == [0, 2, 1, 3]
    assert t(np.array([3, 1, 2], np.uint8)).sort(descending=True).values.tolist() == [3, 2, 1]
    assert mr.gradcheck(lambda a: a.topk(3, 1).values, [t64(A)])
    assert mr.gradcheck(lambda a: mr.sort(a, 0, descending=True)[0], [t64(A)])
    with pytest.raises(ValueError, match=r"topk: k=5 is out of range for dim 1 of size 4 \(shape \(3, 4\)\)"):
        x.topk(5)
    # the ImageNet example's accuracy: pred = output.topk(k, 1, True, True).indices.t(); pred.eq(target.expand_as)
    target = t(A.argmax(1))
    pred = x.topk(2, 1, True, True).indices.t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    assert correct[:1].reshape(-1).float().sum(0, keepdim=True).mul_(100.0 / 3).item() == pytest.approx(100.0)


def test_sort_and_topk_on_the_cuda_standin(standin):
    x = t(A, device="cuda")
    values, indices = x.topk(2, 1)
    assert values.device == "cuda:0" and np.array_equal(indices.numpy(), np.argsort(-A, 1)[:, :2])
    np.testing.assert_array_equal(mr.sort(x, 0).values.numpy(), np.sort(A, 0))


# ---- Tensor forms ------------------------------------------------------------------------------------

def test_type_names_and_casts():
    x = t(A.astype(np.float32))
    assert x.type() == "torch.FloatTensor" and x.long().type() == "torch.LongTensor"
    assert x.double().type() == "torch.DoubleTensor" and x.half().type() == "torch.HalfTensor"
    assert (x > 0).type() == "torch.BoolTensor" and x.int().type() == "torch.IntTensor"
    assert x.type(mr.float64).dtype == np.float64 and x.type("torch.LongTensor").dtype == np.int64
    assert x.type(mr.DoubleTensor).dtype == np.float64 and x.type_as(t([1], dtype=mr.int32)).dtype == np.int32
    assert x.half().dtype == np.float16 and x.bool().dtype == np.bool_
    assert isinstance(x, mr.FloatTensor) and not isinstance(x, mr.LongTensor)
    assert mr.LongTensor([1, 2]).dtype == np.int64 and mr.FloatTensor(2, 3).shape == (2, 3)
    with pytest.raises(TypeError, match="type: expected a dtype, a type name"):
        x.type("torch.NoSuchTensor")
    assert mr.gradcheck(lambda a: a.type(mr.float64) * 2, [t64(A)])


def test_dtype_aliases_are_numpy_dtypes():
    assert (mr.float, mr.double, mr.half, mr.long, mr.int, mr.bool) == (np.float32, np.float64, np.float16,
                                                                        np.int64, np.int32, np.bool_)
    assert t([1.0]).to(mr.long).dtype == np.int64 and isinstance(t([1]).size(), mr.Size)
    assert "long" in dir(mr) and int("3") == 3  # the aliases do not shadow the builtins


def test_python_and_numpy_conversions():
    classes = ["plane", "car", "bird"]
    label = t([0, 2, 1])[1]
    assert classes[label] == "bird" and classes[t(np.int32(1))] == "car"
    with pytest.raises(TypeError, match="only integer tensors of a single element can be converted to an index"):
        classes[t(1.0)]
    assert int(t([2.7])) == 2 and float(t(3)) == 3.0 and isinstance(float(t(3)), float)
    with pytest.raises(ValueError, match=r"float: only one-element tensors .* shape \(2,\)"):
        float(t([1.0, 2.0]))
    np.testing.assert_array_equal(abs(t(A)).numpy(), np.abs(A))
    x = t(A)
    view = np.asarray(x)
    assert view is x.array and np.asarray(x, dtype=np.float32).dtype == np.float32
    assert np.array(x, copy=True) is not x.array
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.float64(2.0) * x is not None and isinstance(np.float64(2.0) * x, mr.Tensor)  # NumPy defers
    assert x.sum().item() == A.sum() and x.size(1) == 4 and x.size(-1) == 4
    predicted, targets = t([1, 2, 3, 0]), t([1, 2, 0, 0])
    assert predicted.eq(targets).sum().item() == 3 and (predicted == targets).sum().item() == 3


def test_numpy_of_a_cuda_tensor_is_a_type_error(standin):
    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
        np.asarray(t([1.0], device="cuda"))
    assert t([1.0]).cuda(non_blocking=True).is_cuda and t([1.0]).cuda(0).device == "cuda:0"


def test_in_place_sub_div_clamp_match_numpy():
    np.testing.assert_array_equal(t(A.copy()).sub_(t(B)).numpy(), A - B)
    np.testing.assert_array_equal(t(A.copy()).sub_(1.0, alpha=2).numpy(), A - 2)
    np.testing.assert_array_equal(t(A.copy()).div_(4.0).numpy(), A / 4)
    np.testing.assert_array_equal(t(A.copy()).clamp_(min=0).numpy(), np.clip(A, 0, None))
    with pytest.raises(RuntimeError, match="div_: cannot modify a tensor that requires grad"):
        t64(A).div_(2.0)


def test_view_as_t_and_memory_formats():
    x = t(RNG.standard_normal((2, 3, 4, 5)))
    assert x.view_as(t(np.zeros((6, 20)))).shape == (6, 20) and t(A).t().shape == (4, 3)
    with pytest.raises(ValueError, match=r"t: expects a tensor of at most 2 dimensions, got shape \(2, 3, 4, 5\)"):
        x.t()
    cl = x.to(memory_format=mr.channels_last)
    assert cl.is_contiguous(memory_format=mr.channels_last) and not cl.is_contiguous()
    np.testing.assert_array_equal(cl.numpy(), x.numpy())
    assert cl.contiguous().is_contiguous() and x.contiguous(memory_format=mr.channels_last).shape == x.shape
    assert mr.gradcheck(lambda a: a.contiguous(memory_format=mr.channels_last) * 1, [t64(x.numpy())])


def test_small_tensor_methods():
    x = t(np.array([[0.0, 1.5], [2.0, 0.0], [0.0, 0.0]]))
    z = x.new_zeros(2, 3)
    assert z.dtype == x.dtype and z.device == x.device and np.array_equal(z.numpy(), np.zeros((2, 3)))
    assert np.array_equal(x.new_ones((2,)).numpy(), [1.0, 1.0]) and x.new_full((2, 2), 7.0).tolist() == [[7, 7], [7, 7]]
    assert x.new_empty(4).shape == (4,) and x.new_tensor([1, 2]).dtype == x.dtype
    assert x.any().item() and not x.all().item() and x.any(1).tolist() == [True, True, False]
    assert x.all(0, keepdim=True).shape == (1, 2)
    np.testing.assert_array_equal(x.nonzero().numpy(), np.argwhere(x.numpy()))
    rows, cols = x.nonzero(as_tuple=True)
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0] and rows.dtype == np.int64
    assert x.stride() == (2, 1) and x.t().stride() == (1, 2) and x.stride(0) == 2
    assert x.element_size() == 8 and x.nelement() == 6 and x.pin_memory() is x


# ---- devices and to() ----------------------------------------------------------------------------------

def test_device_objects():
    d = mr.device("cuda:1")
    assert (d.type, d.index, str(d), repr(d)) == ("cuda", 1, "cuda:1", "device(type='cuda', index=1)")
    assert mr.device("cuda", 1) == d and hash(mr.device("cuda", 1)) == hash(d) and d != mr.device("cuda")
    assert mr.device("cpu").index is None and mr.device(0) == "cuda:0" and pickle.loads(pickle.dumps(d)) == d
    x = t(A)
    assert x.device == mr.device("cpu") and x.device.type == "cpu" and isinstance(x.device, mr.device)
    cpu = mr.device("cpu")
    for made in (t([1.0], device=cpu), mr.zeros(2, device=cpu), mr.randn(2, device=cpu), x.to(cpu),
                 mr.arange(3, device=cpu), mr.ones_like(x, device=cpu)):
        assert made.device == "cpu"
    assert nn.Linear(2, 2).to(cpu).weight.device == "cpu"
    with pytest.raises(ValueError, match="device: minires runs on 'cpu' and 'cuda'"):
        mr.device("mps")
    with pytest.raises(ValueError, match="device: expected 'cpu', 'cuda' or 'cuda:N', got 'cuda:one'"):
        mr.device("cuda:one")


def test_device_objects_on_the_cuda_standin(standin, tmp_path):
    pytest.importorskip("safetensors")
    gpu = mr.device("cuda")
    x = t(A, device=gpu)
    assert x.device == "cuda:0" and x.device.index == 0
    model = nn.Linear(4, 2).to(gpu)
    assert model.weight.device == "cuda:0" and model(x.float()).device == "cuda:0"
    assert nn.Linear(2, 2).cuda(mr.device("cuda:0")).weight.device == "cuda:0"
    mr.save(model.state_dict(), tmp_path / "m.safetensors")
    assert mr.load(tmp_path / "m.safetensors", map_location=gpu)["weight"].device == "cuda:0"
    assert mr.load(tmp_path / "m.safetensors", map_location=mr.device("cpu"))["weight"].device == "cpu"


def test_to_overloads():
    x, y64 = t(A.astype(np.float32)), t(np.zeros(1))
    assert x.to("cpu", non_blocking=True) is x and x.to(mr.float32) is x
    assert x.to(y64).dtype == np.float64 and x.to("cpu", mr.float64).dtype == np.float64
    assert x.to(device="cpu", dtype=mr.float16).dtype == np.float16 and x.to("float64").dtype == np.float64
    assert x.to(mr.float64, True).dtype == np.float64  # (dtype, non_blocking)
    copied = x.to("cpu", copy=True)
    assert copied is not x and copied.array is not x.array and np.array_equal(copied.numpy(), x.numpy())
    with pytest.raises(TypeError, match="to: 'gpu' is neither a device"):
        x.to("gpu")
    with pytest.raises(TypeError, match="to: unexpected keyword argument"):
        x.to(devcie="cpu")
    with pytest.raises(ValueError, match="device: minires runs on 'cpu' and 'cuda'"):
        x.to("mps")
    m = nn.Linear(4, 2)
    assert m.to(y64) is m and m.weight.dtype == np.float64
    with pytest.raises(TypeError, match="Module.to: only floating-point dtypes"):
        m.to(mr.int64)


# ---- Module forms and the DataParallel wrappers -----------------------------------------------------

def test_module_forms():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    assert net.half().training and net[0].weight.dtype == np.float16 and net[1].running_mean.dtype == np.float16
    assert net.double()[0].weight.dtype == np.float64 and net.float()[0].weight.dtype == np.float32
    assert net.cpu() is net and [n for n, _ in net.named_modules()] == ["", "0", "1", "2"]
    assert len(list(net.modules())) == 4 and len(list(net.children())) == 3
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Conv2d", "BatchNorm2d", "ReLU", "Sequential"]
    assert not net.train(False).training and net.train().training and not net.eval()[1].training
    net(t(RNG.standard_normal((2, 3, 5, 5)).astype(np.float32))).sum().backward()
    net.zero_grad(set_to_none=False)
    assert float(np.abs(net[0].weight.grad.numpy()).sum()) == 0.0
    net.zero_grad()
    assert net[0].weight.grad is None and len(list(net.parameters())) == 4
    assert net.get_submodule("1") is net[1] and net.get_submodule("") is net
    with pytest.raises(AttributeError, match="get_submodule: Sequential at 'the top' has no submodule '7'"):
        net.get_submodule("7.weight")
    net.to(memory_format=mr.channels_last)
    assert net[0].weight.is_contiguous(memory_format=mr.channels_last)


def test_data_parallel_state_dict_keys_and_round_trip():
    mr.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    wrapped = nn.DataParallel(model)
    assert wrapped.module is model and list(wrapped.state_dict()) == ["module." + k for k in model.state_dict()]
    x = t(RNG.standard_normal((5, 4)).astype(np.float32))
    np.testing.assert_array_equal(wrapped(x).numpy(), model(x).numpy())
    saved = {k: v.numpy().copy() for k, v in wrapped.state_dict().items()}
    other = nn.DataParallel(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)))
    other.load_state_dict(saved)
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), saved[k])
    with pytest.raises(RuntimeError, match='(?s)Missing key.*"0.weight".*Unexpected key.*"module.0.weight".*'
                                           'saved from nn.DataParallel'):
        nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).load_state_dict(saved)
    bare = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    bare.load_state_dict({k[len("module."):]: v for k, v in saved.items()})
    np.testing.assert_array_equal(bare[0].weight.numpy(), saved["module.0.weight"])
    with pytest.warns(UserWarning, match="averaging gradients"):
        ddp = nn.parallel.DistributedDataParallel(bare, device_ids=[0])
    assert list(ddp.state_dict())[0] == "module.0.weight" and ddp(x).shape == (5, 3)
    with ddp.no_sync():
        pass
    with pytest.raises(TypeError, match="DataParallel: module must be an nn.Module"):
        nn.DataParallel(lambda x: x)


# ---- nn.functional's PyTorch signatures ---------------------------------------------------------------

def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def test_functional_activations_match_closed_forms_and_gradcheck():
    x = t(A / 2)
    cases = [(F.silu, A / 2 * _sigmoid(A / 2)), (F.relu6, np.clip(A / 2, 0, 6)), (F.hardtanh, np.clip(A / 2, -1, 1)),
             (F.hardsigmoid, np.clip(A / 12 + 0.5, 0, 1)), (F.hardswish, A / 2 * np.clip(A / 12 + 0.5, 0, 1)),
             (F.elu, np.where(A > 0, A / 2, np.expm1(np.minimum(A / 2, 0)))), (F.softplus, np.log1p(np.exp(A / 2))),
             (lambda a: F.relu(a, inplace=True), np.maximum(A / 2, 0))]
    for fn, want in cases:
        np.testing.assert_allclose(fn(x).numpy(), want, rtol=1e-12, atol=1e-12)
    smooth = A / 2 + 0.05  # away from the kinks at 0, +-1, +-3 and 6
    for fn in (F.silu, F.elu, F.softplus, F.hardswish, F.relu6):
        assert mr.gradcheck(fn, [t64(smooth)])
    big = t(np.array([30.0, -30.0]))
    np.testing.assert_allclose(F.softplus(big).numpy(), [30.0, np.log1p(np.exp(-30.0))], rtol=1e-12, atol=1e-15)


def test_functional_losses_and_legacy_reduction():
    logits, labels = t(B), t(np.array([0, 3, 1]))
    logp = B - np.log(np.exp(B).sum(1, keepdims=True))
    nll = -logp[np.arange(3), [0, 3, 1]]
    assert F.cross_entropy(logits, labels).item() == pytest.approx(nll.mean())
    with pytest.warns(UserWarning, match="size_average and reduce are deprecated"):
        assert F.cross_entropy(logits, labels, size_average=False).item() == pytest.approx(nll.sum())
    with pytest.warns(UserWarning):
        np.testing.assert_allclose(F.nll_loss(F.log_softmax(logits, 1), labels, reduce=False).numpy(), nll)
    w = t(np.array([1.0, 2.0, 0.5, 3.0]))
    assert F.cross_entropy(logits, labels, weight=w).item() == pytest.approx(
        (nll * [1.0, 3.0, 2.0]).sum() / 6.0)
    probs = _sigmoid(A)
    probs = probs / probs.sum(1, keepdims=True)
    assert F.cross_entropy(logits, t(probs)).item() == pytest.approx(-(probs * logp).sum(1).mean())
    assert mr.gradcheck(lambda a: F.cross_entropy(a, t(probs)), [t64(B)])
    assert F.l1_loss(t(A), t(B)).item() == pytest.approx(np.abs(A - B).mean())
    assert mr.gradcheck(lambda a: F.l1_loss(a, t(B), reduction="sum"), [t64(A)])
    with pytest.raises(NotImplementedError, match="cross_entropy: weight=.* is not supported by minires"):
        F.cross_entropy(logits, t(probs), weight=w)


def test_binary_cross_entropy_forms_match_closed_forms_and_gradcheck():
    y = (RNG.random((3, 4)) > 0.5).astype(np.float64)
    p = _sigmoid(B)
    want = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(F.binary_cross_entropy(t(p), t(y), reduction="none").numpy(), want, rtol=1e-10)
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits(t(B), t(y), reduction="none").numpy(), want,
                               rtol=1e-10)
    pw = np.array([1.0, 2.0, 0.5, 3.0])
    weighted = -(pw * y * np.log(p) + (1 - y) * np.log(1 - p))
    assert F.binary_cross_entropy_with_logits(t(B), t(y), pos_weight=t(pw)).item() == pytest.approx(weighted.mean())
    assert nn.BCEWithLogitsLoss(reduction="sum")(t(B), t(y)).item() == pytest.approx(want.sum())
    assert nn.BCELoss()(t(p), t(y)).item() == pytest.approx(want.mean())
    big = F.binary_cross_entropy_with_logits(t(np.array([800.0, -800.0])), t(np.array([0.0, 1.0])), reduction="none")
    np.testing.assert_allclose(big.numpy(), [800.0, 800.0])  # no overflow
    assert F.binary_cross_entropy(t(np.array([0.0])), t(np.array([1.0]))).item() == 100.0  # log clamped at -100
    assert mr.gradcheck(lambda a: F.binary_cross_entropy_with_logits(a, t(y), pos_weight=t(pw)), [t64(B)])
    assert mr.gradcheck(lambda a: F.binary_cross_entropy(a, t(y)), [t64(p)])


def test_functional_pooling_and_softmax_signatures():  # conv2d's padding='same': tests/ops/test_conv.py
    x = t(RNG.standard_normal((1, 2, 6, 6)))
    np.testing.assert_allclose(F.max_pool2d(x, 2).numpy(), x.numpy().reshape(1, 2, 3, 2, 3, 2).max((3, 5)))
    with pytest.raises(NotImplementedError, match=r"max_pool2d: ceil_mode=True is not supported by minires"):
        F.max_pool2d(x, 2, ceil_mode=True)
    with pytest.raises(NotImplementedError, match="avg_pool2d: count_include_pad=False"):
        F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    with pytest.warns(UserWarning, match="implicit dimension"):
        np.testing.assert_allclose(F.softmax(t(A)).numpy().sum(1), np.ones(3))


def test_group_norm_matches_numpy_and_gradchecks():
    x = RNG.standard_normal((2, 6, 3, 2))
    w, b = RNG.standard_normal(6), RNG.standard_normal(6)
    g = x.reshape(2, 3, -1)  # (N, groups, channels per group * H * W)
    normed = ((g - g.mean(2, keepdims=True)) / np.sqrt(g.var(2, keepdims=True) + 1e-5)).reshape(x.shape)
    want = normed * w[None, :, None, None] + b[None, :, None, None]
    np.testing.assert_allclose(F.group_norm(t(x), 3, t(w), t(b)).numpy(), want, rtol=1e-10, atol=1e-12)
    assert mr.gradcheck(lambda a, wt, bs: F.group_norm(a, 3, wt, bs), [t64(x), t64(w), t64(b)])
    layer = nn.GroupNorm(3, 6).double()  # weight 1, bias 0
    np.testing.assert_allclose(layer(t(x)).numpy(), normed, rtol=1e-10, atol=1e-12)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    with pytest.raises(ValueError, match="group_norm: num_groups=4 must be a positive int dividing the 6 channels"):
        F.group_norm(t(x), 4)


def test_dropout2d_zeroes_whole_channels():
    mr.manual_seed(0)
    x = t(np.ones((20, 50, 2, 2)))
    y = F.dropout2d(x, 0.3).numpy()
    per_channel = y.reshape(20, 50, 4)
    assert set(np.unique(per_channel.std(2))) == {0.0}  # each channel all kept or all dropped
    assert set(np.unique(y)) <= {0.0, 1 / 0.7} and abs((y == 0).mean() - 0.3) < 0.05
    assert nn.Dropout2d(0.3).eval()(x) is x and F.dropout2d(x, 0.3, training=False) is x


def test_activation_and_loss_modules_match_functional():
    x, y = t(A / 2), t(B)
    for module, fn in ((nn.SiLU(), F.silu), (nn.ReLU6(inplace=True), F.relu6), (nn.Hardswish(), F.hardswish),
                       (nn.Hardsigmoid(), F.hardsigmoid), (nn.Hardtanh(-2, 2), lambda a: F.hardtanh(a, -2, 2)),
                       (nn.ELU(0.5), lambda a: F.elu(a, 0.5)), (nn.Softplus(2.0), lambda a: F.softplus(a, 2.0))):
        np.testing.assert_array_equal(module(x).numpy(), fn(x).numpy())
    assert nn.L1Loss(reduction="sum")(x, y).item() == pytest.approx(np.abs(A / 2 - B).sum())


def test_init_trunc_normal_and_orthogonal():
    mr.manual_seed(0)
    w = nn.init.trunc_normal_(t(np.zeros((200, 100))), mean=0.5, std=1.0, a=-0.5, b=1.0)
    assert w.numpy().min() >= -0.5 and w.numpy().max() <= 1.0 and len(np.unique(w.numpy())) == 20000
    # the truncated normal's mean: mu + sigma (phi(alpha) - phi(beta)) / (Phi(beta) - Phi(alpha)), alpha=-1, beta=0.5
    phi = lambda z: np.exp(-z * z / 2) / np.sqrt(2 * np.pi)  # noqa: E731
    Phi = lambda z: 0.5 * (1 + math.erf(z / np.sqrt(2)))  # noqa: E731
    assert abs(w.numpy().mean() - (0.5 + (phi(-1) - phi(0.5)) / (Phi(0.5) - Phi(-1)))) < 0.01
    for shape in ((6, 4), (4, 6), (5, 2, 3, 1)):
        q = nn.init.orthogonal_(t(np.zeros(shape)), gain=2.0).numpy().reshape(shape[0], -1)
        small = min(q.shape)
        gram = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
        np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-12)


# ---- autograd --------------------------------------------------------------------------------------------

def test_autograd_grad_matches_closed_forms_and_leaves_grad_alone():
    x, w = t64(A), t64(B)
    h = x * w  # a non-leaf input
    y = (h * h).sum()
    gx, gh = mr.autograd.grad(y, [x, h], retain_graph=True)
    np.testing.assert_allclose(gx.numpy(), 2 * A * B * B)
    np.testing.assert_allclose(gh.numpy(), 2 * A * B)
    assert x.grad is None and w.grad is None
    (gw,) = mr.autograd.grad([y, x.sum()], w, grad_outputs=[t(np.array(2.0)), None])
    np.testing.assert_allclose(gw.numpy(), 4 * A * A * B)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        mr.autograd.grad(y, x)
    z = t64(A)
    with pytest.raises(RuntimeError, match=r"grad: input 1 \(shape \(3, 4\)\) was not used"):
        mr.autograd.grad((x * 2).sum(), [x, z])
    assert mr.autograd.grad((x * 2).sum(), [x, z], allow_unused=True)[1] is None
    assert np.array_equal(mr.autograd.grad((x * 2).sum(), [z, x], materialize_grads=True)[0].numpy(), np.zeros((3, 4)))
    with pytest.raises(NotImplementedError, match="create_graph=True"):
        mr.autograd.grad((x * 2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="grad: input 0 .* does not require grad"):
        mr.autograd.grad((x * 2).sum(), t(A))
    with pytest.raises(RuntimeError, match=r"grad can be implicitly created only for one-element outputs"):
        mr.autograd.grad(x * 2, x)
    mr.autograd.backward([(x * 3).sum(), (x * x).sum()])
    np.testing.assert_allclose(x.grad.numpy(), 3 + 2 * A)
    x.grad = None
    (x * 2).backward(gradient=t(B))  # PyTorch's keyword
    np.testing.assert_allclose(x.grad.numpy(), 2 * B)
    with pytest.raises(NotImplementedError, match="backward: create_graph=True"):
        (x * 2).sum().backward(create_graph=True)


def test_variable_is_the_identity():
    x = t(A)
    assert mr.autograd.Variable(x) is x and not x.requires_grad
    assert mr.autograd.Variable(x, requires_grad=True) is x and x.requires_grad
    assert isinstance(x, mr.autograd.Variable) and not isinstance(A, mr.autograd.Variable)
    assert isinstance(mr.autograd.Variable(A), mr.Tensor)


class _Cube(mr.autograd.Function):
    """A user's Function in PyTorch's style: x**3 with a hand-written backward."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * x * x * scale

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 3 * x * x * ctx.scale, None


def test_pytorch_style_function_runs_and_gradchecks():
    x = t64(A)
    np.testing.assert_allclose(_Cube.apply(x, 2.0).numpy(), 2 * A ** 3)
    assert mr.gradcheck(lambda a: _Cube.apply(a, 0.5), [x])
    _Cube.apply(x, 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * A ** 2)
    assert mr.autograd.no_grad is mr.no_grad and callable(mr.autograd.set_grad_enabled)


# ---- backends and missing APIs -------------------------------------------------------------------------

def test_backends_flags_are_accepted():
    mr.backends.cudnn.benchmark = True
    mr.backends.cudnn.deterministic = True
    mr.backends.cuda.matmul.allow_tf32 = True
    assert not mr.backends.mps.is_available() and not mr.backends.cudnn.is_available()
    mr.backends.cudnn.benchmark = mr.backends.cudnn.deterministic = False


def test_missing_apis_are_named_in_pytorch_terms():
    see = r"\(PyTorch API\); see README 'Your PyTorch script on minires'"
    for namespace, name, torch_name in ((mr, "bfloat16", "torch.bfloat16"), (mr.nn, "Transformer", "torch.nn.Transformer"),
                                        (F, "interpolate", "torch.nn.functional.interpolate"),
                                        (mr.optim, "RMSprop", "torch.optim.RMSprop"),
                                        (mr.optim.lr_scheduler, "CyclicLR", "torch.optim.lr_scheduler.CyclicLR"),
                                        (mr.autograd, "functional", "torch.autograd.functional")):
        with pytest.raises(AttributeError, match=f"minires does not provide {torch_name} {see}"):
            getattr(namespace, name)
        assert not hasattr(namespace, name)
    with pytest.raises(ImportError, match=f"minires does not provide torch.distributions {see}"):
        import minires.distributions  # noqa: F401
    with pytest.raises(ImportError, match=f"minires does not provide torch.nn.Transformer {see}"):
        from minires.nn import Transformer  # noqa: F401
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'register_forward_hook': minires "
                                             "does not provide torch.nn.Module.register_forward_hook"):
        nn.Linear(2, 2).register_forward_hook
    with pytest.raises(AttributeError, match="has no attribute '_private'"):
        mr._private
    import minires.nn.functional as F2  # the module path of `import torch.nn.functional as F`
    import minires.optim.lr_scheduler as sched  # noqa: F401
    assert F2 is F and mr.nn.functional is F


def test_initial_seed_is_the_last_manual_seed():
    mr.manual_seed(1234)
    assert mr.initial_seed() == 1234
    first = mr.rand(3).numpy()
    mr.manual_seed(mr.initial_seed())
    np.testing.assert_array_equal(mr.rand(3).numpy(), first)


# ---- review fixes: max(dim) with ties, NaN and the int minimum in sorts --------------------------------

def test_max_dim_gives_the_whole_gradient_to_the_returned_index():
    # PyTorch's max(dim)/min(dim) backward scatters the gradient to `indices` (one element per row);
    # only amax/max() share it among ties. Expected: a one-hot of the first maximum, by a plain loop.
    rows = [[1.0, 3.0, 3.0], [2.0, 0.0, 2.0], [5.0, 5.0, 5.0]]
    for op, pick in (("max", max), ("min", min)):
        x = mr.tensor(rows, dtype=mr.float64, requires_grad=True)
        values, indices = getattr(x, op)(1)
        (values * t([1.0, 2.0, 3.0], dtype=mr.float64)).sum().backward()
        expected = np.zeros((3, 3))
        for r, row in enumerate(rows):
            first = row.index(pick(row))
            assert indices.tolist()[r] == first and values.tolist()[r] == row[first]
            expected[r, first] = r + 1.0
        np.testing.assert_array_equal(x.grad.numpy(), expected)
    x = mr.tensor(rows, dtype=mr.float64, requires_grad=True)
    values, indices = mr.max(x, 0, keepdim=True)
    assert values.shape == (1, 3) and indices.tolist() == [[2, 2, 2]]  # the last row holds every column's max
    values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0, 0], [0, 0, 0], [1, 1, 1]])
    a, b = t([1.0, 5.0]), t([3.0, 2.0])  # Tensor.max(other) is the elementwise maximum, as in PyTorch
    assert a.max(b).tolist() == [3.0, 5.0] and a.min(b).tolist() == [1.0, 2.0]


def test_sort_ranks_nan_above_every_number_and_reverses_the_int_minimum():
    nan = float("nan")
    values = [1.0, nan, 0.0, nan, 3.0]
    # PyTorch: NaN is the largest value: last ascending, first descending (ties in index order)
    down = t(values).sort(descending=True)
    assert down.indices.tolist() == [1, 3, 4, 0, 2]
    assert t(values).sort().indices.tolist() == [2, 0, 4, 1, 3]
    assert t(values).topk(1).indices.tolist() == [1]
    assert t(values).topk(2, largest=False).indices.tolist() == [2, 0]
    low = np.iinfo(np.int64).min
    assert t(np.array([low, 0, 5])).sort(descending=True).values.tolist() == [5, 0, low]
    assert t(np.array([low, 7])).topk(1).values.tolist() == [7]


def test_augmented_assignment_updates_parameters_in_place_outside_the_graph():
    # "What is torch.nn really?": with torch.no_grad(): for p in model.parameters(): p -= p.grad * lr
    model = nn.Linear(3, 2)
    w0, b0 = model.weight.numpy().copy(), model.bias.numpy().copy()
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    model(t(x)).sum().backward()
    params = list(model.parameters())
    with mr.no_grad():
        for p in model.parameters():
            p -= p.grad * 0.5
    assert [p is q for p, q in zip(model.parameters(), params)] == [True, True]
    # d(sum of x W^T + b)/dW = column sums of x per output row; /db = batch size
    np.testing.assert_allclose(model.weight.numpy(), w0 - 0.5 * np.tile(x.sum(0), (2, 1)), rtol=1e-6)
    np.testing.assert_allclose(model.bias.numpy(), b0 - 0.5 * 4, rtol=1e-6)
    assert model.weight.requires_grad and isinstance(model.weight, nn.Parameter)
    counts = t(np.array([1, 2]))  # an accumulator: correct += (predicted == labels).sum()
    before = counts
    counts += t(np.array([3, 4]))
    counts *= 2
    assert counts is before and counts.tolist() == [8, 12]
    base = t(np.zeros((2, 2)))
    view = base.reshape(-1)
    with mr.no_grad():
        view += 1.0  # a view's in-place write reaches its base, as in PyTorch
    assert base.tolist() == [[1.0, 1.0], [1.0, 1.0]]
    # where autograd records the op, += makes a new tensor in the graph (d(2a + 1)/da = 2)
    a = t64([1.0, 2.0])
    y = a * 2
    y += 1.0
    y /= 1.0
    y.sum().backward()
    assert y.tolist() == [3.0, 5.0] and a.grad.tolist() == [2.0, 2.0]
    with pytest.raises(RuntimeError, match=r"__isub__: a leaf tensor that requires grad \(shape \(2,\)\) is used in "
                                           r"an in-place operation"):
        a -= a.grad * 0.1  # outside no_grad(), as PyTorch


def test_an_int_beside_a_bool_tensor_is_an_int64_number():
    # PyTorch: bool tensor + 1 is int64 ([True, False] + 1 = [2, 1]); the 1 was cast to bool (True + True = True)
    mask = t([True, False])
    assert (mask + 1).dtype == np.int64 and (mask + 1).tolist() == [2, 1] and (2 * mask).tolist() == [2, 0]
    assert (mask == 2).tolist() == [False, False] and (mask + True).dtype == np.bool_


class _HalfBackward(mr.autograd.Function):
    """A mistake PyTorch catches: two inputs, one gradient returned."""

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


def test_pytorch_style_function_with_too_few_gradients_is_an_error():
    a, b = t64([1.0]), t64([2.0])
    with pytest.raises(RuntimeError, match=r"_HalfBackward: backward returned an incorrect number of gradients "
                                           r"\(expected 2, .*got 1\)"):
        _HalfBackward.apply(a, b).sum().backward()  # b.grad silently stayed None
    assert b.grad is None


def test_max_dim_and_nan_sort_on_the_cuda_standin(standin):
    x = mr.tensor(np.array([[1.0, 3.0, 3.0], [2.0, np.nan, 2.0]]), device="cuda", requires_grad=True)
    values, indices = x.max(1)  # NaN propagates, with its index, as in PyTorch
    assert values.device == "cuda:0" and indices.tolist() == [1, 1] and np.isnan(values.numpy()[1])
    values[:1].sum().backward()
    assert x.grad.device == "cuda:0" and x.grad.numpy().tolist()[0] == [0.0, 1.0, 0.0]
    assert t([1.0, np.nan, 0.0], device="cuda").sort(descending=True).indices.tolist() == [1, 0, 2]
