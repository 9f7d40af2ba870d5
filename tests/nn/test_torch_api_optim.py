"""AdamW, ExponentialLR and ReduceLROnPlateau: scalar references of PyTorch's rules, scripted metrics, resume."""
import inspect
import json

import numpy as np
import pytest

import minires as mr
from minires.optim import SGD, Adam, AdamW
from minires.optim.lr_scheduler import ExponentialLR, ReduceLROnPlateau, StepLR

from test_optim import A, B, P0, adam_reference, param, run  # the same quadratic loss as the other optimizers' tests


def adamw_reference(p0, steps, weight_decay=1e-2, **kw):
    """The published AdamW step, one Python float at a time (test_optim's Adam reference, decoupled)."""
    return adam_reference(p0, steps, weight_decay=weight_decay, decoupled=True, **kw)


# ---- AdamW ----------------------------------------------------------------------------------------
def test_adamw_signature_and_defaults():
    sig = inspect.signature(AdamW)
    assert {k: v.default for k, v in sig.parameters.items() if k != "params"} == dict(
        lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False)
    p = param()
    opt = AdamW([p])
    assert opt.defaults == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False)
    assert isinstance(opt, Adam)  # one Adam step serves both


ADAMW_CONFIGS = [
    dict(),
    dict(lr=0.1),
    dict(lr=0.05, weight_decay=0.3),
    dict(lr=0.05, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.1),
    dict(lr=0.05, weight_decay=0.2, amsgrad=True),
    dict(lr=0.1, betas=(0.0, 0.0), weight_decay=0.5, amsgrad=True),
]


@pytest.mark.parametrize("cfg", ADAMW_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_adamw_matches_reference(cfg):
    p = param()
    opt = AdamW([p], **cfg)
    run(opt, [p], 6)
    np.testing.assert_allclose(p.array, adamw_reference(P0, 6, **cfg), rtol=1e-10, atol=1e-14)
    assert opt.state[p]["step"] == 6


def test_adamw_param_groups_use_their_own_options():
    w, b, c = param(), param(P0[::-1].copy()), param(P0 * 3)
    opt = AdamW([{"params": [w]},
                 {"params": [b], "lr": 0.02, "weight_decay": 0.0},
                 {"params": [c], "betas": (0.8, 0.95), "amsgrad": True}], lr=0.05, weight_decay=0.25)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.25, 0.0, 0.25]
    run(opt, [w, b, c], 5)
    np.testing.assert_allclose(w.array, adamw_reference(P0, 5, lr=0.05, weight_decay=0.25), rtol=1e-10)
    np.testing.assert_allclose(b.array, adamw_reference(P0[::-1], 5, lr=0.02, weight_decay=0.0), rtol=1e-10)
    np.testing.assert_allclose(c.array, adamw_reference(P0 * 3, 5, lr=0.05, betas=(0.8, 0.95), weight_decay=0.25,
                                                       amsgrad=True), rtol=1e-10)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adamw_without_weight_decay_is_adam(amsgrad):
    p, q = param(), param()
    run(AdamW([p], lr=0.05, weight_decay=0.0, amsgrad=amsgrad), [p], 5)
    run(Adam([q], lr=0.05, amsgrad=amsgrad), [q], 5)
    np.testing.assert_array_equal(p.array, q.array)


def test_adamw_decay_is_decoupled():
    """With a zero gradient Adam's step is zero, so AdamW only shrinks p; Adam's L2 decay moves it differently."""
    p, q = param(), param()
    opt, adam = AdamW([p], lr=0.1, weight_decay=0.5), Adam([q], lr=0.1, weight_decay=0.5)
    for _ in range(4):
        p.grad = mr.Tensor(np.zeros(5))
        q.grad = mr.Tensor(np.zeros(5))
        opt.step()
        adam.step()
    np.testing.assert_allclose(p.array, P0 * (1 - 0.1 * 0.5) ** 4, rtol=1e-14)
    assert not np.allclose(q.array, p.array)
    np.testing.assert_array_equal(p.grad.array, np.zeros(5))  # the gradient itself is untouched


