"""`minires train`/`eval` say what they use and where their files are, take a run folder for --checkpoint,
name a wrong file as what it is, keep two runs out of one --out (issue 23, items 3, 6, 7, 8a), and every
bad input is one line, exit code 2, with nothing written."""
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("PIL")

import minires as mr
from minires import parallel
from minires.cli import main
from minires.train import Trainer, TrainConfig

from tiny_cifar import make_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("rundata"), ["ant", "bee", "cat"], 12, 8, seed=6)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    """A finished one-epoch run."""
    out = tmp_path_factory.mktemp("runs") / "r20"
    assert main(train_args(data, out)) == 0
    return out


def train_args(data, out, *extra):
    return ["train", "--data", data, "--out", str(out), "--epochs", "1", "--batch-size", "16",
            "--limit-train", "32", "--limit-test", "16", "--no-progress", *extra]


def one_error_line(capsys, excinfo):
    assert excinfo.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# ---- item 3: say what is used -------------------------------------------------------------------------
def test_a_run_names_its_data_model_device_threads_and_output_then_where_its_files_are(tmp_path, data, capsys):
    out = tmp_path / "run"
    assert main(train_args(data, out)) == 0
    lines = capsys.readouterr().out.splitlines()
    data_line = next(line for line in lines if line.startswith("data:"))
    assert data_line == (f"data:   {os.path.abspath(data)} (image folders train/ and test/, a folder per class); "
                         f"train 32 images (--limit-train 32), test 16 images (--limit-test 16); "
                         f"3 classes: ant, bee, cat")
    n_params = sum(int(np.prod(p.shape)) for p in mr.models.resnet20(num_classes=3).parameters())
    threads = parallel.get_num_threads()
    model_line = lines[lines.index(data_line) + 1]
    assert model_line == (f"model:  resnet20, {n_params:,} parameters, on cpu, {threads} "
                          f"thread{'s' if threads != 1 else ''}")
    assert lines[lines.index(data_line) + 2] == f"output: {os.path.abspath(out)}"
    assert lines.index(data_line) < min(i for i, line in enumerate(lines) if line.startswith("epoch 1/1"))
    last = lines[-1]
    assert last.startswith(f"saved in {out}: ")
    for name in ("best.safetensors", "last.safetensors", "metrics.csv", "metrics.jsonl", "curves.png",
                 "confusion_matrix.png", "final_eval.json"):
        assert name in last and (out / name).is_file(), name


