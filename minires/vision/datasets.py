"""torchvision.datasets: CIFAR10, ImageFolder and DatasetFolder, items (PIL image, int label).

CIFAR10 reads every layout minires.data detects under root: torchvision's root/cifar-10-batches-py (the
official python batches), the binary batches, or train/ and test/ folders of images with one subfolder per
class. Nothing is written into root, except by download=True into an empty or missing folder.
"""
from __future__ import annotations

import os
import sys
import warnings

from .. import missing
from ..data import cifar10 as _cifar
from ..data.download import CIFAR10_MD5, CIFAR10_URL, download_cifar10, md5_of
from ..data.image_folder import load_image_folder
from ..utils.data import Dataset

# torchvision's per-file md5 of the official python batches (cifar-10-python.tar.gz, extracted).
CIFAR10_FILE_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
_ARCHIVE = "cifar-10-python.tar.gz"
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class VisionDataset(Dataset):
    """What torchvision's datasets share: root, transform, target_transform, a readable repr."""

    def __init__(self, root, transform=None, target_transform=None):
        if transform is not None and not callable(transform):
            raise TypeError(f"{type(self).__name__}: transform must be callable, got {type(transform).__name__}")
        if target_transform is not None and not callable(target_transform):
            raise TypeError(f"{type(self).__name__}: target_transform must be callable, "
                            f"got {type(target_transform).__name__}")
        self.root = os.path.expanduser(os.fspath(root)) if root is not None else None
        self.transform, self.target_transform = transform, target_transform

    def _apply(self, img, target):
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"Dataset {type(self).__name__}", f"    Number of datapoints: {len(self)}"]
        if self.root is not None:
            lines.append(f"    Root location: {self.root}")
        lines += [f"    {line}" for line in self.extra_repr().splitlines()]
        for name in ("transform", "target_transform"):
            if getattr(self, name) is not None:
                body = repr(getattr(self, name)).splitlines()
                lines.append(f"    {name}: {body[0]}")
                lines += [f"    {line}" for line in body[1:]]
        return "\n".join(lines)


def _how_to_place(root: str) -> str:
    return (f"download {_ARCHIVE} ({CIFAR10_URL}) and extract it into {root} (giving "
            f"{os.path.join(root, _cifar._PY_DIR)}/data_batch_1...), or place the binary batches or train/ and "
            f"test/ class folders of images there")


def _may_download_into(root: str) -> bool:
    """download=True writes only into a missing folder, an empty one, or one holding just the archive."""
    return not os.path.exists(root) or (os.path.isdir(root) and set(os.listdir(root)) <= {_ARCHIVE})


def _verify(layout: str, path: str, train: bool) -> None:
    """Warn (one line) when a copy in the python layout differs from the official files, or cannot be checked."""
    if layout != "py":
        kind = "binary batches" if layout == "bin" else "image folders"
        warnings.warn(f"CIFAR10: using the copy in {path} ({kind}); only the python batches have published "
                      f"checksums, so it cannot be verified", stacklevel=3)
        return
    names = (_cifar._TRAIN_BATCHES if train else _cifar._TEST_BATCHES) + ["batches.meta"]
    bad = [n for n in names if os.path.isfile(os.path.join(path, n))
           and md5_of(os.path.join(path, n)) != CIFAR10_FILE_MD5[n]]
    if bad:
        warnings.warn(f"CIFAR10: the copy in {path} does not match the official checksums ({', '.join(bad)} "
                      f"{'differs' if len(bad) == 1 else 'differ'}); using it as it is", stacklevel=3)


