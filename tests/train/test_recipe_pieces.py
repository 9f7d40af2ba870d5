"""The pieces of the airbench94 recipe: dirac_ and patch_whitening_ initialisers, LambdaLR/PiecewiseLinear,
LookaheadEMA, AlternatingFlip, test-time augmentation views, checkpoint arrays, frozen-weight BatchNorm2d with
airbench's eps/momentum, SGD param groups with a parameter frozen mid-run, and max-pooling of odd sizes.

References are naive loops, closed forms written out by hand, finite differences (mr.gradcheck) and identities.
(Sum-reduced cross_entropy with label smoothing is already checked against loops and gradchecked in
tests/ops/test_loss.py: test_forward_matches_loops, test_gradcheck.)"""
import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minires as mr
import minires.functional as F
from minires import models, nn, recipes
from minires.checkpoint import load_checkpoint, save_checkpoint
from minires.data.transforms import AlternatingFlip, SampleRNG
from minires.optim import SGD, LookaheadEMA
from minires.optim.lr_scheduler import LambdaLR, PiecewiseLinear
from minires.train.tta import VIEWS, tta_logits, view
from minires.recipes import airbench94 as ab
from minires.train.config import TrainConfig, apply_recipe

# ---- dirac_ -----------------------------------------------------------------------------------------------

def naive_dirac(shape, groups):
    """Out-channel g * out_per_group + i passes in-channel i through at the kernel centre, i < min(out/g, in)."""
    w = np.zeros(shape)
    out_per_group = shape[0] // groups
    centre = tuple(k // 2 for k in shape[2:])
    for g in range(groups):
        for i in range(out_per_group):
            if i < shape[1]:
                w[(g * out_per_group + i, i) + centre] = 1.0
    return w


@given(groups=st.integers(1, 3), out_per_group=st.integers(1, 4), cin=st.integers(1, 5),
       kernel=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=st.integers(0, 2**16))
def test_dirac_matches_the_loop_definition(groups, out_per_group, cin, kernel, seed):
    shape = (groups * out_per_group, cin, *kernel)  # 3-D to 5-D; more out than in channels and vice versa
    w = mr.tensor(np.random.default_rng(seed).standard_normal(shape))  # old values must all be overwritten
    assert nn.init.dirac_(w, groups=groups) is w
    np.testing.assert_array_equal(w.numpy(), naive_dirac(shape, groups))


def test_dirac_on_a_slice_under_no_grad_writes_into_the_conv_weight():
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=False)  # as models/airbench.py: the first in_channels filters
    rest = conv.weight.numpy()[3:].copy()
    with mr.no_grad():
        nn.init.dirac_(conv.weight[:3])
    np.testing.assert_array_equal(conv.weight.numpy()[:3], naive_dirac((3, 3, 3, 3), 1))
    np.testing.assert_array_equal(conv.weight.numpy()[3:], rest)  # untouched
    assert conv.weight.requires_grad  # still a trainable parameter


