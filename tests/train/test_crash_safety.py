"""Crash safety: `minires train` killed with SIGKILL at random moments and resumed ends bitwise where a straight run does."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("safetensors")

from minires.checkpoint import load_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECORD = 1 + 3 * 32 * 32


def write_binary_cifar(folder, n_per_batch=8, n_test=16, seed=0):
    """cifar-10-batches-bin/ with five tiny training batches and a test batch of random images."""
    rng = np.random.default_rng(seed)
    d = os.path.join(folder, "cifar-10-batches-bin")
    os.makedirs(d)
    for name, n in [(f"data_batch_{i}", n_per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        records = np.empty((n, RECORD), dtype=np.uint8)  # 1 label byte + R, G, B planes
        records[:, 0] = rng.integers(0, 10, n)
        records[:, 1:] = rng.integers(0, 256, (n, RECORD - 1))
        records.tofile(os.path.join(d, name + ".bin"))
    return str(folder)


def train_cmd(data, out):
    return [sys.executable, "-m", "minires.cli", "train", "--model", "resnet20", "--data", data, "--out", out,
            "--epochs", "4", "--batch-size", "16", "--limit-train", "32", "--limit-test", "16",
            "--eval-batch-size", "16", "--seed", "7", "--no-progress", "--resume"]


ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=ROOT,
           PYTHONUNBUFFERED="1")


def run(cmd, after_epochs=None, delay=0.0, timeout=120):
    """Run cmd; with after_epochs, SIGKILL it `delay` s after it has logged that many more finished epochs.

    Waiting for the run's own "epoch k/E" lines (printed after each checkpoint) rather than for a
    fixed time keeps the kills landing mid-run however loaded the machine is. Returns
    (killed, returncode, output).
    """
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: [lines.append(line) for line in proc.stdout], daemon=True)
    reader.start()
    killed, start = False, time.monotonic()
    try:
        if after_epochs is not None:
            while proc.poll() is None and sum(line.startswith("epoch ") for line in lines) < after_epochs:
                time.sleep(0.02)
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed = True
        proc.wait(timeout=max(1.0, timeout - (time.monotonic() - start)))
        reader.join(timeout=10)
        return killed, proc.returncode, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def checkpoints_load(out_dir):
    """Every *.safetensors in out_dir loads (CRC-checked); returns {name: epoch}."""
    epochs = {}
    for name in sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []:
        if name.endswith(".safetensors"):
            epochs[name] = load_checkpoint(os.path.join(out_dir, name))["epoch"]
    return epochs


def final_weights(out_dir, name="last.safetensors"):
    return load_checkpoint(os.path.join(out_dir, name))["model"]


def test_sigkill_at_random_moments_then_resume_is_bitwise_equal(tmp_path):
    data = write_binary_cifar(tmp_path / "data")
    straight = str(tmp_path / "straight")
    t0 = time.perf_counter()
    killed, code, log = run(train_cmd(data, straight))
    duration = time.perf_counter() - t0
    assert not killed and code == 0, log
    assert "starting a fresh run" in log  # --resume with no checkpoint yet is a fresh start

    crashed = str(tmp_path / "crashed")
    rng = np.random.default_rng(2024)
    epoch_s = duration / 5  # start-up costs about one epoch here
    kills, seen_epochs = 0, []
    for attempt in range(8):
        # Seeded moments: the first during start-up or the first epoch (no checkpoint yet), then
        # anywhere in the epoch after the next checkpoint (training, evaluation or saving).
        after, delay = (0, rng.uniform(0.1, 1.0) * epoch_s) if attempt == 0 else (1, rng.uniform(0.0, 1.0) * epoch_s)
        killed, code, log = run(train_cmd(data, crashed), after, delay)
        epochs = checkpoints_load(crashed)  # whatever the moment, what is on disk loads
        seen_epochs.append(epochs.get("last.safetensors", 0))
        if not killed:
            break
        assert code == -signal.SIGKILL
        kills += 1
        if kills == 5:  # enough crashes: let the next run finish
            killed, code, log = run(train_cmd(data, crashed))
            break
    assert not killed and code == 0, log
    assert "resumed" in log, log
    assert kills >= 3, f"only {kills} kills landed (delays too long for a {duration:.1f} s run)"
    assert seen_epochs == sorted(seen_epochs), seen_epochs  # progress is never lost once saved
    assert max(seen_epochs) >= 1, seen_epochs  # some kills hit a run that had resumed from a checkpoint
    assert checkpoints_load(crashed)["last.safetensors"] == 4

    for name in ("last.safetensors", "best.safetensors"):
        a, b = final_weights(straight, name), final_weights(crashed, name)
        assert list(a) == list(b)
        for k in a:
            assert np.array_equal(a[k], b[k]), (name, k)
    strip = lambda rows: [{k: v for k, v in r.items() if "time" not in k and "per_s" not in k} for r in rows]
    rows = lambda d: [json.loads(line) for line in open(os.path.join(d, "metrics.jsonl"))]
    assert strip(rows(straight)) == strip(rows(crashed))
    assert os.path.isfile(os.path.join(crashed, "final_eval.json"))
    assert not [f for f in os.listdir(crashed) if f.endswith(".tmp")]  # interrupted writes are cleaned up


def test_stale_temp_files_of_interrupted_writes_are_removed(tmp_path):
    from minires.train.trainer import _remove_stale_temp_files
    for name in (".last.safetensors.ab12_x.tmp", ".metrics.csv.q9.tmp", ".other.tmp", "notes.tmp", "last.safetensors"):
        (tmp_path / name).write_bytes(b"partial")
    logs = []
    _remove_stale_temp_files(str(tmp_path), logs.append)
    assert sorted(os.listdir(tmp_path)) == [".other.tmp", "last.safetensors", "notes.tmp"]
    assert len(logs) == 2
