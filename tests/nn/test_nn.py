"""minires.nn: registration, state_dict, modes, init statistics, layers against closed forms, clip_grad_norm_."""
import math

import numpy as np
import pytest

import minires as mr
import minires.functional as F
from minires import nn


def _tensor(shape, seed=0, dtype=np.float32):
    return mr.tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(3)
        self.register_buffer("scratch", mr.zeros(2), persistent=False)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
        self.scale = 2.0  # a plain attribute: not registered

    def forward(self, x):
        return self.head(self.bn(self.conv(x)).relu()) * self.scale


# ---- registration and traversal -------------------------------------------------------------
def test_registration_order_and_names():
    m = Toy()
    assert [n for n, _ in m.named_parameters()] == [
        "conv.weight", "bn.weight", "bn.bias", "head.1.weight", "head.1.bias"]
    assert [n for n, _ in m.named_buffers()] == [  # own members first, then each child's
        "scratch", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert list(m.state_dict()) == [
        "conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked",
        "head.1.weight", "head.1.bias"]  # the non-persistent buffer is left out
    assert [n for n, _ in m.named_modules()] == ["", "conv", "bn", "head", "head.0", "head.1"]
    assert [type(c).__name__ for c in m.children()] == ["Conv2d", "BatchNorm2d", "Sequential"]
    assert m.scale == 2.0 and "scale" not in dict(m.named_parameters())
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())


def test_shared_parameter_listed_once_and_assignment_rules():
    lin = nn.Linear(3, 3)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2
    with pytest.raises(TypeError, match="weight"):
        lin.weight = mr.zeros(3, 3)  # a plain Tensor cannot replace a Parameter
    lin.weight = nn.Parameter(mr.zeros(3, 3))
    assert np.all(lin.weight.numpy() == 0)
    del lin.bias
    assert [n for n, _ in lin.named_parameters()] == ["weight"]


def test_train_eval_propagate_and_apply_order():
    m = Toy()
    assert all(x.training for x in m.modules())
    assert m.eval() is m and not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Conv2d", "BatchNorm2d", "Flatten", "Linear", "Sequential", "Toy"]  # children first


def test_repr_shows_structure():
    r = repr(Toy())
    assert "(conv): Conv2d(2, 3, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)" in r
    assert "(1): Linear(in_features=48, out_features=5, bias=True)" in r
    assert "BatchNorm2d(3, eps=1e-05, momentum=0.1" in r


# ---- gradients ------------------------------------------------------------------------------
def test_zero_grad_sets_none_or_zeros():
    m = Toy()
    m(_tensor((2, 2, 4, 4))).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_clip_grad_norm_matches_closed_form():
    ps = [nn.Parameter(mr.zeros(3)), nn.Parameter(mr.zeros(2, 2)), nn.Parameter(mr.zeros(1))]
    grads = [np.array([3.0, 0.0, 4.0]), np.array([[1.0, 2.0], [2.0, 4.0]]), None]
    for p, g in zip(ps, grads):
        p.grad = None if g is None else mr.tensor(g.astype(np.float32))
    expected = math.sqrt(9 + 16 + 1 + 4 + 4 + 16)  # sqrt(50)
    total = nn.utils.clip_grad_norm_(ps, max_norm=1.0)
    assert isinstance(total, mr.Tensor) and total.shape == () and total.dtype == mr.float32  # as PyTorch
    assert total.item() == pytest.approx(expected, rel=1e-6)
    clipped = math.sqrt(sum(float((p.grad.numpy().astype(np.float64) ** 2).sum()) for p in ps[:2]))
    assert clipped == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(ps[0].grad.numpy(), np.array([3, 0, 4]) / expected, rtol=1e-5)
    # Below the threshold nothing changes; the inf-norm is the largest magnitude.
    before = ps[1].grad.numpy().copy()
    assert nn.utils.clip_grad_norm_(ps, max_norm=10.0).item() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_array_equal(ps[1].grad.numpy(), before)
    assert nn.utils.clip_grad_norm_(ps, 100.0, norm_type=float("inf")).item() == pytest.approx(4 / expected, rel=1e-5)
    assert nn.utils.clip_grad_norm_([nn.Parameter(mr.zeros(2))], 1.0).item() == 0.0  # no grads at all


# ---- state_dict -----------------------------------------------------------------------------
def test_state_dict_round_trip_and_in_place_load():
    mr.manual_seed(0)
    a = Toy()
    a(_tensor((4, 2, 4, 4), seed=1))  # a training step moves the running statistics
    saved = {k: v.numpy().copy() for k, v in a.state_dict().items()}
    assert saved["bn.num_batches_tracked"] == 1 and saved["bn.num_batches_tracked"].dtype == np.int64
    mr.manual_seed(1)
    b = Toy()
    weight_obj, weight_arr = b.conv.weight, b.conv.weight.array
    result = b.load_state_dict({k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in saved.items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert b.conv.weight is weight_obj and b.conv.weight.array is weight_arr  # copied in place
    assert b.conv.weight.dtype == np.float32  # the model's dtype wins
    x = _tensor((3, 2, 4, 4), seed=2)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), saved[k])


