"""TrainConfig: every option of a training run, declared once.

Each field carries its command-line option in its metadata (help, choices, flag): `minires train`'s
parser is built from the fields (add_arguments), and the fields marked `run` are the run's record,
taken from the checkpoint on --resume (RUN_FIELDS).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import typing
from dataclasses import MISSING, dataclass, field

from .. import backend, models, recipes

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("onecycle", "cosine", "step", "piecewise")
TTA_MODES = ("none", "flip", "flip-shift")
RECIPES = tuple(recipes.names())
DEFAULT_LR = {"sgd": 0.2, "adam": 2e-3}


def option(default=MISSING, help: str = "", *, run: bool = False, flag: str | None = None, choices=None,
           metavar: str | None = None, cli: bool = True, default_factory=MISSING):
    """A TrainConfig field and its option: `run` fields define the run (kept on --resume); `flag`
    defaults to --field-name; `cli=False` keeps a field out of the command line."""
    return field(default=default, default_factory=default_factory,
                 metadata={"help": help, "run": run, "flag": flag, "choices": choices, "metavar": metavar,
                           "cli": cli})


@dataclass
class TrainConfig:
    """Everything that defines a training run; each field is one `minires train` option."""
    # ---- model and data
    recipe: str | None = option(None, "train by a published recipe, which sets the model, optimizer, schedule, "
                                      "augmentation and more (airbench94: Jordan's 94%%-in-10-epochs CIFAR-10 run); "
                                      "an option it sets may not be given otherwise, except --epochs and "
                                      "--batch-size", run=True, metavar="NAME",
                                choices=(None,) + RECIPES)
    recipe_overrides: tuple = option((), run=True, cli=False)  # recipe settings given on purpose (see Recipe.apply)
    # The options given on purpose (the command line: every option typed): on --resume each must match the
    # saved run's (train/resume.py). None, a Python caller's default, keeps the saved run's with a note.
    given: tuple | None = option(None, cli=False)
    model: str = option("resnet20", "the network: " + ", ".join(models.names()), run=True, metavar="NAME")
    model_kwargs: dict = option(default_factory=dict, run=True, cli=False)  # e.g. widths; library use only
    data: str | None = option(
        None, "CIFAR-10 directory (python/binary batches or train|test/<class>/ image folders); "
              "default: $MINIRES_DATA or ~/.cache/minires, downloaded there on first use", metavar="PATH")
    device: str = option("cpu", "cpu, cuda or cuda:N")
    progress: bool = option(True, "no progress bar", flag="--no-progress")
    cache: bool = option(True, "decode image folders every time (else cached under $MINIRES_DATA/cache, "
                               "never beside the data)", flag="--no-cache")
    # ---- optimisation
    epochs: float = option(5, "passes over the training set (a fraction ends inside the last one)", run=True)
    batch_size: int = option(128, "images per training step", run=True)
    lr: float | None = option(None, "peak learning rate (default: "
                              + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_LR.items()) + ")", run=True)
    optimizer: str = option("sgd", "SGD with Nesterov momentum, or Adam", run=True, choices=OPTIMIZERS)
    schedule: str = option("onecycle", "lr schedule, stepped per batch (piecewise: linear from 0.2 lr up to lr "
                                       "over pct-start of the steps, then down to 0.07 lr)", run=True,
                           choices=SCHEDULES)
    pct_start: float = option(0.25, "warm-up fraction of onecycle and piecewise", run=True)
    momentum: float = option(0.9, "SGD (Nesterov) momentum", run=True)
    label_smoothing: float = option(0.1, "of the cross-entropy loss", run=True)
    weight_decay: float = option(5e-4, "on conv/linear weights only", run=True)
    cutout: int = option(0, "Cutout square size in pixels (0: off)", run=True)
    # ---- the run directory
    out: str | None = option(None, "run directory (default: runs/MODEL)")
    resume: bool = option(False, "continue from OUT/last.safetensors (a fresh run if there is none yet)")
    overwrite: bool = option(False, "start afresh in an OUT that already holds a run "
                                    "(without it, such an OUT is refused)")
    # ---- starting weights
    init_from: str | None = option(None, "start from these weights (the head is replaced when the class count "
                                         "differs)", run=True, metavar="CKPT")
    freeze_backbone: bool = option(False, "train only the head (fc)", run=True)
    amp: bool = option(False, "mixed precision: float16 conv/linear GEMMs with float32 weights and dynamic loss "
                              "scaling (for GPUs; correct but slow on the CPU)", run=True)
    seed: int = option(0, "of the weights, the data order and the augmentation", run=True)
    limit_train: int | None = option(None, "use N training images", run=True, metavar="N")
    limit_test: int | None = option(None, "use N test images", run=True, metavar="N")
    eval_batch_size: int = option(500, "images per evaluation batch")
    tta: str | None = option(None, "test-time augmentation of the final evaluation: none, flip (mean of the image "
                                   "and its mirror) or flip-shift (also one-pixel shifts up-left and down-right, "
                                   "weights 1/4 and 1/8); default: the recipe's (flip-shift for airbench94, else "
                                   "none)", choices=(None,) + TTA_MODES)
    runs: int = option(1, "train N runs with seeds SEED..SEED+N-1 (each in OUT/runK) and report the mean and "
                          "standard deviation of their accuracies", metavar="N")
    # ---- many processes (mpiexec -n N minires train ...; see minires.distributed)
    nproc: int | None = option(None, "run on N processes: this command under `mpiexec -n N` (the dist extra's "
                                     "MPICH, or your MPI's); on a cluster start `mpiexec ... minires train` yourself",
                               metavar="N")
    sync_bn: bool = option(False, "batch-norm statistics over the global batch, summed over the processes "
                                  "(without it each process normalises by its own part, as PyTorch DDP; in one "
                                  "process it changes nothing); like the process count, taken from the command "
                                  "line on --resume")
    check_sync_every: int = option(0, "also check every K steps that the processes' weights agree bitwise "
                                      "(always after the first step)", metavar="K")
    dist_timeout: float = option(300.0, "seconds a process may wait in one collective before it takes another "
                                        "process for dead and ends the job", metavar="S")

    def __post_init__(self):
        if not self.out:  # the CLI default: runs/MODEL
            self.out = os.path.join("runs", self.recipe or self.model)

    def validate(self, check_init_from: bool = True) -> None:
        """Raise ValueError (FileNotFoundError for missing paths) naming the first bad option."""
        if self.model.lower() not in models.names():
            raise ValueError(f"unknown model {self.model!r}; choose one of: {', '.join(models.names())}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, float)) or not self.epochs > 0 \
                or not math.isfinite(self.epochs):
            raise ValueError(f"epochs must be a number > 0, got {self.epochs!r}")
        for name in ("batch_size", "eval_batch_size", "runs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("limit_train", "limit_test"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for f in dataclasses.fields(self):
            choices = f.metadata["choices"]
            if choices is not None and getattr(self, f.name) not in choices:
                raise ValueError(f"{f.name} must be one of {choices}, got {getattr(self, f.name)!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight-decay must be >= 0, got {self.weight_decay}")
        if not 0.0 < self.pct_start < 1.0:
            raise ValueError(f"pct-start must be in (0, 1), got {self.pct_start}")
        if self.nproc is not None and (not isinstance(self.nproc, int) or self.nproc < 1):
            raise ValueError(f"nproc must be an integer >= 1, got {self.nproc!r}")
        if not isinstance(self.check_sync_every, int) or self.check_sync_every < 0:
            raise ValueError(f"check-sync-every must be an integer >= 0, got {self.check_sync_every!r}")
        if isinstance(self.dist_timeout, bool) or not isinstance(self.dist_timeout, (int, float)) \
                or not self.dist_timeout > 0:
            raise ValueError(f"dist-timeout must be a number of seconds > 0, got {self.dist_timeout!r}")
        if self.cutout < 0:
            raise ValueError(f"cutout must be >= 0, got {self.cutout}")
        backend.parse_device(self.device)
        if self.data is not None and os.path.isfile(self.data):
            raise FileNotFoundError(f"--data {self.data} is a file, not a folder: pass the folder that holds the "
                                    f"dataset, e.g. --data {os.path.dirname(os.path.abspath(self.data))}")
        if self.data is not None and not os.path.isdir(self.data):
            raise FileNotFoundError(f"data directory {self.data!r} does not exist")
        if check_init_from and self.init_from is not None and not os.path.isfile(self.init_from):
            raise FileNotFoundError(f"--init-from: checkpoint {self.init_from!r} does not exist")

    @property
    def peak_lr(self) -> float:
        """lr, or the optimizer's default (DEFAULT_LR) when lr is None."""
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]


