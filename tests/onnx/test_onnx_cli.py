"""`minires export --checkpoint RUN_OR_FILE --format onnx --out model.onnx [--batch N] [--dynamic-batch]`.

The subcommand is built by minires.onnx.cli.add_parser on a parser of this test's own (minires/cli.py
wires the same function), on run folders and checkpoint files written here by minires.checkpoint.
"""
import argparse
import os
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="minires.onnx needs onnx: pip install 'minires[onnx]'")

import minires as mr  # noqa: E402
from minires.checkpoint import save_checkpoint, save_weights  # noqa: E402
from minires.onnx import cli  # noqa: E402

CONFIG = {"model": "resnet20", "model_kwargs": {"widths": [4, 8, 8]}}
CLASSES = ["a", "b", "c"]


class Parser(argparse.ArgumentParser):
    def error(self, message):  # as minires/cli.py's: one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv):
    parser = Parser(prog="minires")
    cli.add_parser(parser.add_subparsers(dest="command", required=True, parser_class=Parser))
    args = parser.parse_args(argv)
    return args.handler(args, args.subparser)


def trained(seed=0):
    mr.manual_seed(seed)
    model = mr.models.get("resnet20", num_classes=len(CLASSES), widths=(4, 8, 8))
    for m in model.modules():  # statistics a run would have left
        if isinstance(m, mr.nn.BatchNorm2d):
            m.running_var.array[...] = np.random.default_rng(seed).uniform(0.5, 2, m.num_features)
    return model


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    model = trained()
    save_weights(run / "best.safetensors", model, epoch=2, extra={"model": "resnet20", "classes": CLASSES,
                                                                 "config": CONFIG})
    save_checkpoint(run / "last.safetensors", trained(1), epoch=3, extra={"config": CONFIG, "classes": CLASSES})
    return run, model


def test_a_run_folder_exports_its_best_weights_and_reports(run_dir, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    run, model = run_dir
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(run), "--format", "onnx", "--out", str(out), "--batch", "2"]) == 0
    text = capsys.readouterr().out
    assert "best.safetensors" in text and "opset 17" in text
    assert "input (2, 3, 32, 32) float32 -> output (2, 3)" in text
    assert f"file {os.path.getsize(out):,} bytes" in text
    assert "largest difference from minires on a random batch of 2" in text
    proto = onnx.load(str(out))  # the weights are best's, under their state_dict names
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    np.testing.assert_array_equal(weights["conv1.weight"], model.conv1.weight.numpy())


def test_a_checkpoint_file_with_a_dynamic_batch_is_checked_at_two_batch_sizes(run_dir, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    run, _ = run_dir
    out = tmp_path / "dyn.onnx"
    assert main(["export", "--checkpoint", str(run / "last.safetensors"), "--out", str(out), "--dynamic-batch",
                 "--batch", "3"]) == 0
    text = capsys.readouterr().out
    assert "input (N, 3, 32, 32)" in text and "output (N, 3)" in text
    assert "random batch of 3" in text and "random batch of 5" in text
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"


def test_without_onnxruntime_it_says_so(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    run, _ = run_dir
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "onnxruntime is not installed: outputs not compared" in capsys.readouterr().out
    assert (tmp_path / "m.onnx").is_file()


@pytest.mark.parametrize("case", ["missing", "empty run", "folder out", "no config", "batch 0"])
def test_bad_input_is_one_line(case, run_dir, tmp_path, capsys):
    run, model = run_dir
    argv = ["export", "--checkpoint", str(run), "--out", str(tmp_path / "m.onnx")]
    want = {"missing": "does not exist", "empty run": "holds no best.safetensors or last.safetensors",
            "folder out": "is a folder", "no config": "does not say which model it holds",
            "batch 0": "--batch must be at least 1"}[case]
    if case == "missing":
        argv[2] = str(tmp_path / "nope.safetensors")
    elif case == "empty run":
        (tmp_path / "empty").mkdir()
        argv[2] = str(tmp_path / "empty")
    elif case == "folder out":
        argv[4] = str(tmp_path)
    elif case == "no config":
        save_weights(tmp_path / "bare.safetensors", model)
        argv[2] = str(tmp_path / "bare.safetensors")
    else:
        argv += ["--batch", "0"]
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and want in err and err.count("\n") == 1
    assert not (tmp_path / "m.onnx").exists()


def test_out_never_overwrites_the_checkpoint_or_another_file(tmp_path, capsys):
    from minires.cli import main
    from minires.checkpoint import save_checkpoint
    model = mr.models.get("resnet20")
    ckpt = tmp_path / "best.safetensors"
    save_checkpoint(str(ckpt), model, extra={"config": {"model": "resnet20"}})
    before = ckpt.read_bytes()
    for out in (ckpt, tmp_path / "notes.csv"):
        if out != ckpt:
            out.write_text("epoch,acc\n")
        with pytest.raises(SystemExit) as exit_:
            main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(out)])
        assert exit_.value.code == 2
        assert "is an existing file that is not an .onnx model" in capsys.readouterr().err
    assert ckpt.read_bytes() == before and (tmp_path / "notes.csv").read_text() == "epoch,acc\n"
