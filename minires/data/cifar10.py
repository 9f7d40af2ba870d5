"""The CIFAR-10 data set from the official python or binary batches, or from an image folder."""
from __future__ import annotations

import os

import numpy as np

from . import safe_pickle
from .download import default_data_dir, download_cifar10
from .image_folder import load_image_folder

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Per-channel mean/std in [0, 1] of the official training set (the usual published values).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

_PY_DIR, _BIN_DIR = "cifar-10-batches-py", "cifar-10-batches-bin"
_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
_TEST_BATCHES = ["test_batch"]
_RECORD = 1 + 3 * 32 * 32  # binary record: 1 label byte + R, G, B planes of 32x32


def _layout_of(folder):
    """("py"|"bin"|"folder", path) if `folder` holds one CIFAR-10 layout directly or as a child, else None."""
    if os.path.isdir(os.path.join(folder, _PY_DIR)):
        return "py", os.path.join(folder, _PY_DIR)
    if os.path.isfile(os.path.join(folder, "test_batch")) or os.path.isfile(os.path.join(folder, "data_batch_1")):
        return "py", folder
    if os.path.isdir(os.path.join(folder, _BIN_DIR)):
        return "bin", os.path.join(folder, _BIN_DIR)
    if os.path.isfile(os.path.join(folder, "test_batch.bin")) or os.path.isfile(os.path.join(folder, "data_batch_1.bin")):
        return "bin", folder
    if os.path.isdir(os.path.join(folder, "train")) or os.path.isdir(os.path.join(folder, "test")):
        return "folder", folder
    return None


def find_layout(root):
    """Detect the layout under `root`, looking one folder level down too (e.g. root/cifar10-jpeg/train)."""
    if not os.path.isdir(root):
        return None
    found = _layout_of(root)
    if found is None:
        for sub in sorted(e.path for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")):
            found = _layout_of(sub)
            if found is not None:
                break
    return found


def _as_str_keys(d, path):
    if not isinstance(d, dict):
        raise ValueError(f"CIFAR10: {path} does not hold a dict (got {type(d).__name__})")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def _check_labels(labels, n, path, num_classes):
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise ValueError(f"CIFAR10: {path}: expected {n} integer labels, got shape {labels.shape} dtype {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"CIFAR10: {path}: labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")
    return labels.astype(np.int64)


def read_python_batches(folder, train: bool):
    """Read the official pickled batches with the restricted unpickler -> (data NHWC uint8, targets, classes)."""
    classes = list(CLASSES)
    meta_path = os.path.join(folder, "batches.meta")
    if os.path.isfile(meta_path):
        meta = _as_str_keys(safe_pickle.load(meta_path), meta_path)
        names = meta.get("label_names")
        if not isinstance(names, list) or not names:
            raise ValueError(f"CIFAR10: {meta_path} has no 'label_names' list")
        classes = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    datas, targets = [], []
    for name in _TRAIN_BATCHES if train else _TEST_BATCHES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CIFAR10: missing batch file {path}")
        batch = _as_str_keys(safe_pickle.load(path), path)
        data = batch.get("data")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            desc = f"shape {data.shape} dtype {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
            raise ValueError(f"CIFAR10: {path}: 'data' must be a uint8 array of shape (N, 3072), got {desc}")
        labels = batch.get("labels", batch.get("fine_labels"))
        if labels is None:
            raise ValueError(f"CIFAR10: {path} has no 'labels'")
        targets.append(_check_labels(labels, len(data), path, len(classes)))
        datas.append(data.reshape(-1, 3, 32, 32))  # (N, C, H, W): rows are R, G, B planes
    data = np.ascontiguousarray(np.concatenate(datas).transpose(0, 2, 3, 1))  # (N, H, W, C)
    return data, np.concatenate(targets), classes


def read_binary_batches(folder, train: bool):
    """Read the official binary batches (1 label byte + 3072 pixel bytes per record)."""
    classes = list(CLASSES)
    meta_path = os.path.join(folder, "batches.meta.txt")
    if os.path.isfile(meta_path):
        try:
            with open(meta_path, encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
        except UnicodeDecodeError as exc:
            raise ValueError(f"CIFAR10: {meta_path} is corrupted: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        if names:
            classes = names
    datas, targets = [], []
    for name in _TRAIN_BATCHES if train else _TEST_BATCHES:
        path = os.path.join(folder, name + ".bin")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CIFAR10: missing batch file {path}")
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % _RECORD:
            raise ValueError(f"CIFAR10: {path} is truncated or corrupted: {raw.size} bytes is not a positive "
                             f"multiple of the {_RECORD}-byte record size")
        records = raw.reshape(-1, _RECORD)  # (N, 1 + 3*32*32)
        targets.append(_check_labels(records[:, 0], len(records), path, len(classes)))
        datas.append(records[:, 1:].reshape(-1, 3, 32, 32))  # (N, C, H, W)
    data = np.ascontiguousarray(np.concatenate(datas).transpose(0, 2, 3, 1))  # (N, H, W, C)
    return data, np.concatenate(targets), classes


class CIFAR10:
    """CIFAR-10: `.data` uint8 (N, 32, 32, 3), `.targets` int64 (N,), `.classes`; `ds[i]` -> (image, label).

    An image-folder copy is decoded once and cached outside it (see load_image_folder); cache=False
    decodes every time and writes nothing."""

    def __init__(self, root=None, train: bool = True, download: bool = False, cache: bool = True):
        root = os.path.abspath(os.path.expanduser(os.fspath(root if root is not None else default_data_dir())))
        layout = find_layout(root)
        if layout is None and download:
            download_cifar10(root)
            layout = find_layout(root)
        if layout is None:
            raise FileNotFoundError(
                f"CIFAR10: no CIFAR-10 data under {root}: expected {_PY_DIR}/ (official python batches), "
                f"{_BIN_DIR}/ (binary batches) or train/ and test/ image folders with one subfolder per class; "
                f"pass download=True (or --data DIR) to fetch or point at it")
        self.root, self.train = root, bool(train)
        self.layout, self.path = layout
        if self.layout == "py":
            self.data, self.targets, self.classes = read_python_batches(self.path, self.train)
        elif self.layout == "bin":
            self.data, self.targets, self.classes = read_binary_batches(self.path, self.train)
        else:
            self.data, self.targets, self.classes = load_image_folder(self.path, "train" if self.train else "test",
                                                                      use_cache=cache)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index):
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"CIFAR10: index must be an integer, got {type(index).__name__}")
        return self.data[index], int(self.targets[index])

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"CIFAR10(split={split}, n={len(self)}, layout={self.layout}, path={self.path!r})"
