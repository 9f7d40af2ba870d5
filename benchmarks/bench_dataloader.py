"""img/s of a torchvision-style per-sample pipeline through minires.utils.data.DataLoader, by num_workers.

    python benchmarks/bench_dataloader.py                      # W = 0, 1, 2; 5 repeats; 40 batches of 128
    python benchmarks/bench_dataloader.py --workers 0 2 --repeats 3 --batches 20 --synthetic

The pipeline is the CIFAR-10 training one of PyTorch scripts: CIFAR10(train=True) gives a PIL image per
sample (Image.fromarray of its uint8 array, as torchvision's), then RandomCrop(32, padding=4),
RandomHorizontalFlip, ToTensor, Normalize (minires.vision.transforms), batches of 128 from
DataLoader(shuffle=True, num_workers=W). Data: the CIFAR-10 JPEG copy at ../shared/data/cifar10-jpeg when
it exists (read only; minires decodes it once into its cache under $MINIRES_DATA), else synthetic images of
the same shape (the header says which). Each run reads 41 batches (a fixed part of the data) whole;
img/s is counted from the first batch to the last (worker start-up apart, reported as 'first batch'), and
the CPU time per image of the main process and of the workers is counted too (start-up included): on a
loaded machine img/s follows the CPU share the benchmark gets (with Linux's autogroup scheduling, one
share for the benchmark and all its workers together), CPU per image does not. The W rows run in
turns; the median of the repeats is printed, with the slowest and fastest.
Below the table: where one sample's time goes, measured in the main process (each step alone).
"""
from __future__ import annotations

import argparse
import os
import pickle
import platform
import resource
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minires as mr  # noqa: E402
from minires.bench.common import cpu_name  # noqa: E402
from minires.utils.data import DataLoader, Dataset, Subset, default_collate  # noqa: E402
from minires.vision import datasets, transforms  # noqa: E402

JPEG_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "cifar10-jpeg")
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10's, as in PyTorch scripts


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
    why = "--synthetic" if synthetic else f"no CIFAR-10 copy at {os.path.normpath(JPEG_ROOT)}"
    return SyntheticCIFAR(50_000, pipeline()), f"synthetic 32x32 RGB images ({why})"


def one_run(ds, workers: int, batch_size: int) -> tuple[float, float, float, float]:
    """One full pass over ds: (img/s from the first batch to the last, seconds to the first batch, CPU
    microseconds per image in the main process, and in the workers; start-up included)."""
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers)
    own0, children0 = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    it = iter(loader)
    x, y = next(it)
    first = time.perf_counter()
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (batch_size, 3, 32, 32)
    n = sum(len(y) for _, y in it)
    end = time.perf_counter()
    del it  # the workers are joined: their CPU time is counted in RUSAGE_CHILDREN
    own = (cpu_seconds(resource.RUSAGE_SELF) - own0) / len(ds) * 1e6
    children = (cpu_seconds(resource.RUSAGE_CHILDREN) - children0) / len(ds) * 1e6
    return n / (end - first), first - start, own, children


def cpu_seconds(who) -> float:
    """User + system CPU time of this process (RUSAGE_SELF) or of its children that have ended."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def per_sample_profile(ds, n: int = 1000) -> list[tuple[str, float]]:
    """CPU microseconds per image of each step alone, in this process (CPU time: a loaded machine's waits
    are not counted)."""
    from PIL import Image
    data = ds.data[:n]
    steps = []

    def timed(name, fn, items):
        t = time.process_time()
        out = [fn(v) for v in items]
        steps.append((name, (time.process_time() - t) / len(items) * 1e6))
        return out

    imgs = timed("Image.fromarray", Image.fromarray, data)
    cropped = timed("RandomCrop(32, padding=4)", transforms.RandomCrop(32, padding=4), imgs)
    flipped = timed("RandomHorizontalFlip", transforms.RandomHorizontalFlip(), cropped)
    tensors = timed("ToTensor", transforms.ToTensor(), flipped)
    normed = timed("Normalize", transforms.Normalize(MEAN, STD), tensors)
    timed("whole sample (ds[i])", lambda i: ds[i], range(n))
    samples = [(t, 0) for t in normed[:128]]
    t = time.process_time()
    for _ in range(10):
        batch = default_collate(samples)
    steps.append(("default_collate (per image of 128)", (time.process_time() - t) / 10 / 128 * 1e6))
    t = time.process_time()
    for _ in range(10):
        pickle.loads(pickle.dumps((0, batch), protocol=pickle.HIGHEST_PROTOCOL))
    steps.append(("pickle + unpickle a batch (per image)", (time.process_time() - t) / 10 / 128 * 1e6))
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
    # a fixed part of the data, read whole each run: no prefetched batch is thrown away uncounted
    part = Subset(ds, range(min(len(ds), (args.batches + 1) * args.batch_size)))
    print(f"# DataLoader throughput: {cpu_name()}, {len(os.sched_getaffinity(0))} usable cores, "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    print(f"# Python {platform.python_version()}, NumPy {np.__version__}, Pillow {PIL.__version__}, "
          f"minires {mr.__version__}; data: {source}")
    print(f"# per sample: RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize; "
          f"batch {args.batch_size}, shuffle=True, {args.batches} batches timed, {args.repeats} repeats")
    print()
    print("| num_workers | img/s (median) | min - max | first batch (s) | CPU us/img, main | CPU us/img, workers |")
    print("|---:|---:|---:|---:|---:|---:|")
    runs = {w: [] for w in args.workers}
    for _ in range(args.repeats):  # in turns, so that a change in the machine's load spreads over every row
        for w in args.workers:
            runs[w].append(one_run(part, w, args.batch_size))
    for w in args.workers:
        rates = [r[0] for r in runs[w]]

        def med(k):
            return statistics.median(r[k] for r in runs[w])
        print(f"| {w} | {statistics.median(rates):,.0f} | {min(rates):,.0f} - {max(rates):,.0f} | {med(1):.2f} | "
              f"{med(2):.0f} | {med(3):.0f} |")
    print()
    print("| step (main process, alone) | CPU us per image |")
    print("|---|---:|")
    for name, us in per_sample_profile(ds):
        print(f"| {name} | {us:.1f} |")
    print(f"\n# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
