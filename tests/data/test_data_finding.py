"""Where `--data DIR` (and CIFAR10(root)) look for CIFAR-10: in DIR itself and the official archives' folders,
never in other subfolders; a miss is one line that names the folder to pass instead, in the caller's words."""
import os
from pathlib import Path

import pytest

from minires.cli import main
from minires.data import CIFAR10, find_layout
from tiny_cifar import make_arrays, write_python_batches

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10-jpeg"


def make_folder_copy(root, classes=("a", "b")):
    """An image-folder layout: root/{train,test}/<class>/ (the files are never read by these tests)."""
    for split in ("train", "test"):
        for cls in classes:
            os.makedirs(os.path.join(root, split, cls))
            Path(root, split, cls, "0.png").write_bytes(b"not read")
    return Path(root)


def train_error(argv, capsys, tmp_path):
    """(exit code, stderr) of `minires train ARGV`, checking that it wrote nothing to its --out."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", str(out), "--epochs", "1", "--no-progress"] + argv)
    err = capsys.readouterr().err
    assert not out.exists()
    return exc.value.code, err


def snapshot(folder):
    return sorted((str(p), p.stat().st_mtime_ns) for p in Path(folder).rglob("*"))


def test_a_copy_in_an_arbitrary_subfolder_is_not_used_but_named(tmp_path, capsys):
    data = tmp_path / "data"
    make_folder_copy(data / "tiny")
    before = snapshot(data)
    assert find_layout(str(data)) is None
    code, err = train_error(["--data", str(data)], capsys, tmp_path)
    assert code == 2 and err.count("\n") == 1
    assert f"--data {data} holds no CIFAR-10 data" in err
    assert f"subfolders are not searched: {data / 'tiny'} holds a copy, pass --data {data / 'tiny'}" in err
    assert "download=True" not in err and "root=" not in err
    assert snapshot(data) == before  # nothing written into the user's folder


def test_a_split_or_class_folder_names_the_copy_to_pass(tmp_path, capsys):
    copy = make_folder_copy(tmp_path / "jpeg")
    for given, part in ((copy / "train", "the train split"), (copy / "test", "the test split"),
                        (copy / "train" / "b", "a class folder")):
        code, err = train_error(["--data", str(given)], capsys, tmp_path)
        assert code == 2 and err.count("\n") == 1
        assert f"--data {given} holds no CIFAR-10 data: it is {part} of the image-folder copy {copy}" in err
        assert f"pass its top folder, --data {copy} " in err


def test_the_official_archive_folders_are_found_in_the_folder_given(tmp_path):
    write_python_batches(tmp_path / "cifar-10-batches-py", make_arrays())
    assert find_layout(str(tmp_path)) == ("py", str(tmp_path / "cifar-10-batches-py"))
    assert find_layout(str(tmp_path / "cifar-10-batches-py")) == ("py", str(tmp_path / "cifar-10-batches-py"))
    assert find_layout(str(tmp_path / "elsewhere")) is None


def test_an_unextracted_archive_is_named(tmp_path, capsys):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not read")
    code, err = train_error(["--data", str(tmp_path)], capsys, tmp_path)
    assert code == 2 and "cifar-10-python.tar.gz is there but not extracted: extract it (tar -xzf" in err


def test_the_python_api_speaks_python(tmp_path):
    make_folder_copy(tmp_path / "data" / "tiny")
    with pytest.raises(FileNotFoundError) as exc:
        CIFAR10(tmp_path / "data")
    msg = str(exc.value)
    assert msg.startswith(f"CIFAR10: root {str(tmp_path / 'data')!r} holds no CIFAR-10 data")
    assert f"pass root={str(tmp_path / 'data' / 'tiny')!r} to use it" in msg and "--data" not in msg
    with pytest.raises(FileNotFoundError, match=r"it is the train split .*; pass its top folder, root="):
        CIFAR10(tmp_path / "data" / "tiny" / "train")


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared CIFAR-10 JPEG copy is not on this machine")
def test_the_shared_jpeg_copy_split_folder_suggests_its_parent(tmp_path, capsys):
    code, err = train_error(["--data", str(SHARED / "train")], capsys, tmp_path)
    assert code == 2 and f"pass its top folder, --data {SHARED} " in err
