"""LR schedulers against their closed forms (and OneCycle's phase formulas), resume and bad arguments."""
import json
import math

import numpy as np
import pytest

import minires as mr
from minires.optim import SGD, Adam
from minires.optim.lr_scheduler import (CosineAnnealingLR, LinearLR, MultiStepLR, OneCycleLR, StepLR)


def sgd(lr=0.1, groups=1):
    ps = [mr.Tensor(np.zeros(2), requires_grad=True) for _ in range(groups)]
    return SGD([{"params": [p], "lr": lr / 10 ** i} for i, p in enumerate(ps)], lr=lr, momentum=0.9)


def lrs(sched, steps):
    """lr after construction and after each of `steps` calls to step(), for group 0."""
    out = [sched.get_last_lr()[0]]
    for _ in range(steps):
        sched.step()
        assert sched.optimizer.param_groups[0]["lr"] == sched.get_last_lr()[0]
        out.append(sched.get_last_lr()[0])
    return np.array(out)


def test_construction_sets_initial_lr_and_step_zero():
    opt = sgd(0.1, groups=2)
    s = CosineAnnealingLR(opt, T_max=10)
    assert s.last_epoch == 0 and s.base_lrs == [0.1, 0.01]
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert s.get_last_lr() == [0.1, 0.01]