class CIFAR10(VisionDataset):
    """CIFAR-10 as torchvision's: ds[i] -> (PIL RGB image, int); .data uint8 (N, 32, 32, 3), .targets list."""

    base_folder = _cifar._PY_DIR
    url = CIFAR10_URL
    filename = _ARCHIVE
    tgz_md5 = CIFAR10_MD5

    def __init__(self, root, train: bool = True, transform=None, target_transform=None, download: bool = False):
        super().__init__(root, transform, target_transform)
        root = os.path.abspath(self.root)
        self.train = bool(train)
        layout = _cifar.find_layout(root)
        if layout is not None and download:
            _verify(layout[0], layout[1], self.train)
        elif layout is None and download:
            if not _may_download_into(root):
                raise RuntimeError(f"CIFAR10: {root} holds no CIFAR-10 copy and is not empty; download=True "
                                   f"writes only into an empty or new folder: pass one, or {_how_to_place(root)}")
            try:
                download_cifar10(root)
            except RuntimeError as exc:
                first = str(exc).split(". ")[0].replace("download_url: ", "")
                raise RuntimeError(f"CIFAR10: download into {root} failed: {first}; if this machine is offline, "
                                   f"{_how_to_place(root)}") from None
            layout = _cifar.find_layout(root)
        if layout is None:
            raise RuntimeError(f"CIFAR10: no CIFAR-10 data in {root}: {_how_to_place(root)}, or pass download=True")
        self.layout, self.path = layout
        if self.layout == "py":
            data, targets, classes = _cifar.read_python_batches(self.path, self.train)
        elif self.layout == "bin":
            data, targets, classes = _cifar.read_binary_batches(self.path, self.train)
        else:  # decoded once, cached under $MINIRES_DATA (never beside the data)
            data, targets, classes = load_image_folder(self.path, "train" if self.train else "test")
        self.data = data  # (N, 32, 32, 3) uint8
        self.targets = targets.tolist()  # int64 arrays from every reader: Python ints
        self.classes = list(classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        from PIL import Image
        return self._apply(Image.fromarray(self.data[index]), self.targets[index])

    def extra_repr(self) -> str:
        return f"Split: {'Train' if self.train else 'Test'}"


# ---- image folders ------------------------------------------------------------------------------

def has_file_allowed_extension(filename: str, extensions) -> bool:
    """Whether filename ends with one of extensions (a str or a sequence), ignoring case."""
    extensions = (extensions,) if isinstance(extensions, str) else extensions
    return filename.lower().endswith(tuple(e.lower() for e in extensions))


def is_image_file(filename: str) -> bool:
    return has_file_allowed_extension(filename, IMG_EXTENSIONS)


def find_classes(directory):
    """(sorted class folder names, {name: index}); a folder without class subfolders is an error."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"ImageFolder: {directory} is not a folder")
    classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"ImageFolder: found no class folder in {directory}; expected "
                                f"{directory}/<class>/<image files>, one subfolder per class")
    return classes, {c: i for i, c in enumerate(classes)}


def make_dataset(directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty: bool = False):
    """[(path, class index)], sorted by class then by path, walking each class folder (links followed)."""
    if (extensions is None) == (is_valid_file is None):
        raise ValueError("make_dataset: pass exactly one of extensions and is_valid_file")
    if is_valid_file is None:
        def is_valid_file(path):
            return has_file_allowed_extension(path, extensions)
    samples, empty = [], []
    for cls in sorted(class_to_idx):
        folder = os.path.join(directory, cls)
        found = 0
        for dirpath, _, files in sorted(os.walk(folder, followlinks=True)):
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                if is_valid_file(path):
                    samples.append((path, class_to_idx[cls]))
                    found += 1
        if not found:
            empty.append(cls)
    if empty and not allow_empty:
        which = f" with extensions {extensions}" if extensions is not None else ""
        raise FileNotFoundError(f"ImageFolder: found no valid file{which} in the class folder(s) "
                                f"{', '.join(empty)} of {directory}")
    return samples


def pil_loader(path):
    """Open an image file as an RGB PIL image (errors name the file)."""
    from PIL import Image
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            return img.convert("RGB")
    except OSError as exc:
        raise OSError(f"ImageFolder: could not read image {path}: {exc}") from None


default_loader = pil_loader


class DatasetFolder(VisionDataset):
    """root/<class>/<file> samples read by `loader`: ds[i] -> (loader(path), class index)."""

    def __init__(self, root, loader, extensions=None, transform=None, target_transform=None,
                 is_valid_file=None, allow_empty: bool = False):
        super().__init__(root, transform, target_transform)
        if not callable(loader):
            raise TypeError(f"{type(self).__name__}: loader must be callable, got {type(loader).__name__}")
        self.classes, self.class_to_idx = self.find_classes(self.root)
        self.samples = self.make_dataset(self.root, self.class_to_idx, extensions, is_valid_file, allow_empty)
        self.loader, self.extensions = loader, extensions
        self.targets = [s[1] for s in self.samples]

    @staticmethod
    def make_dataset(directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False):
        return make_dataset(directory, class_to_idx, extensions, is_valid_file, allow_empty)

    def find_classes(self, directory):
        return find_classes(directory)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        return self._apply(self.loader(path), target)


class ImageFolder(DatasetFolder):
    """root/<class>/<image>: ds[i] -> (RGB PIL image, class index); .imgs is .samples."""

    def __init__(self, root, transform=None, target_transform=None, loader=default_loader, is_valid_file=None,
                 allow_empty: bool = False):
        super().__init__(root, loader, IMG_EXTENSIONS if is_valid_file is None else None, transform,
                         target_transform, is_valid_file, allow_empty)
        self.imgs = self.samples


__all__ = ["CIFAR10", "ImageFolder", "DatasetFolder", "VisionDataset", "IMG_EXTENSIONS", "CIFAR10_FILE_MD5",
           "find_classes", "make_dataset", "pil_loader", "default_loader", "is_image_file",
           "has_file_allowed_extension"]

missing.install(sys.modules[__name__])  # a torchvision name minires lacks: an error naming it
