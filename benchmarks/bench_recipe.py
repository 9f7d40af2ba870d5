"""Training steps of the airbench94 recipe: minires's recipe path against the same recipe in PyTorch.

    python benchmarks/bench_recipe.py                           # CPU, batch 1024, 2 threads, 5 steps, 3 rounds
    python benchmarks/bench_recipe.py --batch 512 --steps 3 --rounds 2   # issue 24's comparison
    python benchmarks/bench_recipe.py --steps 3 --rounds 1      # a quick look
    python benchmarks/bench_recipe.py --device cuda             # GPU: minires amp; PyTorch channels_last + fp16 autocast
    python benchmarks/bench_recipe.py --device cuda --compile   # ... with PyTorch's model under torch.compile
    python benchmarks/bench_recipe.py --profile                 # also forward by stage, backward, optimizer

minires runs what the Trainer runs for `minires train --recipe airbench94`: the model from
minires.models, its whitening filters from recipe.prepare, recipe.optimizer / scheduler / loss_fn,
minires.train.step.train_step, scheduler.step() and recipe.after_step (the lookahead EMA every 5
steps). PyTorch runs the same recipe built here after the published airbench94 (Keller Jordan,
legacy/airbench94.py): same network, Nesterov SGD with the same two parameter groups, lr triangle,
summed label-smoothed cross-entropy and lookahead EMA, on the same batch. PyTorch runs in float32
channels_last (model and input .to(memory_format=torch.channels_last)) and in float32 NCHW (the old
reference); the faster is the reference the ratios are to. On a CPU with AVX512-BF16 or AMX it also
runs bf16 autocast (channels_last) as a reference row. Each library runs --threads threads.

The batch is random CIFAR-sized images (uint8, normalised with CIFAR-10's mean and std) with random
labels: loading and augmenting data is not in the step time (the minires augmentation of one batch
is timed on its own). The step time is the median over the timed steps of (train step + scheduler
step + after_step) with the EMA's cost spread over its 5 steps; the projected run is that times the
recipe's step count (ceil(9.9 * floor(50000 / batch)) = 476 at batch 1024). Each library runs
--rounds times, each time in a fresh process, the runs in turns; the table gives the median.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's minires first
from minires.bench.common import (TORCH_LAYOUTS, TORCH_RUNS, cpu_steal, faster_layout, header,  # noqa: E402
                                  markdown_table, resolve_device, scaled_step, steal_percent, to_torch_layout,
                                  torch_or_none, torch_reference_label, torch_runs, write_json)

TRAIN_IMAGES = 50000  # CIFAR-10's training set: the recipe's steps per epoch are TRAIN_IMAGES // batch
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


# ---- the recipe in PyTorch (reference only; never imported by the library) --------------------------

def torch_airbench94(widths=(64, 256, 256), num_classes=10, bn_momentum=0.4, scale=1 / 9):
    """airbench94's network; attribute names as minires.models.airbench's, for the --profile stages."""
    import torch
    import torch.nn as nn

    def conv(cin, cout):
        c = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        with torch.no_grad():
            nn.init.dirac_(c.weight[:min(cin, cout)])  # the first C_in filters pass their input through
        return c

    def norm(c):
        bn = nn.BatchNorm2d(c, eps=1e-12, momentum=bn_momentum)
        bn.weight.requires_grad = False
        return bn

    class ConvGroup(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv1, self.pool, self.norm1 = conv(cin, cout), nn.MaxPool2d(2), norm(cout)
            self.conv2, self.norm2, self.activ = conv(cout, cout), norm(cout), nn.GELU()

        def forward(self, x):
            x = self.activ(self.norm1(self.pool(self.conv1(x))))
            return self.activ(self.norm2(self.conv2(x)))

    class Airbench94(nn.Module):
        def __init__(self):
            super().__init__()
            self.whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
            self.whiten.weight.requires_grad = False
            with torch.no_grad():
                self.whiten.bias.zero_()
            self.activ = nn.GELU()
            self.layer1 = ConvGroup(24, widths[0])
            self.layer2 = ConvGroup(widths[0], widths[1])
            self.layer3 = ConvGroup(widths[1], widths[2])
            self.pool, self.flatten = nn.MaxPool2d(3), nn.Flatten()
            self.fc = nn.Linear(widths[2], num_classes, bias=False)
            self.scale = scale

        def forward(self, x):
            x = self.layer3(self.layer2(self.layer1(self.activ(self.whiten(x)))))
            return self.fc(self.flatten(self.pool(x))) * self.scale

    return Airbench94()


def torch_whiten_(weight, images, eps=5e-4):
    """weight (2k, C, h, w) = the top k eigenvectors of the images' h x w patch covariance / sqrt(eigenvalue + eps),
    then their negatives (airbench's whitening init, written here)."""
    import torch
    c, h, w = weight.shape[1:]
    k = weight.shape[0] // 2
    patches = images.double().unfold(2, h, 1).unfold(3, w, 1)  # (N, C, H', W', h, w)
    flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * h * w)
    evals, evecs = torch.linalg.eigh(flat.T @ flat / len(flat))  # ascending
    evals, evecs = evals.flip(0)[:k], evecs.T.flip(0)[:k]
    filters = (evecs / torch.sqrt(evals + eps)[:, None]).reshape(k, c, h, w)
    with torch.no_grad():
        weight.copy_(torch.cat([filters, -filters]).to(weight.dtype))


