"""`minires train --recipe airbench94` end to end, on a tiny CIFAR-like image folder (64 train / 40 test 32x32 PNGs).

What is checked in real runs (not in the recipe's pieces, which tests/train/test_recipe_pieces.py covers):
the CLI run and its files (per-epoch table, final_eval.json with TTA, fractional --epochs ending inside the
last epoch, drop_last step count), the recipe's parts in effect (whitening filters of these images and frozen,
BatchNorm weights exactly 1, the whitening bias frozen after epoch 3, the piecewise schedule's end, Nesterov
SGD 0.85 with its two param groups, the summed loss, the lookahead-EMA saved in the checkpoint and the final
weights being its average), a run resumed after epochs 1 and 3 equal bitwise to a straight one, bad options,
--runs and `minires eval --tta`.
"""
import json
import math
import os

import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("PIL")

import minires as mr
from minires import models
from minires.checkpoint import load_checkpoint
from minires.cli import main
from minires.data import CIFAR10, CIFAR10_MEAN, CIFAR10_STD
from minires.train import TrainConfig, Trainer
from minires.recipes import airbench94 as ab

from tiny_cifar import make_image_folder

CLASSES = ["ant", "bee", "cat", "dog"]
N_TRAIN, N_TEST = 64, 40  # 16 and 10 per class


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("recipedata"), CLASSES, N_TRAIN // 4, N_TEST // 4, seed=4)


def train_argv(data, out, *extra):
    return ["train", "--recipe", "airbench94", "--data", data, "--out", str(out), "--no-progress", *extra]


def normalised(images_uint8):
    """(N, H, W, C) uint8 -> (N, C, H, W) float64, normalised by the CIFAR-10 mean and std (by hand)."""
    x = images_uint8.astype(np.float64) / 255
    x = (x - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)
    return x.transpose(0, 3, 1, 2)


def check_whitening(weight, images_uint8, eps=5e-4):
    """weight (24, 3, 2, 2) whitens the 2x2 patches of the images: its first 12 filters F give the patches
    the covariance F S F^T = diag(lam / (lam + eps)) (S the uncentred patch covariance, lam its eigenvalues
    from the largest), and its last 12 are their negatives."""
    x = normalised(images_uint8)
    n, c, h, w = x.shape
    patches = np.stack([x[:, ch, i:i + h - 1, j:j + w - 1] for ch in range(c) for i in range(2) for j in range(2)],
                       axis=-1).reshape(-1, 12)  # (C, kh, kw) order, as a conv weight flattens
    S = patches.T @ patches / len(patches)
    lam = np.linalg.eigvalsh(S)[::-1]
    F = weight[:12].reshape(12, 12).astype(np.float64)
    np.testing.assert_array_equal(weight[12:], -weight[:12])
    np.testing.assert_allclose(F @ S @ F.T, np.diag(lam / (lam + eps)), rtol=1e-4, atol=1e-5)


def norm_weights(state):
    return {k: v for k, v in state.items() if ".norm" in k and k.endswith(".weight")}


# ---- the CLI run, its files, and `minires eval --tta` --------------------------------------------------------

