"""Fine-tune a trained ResNet on a new image-folder task: load, replace the head, freeze the backbone.

    minires train --model resnet20 --epochs 5 --out runs/resnet20           # a checkpoint to start from
    python examples/finetune.py --checkpoint runs/resnet20/best.safetensors --data PATH

PATH holds train/<class>/*.png|jpg and test/<class>/*.png|jpg (any number of classes, 32x32 RGB).
Only the new head `fc` is trained; BatchNorm statistics of the backbone stay as they were.
The `minires train --init-from CKPT --freeze-backbone` command does the same with checkpoints.
"""
import argparse

import minires as mr
import minires.functional as F
from minires import models, nn, optim, parallel
from minires.checkpoint import CheckpointError, load_checkpoint
from minires.data import CIFAR10_MEAN, CIFAR10_STD, DataLoader
from minires.data import transforms as T
from minires.train import train_step
from minires.train.config import HelpFormatter, add_arguments
from minires.train.datasets import load_datasets


def build_parser():
    p = argparse.ArgumentParser(description="Fine-tune a trained ResNet's head on a new image-folder task.",
                                formatter_class=HelpFormatter)  # defaults shown, none for required options
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="a checkpoint of `minires train` (last or best.safetensors)")
    p.add_argument("--data", required=True, metavar="PATH", help="a folder with train/<class>/ and test/<class>/ images")
    add_arguments(p, ("device",))
    p.add_argument("--epochs", type=int, default=3, help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=64, help="images per step")
    p.add_argument("--lr", type=float, default=0.05, help="initial learning rate (cosine annealed)")
    p.add_argument("--seed", type=int, default=0, help="of the new head, the data order, the augmentation and "
                                                       "the --limit-* subsets")
    add_arguments(p, ("limit_train", "limit_test"))  # the images `minires train --limit-train N --seed S` picks
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)  # --help exits here: nothing is read before
    for flag, n in (("--limit-train", args.limit_train), ("--limit-test", args.limit_test)):
        if n is not None and n < 1:
            parser.error(f"{flag} must be >= 1, got {n}")

    # ---- data ---------------------------------------------------------------------------------------
    try:
        train_set, test_set = load_datasets(args.data, args.limit_train, args.limit_test, args.seed)
    except FileNotFoundError as exc:  # no image folders in --data: one line that says what to pass
        parser.error(str(exc))
    k = len(train_set.classes)
    augment = T.Compose([T.RandomCrop(32, padding=4, padding_mode="reflect"), T.RandomHorizontalFlip(),
                         T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, seed=args.seed, transform=augment,
                              device=args.device)
    test_loader = DataLoader(test_set, batch_size=500, transform=T.Normalize(CIFAR10_MEAN, CIFAR10_STD),
                             device=args.device)

    # ---- model: pretrained backbone, new head -------------------------------------------------------
    try:
        ckpt = load_checkpoint(args.checkpoint)
    except (CheckpointError, OSError) as exc:  # missing, or not a checkpoint of `minires train`
        parser.error(f"--checkpoint {args.checkpoint}: {getattr(exc, 'strerror', None) or exc}")
    saved = ckpt["extra"]["config"]
    mr.manual_seed(args.seed)
    model = models.get(saved["model"], num_classes=len(ckpt["extra"]["classes"]), **saved.get("model_kwargs", {}))
    model.load_state_dict(ckpt["model"])
    model.fc = nn.Linear(model.fc.in_features, k)  # a fresh head for the k new classes
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("fc.")
    model.to(args.device)
    print(f"{saved['model']} from {args.checkpoint}: training fc ({model.fc.in_features} -> {k}) "
          f"on {len(train_set)} images")

    # ---- optimizer: the head only -------------------------------------------------------------------
    optimizer = optim.SGD(model.fc.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * len(train_loader))

    # ---- loop ---------------------------------------------------------------------------------------
    accuracy = None
    with parallel.hold_blas():  # BLAS at one thread: minires splits its kernels over the cores
        for epoch in range(args.epochs):
            model.eval()  # NOTE: eval mode keeps the frozen backbone's BatchNorm running statistics fixed
            train_loader.set_epoch(epoch)
            total_loss, seen = 0.0, 0
            for x, y in train_loader:
                result = train_step(model, F.cross_entropy, optimizer, x, y)  # forward, backward, SGD step
                scheduler.step()
                total_loss, seen = total_loss + result.loss * len(y), seen + len(y)
            correct = 0
            with mr.no_grad():
                for x, y in test_loader:
                    correct += int((model(x).argmax(dim=1).numpy() == y.numpy()).sum())
            accuracy = correct / len(test_set)
            print(f"epoch {epoch + 1}/{args.epochs}: train loss {total_loss / seen:.4f}, test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
