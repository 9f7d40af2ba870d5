"""The examples run as written: --help without side effects, and tiny runs end to end."""
import importlib.util
import os

import pytest

pytest.importorskip("PIL")

from test_trainer import make_image_folder

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("exdata"), ["a", "b", "c"], 8, 4, seed=5)


@pytest.mark.parametrize("name", ["train_cifar10", "finetune"])
def test_help_has_no_side_effects(name, capsys, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MINIRES_DATA", str(home))
    with pytest.raises(SystemExit) as exc:
        example(name).main(["--help"])
    assert exc.value.code == 0 and "--batch-size" in capsys.readouterr().out
    assert not home.exists()  # nothing downloaded or cached


def test_train_cifar10_tiny_run_with_the_cli_option_names(data):
    acc = example("train_cifar10").main(["--data", data, "--epochs", "1", "--limit-train", "12",
                                         "--limit-test", "6", "--batch-size", "4"])  # 3 steps: no room for one-cycle
    assert 0.0 <= acc <= 1.0
    acc = example("train_cifar10").main(["--data", data, "--epochs", "1", "--limit-train", "20", "--batch-size", "4"])
    assert 0.0 <= acc <= 1.0


def test_finetune_tiny_run_from_a_minires_train_checkpoint(data, tmp_path):
    from minires.cli import main
    out = tmp_path / "run"
    assert main(["train", "--data", data, "--out", str(out), "--epochs", "1", "--batch-size", "8",
                 "--limit-train", "16", "--limit-test", "8", "--no-progress"]) == 0
    acc = example("finetune").main(["--checkpoint", str(out / "last.safetensors"), "--data", data, "--epochs", "1",
                                    "--batch-size", "8"])
    assert 0.0 <= acc <= 1.0


def test_train_cifar10_steps_through_the_shared_train_step(data, monkeypatch):
    import minires.train
    real, calls = minires.train.train_step, []
    monkeypatch.setattr(minires.train, "train_step", lambda *a, **kw: (calls.append(1), real(*a, **kw))[1])
    example("train_cifar10").main(["--data", data, "--epochs", "2", "--limit-train", "12", "--limit-test", "6",
                                   "--batch-size", "4"])
    assert len(calls) == 6  # every step of both epochs: 12 images in batches of 4