def test_step_lr():
    t = np.arange(21)
    np.testing.assert_allclose(lrs(StepLR(sgd(0.1), step_size=3, gamma=0.5), 20), 0.1 * 0.5 ** (t // 3), rtol=1e-15)


def test_multistep_lr():
    t = np.arange(16)
    expected = 0.1 * 0.2 ** ((t >= 2).astype(int) + (t >= 5) + (t >= 11))
    np.testing.assert_allclose(lrs(MultiStepLR(sgd(0.1), milestones=[11, 2, 5], gamma=0.2), 15), expected,
                               rtol=1e-15)


@pytest.mark.parametrize("eta_min", [0.0, 1e-3])
def test_cosine_annealing_two_groups(eta_min):
    opt = sgd(0.1, groups=2)
    s = CosineAnnealingLR(opt, T_max=8, eta_min=eta_min)
    got = [s.get_last_lr()]
    for _ in range(16):  # past T_max the closed form keeps following the cosine, as PyTorch
        s.step()
        got.append(s.get_last_lr())
    t = np.arange(17)[:, None]
    expected = eta_min + (np.array([0.1, 0.01]) - eta_min) * (1 + np.cos(np.pi * t / 8)) / 2
    np.testing.assert_allclose(np.array(got), expected, rtol=1e-12, atol=1e-15)
    assert np.isclose(got[8][0], eta_min) and np.isclose(got[4][0], (0.1 + eta_min) / 2)


def test_linear_warmup():
    t = np.arange(9)
    expected = 0.1 * (0.25 + 0.75 * np.minimum(t, 4) / 4)
    np.testing.assert_allclose(lrs(LinearLR(sgd(0.1), start_factor=0.25, total_iters=4), 8), expected, rtol=1e-14)


def one_cycle_reference(t, T, max_lr, pct=0.3, div=25.0, final_div=1e4, strategy="cos", three_phase=False,
                        low=None, high=None):
    """PyTorch's OneCycleLR phases written out: lr (or, with low/high, momentum) at step t."""
    lo, hi = max_lr / div, max_lr
    end = lo / final_div
    if low is not None:  # momentum runs opposite to the lr: high -> low -> high
        lo, hi, end = high, low, high

    def anneal(a, b, x):
        return b + (a - b) * (1 + math.cos(math.pi * x)) / 2 if strategy == "cos" else a + (b - a) * x

    up = pct * T - 1
    if three_phase:
        down = 2 * pct * T - 2
        if t <= up:
            return anneal(lo, hi, t / up)
        if t <= down:
            return anneal(hi, lo, (t - up) / (down - up))
        return anneal(lo, end, (t - down) / (T - 1 - down))
    if t <= up:
        return anneal(lo, hi, t / up)
    return anneal(hi, end, (t - up) / (T - 1 - up))


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_phases(strategy, three_phase):
    T = 100
    opt = sgd(0.1)
    s = OneCycleLR(opt, max_lr=0.5, total_steps=T, anneal_strategy=strategy, three_phase=three_phase)
    got, mom = [s.get_last_lr()[0]], [opt.param_groups[0]["momentum"]]
    for _ in range(T - 1):
        s.step()
        got.append(s.get_last_lr()[0])
        mom.append(opt.param_groups[0]["momentum"])
    kw = dict(strategy=strategy, three_phase=three_phase)
    np.testing.assert_allclose(got, [one_cycle_reference(t, T, 0.5, **kw) for t in range(T)], rtol=1e-12)
    np.testing.assert_allclose(mom, [one_cycle_reference(t, T, 0.5, low=0.85, high=0.95, **kw) for t in range(T)],
                               rtol=1e-12)
    # Anchors: start at max_lr/div_factor, peak at step pct*T - 1, end at the minimum on step T - 1.
    assert got[0] == pytest.approx(0.5 / 25) and got[29] == pytest.approx(0.5) and mom[29] == pytest.approx(0.85)
    assert got[T - 1] == pytest.approx(0.5 / 25 / 1e4) and mom[0] == mom[T - 1] == pytest.approx(0.95)
    if three_phase:
        assert got[58] == pytest.approx(0.5 / 25)
    s.step()  # step total_steps is allowed (PyTorch's off-by-one), the next one is not
    with pytest.raises(ValueError, match="total_steps=100"):
        s.step()
    assert s.last_epoch == T


def test_one_cycle_epochs_and_adam_beta1():
    opt = Adam([mr.Tensor(np.zeros(2), requires_grad=True)], lr=1e-3, betas=(0.9, 0.99))
    s = OneCycleLR(opt, max_lr=0.01, epochs=4, steps_per_epoch=5, pct_start=0.25)
    assert s.total_steps == 20
    betas = [opt.param_groups[0]["betas"]]
    for _ in range(19):
        s.step()
        betas.append(opt.param_groups[0]["betas"])
    np.testing.assert_allclose([b[0] for b in betas],
                               [one_cycle_reference(t, 20, 0.01, pct=0.25, low=0.85, high=0.95) for t in range(20)],
                               rtol=1e-12)
    assert all(b[1] == 0.99 for b in betas)


def test_one_cycle_no_momentum_cycling():
    opt = sgd(0.1)
    OneCycleLR(opt, max_lr=[1.0], total_steps=10, cycle_momentum=False).step()
    assert opt.param_groups[0]["momentum"] == 0.9


SCHEDULERS = {
    "step": lambda o: StepLR(o, step_size=4, gamma=0.3),
    "multistep": lambda o: MultiStepLR(o, milestones=[3, 7]),
    "cosine": lambda o: CosineAnnealingLR(o, T_max=12, eta_min=1e-4),
    "linear": lambda o: LinearLR(o, start_factor=0.1, total_iters=6),
    "onecycle": lambda o: OneCycleLR(o, max_lr=[1.0, 0.1], total_steps=12, three_phase=True),
}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_state_dict_resume(name):
    opt = sgd(0.1, groups=2)
    ref = SCHEDULERS[name](opt)
    ref_lrs = [ref.get_last_lr()] + [ref.step() or ref.get_last_lr() for _ in range(12)]

    opt = sgd(0.1, groups=2)
    s = SCHEDULERS[name](opt)
    got = [s.get_last_lr()] + [s.step() or s.get_last_lr() for _ in range(5)]
    sched_sd = json.loads(json.dumps(s.state_dict()))  # must be plain JSON
    opt_sd = {"state": {}, "param_groups": json.loads(json.dumps(opt.state_dict()["param_groups"]))}

    opt2 = sgd(0.1, groups=2)
    opt2.load_state_dict(opt_sd)
    s2 = SCHEDULERS[name](opt2)
    s2.load_state_dict(sched_sd)
    assert s2.last_epoch == 5
    got += [s2.step() or s2.get_last_lr() for _ in range(7)]
    assert got == ref_lrs
    assert [g["lr"] for g in opt2.param_groups] == ref_lrs[-1]


@pytest.mark.parametrize("name", SCHEDULERS)
def test_load_state_dict_reapplies_lr(name):
    """Fresh optimizer and scheduler, then only the scheduler's state: lrs (and momenta) are those saved."""
    opt = sgd(0.1, groups=2)
    s = SCHEDULERS[name](opt)
    for _ in range(7):
        s.step()
    saved_groups = [dict(g, params=None) for g in opt.param_groups]
    opt2 = sgd(0.1, groups=2)
    s2 = SCHEDULERS[name](opt2)
    s2.load_state_dict(json.loads(json.dumps(s.state_dict())))
    assert s2.get_last_lr() == s.get_last_lr() == [g["lr"] for g in opt2.param_groups]
    assert [g["momentum"] for g in opt2.param_groups] == [g["momentum"] for g in saved_groups]


def test_resume_with_last_epoch_argument():
    opt = sgd(0.1)
    s = CosineAnnealingLR(opt, T_max=10)
    for _ in range(3):
        s.step()
    s2 = CosineAnnealingLR(opt, T_max=10, last_epoch=3)  # groups already have initial_lr
    assert s2.last_epoch == 4 and s2.get_last_lr()[0] == pytest.approx(0.05 * (1 + math.cos(math.pi * 0.4)))


BAD = [
    (lambda o: StepLR(o, step_size=0), ValueError, "StepLR.*step_size"),
    (lambda o: StepLR(o, step_size=2, gamma=-1), ValueError, "StepLR.*gamma"),
    (lambda o: MultiStepLR(o, milestones=[1, -2]), ValueError, "MultiStepLR.*milestones"),
    (lambda o: MultiStepLR(o, milestones=3), TypeError, "MultiStepLR.*milestones"),
    (lambda o: CosineAnnealingLR(o, T_max=0), ValueError, "CosineAnnealingLR.*T_max"),
    (lambda o: CosineAnnealingLR(o, T_max=5, last_epoch=3), ValueError, "CosineAnnealingLR.*initial_lr"),
    (lambda o: CosineAnnealingLR(o, T_max=5, last_epoch=-2), ValueError, "CosineAnnealingLR.*last_epoch"),
    (lambda o: CosineAnnealingLR("opt", T_max=5), TypeError, "CosineAnnealingLR.*optimizer"),
    (lambda o: LinearLR(o, start_factor=0.0), ValueError, "LinearLR.*start_factor"),
    (lambda o: OneCycleLR(o, max_lr=1.0), ValueError, "OneCycleLR.*total_steps"),
    (lambda o: OneCycleLR(o, max_lr=1.0, epochs=3), ValueError, "OneCycleLR.*steps_per_epoch"),
    (lambda o: OneCycleLR(o, max_lr=1.0, total_steps=0), ValueError, "OneCycleLR.*total_steps"),
    (lambda o: OneCycleLR(o, max_lr=1.0, epochs=2, steps_per_epoch=-1), ValueError, "OneCycleLR.*steps_per_epoch"),
    (lambda o: OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=1.5), ValueError, "OneCycleLR.*pct_start"),
    (lambda o: OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="exp"), ValueError, "anneal_strategy"),
    (lambda o: OneCycleLR(o, max_lr=[1.0, 2.0], total_steps=10), ValueError, "OneCycleLR.*max_lr"),
    (lambda o: OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=0.1), ValueError, "OneCycleLR.*zero length"),
    (lambda o: OneCycleLR(o, max_lr=1.0, total_steps=10, div_factor=0), ValueError, "OneCycleLR.*div_factor"),
]


@pytest.mark.parametrize("fn,exc,match", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_arguments(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn(sgd(0.1))


def test_load_state_dict_from_another_scheduler_raises():
    opt = sgd(0.1)
    with pytest.raises(ValueError, match="StepLR.load_state_dict.*unexpected"):
        StepLR(opt, step_size=2).load_state_dict(CosineAnnealingLR(sgd(0.1), T_max=3).state_dict())


def test_load_state_dict_takes_pytorchs_private_keys():
    """A scheduler state_dict saved by PyTorch also holds _step_count, _is_initial, ...: they are dropped,
    and the schedule resumes at the saved epoch (cosine closed form)."""
    saved = CosineAnnealingLR(sgd(0.1), T_max=10).state_dict()
    saved.update(last_epoch=3, _step_count=4, _is_initial=False, _get_lr_called_within_step=False, verbose=False)
    opt = sgd(0.1)
    sched = CosineAnnealingLR(opt, T_max=10)
    sched.load_state_dict(saved)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05 * (1 + math.cos(math.pi * 3 / 10)))
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05 * (1 + math.cos(math.pi * 4 / 10)))