@pytest.mark.parametrize("C, groups, kernel", [(4, 1, 3), (6, 2, 3), (6, 3, 5), (3, 1, 1)])
def test_conv_after_dirac_is_the_identity_map(C, groups, kernel):
    conv = nn.Conv2d(C, C, kernel, padding=kernel // 2, groups=groups, bias=False, dtype=mr.float64)
    nn.init.dirac_(conv.weight, groups=groups)
    x = mr.tensor(np.random.default_rng(0).standard_normal((2, C, 7, 6)))
    np.testing.assert_array_equal(conv(x).numpy(), x.numpy())


def test_dirac_bad_input():
    with pytest.raises(TypeError, match="dirac_"):
        nn.init.dirac_(np.zeros((2, 2, 3, 3)))
    for shape, groups in (((4, 4), 1), ((2, 2, 1, 1, 1, 1), 1), ((4, 2, 3, 3), 3), ((4, 2, 3, 3), 0),
                          ((4, 2, 3, 3), True), ((4, 2, 3, 3), 2.0)):
        with pytest.raises(ValueError, match="dirac_"):
            nn.init.dirac_(mr.zeros(*shape), groups=groups)


# ---- patch_whitening_ ------------------------------------------------------------------------------------

def naive_patches(x, kh, kw):
    """Every kh x kw patch of every image as a C*kh*kw vector ordered (c, a, b), as a conv weight's filter."""
    N, C, H, W = x.shape
    rows = []
    for n in range(N):
        for i in range(H - kh + 1):
            for j in range(W - kw + 1):
                rows.append([x[n, c, i + a, j + b] for c in range(C) for a in range(kh) for b in range(kw)])
    return np.array(rows)  # (N*(H-kh+1)*(W-kw+1), C*kh*kw)


def whitening_case(seed, C=2, kh=2, kw=3, k=4):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((C, C)) + 2 * np.eye(C)  # correlated channels
    x = np.einsum("dc,nchw->ndhw", mix, rng.standard_normal((3, C, 7, 8))) + 0.3  # uncentred
    return x, mr.zeros(2 * k, C, kh, kw, dtype=mr.float64)


@pytest.mark.parametrize("C, kh, kw, k", [(2, 2, 3, 4), (3, 2, 2, 12), (1, 3, 3, 2)])
def test_patch_whitening_whitens_the_images_own_patches(C, kh, kw, k):
    x, w = whitening_case(0, C, kh, kw, k)
    nn.init.patch_whitening_(w, x, eps=0.0)
    P = naive_patches(x, kh, kw)
    filters = w.numpy().reshape(2 * k, -1)
    out = P @ filters.T  # (patches, 2k): each filter on each patch
    cov = out[:, :k].T @ out[:, :k] / len(P)  # uncentred, mean over patches
    np.testing.assert_allclose(cov, np.eye(k), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(filters[k:], -filters[:k])
    # the conv with this weight computes the same outputs (the weight's (c, a, b) layout is the conv's)
    y = F.conv2d(mr.tensor(x), w).numpy()  # (N, 2k, H', W')
    np.testing.assert_allclose(y.transpose(0, 2, 3, 1).reshape(-1, 2 * k), out, rtol=0, atol=1e-10)


@pytest.mark.parametrize("eps", [1e-3, 0.1, 5.0])
def test_patch_whitening_with_eps_shrinks_each_direction_by_lam_over_lam_plus_eps(eps):
    k = 3
    x, w = whitening_case(1, k=k)
    nn.init.patch_whitening_(w, x, eps=eps)
    P = naive_patches(x, 2, 3)
    lam = np.sort(np.linalg.eigvalsh(P.T @ P / len(P)))[::-1][:k]  # the k largest
    out = P @ w.numpy().reshape(2 * k, -1)[:k].T
    np.testing.assert_allclose(out.T @ out / len(P), np.diag(lam / (lam + eps)), rtol=0, atol=1e-9)


def test_patch_whitening_of_float32_weight_and_tensor_images():
    x, _ = whitening_case(2)
    w = mr.zeros(8, 2, 2, 3, dtype=mr.float32)
    nn.init.patch_whitening_(w, mr.tensor(x), eps=0.0)
    assert w.dtype == np.float32
    out = naive_patches(x, 2, 3) @ w.numpy().astype(np.float64).reshape(8, -1)[:4].T
    np.testing.assert_allclose(out.T @ out / len(out), np.eye(4), rtol=0, atol=1e-5)


def test_patch_whitening_bad_input():
    x, w = whitening_case(3)  # w: (8, 2, 2, 3)
    bad = x.copy()
    bad[0, 1, 2, 3] = np.nan
    cases = [
        (lambda: nn.init.patch_whitening_(mr.zeros(7, 2, 2, 3), x), "even"),  # odd out-channels
        (lambda: nn.init.patch_whitening_(w, x[:, :1]), "images must be"),  # 1 channel for a 2-channel weight
        (lambda: nn.init.patch_whitening_(w, x[:, :, :1]), "images must be"),  # smaller than the kernel
        (lambda: nn.init.patch_whitening_(w, bad), "NaN"),
        (lambda: nn.init.patch_whitening_(mr.zeros(26, 2, 2, 3), x), "13 directions"),  # k > C*kh*kw = 12
        (lambda: nn.init.patch_whitening_(w, x, eps=-1e-3), "eps"),
        (lambda: nn.init.patch_whitening_(w, np.zeros_like(x), eps=0.0), "singular"),
    ]
    for fn, words in cases:
        with pytest.raises(ValueError, match=f"patch_whitening_.*{words}"):
            fn()
    with pytest.raises(TypeError, match="patch_whitening_"):
        nn.init.patch_whitening_(np.zeros((8, 2, 2, 3)), x)


# ---- LambdaLR and PiecewiseLinear -------------------------------------------------------------------------

def two_group_sgd(lrs=(0.1, 0.02)):
    a, b = mr.zeros(2, requires_grad=True), mr.zeros(3, requires_grad=True)
    return SGD([{"params": [a], "lr": lrs[0]}, {"params": [b], "lr": lrs[1]}], lr=1.0, momentum=0.9)


@given(xs=st.lists(st.floats(-50, 500), min_size=1, max_size=6, unique=True),
       ys=st.lists(st.floats(0, 3), min_size=6, max_size=6), data=st.data())
def test_piecewise_linear_is_np_interp(xs, ys, data):
    xs = sorted(xs)
    ys = ys[:len(xs)]
    f = PiecewiseLinear(xs, ys)
    ts = [*range(-60, 520, 7), *xs, *data.draw(st.lists(st.floats(-100, 600), max_size=20))]
    for t in ts:
        assert math.isclose(f(t), float(np.interp(t, xs, ys)), rel_tol=1e-12, abs_tol=1e-12), (t, f(t))


def test_lambda_lr_sets_initial_lr_times_f_of_the_step_per_group():
    opt = two_group_sgd()
    f0 = PiecewiseLinear([0, 109, 476], [0.2, 1.0, 0.07])  # airbench's warm-up and decay
    f1 = lambda step: 0.5 ** (step // 100)  # noqa: E731
    sched = LambdaLR(opt, [f0, f1])
    for step in range(500):  # the constructor applied step 0
        expected = [0.1 * float(np.interp(step, [0, 109, 476], [0.2, 1.0, 0.07])), 0.02 * 0.5 ** (step // 100)]
        got = [g["lr"] for g in opt.param_groups]
        assert math.isclose(got[0], expected[0], rel_tol=1e-13) and got[1] == expected[1], step
        assert sched.get_last_lr() == got
        opt.step()
        sched.step()
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.02]


def test_lambda_lr_one_function_serves_every_group():
    opt = two_group_sgd()
    LambdaLR(opt, lambda step: 3.0)
    assert [g["lr"] for g in opt.param_groups] == [0.1 * 3.0, 0.02 * 3.0]


@pytest.mark.parametrize("via_json", [False, True])
def test_lambda_lr_resumes_bit_identically(via_json):
    knots = ([0, 30, 90], [0.2, 1.0, 0.0])
    opt = two_group_sgd()
    sched = LambdaLR(opt, [PiecewiseLinear(*knots), lambda s: 1 / (1 + s)])
    for _ in range(37):
        sched.step()
    state = sched.state_dict()
    if via_json:
        state = json.loads(json.dumps(state))
    opt2 = two_group_sgd()
    sched2 = LambdaLR(opt2, [PiecewiseLinear(*knots), lambda s: 1 / (1 + s)])
    sched2.load_state_dict(state)
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    for _ in range(60):
        sched.step()
        sched2.step()
        assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
        assert sched2.last_epoch == sched.last_epoch


def test_lambda_lr_refuses_other_knots_nan_and_wrong_lambdas():
    opt = two_group_sgd()
    state = LambdaLR(opt, PiecewiseLinear([0, 10], [1.0, 0.0])).state_dict()
    other = LambdaLR(two_group_sgd(), PiecewiseLinear([0, 20], [1.0, 0.0]))
    with pytest.raises(ValueError, match="LambdaLR.load_state_dict"):
        other.load_state_dict(state)

    opt = two_group_sgd()
    sched = LambdaLR(opt, lambda s: 1.0 if s < 3 else math.nan)
    sched.step()
    sched.step()
    with pytest.raises(ValueError, match=r"LambdaLR: lr_lambda\(3\) returned nan"):
        sched.step()
    assert sched.last_epoch == 2 and [g["lr"] for g in opt.param_groups] == [0.1, 0.02]  # step refused whole
    with pytest.raises(ValueError, match="LambdaLR"):
        LambdaLR(two_group_sgd(), lambda s: math.inf)
    with pytest.raises(ValueError, match="LambdaLR.*lr_lambda.*3 functions for 2"):
        LambdaLR(two_group_sgd(), [lambda s: 1.0] * 3)
    with pytest.raises(TypeError, match="LambdaLR.*lr_lambda"):
        LambdaLR(two_group_sgd(), 0.5)
    with pytest.raises(TypeError, match="LambdaLR.*optimizer"):
        LambdaLR([mr.zeros(2)], lambda s: 1.0)


def test_piecewise_linear_bad_knots():
    for xs, ys in (([0, 1], [1.0]), ([], []), ([2, 1], [0, 1]), ([0, math.inf], [0, 1]), ([0, 1], [0, math.nan])):
        with pytest.raises(ValueError, match="PiecewiseLinear"):
            PiecewiseLinear(xs, ys)


# ---- LookaheadEMA ---------------------------------------------------------------------------------------

def small_net():
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(48, 4)).double()


def perturb(model, rng):
    """Move every parameter and, by a training forward pass, the BatchNorm running statistics."""
    with mr.no_grad():
        for p in model.parameters():
            p.array[...] += rng.standard_normal(p.shape)
    model.train()
    model(mr.tensor(rng.standard_normal((5, 2, 4, 4)) * 2 + 1))


def snapshot(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_lookahead_ema_blends_every_floating_entry_and_writes_it_back():
    rng = np.random.default_rng(0)
    model = small_net()
    ema = LookaheadEMA(model)
    avg = snapshot(model)
    floating = [k for k, v in avg.items() if v.dtype.kind == "f"]
    assert "1.running_mean" in floating and "1.running_var" in floating and "1.num_batches_tracked" not in floating
    for decay in (0.5, 0.9, 0.0, 0.99):
        perturb(model, rng)
        now = snapshot(model)
        ema.update(decay)
        after = snapshot(model)
        for k in floating:
            avg[k] = decay * avg[k] + (1 - decay) * now[k]  # by hand
            np.testing.assert_allclose(after[k], avg[k], rtol=1e-14, atol=1e-14, err_msg=k)
            np.testing.assert_array_equal(ema.state_dict()[k], after[k])  # the model holds the average
        assert after["1.num_batches_tracked"] == now["1.num_batches_tracked"]  # counters untouched
    assert after["1.num_batches_tracked"] == 4


def test_lookahead_ema_decay_one_writes_the_average_back_unchanged():
    rng = np.random.default_rng(1)
    model = small_net()
    ema = LookaheadEMA(model)
    start = snapshot(model)
    perturb(model, rng)
    ema.update(1.0)
    for k, v in snapshot(model).items():
        np.testing.assert_array_equal(v, start[k] if v.dtype.kind == "f" else v, err_msg=k)


def test_lookahead_ema_state_dict_roundtrip():
    rng = np.random.default_rng(2)
    model = small_net()
    ema = LookaheadEMA(model)
    perturb(model, rng)
    ema.update(0.7)
    perturb(model, rng)  # the model now differs from the average
    saved = ema.state_dict()
    assert all(isinstance(a, np.ndarray) for a in saved.values())
    model2 = small_net()
    model2.load_state_dict(model.state_dict())
    ema2 = LookaheadEMA(model2)  # its averages start as the model's, not as the saved ones
    assert any(not np.array_equal(ema2.state_dict()[k], a) for k, a in saved.items())
    ema2.load_state_dict(saved)
    for k, a in saved.items():
        np.testing.assert_array_equal(ema2.state_dict()[k], a, err_msg=k)
    ema.update(0.6)
    ema2.update(0.6)
    after, after2 = snapshot(model), snapshot(model2)
    for k, v in after.items():
        np.testing.assert_array_equal(after2[k], v, err_msg=k)
    saved["0.weight"][...] = 0  # a copy: changing it leaves the average alone
    assert np.abs(ema.state_dict()["0.weight"]).max() > 0


def test_lookahead_ema_bad_input():
    ema = LookaheadEMA(small_net())
    for decay in (-0.1, 1.5, math.nan, True, "0.5", None):
        with pytest.raises(ValueError, match="LookaheadEMA.update: decay"):
            ema.update(decay)
    with pytest.raises(TypeError, match="LookaheadEMA"):
        LookaheadEMA(np.zeros(3))
    saved = ema.state_dict()
    with pytest.raises(ValueError, match="LookaheadEMA.load_state_dict.*missing"):
        ema.load_state_dict({k: v for k, v in saved.items() if k != "1.running_var"})
    with pytest.raises(ValueError, match="LookaheadEMA.load_state_dict.*0.weight.*shape"):
        ema.load_state_dict({**saved, "0.weight": np.zeros((3, 2, 3, 4))})


# ---- AlternatingFlip ------------------------------------------------------------------------------------

def flipped_images(x, indices, seed, epoch, calls_before=0):
    """Which images AlternatingFlip mirrors (checked to be exactly x[..., ::-1] or untouched)."""
    rng = SampleRNG(indices, seed=seed, epoch=epoch)
    for _ in range(calls_before):
        rng.random(len(indices))  # other transforms drawing first must not matter
    out = AlternatingFlip()(x, rng)
    mirrored = np.array([np.array_equal(out[i], x[i][..., ::-1]) for i in range(len(x))])
    same = np.array([np.array_equal(out[i], x[i]) for i in range(len(x))])
    assert np.all(mirrored ^ same), "every image is either mirrored or untouched, never both or neither"
    return mirrored


def test_alternating_flip_toggles_every_image_each_epoch():
    n = 1000
    x = np.random.default_rng(0).standard_normal((n, 2, 3, 5)).astype(np.float32)  # no image is its own mirror
    idx = np.arange(n)
    e0, e1, e2, e3 = (flipped_images(x, idx, seed=7, epoch=e) for e in range(4))
    assert np.all(e1 == ~e0) and np.all(e2 == e0) and np.all(e3 == e1)
    assert 400 <= e0.sum() <= 600
    assert not np.array_equal(flipped_images(x, idx, seed=8, epoch=0), e0)  # the seed picks the half


def test_alternating_flip_is_keyed_by_image_index_not_batch_position():
    x_all = np.random.default_rng(1).standard_normal((40, 3, 4, 4))
    order = np.random.default_rng(2).permutation(40)
    for epoch in (0, 1, 5):
        whole = flipped_images(x_all, np.arange(40), seed=3, epoch=epoch)
        for batch in np.array_split(order, [7, 8, 25]):  # other groupings and positions
            part = flipped_images(x_all[batch], batch, seed=3, epoch=epoch, calls_before=2)
            np.testing.assert_array_equal(part, whole[batch])


def test_alternating_flip_needs_a_sample_rng_and_a_batch():
    x = np.zeros((2, 3, 4, 4))
    with pytest.raises(TypeError, match="AlternatingFlip.*SampleRNG.*Generator"):
        AlternatingFlip()(x, np.random.default_rng(0))
    with pytest.raises(TypeError, match="AlternatingFlip"):
        AlternatingFlip()(x, None)
    with pytest.raises(ValueError, match="AlternatingFlip"):
        AlternatingFlip()(np.zeros((3, 4, 4)), SampleRNG([0, 1, 2]))


# ---- test-time augmentation -----------------------------------------------------------------------------

def reflect(i, n):
    """np.pad(mode='reflect') indexing: mirror at the border without repeating the edge."""
    while not 0 <= i < n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


def naive_view(x, dy, dx, mirrored):
    N, C, H, W = x.shape
    out = np.empty_like(x)
    for i in range(H):
        for j in range(W):
            out[:, :, i, j] = x[:, :, reflect(i - dy, H), reflect(j - dx, W)]
    return out[..., ::-1] if mirrored else out


@given(shift=st.tuples(st.integers(-2, 2), st.integers(-2, 2)), mirrored=st.booleans(),
       size=st.tuples(st.integers(3, 6), st.integers(3, 6)), seed=st.integers(0, 2**16))
def test_view_is_a_reflect_padded_shift_then_mirror(shift, mirrored, size, seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, *size))
    np.testing.assert_array_equal(view(x, *shift, mirrored), naive_view(x, *shift, mirrored))


def test_view_uses_reflection_without_edge_repeat():
    x = np.arange(8.0).reshape(1, 1, 2, 4)
    assert view(x, 0, 1, False)[0, 0].tolist() == [[1, 0, 1, 2], [5, 4, 5, 6]]  # np.pad(row, 1, 'reflect')[:4]
    assert view(x, 0, -1, False)[0, 0].tolist() == [[1, 2, 3, 2], [5, 6, 7, 6]]
    assert view(x, 1, 0, True)[0, 0].tolist() == [[7, 6, 5, 4], [3, 2, 1, 0]]


@pytest.mark.parametrize("mode", sorted(VIEWS))
def test_tta_logits_is_the_weighted_sum_of_the_views(mode):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 5, 5))
    W = rng.standard_normal((50, 4))
    model = nn.Sequential(nn.Flatten(), nn.Linear(50, 4, bias=False)).double()
    model[1].weight.array[...] = W.T
    expected = sum(weight * naive_view(x, dy, dx, m).reshape(3, 50) @ W for dy, dx, m, weight in VIEWS[mode])
    for inp in (x, mr.tensor(x)):
        np.testing.assert_allclose(tta_logits(model, inp, mode).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_tta_modes_weights_sum_to_one_and_bad_input():
    assert set(VIEWS) >= {"none", "flip", "flip-shift"}
    for mode, views in VIEWS.items():
        assert math.isclose(sum(v[3] for v in views), 1.0, rel_tol=0, abs_tol=1e-15), mode
    model = nn.Flatten()
    with pytest.raises(ValueError, match="tta: mode.*'shift'"):
        tta_logits(model, np.zeros((1, 1, 3, 3)), "shift")
    with pytest.raises(ValueError, match="tta.*shape"):
        tta_logits(model, np.zeros((1, 3, 3)), "flip")


# ---- checkpoint arrays ----------------------------------------------------------------------------------

def test_checkpoint_arrays_roundtrip_exactly_apart_from_the_weights(tmp_path):
    rng = np.random.default_rng(5)
    model = small_net()
    arrays = {
        "ema.0.weight": rng.standard_normal((3, 2, 3, 3)),
        "ema.1.running_var": rng.random(3).astype(np.float32),
        "counts": np.arange(7, dtype=np.int64),
        "scalar": np.array(2.5),
        "strided": rng.standard_normal((4, 6))[:, ::2],  # non-contiguous
    }
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, model, arrays=arrays)
    loaded = load_checkpoint(path)
    assert set(loaded["arrays"]) == set(arrays)
    for name, a in arrays.items():
        got = loaded["arrays"][name]
        assert got.dtype == a.dtype and got.shape == a.shape, name
        np.testing.assert_array_equal(got, a, err_msg=name)
    assert list(loaded["model"]) == list(model.state_dict())  # no array among the weights
    other = small_net()
    load_checkpoint(path, model=other)  # strict load: the arrays do not get in the way
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k].numpy(), v.numpy())
    save_checkpoint(tmp_path / "none.safetensors", model)
    assert load_checkpoint(tmp_path / "none.safetensors")["arrays"] == {}


