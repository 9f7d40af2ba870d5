"""The reading path: the files README's reader's guide names are few (at most 2,000 lines), closed
(none of them knows a fast path exists), and enough to follow a ResNet-20 training step from the
model's ops through `loss.backward()`, on the reference implementations.

How the count is made: every line of each named file, blank lines, comments and docstrings included
(`wc -l`). "Enough" is measured, not declared: a profiler records every function of minires that runs
during a forward and backward pass of ResNet-20 under MINIRES_IMPL=reference, and each file it meets
must be on the list, apart from the model code itself (minires/nn/, minires/models/: PyTorch-style
modules, which the guide points to separately).
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

import minires as mr
import minires.functional as F

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "minires"
LIMIT = 2000
MODEL_CODE = ("nn/", "models/")  # the model's own modules: read on their own, not the engine


def reading_path() -> list[str]:
    """The files of README's "The reading path" list, in order, relative to minires/."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("### The reading path")
    end = text.index("\n#", start + 1)
    files = re.findall(r"^\d+\. `minires/([\w/]+\.py)`", text[start:end], re.M)
    assert files, "README's reading path lists no files"
    return files


def lines(relative: str) -> int:
    return len((PACKAGE / relative).read_text(encoding="utf-8").splitlines())


def test_the_reading_path_is_at_most_2000_lines():
    files = reading_path()
    missing = [f for f in files if not (PACKAGE / f).is_file()]
    assert not missing, f"README's reading path names files that do not exist: {missing}"
    assert len(set(files)) == len(files), "a file is listed twice"
    counts = {f: lines(f) for f in files}
    total = sum(counts.values())
    assert total <= LIMIT, f"the reading path is {total} lines (limit {LIMIT}): {counts}"


def test_the_reading_path_knows_no_fast_path():
    # closed: no file on it imports the fast paths, the thread splits or the machine constants
    fast = {"kernels", "parallel", "tuning"}
    for f in reading_path():
        tree = ast.parse((PACKAGE / f).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [(node.module or "")] + [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                assert not fast & set(name.split(".")), f"{f} imports {name}: the reading path must not know it"


def files_run(step) -> set[str]:
    """minires's files (relative to minires/) whose functions run while step() runs, on the references."""
    hits = set()
    prefix = str(PACKAGE) + "/"

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(prefix):
            hits.add(frame.f_code.co_filename[len(prefix):])

    with mr.dispatch.use_impl("reference"):
        sys.setprofile(profile)
        try:
            step()
        finally:
            sys.setprofile(None)
    return hits


def test_the_reading_path_is_enough_to_follow_a_resnet20_step():
    net = mr.models.resnet20()
    x, y = mr.randn(2, 3, 32, 32), mr.tensor([3, 7])
    with mr.dispatch.use_impl("reference"):
        F.cross_entropy(net(x), y)  # warm: first-call work (imports, caches) is not the step
    run = files_run(lambda: F.cross_entropy(net(x), y).backward())
    run = {f for f in run if not f.startswith(MODEL_CODE)}
    assert "tensor.py" in run and "functional/conv.py" in run, run  # the profiler saw the engine
    unlisted = sorted(run - set(reading_path()))
    assert not unlisted, f"a ResNet-20 step runs code in files the reading path does not name: {unlisted}"


def test_an_op_off_the_path_is_seen():
    # the check can fail: GELU (functional/elementwise.py) is not on the path, and the profiler finds it
    run = files_run(lambda: F.gelu(mr.randn(3, requires_grad=True)).sum().backward())
    assert "functional/elementwise.py" in run - set(reading_path())


@pytest.mark.parametrize("relative", ["tensor.py", "dispatch.py"])
def test_the_core_of_the_path_is_listed(relative):
    assert relative in reading_path()


def test_the_reading_path_does_not_talk_about_fast_paths():
    # the guide says where they are; the reference files do not send the reader there
    for f in reading_path():
        text = (PACKAGE / f).read_text(encoding="utf-8")
        assert "minires.kernels" not in text and "minires/kernels" not in text, f
