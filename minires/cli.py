"""The `minires` command: `minires train ...`, `minires eval ...` and `minires bench ...`."""
from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .bench.kernels import main as bench_main
from .checkpoint import CheckpointError
from .train import Trainer, TrainingDiverged, evaluate_checkpoint
from .train.config import HelpFormatter, add_arguments, from_args
from .train.memory import keep_freed_memory


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the usage block is for --help, not for every typo."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="minires", description="Train and evaluate ResNets on CIFAR-10 with minires.")
    parser.add_argument("--version", action="version", version=f"minires {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # Every option of `train` is a TrainConfig field (minires/train/config.py): flag, default, help,
    # choices. The defaults are tuned for a few-epoch ResNet-20 run on a small CPU.
    t = sub.add_parser("train", help="train a model", formatter_class=HelpFormatter)
    add_arguments(t)
    t.set_defaults(handler=_train, subparser=t)  # errors name the subcommand

    e = sub.add_parser("eval", help="evaluate a checkpoint on the test split", formatter_class=HelpFormatter)
    e.add_argument("--checkpoint", required=True, metavar="PATH", help="a last.safetensors or best.safetensors")
    add_arguments(e, ("data", "device", "progress", "cache"))
    e.add_argument("--batch-size", type=int, default=500, help="images per batch")
    add_arguments(e, ("limit_test",))
    e.add_argument("--out", default=None, help="also write final_eval.json and confusion_matrix.png here")
    e.set_defaults(handler=_eval, subparser=e)

    b = sub.add_parser("bench", help="per-kernel benchmark against the machine's ceilings and PyTorch "
                                     "(minires bench --help)", add_help=False)
    b.set_defaults(handler=lambda args, p: _bench([], p), subparser=b)
    return parser


def _bench(bench_argv, parser) -> int:
    try:
        bench_main(bench_argv, prog="minires bench")
    except SystemExit as exc:  # argparse --help / errors inside the benchmark
        return exc.code if isinstance(exc.code, int) else 0
    return 0


def _train(args, parser) -> int:
    keep_freed_memory()  # fewer page faults per step; MINIRES_KEEP_MEMORY=0 turns it off
    try:
        config = from_args(args)
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
    if not os.path.isfile(args.checkpoint):
        parser.error(f"checkpoint {args.checkpoint!r} does not exist")
    if args.data is not None and not os.path.isdir(args.data):
        parser.error(f"data directory {args.data!r} does not exist")
    try:
        evaluate_checkpoint(args.checkpoint, args.data, args.device, args.batch_size, args.limit_test, args.out,
                            progress=args.progress, cache=args.cache)
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
