"""Data safety gaps not covered by the reader/download/checkpoint tests: metadata files, empty batches, pickled checkpoints.

Covered elsewhere: planted malicious pickles in data batches (test_data_readers), tar members with
absolute paths, '..' and links out of the target (test_download), no pickle in checkpoints and
truncated/corrupted checkpoints naming the file (test_checkpoint).
"""
import os
import pickle

import pytest

from minires.data import CIFAR10

from tiny_cifar import make_arrays, write_binary_batches, write_python_batches


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("damage", ["truncated", "empty", "not_a_dict"])
def test_corrupted_python_meta_names_the_file(tmp_path, damage):
    folder = write_python_batches(tmp_path / "cifar-10-batches-py", make_arrays())
    meta = folder / "batches.meta"
    blob = {"truncated": meta.read_bytes()[:30], "empty": b"", "not_a_dict": pickle.dumps([1, 2], protocol=2)}[damage]
    meta.write_bytes(blob)
    with pytest.raises(ValueError, match="batches.meta"):
        CIFAR10(tmp_path, train=False)


def test_binary_meta_that_is_not_text_names_the_file(tmp_path):
    folder = write_binary_batches(tmp_path / "cifar-10-batches-bin", make_arrays())
    (folder / "batches.meta.txt").write_bytes(b"\xff\xfe\x00air\x80plane\n")
    with pytest.raises(ValueError, match=r"batches.meta.txt is corrupted: not UTF-8"):
        CIFAR10(tmp_path, train=False)


@pytest.mark.parametrize("fmt", ["py", "bin"])
def test_empty_batch_file_names_the_file(tmp_path, fmt):
    if fmt == "py":
        folder = write_python_batches(tmp_path / "cifar-10-batches-py", make_arrays())
        (folder / "data_batch_4").write_bytes(b"")
    else:
        folder = write_binary_batches(tmp_path / "cifar-10-batches-bin", make_arrays())
        (folder / "data_batch_4.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="data_batch_4"):
        CIFAR10(tmp_path, train=True)


def test_pickled_checkpoint_is_refused_and_nothing_runs(tmp_path):
    pytest.importorskip("safetensors")
    from minires.checkpoint import CheckpointError, load_checkpoint
    marker = tmp_path / "pwned"
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}, protocol=4))  # a torch.save-style pickle
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the planted file is live with the standard unpickler
    assert marker.exists()
