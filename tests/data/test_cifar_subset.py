"""tools/cifar_subset.py: a class-balanced subset in the official binary layout, read back by CIFAR10."""
import os

import numpy as np
import pytest

from minires.data import CIFAR10
from tiny_cifar import write_python_batches


@pytest.fixture
def source(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIRES_DATA", str(tmp_path / "home"))
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), np.arange(20) % 10  # two per class
    test = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8), np.array([4, 3, 2, 1, 0])
    write_python_batches(tmp_path / "src", {"train": train, "test": test})
    return tmp_path / "src", train, test


def test_subset_is_balanced_and_holds_source_images_with_their_labels(source, tmp_path, tool_script):
    src, (xtr, ytr), (xte, yte) = source
    tool_script("cifar_subset").write_subset(src, tmp_path / "dest", n_train=10, n_test=5, seed=3)
    for split, (x, y), n in ((True, (xtr, ytr), 10), (False, (xte, yte), 5)):
        sub = CIFAR10(tmp_path / "dest", train=split)
        assert len(sub.data) == n and sub.data.dtype == np.uint8
        label_of = {img.tobytes(): int(lab) for img, lab in zip(x, y)}
        assert all(label_of[img.tobytes()] == lab for img, lab in zip(sub.data, sub.targets))
        assert len({img.tobytes() for img in sub.data}) == n  # drawn without replacement
        assert sorted(sub.targets.tolist()) == list(range(n))  # one image of each class here
    assert os.listdir(tmp_path / "dest" / "cifar-10-batches-bin") and not [
        f for f in os.listdir(tmp_path / "dest" / "cifar-10-batches-bin") if f.startswith(".")]  # no temp files


def test_asking_for_more_than_a_class_holds_is_a_clear_error(source, tmp_path, capsys, tool_script):
    src = source[0]
    with pytest.raises(ValueError, match="3 images of class 0, the source has 2"):
        tool_script("cifar_subset").write_subset(src, tmp_path / "dest", n_train=30, n_test=5)
    with pytest.raises(SystemExit) as e:
        tool_script("cifar_subset").main([str(src), str(tmp_path / "dest"), "--train", "3"])
    assert e.value.code == 2 and "at least 5 training" in capsys.readouterr().err


def test_pick_limit_writes_exactly_what_limit_train_keeps(source, tmp_path, tool_script):
    from minires.train.datasets import load_datasets
    src = source[0]
    tool_script("cifar_subset").write_subset(src, tmp_path / "dest", n_train=12, n_test=5, seed=2, pick="limit")
    train, test = load_datasets(str(src), 12, 5, seed=2)
    for split, want in ((True, train), (False, test)):
        got = CIFAR10(tmp_path / "dest", train=split)
        np.testing.assert_array_equal(got.data, want.data)
        np.testing.assert_array_equal(got.targets, want.targets)
