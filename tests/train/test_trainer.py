"""Trainer: bitwise resume, NaN stop, metrics files and plots, fine-tuning, weight-decay groups."""
import json

import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("PIL")

import minires as mr
from minires.checkpoint import load_checkpoint
from minires.train import TrainConfig, Trainer, TrainingDiverged, param_groups
from minires.train.metrics import classification_report, confusion_matrix
from tiny_cifar import make_image_folder


@pytest.fixture(scope="module")
def data4(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("data4"), ["ant", "bee", "cat", "dog"], 8, 4)


def config(out, data, **kw):
    base = dict(model="resnet20", model_kwargs={"widths": [4, 8, 8]}, data=data, out=str(out), epochs=2,
                batch_size=16, eval_batch_size=24, progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_resume_is_bitwise_equal_to_a_straight_run(tmp_path, data4):
    straight = Trainer(config(tmp_path / "a", data4), log=lambda *a: None)
    straight.fit()

    first = Trainer(config(tmp_path / "b", data4), log=lambda *a: None)
    first.fit(max_epochs=1)
    assert load_checkpoint(tmp_path / "b" / "last.safetensors")["epoch"] == 1
    resumed = Trainer(config(tmp_path / "b", data4, resume=True), log=lambda *a: None)
    assert resumed.epoch == 1
    resumed.fit()

    a, b = weights(straight.model), weights(resumed.model)
    assert list(a) == list(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert not np.array_equal(a["conv1.weight"], weights(first.model)["conv1.weight"])  # epoch 2 did train
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert np.array_equal(straight.optimizer.state[p]["momentum_buffer"], resumed.optimizer.state[q]["momentum_buffer"])
    strip = lambda rows: [{k: v for k, v in r.items() if "time" not in k and "per_s" not in k} for r in rows]
    assert strip(straight.history) == strip(resumed.history)

    # metrics files and plots: one row per epoch, rewritten each epoch, resumed history included
    out = tmp_path / "b"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and csv_lines[0].startswith("epoch,lr,train_loss,train_acc,test_loss,test_acc")
    for name in ("curves.png", "confusion_matrix.png", "last.safetensors", "best.safetensors", "final_eval.json"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "final_eval.json").read_text())
    assert report["num_samples"] == 16 and len(report["per_class"]) == 4
    assert report["accuracy"] == pytest.approx(rows[-1]["test_acc"])
    best = max(r["test_acc"] for r in rows)
    assert load_checkpoint(out / "best.safetensors")["extra"]["best_acc"] == best


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, data4):
    trainer = Trainer(config(tmp_path, data4), log=lambda *a: None)
    real_loss, calls = trainer.loss_fn, []
    per_epoch = len(trainer.train_loader)

    def poisoned(logits, y):
        calls.append(1)
        loss = real_loss(logits, y)
        return loss * float("nan") if len(calls) == per_epoch + 2 else loss

    trainer.loss_fn = poisoned
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 2, step 2/\d+.*last.safetensors \(epoch 1\)"):
        trainer.fit()
    ck = load_checkpoint(tmp_path / "last.safetensors")
    assert ck["epoch"] == 1 and len(ck["extra"]["history"]) == 1
    assert all(np.isfinite(v).all() for v in ck["model"].values() if v.dtype.kind == "f")
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


def test_finetune_replaces_head_and_freezes_backbone(tmp_path, data4):
    Trainer(config(tmp_path / "pre", data4, epochs=1), log=lambda *a: None).fit()
    ckpt = tmp_path / "pre" / "last.safetensors"
    data2 = make_image_folder(tmp_path / "data2", ["left", "right"], 10, 4, seed=1)
    logs = []
    ft = Trainer(config(tmp_path / "ft", data2, epochs=1, init_from=str(ckpt), freeze_backbone=True),
                 log=logs.append)
    assert ft.model.fc.out_features == 2 and any("head" in line for line in logs)
    pretrained = load_checkpoint(ckpt)["model"]
    before = weights(ft.model)
    for k, v in before.items():
        if not k.startswith("fc."):
            assert np.array_equal(v, pretrained[k]), k  # backbone loaded from the checkpoint
    opt_params = [p for g in ft.optimizer.param_groups for p in g["params"]]
    assert {id(p) for p in opt_params} == {id(ft.model.fc.weight), id(ft.model.fc.bias)}
    ft.fit()
    after = weights(ft.model)
    for k in before:
        if k.startswith("fc."):
            assert not np.array_equal(before[k], after[k]), k
        else:
            assert np.array_equal(before[k], after[k]), k  # weights and BN statistics untouched


