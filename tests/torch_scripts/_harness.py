"""Tiny data in torchvision's layouts and a runner for the rewritten scripts (tests/train/test_torch_scripts.py)."""
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parents[1]
REWRITTEN = SCRIPTS / "rewritten"
CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PER_BATCH, N_TEST = 8, 20  # 5 train batches of 8 images, 20 test images
FOLDER_CLASSES, FOLDER_TRAIN, FOLDER_VAL = ("cat", "dog", "ship"), 4, 2  # images per class
FLOAT = r"[-+]?\d+\.\d+"


# ---- tiny data in torchvision's layouts --------------------------------------------------------------------

def write_cifar(root, seed=0):
    """root/cifar-10-batches-py as the official python batches read them: str keys (Python 2 strings under
    torchvision's latin1 decoding), 'data' uint8 (N, 3072) as R, G, B planes, 'labels' a list of ints."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    labels = {}
    for name, n in [(f"data_batch_{i}", PER_BATCH) for i in range(1, 6)] + [("test_batch", N_TEST)]:
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, n)
        labels[name] = y
        batch = {"batch_label": name, "labels": [int(v) for v in y], "data": x.reshape(n, 3072),
                 "filenames": [f"{name}_{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=4))
    meta = {"label_names": list(CLASSES), "num_cases_per_batch": PER_BATCH, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=4))
    return labels


def write_image_folder(root, seed=0):
    """root/{train,val}/<class>/*.png, 40x40 RGB (so Resize/CenterCrop/RandomResizedCrop have work to do)."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for split, n in (("train", FOLDER_TRAIN), ("val", FOLDER_VAL)):
        for c in FOLDER_CLASSES:
            (Path(root) / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(Path(root) / split / c / f"{i}.png")


def snapshot(folder):
    """{relative path: (size, mtime_ns)} of every file under folder."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def launch(name, args, cwd, env=None, timeout=180):
    """Run tests/torch_scripts/rewritten/<name> in a subprocess with cwd -> CompletedProcess (text)."""
    path = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), **(env or {}))
    return subprocess.run([sys.executable, str(REWRITTEN / name), *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_script(name, args, cwd, env=None, timeout=180):
    """launch(), and the script's stdout; the test fails with its output on a non-zero exit."""
    proc = launch(name, args, cwd, env, timeout)
    if proc.returncode != 0:
        pytest.fail(f"{name} {' '.join(map(str, args))} exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
                    f"\n--- stderr\n{proc.stderr[-5000:]}", pytrace=False)
    return proc.stdout


def losses(out, pattern):
    """The float after `pattern` on every line that has it."""
    return [float(m) for m in re.findall(pattern + r"\s*(" + FLOAT + ")", out)]


def files_written(cwd):
    return sorted(str(p.relative_to(cwd)) for p in Path(cwd).rglob("*") if p.is_file())


def check_data_untouched(data):
    assert snapshot(data["cifar"].parent) == data["before"], "a script wrote into the data root"
