"""minires.vision.datasets on tiny files made here: CIFAR10's layouts, checksums, download rules, ImageFolder."""
import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import warnings

import numpy as np
import pytest

import minires.data.download as download
import minires.vision.datasets as datasets
import minires.vision.transforms as T

Image = pytest.importorskip("PIL.Image")

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
N = 3  # images per batch file


def batch(seed):
    """(rows (N, 3072) uint8 as the official files store them, labels)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (N, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, N)]


def as_images(rows):
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # R, G, B planes -> (N, H, W, C)


def write_python_batches(folder):
    """The official pickled layout (bytes keys, protocol 2), 5 train batches and the test batch."""
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        rows, labels = batch(seed)
        (folder / name).write_bytes(pickle.dumps({b"data": rows, b"labels": labels}, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in CLASSES]}, protocol=2))


def listing(root):
    return sorted((os.path.relpath(os.path.join(d, f), root), os.path.getsize(os.path.join(d, f)))
                  for d, _, files in os.walk(root) for f in files)


@pytest.fixture
def py_root(tmp_path):
    root = tmp_path / "data"
    write_python_batches(root / "cifar-10-batches-py")
    return root


def test_cifar10_python_batches_as_torchvision(py_root):
    ds = datasets.CIFAR10(str(py_root), train=True)
    rows = np.concatenate([batch(s)[0] for s in range(5)])
    labels = sum((batch(s)[1] for s in range(5)), [])
    assert len(ds) == 5 * N and ds.data.dtype == np.uint8 and ds.data.shape == (5 * N, 32, 32, 3)
    assert np.array_equal(ds.data, as_images(rows))
    assert ds.targets == labels and all(type(t) is int for t in ds.targets)
    assert ds.classes == CLASSES and ds.class_to_idx["cat"] == 3
    img, target = ds[4]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (32, 32)
    assert np.array_equal(np.asarray(img), as_images(rows)[4]) and target == labels[4]
    test = datasets.CIFAR10(py_root, train=False, transform=T.ToTensor(), target_transform=lambda y: y + 100)
    x, y = test[0]
    assert x.shape == (3, 32, 32) and y == batch(5)[1][0] + 100
    assert "Number of datapoints: 3" in repr(test) and "Split: Test" in repr(test)


def test_cifar10_download_with_a_copy_warns_on_checksums_and_writes_nothing(py_root, monkeypatch):
    before = listing(py_root)
    with pytest.warns(UserWarning, match="does not match the official checksums") as record:
        datasets.CIFAR10(py_root, train=True, download=True)
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert "data_batch_1" in str(record[0].message) and str(py_root) in str(record[0].message)
    # with the files' own checksums as the official ones, the same copy passes silently
    folder = py_root / "cifar-10-batches-py"
    md5s = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    monkeypatch.setattr(datasets, "CIFAR10_FILE_MD5", md5s)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        datasets.CIFAR10(py_root, train=False, download=True)
        datasets.CIFAR10(py_root, train=True, download=False)
    assert listing(py_root) == before


def test_cifar10_binary_batches_cannot_be_verified(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for seed, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        rows, labels = batch(seed)
        records = np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None], rows], axis=1)  # (N, 1 + 3072)
        (folder / f"{name}.bin").write_bytes(records.tobytes())
    before = listing(tmp_path)
    with pytest.warns(UserWarning, match="cannot be verified"):
        ds = datasets.CIFAR10(tmp_path, train=False, download=True)
    assert np.array_equal(ds.data, as_images(batch(5)[0])) and ds.targets == batch(5)[1]
    assert listing(tmp_path) == before


def test_cifar10_image_folders_cache_outside_the_data(tmp_path, monkeypatch):
    root, home = tmp_path / "jpeg", tmp_path / "home"
    monkeypatch.setenv("MINIRES_DATA", str(home))
    pixels = {}
    for split in ("train", "test"):
        for k, cls in enumerate(["cat", "dog"]):
            (root / split / cls).mkdir(parents=True)
            img = np.full((32, 32, 3), 40 * k + (split == "test"), dtype=np.uint8)
            img[0, :, 0] = np.arange(32)
            Image.fromarray(img).save(root / split / cls / "0001.png")
            pixels[split, cls] = img
    before = listing(root)
    ds = datasets.CIFAR10(root, train=True)
    again = datasets.CIFAR10(root, train=True)  # served from the cache under $MINIRES_DATA
    assert ds.classes == ["cat", "dog"] and ds.targets == [0, 1] == again.targets
    assert np.array_equal(ds.data[1], pixels["train", "dog"]) and np.array_equal(again.data, ds.data)
    assert np.array_equal(np.asarray(datasets.CIFAR10(root, train=False)[0][0]), pixels["test", "cat"])
    assert listing(root) == before and any(home.rglob("*.npz"))


def test_cifar10_without_a_copy_says_where_to_put_it(tmp_path):
    root = tmp_path / "nothing"
    with pytest.raises(RuntimeError) as info:
        datasets.CIFAR10(root)
    msg = str(info.value)
    assert "\n" not in msg and str(root) in msg and "cifar-10-python.tar.gz" in msg and "extract it into" in msg
    assert not root.exists()


def test_cifar10_download_offline_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")
    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    root = tmp_path / "new"
    with pytest.raises(RuntimeError) as info:
        datasets.CIFAR10(root, download=True)
    msg = str(info.value)
    assert "\n" not in msg and "no route to host" in msg and "offline" in msg
    assert f"extract it into {root}" in msg and "cifar-10-batches-py" in msg
    assert listing(root) == []


def test_cifar10_download_refuses_a_folder_with_other_files(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(RuntimeError, match="is not empty; download=True writes only into an empty or new folder"):
        datasets.CIFAR10(tmp_path, download=True)
    assert listing(tmp_path) == [("mine.txt", 4)]


def test_cifar10_download_into_an_empty_folder(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_python_batches(src / "cifar-10-batches-py")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    archive = buf.getvalue()

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(archive))}

    monkeypatch.setattr(download.urllib.request, "urlopen", lambda *a, **k: Response(archive))
    monkeypatch.setattr(download, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    root = tmp_path / "empty"
    root.mkdir()
    ds = datasets.CIFAR10(root, train=False, download=True)
    assert np.array_equal(ds.data, as_images(batch(5)[0]))
    assert (root / "cifar-10-python.tar.gz").is_file() and (root / "cifar-10-batches-py" / "test_batch").is_file()


# ---- ImageFolder -------------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "imgs"
    rng = np.random.default_rng(1)
    files = {"cat/b.png": "RGB", "cat/a.PNG": "L", "dog/sub/c.png": "RGB", "dog/x.bmp": "RGB"}
    for name, mode in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shape = (5, 7, 3) if mode == "RGB" else (5, 7)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    return root


def test_image_folder_as_torchvision(folder):
    ds = datasets.ImageFolder(str(folder))
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    # torchvision's order: by class, then by folder (a folder's own files before its subfolders'), then by name
    expect = [(folder / "cat/a.PNG", 0), (folder / "cat/b.png", 0), (folder / "dog/x.bmp", 1),
              (folder / "dog/sub/c.png", 1)]
    assert ds.samples == [(str(p), c) for p, c in expect] and ds.targets == [0, 0, 1, 1] and ds.imgs is ds.samples
    img, target = ds[0]  # a grayscale file comes back RGB
    assert img.mode == "RGB" and target == 0
    gray = np.asarray(Image.open(folder / "cat/a.PNG"))
    assert np.array_equal(np.asarray(img), np.stack([gray] * 3, axis=-1))
    x, y = datasets.ImageFolder(folder, transform=T.ToTensor(), target_transform=str)[2]
    assert x.shape == (3, 5, 7) and y == "1"
    only_png = datasets.ImageFolder(folder, is_valid_file=lambda p: p.endswith(".png"))
    assert [os.path.basename(p) for p, _ in only_png.samples] == ["b.png", "c.png"]


def test_image_folder_errors(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="found no class folder in .*empty"):
        (tmp_path / "empty").mkdir()
        datasets.ImageFolder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        datasets.ImageFolder(tmp_path / "missing")
    (folder / "fish").mkdir()
    with pytest.raises(FileNotFoundError, match="found no valid file .* class folder\\(s\\) fish"):
        datasets.ImageFolder(folder)
    assert datasets.ImageFolder(folder, allow_empty=True).classes == ["cat", "dog", "fish"]


def test_dataset_folder_with_a_loader(tmp_path):
    for k, cls in enumerate(["a", "b"]):
        (tmp_path / cls).mkdir()
        np.save(tmp_path / cls / "x.npy", np.full(3, k))
    ds = datasets.DatasetFolder(tmp_path, loader=np.load, extensions=(".npy",))
    assert len(ds) == 2 and ds[1][0].tolist() == [1, 1, 1] and ds[1][1] == 1
    assert len(datasets.DatasetFolder(tmp_path, loader=np.load, extensions=".NPY")) == 2  # one str, any case
