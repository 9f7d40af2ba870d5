"""The `minires` command: `minires train ...`, `minires eval ...`, `minires export ...` and `minires bench ...`."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

from . import __version__, distributed
from .bench.kernels import main as bench_main
from .checkpoint import CheckpointError
from .distributed import ParametersDiverged
from .io import atomic_write_text
from .onnx.cli import add_parser as add_export_parser
from .train import Trainer, TrainingDiverged, evaluate_checkpoint
from .train.evaluation import checkpoint_of
from .train.run_dir import check_out_path
from .train.metrics import format_runs_summary, runs_summary
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
    add_arguments(t)  # --nproc N among them: _launch runs the command under `mpiexec -n N`
    t.set_defaults(handler=_train, subparser=t)  # errors name the subcommand

    e = sub.add_parser("eval", help="evaluate a checkpoint on the test split", formatter_class=HelpFormatter)
    e.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="a last.safetensors or best.safetensors, or a run folder (its best.safetensors)")
    add_arguments(e, ("data", "device", "progress", "cache"))
    e.add_argument("--batch-size", type=int, default=500, help="images per batch")
    add_arguments(e, ("limit_test", "tta"))
    e.add_argument("--out", default=None, help="also write final_eval.json and confusion_matrix.png here")
    e.set_defaults(handler=_eval, subparser=e)

    add_export_parser(sub)  # minires export --checkpoint RUN_OR_FILE --format onnx --out model.onnx (minires/onnx/cli.py)

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


def _launch(args, parser) -> None:
    """--nproc N: exec `mpiexec -n N minires train ...` (returns only where nothing is to launch)."""
    n = args.nproc
    if n < 1:
        parser.error(f"--nproc must be >= 1, got {n}")
    _, size = distributed.launcher_env()
    if size is not None:  # already started by mpiexec: --nproc only confirms the count
        if size != n:
            parser.error(f"--nproc {n}, but mpiexec started {size} processes: give one or the other")
        return
    if n == 1:
        return
    if args.limit_train is not None and args.limit_train < n:
        parser.error(f"--nproc {n} is more processes than the {args.limit_train} training images (--limit-train)")
    if not args.resume and args.batch_size % n:  # on --resume the checkpoint's batch size counts (checked later)
        parser.error(f"--batch-size {args.batch_size} does not split over --nproc {n} processes: the global batch "
                     f"is shared out equally, so it must be a multiple of the process count")
    try:
        command = distributed.mpiexec_command(n, args.argv)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


def _train(args, parser) -> int:
    keep_freed_memory()  # fewer page faults per step; MINIRES_KEEP_MEMORY=0 turns it off
    if args.nproc is not None:
        _launch(args, parser)
    try:
        comm = distributed.world()
    except distributed.MPIUnavailable as exc:  # one line, from rank 0 only
        if not distributed.launcher_env()[0]:
            print(f"minires train: error: {exc}", file=sys.stderr)
        return 2
    typed = tuple(sorted(_typed_options(args.argv)))  # on --resume each must match the saved run (train/resume.py)
    config = from_args(args, recipe_overrides=typed, given=typed)
    if config.runs > 1:
        return _train_runs(config, parser, comm)
    try:
        trainer = Trainer(config, comm=comm)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        if not getattr(exc, "all_ranks", comm.size == 1):  # this process's alone: the others would wait for it
            comm.fail(exc, 2)
        if comm.rank == 0:
            parser.error(str(exc))  # exits 2
        return 2
    except BaseException as exc:
        comm.fail(exc, 1, detail=True)
        raise
    try:
        trainer.fit()
    except (TrainingDiverged, ParametersDiverged, OSError, ValueError) as exc:  # OSError: e.g. the run directory
        if not getattr(exc, "all_ranks", comm.size == 1):        # is not writable; ValueError: a label out of range
            comm.fail(exc, 1, note=f"last checkpoint: {trainer._last_good()}")
        if comm.rank == 0:
            print(f"minires train: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # on a line of its own, after the progress bar's
        if comm.rank == 0:
            print(f"\nminires train: {trainer.interrupted()}", file=sys.stderr, flush=True)
        if comm.size > 1:  # every process got the signal; some may wait in a collective: end them all
            time.sleep(0.0 if comm.rank == 0 else 1.0)
            comm.fail(None, 130)
        return 130
    except BaseException as exc:  # a bug, MemoryError, ...: under MPI the others must not wait for this one
        comm.fail(exc, 1, detail=True, note=f"last checkpoint: {trainer._last_good()}")
        raise
    return 0


def _typed_options(argv) -> set:
    """The dests of the options typed on a `minires train` command line (not left at their defaults)."""
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    for action in train._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv))) - {"command", "handler", "subparser"}


def _train_runs(config, parser, comm) -> int:
    """--runs N: train with seeds S..S+N-1 (S: --seed, 0 by default), each in OUT/runK, then print and
    save the mean and spread."""
    if comm.size > 1:
        parser.error("--runs trains its runs one after another in one process; run it without mpiexec/--nproc")
    if config.runs < 1:
        parser.error(f"--runs must be >= 1, got {config.runs}")
    results = []
    for k in range(config.runs):
        run = dataclasses.replace(config, seed=config.seed + k, runs=1, out=os.path.join(config.out, f"run{k}"))
        print(f"run {k + 1}/{config.runs}: seed {run.seed}, in {run.out}", flush=True)
        try:
            report = Trainer(run, comm=comm).fit()
        except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
            print(f"minires train: error in run {k + 1} (seed {config.seed + k}): {exc}", file=sys.stderr)
            return 1 if results else 2
        if report:
            results.append(report)
    summary = runs_summary(results)
    print(format_runs_summary(summary))
    os.makedirs(config.out, exist_ok=True)
    atomic_write_text(os.path.join(config.out, "runs.json"), json.dumps(summary, indent=1) + "\n")
    return 0


def _eval(args, parser) -> int:
    try:
        path = checkpoint_of(args.checkpoint)
        if args.data is not None and os.path.isfile(args.data):
            parser.error(f"--data {args.data} is a file, not a folder: pass the folder that holds the dataset, "
                         f"e.g. --data {os.path.dirname(os.path.abspath(args.data))}")
        if args.data is not None and not os.path.isdir(args.data):
            parser.error(f"data directory {args.data!r} does not exist")
        if args.out is not None:
            check_out_path(args.out)
        evaluate_checkpoint(path, args.data, args.device, args.batch_size, args.limit_test, args.out,
                            progress=args.progress, cache=args.cache, tta=args.tta)
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
    args.argv = argv  # for --nproc, which runs this same command under mpiexec
    try:
        return args.handler(args, args.subparser)
    except KeyboardInterrupt:
        print(f"\nminires {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `minires ... | head`: the reader left; no traceback, and none at exit either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
