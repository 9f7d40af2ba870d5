"""img/s of a torchvision-style per-sample pipeline through minires.utils.data.DataLoader, by num_workers.

    python benchmarks/bench_dataloader.py                      # W = 0, 1, 2; 5 repeats; 40 batches of 128
    python benchmarks/bench_dataloader.py --workers 0 2 --repeats 3 --batches 20 --synthetic

The pipeline is the CIFAR-10 training one of PyTorch scripts: CIFAR10(train=True) gives a PIL image per
sample (Image.fromarray of its uint8 array, as torchvision's), then RandomCrop(32, padding=4),
RandomHorizontalFlip, ToTensor, Normalize (minires.vision.transforms), batches of 128 from
DataLoader(shuffle=True, num_workers=W). Data: the CIFAR-10 JPEG copy at ../shared/data/cifar10-jpeg when
it exists (read only; minires decodes it once into its cache under $MINIRES_DATA), else synthetic images of
the same shape (the header says which). img/s is counted from the first batch to the last (worker start-up
apart, reported as 'first batch'); the median of the repeats is printed, with the slowest and fastest.
Below the table: where one sample's time goes, measured in the main process (each step alone).
"""
from __future__ import annotations

import argparse
import os
import pickle
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minires as mr  # noqa: E402
from minires.utils.data import DataLoader, Dataset, default_collate  # noqa: E402
from minires.vision import datasets, transforms  # noqa: E402

JPEG_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "cifar10-jpeg")
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10's, as in PyTorch scripts


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class SyntheticCIFAR(Dataset):
    """CIFAR10's sample path on random uint8 images: (transform(PIL image), int label)."""

    def __init__(self, n: int, transform):
        rng = np.random.default_rng(0)
        self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.targets = rng.integers(0, 10, n).tolist()
        self.transform = transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def pipeline():
    return transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                               transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


def make_dataset(synthetic: bool):
    if not synthetic and os.path.isdir(JPEG_ROOT):
        return datasets.CIFAR10(JPEG_ROOT, train=True, transform=pipeline()), \
            f"CIFAR-10 JPEG copy ({os.path.normpath(JPEG_ROOT)}), train split"
    return SyntheticCIFAR(50_000, pipeline()), "synthetic 32x32 RGB images (no CIFAR-10 copy found)"


def one_run(ds, workers: int, batches: int, batch_size: int) -> tuple[float, float]:
    """(img/s from the first batch to the last, seconds to the first batch)."""
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers)
    start = time.perf_counter()
    it = iter(loader)
    x, y = next(it)
    first = time.perf_counter()
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (batch_size, 3, 32, 32)
    n = 0
    for _ in range(batches):
        x, y = next(it)
        n += len(y)
    end = time.perf_counter()
    del it
    return n / (end - first), first - start


def per_sample_profile(ds, n: int = 1000) -> list[tuple[str, float]]:
    """Microseconds per image of each step alone, in this process."""
    from PIL import Image
    data = ds.data[:n]
    steps = []

    def timed(name, fn, items):
        t = time.perf_counter()
        out = [fn(v) for v in items]
        steps.append((name, (time.perf_counter() - t) / len(items) * 1e6))
        return out

    imgs = timed("Image.fromarray", Image.fromarray, data)
    cropped = timed("RandomCrop(32, padding=4)", transforms.RandomCrop(32, padding=4), imgs)
    flipped = timed("RandomHorizontalFlip", transforms.RandomHorizontalFlip(), cropped)
    tensors = timed("ToTensor", transforms.ToTensor(), flipped)
    normed = timed("Normalize", transforms.Normalize(MEAN, STD), tensors)
    whole = pipeline()
    timed("whole sample (ds[i])", lambda i: ds[i], range(n))
    del whole
    samples = [(t, 0) for t in normed[:128]]
    t = time.perf_counter()
    for _ in range(10):
        batch = default_collate(samples)
    steps.append(("default_collate (per image of 128)", (time.perf_counter() - t) / 10 / 128 * 1e6))
    t = time.perf_counter()
    for _ in range(10):
        pickle.loads(pickle.dumps((0, batch), protocol=pickle.HIGHEST_PROTOCOL))
    steps.append(("pickle + unpickle a batch (per image)", (time.perf_counter() - t) / 10 / 128 * 1e6))
    return steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40, help="batches timed per run, after the first")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--synthetic", action="store_true", help="synthetic images even if the JPEG copy exists")
    args = parser.parse_args()

    import PIL
    mr.manual_seed(0)
    ds, source = make_dataset(args.synthetic)
    print(f"# DataLoader throughput: {cpu_model()}, {len(os.sched_getaffinity(0))} usable cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"# Python {platform.python_version()}, NumPy {np.__version__}, Pillow {PIL.__version__}, "
          f"minires {mr.__version__}; data: {source}")
    print(f"# per sample: RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize; "
          f"batch {args.batch_size}, shuffle=True, {args.batches} batches timed, {args.repeats} repeats")
    print()
    print("| num_workers | img/s (median) | min - max | first batch (s) |")
    print("|---:|---:|---:|---:|")
    for w in args.workers:
        runs = [one_run(ds, w, args.batches, args.batch_size) for _ in range(args.repeats)]
        rates = [r for r, _ in runs]
        print(f"| {w} | {statistics.median(rates):,.0f} | {min(rates):,.0f} - {max(rates):,.0f} | "
              f"{statistics.median(s for _, s in runs):.2f} |", flush=True)
    print()
    print("| step (main process, alone) | us per image |")
    print("|---|---:|")
    for name, us in per_sample_profile(ds):
        print(f"| {name} | {us:.1f} |")


if __name__ == "__main__":
    main()
