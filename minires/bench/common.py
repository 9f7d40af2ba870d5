"""Benchmark plumbing: machine header, timers, and the machine's GEMM and copy ceilings (used by
`minires bench` and the scripts in benchmarks/)."""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from .. import __version__, parallel
from ..backend import cupy_module, parse_device
from .load import busy_share, load_note


def torch_or_none():
    """PyTorch when importable (the reference to beat), else None."""
    try:
        import torch
        return torch
    except Exception:
        return None


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---- PyTorch's fastest CPU configuration (the reference every benchmark compares with) ---------------

TORCH_LAYOUTS = ("channels_last", "NCHW")  # timed both where cheap; the faster one is the reference
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")  # /proc/cpuinfo flags of bf16 hardware


def cpu_flags(cpuinfo=None) -> frozenset:
    """The CPU's feature flags from /proc/cpuinfo's text (read here when None); empty where unreadable."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 says flags, arm64 Features
            return frozenset(value.split())
    return frozenset()


def bf16_units(flags) -> tuple:
    """Which of avx512_bf16, amx_bf16, amx_tile the flags name, in that order."""
    return tuple(f for f in BF16_FLAGS if f in flags)


def has_bf16(flags) -> bool:
    """True where bf16 GEMMs run on hardware: AVX512-BF16, or AMX with its bf16 tiles (amx_bf16 + amx_tile)."""
    return "avx512_bf16" in flags or {"amx_bf16", "amx_tile"} <= set(flags)


def bf16_note(flags) -> str:
    """The header line naming the CPU's bf16 units and whether PyTorch's bf16-autocast row is measured."""
    units = bf16_units(flags)
    if has_bf16(flags):
        return f"CPU bf16 units: {', '.join(units)}: PyTorch bf16 autocast is measured as a reference row"
    have = f" (it has only {', '.join(units)})" if units else ""
    return ("CPU lacks AVX512-BF16 and AMX (no avx512_bf16 / amx_bf16 + amx_tile flags" + have + "): "
            "PyTorch's bf16-autocast row is not measured here (bf16 would run emulated)")


def faster_layout(ms_by_layout: dict) -> tuple:
    """(layout, ms) of the fastest of {layout: median ms}, e.g. {"channels_last": 1504, "NCHW": 2202};
    a tie goes to the first given."""
    if not ms_by_layout:
        raise ValueError("faster_layout: no layouts timed")
    for layout, ms in ms_by_layout.items():
        if not (isinstance(ms, (int, float)) and ms > 0 and ms < float("inf")):
            raise ValueError(f"faster_layout: {layout} took {ms!r} ms; expected a positive finite time")
    best = min(ms_by_layout, key=lambda k: ms_by_layout[k])
    return best, ms_by_layout[best]


def torch_memory_format(torch, layout: str):
    """torch.channels_last for "channels_last", torch.contiguous_format for "NCHW"."""
    formats = {"channels_last": torch.channels_last, "NCHW": torch.contiguous_format}
    if layout not in formats:
        raise ValueError(f"torch_memory_format: layout must be one of {TORCH_LAYOUTS}, got {layout!r}")
    return formats[layout]


def to_torch_layout(torch, layout: str, *objs):
    """The modules and 4-d tensors moved to `layout` with .to(memory_format=...), in order; a tensor that
    needs grad comes back as a leaf (detached, then requires_grad_)."""
    fmt = torch_memory_format(torch, layout)
    out = []
    for o in objs:
        if isinstance(o, torch.Tensor):
            leaf = o.requires_grad
            o = o.detach().to(memory_format=fmt) if o.dim() == 4 else o.detach()
            o = o.requires_grad_(leaf)
        else:
            o = o.to(memory_format=fmt)
        out.append(o)
    return out[0] if len(out) == 1 else out


def torch_reference_label(layout: str, bf16: bool = False) -> str:
    """A PyTorch row's name: float32 channels_last, float32 NCHW (the old reference), bf16 autocast ..."""
    if bf16:
        return f"PyTorch bf16 autocast {layout} (reference row)"
    return f"PyTorch float32 {layout}" + (" (the old reference)" if layout == "NCHW" else "")


TORCH_RUNS = {"torch_cl": ("channels_last", False), "torch_nchw": ("NCHW", False),
              "torch_bf16": ("channels_last", True)}  # name -> (layout, bf16 autocast)


