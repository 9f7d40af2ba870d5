"""Benchmark plumbing for the scripts in this folder: this checkout's minires ahead of any installed
copy (a benchmark measures the code beside it), then everything of minires.bench.common."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(ROOT, "minires")) and ROOT not in sys.path:
    sys.path.insert(1, ROOT)

from minires.backend import parse_device  # noqa: E402
from minires.bench.common import *  # noqa: E402,F401,F403
from minires.bench.common import cuda_header  # noqa: E402


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
