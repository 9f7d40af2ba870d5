"""Tiny CIFAR-10 copies written into a test's folder: the official python and binary batches (from
arrays made here) and image folders of coloured PNGs."""
import os
import pickle
from pathlib import Path

import numpy as np

from minires.data import CLASSES


PER_BATCH, N_TEST = 4, 5


def make_arrays(seed=0):
    """Random train/test splits: (data uint8 (N, 32, 32, 3), labels int64 (N,))."""
    rng = np.random.default_rng(seed)
    def split(n):
        return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)
    return {"train": split(5 * PER_BATCH), "test": split(N_TEST)}


def _batches(arrays):
    """(file name, images, labels) per official batch."""
    x, y = arrays["train"]
    out = [(f"data_batch_{i + 1}", x[i * PER_BATCH:(i + 1) * PER_BATCH], y[i * PER_BATCH:(i + 1) * PER_BATCH])
           for i in range(5)]
    return out + [("test_batch",) + arrays["test"]]


def write_python_batches(folder, arrays, protocol=4):
    """The official structure: dicts with bytes keys, 'data' uint8 (N, 3072) as R, G, B planes, 'labels' list."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, x, y in _batches(arrays):
        rows = x.transpose(0, 3, 1, 2).reshape(len(x), 3072)  # (N, C*H*W), channel-major
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in y], b"data": rows,
                 b"filenames": [f"{i}.png".encode() for i in range(len(x))]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    meta = {b"label_names": [c.encode() for c in CLASSES], b"num_cases_per_batch": PER_BATCH, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return folder


def write_binary_batches(folder, arrays):
    """Records written byte by byte: 1 label byte, then the R plane, G plane, B plane (row-major 32x32)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, x, y in _batches(arrays):
        out = bytearray()
        for img, label in zip(x, y):
            out.append(int(label))
            for c in range(3):
                out += bytes(img[:, :, c].ravel().tolist())
        (folder / (name + ".bin")).write_bytes(bytes(out))
    (folder / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n\n")
    return folder


def write_image_folder(root, arrays, ext="png"):
    """root/<split>/<class>/NNNN.png, names sorted in the same order as the arrays within each class."""
    from PIL import Image
    for split, (x, y) in arrays.items():
        for c in CLASSES:
            (Path(root) / split / c).mkdir(parents=True, exist_ok=True)
        for i, (img, label) in enumerate(zip(x, y)):
            Image.fromarray(img).save(Path(root) / split / CLASSES[label] / f"{i:04d}.{ext}")
    return Path(root)


def make_image_folder(root, classes, n_train, n_test, seed=0):
    """32x32 PNGs in root/{train,test}/<class>/, each class a noisy shade of its own colour."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for k, cls in enumerate(classes):
            os.makedirs(os.path.join(root, split, cls))
            base = np.array([60 + 60 * (k % 3), 200 - 50 * (k % 4), 40 + 90 * (k % 2)], dtype=np.float64)
            for i in range(n):
                img = np.clip(base + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(os.path.join(root, split, cls, f"{i:03d}.png"))
    return str(root)
