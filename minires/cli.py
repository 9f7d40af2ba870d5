"""The `minires` command: `minires train ...`, `minires eval ...` and `minires bench ...`."""
from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .train.trainer import DEFAULT_LR, TrainConfig


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the usage block is for --help, not for every typo."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default once, at the end of its help (none for flags and absent values)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.nargs == 0:
            return action.help
        return super()._get_help_string(action)


def _add_data_args(p) -> None:
    p.add_argument("--data", metavar="PATH", default=None,
                   help="CIFAR-10 directory (python/binary batches or train|test/<class>/ image folders); "
                        "default: $MINIRES_DATA or ~/.cache/minires, downloaded there on first use")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-cache", action="store_true",
                   help="decode image folders every time (else cached under $MINIRES_DATA/cache, never beside the data)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="minires", description="Train and evaluate ResNets on CIFAR-10 with minires.")
    parser.add_argument("--version", action="version", version=f"minires {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    d = TrainConfig()  # the defaults: tuned for a few-epoch ResNet-20 run on a small CPU

    t = sub.add_parser("train", help="train a model", formatter_class=_Help)
    t.add_argument("--model", default=d.model, help="model name (see minires.models.names())")
    _add_data_args(t)
    t.add_argument("--epochs", type=int, default=d.epochs, help="passes over the training set")
    t.add_argument("--batch-size", type=int, default=d.batch_size, help="images per training step")
    t.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default: " + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_LR.items()) + ")")
    t.add_argument("--optimizer", choices=["sgd", "adam"], default=d.optimizer, help="SGD with Nesterov momentum, or Adam")
    t.add_argument("--schedule", choices=["onecycle", "cosine", "step"], default=d.schedule,
                   help="lr schedule, stepped per batch")
    t.add_argument("--pct-start", type=float, default=d.pct_start, help="warm-up fraction of onecycle")
    t.add_argument("--momentum", type=float, default=d.momentum, help="SGD (Nesterov) momentum")
    t.add_argument("--label-smoothing", type=float, default=d.label_smoothing, help="of the cross-entropy loss")
    t.add_argument("--weight-decay", type=float, default=d.weight_decay, help="on conv/linear weights only")
    t.add_argument("--cutout", type=int, default=d.cutout, help="Cutout square size in pixels (0: off)")
    t.add_argument("--out", default=None, help="run directory (default: runs/MODEL)")
    t.add_argument("--resume", action="store_true",
                   help="continue from OUT/last.safetensors (a fresh run if there is none yet)")
    t.add_argument("--overwrite", action="store_true",
                   help="start afresh in an OUT that already holds a run (without it, such an OUT is refused)")
    t.add_argument("--init-from", metavar="CKPT", default=None,
                   help="start from these weights (the head is replaced when the class count differs)")
    t.add_argument("--freeze-backbone", action="store_true", help="train only the head (fc)")
    t.add_argument("--amp", action="store_true",
                   help="mixed precision: float16 conv/linear GEMMs with float32 weights and dynamic loss scaling "
                        "(for GPUs; correct but slow on the CPU)")
    t.add_argument("--seed", type=int, default=d.seed, help="of the weights, the data order and the augmentation")
    t.add_argument("--limit-train", type=int, default=None, metavar="N", help="use N training images")
    t.add_argument("--limit-test", type=int, default=None, metavar="N", help="use N test images")
    t.add_argument("--eval-batch-size", type=int, default=d.eval_batch_size, help="images per evaluation batch")
    t.set_defaults(handler=_train, subparser=t)  # errors name the subcommand

    e = sub.add_parser("eval", help="evaluate a checkpoint on the test split", formatter_class=_Help)
    e.add_argument("--checkpoint", required=True, metavar="PATH", help="a last.safetensors or best.safetensors")
    _add_data_args(e)
    e.add_argument("--batch-size", type=int, default=500, help="images per batch")
    e.add_argument("--limit-test", type=int, default=None, metavar="N", help="use N test images")
    e.add_argument("--out", default=None, help="also write final_eval.json and confusion_matrix.png here")
    e.set_defaults(handler=_eval, subparser=e)

    b = sub.add_parser("bench", help="per-kernel benchmark against the machine's ceilings and PyTorch "
                                     "(minires bench --help)", add_help=False)
    b.set_defaults(handler=lambda args, p: _bench([], p), subparser=b)
    return parser


def _bench(bench_argv, parser) -> int:
    from .bench.kernels import main as bench_main
    try:
        bench_main(bench_argv, prog="minires bench")
    except SystemExit as exc:  # argparse --help / errors inside the benchmark
        return exc.code if isinstance(exc.code, int) else 0
    return 0


def _train(args, parser) -> int:
    from .train import Trainer, TrainingDiverged
    from .train.memory import keep_freed_memory
    keep_freed_memory()  # fewer page faults per step; MINIRES_KEEP_MEMORY=0 turns it off
    config = TrainConfig(
        model=args.model, data=args.data, out=args.out or os.path.join("runs", args.model), epochs=args.epochs,
        batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, optimizer=args.optimizer, lr=args.lr,
        momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule, pct_start=args.pct_start,
        label_smoothing=args.label_smoothing, cutout=args.cutout, device=args.device, seed=args.seed,
        resume=args.resume, init_from=args.init_from, freeze_backbone=args.freeze_backbone, amp=args.amp,
        limit_train=args.limit_train, limit_test=args.limit_test, progress=not args.no_progress,
        overwrite=args.overwrite, cache=not args.no_cache)
    try:
        config.validate()
        trainer = Trainer(config)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        parser.error(str(exc))  # exits 2
    try:
        trainer.fit()
    except (TrainingDiverged, OSError, ValueError) as exc:  # OSError: e.g. the run directory is not writable;
        print(f"minires train: error: {exc}", file=sys.stderr)  # ValueError: e.g. a label out of range
        return 1
    except KeyboardInterrupt:  # on a line of its own, after the progress bar's
        print(f"\nminires train: {trainer.interrupted()}", file=sys.stderr)
        return 130
    return 0


def _eval(args, parser) -> int:
    from .checkpoint import CheckpointError
    from .train import evaluate_checkpoint
    if not os.path.isfile(args.checkpoint):
        parser.error(f"checkpoint {args.checkpoint!r} does not exist")
    if args.data is not None and not os.path.isdir(args.data):
        parser.error(f"data directory {args.data!r} does not exist")
    try:
        evaluate_checkpoint(args.checkpoint, args.data, args.device, args.batch_size, args.limit_test, args.out,
                            progress=not args.no_progress, cache=not args.no_cache)
    except (CheckpointError, ValueError, FileNotFoundError, RuntimeError) as exc:
        parser.error(str(exc))
    return 0


def main(argv=None) -> int:
    """Entry point of the `minires` console script; returns the exit code."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # everything after `bench` belongs to the benchmark script
        return _bench(argv[1:], parser)
    args = parser.parse_args(argv)
    try:
        return args.handler(args, args.subparser)
    except KeyboardInterrupt:
        print(f"\nminires {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
