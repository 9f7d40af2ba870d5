"""Numeric safety of the Trainer: a NaN/inf loss or a non-finite gradient behind a finite loss stops the run."""
import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("PIL")

from minires.checkpoint import load_checkpoint
from minires.train import Trainer, TrainingDiverged

from test_trainer import config
from tiny_cifar import make_image_folder

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the poisoned steps overflow on purpose


@pytest.fixture(scope="module")
def data3(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("data3"), ["ant", "bee", "cat"], 8, 2)


def _poison_at(trainer, call, poison):
    """Replace the loss so that the `call`-th evaluation (1-based) goes through `poison(loss, logits)`."""
    real_loss, calls = trainer.loss_fn, []

    def loss_fn(logits, y):
        calls.append(1)
        loss = real_loss(logits, y)
        return poison(loss, logits) if len(calls) == call else loss

    trainer.loss_fn = loss_fn


@pytest.mark.parametrize("poison, words", [
    # sqrt(0) = 0 is finite, its derivative 1 / (2 * 0) is not: a finite loss with an inf gradient
    (lambda loss, logits: loss + (logits * 0).sum().sqrt(), r"gradient is non-finite \((nan|inf) in [\w.]+\)"),
    (lambda loss, logits: loss * float("inf"), r"loss is inf"),
    (lambda loss, logits: loss * float("nan"), r"loss is nan"),
])
def test_non_finite_loss_or_gradient_stops_and_keeps_last_good_checkpoint(tmp_path, data3, poison, words):
    trainer = Trainer(config(tmp_path, data3), log=lambda *a: None)
    per_epoch = len(trainer.train_loader)
    _poison_at(trainer, per_epoch + 2, poison)  # epoch 2, step 2
    before = {}

    step = trainer.optimizer.step

    def recording_step():  # the weights after the last good step, to check no bad update happens
        step()
        before.update({k: v.numpy().copy() for k, v in trainer.model.state_dict().items()})

    trainer.optimizer.step = recording_step
    with pytest.raises(TrainingDiverged, match=words + rf".* at epoch 2, step 2/{per_epoch}.*"
                                                      r"last good checkpoint is kept: .*last.safetensors \(epoch 1\)"):
        trainer.fit()
    ck = load_checkpoint(tmp_path / "last.safetensors")
    assert ck["epoch"] == 1
    assert all(np.isfinite(v).all() for v in ck["model"].values() if v.dtype.kind == "f")
    after = {k: v.numpy() for k, v in trainer.model.state_dict().items()}
    for k in before:  # no optimizer step was taken with the bad gradient
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked")):  # forward did update these
            assert np.array_equal(before[k], after[k]), k
    assert all(np.isfinite(p.numpy()).all() for p in trainer.model.parameters())


def test_gradient_check_is_cheap(data3, tmp_path):
    """The per-step finiteness check costs well under 1% of a ResNet-20 training step."""
    import time
    trainer = Trainer(config(tmp_path, data3, model_kwargs={}), log=lambda *a: None)  # full-width ResNet-20
    x, y = next(iter(trainer.train_loader))
    trainer.model.train()
    t0 = time.perf_counter()
    loss = trainer.loss_fn(trainer.model(x), y)
    trainer.optimizer.zero_grad()
    loss.backward()
    step_s = time.perf_counter() - t0
    timings = []
    for _ in range(10):  # the fastest of 10: robust to other jobs on the machine
        t0 = time.perf_counter()
        assert np.isfinite(float(trainer._grad_sumsq()))
        timings.append(time.perf_counter() - t0)
    check_s = min(timings)
    assert check_s < 0.02 * step_s, (check_s, step_s)
    next(iter(trainer.model.parameters())).grad.array.reshape(-1)[3] = np.inf
    assert not np.isfinite(float(trainer._grad_sumsq())) and "inf in conv1.weight" == trainer._first_bad_grad()