def apply_recipe(config: TrainConfig, recipe, log=print) -> TrainConfig:
    """config with recipe's settings (minires.recipes); ValueError naming an option given against it.

    A setting counts as given when it is listed in config.recipe_overrides (the command line lists
    every option typed) or differs from TrainConfig's default: a Python caller who wants a default
    value against the recipe (batch_size=128, say) lists it in recipe_overrides. Of the given ones,
    recipe.adjustable may differ from the recipe (with a note); any other is an error."""
    if recipe.from_scratch and (config.init_from is not None or config.freeze_backbone):
        raise ValueError(f"--recipe {recipe.name} trains its network from scratch: drop --init-from and "
                         f"--freeze-backbone")
    changes = {}
    for name, value in recipe.settings.items():
        given = getattr(config, name)
        if given == value or (given == _DEFAULTS[name] and name not in config.recipe_overrides):
            changes[name] = value
        elif name in recipe.adjustable:
            log(f"--recipe {recipe.name}: --{name.replace('_', '-')} {given} overrides the recipe's {value}")
        else:
            raise ValueError(f"--recipe {recipe.name} sets --{name.replace('_', '-')} {value}; drop "
                             f"--{name.replace('_', '-')} {given} (or train without --recipe)")
    return dataclasses.replace(config, **changes)


