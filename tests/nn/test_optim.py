"""SGD and Adam against scalar-loop references of PyTorch's update equations; groups, state_dict, errors."""
import json
import math

import numpy as np
import pytest

import minires as mr
from minires.optim import SGD, Adam

# A quadratic loss per element: grad_i(p) = A_i * p_i + B_i, so gradients change as p moves.
RNG = np.random.default_rng(0)
P0 = RNG.standard_normal(5)
A = RNG.uniform(0.5, 2.0, 5)
B = RNG.standard_normal(5)


def param(values=P0, dtype=np.float64):
    return mr.Tensor(np.array(values, dtype=dtype), requires_grad=True)


def set_grad(p):
    p.grad = mr.Tensor((A * p.array + B).astype(p.dtype))


def run(opt, params, steps):
    for _ in range(steps):
        for p in params:
            set_grad(p)
        opt.step()


def sgd_reference(p0, steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """PyTorch's SGD, one Python float at a time."""
    p, buf = [float(v) for v in p0], [None] * len(p0)
    for _ in range(steps):
        for i in range(len(p)):
            d = A[i] * p[i] + B[i] + weight_decay * p[i]
            if momentum != 0:
                buf[i] = d if buf[i] is None else momentum * buf[i] + (1 - dampening) * d
                d = d + momentum * buf[i] if nesterov else buf[i]
            p[i] -= lr * d
    return np.array(p)


def adam_reference(p0, steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                   decoupled=False):
    """Textbook Adam with bias-corrected m_hat, v_hat (the same maths as PyTorch's rearranged form).

    decoupled=True is AdamW: p shrinks by lr*wd first and the gradient carries no decay. AMSGrad keeps
    the running max of the raw v_t and bias-corrects that (PyTorch's code, and its docs since
    pytorch/pytorch#142351)."""
    b1, b2 = betas
    out = []
    for i, p in enumerate(float(v) for v in p0):
        m = v = vmax = 0.0
        for t in range(1, steps + 1):
            g = A[i] * p + B[i] + (0.0 if decoupled else weight_decay * p)  # at p before the decay
            if decoupled:
                p = p - lr * weight_decay * p
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            vmax = max(vmax, v)
            m_hat = m / (1 - b1 ** t)
            v_hat = (vmax if amsgrad else v) / (1 - b2 ** t)
            p -= lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(p)
    return np.array(out)


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, weight_decay=0.1),
    dict(lr=0.05, momentum=0.8, dampening=0.1, weight_decay=5e-2),
    dict(lr=0.05, momentum=0.9, weight_decay=1e-1, nesterov=True),
]


@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_sgd_matches_reference(cfg):
    p = param()
    run(SGD([p], **cfg), [p], 4)
    np.testing.assert_allclose(p.array, sgd_reference(P0, 4, **cfg), rtol=1e-12, atol=1e-14)


ADAM_CONFIGS = [
    dict(),
    dict(lr=0.1),
    dict(lr=0.05, betas=(0.5, 0.9), eps=1e-3),
    dict(lr=0.05, weight_decay=0.2),
    dict(lr=0.05, betas=(0.0, 0.0)),
    dict(lr=0.05, amsgrad=True),
]


@pytest.mark.parametrize("cfg", ADAM_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_adam_matches_reference(cfg):
    p = param()
    opt = Adam([p], **cfg)
    run(opt, [p], 5)
    np.testing.assert_allclose(p.array, adam_reference(P0, 5, **cfg), rtol=1e-10, atol=1e-14)
    assert opt.state[p]["step"] == 5


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-2, nesterov=True),
                                  lambda ps: Adam(ps, lr=0.05, weight_decay=1e-2)], ids=["sgd", "adam"])
def test_float32_stays_float32(make):
    p32, p64 = param(dtype=np.float32), param()
    opt32, opt64 = make([p32]), make([p64])
    run(opt32, [p32], 4)
    run(opt64, [p64], 4)
    assert p32.dtype == np.float32
    for v in opt32.state[p32].values():
        assert not hasattr(v, "dtype") or v.dtype == np.float32
    np.testing.assert_allclose(p32.array, p64.array, rtol=1e-5, atol=1e-6)


def test_float64_grad_on_float32_param_is_cast():
    p = param(dtype=np.float32)
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad = mr.Tensor(np.ones(5))  # float64 gradient
    opt.step()
    assert p.dtype == np.float32 and opt.state[p]["momentum_buffer"].dtype == np.float32


def test_params_without_grad_are_skipped():
    p, q = param(), param()
    opt = Adam([p, q], lr=0.1)
    set_grad(p)
    opt.step()
    np.testing.assert_array_equal(q.array, P0)
    assert q not in opt.state or not opt.state[q]
    assert not np.array_equal(p.array, P0)