def test_train_airbench94_end_to_end_then_eval_with_tta(tmp_path, data, capsys):
    out = tmp_path / "run"
    # NOTE: at least 5 steps: the lookahead-EMA averages every 5th step, and the run ends on the average
    # (as airbench does), so a run of under 5 steps would end on its initial weights.
    assert main(train_argv(data, out, "--batch-size", "16", "--epochs", "1.5")) == 0
    printed = capsys.readouterr().out
    assert "--batch-size 16 overrides the recipe's 1024" in printed
    assert "--epochs 1.5 overrides the recipe's 9.9" in printed
    steps = math.ceil(1.5 * (N_TRAIN // 16))  # 4 batches an epoch (drop_last); the 2nd epoch stops after 2
    assert steps == 6 and f"2 epochs, {steps} steps" in printed

    # the per-epoch table: 2 epochs, the second one half an epoch (32 of the 64 images)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert [round(r["images_per_s"] * r["train_time_s"]) for r in rows] == [64, 32]
    assert len((out / "metrics.csv").read_text().splitlines()) == 3

    # the final report: TTA (the recipe's flip-shift), the accuracy without it, training time
    report = json.loads((out / "final_eval.json").read_text())
    assert report["tta"] == "flip-shift" and report["num_samples"] == N_TEST
    assert 0.0 <= report["accuracy"] <= 1.0 and 0.0 <= report["accuracy_without_tta"] <= 1.0
    assert report["accuracy_without_tta"] == pytest.approx(rows[-1]["test_acc"])  # the same weights, no TTA
    assert report["train_time_s"] == pytest.approx(sum(r["train_time_s"] for r in rows))
    assert report["train_time_s"] > 0
    assert (f"{report['accuracy']:.4f} with test-time augmentation (flip-shift), "
            f"{report['accuracy_without_tta']:.4f} without") in printed

    # the checkpoint: the recipe's settings, the step count, the schedule's end, the optimizer
    ck = load_checkpoint(out / "last.safetensors")
    cfg = ck["extra"]["config"]
    assert (cfg["recipe"], cfg["model"], cfg["batch_size"], cfg["epochs"]) == ("airbench94", "airbench94", 16, 1.5)
    assert (cfg["momentum"], cfg["label_smoothing"], cfg["schedule"], cfg["lr"]) == (0.85, 0.2, "piecewise", ab.LR)
    assert ck["epoch"] == 2 and ck["scheduler"]["last_epoch"] == steps
    groups = ck["optimizer"]["param_groups"]
    assert [g["initial_lr"] for g in groups] == pytest.approx([ab.LR * ab.BIAS_LR_SCALE, ab.LR])
    assert [g["lr"] / g["initial_lr"] for g in groups] == pytest.approx([0.07, 0.07])  # the triangle's end
    # airbench's decay per step grows with the batch (16 here): 0.0153 * batch / kilostep_scale
    assert [g["weight_decay"] * g["initial_lr"] for g in groups] == pytest.approx([ab.WEIGHT_DECAY * 16 / 1024] * 2)
    assert all(g["momentum"] == 0.85 and g["nesterov"] for g in groups)
    assert len(groups[0]["params"]) == 6  # the BatchNorm biases (at 64x the lr): 2 per conv group

    # the recipe's parts in effect in the saved weights
    state = ck["model"]
    train_images = CIFAR10(data, train=True, download=False, cache=False).data
    assert len(train_images) == N_TRAIN
    check_whitening(state["whiten.weight"], train_images)  # whitens these images (< 5,000: all of them)
    assert np.abs(state["whiten.bias"]).max() > 0  # trained from 0 (the first 3 epochs)
    bn = norm_weights(state)
    assert len(bn) == 6 and all(np.array_equal(v, np.ones_like(v)) for v in bn.values())  # frozen at 1
    assert all(np.abs(state[k.replace("weight", "bias")]).max() > 0 for k in bn)  # their biases trained
    # the lookahead-EMA state is saved: one average per float entry, and the run ended on the average
    floats = {k for k, v in state.items() if v.dtype.kind == "f"}
    assert set(ck["arrays"]) == {f"ema.{k}" for k in floats}
    for k in floats:
        np.testing.assert_array_equal(ck["arrays"][f"ema.{k}"], state[k], err_msg=k)

    # minires eval: the recipe's TTA by default, the same report as the run's; --tta flip by hand
    assert main(["eval", "--checkpoint", str(out / "last.safetensors"), "--data", data, "--no-progress",
                 "--out", str(tmp_path / "ev")]) == 0
    assert "test-time augmentation: flip-shift" in capsys.readouterr().out
    again = json.loads((tmp_path / "ev" / "final_eval.json").read_text())
    assert again["confusion_matrix"] == report["confusion_matrix"]

    assert main(["eval", "--checkpoint", str(out / "last.safetensors"), "--data", data, "--no-progress",
                 "--tta", "flip", "--out", str(tmp_path / "flip")]) == 0
    printed = capsys.readouterr().out
    flip = json.loads((tmp_path / "flip" / "final_eval.json").read_text())
    assert "test-time augmentation: flip" in printed
    assert f"accuracy: {flip['accuracy']:.4f} on {N_TEST} images" in printed
    test = CIFAR10(data, train=False, download=False, cache=False)
    model = models.get("airbench94", num_classes=len(CLASSES))
    model.load_state_dict(state)
    model.eval()
    x = normalised(test.data).astype(np.float32)
    with mr.no_grad():
        logits = 0.5 * model(mr.tensor(x)).numpy() + 0.5 * model(mr.tensor(np.ascontiguousarray(x[..., ::-1]))).numpy()
    assert flip["accuracy"] == pytest.approx(float((logits.argmax(1) == test.targets).mean()))


# ---- the recipe's parts across epochs, and a resume ---------------------------------------------------------

def config(data, out, **kw):
    base = dict(recipe="airbench94", data=data, out=str(out), epochs=4.5, batch_size=16, limit_train=32,
                limit_test=8, eval_batch_size=8, tta="none", progress=False, seed=1)
    base.update(kw)
    return TrainConfig(**base)


def state_of(trainer):
    return {k: v.numpy().copy() for k, v in trainer.model.state_dict().items()}


def test_airbench94_freezes_what_it_says_and_resumes_bitwise(tmp_path, data):
    # straight: 4.5 epochs of 2 steps (32 images, batch 16) = 9 steps, watched epoch by epoch
    quiet = lambda *a: None
    straight = Trainer(config(data, tmp_path / "a"), log=quiet)
    assert (straight.total_steps, len(straight.train_loader)) == (9, 2)
    names = [type(t).__name__ for t in straight.train_loader.transform.transforms]
    assert names == ["AlternatingFlip", "RandomCrop", "Normalize"]
    assert straight.train_loader.transform.transforms[1].padding == 2
    assert names[-1:] == [type(t).__name__ for t in straight.test_loader.transform.transforms]
    logits = mr.tensor(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))
    y = mr.tensor([0, 1, 2, 3, 0])
    mean = mr.functional.cross_entropy(logits, y, label_smoothing=0.2).item()
    assert straight.loss_fn(logits, y).item() == pytest.approx(5 * mean)  # summed, with smoothing 0.2
    check_whitening(straight.model.whiten.weight.numpy(), straight.train_set.data)
    mr.manual_seed(1)
    default = models.get("airbench94", num_classes=len(CLASSES)).whiten.weight.numpy()
    assert not np.allclose(default, straight.model.whiten.weight.numpy())  # not the default init

    epochs = [state_of(straight)]
    for _ in range(5):
        straight.fit(max_epochs=1)
        epochs.append(state_of(straight))
    assert straight.epoch == 5 and not straight.model.whiten.bias.requires_grad
    bias = [e["whiten.bias"] for e in epochs]
    assert np.array_equal(bias[0], np.zeros(24, np.float32))
    assert all(not np.array_equal(bias[e], bias[e + 1]) for e in range(3))  # it trains in epochs 1-3
    np.testing.assert_array_equal(bias[4], bias[3])  # epoch 4 (steps 7, 8): frozen, no EMA update in it
    assert not np.array_equal(epochs[4]["layer1.conv1.weight"], epochs[3]["layer1.conv1.weight"])  # others train
    for e in epochs[1:]:
        np.testing.assert_array_equal(e["whiten.weight"], epochs[0]["whiten.weight"])
        assert all(np.array_equal(v, np.ones_like(v)) for v in norm_weights(e).values())

    # the same run stopped after epoch 1 and again after epoch 3 (EMA mid-way, whitening bias about to
    # freeze), each time continued by a new Trainer from the checkpoint
    out = tmp_path / "b"
    Trainer(config(data, out), log=quiet).fit(max_epochs=1)
    second = Trainer(config(data, out, resume=True), log=quiet)
    assert second.epoch == 1
    second.fit(max_epochs=2)
    np.testing.assert_array_equal(state_of(second)["whiten.bias"], bias[3])
    ema = load_checkpoint(out / "last.safetensors")["arrays"]
    assert not np.array_equal(ema["ema.fc.weight"], state_of(second)["fc.weight"])  # the average lags the model
    third = Trainer(config(data, out, resume=True), log=quiet)
    assert third.epoch == 3
    report = third.fit()
    final, resumed = epochs[-1], state_of(third)
    assert list(final) == list(resumed)
    for k in final:
        assert np.array_equal(final[k], resumed[k]), k  # bitwise
    a, b = load_checkpoint(tmp_path / "a" / "last.safetensors"), load_checkpoint(out / "last.safetensors")
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 9
    assert set(a["arrays"]) == set(b["arrays"])
    assert all(np.array_equal(a["arrays"][k], b["arrays"][k]) for k in a["arrays"])  # the EMA, bitwise too
    assert report["tta"] == "none" and report["accuracy"] == report["accuracy_without_tta"]


# ---- bad input --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--model", "resnet20"], "--recipe airbench94 sets --model airbench94; drop --model resnet20"),
    (["--lr", "0.1"], "--recipe airbench94 sets --lr"),
    (["--momentum", "0.9"], "drop --momentum 0.9"),  # typed, though it is the default
    (["--schedule", "onecycle"], "drop --schedule onecycle"),
    (["--freeze-backbone"], "drop --init-from and --freeze-backbone"),
])
def test_options_against_the_recipe_exit_2_naming_them(tmp_path, data, capsys, extra, message):
    with pytest.raises(SystemExit) as exc:
        main(train_argv(data, tmp_path / "run", *extra))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_init_from_is_refused_and_an_unknown_recipe_lists_the_known_ones(tmp_path, data, capsys):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"not read: the recipe refuses --init-from first")
    with pytest.raises(SystemExit) as exc:
        main(train_argv(data, tmp_path / "run", "--init-from", str(weights)))
    assert exc.value.code == 2 and "trains its network from scratch: drop --init-from" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["train", "--recipe", "nosuch", "--data", data, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "nosuch" in err and "airbench94" in err


# ---- --runs ---------------------------------------------------------------------------------------------

def test_runs_trains_seeds_0_to_n_minus_1_and_reports_mean_and_std(tmp_path, data, capsys):
    out = tmp_path / "runs"
    # (1 step each, under the EMA's 5: each run ends on its seed's initial weights; --runs is what is tested)
    assert main(train_argv(data, out, "--batch-size", "32", "--epochs", "0.5", "--limit-test", "8", "--runs", "2")) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "runs.json").read_text())
    reports = [json.loads((out / f"run{k}" / "final_eval.json").read_text()) for k in range(2)]
    ckpts = [load_checkpoint(out / f"run{k}" / "last.safetensors") for k in range(2)]
    assert [c["extra"]["config"]["seed"] for c in ckpts] == [0, 1]
    assert [c["scheduler"]["last_epoch"] for c in ckpts] == [1, 1]  # half an epoch of 2 batches
    assert not np.array_equal(ckpts[0]["model"]["fc.weight"], ckpts[1]["model"]["fc.weight"])  # two seeds
    assert summary["runs"] == 2 and summary["tta"] == "flip-shift"
    for key in ("accuracy", "accuracy_without_tta", "train_time_s"):
        values = [r[key] for r in reports]
        assert summary[key]["values"] == pytest.approx(values)
        assert summary[key]["mean"] == pytest.approx(np.mean(values))
        assert summary[key]["std"] == pytest.approx(np.std(values, ddof=1))
    acc = summary["accuracy"]
    assert f"2 runs: test accuracy {acc['mean']:.4f} +- {acc['std']:.4f}" in printed
    assert not os.path.exists(out / "last.safetensors")  # each run in its own directory