def torch_variants(flags, device: str = "cpu", layouts=None, amp: bool = False) -> list:
    """[(name, layout, bf16)] of the PyTorch runs to time: float32 in `layouts` (default both on the CPU;
    channels_last alone on a GPU, where each run costs device time), and bf16 autocast (channels_last) on a
    CPU with bf16 hardware unless `amp` (float16 autocast) is on."""
    if layouts is None:
        layouts = TORCH_LAYOUTS if device == "cpu" else ("channels_last",)
    bad = [x for x in layouts if x not in TORCH_LAYOUTS]
    if bad or not layouts:
        raise ValueError(f"layouts must be some of {', '.join(TORCH_LAYOUTS)}, got {', '.join(layouts) or 'none'}")
    names = [n for n in ("torch_cl", "torch_nchw") if TORCH_RUNS[n][0] in layouts]
    names += ["torch_bf16"] if device == "cpu" and has_bf16(flags) and not amp else []
    return [(n, *TORCH_RUNS[n]) for n in names]


def torch_runs(parser, args, device: str, torch) -> list:
    """[(name, layout, bf16)] of the PyTorch runs a training-step benchmark times ([] without PyTorch), with
    PyTorch's threads set to args.threads first (the header then names the children's count); a bad
    args.layouts is the parser's error, checked with or without PyTorch."""
    if torch is not None:
        torch.set_num_threads(args.threads)
    try:  # float16 amp and bf16 autocast are not stacked: --amp runs no bf16 row
        runs = torch_variants(cpu_flags(), device, args.layouts and args.layouts.split(","), args.amp)
    except ValueError as e:
        parser.error(f"--layouts: {e}")
    return runs if torch is not None else []


def header(extra: str = "") -> str:
    """One block naming the machine and the versions, printed above every table."""
    torch = torch_or_none()
    lines = [
        f"machine: {cpu_name()}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}",
        f"python {platform.python_version()}, numpy {np.__version__}, minires {__version__}, "
        f"torch {torch.__version__ if torch else 'not installed'}"
        + (f" ({torch.get_num_threads()} threads)" if torch else ""),
    ]
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        lines.append(f"numpy BLAS: {blas.get('name', '?')} {blas.get('version', '')}")
    except Exception:
        pass
    try:
        lines.append(load_note(os.getloadavg()[0], os.cpu_count() or 1, busy_share()))
    except OSError:  # no load average on this system
        pass
    flags = cpu_flags()
    simd = [f for f in ("avx2", "fma", "avx512f") if f in flags]
    lines.append(f"CPU vector units: {', '.join(simd) or 'none of avx2, fma, avx512f'}; " + bf16_note(flags))
    if extra:
        lines.append(extra)
    return "\n".join(lines)


def _check_counts(name, repeats, warmup) -> None:
    """A median needs one timed call at least (statistics.median of none is a StatisticsError)."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"{name}: repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")


def median_ms(fn, repeats: int = 7, warmup: int = 2, sync=None) -> float:
    """Median wall time of fn() in milliseconds after `warmup` untimed calls."""
    _check_counts("median_ms", repeats, warmup)
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def interleaved_ms(fns, repeats: int = 7, warmup: int = 2, syncs=None) -> list:
    """Median wall time in ms of each fn in fns, timed in turns after the warm-ups.

    NOTE: this machine's speed drifts by up to 2x over seconds (other tenants' load on the host;
    the steal time is printed under each table). Timing minires and the reference in alternation
    exposes both to the same drift, so their ratio holds where two back-to-back medians do not.
    The order flips every round (a, b, b, a, a, b, ...) so that no function always runs right
    after the same other one: PyTorch's OpenMP threads spin for a while after each op and would
    otherwise always slow whatever follows them.
    """
    _check_counts("interleaved_ms", repeats, warmup)
    syncs = list(syncs) if syncs is not None else [None] * len(fns)
    if len(syncs) != len(fns):
        raise ValueError(f"interleaved_ms: {len(fns)} functions but {len(syncs)} syncs")
    for fn, sync in zip(fns, syncs):
        for _ in range(warmup):
            fn()
        if sync:
            sync()
    times = [[] for _ in fns]
    order = list(range(len(fns)))
    for r in range(repeats):
        for i in (order if r % 2 == 0 else order[::-1]):
            t0 = time.perf_counter()
            fns[i]()
            if syncs[i]:
                syncs[i]()
            times[i].append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def cpu_steal() -> tuple:
    """(steal, total) CPU jiffies from /proc/stat so far; (0, 0) where unreadable (not Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        return fields[7], sum(fields[:8])
    except (OSError, ValueError, IndexError):
        return 0, 0


def steal_percent(since: tuple) -> str:
    """The share of CPU time the hypervisor gave to other guests since `since` (a cpu_steal())."""
    steal, total = cpu_steal()
    if total - since[1] <= 0:
        return "n/a"
    return f"{100 * (steal - since[0]) / (total - since[1]):.1f}%"


def gemm_ceiling_gflops(n: int = 2048, repeats: int = 5) -> float:
    """float32 n x n GEMM throughput on all cores, the machine's matmul ceiling.

    The better of numpy's BLAS on its own threads and one single-threaded BLAS GEMM per minires
    thread (how the kernels run inside parallel.hold_blas, where the Trainer and the benchmarks run them).
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    whole = median_ms(lambda: np.matmul(a, b, out=out), repeats=repeats, warmup=1)
    with parallel.hold_blas():
        split = median_ms(lambda: parallel.split(lambda r0, r1: np.matmul(a[r0:r1], b, out=out[r0:r1]), n,
                                                 blas=True, item_size=n * n), repeats=repeats, warmup=1)
    return 2 * n ** 3 / (min(whole, split) * 1e-3) / 1e9


def copy_ceiling_gbs(nbytes: int = 256 << 20, repeats: int = 5) -> float:
    """Memory-copy bandwidth (bytes read + written per second) of a large copy split over minires's threads."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    ms = median_ms(lambda: parallel.split(lambda i0, i1: np.copyto(dst[i0:i1], src[i0:i1]), src.size),
                   repeats=repeats, warmup=1)
    return 2 * nbytes / (ms * 1e-3) / 1e9