@pytest.mark.parametrize("weight_decay", [0.0, 0.5])
def test_gradient_is_not_modified(weight_decay):
    p = param()
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=weight_decay)
    set_grad(p)
    g = p.grad.array.copy()
    opt.step()
    opt.step()  # second step updates the momentum buffer in place; it must not alias the grad
    np.testing.assert_array_equal(p.grad.array, g)


def test_param_groups_use_their_own_options():
    w, b = param(), param(P0[::-1].copy())
    opt = SGD([{"params": [w], "weight_decay": 0.1}, {"params": [b], "lr": 0.01, "nesterov": True}],
              lr=0.05, momentum=0.9)
    assert opt.param_groups[0]["lr"] == 0.05 and opt.param_groups[1]["weight_decay"] == 0.0
    run(opt, [w, b], 3)
    np.testing.assert_allclose(w.array, sgd_reference(P0, 3, lr=0.05, momentum=0.9, weight_decay=0.1), rtol=1e-12)
    np.testing.assert_allclose(b.array, sgd_reference(P0[::-1], 3, lr=0.01, momentum=0.9, nesterov=True),
                               rtol=1e-12)


def test_add_param_group_and_defaults():
    w, b = param(), param()
    opt = Adam([w], lr=0.1, betas=(0.8, 0.9))
    opt.add_param_group({"params": b, "eps": 1e-3})
    assert len(opt.param_groups) == 2
    assert opt.param_groups[1]["betas"] == (0.8, 0.9) and opt.param_groups[1]["eps"] == 1e-3
    assert opt.defaults["lr"] == 0.1
    with pytest.raises(ValueError, match="twice"):
        opt.add_param_group({"params": [w]})


def test_zero_grad():
    p, q = param(), param()
    opt = SGD([p, q], lr=0.1)
    set_grad(p)
    set_grad(q)
    opt.zero_grad()
    assert p.grad is None and q.grad is None
    set_grad(p)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.array, np.zeros(5))


def test_closure_returns_loss():
    p = param()
    opt = SGD([p], lr=0.1)

    def closure():
        set_grad(p)
        return 3.5

    assert opt.step(closure) == 3.5
    np.testing.assert_allclose(p.array, sgd_reference(P0, 1, lr=0.1), rtol=1e-12)


# ---- state_dict ---------------------------------------------------------------------------------
def make_sgd(ps):
    return SGD([{"params": ps[:1]}, {"params": ps[1:], "weight_decay": 0.0}], lr=0.05, momentum=0.9,
               weight_decay=0.01, nesterov=True)


def make_adam(ps):
    return Adam([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.01}], lr=0.05, betas=(0.8, 0.95), weight_decay=0.01)


def through_json(sd):
    """What a checkpoint does: options through JSON (int keys -> str, tuples -> lists), arrays kept."""
    return {"state": {str(k): dict(v) for k, v in sd["state"].items()},
            "param_groups": json.loads(json.dumps(sd["param_groups"]))}