# ---- BatchNorm2d with a frozen weight, airbench's eps and momentum ----------------------------------------

def bn_loop(a, eps):
    """Per channel: (x - mean) / sqrt(biased var + eps), the batch mean and unbiased variance, by sums."""
    N, C, H, W = a.shape
    out, means, unbiased = np.empty_like(a, dtype=np.float64), [], []
    for c in range(C):
        v = a[:, c].astype(np.float64).ravel().tolist()
        m = sum(v) / len(v)
        ss = sum((u - m) ** 2 for u in v)
        out[:, c] = (a[:, c] - m) / math.sqrt(ss / len(v) + eps)
        means.append(m)
        unbiased.append(ss / (len(v) - 1))
    return out, np.array(means), np.array(unbiased)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_frozen_weight_batchnorm_forward_and_running_stats(device, dtype):
    rng = np.random.default_rng(6)
    C = 3
    bn = nn.BatchNorm2d(C, eps=1e-12, momentum=0.4, dtype=dtype, device=device)
    bn.weight.requires_grad = False
    bias = rng.standard_normal(C)
    bn.bias.array[...] = mr.tensor(bias, dtype=dtype, device=device).array
    rm, rv = np.zeros(C), np.ones(C)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for step in range(3):
        a = rng.standard_normal((4, C, 3, 5)) * (step + 1) + step
        y = bn(mr.tensor(a.astype(dtype), device=device))
        norm, mean, unbiased = bn_loop(a.astype(dtype), 1e-12)
        assert y.dtype == dtype
        np.testing.assert_allclose(y.numpy(), norm + bias[None, :, None, None], rtol=0, atol=tol)
        rm, rv = 0.6 * rm + 0.4 * mean, 0.6 * rv + 0.4 * unbiased  # PyTorch: (1 - m) old + m batch
        np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=tol, atol=tol)
        np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=tol, atol=tol)
    assert int(bn.num_batches_tracked.item()) == 3
    np.testing.assert_array_equal(bn.weight.numpy(), np.ones(C))


