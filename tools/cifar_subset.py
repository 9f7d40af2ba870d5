"""Write a class-balanced random subset of CIFAR-10 in the official binary layout (small enough to carry).

    python tools/cifar_subset.py ../shared/data/cifar10-jpeg .gpu-data --train 12000 --test 2000

The source is anything `minires.data.CIFAR10` reads (python or binary batches, an image folder).
The result, DEST/cifar-10-batches-bin/ with data_batch_1..5.bin, test_batch.bin and
batches.meta.txt, is what `minires train --data DEST` reads: 3073 bytes per image, 43 MB for the
default 12,000 + 2,000 images. Why: a lent GPU machine reaches no network and takes at most 64 MiB
of files along (/work/.library/device/README.md), and the full JPEG folder is 236 MB.
Each file is written atomically, so a stopped run leaves no half-written batch behind.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's minires first
from minires.data.cifar10 import CIFAR10  # noqa: E402
from minires.io import atomic_write_bytes, atomic_write_text  # noqa: E402
from minires.train.datasets import subset  # noqa: E402

_TRAIN_FILES = 5  # the official layout has five training batches; each may hold any number of records


def balanced_indices(targets, count: int, num_classes: int, rng) -> np.ndarray:
    """`count` indices, as equal a number per class as count allows, drawn at random, in random order."""
    per_class = [count // num_classes + (c < count % num_classes) for c in range(num_classes)]
    picked = []
    for c, k in enumerate(per_class):
        members = np.flatnonzero(targets == c)
        if k > len(members):
            raise ValueError(f"cifar_subset: asked for {k} images of class {c}, the source has {len(members)}")
        picked.append(rng.choice(members, size=k, replace=False))
    return rng.permutation(np.concatenate(picked))


def records(data, targets) -> bytes:
    """Official binary records: one label byte, then the R, G and B planes (32x32 each) of each image."""
    planes = data.transpose(0, 3, 1, 2).reshape(len(data), -1)  # (N, 32, 32, 3) -> (N, 3*32*32)
    return np.concatenate([targets.astype(np.uint8)[:, None], planes], axis=1).tobytes()


def write_subset(source, dest, n_train: int, n_test: int, seed: int = 0, pick: str = "balanced") -> str:
    """Write the subset under dest/cifar-10-batches-bin and return that folder.

    pick="balanced": as equal a number per class as the counts allow, in random order.
    pick="limit": exactly the images, in the same order, that `minires train --limit-train n_train
    --limit-test n_test --seed seed` keeps of the source, so a run on the subset sees the same data.
    """
    if n_train < _TRAIN_FILES or n_test < 1:
        raise ValueError(f"cifar_subset: need at least {_TRAIN_FILES} training and 1 test image, "
                         f"got {n_train} and {n_test}")
    rng = np.random.default_rng(seed)
    out = os.path.join(dest, "cifar-10-batches-bin")
    os.makedirs(out, exist_ok=True)
    train = CIFAR10(source, train=True)
    if pick == "limit":
        return _write_as_limit(train, CIFAR10(source, train=False), out, n_train, n_test, seed)
    idx = balanced_indices(train.targets, n_train, len(train.classes), rng)
    for i, part in enumerate(np.array_split(idx, _TRAIN_FILES), start=1):
        atomic_write_bytes(os.path.join(out, f"data_batch_{i}.bin"), records(train.data[part], train.targets[part]))
    test = CIFAR10(source, train=False)
    idx = balanced_indices(test.targets, n_test, len(test.classes), rng)
    atomic_write_bytes(os.path.join(out, "test_batch.bin"), records(test.data[idx], test.targets[idx]))
    atomic_write_text(os.path.join(out, "batches.meta.txt"), "\n".join(train.classes) + "\n")
    return out


def _write_as_limit(train, test, out, n_train, n_test, seed) -> str:
    train, test = subset(train, n_train, seed), subset(test, n_test, seed + 1)  # what --limit-* keeps
    for i, part in enumerate(np.array_split(np.arange(len(train.data)), _TRAIN_FILES), start=1):
        atomic_write_bytes(os.path.join(out, f"data_batch_{i}.bin"), records(train.data[part], train.targets[part]))
    atomic_write_bytes(os.path.join(out, "test_batch.bin"), records(test.data, test.targets))
    atomic_write_text(os.path.join(out, "batches.meta.txt"), "\n".join(train.classes) + "\n")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="a CIFAR-10 folder minires reads (python/binary batches or an image folder)")
    p.add_argument("dest", help="folder to write cifar-10-batches-bin/ into")
    p.add_argument("--train", type=int, default=12000, help="training images (default 12000)")
    p.add_argument("--test", type=int, default=2000, help="test images (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pick", choices=("balanced", "limit"), default="balanced",
                   help="balanced classes (default), or exactly what minires train --limit-train/--limit-test keep")
    args = p.parse_args(argv)
    try:
        out = write_subset(args.source, args.dest, args.train, args.test, args.seed, args.pick)
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"wrote {args.train} training and {args.test} test images to {out} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    sys.exit(main())
