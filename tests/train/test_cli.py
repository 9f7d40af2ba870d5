"""The `minires` command: train and eval end to end, NaN exit code, bad arguments exit 2 without traceback."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("PIL")

import minires as mr
import minires.functional
from minires.checkpoint import load_checkpoint
from minires.cli import main

from tiny_cifar import make_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
    (["train", "--epochs", "0"], "epochs must be a number > 0, got 0.0"),
    (["train", "--data", "/no/such/dir"], "data directory '/no/such/dir' does not exist"),
    (["train", "--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    (["train", "--label-smoothing", "1.5"], "label-smoothing must be in [0, 1)"),
    (["train", "--device", "tpu"], "device: minires runs on 'cpu' and 'cuda' ('cuda:N'), got 'tpu'"),
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


# ---- a CLI that never surprises (issue 14) -------------------------------------------------------
def test_an_existing_run_directory_is_refused_without_resume_or_overwrite(tmp_path, data, capsys):
    out = tmp_path / "run"
    assert main(train_args(data, out)) == 0
    before = (out / "best.safetensors").read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(train_args(data, out, "--seed", "9"))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert (out / "best.safetensors").read_bytes() == before  # nothing touched
    assert main(train_args(data, out, "--seed", "9", "--overwrite")) == 0
    assert load_checkpoint(out / "last.safetensors")["extra"]["config"]["seed"] == 9


@pytest.mark.parametrize("argv", [["train", "--epochs", "x"], ["train", "--optimizer", "rmsprop"],
                                  ["eval"], ["bogus"], ["train", "--device", "tpu", "--data", "."]])
def test_errors_are_one_line_without_the_usage_block(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err and "usage:" not in err, err


def test_help_shows_every_default_once(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert text.count("(default: cpu)") == 1 and "(default: cpu) (default: cpu)" not in text
    for shown in ("(default: 5)", "(default: 128)", "(default: sgd)", "(default: 0)", "(default: 0.2 for sgd"):
        assert shown in text, shown


def test_version_and_python_dash_m(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"minires {mr.__version__}"
    r = subprocess.run([sys.executable, "-m", "minires", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == f"minires {mr.__version__}"


def test_eval_names_what_it_evaluates_and_takes_no_progress(tmp_path, data, capsys):
    out = tmp_path / "run"
    assert main(train_args(data, out)) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "last.safetensors"), "--data", data, "--limit-test", "8",
                 "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "resnet20 after epoch 1 of 1" in printed.out and "eval" not in printed.err


def test_ctrl_c_says_where_it_stopped_what_is_saved_and_how_to_continue(tmp_path, data, capsys, monkeypatch):
    from minires.train import Trainer
    original, calls = Trainer.train_epoch, []

    def train_epoch(self, epoch):
        calls.append(epoch)
        if len(calls) == 2:  # the user presses Ctrl-C during the second epoch's first step
            self.step = 1
            raise KeyboardInterrupt
        return original(self, epoch)
    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    out = tmp_path / "run"
    assert main(train_args(data, out, "--epochs", "3")) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"minires train: stopped at epoch 2, step 1/2; last checkpoint at {out / 'last.safetensors'} "
                   f"(epoch 1); continue with: minires train --resume --out {out}")


def test_train_and_eval_leave_the_data_folder_as_it_was(tmp_path, data):
    from pathlib import Path
    listing = lambda: sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in Path(data).rglob("*"))  # noqa: E731
    before = listing()
    assert main(train_args(data, tmp_path / "run")) == 0
    assert main(["eval", "--checkpoint", str(tmp_path / "run" / "last.safetensors"), "--data", data,
                 "--limit-test", "8", "--no-progress"]) == 0
    assert main(train_args(data, tmp_path / "run2", "--no-cache")) == 0
    assert listing() == before


# ---- checkpoint files (issue 14, item 4) ---------------------------------------------------------
def test_best_holds_weights_only_and_evaluates(tmp_path, data):
    from safetensors.numpy import load_file
    out = tmp_path / "run"
    assert main(train_args(data, out)) == 0
    model = mr.models.resnet20(num_classes=3)
    arrays = load_file(str(out / "best.safetensors"))
    assert set(arrays) == set(model.state_dict())  # nothing else: a strict load_state_dict takes it
    ck = load_checkpoint(out / "best.safetensors")
    assert ck["optimizer"] is None and ck["extra"]["model"] == "resnet20" and ck["extra"]["classes"] == ["a", "b", "c"]
    assert ck["epoch"] == 1 and 0 <= ck["extra"]["best_acc"] <= 1
    assert main(["eval", "--checkpoint", str(out / "best.safetensors"), "--data", data, "--limit-test", "8",
                 "--no-progress"]) == 0


def test_init_from_another_architecture_is_one_line_naming_both(tmp_path, data, capsys):
    out = tmp_path / "r20"
    assert main(train_args(data, out)) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(train_args(data, tmp_path / "r9", "--model", "resnet9", "--init-from", str(out / "last.safetensors")))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 300 and "resnet20" in err and "resnet9" in err


def test_init_from_a_plain_weights_file_under_torchvision_names(tmp_path, data, capsys):
    """The fine-tuning path for pretrained weights: a safetensors file of weights alone, no minires metadata."""
    from safetensors.numpy import save_file
    mr.manual_seed(11)
    src = mr.models.resnet20(num_classes=3)
    path = tmp_path / "pretrained.safetensors"
    save_file({k: np.array(v.numpy(), order="C") for k, v in src.state_dict().items()}, str(path))
    out = tmp_path / "ft"
    assert main(train_args(data, out, "--init-from", str(path), "--freeze-backbone", "--lr", "1e-9")) == 0
    tuned = load_checkpoint(out / "last.safetensors")["model"]
    for k, v in src.state_dict().items():
        if not k.startswith("fc.") and "running" not in k and "num_batches" not in k:
            np.testing.assert_array_equal(tuned[k], v.numpy(), err_msg=k)
    bad = tmp_path / "bad.safetensors"
    save_file({"conv1.weight": np.zeros((3, 3, 3, 3), np.float32)}, str(bad))
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(train_args(data, tmp_path / "bad", "--init-from", str(bad)))
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing" in err and "and " in err and len(err) < 400


def test_overwrite_removes_the_old_run_so_a_stop_cannot_point_at_it(tmp_path, data, capsys, monkeypatch):
    from minires.train import Trainer
    out = tmp_path / "run"
    assert main(train_args(data, out)) == 0

    def stop_at_once(self, epoch):
        raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "train_epoch", stop_at_once)
    capsys.readouterr()
    assert main(train_args(data, out, "--overwrite")) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no checkpoint yet" in err and "--resume" not in err
    assert not any((out / name).exists() for name in ("last.safetensors", "best.safetensors", "metrics.jsonl"))


# ---- the options are TrainConfig's fields (issue 13) ---------------------------------------------
def test_train_options_are_the_fields_of_trainconfig():
    import dataclasses
    from minires.cli import build_parser
    from minires.train import TrainConfig
    from minires.train.config import from_args
    parser = build_parser()
    assert from_args(parser.parse_args(["train"])) == TrainConfig()  # the same defaults, out included
    given = from_args(parser.parse_args(["train", "--model", "resnet9", "--optimizer", "adam", "--lr", "0.01",
                                         "--no-progress", "--no-cache", "--amp", "--limit-train", "5",
                                         "--eval-batch-size", "7"]))
    assert given == TrainConfig(model="resnet9", optimizer="adam", lr=0.01, progress=False, cache=False, amp=True,
                                limit_train=5, eval_batch_size=7, out=os.path.join("runs", "resnet9"))
    train = parser._subparsers._group_actions[0].choices["train"]
    dests = {a.dest for a in train._actions} - {"help", "handler", "subparser"}
    # every field, no other (but the two for library use only)
    assert dests == {f.name for f in dataclasses.fields(TrainConfig)} - {"model_kwargs", "recipe_overrides", "given"}
