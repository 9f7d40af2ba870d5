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
    """("py"|"bin"|"folder", path) if `folder` itself holds one CIFAR-10 layout, else None."""
    if os.path.isfile(os.path.join(folder, "test_batch")) or os.path.isfile(os.path.join(folder, "data_batch_1")):
        return "py", folder
    if os.path.isfile(os.path.join(folder, "test_batch.bin")) or os.path.isfile(os.path.join(folder, "data_batch_1.bin")):
        return "bin", folder
    if os.path.isdir(os.path.join(folder, "train")) or os.path.isdir(os.path.join(folder, "test")):
        return "folder", folder
    return None


def find_layout(root):
    """The layout in `root` itself or in the official archives' folders (root/cifar-10-batches-py,
    root/cifar-10-batches-bin), else None: other subfolders are never searched, so that a stray
    copy below (a 2-class test set, say) is never read in place of the one asked for."""
    if not os.path.isdir(root):
        return None
    for name, kind in ((_PY_DIR, "py"), (_BIN_DIR, "bin")):
        if os.path.isdir(os.path.join(root, name)):
            return kind, os.path.join(root, name)
    return _layout_of(root)


def nearby_layouts(root) -> tuple:
    """(why, folders): where a CIFAR-10 copy lies near a `root` that holds none, for the error message.

    why is "split" (root is a split or class folder of an image-folder copy: folders = [its top]),
    "below" (subfolders holding a copy), "archive" (an unextracted official tarball) or None."""
    root = os.path.abspath(root)
    for up in (1, 2):  # root = COPY/train, or COPY/train/<class>
        top = root
        for _ in range(up):
            top = os.path.dirname(top)
        split = root if up == 1 else os.path.dirname(root)
        if os.path.basename(split) in ("train", "test") and _layout_of(top) == ("folder", top):
            return "split", [top]
    if not os.path.isdir(root):
        return None, []
    subs = sorted(e.path for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    below = [s for s in subs if find_layout(s) is not None]
    if below:
        return "below", below
    archives = sorted(e.path for e in os.scandir(root) if e.is_file() and e.name.startswith("cifar-10-")
                      and e.name.endswith((".tar.gz", ".tgz", ".tar")))
    if archives:
        return "archive", archives
    return None, []


def missing_data_message(root, name: str, point, fetch: str = "") -> str:
    """Why `root` (called `name` in the message) holds no CIFAR-10 data and what to pass instead;
    point(folder) words "pass this folder" for the caller (`--data DIR` on the command line, `root=` in
    Python); `fetch` ends the message where no copy is near (how to download one)."""
    why, folders = nearby_layouts(root)
    if why == "split":
        base = os.path.basename(root)
        part = f"the {base} split" if base in ("train", "test") else "a class folder"
        return (f"{name} holds no CIFAR-10 data: it is {part} of the image-folder copy {folders[0]}; pass its "
                f"top folder, {point(folders[0])}")
    if not os.path.isdir(root):
        return f"{name} does not exist" + fetch
    text = (f"{name} holds no CIFAR-10 data: expected {_PY_DIR}/ (official python batches), {_BIN_DIR}/ (binary "
            f"batches) or train/ and test/ image folders with one subfolder per class, in the folder itself")
    if why == "below":
        more = f" (as do {len(folders) - 1} other subfolders)" if len(folders) > 1 else ""
        return text + f"; subfolders are not searched: {folders[0]} holds a copy{more}, pass {point(folders[0])} to use it"
    if why == "archive":
        return (text + f"; {os.path.basename(folders[0])} is there but not extracted: extract it "
                       f"(tar -xzf {folders[0]} -C {root}) and pass the folder again")
    return text + fetch


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
            raise FileNotFoundError("CIFAR10: " + missing_data_message(
                root, f"root {root!r}", lambda f: f"root={f!r}", "; or pass download=True to fetch the official copy"))
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
