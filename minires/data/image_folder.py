"""Read a `split/<class>/*.png|jpg` image folder into uint8 arrays, with a validated on-disk .npz cache."""
from __future__ import annotations

import hashlib
import io
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .download import default_data_dir

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_CACHE_VERSION = "minires-imagefolder-v1"
_STAT_STRIDE = 97  # stat every 97th file (plus each class's first and last) for the cache key


def list_image_folder(split_dir):
    """Return (classes, files, targets): sorted class folders, sorted image paths per class, int64 labels."""
    split_dir = os.fspath(split_dir)
    if not os.path.isdir(split_dir):
        raise FileNotFoundError(f"CIFAR10: image folder {split_dir} does not exist")
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise ValueError(f"CIFAR10: {split_dir} has no class subfolders (expected {split_dir}/<class>/*.png|jpg)")
    files, targets = [], []
    extensions = IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS)
    for label, cls in enumerate(classes):
        prefix = os.path.join(split_dir, cls, "")
        names = sorted(n for n in os.listdir(prefix) if n.endswith(extensions) and not n.startswith("."))
        files += [prefix + n for n in names]  # NOTE: 6x cheaper than os.path.join over 50k names
        targets += [label] * len(names)
    if not files:
        raise ValueError(f"CIFAR10: no .png/.jpg images under {split_dir}/<class>/")
    return classes, files, np.asarray(targets, dtype=np.int64)


def cache_key(split_dir, classes, files) -> str:
    """A digest that changes when files are added, removed, renamed or (for sampled files) rewritten."""
    # NOTE: a full os.stat of 50k files costs ~0.4 s here, more than loading the cache itself. The file list
    # plus each class folder's mtime (changed by any create/delete/rename inside it) catches structural
    # changes; size+mtime of a strided sample catches in-place rewrites of whole classes or many files.
    h = hashlib.sha256(_CACHE_VERSION.encode())
    h.update(os.path.realpath(split_dir).encode())
    for cls in classes:
        st = os.stat(os.path.join(split_dir, cls))
        h.update(f"|{cls}:{st.st_mtime_ns}".encode())
    h.update(f"|n={len(files)}".encode())
    for path in files:
        h.update(path.encode("utf-8", "surrogateescape") + b"\0")
    sample = sorted(set(range(0, len(files), _STAT_STRIDE)) | {len(files) - 1})
    for i in sample:
        st = os.stat(files[i])
        h.update(f"|{i}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _decode_chunk(paths):
    """Decode image files to a (n, 32, 32, 3) uint8 block; errors name the file."""
    from PIL import Image  # lazy: Pillow is optional
    out = np.empty((len(paths), 32, 32, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with open(path, "rb") as f:  # one read() beats Pillow's many small reads on a path
                raw = f.read()
            with Image.open(io.BytesIO(raw), formats=("JPEG", "PNG")) as im:
                if im.size != (32, 32):
                    raise ValueError(f"expected a 32x32 image, got {im.size[0]}x{im.size[1]}")
                arr = np.asarray(im.convert("RGB"))
        except Exception as exc:  # truncated / corrupted / not an image
            raise ValueError(f"CIFAR10: could not decode image {path}: {type(exc).__name__}: {exc}") from None
        out[i] = arr
    return out


def decode_images(files, workers: int = 1, chunk: int = 1000) -> np.ndarray:
    """Decode all files into one (N, 32, 32, 3) uint8 array, in chunks (on `workers` threads if > 1)."""
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise ImportError("CIFAR10: reading an image folder needs Pillow (pip install Pillow)") from None
    # NOTE: serial by default. For 32x32 files the per-image cost (~0.3 ms) is mostly Pillow's Python-level
    # open/convert, which holds the GIL: on the 2-core dev box 10k JPEGs took 3.2 s serial, 3.5 s on 2
    # threads, 4.6 s on 4. Processes would scale but must either fork a possibly threaded process or
    # re-import __main__ (spawn) -- too much risk for a one-off decode whose result is cached.
    chunks = [files[i:i + chunk] for i in range(0, len(files), chunk)]
    bar = _bar(len(files)) if len(files) >= 5000 else None
    out = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="minires-decode") if workers > 1 and len(chunks) > 1 else None
    try:
        blocks = pool.map(_decode_chunk, chunks) if pool is not None else map(_decode_chunk, chunks)
        for i, block in enumerate(blocks):
            out[i * chunk:i * chunk + len(block)] = block
            if bar is not None:
                bar.update(len(block))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if bar is not None:
            bar.close()
    return out


def _bar(total):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="decoding CIFAR-10 images", unit="img", file=sys.stderr, leave=False,
                disable=None)


def _cache_paths(root, split, split_dir):
    """(the cache file in the user's data dir, keyed by the data path; the one beside the data that
    versions before 0.2 wrote, read but never written: nothing is written into a user's data folder)."""
    tag = hashlib.sha1(os.path.realpath(split_dir).encode()).hexdigest()[:12]
    return (os.path.join(default_data_dir(), "cache", f"cifar10-{split}-{tag}.npz"),
            os.path.join(root, f"minires-cache-{split}.npz"))


def _read_cache(path, key):
    """(data, targets, classes) if `path` holds a cache for `key`, else None (a corrupt cache is a miss)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return z["data"], z["targets"], [str(c) for c in z["classes"]]
    except Exception:  # truncated zip, missing member, bad dtype...: rebuild it
        return None


def _writable(directory) -> bool:
    """False for a folder whose permission bits deny writing, even to root (who would bypass them)."""
    probe = directory
    while not os.path.isdir(probe):  # the nearest existing ancestor decides for folders still to create
        parent = os.path.dirname(probe)
        if parent == probe:
            return False
        probe = parent
    return os.access(probe, os.W_OK) and bool(os.stat(probe).st_mode & 0o222)


def _write_cache(path, key, data, targets, classes) -> bool:
    """Write the cache atomically (temp file, fsync, rename); False when the folder is not writable."""
    directory = os.path.dirname(path)
    tmp = None
    try:
        if not _writable(directory):
            return False
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=np.array(key), data=data, targets=targets, classes=np.array(classes))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        return False


def load_image_folder(root, split: str, use_cache: bool = True):
    """Decode `root/<split>/<class>/*` to (data uint8 (N, 32, 32, 3), targets int64 (N,), classes).

    The decoded arrays are cached under $MINIRES_DATA/cache (default ~/.cache/minires/cache), keyed by
    the folder's path and checked against its file list, sizes and times; use_cache=False neither
    reads nor writes a cache."""
    split_dir = os.path.join(root, split)
    classes, files, targets = list_image_folder(split_dir)
    if not use_cache:
        return decode_images(files), targets, classes
    key = cache_key(split_dir, classes, files)
    mine, legacy = _cache_paths(root, split, split_dir)
    for path in (mine, legacy):
        if os.path.isfile(path):
            hit = _read_cache(path, key)
            if hit is not None and len(hit[0]) == len(files):
                return hit
    data = decode_images(files)
    _write_cache(mine, key, data, targets, classes)  # an unwritable cache folder only costs the next decode
    return data, targets, classes


__all__ = ["load_image_folder", "list_image_folder", "decode_images", "cache_key", "IMAGE_EXTENSIONS"]