def test_adamw_float32_stays_float32():
    p32, p64 = param(dtype=np.float32), param()
    opt32 = AdamW([p32], lr=0.05, weight_decay=0.1, amsgrad=True)
    run(opt32, [p32], 4)
    run(AdamW([p64], lr=0.05, weight_decay=0.1, amsgrad=True), [p64], 4)
    assert p32.dtype == np.float32
    assert all(not hasattr(v, "dtype") or v.dtype == np.float32 for v in opt32.state[p32].values())
    np.testing.assert_allclose(p32.array, p64.array, rtol=1e-5, atol=1e-6)


def make_adamw(ps):
    return AdamW([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.01, "amsgrad": True}], lr=0.05,
                 betas=(0.8, 0.95), weight_decay=0.1)


@pytest.mark.parametrize("via_json", [False, True], ids=["dict", "json"])
def test_adamw_state_dict_resume_equals_uninterrupted(via_json):
    ref = [param(), param(P0 * 2)]
    run(make_adamw(ref), ref, 6)

    ps = [param(), param(P0 * 2)]
    opt = make_adamw(ps)
    run(opt, ps, 3)
    sd = opt.state_dict()
    saved = [p.array.copy() for p in ps]
    if via_json:
        sd = {"state": {str(k): dict(v) for k, v in sd["state"].items()},
              "param_groups": json.loads(json.dumps(sd["param_groups"]))}

    resumed = [param(saved[0]), param(saved[1])]
    opt2 = AdamW([{"params": resumed[:1]}, {"params": resumed[1:]}], lr=1.0, weight_decay=0.0)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[1]["amsgrad"] is True and opt2.param_groups[0]["weight_decay"] == 0.1
    assert opt2.param_groups[0]["betas"] == (0.8, 0.95)
    run(opt2, resumed, 3)
    for r, p in zip(ref, resumed):
        np.testing.assert_array_equal(r.array, p.array)


def test_adamw_on_device_matches_cpu(device):
    cpu = param()
    run(AdamW([cpu], lr=0.05, weight_decay=0.2, amsgrad=True), [cpu], 3)
    dev = mr.tensor(P0, device=device, requires_grad=True)
    opt = AdamW([dev], lr=0.05, weight_decay=0.2, amsgrad=True)
    for _ in range(3):
        dev.grad = mr.tensor(A * dev.numpy() + B, device=device)
        opt.step()
    assert dev.device.startswith(device)
    np.testing.assert_allclose(dev.numpy(), cpu.array, rtol=1e-12)


# ---- ExponentialLR --------------------------------------------------------------------------------
def sgd(lr=0.1, groups=1):
    ps = [mr.Tensor(np.zeros(2), requires_grad=True) for _ in range(groups)]
    return SGD([{"params": [p], "lr": lr / 10 ** i} for i, p in enumerate(ps)], lr=lr, momentum=0.9)


def test_exponential_lr_two_groups():
    opt = sgd(0.1, groups=2)
    s = ExponentialLR(opt, gamma=0.9)
    assert s.last_epoch == 0 and [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.01]
    got = [s.get_last_lr()]
    for _ in range(30):
        s.step()
        assert [g["lr"] for g in opt.param_groups] == s.get_last_lr()
        got.append(s.get_last_lr())
    k = np.arange(31)[:, None]
    np.testing.assert_allclose(np.array(got), np.array([0.1, 0.01]) * 0.9 ** k, rtol=1e-14)


def test_exponential_lr_resume_with_last_epoch_argument():
    opt = sgd(0.1)
    s = ExponentialLR(opt, gamma=0.5)
    for _ in range(3):
        s.step()
    s2 = ExponentialLR(opt, gamma=0.5, last_epoch=3)
    assert s2.last_epoch == 4 and s2.get_last_lr()[0] == pytest.approx(0.1 * 0.5 ** 4, rel=1e-15)


