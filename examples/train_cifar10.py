"""Train a ResNet on CIFAR-10 with the minires library API, top to bottom in one file.

    python examples/train_cifar10.py                                  # ResNet-20, 5 epochs, CPU
    python examples/train_cifar10.py --data ../shared/data/cifar10-jpeg --epochs 1 --limit-train 5000
    python examples/train_cifar10.py --device cuda --model resnet56 --epochs 30

The options are `minires train`'s (same names and defaults; --help lists them). That command does
the same with checkpoints, resuming, metrics files and plots (minires/train/trainer.py).
"""
import argparse
import math
import time

import numpy as np

import minires as mr
import minires.functional as F
from minires import models, optim, parallel
from minires.data import CIFAR10, CIFAR10_MEAN, CIFAR10_STD, DataLoader, default_data_dir
from minires.data import transforms as T
from minires.train import train_step
from minires.train.config import DEFAULT_LR, HelpFormatter, add_arguments

# The options of `minires train` this example uses: names, defaults and help come from its TrainConfig.
OPTIONS = ("model", "data", "device", "epochs", "batch_size", "lr", "pct_start", "momentum", "weight_decay",
           "label_smoothing", "seed", "limit_train", "limit_test")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train a ResNet on CIFAR-10 with the minires library API.",
                                formatter_class=HelpFormatter)
    add_arguments(p, OPTIONS)
    args = p.parse_args(argv)
    args.lr = DEFAULT_LR["sgd"] if args.lr is None else args.lr  # the peak of the one-cycle schedule
    return args


def _limit(dataset, n, seed):
    """Keep n examples chosen by a seeded permutation, as `minires train --limit-train` does."""
    if n is not None and n < len(dataset):
        keep = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:n])
        dataset.data, dataset.targets = dataset.data[keep], dataset.targets[keep]
    return dataset


def main(argv=None):
    args = parse_args(argv)  # --help exits here: nothing is read or downloaded before

    # ---- data ---------------------------------------------------------------------------------------
    root = args.data or default_data_dir()
    train_set = _limit(CIFAR10(root, train=True, download=args.data is None), args.limit_train, args.seed)
    test_set = _limit(CIFAR10(root, train=False, download=args.data is None), args.limit_test, args.seed + 1)
    augment = T.Compose([T.RandomCrop(32, padding=4, padding_mode="reflect"), T.RandomHorizontalFlip(),
                         T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, seed=args.seed, transform=augment,
                              device=args.device)
    test_loader = DataLoader(test_set, batch_size=500, transform=T.Normalize(CIFAR10_MEAN, CIFAR10_STD),
                             device=args.device)

    # ---- model --------------------------------------------------------------------------------------
    mr.manual_seed(args.seed)
    model = models.get(args.model, num_classes=len(train_set.classes)).to(args.device)
    print(f"{args.model}: {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{len(train_set)} train / {len(test_set)} test images on {args.device}")

    # ---- optimizer: no weight decay on BatchNorm parameters and biases ------------------------------
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = optim.SGD([{"params": decay, "weight_decay": args.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=args.lr, momentum=args.momentum, nesterov=True)
    total = math.ceil(args.epochs * len(train_loader))  # a fractional --epochs ends inside the last epoch
    if total >= 4:  # one-cycle: warm up over pct_start of the steps (two at least), then anneal
        scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=total,
                                                  pct_start=min(max(args.pct_start, 2 / total), 0.5))
    else:  # a run of under 4 steps has no room for two phases: anneal only
        scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)

    # ---- loop ---------------------------------------------------------------------------------------
    def loss_fn(logits, y):
        return F.cross_entropy(logits, y, label_smoothing=args.label_smoothing)

    accuracy = None
    with parallel.hold_blas():  # BLAS at one thread: minires splits its kernels over the cores
        for epoch in range(math.ceil(args.epochs)):
            model.train()
            train_loader.set_epoch(epoch)  # augmentation and order depend only on (seed, epoch)
            t0, seen, total_loss = time.perf_counter(), 0, 0.0
            for step, (x, y) in enumerate(train_loader):
                if epoch * len(train_loader) + step == total:
                    break
                # forward, loss, backward, SGD step; one device-to-host copy (the loss and the accuracy)
                result = train_step(model, loss_fn, optimizer, x, y)
                scheduler.step()
                seen += len(y)
                total_loss += result.loss * len(y)
                if step % 50 == 0:
                    print(f"epoch {epoch + 1} step {step}/{len(train_loader)}: loss {result.loss:.4f}, "
                          f"lr {scheduler.get_last_lr()[0]:.4f}, {seen / (time.perf_counter() - t0):.0f} img/s")
            train_time = time.perf_counter() - t0

            model.eval()
            correct = 0
            with mr.no_grad():
                for x, y in test_loader:
                    correct += int((model(x).argmax(dim=1).numpy() == y.numpy()).sum())
            accuracy = correct / len(test_set)
            print(f"epoch {epoch + 1}/{math.ceil(args.epochs)}: train loss {total_loss / seen:.4f}, test accuracy "
                  f"{accuracy:.4f}, {seen / train_time:.0f} img/s")
    return accuracy


if __name__ == "__main__":
    main()