class TorchLookahead:
    """airbench's LookaheadState: ema <- lerp(ema, model, 1 - decay), then model <- ema, over the float state."""

    def __init__(self, model):
        self.model = model
        self.ema = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def update(self, decay):
        import torch
        with torch.no_grad():
            state = self.model.state_dict()
            for k, avg in self.ema.items():
                avg.lerp_(state[k], 1 - decay)
                state[k].copy_(avg)


# ---- one process: one library ----------------------------------------------------------------------

def _batch(batch: int, seed: int = 0):
    """Random uint8 images (N, 32, 32, 3), the same normalised (N, 3, 32, 32) float32, random labels."""
    from minires.data import CIFAR10_MEAN, CIFAR10_STD
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
    mean = np.asarray(CIFAR10_MEAN, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(CIFAR10_STD, np.float32).reshape(1, 3, 1, 1)
    x = ((images.transpose(0, 3, 1, 2).astype(np.float32) / 255 - mean) / std).astype(np.float32)
    return images, np.ascontiguousarray(x), rng.integers(0, 10, batch).astype(np.int64)


def _config(recipe, batch: int, **kw):
    """The Trainer's config for the recipe (apply_recipe), at this batch size.

    NOTE: set after apply_recipe, not through it: it reads a batch_size equal to TrainConfig's
    default (128) as "not given" (unless listed in recipe_overrides) and puts the recipe's 1024 there."""
    from minires.train.config import TrainConfig, apply_recipe
    return dataclasses.replace(apply_recipe(TrainConfig(recipe="airbench94", **kw), recipe, log=lambda *a: None),
                               batch_size=batch)


def _step_numbers(warmup: int, steps: int, every: int) -> list:
    """1-based run step numbers of the warm-up and timed steps, shifted so that the last timed one takes the EMA."""
    offset = (-(warmup + steps)) % every
    return [offset + i + 1 for i in range(warmup + steps)]


def _summary(train_ms, after_ms, numbers, warmup, every) -> dict:
    timed = list(zip(train_ms, after_ms, numbers))[warmup:]
    ema = [a for _, a, n in timed if n % every == 0]
    plain = [a for _, a, n in timed if n % every != 0]
    train = statistics.median(t for t, _, _ in timed)
    after = statistics.median(plain) if plain else 0.0
    ema_ms = statistics.median(ema) if ema else 0.0
    return {"train_ms": train, "ema_ms": ema_ms, "step_ms": train + after + (ema_ms - after) / every,
            "steps_ms": [round(t + a, 1) for t, a, _ in timed]}


def _stage_forward(model, x):
    """model(x) stage by stage (both libraries' models have these attributes): [(stage, fn)]."""
    return [("whiten+gelu", lambda h: model.activ(model.whiten(h))), ("layer1", model.layer1),
            ("layer2", model.layer2), ("layer3", model.layer3),
            ("pool+fc", lambda h: model.fc(model.flatten(model.pool(h))) * model.scale)]


def _profile(model, x, y, loss_fn, opt_step, zero_grad, autocast, sync, reps: int) -> dict:
    """Median ms of each forward stage, the loss, the backward and the optimizer step (scaler included)."""
    times = {}

    def clock(name, fn):
        t0 = time.perf_counter()
        out = fn()
        sync()
        times.setdefault(name, []).append((time.perf_counter() - t0) * 1e3)
        return out

    for _ in range(reps):
        zero_grad()
        sync()
        with autocast():
            h = x
            for name, fn in _stage_forward(model, x):
                h = clock("fwd " + name, lambda: fn(h))
            loss = clock("loss", lambda: loss_fn(h, y))
        clock("backward", lambda: opt_step(loss, backward_only=True))
        clock("optimizer", lambda: opt_step(loss, backward_only=False))
    return {k: statistics.median(v) for k, v in times.items()}


def run_minires(args) -> dict:
    import minires as mr
    from minires import backend, parallel
    from minires.optim import GradScaler
    from minires import recipes
    from minires.recipes import airbench94 as recipe_module
    from minires.train.memory import keep_freed_memory
    from minires.train.step import train_step

    keep_freed_memory()  # as `minires train` does: freed activations stay in the heap (fewer page faults)
    parallel.set_num_threads(args.threads)
    device = args.device
    recipe = recipes.get("airbench94")
    config = _config(recipe, args.batch, device=device, amp=args.amp)
    total = recipe.total_steps(config, TRAIN_IMAGES // config.batch_size)
    images, x, y = _batch(config.batch_size)

    class Images:  # the part of a training set that recipe.prepare reads: its uint8 (N, H, W, C) images
        data = images

        def __len__(self):
            return len(self.data)

    mr.manual_seed(config.seed)
    model = recipe.build_model(config, 10)
    recipe.prepare(model, Images(), config)  # whitening filters from (up to 5,000 of) the "training" images
    model.to(device).train()
    optimizer = recipe.optimizer(model, config)
    scheduler = recipe.scheduler(optimizer, config, total)
    loss_fn = recipe.loss_fn(config)
    scaler = GradScaler(enabled=config.amp)
    recipe.attach(model)
    recipe.start_epoch(model, 0)
    xt, yt = mr.tensor(x, device=device), mr.tensor(y, device=device)
    sync = (backend.cupy_module().cuda.Device(int(device.split(":")[1])).synchronize
            if device.startswith("cuda") else (lambda: None))

    every = recipe_module.EMA_EVERY
    numbers = _step_numbers(args.warmup, args.steps, every)
    train_ms, after_ms, skipped = [], [], 0
    out = {}
    with parallel.hold_blas():  # as the Trainer: BLAS at one thread, the kernels split over minires's threads
        for n in numbers:
            sync()
            t0 = time.perf_counter()
            result = train_step(model, loss_fn, optimizer, xt, yt, scaler)
            scheduler.step()
            sync()
            t1 = time.perf_counter()
            recipe.after_step(model, n, total)
            sync()
            t2 = time.perf_counter()
            train_ms.append((t1 - t0) * 1e3)
            after_ms.append((t2 - t1) * 1e3)
            skipped += result.skipped
        out.update(_summary(train_ms, after_ms, numbers, args.warmup, every))

        # The data pipeline the Trainer's DataLoader runs per batch (prefetched, so not in the step):
        # uint8 to the device, float in [0, 1], alternating flip + reflect-pad-2 crop + normalise.
        from minires.data.transforms import SampleRNG
        transform = recipe.transforms(config, 32, train=True)
        index = np.arange(config.batch_size)

        def augment():
            b = backend.to_device(images, device).transpose(0, 3, 1, 2).astype(np.float32, order="C")
            b /= 255
            return transform(b, SampleRNG(index, config.seed, 0))
        aug = []
        for i in range(3):
            t0 = time.perf_counter()
            augment()
            sync()
            aug.append((time.perf_counter() - t0) * 1e3)
        out["augment_ms"] = statistics.median(aug[1:])

        if args.profile:
            def opt_step(loss, backward_only):
                if backward_only:
                    (scaler.scale(loss) if scaler.is_enabled() else loss).backward()
                elif scaler.is_enabled():
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
            autocast = (lambda: mr.amp.autocast()) if config.amp else contextlib.nullcontext
            out["profile"] = _profile(model, xt, yt, loss_fn, opt_step, optimizer.zero_grad, autocast, sync,
                                      args.profile_reps)
    import resource
    trainable = sum(int(np.prod(p.shape)) for p in model.parameters() if p.requires_grad)
    out.update(lib="mr", batch=config.batch_size, total_steps=total, threads=parallel.get_num_threads(),
               amp=bool(config.amp), skipped=skipped, trainable_params=trainable,
               peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def run_torch(args) -> dict:
    import torch
    from minires import recipes
    from minires.recipes import airbench94 as R

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    # The recipe's numbers come from minires's recipe module: the same batch, step count and hyperparameters.
    recipe = recipes.get("airbench94")
    config = _config(recipe, args.batch)
    total = recipe.total_steps(config, TRAIN_IMAGES // config.batch_size)
    images, x, y = _batch(config.batch_size)

    torch.manual_seed(config.seed)
    model = torch_airbench94()
    whiten_images = torch.tensor(x[:R.WHITEN_IMAGES])
    torch_whiten_(model.whiten.weight, whiten_images)
    layout = args.layout or ("channels_last" if cuda else "NCHW")  # no --layout: what a parent before issue 24 asked
    model, xt = to_torch_layout(torch, layout, model.to(dev).train(), torch.tensor(x, device=dev))
    yt = torch.tensor(y, device=dev)

    norm_biases = [p for k, p in model.named_parameters() if "norm" in k and p.requires_grad]
    others = [p for k, p in model.named_parameters() if "norm" not in k and p.requires_grad]
    lr, bias_lr = config.lr, config.lr * R.BIAS_LR_SCALE
    wd = config.weight_decay * config.batch_size / 1024  # per step, growing with the batch (as the recipe's)
    opt = torch.optim.SGD([{"params": norm_biases, "lr": bias_lr, "weight_decay": wd / bias_lr},
                           {"params": others, "lr": lr, "weight_decay": wd / lr}],
                          momentum=config.momentum, nesterov=True)
    peak = int(config.pct_start * total)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: float(np.interp(s, [0, peak, total], [0.2, 1.0, 0.07])))
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing, reduction="sum")
    ema = TorchLookahead(model)
    scaler = torch.amp.GradScaler(dev.type) if args.amp else None
    net = torch.compile(model) if args.compile else model

    def autocast():
        if args.bf16:  # a reference row on CPUs with bf16 hardware
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast(dev.type, dtype=torch.float16) if args.amp else contextlib.nullcontext()

    def loss():
        opt.zero_grad(set_to_none=True)
        with autocast():
            return criterion(net(xt), yt)
    train = scaled_step(loss, opt, scaler)

    def step():
        train()
        sched.step()

    def after_step(n):
        if n % R.EMA_EVERY == 0:
            ema.update(0.95 ** R.EMA_EVERY * (n / total) ** 3)
        if n == total:
            ema.update(1.0)

    sync = (lambda: torch.cuda.synchronize(dev)) if cuda else (lambda: None)
    numbers = _step_numbers(args.warmup, args.steps, R.EMA_EVERY)
    train_ms, after_ms = [], []
    for n in numbers:
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        t1 = time.perf_counter()
        after_step(n)
        sync()
        t2 = time.perf_counter()
        train_ms.append((t1 - t0) * 1e3)
        after_ms.append((t2 - t1) * 1e3)
    out = _summary(train_ms, after_ms, numbers, args.warmup, R.EMA_EVERY)
    if args.profile:  # eager model (not the compiled one): the stages are called one by one
        def opt_step(loss, backward_only):
            if backward_only:
                (scaler.scale(loss) if scaler is not None else loss).backward()
            elif scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
        out["profile"] = _profile(model, xt, yt, criterion, opt_step, lambda: opt.zero_grad(set_to_none=True),
                                  autocast, sync, args.profile_reps)
    import resource
    out.update(lib="torch", batch=config.batch_size, total_steps=total, threads=torch.get_num_threads(),
               amp=bool(args.amp), bf16=bool(args.bf16), compiled=bool(args.compile), layout=layout,
               trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
               peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


# ---- the parent: rounds in turns, the table ---------------------------------------------------------

def _mark_reference(rows) -> tuple:
    """(reference row, its layout): the faster float32 PyTorch run; every row gets its step time over the
    reference's as "vs_reference", and the reference's label says so."""
    float32 = {TORCH_RUNS[r["run"]][0]: r for r in rows if r["run"] in TORCH_RUNS and not TORCH_RUNS[r["run"]][1]}
    layout, _ = faster_layout({k: r["step_ms"] for k, r in float32.items()})
    ref = float32[layout]
    ref["library"] += " = reference"
    for row in rows:
        row["vs_reference"] = row["step_ms"] / ref["step_ms"]
    return ref, layout


def _child_cmd(lib, args, device):
    """The child's command line: lib is "mr" or a PyTorch run of TORCH_RUNS."""
    torch_run = []
    if lib in TORCH_RUNS:
        layout, bf16 = TORCH_RUNS[lib]
        lib, torch_run = "torch", ["--layout", layout] + (["--bf16"] if bf16 else [])
    cmd = [sys.executable, os.path.abspath(__file__), "--child", lib, *torch_run, "--device", device,
           "--batch", str(args.batch),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
           "--profile-reps", str(args.profile_reps), "--amp" if args.amp else "--no-amp"]
    return cmd + (["--compile"] if args.compile else []) + (["--profile"] if args.profile else [])


def _child_env(lib, args):
    env = dict(os.environ)
    if lib == "mr":  # BLAS at one thread from the start: what hold_blas() does, even without threadpoolctl
        env.update({k: "1" for k in BLAS_ENV})
    else:
        env.update({k: str(args.threads) for k in BLAS_ENV})
    return env


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i] (PyTorch on the same device)")
    p.add_argument("--batch", type=int, default=1024, help="images per step (the recipe's 1024)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per process")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    p.add_argument("--rounds", type=int, default=3, help="processes per library, run in turns")
    p.add_argument("--threads", type=int, default=2, help="CPU threads of each library")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="float16 autocast + loss scaling in both (default: on for cuda, off for cpu)")
    p.add_argument("--compile", action="store_true", help="PyTorch's model under torch.compile (default eager)")
    p.add_argument("--profile", action="store_true", help="also time forward by stage, backward and optimizer")
    p.add_argument("--profile-reps", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--layouts", default=None, help="PyTorch float32 layouts to time, e.g. channels_last "
                   "(default channels_last,NCHW on cpu; channels_last on cuda)")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--child", choices=("mr", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--layout", choices=TORCH_LAYOUTS, default=None, help=argparse.SUPPRESS)  # a PyTorch child's
    p.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)  # a PyTorch child: bf16 autocast
    args = p.parse_args(argv)
    if args.rounds < 1 or args.steps < 1 or args.warmup < 0 or args.threads < 1 or args.profile_reps < 1:
        p.error("--rounds, --steps, --threads must be >= 1 and --warmup >= 0")
    if args.batch < 1 or args.batch > TRAIN_IMAGES:
        p.error(f"--batch must lie in [1, {TRAIN_IMAGES}]")
    if args.amp is None:
        args.amp = args.device.startswith("cuda")
    if args.child:
        print(json.dumps((run_minires if args.child == "mr" else run_torch)(args)))
        return

    torch = None if args.no_torch else torch_or_none()
    from minires import recipes
    device, extra, torch = resolve_device(p, args.device, torch)
    runs = torch_runs(p, args, device, torch)
    libs = ["mr"] + [name for name, _, _ in runs]
    recipe = recipes.get("airbench94")
    config = _config(recipe, args.batch)
    per_epoch = TRAIN_IMAGES // config.batch_size
    total = recipe.total_steps(config, per_epoch)
    blas = ("hold_blas() via threadpoolctl" if importlib.util.find_spec("threadpoolctl")
            else "no threadpoolctl here, so hold_blas() is a no-op: the child's BLAS env vars do it")
    gpu = device.startswith("cuda")
    extra += (f"recipe airbench94: batch {config.batch_size}, {config.epochs:g} epochs of {per_epoch} steps = {total} "
              f"steps (ceil({config.epochs:g} * ({TRAIN_IMAGES} // {config.batch_size}))); Nesterov SGD momentum "
              f"{config.momentum}, summed CE with label smoothing {config.label_smoothing}, lookahead EMA every "
              f"5 steps\n")
    extra += (f"minires: recipe path (models.get + recipe.prepare/optimizer/scheduler/loss_fn, train.step.train_step, "
              f"recipe.after_step), {args.threads} thread(s), BLAS at 1 thread ({blas})"
              + (", amp (float16 autocast + GradScaler)" if args.amp else ", float32") + "\n")
    if runs:
        extra += (f"PyTorch {torch.__version__}: airbench94 built in this script, torch.set_num_threads({args.threads}), "
                  + ("cudnn.benchmark, " if gpu else "")
                  + ("fp16 autocast + GradScaler, " if args.amp else "")
                  + f"torch.compile: {'yes (default mode)' if args.compile else 'no (eager)'}; runs: "
                  + "; ".join(torch_reference_label(layout, bf16).replace("float32", "fp16 autocast" if args.amp
                                                                          else "float32") for _, layout, bf16 in runs)
                  + "; the reference is the faster float32 layout, ratios are to it\n")
    head = header(extra + f"training step on {device}: random normalised images + random labels (data loading and "
                  f"augmentation not timed); per process {args.warmup} warm-up + {args.steps} timed steps, median "
                  f"step with the EMA spread over its 5 steps; {args.rounds} round(s) of fresh processes"
                  + (f", the runs in turns ({', '.join(libs)}, then reversed, ...)" if len(libs) > 1 else "")
                  + ", median over rounds")
    print(head, flush=True)
    since = cpu_steal()
    runs_by_lib = {lib: [] for lib in libs}
    for r in range(args.rounds):  # in turns, the order flipped each round: drift and spin-down hit both alike
        for lib in (libs if r % 2 == 0 else libs[::-1]):
            out = subprocess.run(_child_cmd(lib, args, device), capture_output=True, text=True,
                                 env=_child_env(lib, args))
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{lib} round {r + 1} failed")
            res = json.loads(out.stdout.strip().splitlines()[-1])
            runs_by_lib[lib].append(res)
            print(f"  round {r + 1} {lib}: step {res['step_ms']:.0f} ms (steps {res['steps_ms']}), "
                  f"EMA {res['ema_ms']:.1f} ms", flush=True)

    rows = []
    for lib, rs in runs_by_lib.items():
        step_ms = statistics.median(r["step_ms"] for r in rs)
        row = {"library": "minires" if lib == "mr" else torch_reference_label(*TORCH_RUNS[lib]), "run": lib,
               "step_ms": step_ms, "img_s": config.batch_size / (step_ms / 1e3),
               "ema_ms": statistics.median(r["ema_ms"] for r in rs), "projected_s": step_ms * total / 1e3,
               "peak_rss_mb": max(r["peak_rss_mb"] for r in rs), "params": rs[0]["trainable_params"],
               "rounds_ms": [round(r["step_ms"]) for r in rs]}
        if lib == "mr":
            row["augment_ms"] = statistics.median(r["augment_ms"] for r in rs)
            row["skipped"] = sum(r["skipped"] for r in rs)
        else:
            row["compiled"] = rs[0]["compiled"]
        if args.profile:
            row["profile"] = {k: statistics.median(r["profile"][k] for r in rs) for k in rs[0]["profile"]}
        rows.append(row)
    by_run = {row["run"]: row for row in rows}
    ref, layout = _mark_reference(rows) if runs else (None, None)
    columns = [("library", "library", None), ("step_ms", "ms / step", "{:.0f}"), ("img_s", "images/s", "{:.0f}"),
               ("ema_ms", "EMA update ms (1 in 5 steps)", "{:.1f}"),
               ("projected_s", f"projected {total}-step run (s)", "{:.0f}"),
               ("peak_rss_mb", "peak RSS MB", "{:.0f}"), ("params", "trainable params", None)]
    columns += [("vs_reference", "step time / reference", "{:.2f}x")] if ref else []
    columns += [("rounds_ms", "ms / step per round", None)]
    table = markdown_table(rows, columns)
    summary = {"total_steps": total}
    mine = rows[0]
    if ref:
        summary.update(ratio=mine["vs_reference"], reference=ref["run"])
        if "torch_nchw" in by_run:
            summary["ratio_nchw"] = mine["step_ms"] / by_run["torch_nchw"]["step_ms"]
        table += (f"\n\nminires / PyTorch float32 {layout} (the reference) step time: {summary['ratio']:.2f} "
                  f"(< 1: minires faster)"
                  + (f"; against the old NCHW reference {summary['ratio_nchw']:.2f}" if "ratio_nchw" in summary else "")
                  + f"; projected "
                  f"training time {mine['projected_s']:.0f} s vs {ref['projected_s']:.0f} s; torch.compile "
                  f"{'used' if args.compile else 'not used'}")
        if "torch_bf16" in by_run:
            table += f"; PyTorch bf16 autocast takes {by_run['torch_bf16']['vs_reference']:.2f} of the reference's time"
    table += (f"\n\nminires augmentation of one batch (uint8 -> float, alternating flip, reflect-pad-2 crop, "
              f"normalise; prefetched by the DataLoader, not in the step): {mine['augment_ms']:.0f} ms")
    if mine["skipped"]:
        table += f"\nminires amp skipped {mine['skipped']} step(s) for overflowing float16 gradients"
    if args.profile:
        phases = list(mine["profile"])
        prof = [{"phase": k, "mr": mine["profile"][k], "torch": ref["profile"].get(k) if ref else None}
                for k in phases]
        pcols = [("phase", "phase (eager, median of %d)" % args.profile_reps, None), ("mr", "minires ms", "{:.1f}")]
        if ref:
            for d in prof:
                d["ratio"] = d["mr"] / d["torch"] if d.get("torch") else None
            pcols += [("torch", f"PyTorch {layout} ms", "{:.1f}"), ("ratio", "minires / PyTorch", "{:.2f}")]
        table += "\n\n" + markdown_table(prof, pcols)
    table += f"\n\nCPU steal time during the run: {steal_percent(since)}"
    print()
    print(table)
    write_json(os.path.join(args.out, "bench_recipe.json"), {"header": head, "rows": rows, **summary,
                                                             "runs": runs_by_lib})
    with open(os.path.join(args.out, "bench_recipe.md"), "w") as f:
        f.write("```\n" + head + "\n```\n\n" + table + "\n")


if __name__ == "__main__":
    main()
