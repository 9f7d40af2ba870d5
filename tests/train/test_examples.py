"""The examples run as written: --help without side effects, and tiny runs end to end."""
import importlib.util
import os

import pytest

pytest.importorskip("PIL")

from tiny_cifar import make_image_folder

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples")


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


def test_finetune_tiny_run_from_a_minires_train_checkpoint(data, tmp_path, capsys):
    from minires.cli import main
    out = tmp_path / "run"
    assert main(["train", "--data", data, "--out", str(out), "--epochs", "1", "--batch-size", "8",
                 "--limit-train", "16", "--limit-test", "8", "--no-progress"]) == 0
    acc = example("finetune").main(["--checkpoint", str(out / "last.safetensors"), "--data", data, "--epochs", "1",
                                    "--batch-size", "8"])
    assert 0.0 <= acc <= 1.0
    acc = example("finetune").main(["--checkpoint", str(out / "best.safetensors"), "--data", data, "--epochs", "1",
                                    "--batch-size", "4", "--limit-train", "6", "--limit-test", "3"])
    assert "training fc (64 -> 3) on 6 images" in capsys.readouterr().out and acc in (0, 1 / 3, 2 / 3, 1)


def test_train_cifar10_steps_through_the_shared_train_step(data, monkeypatch):
    import minires.train
    real, calls = minires.train.train_step, []
    monkeypatch.setattr(minires.train, "train_step", lambda *a, **kw: (calls.append(1), real(*a, **kw))[1])
    example("train_cifar10").main(["--data", data, "--epochs", "2", "--limit-train", "12", "--limit-test", "6",
                                   "--batch-size", "4"])
    assert len(calls) == 6  # every step of both epochs: 12 images in batches of 4


@pytest.mark.parametrize("name", ["train_cifar10", "finetune"])
def test_help_describes_only_what_the_script_has(name, capsys):
    module = example(name)
    with pytest.raises(SystemExit):
        module.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    source = open(os.path.join(EXAMPLES, f"{name}.py")).read()
    for action in module.build_parser()._actions[1:]:  # every option is one the script reads
        assert f"args.{action.dest}" in source, action.dest
    for other in ("adam", "piecewise", "onecycle and", "(default: None)", "--recipe", "--resume"):
        assert other not in text
    assert "--limit-train N use N training images" in text


def test_train_cifar10_help_names_its_own_schedule():
    parser = example("train_cifar10").build_parser()
    lr = next(a for a in parser._actions if a.dest == "lr")
    assert lr.default == 0.2 and "one-cycle" in lr.help


@pytest.mark.parametrize("name", ["train_cifar10", "finetune"])
def test_examples_say_which_folder_to_pass(name, data, tmp_path, capsys):
    argv = ["--data", os.path.join(data, "train"), "--epochs", "1"]
    argv += ["--checkpoint", str(tmp_path / "none.safetensors")] if name == "finetune" else []
    with pytest.raises(SystemExit) as exc:
        example(name).main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"error: --data {os.path.join(data, 'train')} holds no CIFAR-10 data" in err
    assert f"pass its top folder, --data {data}" in err and "root=" not in err and "Traceback" not in err


def test_finetune_bad_checkpoint_and_limits_are_one_error_line(data, tmp_path, capsys):
    run = example("finetune").main
    for argv, message in ((["--checkpoint", str(tmp_path / "none.safetensors")], "does not exist"),
                          (["--checkpoint", "x", "--limit-train", "0"], "--limit-train must be >= 1, got 0")):
        with pytest.raises(SystemExit) as exc:
            run(argv + ["--data", data])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err.splitlines()[-1]