# ---- ReduceLROnPlateau ----------------------------------------------------------------------------
def plateau_lrs(metrics, lr=1.0, **kw):
    s = ReduceLROnPlateau(sgd(lr), **kw)
    out = []
    for m in metrics:
        s.step(m)
        out.append(s.get_last_lr()[0])
    return out


def test_plateau_signature_and_construction():
    defaults = {k: v.default for k, v in inspect.signature(ReduceLROnPlateau).parameters.items() if k != "optimizer"}
    assert defaults == dict(mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel", cooldown=0,
                            min_lr=0, eps=1e-8)
    opt = sgd(0.1, groups=2)
    s = ReduceLROnPlateau(opt)
    assert s.get_last_lr() == [0.1, 0.01] and s.last_epoch == 0
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]


# Each case: scheduler options, metrics, and the lr after each step worked out by hand from PyTorch's rules.
PLATEAU_CASES = {
    # improvement resets the count; the 3rd bad epoch in a row (> patience=2) halves the lr
    "patience": (dict(patience=2, factor=0.5), [10, 9, 9, 9, 9, 8, 8, 8, 8, 8],
                 [1, 1, 1, 1, .5, .5, .5, .5, .25, .25]),
    # after a reduction, `cooldown` steps count no bad epochs
    "cooldown": (dict(patience=1, cooldown=2), [5] * 11,
                 [1, 1, .1, .1, .1, .1, .01, .01, .01, .01, .001]),
    # rel: an improvement must beat best * (1 - 0.1); 95 after 100 does not, 89 after 100 does
    "rel": (dict(patience=0, factor=0.5, threshold=0.1), [100, 95, 89, 88.5, 88.45],
            [1, .5, .5, .25, .125]),
    # abs: it must beat best - 0.1; 88.45 after 88.5 does not
    "abs": (dict(patience=0, factor=0.5, threshold=0.1, threshold_mode="abs"), [100, 95, 89, 88.5, 88.45],
            [1, 1, 1, 1, .5]),
    # max: higher is better (an accuracy); 0.605 is no gain over 0.6 + 0.01
    "max_abs": (dict(mode="max", patience=1, factor=0.5, threshold=0.01, threshold_mode="abs"),
                [.5, .6, .605, .612, .7, .7, .7], [1, 1, 1, 1, 1, 1, .5]),
    # max rel: must beat best * 1.1; 1.3 after 1.2 does not, 1.33 does
    "max_rel": (dict(mode="max", patience=0, factor=0.5, threshold=0.1), [1.0, 1.05, 1.2, 1.3, 1.33, 1.4],
                [1, .5, .5, .25, .25, .125]),
    # min_lr floors the lr; a cut to the same value changes nothing
    "min_lr": (dict(patience=0, min_lr=0.05), [1, 1, 1, 1, 1], [1, .1, .05, .05, .05]),
    # a mode-min run on rising metrics keeps cutting
    "rising": (dict(patience=0, factor=0.5), [1, 2, 3], [1, .5, .25]),
}


@pytest.mark.parametrize("case", PLATEAU_CASES)
def test_plateau_scripted(case):
    kw, metrics, expected = PLATEAU_CASES[case]
    np.testing.assert_allclose(plateau_lrs(metrics, **kw), expected, rtol=1e-12)


def test_plateau_eps_skips_tiny_reductions():
    assert plateau_lrs([1, 1, 1], lr=1.5e-8, patience=0, factor=0.5) == [1.5e-8] * 3  # a cut of 0.75e-8 < eps
    assert plateau_lrs([1, 1], lr=1.5e-8, patience=0, factor=0.5, eps=0.0) == [1.5e-8, 0.75e-8]