# Fields that define the run; on --resume they come from the checkpoint, not the command line.
RUN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["run"])
_TYPES = typing.get_type_hints(TrainConfig)
_DEFAULTS = {f.name: (f.default if f.default is not MISSING else f.default_factory())
             for f in dataclasses.fields(TrainConfig)}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default once, at the end of its help (none for flags and absent values)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.nargs == 0:
            return action.help
        return super()._get_help_string(action)


def add_arguments(parser, names=None) -> None:
    """Add the options of TrainConfig's fields `names` (default: every command-line field) to an
    argparse parser, with their defaults, help and choices; each option's dest is its field's name."""
    by_name = {f.name: f for f in dataclasses.fields(TrainConfig) if f.metadata["cli"]}
    for name in by_name if names is None else names:
        f, meta = by_name[name], by_name[name].metadata
        flag = meta["flag"] or "--" + name.replace("_", "-")
        hint = _TYPES[name]  # e.g. int, or int | None
        kind = next(t for t in (typing.get_args(hint) or (hint,)) if t is not type(None))
        if kind is bool:  # a switch: it turns on a field that defaults to off, or off one that defaults to on
            parser.add_argument(flag, dest=name, action="store_false" if f.default else "store_true",
                                help=meta["help"])
            continue
        extra = {"metavar": meta["metavar"]} if meta["metavar"] else {}
        choices = [c for c in meta["choices"] if c is not None] if meta["choices"] else None
        parser.add_argument(flag, dest=name, type=kind, default=f.default, choices=choices,
                            help=meta["help"], **extra)


def from_args(args, **overrides) -> TrainConfig:
    """The TrainConfig of parsed arguments (from a parser given add_arguments); overrides win."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    return TrainConfig(**{**values, **overrides})