def test_frozen_weight_batchnorm_gradients(device):
    rng = np.random.default_rng(7)
    bn = nn.BatchNorm2d(3, eps=1e-12, momentum=0.4, dtype=mr.float64, device=device)
    bn.weight.requires_grad = False
    x = mr.tensor(rng.standard_normal((4, 3, 2, 3)) * 2 + 1, device=device, requires_grad=True)
    g = rng.standard_normal((4, 3, 2, 3))
    bn(x).backward(mr.tensor(g, device=device))
    assert bn.weight.grad is None
    np.testing.assert_allclose(bn.bias.grad.numpy(), g.sum(axis=(0, 2, 3)), rtol=1e-12)  # d/db of sum(g * y)
    b = mr.tensor(rng.standard_normal(3), device=device, requires_grad=True)
    assert mr.gradcheck(lambda x, b: F.batch_norm(x, None, None, bn.weight, b, True, 0.4, 1e-12), [x, b])
    assert mr.gradcheck(lambda x: bn(x), [x])


# ---- SGD param groups, one parameter frozen mid-run ------------------------------------------------------

def test_sgd_groups_with_own_lr_and_wd_and_a_parameter_frozen_mid_run():
    rng = np.random.default_rng(8)
    A, B = rng.uniform(0.5, 2.0, 5), rng.standard_normal(5)
    w0, v0 = rng.standard_normal(5), rng.standard_normal(5)
    w, v = mr.tensor(w0, requires_grad=True), mr.tensor(v0, requires_grad=True)
    opt = SGD([{"params": [w], "lr": 0.1, "weight_decay": 0.05}, {"params": [v], "lr": 0.02, "weight_decay": 0.0}],
              lr=1.0, momentum=0.9, nesterov=True)
    At, Bt = mr.tensor(A), mr.tensor(B)

    def loss():  # 0.5 A p^2 + B p per element: grad = A p + B
        return sum(((At * p * p) * 0.5 + Bt * p).sum() for p in (w, v) if p.requires_grad)

    hand = {"w": [w0.copy(), None, 0.1, 0.05], "v": [v0.copy(), None, 0.02, 0.0]}  # p, buf, lr, wd
    w_at_freeze = None
    for step in range(6):
        if step == 3:
            v.requires_grad = False
            w_at_freeze = w.numpy().copy()
        opt.zero_grad()
        loss().backward()
        assert (v.grad is None) == (step >= 3)
        opt.step()
        for name, p in (("w", w), ("v", v)):
            x, buf, lr, wd = hand[name]
            if name == "v" and step >= 3:
                np.testing.assert_array_equal(p.numpy(), x)  # frozen: no change at all
                continue
            d = A * x + B + wd * x  # PyTorch: d = g + wd p; buf = m buf + d; p -= lr (d + m buf)
            buf = d if buf is None else 0.9 * buf + d
            x = x - lr * (d + 0.9 * buf)
            hand[name][:2] = x, buf
            np.testing.assert_allclose(p.numpy(), x, rtol=1e-13, atol=1e-14, err_msg=f"{name} step {step}")
    assert np.abs(w.numpy() - w_at_freeze).min() > 1e-6  # the other parameter went on moving


