"""--resume: the saved run's options against the ones given now, training a finished run longer, and
the command that continues a stopped run."""
from __future__ import annotations

import dataclasses
import math
import os
import shlex

from ..data import default_data_dir
from .config import DEFAULT_LR, RUN_FIELDS

# Options a resumed run takes from the command line: where and how it runs and reports, not what it
# trains (--out, --resume, --overwrite and --runs say which run; MINIRES_NUM_THREADS sets the threads).
CHANGEABLE = ("device", "progress", "cache", "eval_batch_size", "tta", "nproc", "sync_bn", "check_sync_every",
              "dist_timeout")
# What a given option is compared with: the run's fields (less the bookkeeping of what was typed) and
# the data folder, which is restored too when it is not given.
COMPARED = tuple(name for name in RUN_FIELDS if name != "recipe_overrides") + ("data",)
FIXED_HORIZON = ("onecycle", "piecewise")  # their lr is laid out over the whole run and has ended with it
_FLAGS = {"progress": "--no-progress", "cache": "--no-cache"}


def flag(name: str) -> str:
    """The command-line option of a TrainConfig field."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _shown(name: str, value, optimizer: str) -> str:
    if value is None:
        return f"default ({DEFAULT_LR[optimizer]:g})" if name == "lr" and optimizer in DEFAULT_LR else "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _same_folder(a, b) -> bool:
    where = lambda p: os.path.realpath(os.path.expanduser(p if p is not None else default_data_dir()))  # noqa: E731
    return where(a) == where(b)


def merge_saved_config(config, saved: dict, log=print):
    """(config to resume, lengthened): the saved run's options over config's, and whether --epochs
    lengthens the run; ValueError in one line for given options that differ from the saved ones.

    config.given lists the options given on purpose (the command line: every option typed); None (a
    Python caller) keeps the saved run's fields with a note of what differed."""
    restored = {k: saved[k] for k in RUN_FIELDS if k in saved}
    if saved.get("data") is not None and (config.given is None and config.data is None
                                          or config.given is not None and "data" not in config.given):
        restored["data"] = saved["data"]
    if config.given is None:
        changed = [k for k in RUN_FIELDS if k in saved and k != "recipe_overrides" and getattr(config, k) != saved[k]]
        if changed:
            log("--resume keeps the saved run's options: "
                + ", ".join(f"{k}={saved[k]!r} (not {getattr(config, k)!r})" for k in changed))
        return dataclasses.replace(config, **restored), False
    optimizer = saved.get("optimizer", config.optimizer)
    differ, lengthened = [], False
    for name in COMPARED:
        if name not in config.given or name not in saved:
            continue
        mine, theirs = getattr(config, name), saved[name]
        if (_same_folder(mine, theirs) if name == "data" else mine == theirs):
            continue
        if name == "epochs" and mine > theirs:
            lengthened = True
            continue
        differ.append(f"{flag(name)} {_shown(name, theirs, optimizer)} (given {_shown(name, mine, optimizer)})")
    if differ:
        raise ValueError(f"--resume: the run in {config.out} was trained with {'; '.join(differ)}: drop "
                         f"{'this option' if len(differ) == 1 else 'these options'} to continue it as it was "
                         f"(only {', '.join(flag(n) for n in CHANGEABLE[:4])} and the process options may change), "
                         f"or start a new run with another --out")
    if lengthened:
        _check_lengthening(config, saved)
        restored["epochs"] = config.epochs
        log(f"--resume --epochs {config.epochs:g}: training the run on past its saved --epochs {saved['epochs']:g} "
            + ("(cosine schedule stretched to the new end)" if saved.get("schedule") == "cosine" else
               "(the step schedule keeps its milestones: the lr stays at its last value)"))
    return dataclasses.replace(config, **restored), lengthened


def _check_lengthening(config, saved: dict) -> None:
    """ValueError where a run cannot be trained longer than its saved --epochs."""
    n, was, out = config.epochs, saved["epochs"], config.out
    data = f" --data {shlex.quote(saved['data'])}" if saved.get("data") else ""
    new_run = (f"train longer in a new run that starts from its weights: minires train --model {saved['model']}"
               f"{data} --init-from {shlex.quote(os.path.join(out, 'best.safetensors'))} --epochs {n:g} "
               f"--out NEW_DIR")
    if saved.get("recipe"):
        raise ValueError(f"--epochs {n:g}: the run follows --recipe {saved['recipe']}, whose schedule is laid out "
                         f"for the {was:g} epochs it was started with and cannot be stretched; start the run again "
                         f"with --recipe {saved['recipe']} --epochs {n:g} --overwrite, or {new_run}")
    if saved.get("schedule") in FIXED_HORIZON:
        raise ValueError(f"--epochs {n:g}: the run's {saved['schedule']} schedule is laid out over its {was:g} "
                         f"epochs and cannot be stretched past them; {new_run} (a cosine or step schedule "
                         f"can be lengthened with --resume --epochs)")
    if was != math.floor(was):
        raise ValueError(f"--epochs {n:g}: the run ends inside its last epoch (--epochs {was:g}), so it cannot be "
                         f"lengthened; {new_run}")


def lengthened_scheduler_state(state: dict, schedule: str, total_steps: int) -> dict:
    """The saved scheduler state of a lengthened run: a cosine ends at the new last step; a step
    schedule keeps its milestones (all passed), so the lr stays at its last value."""
    if schedule == "cosine":
        return dict(state, T_max=total_steps)
    return state


def resume_command(config, nproc: int = 1) -> str:
    """The command that continues a stopped run where it was (its options come from its checkpoint)."""
    words = ["minires", "train", "--resume", "--out", config.out]
    if config.device != "cpu":
        words += ["--device", config.device]
    if nproc > 1:
        words += ["--nproc", str(nproc)]
    return " ".join(shlex.quote(w) for w in words)