def test_plateau_per_group_min_lr_and_tensor_metrics():
    opt = sgd(1.0, groups=2)
    s = ReduceLROnPlateau(opt, patience=0, min_lr=[0.05, 0.0])
    for m in [mr.Tensor(np.array(2.0)), np.float32(2.0), np.array([2.0]), 2]:
        s.step(m)
    np.testing.assert_allclose(s.get_last_lr(), [0.05, 1e-4], rtol=1e-12)
    assert s.last_epoch == 4 and s.best == 2.0


def test_plateau_bad_metrics_leave_state_unchanged():
    s = ReduceLROnPlateau(sgd(1.0), patience=0)
    s.step(1.0)
    before = s.state_dict()
    for bad, exc in [(float("nan"), ValueError), (np.array(np.nan), ValueError), ("0.5", TypeError),
                     (None, TypeError), (True, TypeError), (np.ones(2), ValueError)]:
        with pytest.raises(exc, match="ReduceLROnPlateau.step.*metrics"):
            s.step(bad)
    assert s.state_dict() == before


# ---- resume ---------------------------------------------------------------------------------------
METRICS = [5, 4, 4.5, 4.2, 4.1, 4.3, 3, 3.5, 3.4, 3.6, 3.7, 2, 2.1, 2.2, 2.3, 2.4]
SCHEDULERS = {
    "exponential": (lambda o: ExponentialLR(o, gamma=0.8), lambda s, i: s.step()),
    "plateau": (lambda o: ReduceLROnPlateau(o, patience=1, cooldown=1, factor=0.5, min_lr=[1e-3, 1e-4]),
                lambda s, i: s.step(METRICS[i])),
    "plateau_max_abs": (lambda o: ReduceLROnPlateau(o, mode="max", patience=0, threshold=0.5,
                                                    threshold_mode="abs"),
                        lambda s, i: s.step(-METRICS[i])),
}


@pytest.mark.parametrize("split", [0, 3, 4, 7])  # 0: before any step (best is still +-inf)
@pytest.mark.parametrize("name", SCHEDULERS)
@pytest.mark.parametrize("load_optimizer", [False, True], ids=["sched_only", "with_opt"])
def test_state_dict_resume(name, split, load_optimizer):
    make, step = SCHEDULERS[name]
    ref = make(sgd(0.1, groups=2))
    ref_lrs = [step(ref, i) or ref.get_last_lr() for i in range(len(METRICS))]
    assert len({tuple(x) for x in ref_lrs}) > 2, "the run must change the lr several times to test anything"

    opt = sgd(0.1, groups=2)
    s = make(opt)
    got = [step(s, i) or s.get_last_lr() for i in range(split)]
    sched_sd = json.loads(json.dumps(s.state_dict()))  # what a checkpoint does
    opt_sd = {"state": {}, "param_groups": json.loads(json.dumps(opt.state_dict()["param_groups"]))}

    opt2 = sgd(0.1, groups=2)
    if load_optimizer:
        opt2.load_state_dict(opt_sd)
    s2 = make(opt2)
    s2.load_state_dict(sched_sd)
    assert s2.last_epoch == s.last_epoch and s2.get_last_lr() == s.get_last_lr()
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    got += [step(s2, i) or s2.get_last_lr() for i in range(split, len(METRICS))]
    assert got == ref_lrs
    assert [g["lr"] for g in opt2.param_groups] == ref_lrs[-1]


def test_plateau_load_state_dict_from_another_scheduler_raises():
    with pytest.raises(ValueError, match="ReduceLROnPlateau.load_state_dict.*unexpected"):
        ReduceLROnPlateau(sgd(0.1)).load_state_dict(StepLR(sgd(0.1), step_size=2).state_dict())
    with pytest.raises(ValueError, match="ExponentialLR.load_state_dict.*unexpected"):
        ExponentialLR(sgd(0.1), gamma=0.5).load_state_dict(ReduceLROnPlateau(sgd(0.1)).state_dict())


