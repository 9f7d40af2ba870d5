"""Time grouped and depthwise conv2d (forward + backward) on a GPU: minires's CUDA fast paths against the
reference on the same CuPy arrays, and against PyTorch (cuDNN, channels_last) where importable, IN TURNS.

    python3 benchmarks/gpu_grouped.py [--repeats 20] [--batch 128] [--out DIR]

Rehearsal on the CPU (tiny sizes): MINIRES_CUPY_MODULE=cupy_standin PYTHONPATH=.:tests \
    python3 benchmarks/gpu_grouped.py --batch 2 --repeats 2 --size 8
Layers: MobileNetV2's depthwise 3x3 (stride 1 and 2, channels-last input as the CUDA path gives it) and
RegNetX-200MF / ResNeXt grouped 3x3 convs. Prints the median ms per row (common.interleaved_ms: in turns,
the order flipped each round) and the ratios.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.getcwd())  # run from the repository root: this checkout's minires
import minires as mr  # noqa: E402
import minires.functional as F  # noqa: E402
from minires import backend, dispatch  # noqa: E402
from minires.bench.common import cuda_header, header, interleaved_ms, markdown_table, write_json  # noqa: E402

# (name, C_in, C_out, groups, stride, H)
LAYERS = [("mbv2 dw 144 s1", 144, 144, 144, 1, 16), ("mbv2 dw 144 s2", 144, 144, 144, 2, 16),
          ("mbv2 dw 384 s1", 384, 384, 384, 1, 8), ("mbv2 dw 960 s1", 960, 960, 960, 1, 4),
          ("regnetx g8 56", 56, 56, 7, 1, 16), ("regnetx g8 152 s2", 152, 152, 19, 2, 8),
          ("resnext 32x4d 128", 128, 128, 32, 1, 16)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=0, help="override H = W (0: the layer's own)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    cp = backend.cupy_module()
    try:
        import torch
        torch_ok = torch.cuda.is_available()
    except Exception:
        torch, torch_ok = None, False
    print(header(), flush=True)
    try:
        print(cuda_header("cuda:0"), flush=True)
    except Exception as e:  # the CuPy stand-in has no device properties
        print(f"gpu: not described ({type(e).__name__}); a rehearsal's times mean nothing", flush=True)
    print(f"forward + backward (dx, dw) per layer, batch {a.batch}, {a.dtype}, channels-last input, median of "
          f"{a.repeats} in turns (fast path, reference, PyTorch cuDNN channels_last where importable)", flush=True)
    rows = []
    for name, C, O, G, S, H in LAYERS:
        H = a.size or H
        rng = np.random.default_rng(0)
        xa = rng.standard_normal((a.batch, C, H, H)).astype(a.dtype)
        xa = np.ascontiguousarray(xa.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)   # channels-last
        wa = (rng.standard_normal((O, C // G, 3, 3)) * 0.1).astype(a.dtype)
        x = mr.tensor(xa, device="cuda", requires_grad=True)
        w = mr.tensor(wa, device="cuda", requires_grad=True)
        g = None

        def step(impl):
            nonlocal g
            x.grad = w.grad = None  # no accumulation pass in the timing
            with dispatch.use_impl(impl):
                out = F.conv2d(x, w, stride=S, padding=1, groups=G)
                if g is None:
                    g = mr.tensor(np.ones(out.shape, a.dtype), device="cuda")
                out.backward(g)
            return type(out.grad_fn).__name__

        impl_name = step("fast")
        runs = {"fast": lambda: step("fast"), "reference": lambda: step("reference")}

        def sync():  # both libraries' queues drained: each timing covers its own launches only
            cp.cuda.Device().synchronize()
            if torch_ok:
                torch.cuda.synchronize()
        if torch_ok:
            tx = torch.tensor(xa, device="cuda", requires_grad=True).contiguous(memory_format=torch.channels_last)
            tw = torch.tensor(wa, device="cuda", requires_grad=True)

            def tstep():
                tx.grad = tw.grad = None
                out = torch.nn.functional.conv2d(tx, tw, stride=S, padding=1, groups=G)
                out.backward(torch.ones_like(out))
            runs["torch"] = tstep
        sync()
        # in turns, the warm-ups compiling kernels and making cuBLAS/cuDNN plans
        ms = interleaved_ms(list(runs.values()), repeats=a.repeats, warmup=1, syncs=[sync] * len(runs))
        med = dict(zip(runs, ms))
        row = dict(layer=name, impl=impl_name, batch=a.batch, H=H, dtype=a.dtype,
                   **{f"{k}_ms": round(m, 3) for k, m in med.items()},
                   ref_over_fast=round(med["reference"] / med["fast"], 2))
        if torch_ok:
            row["fast_over_torch"] = round(med["fast"] / med["torch"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    columns = [("layer", "layer", None), ("impl", "fast path", None), ("fast_ms", "fast ms", "{:.3f}"),
               ("reference_ms", "reference ms", "{:.3f}"), ("ref_over_fast", "reference / fast", "{:.2f}x")]
    if torch_ok:
        columns += [("torch_ms", "PyTorch ms", "{:.3f}"), ("fast_over_torch", "fast / PyTorch", "{:.2f}x")]
    print()
    print(markdown_table(rows, columns))
    if a.out:
        write_json(os.path.join(a.out, "grouped_bench.json"), rows)


if __name__ == "__main__":
    main()
