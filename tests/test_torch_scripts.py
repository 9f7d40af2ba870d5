"""PyTorch scripts (tests/torch_scripts/: seed 001's loop, seed 003's and 004's ResNets, the CIFAR-10
tutorial, a CIFAR repository's train script) run end to end on minires after the import rewrite.

The committed copies in tests/torch_scripts/rewritten/ are what ../shared/tools/torch_rewrite.py makes of
the originals (checked byte for byte where the tool is present, and against the rule itself everywhere).
Each copy runs in a subprocess on a tiny CIFAR-10 in torchvision's layout (cifar-10-batches-py, pickled
python batches) or a tiny image folder, with its working directory in tmp_path; the test reads what it
prints and writes back and checks it against the data it made."""
import ast
import math
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minires as mr

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SCRIPTS = TESTS / "torch_scripts"
REWRITTEN = SCRIPTS / "rewritten"
TOOL = ROOT.parent / "shared" / "tools" / "torch_rewrite.py"
ORIGINALS = sorted(p.name for p in SCRIPTS.glob("*.py"))
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


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny CIFAR-10 and a tiny image folder shared by the scripts (each test checks nothing is written there)."""
    root = tmp_path_factory.mktemp("torch-script-data")
    labels = write_cifar(root / "cifar")
    write_image_folder(root / "images")
    return {"cifar": root / "cifar", "images": root / "images", "labels": labels, "before": snapshot(root)}


def run_script(name, args, cwd, env=None, timeout=180):
    """Run tests/torch_scripts/rewritten/<name> with cwd; return its stdout (the test fails on a non-zero exit)."""
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                    **(env or {}))
    proc = subprocess.run([sys.executable, str(REWRITTEN / name), *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}"
    return proc.stdout


def losses(out, pattern):
    """The float after `pattern` on every line that has it."""
    return [float(m) for m in re.findall(pattern + r"\s*(" + FLOAT + ")", out)]


def files_written(cwd):
    return sorted(str(p.relative_to(cwd)) for p in Path(cwd).rglob("*") if p.is_file())


def check_data_untouched(data):
    assert snapshot(data["cifar"].parent) == data["before"], "a script wrote into the data root"


# ---- the rewrite ------------------------------------------------------------------------------------------

def _mapped(module):
    """The rule: torchvision... -> minires.vision..., torch... -> minires..., anything else unchanged."""
    for old, new in (("torchvision", "minires.vision"), ("torch", "minires")):
        if module == old or module.startswith(old + "."):
            return new + module[len(old):]
    return module


def _bindings(stmts):
    """name -> what it refers to, for import statements: ('module', path) or ('attr', module, name)."""
    bound = {}
    for node in stmts:
        if isinstance(node, ast.Import):
            for a in node.names:
                bound[a.asname or a.name.split(".")[0]] = ("module", a.name if a.asname else a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                bound[a.asname or a.name] = ("attr", node.module, a.name)
    return bound


def _imported_modules(stmts):
    return {a.name for n in stmts if isinstance(n, ast.Import) for a in n.names} | {
        n.module for n in stmts if isinstance(n, ast.ImportFrom)}


@pytest.mark.parametrize("name", ORIGINALS)
def test_rewritten_copy_follows_the_rule(name):
    """Against the rule, not the tool: only import lines change; each binds the same names to the mapped modules."""
    original = [ln for ln in (SCRIPTS / name).read_text().splitlines() if ln.strip()]
    rewritten = [ln for ln in (REWRITTEN / name).read_text().splitlines() if ln.strip()]
    assert len(original) == len(rewritten)
    changed = 0
    for old, new in zip(original, rewritten):
        if old == new:
            assert not any(_mapped(m) != m for m in _imported_modules(ast.parse(old.strip()).body)
                           if old.lstrip().startswith(("import ", "from "))), old
            continue
        changed += 1
        old_body, new_body = ast.parse(old.strip()).body, ast.parse(new.strip()).body
        assert all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in old_body + new_body), (old, new)
        want = {k: (v[0], _mapped(v[1])) + v[2:] for k, v in _bindings(old_body).items()}
        assert _bindings(new_body) == want, (old, new)
        # every module the original imported (torch.nn of `import torch.nn`) is imported, mapped
        assert {_mapped(m) for m in _imported_modules(old_body)} <= _imported_modules(new_body), (old, new)
    assert changed > 0
    assert "torch" not in "".join(_imported_modules(ast.parse((REWRITTEN / name).read_text()).body)).replace(
        "minires", "")


@pytest.mark.skipif(not TOOL.is_file(), reason="../shared/tools/torch_rewrite.py is not beside this checkout")
@pytest.mark.parametrize("name", ORIGINALS)
def test_committed_copy_is_the_tools_output(name, tmp_path):
    subprocess.run([sys.executable, str(TOOL), str(SCRIPTS / name), str(tmp_path / name)], check=True)
    assert (tmp_path / name).read_text() == (REWRITTEN / name).read_text(), \
        f"tests/torch_scripts/rewritten/{name} drifted: rerun the tool on tests/torch_scripts/{name}"
