"""Memory: 1,000 training steps keep RSS flat, and each step's autograd graph is freed by reference counting."""
import gc
import os
import weakref

import numpy as np
import pytest

import minires as mr
import minires.functional as F
from minires import nn
from minires.optim import SGD

STEPS, WARMUP, SLACK = 1000, 200, 0.05


def rss_bytes() -> int:
    """Resident set size of this process from /proc/self/statm (pages)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def tiny_net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 10))


def one_step(model, opt, x, y, probe=None):
    """Forward, backward, step; with `probe`, weakrefs to an intermediate Tensor and its Function node."""
    h = model[0](x)                     # an intermediate activation, kept only by the graph
    for layer in list(model)[1:]:
        h = layer(h) if probe is None or layer is not model[3] else _probe(layer(h), probe)
    loss = F.cross_entropy(h, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.item())


def _probe(t, probe):
    probe.append(weakref.ref(t))
    probe.append(weakref.ref(t.grad_fn))
    return t


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_rss_stays_flat_over_1000_steps():
    mr.manual_seed(0)
    model = tiny_net()
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    batches = [(mr.tensor(rng.standard_normal((4, 3, 8, 8)).astype(np.float32)),
                mr.tensor(rng.integers(0, 10, 4))) for _ in range(8)]
    samples, losses = [], []
    for step in range(STEPS):
        x, y = batches[step % len(batches)]
        losses.append(one_step(model, opt, x, y))
        if step >= WARMUP and step % 50 == 0:
            samples.append(rss_bytes())
    assert np.isfinite(losses).all() and np.mean(losses[-50:]) < np.mean(losses[:50])  # it did train
    base = samples[0]
    growth = max(samples) / base - 1
    assert growth <= SLACK, f"RSS grew {growth:.1%} after warm-up: {[s // 1024 for s in samples]} KiB"


def test_graph_is_freed_after_backward_by_refcount():
    mr.manual_seed(1)
    model = tiny_net()
    opt = SGD(model.parameters(), lr=0.01)
    x, y = mr.randn(2, 3, 8, 8), mr.tensor([1, 2])
    gc.collect()
    gc.disable()  # prove reference counting alone frees the graph: no cycles between tensors and nodes
    try:
        probe = []
        one_step(model, opt, x, y, probe)
        assert len(probe) == 2 and all(r() is None for r in probe), "activation or its node outlived the step"
        # Without backward the graph still dies with the last reference to the loss.
        probe.clear()
        h = _probe(model[0](x), probe)
        loss = F.cross_entropy(model[8](model[7](model[6](model[5](model[4](model[3](model[2](model[1](h)))))))), y)
        del h
        assert all(r() is not None for r in probe)  # kept alive by the loss's graph
        del loss
        assert all(r() is None for r in probe)
    finally:
        gc.enable()
    for p in model.parameters():  # parameters keep only their .grad, no graph
        assert p.grad is None or p.grad.grad_fn is None