# ---- max-pooling of odd sizes (airbench: 31 -> 15 -> 7 -> 3, then kernel 3 on 3x3) ----------------------

def naive_max_pool(x, k):
    """Max over each k x k window at stride k, the windows that fit (floor)."""
    N, C, H, W = x.shape
    out = np.full((N, C, H // k, W // k), -np.inf)
    for i in range(H // k):
        for j in range(W // k):
            for a in range(k):
                for b in range(k):
                    out[:, :, i, j] = np.maximum(out[:, :, i, j], x[:, :, i * k + a, j * k + b])
    return out


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_max_pool_floors_odd_sizes_as_airbench(device, layout):
    # (pool_configs in tests/ops/test_pooling.py draws sizes up to 8; these are airbench's, in float32, and the
    # channels-last views its convs produce)
    rng = np.random.default_rng(9)
    a = rng.standard_normal((2, 31, 31, 3)).astype(np.float32)  # NHWC memory
    x = mr.tensor(a, device=device).permute(0, 3, 1, 2) if layout == "channels_last" \
        else mr.tensor(np.ascontiguousarray(a.transpose(0, 3, 1, 2)), device=device)
    ref = a.transpose(0, 3, 1, 2).astype(np.float64)
    for size in (15, 7, 3):
        x = nn.MaxPool2d(2)(x)
        ref = naive_max_pool(ref, 2)
        assert x.shape == (2, 3, size, size) and x.dtype == np.float32
        np.testing.assert_array_equal(x.numpy(), ref)
    y = nn.MaxPool2d(3)(x)
    assert y.shape == (2, 3, 1, 1)
    np.testing.assert_array_equal(y.numpy(), ref.max(axis=(2, 3), keepdims=True))


def test_airbench_weight_decay_per_step_scales_with_the_batch():
    # airbench: wd = 0.0153 * batch / kilostep_scale per step (lr * weight_decay), lr per summed-loss image.
    recipe = recipes.get("airbench94")
    kilostep = 1024 * (1 + 1 / (1 - 0.85))
    for batch in (1024, 512):
        config = dataclasses.replace(apply_recipe(TrainConfig(recipe="airbench94"), recipe, log=lambda *a: None),
                                     batch_size=batch)
        opt = recipe.optimizer(models.get("airbench94"), config)
        for group in opt.param_groups:
            assert group["lr"] * group["weight_decay"] == pytest.approx(0.0153 * batch / kilostep, rel=1e-12)
        assert opt.param_groups[0]["lr"] == pytest.approx(64 * ab.LR) and opt.param_groups[1]["lr"] == ab.LR
        assert ab.LR == pytest.approx(11.5 / kilostep)