@pytest.mark.parametrize("make", [make_sgd, make_adam], ids=["sgd", "adam"])
@pytest.mark.parametrize("via_json", [False, True], ids=["dict", "json"])
def test_state_dict_resume_equals_uninterrupted(make, via_json):
    ref = [param(), param(P0 * 2)]
    opt = make(ref)
    run(opt, ref, 6)

    ps = [param(), param(P0 * 2)]
    opt = make(ps)
    run(opt, ps, 3)
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1] and [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    for s in sd["state"].values():
        assert all(type(v) in (int, float) or type(v) is np.ndarray for v in s.values())
    saved = [p.array.copy() for p in ps]
    run(opt, ps, 1)  # the saved arrays must be copies, not views of live state
    sd = through_json(sd) if via_json else sd

    resumed = [param(saved[0]), param(saved[1])]
    # Built with other options on purpose: load_state_dict must restore them.
    if make is make_sgd:
        opt2 = SGD([{"params": resumed[:1]}, {"params": resumed[1:]}], lr=1.0)
    else:
        opt2 = Adam([{"params": resumed[:1]}, {"params": resumed[1:]}], lr=1.0)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.05
    if make is make_adam:
        assert opt2.param_groups[0]["betas"] == (0.8, 0.95) and opt2.param_groups[1]["lr"] == 0.01
    run(opt2, resumed, 3)
    for r, p in zip(ref, resumed):
        np.testing.assert_array_equal(r.array, p.array)


def test_load_state_dict_casts_to_param_dtype():
    p = param()
    opt = Adam([p], lr=0.1)
    run(opt, [p], 2)
    q = param(dtype=np.float32)
    opt32 = Adam([q], lr=0.1)
    opt32.load_state_dict(opt.state_dict())
    assert opt32.state[q]["exp_avg"].dtype == np.float32 and opt32.state[q]["step"] == 2
    assert type(opt32.state[q]["step"]) is int
    run(opt32, [q], 1)
    assert q.dtype == np.float32


def test_load_state_dict_mismatches():
    p, q = param(), param()
    sd = SGD([p, q], lr=0.1, momentum=0.9).state_dict()
    with pytest.raises(ValueError, match="param groups"):
        SGD([{"params": [p]}, {"params": [q]}], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="parameters"):
        SGD([p], lr=0.1).load_state_dict(sd)
    opt = SGD([p, q], lr=0.1, momentum=0.9)
    run(opt, [p, q], 1)
    bad = opt.state_dict()
    bad["state"][0]["momentum_buffer"] = np.zeros(3)
    with pytest.raises(ValueError, match="shape"):
        SGD([p, q], lr=0.1, momentum=0.9).load_state_dict(bad)


# ---- bad arguments ---------------------------------------------------------------------------------
P = param()
BAD = [
    (lambda: SGD([P], lr=-0.1), ValueError, "SGD.*lr"),
    (lambda: SGD([P]), ValueError, "SGD.*lr"),
    (lambda: SGD([P], lr=0.1, momentum=-0.5), ValueError, "SGD.*momentum"),
    (lambda: SGD([P], lr=0.1, weight_decay=-1e-4), ValueError, "SGD.*weight_decay"),
    (lambda: SGD([P], lr=0.1, nesterov=True), ValueError, "SGD.*nesterov"),
    (lambda: SGD([P], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "SGD.*nesterov"),
    (lambda: SGD([{"params": [P], "lr": -1.0}], lr=0.1), ValueError, "SGD.*lr"),
    (lambda: SGD([P], lr="0.1"), TypeError, "SGD.*lr"),
    (lambda: SGD([P], lr=float("nan")), ValueError, "SGD.*lr"),
    (lambda: Adam([P], lr=-1e-3), ValueError, "Adam.*lr"),
    (lambda: Adam([P], betas=(1.0, 0.999)), ValueError, r"Adam.*betas\[0\]"),
    (lambda: Adam([P], betas=(0.9, -0.1)), ValueError, r"Adam.*betas\[1\]"),
    (lambda: Adam([P], betas=0.9), TypeError, "Adam.*betas"),
    (lambda: Adam([P], eps=-1e-8), ValueError, "Adam.*eps"),
    (lambda: Adam([P], weight_decay=-0.1), ValueError, "Adam.*weight_decay"),
    (lambda: Adam([], lr=0.1), ValueError, "Adam.*params"),
    (lambda: SGD(iter([]), lr=0.1), ValueError, "SGD.*params"),
    (lambda: SGD([{"params": []}], lr=0.1), ValueError, "SGD.*params"),
    (lambda: SGD([P, P], lr=0.1), ValueError, "SGD.*twice"),
    (lambda: Adam([{"params": [P]}, {"params": [P]}]), ValueError, "Adam.*twice"),
    (lambda: SGD(P, lr=0.1), TypeError, "SGD.*params"),
    (lambda: SGD([np.zeros(3)], lr=0.1), TypeError, "SGD.*params"),
    (lambda: SGD([mr.Tensor(np.zeros(3, np.int64))], lr=0.1), TypeError, "SGD.*floating"),
    (lambda: SGD([P * 2], lr=0.1), ValueError, "SGD.*non-leaf"),
]


@pytest.mark.parametrize("fn,exc,match", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_arguments(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


def test_grad_shape_mismatch_raises():
    p = param()
    opt = SGD([p], lr=0.1)
    p.grad = mr.Tensor(np.ones(4))
    with pytest.raises(ValueError, match=r"SGD.step.*\(4,\).*\(5,\)"):
        opt.step()


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
                                  lambda ps: Adam(ps, lr=0.05, amsgrad=True)], ids=["sgd", "adam"])
def test_on_device_matches_cpu_and_checkpoints_as_numpy(make, device):
    cpu = param()
    opt_cpu = make([cpu])
    run(opt_cpu, [cpu], 3)
    dev = mr.tensor(P0, device=device, requires_grad=True)
    opt = make([dev])
    for _ in range(3):
        dev.grad = mr.tensor(A * dev.numpy() + B, device=device)
        opt.step()
    assert dev.device.startswith(device) and dev.dtype == np.float64
    np.testing.assert_allclose(dev.numpy(), cpu.array, rtol=1e-12)
    sd = opt.state_dict()
    assert all(type(v) is np.ndarray for v in sd["state"][0].values() if not isinstance(v, int))
    back = mr.tensor(dev.numpy(), device=device, requires_grad=True)
    opt2 = make([back])
    opt2.load_state_dict(sd)
    assert all(mr.backend.device_of(v).startswith(device) for v in opt2.state[back].values() if hasattr(v, "shape"))
