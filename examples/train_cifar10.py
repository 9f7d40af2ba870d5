"""Train a ResNet on CIFAR-10 with the minires library API, top to bottom in one file.

    python examples/train_cifar10.py                                  # ResNet-20, 5 epochs, CPU
    python examples/train_cifar10.py --data ../shared/data/cifar10-jpeg --epochs 1 --limit-train 5000
    python examples/train_cifar10.py --device cuda --model resnet56 --epochs 30

The options are the ones of `minires train` that this script has (same names and defaults; --help
lists them): SGD with Nesterov momentum and a one-cycle schedule. That command does the same with
checkpoints, resuming, metrics files and plots (minires/train/trainer.py).
"""
import argparse
import math
import time

import minires as mr
import minires.functional as F
from minires import models, optim, parallel
from minires.data import CIFAR10_MEAN, CIFAR10_STD, DataLoader
from minires.data import transforms as T
from minires.train import TrainConfig, train_step
from minires.train.config import DEFAULT_LR, HelpFormatter, add_arguments
from minires.train.datasets import load_datasets


def build_parser():
    """The options of `minires train` this example has: names, defaults and help from its TrainConfig."""
    p = argparse.ArgumentParser(description="Train a ResNet on CIFAR-10 with the minires library API.",
                                formatter_class=HelpFormatter)
    add_arguments(p, ("model", "data", "device", "epochs", "batch_size"))
    # NOTE: own help for these two: `minires train`'s names its other optimizers and schedules
    p.add_argument("--lr", type=float, default=DEFAULT_LR["sgd"], help="peak learning rate of the one-cycle schedule")
    p.add_argument("--pct-start", type=float, default=TrainConfig.pct_start,
                   help="warm-up fraction of the one-cycle schedule")
    add_arguments(p, ("momentum", "weight_decay", "label_smoothing", "seed", "limit_train", "limit_test"))
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)  # --help exits here: nothing is read or downloaded before
    for flag, n in (("--limit-train", args.limit_train), ("--limit-test", args.limit_test)):
        if n is not None and n < 1:
            parser.error(f"{flag} must be >= 1, got {n}")

    # ---- data: the splits as `minires train` reads them (--limit-*: a seeded subset) -----------------
    try:
        train_set, test_set = load_datasets(args.data, args.limit_train, args.limit_test, args.seed)
    except FileNotFoundError as exc:  # no CIFAR-10 copy in --data: one line that says what to pass
        parser.error(str(exc))
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
