"""The `minires` command: train and eval end to end, NaN exit code, bad arguments exit 2 without traceback."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("safetensors")
pytest.importorskip("PIL")

import minires as mr
import minires.functional
from minires.checkpoint import load_checkpoint
from minires.cli import main

from test_trainer import make_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("clidata"), ["a", "b", "c"], 12, 8, seed=2)


def train_args(data, out, *extra):
    return ["train", "--data", data, "--out", str(out), "--epochs", "1", "--batch-size", "16",
            "--limit-train", "32", "--limit-test", "16", "--no-progress", *extra]


def test_train_then_eval(tmp_path, data, capsys):
    out = tmp_path / "run"
    assert main(train_args(data, out, "--lr", "0.05", "--schedule", "cosine", "--seed", "5")) == 0
    printed = capsys.readouterr().out
    assert "epoch 1/1" in printed and "precision" in printed
    ck = load_checkpoint(out / "last.safetensors")
    cfg = ck["extra"]["config"]
    assert (cfg["model"], cfg["lr"], cfg["schedule"], cfg["seed"], cfg["limit_train"]) == ("resnet20", 0.05, "cosine", 5, 32)
    assert ck["extra"]["classes"] == ["a", "b", "c"] and ck["model"]["fc.weight"].shape == (3, 64)
    train_report = json.loads((out / "final_eval.json").read_text())

    assert main(["eval", "--checkpoint", str(out / "last.safetensors"), "--data", data, "--limit-test", "16",
                 "--out", str(tmp_path / "ev")]) == 0
    printed = capsys.readouterr().out
    eval_report = json.loads((tmp_path / "ev" / "final_eval.json").read_text())
    assert eval_report["confusion_matrix"] == train_report["confusion_matrix"]  # same weights, same images
    assert f"accuracy: {train_report['accuracy']:.4f} on 16 images" in printed
    assert (tmp_path / "ev" / "confusion_matrix.png").exists()


def test_nan_loss_exits_nonzero(tmp_path, data, capsys, monkeypatch):
    real = minires.functional.cross_entropy

    def nan_in_training(logits, y, **kw):
        loss = real(logits, y, **kw)
        return loss * float("nan") if mr.is_grad_enabled() else loss

    monkeypatch.setattr(minires.functional, "cross_entropy", nan_in_training)
    assert main(train_args(data, tmp_path / "nan")) == 1
    err = capsys.readouterr().err
    assert "loss is nan at epoch 1, step 1/2" in err and "no epoch finished" in err


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "resnet7"], "unknown model 'resnet7'"),
    (["train", "--epochs", "0"], "epochs must be an integer >= 1"),
    (["train", "--data", "/no/such/dir"], "data directory '/no/such/dir' does not exist"),
    (["train", "--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    (["train", "--label-smoothing", "1.5"], "label-smoothing must be in [0, 1)"),
    (["train", "--device", "tpu"], "device: expected 'cpu', 'cuda' or 'cuda:N'"),
    (["eval", "--checkpoint", "/no/ckpt.safetensors"], "checkpoint '/no/ckpt.safetensors' does not exist"),
    ([], "required: COMMAND"),
])
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_resume_without_checkpoint_and_bad_data_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:  # --resume with nothing to resume starts afresh (then fails on data)
        main(["train", "--out", str(tmp_path / "none"), "--resume", "--data", str(tmp_path)])
    captured = capsys.readouterr()
    assert exc.value.code == 2 and "no CIFAR-10 data" in captured.err
    assert "no checkpoint at" in captured.out and "starting a fresh run" in captured.out
    with pytest.raises(SystemExit) as exc:  # a directory without any CIFAR-10 layout
        main(["train", "--out", str(tmp_path / "x"), "--data", str(tmp_path)])
    assert exc.value.code == 2 and "no CIFAR-10 data" in capsys.readouterr().err


def test_console_entry_point_has_no_traceback(tmp_path):
    corrupt = tmp_path / "bad.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    proc = subprocess.run([sys.executable, "-m", "minires.cli", "eval", "--checkpoint", str(corrupt)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert "bad.safetensors" in proc.stderr and "Traceback" not in proc.stderr
