"""How long does minires.onnx.export take, and how close is the file to the parameter bytes?

    python benchmarks/bench_onnx_export.py                       # resnet50 at 1x3x224x224 (issue 22's target)
    python benchmarks/bench_onnx_export.py --model resnet20 --size 32 --repeats 5

Each repeat exports into memory (the forward pass, the graph, onnx.checker and strict shape inference,
serialisation); the median is reported, with the file's size against the model's parameter bytes and
against all initializer bytes (parameters and batch-norm running statistics). One ONNX Runtime run on
the same input gives the relative difference of the logits (max abs diff / max abs value).
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's minires first
from minires.bench.common import header  # noqa: E402

import minires as mr  # noqa: E402
import minires.onnx as mronnx  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--size", type=int, default=224, help="image height and width")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    import onnx
    lines = [f"onnx {onnx.__version__}"]
    try:
        import onnxruntime as ort
        lines.append(f"onnxruntime {ort.__version__}")
    except ImportError:
        ort = None
    print(header(", ".join(lines)))
    model = mr.models.get(args.model, num_classes=1000 if args.model.startswith("resnet") and args.size > 64 else 10)
    x = mr.randn(args.batch, 3, args.size, args.size)
    times, blob = [], b""
    for _ in range(args.repeats):
        buf = io.BytesIO()
        start = time.perf_counter()
        mronnx.export(model, x, buf)
        times.append(time.perf_counter() - start)
        blob = buf.getvalue()
    params = sum(p.numel() * p.dtype.itemsize for p in model.parameters())
    proto = onnx.load_from_string(blob)
    inits = sum(np.prod(i.dims) * 4 for i in proto.graph.initializer)
    print(f"| model | input | export median (s) | runs (s) | file (bytes) | parameter bytes | file / parameters "
          f"| file / initializers | ORT relative diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    rel = "n/a (no onnxruntime)"
    if ort is not None:
        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        got = session.run(None, {"input": x.numpy()})[0]
        with mr.no_grad():
            want = model.eval()(x).numpy()
        rel = f"{np.abs(got - want).max() / np.abs(want).max():.2e}"
    runs = ", ".join(f"{t:.2f}" for t in times)
    print(f"| {args.model} | {tuple(x.shape)} | {statistics.median(times):.2f} | {runs} | {len(blob):,} | "
          f"{params:,} | {len(blob) / params:.4f} | {len(blob) / inits:.4f} | {rel} |")


if __name__ == "__main__":
    main()
