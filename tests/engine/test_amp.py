"""minires.amp: autocast's float16 GEMMs with float32 master weights, and GradScaler's loss-scaling rules."""
import threading

import numpy as np
import pytest

import minires as mr
import minires.functional as F
from minires import amp, nn, optim


def t(a, grad=False, dtype=np.float32):
    return mr.tensor(np.asarray(a, dtype=dtype), requires_grad=grad)


def small_net():
    mr.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))


def test_autocast_runs_conv_and_linear_in_float16_and_the_rest_in_float32():
    rng = np.random.default_rng(0)
    x, w = t(rng.standard_normal((2, 3, 5, 5))), t(rng.standard_normal((4, 3, 3, 3)), grad=True)
    with amp.autocast():
        y = F.conv2d(x, w, padding=1)
        z = F.batch_norm(y, None, None, training=True)
        logits = F.linear(z.flatten(1), t(rng.standard_normal((5, 100))))
        loss = F.cross_entropy(logits, mr.tensor(np.array([0, 4])))
    assert (y.dtype, z.dtype, logits.dtype, loss.dtype) == (np.float16, np.float32, np.float16, np.float32)
    loss.backward()
    assert w.grad.dtype == np.float32  # the master weight gets a float32 gradient through the cast
    assert F.conv2d(x, w).dtype == np.float32  # outside: unchanged


def test_autocast_nests_is_thread_local_and_can_be_disabled_or_used_as_a_decorator():
    x, w = t(np.ones((1, 2, 3, 3))), t(np.ones((1, 2, 1, 1)))
    seen = []
    with amp.autocast():
        with amp.autocast(enabled=False):
            assert F.conv2d(x, w).dtype == np.float32
        assert amp.autocast_dtype() == np.float16
        other = threading.Thread(target=lambda: seen.append(amp.autocast_dtype()))
        other.start()
        other.join()
    assert seen == [None] and amp.autocast_dtype() is None

    @amp.autocast()
    def f():
        return F.conv2d(x, w).dtype
    assert f() == np.float16 and amp.autocast_dtype() is None
    with pytest.raises(ValueError, match="autocast: only float16"):
        amp.autocast(dtype=np.float64)


def test_autocast_gradients_match_float64_within_float16_precision():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 6, 6))
    y = mr.tensor(rng.integers(0, 5, 4))
    grads = {}
    for mode in ("amp", "f64"):
        net = small_net()
        if mode == "f64":
            net.double()
        xt = t(x, dtype=np.float64 if mode == "f64" else np.float32)
        with amp.autocast(enabled=mode == "amp"):
            loss = F.cross_entropy(net(xt), y)
        loss.backward()
        grads[mode] = [p.grad.numpy().astype(np.float64) for p in net.parameters()]
    for g16, g64 in zip(grads["amp"], grads["f64"]):
        assert np.linalg.norm(g16 - g64) <= 2e-2 * np.linalg.norm(g64) + 1e-6


def test_the_scaler_rescues_gradients_that_underflow_in_float16():
    w = t(np.full((1, 4), 1e-3), grad=True)
    x = t(np.full((1, 4), 1e-3))
    for use_scaler in (False, True):
        w.grad = None
        scaler = amp.GradScaler(enabled=use_scaler)
        with amp.autocast():
            loss = F.linear(x, w).float().sum() * 1e-4  # d loss / d w = 1e-7: a float16 subnormal
        scaler.scale(loss).backward()
        opt = optim.SGD([w], lr=0.0)
        scaler.unscale_(opt)
        err = np.abs(w.grad.numpy() / 1e-7 - 1).max()
        # unscaled, 1e-7 is a float16 subnormal (steps of 6e-8): 19% off; scaled by 2**16 it is exact to 0.1%
        assert (err < 2e-3) if use_scaler else (err > 0.1)


def step_with(scaler, grad_value, w):
    opt = optim.SGD([w], lr=0.5)
    opt.zero_grad()
    w.grad = mr.tensor(np.full(w.shape, grad_value * scaler.get_scale(), np.float32))
    scaler.step(opt)
    scaler.update()


def test_scaler_skips_overflowing_steps_backs_off_and_grows():
    w = t(np.ones(3), grad=True)
    scaler = amp.GradScaler(init_scale=8.0, growth_interval=2)
    step_with(scaler, np.inf, w)
    np.testing.assert_array_equal(w.numpy(), 1.0)  # skipped
    assert scaler.get_scale() == 4.0
    step_with(scaler, np.nan, w)
    assert scaler.get_scale() == 2.0
    step_with(scaler, 1.0, w)  # unscaled gradient 1.0, lr 0.5
    np.testing.assert_allclose(w.numpy(), 0.5)
    assert scaler.get_scale() == 2.0
    step_with(scaler, 1.0, w)
    assert scaler.get_scale() == 4.0  # two good steps in a row: growth


def test_unscale_twice_is_an_error_and_disabled_scaler_passes_through():
    w = t(np.ones(2), grad=True)
    opt = optim.SGD([w], lr=1.0)
    w.grad = t([2.0, 2.0])
    scaler = amp.GradScaler(init_scale=2.0)
    scaler.unscale_(opt)
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0])
    with pytest.raises(RuntimeError, match="already called"):
        scaler.unscale_(opt)
    off = amp.GradScaler(enabled=False)
    loss = t(3.0)
    assert off.scale(loss) is loss and off.get_scale() == 1.0
    off.step(opt)
    np.testing.assert_array_equal(w.numpy(), [0.0, 0.0])


def test_scaler_state_round_trips_and_bad_arguments_are_refused():
    a = amp.GradScaler(init_scale=32.0, growth_interval=3)
    w = t(np.ones(1), grad=True)
    step_with(a, 1.0, w)
    b = amp.GradScaler()
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict() == {"scale": 32.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                                 "growth_interval": 3, "_growth_tracker": 1}
    with pytest.raises(ValueError, match="missing keys"):
        b.load_state_dict({"scale": 1.0})
    for kw, exc in (({"init_scale": -1.0}, ValueError), ({"init_scale": float("nan")}, TypeError),
                    ({"growth_factor": 1.0}, ValueError), ({"backoff_factor": 1.5}, ValueError),
                    ({"growth_interval": 0}, ValueError), ({"growth_interval": 2.5}, ValueError)):
        with pytest.raises(exc, match="GradScaler"):
            amp.GradScaler(**kw)


def test_autocast_takes_pytorchs_signature():
    """torch.autocast(device_type, dtype=None, enabled=True): the device type is positional, not `enabled`."""
    with mr.autocast("cuda"):
        assert amp.autocast_dtype() == np.float16
    with amp.autocast("cpu", enabled=False):
        assert amp.autocast_dtype() is None
    with amp.autocast("cuda", dtype=mr.float16):
        assert amp.autocast_dtype() == np.float16
    with pytest.raises(ValueError, match="device_type must be 'cuda' or 'cpu', got True"):
        amp.autocast(True)