def test_weight_decay_only_on_conv_and_linear_weights():
    mr.manual_seed(0)
    from minires import models
    model = models.get("resnet20", widths=(4, 8, 8))
    decay, no_decay = param_groups(model, 5e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert {names[id(p)] for p in decay["params"]} == {n for n, p in model.named_parameters()
                                                       if ("conv" in n or "fc" in n or "downsample.0" in n)
                                                       and n.endswith("weight")}
    assert all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_confusion_matrix_and_report_against_loops():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    cm = confusion_matrix(t, p, 3)
    for i in range(3):
        for j in range(3):
            assert cm[i, j] == sum(1 for a, b in zip(t, p) if a == i and b == j)
    rep = classification_report(np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]]), ["a", "b", "c"])
    assert rep["accuracy"] == pytest.approx(8 / 11)
    assert [r["precision"] for r in rep["per_class"]] == pytest.approx([5 / 7, 3 / 4, 0.0])
    assert [r["recall"] for r in rep["per_class"]] == pytest.approx([5 / 6, 3 / 5, 0.0])
    assert [r["support"] for r in rep["per_class"]] == [6, 5, 0]


def test_amp_run_trains_and_resumes_bitwise_with_the_loss_scale(tmp_path, data4):
    straight = Trainer(config(tmp_path / "a", data4, amp=True), log=lambda *a: None)
    report = straight.fit()
    assert np.isfinite(straight.history[-1]["train_loss"]) and 0 <= report["accuracy"] <= 1
    assert all(p.dtype == np.float32 for p in straight.model.parameters())  # master weights stay float32

    first = Trainer(config(tmp_path / "b", data4, amp=True), log=lambda *a: None)
    first.fit(max_epochs=1)
    saved = load_checkpoint(tmp_path / "b" / "last.safetensors")["extra"]["scaler"]
    assert saved["scale"] == first.scaler.get_scale() and saved["_growth_tracker"] == first.scaler._growth_tracker
    resumed = Trainer(config(tmp_path / "b", data4, resume=True), log=lambda *a: None)
    assert resumed.config.amp and resumed.scaler.state_dict() == first.scaler.state_dict()
    resumed.fit()
    a, b = weights(straight.model), weights(resumed.model)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ---- plots a person reads at a glance (issue 14, item 9) -----------------------------------------
@pytest.fixture
def figures(monkeypatch):
    pytest.importorskip("matplotlib")
    from minires.train import plots
    saved = []
    real = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, plt, path: (saved.append(fig), fig.canvas.draw(), real(fig, plt, path)))
    return plots, saved


def test_curves_have_a_title_y_labels_whole_epochs_and_a_log_loss_axis(tmp_path, figures):
    plots, saved = figures
    history = [{"epoch": i + 1, "train_loss": l, "test_loss": l * 1.1, "train_acc": 0.1 * i, "test_acc": 0.1 * i}
               for i, l in enumerate([2.3, 40.0, 1.1])]
    assert plots.plot_curves(history, tmp_path / "c.png", title="resnet20 on cpu, run runs/x")
    (fig,) = saved
    assert fig._suptitle.get_text() == "resnet20 on cpu, run runs/x"
    loss, acc = fig.axes
    assert loss.get_yscale() == "log" and "loss" in loss.get_ylabel() and acc.get_ylabel() == "accuracy"
    ticks = [t for t in loss.get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_confusion_matrix_has_a_title_with_the_accuracy_and_a_colour_bar(tmp_path, figures):
    plots, saved = figures
    assert plots.plot_confusion_matrix([[3, 1], [0, 4]], ["a", "b"], tmp_path / "m.png", title="resnet20, epoch 2")
    (fig,) = saved
    assert len(fig.axes) == 2  # the matrix and its colour bar
    assert fig.axes[0].get_title() == "resnet20, epoch 2: accuracy 87.50% on 8 images"


# ---- the one training step (issue 13): Trainer and examples share minires.train.train_step ----------
def _linear_problem(seed=0, n=6, c_in=3, k=4):
    """A Linear model, a batch, and the closed-form cross-entropy gradient of its weights."""
    from minires import nn
    mr.manual_seed(seed)
    model = nn.Linear(c_in, k)
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, c_in)).astype(np.float32), rng.integers(0, k, n)
    w, b = model.weight.numpy().astype(np.float64), model.bias.numpy().astype(np.float64)
    z = x @ w.T + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(n), y]).mean()
    g = (p - np.eye(k)[y]) / n  # d loss / d logits
    return model, mr.tensor(x), mr.tensor(y), loss, (z.argmax(axis=1) == y).sum(), w, b, g.T @ x, g.sum(axis=0)


def test_train_step_is_one_sgd_step_on_the_closed_form_gradient():
    from minires import optim
    from minires.functional import cross_entropy
    from minires.train import train_step
    model, x, y, loss, correct, w, b, dw, db = _linear_problem()
    result = train_step(model, cross_entropy, optim.SGD(model.parameters(), lr=0.5), x, y)
    assert result.loss == pytest.approx(loss, rel=1e-5) and result.correct == correct and not result.skipped
    np.testing.assert_allclose(model.weight.numpy(), w - 0.5 * dw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.bias.numpy(), b - 0.5 * db, rtol=1e-5, atol=1e-6)