# ---- bad arguments ---------------------------------------------------------------------------------
P = param()
BAD_OPTIM = [
    (lambda: AdamW([P], lr=-1e-3), ValueError, "AdamW.*lr"),
    (lambda: AdamW([P], lr=float("nan")), ValueError, "AdamW.*lr"),
    (lambda: AdamW([P], lr="1e-3"), TypeError, "AdamW.*lr"),
    (lambda: AdamW([P], betas=(0.9, 1.0)), ValueError, r"AdamW.*betas\[1\]"),
    (lambda: AdamW([P], betas=0.9), TypeError, "AdamW.*betas"),
    (lambda: AdamW([P], eps=-1.0), ValueError, "AdamW.*eps"),
    (lambda: AdamW([P], weight_decay=-0.01), ValueError, "AdamW.*weight_decay"),
    (lambda: AdamW([{"params": [P], "weight_decay": -1.0}]), ValueError, "AdamW.*weight_decay"),
    (lambda: AdamW([]), ValueError, "AdamW.*params"),
]


@pytest.mark.parametrize("fn,exc,match", BAD_OPTIM, ids=[str(i) for i in range(len(BAD_OPTIM))])
def test_adamw_bad_arguments(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


BAD_SCHED = [
    (lambda o: ExponentialLR(o, gamma=0.0), ValueError, "ExponentialLR.*gamma"),
    (lambda o: ExponentialLR(o, gamma=-0.5), ValueError, "ExponentialLR.*gamma"),
    (lambda o: ExponentialLR(o, gamma=float("nan")), ValueError, "ExponentialLR.*gamma"),
    (lambda o: ExponentialLR(o, gamma="0.5"), TypeError, "ExponentialLR.*gamma"),
    (lambda o: ExponentialLR(o, gamma=0.5, last_epoch=4), ValueError, "ExponentialLR.*initial_lr"),
    (lambda o: ExponentialLR("opt", gamma=0.5), TypeError, "ExponentialLR.*optimizer"),
    (lambda o: ReduceLROnPlateau("opt"), TypeError, "ReduceLROnPlateau.*optimizer"),
    (lambda o: ReduceLROnPlateau(o, mode="avg"), ValueError, "ReduceLROnPlateau.*mode"),
    (lambda o: ReduceLROnPlateau(o, threshold_mode="relative"), ValueError, "ReduceLROnPlateau.*threshold_mode"),
    (lambda o: ReduceLROnPlateau(o, factor=1.0), ValueError, "ReduceLROnPlateau.*factor"),
    (lambda o: ReduceLROnPlateau(o, factor=2), ValueError, "ReduceLROnPlateau.*factor"),
    (lambda o: ReduceLROnPlateau(o, factor=-0.1), ValueError, "ReduceLROnPlateau.*factor"),
    (lambda o: ReduceLROnPlateau(o, factor="0.1"), TypeError, "ReduceLROnPlateau.*factor"),
    (lambda o: ReduceLROnPlateau(o, patience=-1), ValueError, "ReduceLROnPlateau.*patience"),
    (lambda o: ReduceLROnPlateau(o, patience=2.5), ValueError, "ReduceLROnPlateau.*patience"),
    (lambda o: ReduceLROnPlateau(o, cooldown=-1), ValueError, "ReduceLROnPlateau.*cooldown"),
    (lambda o: ReduceLROnPlateau(o, threshold=-1e-4), ValueError, "ReduceLROnPlateau.*threshold"),
    (lambda o: ReduceLROnPlateau(o, min_lr=-1e-5), ValueError, "ReduceLROnPlateau.*min_lr"),
    (lambda o: ReduceLROnPlateau(o, min_lr=[0.0, 0.0]), ValueError, "ReduceLROnPlateau.*min_lr"),
    (lambda o: ReduceLROnPlateau(o, eps=-1e-8), ValueError, "ReduceLROnPlateau.*eps"),
]


@pytest.mark.parametrize("fn,exc,match", BAD_SCHED, ids=[str(i) for i in range(len(BAD_SCHED))])
def test_scheduler_bad_arguments(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn(sgd(0.1))