def cuda_median_ms(fn, repeats: int = 7, warmup: int = 2, device: str = "cuda:0") -> float:
    """Median GPU time of fn() in milliseconds, each call between two CUDA events, after `warmup` calls."""
    _check_counts("cuda_median_ms", repeats, warmup)
    cp = cupy_module()
    with cp.cuda.Device(int(device.split(":")[1])):
        for _ in range(warmup):
            fn()
        cp.cuda.Device().synchronize()
        times = []
        for _ in range(repeats):
            start, end = cp.cuda.Event(), cp.cuda.Event()
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(cp.cuda.get_elapsed_time(start, end))
    return statistics.median(times)


def cuda_ceilings(device: str = "cuda:0", n: int = 8192, nbytes: int = 1 << 30) -> tuple:
    """(float32 GEMM GFLOP/s through cupy.matmul, copy GB/s read + written) on the GPU, this run."""
    cp = cupy_module()
    with cp.cuda.Device(int(device.split(":")[1])):
        a = cp.random.standard_normal((n, n), dtype=cp.float32)
        b = cp.random.standard_normal((n, n), dtype=cp.float32)
        out = cp.empty((n, n), cp.float32)
        ms = cuda_median_ms(lambda: cp.matmul(a, b, out=out), 5, 2, device)
        src = cp.ones(nbytes // 4, cp.float32)
        dst = cp.empty_like(src)
        cms = cuda_median_ms(lambda: cp.copyto(dst, src), 5, 2, device)
    return 2 * n ** 3 / (ms * 1e-3) / 1e9, 2 * nbytes / (cms * 1e-3) / 1e9


def cuda_header(device: str = "cuda:0") -> str:
    """The GPU's name and the CUDA runtime, driver and CuPy versions."""
    cp = cupy_module()
    i = int(device.split(":")[1])
    props = cp.cuda.runtime.getDeviceProperties(i)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]

    def version(v):
        return f"{v // 1000}.{(v % 1000) // 10}"
    return (f"gpu {device}: {name}, {props['totalGlobalMem'] / 2**30:.0f} GiB; CUDA runtime "
            f"{version(cp.cuda.runtime.runtimeGetVersion())}, driver {version(cp.cuda.runtime.driverGetVersion())}, "
            f"cupy {cp.__version__}")


def write_json(path: str, obj) -> None:
    """Write JSON atomically (temp file + rename)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def markdown_table(rows, columns) -> str:
    """rows: list of dicts; columns: list of (key, title, format)."""
    out = ["| " + " | ".join(t for _, t, _ in columns) + " |",
           "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        cells = []
        for key, _, fmt in columns:
            v = r.get(key)
            cells.append("" if v is None else (fmt.format(v) if fmt else str(v)))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)



def resolve_device(parser, name: str, torch):
    """(device, header lines, torch or None) for --device NAME: "cuda" -> "cuda:0" with the GPU's header;
    a bad name, no CuPy or no GPU is a parser error before any child starts; PyTorch without CUDA on a
    GPU run is dropped with a note (minires only)."""
    try:
        device = parse_device(name)
        extra = cuda_header(device) + "\n" if device.startswith("cuda") else ""
    except Exception as e:
        parser.error(f"--device {name}: {e}")
    if torch is not None and device.startswith("cuda") and not torch.cuda.is_available():
        print(f"(PyTorch {torch.__version__} has no CUDA here: minires only)", file=sys.stderr)
        torch = None
    return device, extra, torch


def scaled_step(loss_fn, opt, scaler):
    """One training step on loss_fn()'s loss, through a GradScaler (PyTorch's or minires's) when given."""
    def step():
        loss = loss_fn()
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    return step


if __name__ == "__main__":
    print(header())
    print(f"GEMM ceiling {gemm_ceiling_gflops():.1f} GFLOP/s, copy ceiling {copy_ceiling_gbs():.1f} GB/s",
          file=sys.stderr)