def test_train_step_clips_the_joint_gradient_norm():
    from minires import optim
    from minires.functional import cross_entropy
    from minires.train import train_step
    model, x, y, _, _, w, b, dw, db = _linear_problem(seed=1)
    norm = np.sqrt((dw ** 2).sum() + (db ** 2).sum())
    train_step(model, cross_entropy, optim.SGD(model.parameters(), lr=1.0), x, y, max_grad_norm=norm / 4)
    coef = (norm / 4) / (norm + 1e-6)  # PyTorch's clip_grad_norm_ rule
    np.testing.assert_allclose(model.weight.numpy(), w - coef * dw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.bias.numpy(), b - coef * db, rtol=1e-5, atol=1e-6)
    model, x, y, _, _, w, _, dw, _ = _linear_problem(seed=1)
    train_step(model, cross_entropy, optim.SGD(model.parameters(), lr=1.0), x, y, max_grad_norm=norm * 2)
    np.testing.assert_allclose(model.weight.numpy(), w - dw, rtol=1e-5, atol=1e-6)  # under the limit: untouched


@pytest.mark.parametrize("poison, words", [
    (lambda loss, logits: loss * float("nan"), r"^loss is nan$"),
    (lambda loss, logits: loss + (logits * 0).sum().sqrt(), r"^gradient is non-finite \((nan|inf) in weight\)$"),
])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_train_step_takes_no_step_on_a_non_finite_loss_or_gradient(poison, words):
    from minires import optim
    from minires.functional import cross_entropy
    from minires.train import train_step
    model, x, y, *_ = _linear_problem()
    before = weights(model)
    with pytest.raises(TrainingDiverged, match=words):
        train_step(model, lambda logits, t: poison(cross_entropy(logits, t), logits),
                   optim.SGD(model.parameters(), lr=0.5), x, y)
    for k, v in weights(model).items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_train_step_under_amp_skips_an_overflowing_step_and_lowers_the_scale():
    from minires import optim
    from minires.functional import cross_entropy
    from minires.train import train_step
    model, x, y, loss, *_ = _linear_problem()
    before = weights(model)
    scaler = optim.GradScaler(init_scale=2.0 ** 100)  # the scaled float16 gradients overflow
    result = train_step(model, cross_entropy, optim.SGD(model.parameters(), lr=0.5), x, y, scaler)
    assert result.skipped and scaler.get_scale() == 2.0 ** 99
    assert result.loss == pytest.approx(loss, rel=2e-2)  # the loss itself stays finite (float16 logits)
    for k, v in weights(model).items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    result = train_step(model, cross_entropy, optim.SGD(model.parameters(), lr=0.5), x, y,
                        optim.GradScaler(init_scale=1024.0))
    assert not result.skipped and not np.array_equal(model.weight.numpy(), before["weight"])


# ---- the run's record and BLAS threads --------------------------------------------------------------
def test_run_fields_are_what_defines_a_run():
    from minires.train.config import RUN_FIELDS
    assert set(RUN_FIELDS) == {"recipe", "recipe_overrides", "model", "model_kwargs", "epochs", "batch_size",
                               "optimizer", "lr", "momentum", "weight_decay", "schedule", "pct_start",
                               "label_smoothing", "cutout", "seed", "limit_train", "limit_test", "init_from",
                               "freeze_backbone", "amp"}


def test_resume_keeps_the_saved_run_fields_and_takes_the_others_from_the_command_line(tmp_path, data4):
    Trainer(config(tmp_path, data4, epochs=2), log=lambda *a: None).fit(max_epochs=1)
    logs = []
    resumed = Trainer(config(tmp_path, data4, epochs=3, seed=9, eval_batch_size=7, resume=True), log=logs.append)
    assert (resumed.config.epochs, resumed.config.seed, resumed.config.eval_batch_size) == (2, 3, 7)
    assert any("epochs=2 (not 3)" in line and "seed=3 (not 9)" in line for line in logs)


class _BlasLibrary:
    """One BLAS library as threadpoolctl shows it to minires.parallel (4 threads of its own)."""
    num_threads = 4

    def set_num_threads(self, n):
        self.num_threads = n


def test_fit_and_evaluate_hold_blas_at_one_thread_and_give_it_back(tmp_path, data4, monkeypatch):
    from minires import parallel
    from minires.train import evaluate
    lib = _BlasLibrary()
    monkeypatch.setattr(parallel, "_blas", type("Controller", (), {"lib_controllers": [lib]})())
    previous = parallel.get_num_threads()
    parallel.set_num_threads(2)
    try:
        trainer = Trainer(config(tmp_path, data4, epochs=1), log=lambda *a: None)
        during, forward = [], trainer.model.forward
        trainer.model.forward = lambda x: (during.append(lib.num_threads), forward(x))[1]
        trainer.fit()
        assert during and set(during) == {1} and lib.num_threads == 4  # held while training, given back after
        during.clear()
        evaluate(trainer.model, trainer.test_loader)
        assert during and set(during) == {1} and lib.num_threads == 4
    finally:
        parallel.set_num_threads(previous)