def test_load_state_dict_strict_errors_name_keys_and_shapes():
    m = Toy()
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    missing = dict(sd)
    del missing["bn.running_var"]
    # PyTorch's messages, in a RuntimeError (PyTorch's type) that is also a ValueError (minires's before)
    with pytest.raises(RuntimeError, match=r'Error\(s\) in loading state_dict for Toy:\n\tMissing key\(s\) in '
                                           r'state_dict: "bn.running_var"\.'):
        m.load_state_dict(missing)
    with pytest.raises(ValueError, match=r'Unexpected key\(s\) in state_dict: "extra.weight"\.'):
        m.load_state_dict({**sd, "extra.weight": np.zeros(2)})
    bad = dict(sd, **{"head.1.weight": np.zeros((7, 48), np.float32)})
    with pytest.raises(ValueError, match=r"size mismatch for head.1.weight: copying a param with shape \(7, 48\) "
                                         r"from checkpoint, the shape in current model is \(5, 48\)\."):
        m.load_state_dict(bad)
    with pytest.raises(ValueError, match="shape"):
        m.load_state_dict(bad, strict=False)  # a shape mismatch is an error even when not strict
    res = m.load_state_dict({**missing, "extra.weight": np.zeros(2)}, strict=False)
    assert res.missing_keys == ["bn.running_var"] and res.unexpected_keys == ["extra.weight"]


def test_to_dtype_casts_floats_only():
    m = Toy().to(mr.float64)
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert m.bn.running_mean.dtype == np.float64 and m.bn.num_batches_tracked.dtype == np.int64
    assert m(_tensor((2, 2, 4, 4), dtype=np.float64)).dtype == np.float64


# ---- layers against closed forms -------------------------------------------------------------
def test_linear_matches_numpy():
    lin = nn.Linear(4, 3)
    x = _tensor((5, 4))
    expected = x.numpy() @ lin.weight.numpy().T + lin.bias.numpy()
    np.testing.assert_allclose(lin(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert (lin.in_features, lin.out_features) == (4, 3)
    assert nn.Linear(4, 3, bias=False).bias is None


def test_conv2d_layer_passes_its_settings():
    conv = nn.Conv2d(2, 4, 3, stride=2, padding=1)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            conv.dilation, conv.groups) == (2, 4, (3, 3), (2, 2), (1, 1), (1, 1), 1)
    x = _tensor((2, 2, 5, 5))
    # the layer passes its settings on: whether conv2d itself is right is tests/ops/test_conv.py's
    expected = F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1)
    np.testing.assert_array_equal(conv(x).numpy(), expected.numpy())
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)


def test_batchnorm_running_stats_and_eval_closed_form():
    bn = nn.BatchNorm2d(3)
    assert bn.num_batches_tracked.item() == 0 and bn.num_batches_tracked.dtype == np.int64
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(3))
    x = _tensor((4, 3, 2, 2)).numpy() * 3 + 1
    bn(mr.tensor(x))
    bn(mr.tensor(x))
    assert bn.num_batches_tracked.item() == 2
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    # two identical steps of momentum 0.1: r = 0.81 * r0 + 0.19 * stat
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.19 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.81 + 0.19 * var, rtol=1e-5)
    bn.eval()
    bn.weight.array[...] = [1.0, 2.0, -1.0]
    bn.bias.array[...] = [0.0, 0.5, 1.0]
    y = bn(mr.tensor(x)).numpy()
    rm, rv = bn.running_mean.numpy(), bn.running_var.numpy()
    expected = (x - rm[:, None, None]) / np.sqrt(rv[:, None, None] + 1e-5) * bn.weight.numpy()[:, None, None] \
        + bn.bias.numpy()[:, None, None]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert bn.num_batches_tracked.item() == 2  # eval does not count


def test_batchnorm_momentum_none_is_cumulative_average():
    bn = nn.BatchNorm2d(2, momentum=None)
    xs = [_tensor((3, 2, 2, 2), seed=s).numpy() + s for s in range(3)]
    for x in xs:
        bn(mr.tensor(x))
    expected = np.mean([x.mean(axis=(0, 2, 3)) for x in xs], axis=0)
    np.testing.assert_allclose(bn.running_mean.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_flatten_and_identity():
    x = _tensor((2, 3, 4, 5))
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(1, 2)(x).shape == (2, 12, 5)
    assert nn.Identity(7, foo=1)(x) is x


# ---- initialisation statistics ---------------------------------------------------------------
def test_default_init_matches_pytorch_bounds():
    mr.manual_seed(0)
    conv = nn.Conv2d(128, 64, 3)
    fan_in = 128 * 9
    w, b = conv.weight.numpy(), conv.bias.numpy()
    # kaiming_uniform_(a=sqrt(5)): gain sqrt(2 / 6), bound = sqrt(3) * gain / sqrt(fan_in) = 1 / sqrt(fan_in)
    bound = 1 / math.sqrt(fan_in)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    assert np.abs(b).max() <= bound
    lin = nn.Linear(500, 300)
    assert np.abs(lin.weight.numpy()).max() <= 1 / math.sqrt(500)
    assert lin.weight.numpy().std() == pytest.approx(1 / math.sqrt(3 * 500), rel=0.01)


def test_kaiming_normal_and_seeding():
    t = mr.zeros(256, 128, 3, 3)
    mr.manual_seed(3)
    nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu")
    std = math.sqrt(2.0 / (256 * 9))
    assert t.numpy().std() == pytest.approx(std, rel=0.01)
    assert abs(t.numpy().mean()) < 0.01 * std
    u = mr.zeros(256, 128, 3, 3)
    mr.manual_seed(3)
    nn.init.kaiming_normal_(u, mode="fan_out", nonlinearity="relu")
    np.testing.assert_array_equal(t.numpy(), u.numpy())  # the seeded generator makes init reproducible
    with pytest.raises(ValueError, match="mode"):
        nn.init.kaiming_normal_(t, mode="fan_sideways")
