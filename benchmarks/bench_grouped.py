"""Grouped and depthwise conv2d, forward + backward: the fast paths against Conv2dCPU, the reference and PyTorch.

    /tmp/torchvenv/bin/python benchmarks/bench_grouped.py                  # every shape, batch 64
    /tmp/torchvenv/bin/python benchmarks/bench_grouped.py --only dw --repeats 9 --no-reference
    python benchmarks/bench_grouped.py --forward                           # forward only, no PyTorch

Shapes: MobileNetV2's and ShuffleNetV2's depthwise 3x3 convs (CIFAR layouts), RegNetX-200MF's
grouped convs (group width 8: 3, 7, 19, 46 groups at widths 24, 56, 152, 368) and ResNeXt-29's
(32 groups of 4 and 16 channels, 2 groups of 64 and 128). Each row times one layer's forward and
backward (dx, dw) on a channels-last float32 input with a channels-last gradient, as inside a
network, for: the fast path dispatch picks (DepthwiseConv2dCPU / GroupedConv2dCPU), Conv2dCPU (the
path before them), the reference Conv2d, and PyTorch in NCHW and channels_last. Everything runs
in turns (common.interleaved_ms) on all cores, minires inside hold_blas(); ratios are to the fast
path, PyTorch's the faster of its two layouts.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's minires first
from minires.bench.common import cpu_steal, header, interleaved_ms, markdown_table, steal_percent, torch_or_none  # noqa: E402

import minires as mr  # noqa: E402
from minires import dispatch, parallel  # noqa: E402
from minires.functional.conv import Conv2d  # noqa: E402
from minires.kernels.cpu.conv import Conv2dCPU  # noqa: E402

# (name, in channels, out channels, groups, input size, stride); 3x3 kernels, padding 1.
SHAPES = [
    ("dw MobileNetV2", 32, 32, 32, 32, 1), ("dw MobileNetV2", 96, 96, 96, 32, 1),
    ("dw MobileNetV2", 144, 144, 144, 32, 2), ("dw MobileNetV2", 192, 192, 192, 16, 1),
    ("dw MobileNetV2", 384, 384, 384, 8, 1), ("dw MobileNetV2", 576, 576, 576, 8, 2),
    ("dw MobileNetV2", 960, 960, 960, 4, 1), ("dw ShuffleNetV2", 116, 116, 116, 16, 2),
    ("dw ShuffleNetV2", 232, 232, 232, 8, 1),
    ("g RegNetX-200MF", 24, 24, 3, 32, 1), ("g RegNetX-200MF", 56, 56, 7, 32, 1),
    ("g RegNetX-200MF", 152, 152, 19, 32, 2), ("g RegNetX-200MF", 152, 152, 19, 16, 1),
    ("g RegNetX-200MF", 368, 368, 46, 16, 2), ("g RegNetX-200MF", 368, 368, 46, 8, 1),
    ("g ResNeXt29-32x4d", 128, 128, 32, 32, 1), ("g ResNeXt29-32x4d", 512, 512, 32, 8, 1),
    ("g ResNeXt29-2x64d", 128, 128, 2, 32, 1), ("g ResNeXt29-2x64d", 256, 256, 2, 16, 1),
]


def minires_step(cls, x, w, g, kw, backward):
    """One call of Function `cls` (None: whatever dispatch picks) on x, w; then its backward with g."""
    def step():
        xt = mr.Tensor(x, requires_grad=backward)
        wt = mr.Tensor(w, requires_grad=backward)
        out = mr.functional.conv2d(xt, wt, **kw) if cls is None else cls.apply(xt, wt, None, **kw)
        if backward:
            out.backward(mr.Tensor(g))
    return step


def torch_step(torch, x, w, g, kw, backward, channels_last):
    """PyTorch's conv2d forward (+ backward) on copies of x, w, g in the given layout."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(memory_format=fmt).requires_grad_(backward)
    wt = torch.from_numpy(w).requires_grad_(backward)
    gt = torch.from_numpy(np.ascontiguousarray(g)).to(memory_format=fmt)

    def step():
        out = torch.nn.functional.conv2d(xt, wt, None, **kw)
        if backward:
            out.backward(gt)
            xt.grad = wt.grad = None
    return step


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--only", default="", help="keep rows whose name contains this (e.g. dw, RegNet)")
    p.add_argument("--forward", action="store_true", help="time the forward only")
    p.add_argument("--no-reference", action="store_true", help="leave out the (slow) reference")
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args(argv)
    torch = None if args.no_torch else torch_or_none()
    if torch is not None:
        torch.set_num_threads(parallel.get_num_threads())
    print(header(f"minires threads: {parallel.get_num_threads()}, batch {args.batch}, float32, "
                 f"{'forward' if args.forward else 'forward+backward'}, median of {args.repeats} in turns"))
    rng = np.random.default_rng(0)
    rows, since = [], cpu_steal()
    with parallel.hold_blas():
        for name, C, O, G, H, s in SHAPES:
            if args.only not in name:
                continue
            OH = (H + 2 - 3) // s + 1
            x = rng.standard_normal((args.batch, H, H, C), dtype=np.float32).transpose(0, 3, 1, 2)  # NHWC memory
            w = rng.standard_normal((O, C // G, 3, 3), dtype=np.float32)
            g = rng.standard_normal((args.batch, OH, OH, O), dtype=np.float32).transpose(0, 3, 1, 2)
            kw = dict(stride=(s, s), padding=(1, 1), dilation=(1, 1), groups=G)
            fast = dispatch.choose(Conv2d, [x, w, None], kw)
            fns = {"fast": minires_step(None, x, w, g, dict(kw, stride=s, padding=1, dilation=1), not args.forward),
                   "conv2dcpu": minires_step(Conv2dCPU, x, w, g, kw, not args.forward)}
            if not args.no_reference:
                fns["reference"] = minires_step(Conv2d, x, w, g, kw, not args.forward)
            if torch is not None:
                tkw = dict(stride=s, padding=1, groups=G)
                fns["torch_nchw"] = torch_step(torch, x, w, g, tkw, not args.forward, False)
                fns["torch_cl"] = torch_step(torch, x, w, g, tkw, not args.forward, True)
            ms = dict(zip(fns, interleaved_ms(list(fns.values()), repeats=args.repeats, warmup=1)))
            row = {"shape": f"{name} C={C} G={G} {H}x{H} s{s}", "path": fast.__name__, **ms,
                   "cur_ratio": ms["conv2dcpu"] / ms["fast"]}
            if "reference" in ms:
                row["ref_ratio"] = ms["reference"] / ms["fast"]
            if torch is not None:
                row["torch"] = min(ms["torch_nchw"], ms["torch_cl"])
                row["torch_ratio"] = ms["fast"] / row["torch"]
            rows.append(row)
            print(f"  {row['shape']}: " + ", ".join(f"{k} {v:.1f}" for k, v in ms.items()), flush=True)
    cols = [("shape", "layer", None), ("path", "fast path", None), ("fast", "fast ms", "{:.1f}"),
            ("conv2dcpu", "Conv2dCPU ms", "{:.1f}"), ("cur_ratio", "Conv2dCPU/fast", "{:.2f}")]
    if not args.no_reference:
        cols += [("reference", "reference ms", "{:.1f}"), ("ref_ratio", "reference/fast", "{:.1f}")]
    if torch is not None:
        cols += [("torch_nchw", "PyTorch NCHW ms", "{:.1f}"), ("torch_cl", "PyTorch CL ms", "{:.1f}"),
                 ("torch_ratio", "fast/PyTorch best", "{:.2f}")]
    print(markdown_table(rows, cols))
    if rows:
        for key, what in (("cur_ratio", "Conv2dCPU/fast"), ("torch_ratio", "fast/PyTorch best")):
            vals = [r[key] for r in rows if key in r]
            if vals:
                print(f"geometric mean {what}: {float(np.exp(np.mean(np.log(vals)))):.2f}")
    print(f"steal time: {steal_percent(since)}")


if __name__ == "__main__":
    main()
