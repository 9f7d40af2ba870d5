"""What a run tells its user: at the start the data, model and output folder it uses; at the end where
its files are."""
from __future__ import annotations

import os

from .. import parallel

LAYOUTS = {"py": "CIFAR-10 python batches", "bin": "CIFAR-10 binary batches",
           "folder": "image folders train/ and test/, a folder per class"}


def _classes(classes, shown: int = 10) -> str:
    names = [str(c) for c in classes]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _split(name: str, dataset, limit) -> str:
    return f"{name} {len(dataset)} images" + (f" (--limit-{name} {limit})" if limit is not None else "")


def describe_data(train_set, test_set, limit_train=None, limit_test=None) -> str:
    """One line: the folder read, its layout, images per split and the classes."""
    ref = test_set if train_set is None else train_set
    where = getattr(ref, "path", None) or getattr(ref, "root", "?")
    layout = LAYOUTS.get(getattr(ref, "layout", None), getattr(ref, "layout", "?"))
    counts = ([_split("train", train_set, limit_train)] if train_set is not None else []) + \
        [_split("test", test_set, limit_test)]
    return (f"data:   {where} ({layout}); {', '.join(counts)}; {len(ref.classes)} classes: "
            f"{_classes(ref.classes)}")


def parameter_count(model) -> int:
    return sum(int(p.numel()) for p in model.parameters())


def start_block(trainer) -> str:
    """The lines a run prints before it trains: data, model (parameters, device, threads), output folder."""
    c = trainer.config
    threads = parallel.get_num_threads()
    procs = f" x {trainer.comm.size} processes" if trainer.comm.size > 1 else ""
    model = c.model + (f" (--recipe {c.recipe})" if c.recipe else "")
    return "\n".join([
        describe_data(trainer.train_set, trainer.test_set, c.limit_train, c.limit_test),
        f"model:  {model}, {parameter_count(trainer.model):,} parameters, on {trainer.device}, "
        f"{threads} thread{'s' if threads != 1 else ''}{procs}",
        f"output: {os.path.abspath(c.out)}"])


def end_line(out_dir) -> str:
    """Where a finished run's files are."""
    return (f"saved in {out_dir}: checkpoints best.safetensors, last.safetensors; metrics metrics.csv, "
            f"metrics.jsonl, final_eval.json; plots curves.png, confusion_matrix.png")