def test_the_model_help_lists_the_model_names(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    start = text.index("--model NAME the network")
    for name in mr.models.names():
        assert name in text[start:start + 400], name


# ---- item 6: paths ------------------------------------------------------------------------------------
def test_out_that_is_a_file_is_said_so(tmp_path, data, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("mine\n")
    for out in (f, f / "run"):
        with pytest.raises(SystemExit) as exc:
            main(train_args(data, out))
        err = one_error_line(capsys, exc)
        assert "is a file, not a folder" in err and "--out" in err and "Errno" not in err, err
    assert f.read_text() == "mine\n" and sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_eval_of_a_run_folder_evaluates_its_best_checkpoint_and_says_so(run, data, capsys, tmp_path):
    assert main(["eval", "--checkpoint", str(run), "--data", data, "--limit-test", "16", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{run} is a run folder: evaluating its best.safetensors" in out
    assert f"evaluating {run / 'best.safetensors'}" in out
    assert "data:   " in out and "test 16 images" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--checkpoint", str(empty), "--data", data])
    err = one_error_line(capsys, exc)
    assert "without best.safetensors or last.safetensors" in err


def wrong_files(folder, run):
    """(path, words the error must hold): files that are not checkpoints."""
    pkl = folder / "model.pkl"
    pkl.write_bytes(pickle.dumps({"weights": [1, 2, 3]}, protocol=4))
    pt = folder / "model.pt"
    with zipfile.ZipFile(pt, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    js = folder / "final.json"
    js.write_text('{"accuracy": 0.5}\n')
    return [(run / "metrics.csv", "is a CSV file (it starts with 'epoch,lr,train_loss"),
            (pkl, "is a pickle"), (pt, "is a zip archive"), (run / "curves.png", "is a PNG image"),
            (js, "is a JSON file")]


def test_a_csv_or_pickle_given_as_checkpoint_is_named_as_what_it_is(run, data, capsys, tmp_path):
    for path, words in wrong_files(tmp_path, run):
        with pytest.raises(SystemExit) as exc:
            main(["eval", "--checkpoint", str(path), "--data", data])
        err = one_error_line(capsys, exc)
        assert words in err and "header claims" not in err, (path, err)
        with pytest.raises(SystemExit) as exc:  # the same words from --init-from
            main(train_args(data, tmp_path / "ft", "--init-from", str(path)))
        err = one_error_line(capsys, exc)
        assert words in err, (path, err)
    assert not (tmp_path / "ft").exists()


def test_a_real_checkpoint_whose_header_length_starts_like_a_pickle_still_loads(tmp_path):
    from minires.checkpoint import load_weights
    from safetensors.numpy import save_file
    for n in range(1, 200):  # some name length gives a header of 0x?80 bytes: first byte 0x80
        path = tmp_path / "w.safetensors"
        save_file({"w" * n: np.zeros(2, np.float32)}, str(path))
        if path.read_bytes()[:1] == b"\x80":
            break
    else:
        pytest.fail("no header length with a 0x80 first byte")
    weights, meta = load_weights(path)
    assert list(weights) == ["w" * n] and meta is None


# ---- item 7: one run at a time in one --out ------------------------------------------------------------
def lock_holder(out):
    """A process that holds out's run lock (as a training run does) until it is killed."""
    code = ("import sys, time; from minires.train.run_dir import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_run_on_one_out_is_refused_and_a_killed_run_leaves_no_stale_lock(tmp_path, data, capsys):
    out = tmp_path / "run"
    holder = lock_holder(out)
    try:
        for extra in ([], ["--resume"], ["--overwrite"]):
            with pytest.raises(SystemExit) as exc:
                main(train_args(data, out, *extra))
            err = one_error_line(capsys, exc)
            assert f"--out {out} is in use by another minires train (process {holder.pid})" in err, err
        assert sorted(os.listdir(out)) == [".minires.lock"]  # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(train_args(data, out)) == 0  # the kernel dropped the killed process's lock


def test_a_training_run_holds_the_lock_against_another_process(tmp_path, data):
    out = tmp_path / "run"
    config = TrainConfig(data=data, out=str(out), epochs=1, batch_size=16, limit_train=16, limit_test=8,
                         model_kwargs={"widths": [4, 8, 8]}, progress=False)
    trainer = Trainer(config, log=lambda *a: None)  # started: it holds the lock from here to the end of fit()
    cmd = [sys.executable, "-m", "minires.cli", "train", "--resume", "--out", str(out), "--no-progress"]
    second = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and f"is in use by another minires train (process {os.getpid()})" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    trainer.fit()
    again = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr  # the finished run gave the lock back


# ---- bad input: one line, exit 2, nothing written ---------------------------------------------------
@pytest.mark.parametrize("extra, words", [
    (["--resume", "--model", "resnet32"], "--model resnet20 (given resnet32)"),
    (["--resume", "--batch-size", "8"], "--batch-size 16 (given 8)"),
    (["--resume", "--epochs", "3"], "onecycle schedule is laid out"),
    (["--resume", "--seed", "1", "--cutout", "4"], "--cutout 0 (given 4); --seed 0 (given 1)"),
    (["--model", "resnet7", "--resume"], "--model resnet20 (given resnet7)"),
    (["--epochs", "2"], "already holds a run"),
])
def test_bad_input_on_a_run_is_one_line_exit_2_and_writes_nothing(run, data, capsys, extra, words):
    before = {name: (run / name).read_bytes() for name in sorted(os.listdir(run))}
    with pytest.raises(SystemExit) as exc:
        main(train_args(data, run, *extra))
    err = one_error_line(capsys, exc)
    assert words in err, err
    assert {name: (run / name).read_bytes() for name in sorted(os.listdir(run))} == before


def test_the_console_command_refuses_a_changed_resume_without_a_traceback(run, data):
    before = (run / "last.safetensors").read_bytes()
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "minires.cli", *train_args(data, run, "--resume", "--lr", "0.05")],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and time.monotonic() - start < 120
    assert len(proc.stderr.strip().splitlines()) == 1 and "--lr default (0.2) (given 0.05)" in proc.stderr
    assert (run / "last.safetensors").read_bytes() == before


def test_eval_out_that_is_a_file_is_one_line(run, data, capsys, tmp_path):
    f = tmp_path / "report"
    f.write_text("keep\n")
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--checkpoint", str(run), "--data", data, "--out", str(f)])
    err = one_error_line(capsys, exc)
    assert "is a file, not a folder" in err and f.read_text() == "keep\n"


def test_data_that_is_a_file_is_named_as_a_file(tmp_path, capsys):
    from minires.cli import main
    f = tmp_path / "data_batch_1.bin"
    f.write_bytes(b"\0" * 10)
    for argv in (["train", "--data", str(f), "--out", str(tmp_path / "run")],
                 ["eval", "--checkpoint", str(f), "--data", str(f)]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert f"--data {f} is a file, not a folder" in err and f"--data {tmp_path}" in err, err
    assert not (tmp_path / "run").exists()
