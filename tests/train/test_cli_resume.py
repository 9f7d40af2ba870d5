"""`minires train --resume` (issue 23, items 1-2): the command Ctrl-C prints continues the run with every
option restored (--data included); a changed run option is one error line naming saved and given values;
options about where and how the run goes on are taken; --epochs N trains a run longer where its schedule
allows it, and is refused in one line where it does not."""
import math
import os
import shlex

import pytest

pytest.importorskip("safetensors")
pytest.importorskip("PIL")

from minires.checkpoint import load_checkpoint
from minires.cli import main
from minires.train import Trainer
from minires.train.config import TrainConfig
from minires.train.resume import merge_saved_config

from tiny_cifar import make_image_folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("resumedata"), ["a", "b", "c"], 12, 8, seed=4)


def train_args(data, out, *extra):
    return ["train", "--data", data, "--out", str(out), "--batch-size", "16", "--limit-train", "32",
            "--limit-test", "16", "--no-progress", *extra]


def snapshot(folder):
    """Every file of a run folder with its bytes: what a refused command must leave as it was."""
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No CIFAR-10 in the default data folder, and no download: a run that forgets --data fails."""
    import minires.data.cifar10
    monkeypatch.setenv("MINIRES_DATA", str(tmp_path / "empty-default"))

    def no_download(root):
        raise RuntimeError(f"download attempted into {root}")
    monkeypatch.setattr(minires.data.cifar10, "download_cifar10", no_download)


def one_error_line(capsys, excinfo):
    assert excinfo.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_the_command_ctrl_c_prints_continues_the_run_with_its_data(tmp_path, data, capsys, monkeypatch, offline):
    original, calls = Trainer.train_epoch, []

    def train_epoch(self, epoch):
        calls.append(epoch)
        if len(calls) == 2:  # Ctrl-C during the second epoch
            raise KeyboardInterrupt
        return original(self, epoch)
    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    out = tmp_path / "run"
    assert main(train_args(data, out, "--epochs", "3", "--lr", "0.05", "--schedule", "cosine", "--seed", "4")) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    command = last.split("continue with: ", 1)[1]
    words = shlex.split(command)
    assert words[:2] == ["minires", "train"] and "--data" not in words  # the data comes from the checkpoint
    monkeypatch.setattr(Trainer, "train_epoch", original)
    monkeypatch.chdir(tmp_path)  # from another folder: the saved data path is absolute
    assert main(words[1:]) == 0
    ck = load_checkpoint(out / "last.safetensors")
    cfg = ck["extra"]["config"]
    assert ck["epoch"] == 3 and len(ck["extra"]["history"]) == 3
    assert (cfg["lr"], cfg["schedule"], cfg["seed"], cfg["limit_train"], cfg["epochs"]) == (0.05, "cosine", 4, 32, 3)
    assert os.path.samefile(cfg["data"], data)


def test_changed_run_options_are_one_line_with_saved_and_given_values(tmp_path, data, capsys):
    out = tmp_path / "run"
    assert main(train_args(data, out, "--epochs", "1")) == 0
    before = snapshot(out)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(train_args(data, out, "--epochs", "1", "--resume", "--model", "resnet32", "--lr", "0.05"))
    err = one_error_line(capsys, exc)
    assert "--model resnet20 (given resnet32)" in err and "--lr default (0.2) (given 0.05)" in err, err
    assert "recipe_overrides" not in err
    other = make_image_folder(tmp_path / "other", ["a", "b", "c"], 12, 8, seed=4)  # the same images elsewhere
    with pytest.raises(SystemExit) as exc:
        main(train_args(other, out, "--resume", "--epochs", "0.5", "--amp"))
    err = one_error_line(capsys, exc)
    for part in (f"--data {os.path.abspath(data)} (given {other})", "--epochs 1 (given 0.5)", "--amp off (given on)"):
        assert part in err, (part, err)
    assert snapshot(out) == before  # nothing written


def test_where_and_how_a_run_goes_on_may_change_and_no_note_names_internal_fields(tmp_path, data, capsys):
    out = tmp_path / "run"
    assert main(train_args(data, out, "--epochs", "2", "--seed", "2")) == 0
    capsys.readouterr()
    rel = os.path.relpath(data)  # the same data folder, spelled another way, is no change
    assert main(["train", "--resume", "--out", str(out), "--data", rel, "--device", "cpu", "--eval-batch-size", "5",
                 "--no-cache", "--seed", "2"]) == 0
    printed = capsys.readouterr()
    text = printed.out + printed.err
    assert "recipe_overrides" not in text and "keeps the saved" not in text
    assert f"resumed {out / 'last.safetensors'} at epoch 2/2" in text


def lrs(out):
    return [row["lr"] for row in load_checkpoint(out / "last.safetensors")["extra"]["history"]]


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_epochs_n_trains_a_finished_run_longer(tmp_path, data, capsys, schedule):
    out = tmp_path / "run"
    assert main(train_args(data, out, "--epochs", "2", "--schedule", schedule, "--lr", "0.1")) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--epochs", "4", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "training the run on past its saved --epochs 2" in printed
    ck = load_checkpoint(out / "last.safetensors")
    assert ck["epoch"] == 4 and ck["extra"]["config"]["epochs"] == 4 and len(ck["extra"]["history"]) == 4
    got = lrs(out)  # the lr at the start of each epoch; 2 steps per epoch
    if schedule == "cosine":  # stretched: the closed form over the 8 steps of 4 epochs from epoch 3 on
        want = [0.1 * (1 + math.cos(math.pi * s / 4)) / 2 for s in (0, 2)] + \
               [0.1 * (1 + math.cos(math.pi * s / 8)) / 2 for s in (4, 6)]
    else:  # milestones at steps 2 and 3 of the first 4: the lr stays at its last value, 0.1 * 0.1**2
        want = [0.1, 0.01, 0.001, 0.001]
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("extra, words", [
    (["--schedule", "onecycle"], "onecycle schedule is laid out over its 2 epochs"),
    (["--schedule", "piecewise"], "piecewise schedule is laid out over its 2 epochs"),
    (["--schedule", "cosine", "--epochs", "1.5"], "ends inside its last epoch (--epochs 1.5)"),
])
def test_epochs_n_is_refused_where_the_schedule_has_a_fixed_end(tmp_path, data, capsys, extra, words):
    out = tmp_path / "run"
    assert main(train_args(data, out, "--epochs", "2", *extra)) == 0
    before = snapshot(out)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["train", "--resume", "--out", str(out), "--epochs", "5", "--no-progress"])
    err = one_error_line(capsys, exc)
    assert words in err and "--init-from" in err and "best.safetensors" in err, err
    assert snapshot(out) == before


def test_a_recipe_run_is_not_lengthened(tmp_path):
    saved = TrainConfig(recipe="airbench94", model="airbench94", epochs=9.9, schedule="piecewise", out=str(tmp_path))
    import dataclasses
    given = TrainConfig(recipe="airbench94", epochs=12, out=str(tmp_path), resume=True,
                        given=("recipe", "epochs", "out", "resume"))
    with pytest.raises(ValueError, match=r"--epochs 12: the run follows --recipe airbench94, whose schedule is laid "
                                         r"out for the 9.9 epochs"):
        merge_saved_config(given, dataclasses.asdict(saved), log=lambda *a: None)


def test_a_python_caller_keeps_the_saved_run_with_a_note_in_option_words(tmp_path):
    import dataclasses
    saved = dataclasses.asdict(TrainConfig(epochs=2, seed=3, data=str(tmp_path), out=str(tmp_path)))
    notes = []
    merged, lengthened = merge_saved_config(TrainConfig(epochs=3, seed=9, out=str(tmp_path), resume=True), saved,
                                            log=notes.append)
    assert (merged.epochs, merged.seed, merged.data, lengthened) == (2, 3, str(tmp_path), False)
    assert len(notes) == 1 and "recipe_overrides" not in notes[0] and "seed=3 (not 9)" in notes[0]
