"""Stage 2 of gpu_check.sh: every op on the GPU against the CPU, and one resnet20 step GPU vs CPU.

    python benchmarks/gpu_smoke.py --out DIR [--size large|small] [--device cuda]

Each op (conv2d stride 1 and 2, batch_norm in both memory layouts, max_pool2d, relu, add_relu,
cross_entropy) runs forward and backward on the device and on the CPU from the same inputs, rounded
to the tested dtype first (so a ReLU's sign or a pool's argmax cannot differ by input rounding alone).
At --size large the element-wise kernels (im2col, col2im, add+ReLU, masks, normalise passes) launch
more than 65535 blocks of 256 threads, so their grid-stride loops wrap; `small` is for the CPU
stand-in. A resnet20 training step's gradients are compared in float64, float32 and under amp.
Writes DIR/smoke.json after every check; exits 1 if a check misses its tolerance.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's minires first
import minires as mr  # noqa: E402
import minires.functional as F  # noqa: E402
from minires import models, optim  # noqa: E402
from minires.io import atomic_write_text  # noqa: E402

# Worst error allowed, relative to the largest magnitude of the CPU's result (the targets:
# 1e-8 for every op in float64, 1e-4 for a resnet20 step's gradients in float32).
TOL = {"float64": 1e-8, "float32": 1e-4, "float16": 2e-2, "amp": None}


def _rel(got, want) -> float:
    want = np.asarray(want, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if not np.array_equal(np.isnan(got), np.isnan(want)):
        return float("inf")
    ok = ~np.isnan(want)
    scale = np.abs(want[ok]).max() if ok.any() else 1.0
    return float(np.abs(got[ok] - want[ok]).max() / (scale or 1.0)) if ok.any() else 0.0


def _run(fn, arrays, dtype, device, grad_out_seed=1):
    """fn(*tensors) forward and backward on device; returns host copies of the output and input grads."""
    ts = [mr.tensor(a, dtype=dtype if a.dtype.kind == "f" else None, device=device,
                    requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*ts)
    g = np.random.default_rng(grad_out_seed).standard_normal(out.shape)
    out.backward(mr.tensor(g, dtype=out.dtype, device=device))
    return [out.numpy()] + [t.grad.numpy() for t in ts if t.requires_grad]


def op_cases(size: str):
    big = size == "large"
    rng = np.random.default_rng(0)
    N, C, H = (64, 64, 64) if big else (3, 4, 9)  # 64*64*64*64 = 16.7M elements: > 65535 * 256
    x = rng.standard_normal((N, C, H, H))
    cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # channels-last memory
    w = rng.standard_normal((C, C, 3, 3)) / (3 * np.sqrt(C))
    wb, bb = rng.standard_normal(C), rng.standard_normal(C)
    rows = (1 << 17) if big else 37
    logits, labels = rng.standard_normal((rows, 129)) * 4, rng.integers(0, 129, rows)
    return {
        "conv2d 3x3 s1": (lambda a, b: F.conv2d(a, b, padding=1), [x, w]),
        "conv2d 3x3 s2": (lambda a, b: F.conv2d(a, b, stride=2, padding=1), [x, w]),
        "batch_norm NCHW": (lambda a, b, c: F.batch_norm(a, None, None, b, c, training=True), [x, wb, bb]),
        "batch_norm channels-last": (lambda a, b, c: F.batch_norm(a, None, None, b, c, training=True), [cl, wb, bb]),
        "max_pool2d 3x3 s2 p1": (lambda a: F.max_pool2d(a, 3, 2, 1), [x]),
        "relu": (F.relu, [x]),
        "add_relu": (F.add_relu, [x, cl]),
        "add_relu same layout": (F.add_relu, [x, x[::-1].copy()]),
        "cross_entropy smoothed": (lambda a: F.cross_entropy(a, mr.tensor(labels, device=a.device), label_smoothing=0.1),
                                   [logits]),
    }


_OUT = None  # the folder smoke.json goes to, written after every check (a stage stopped at its cap keeps them)


def _write(results) -> None:
    ok = all(r["ok"] for r in results)
    atomic_write_text(os.path.join(_OUT, "smoke.json"), json.dumps({"ok": ok, "results": results}, indent=1))


def check_ops(device: str, size: str, results: list) -> list:
    cases = op_cases(size)
    for dtype_name in ("float64", "float32", "float16"):
        dtype = np.dtype(dtype_name)
        for name, (fn, arrays) in cases.items():
            if dtype_name == "float16" and name.startswith("cross_entropy"):
                continue  # the loss is float32 under autocast
            t0 = time.perf_counter()
            rounded = [a.astype(dtype).astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]
            ref = _run(fn, rounded, np.float64 if dtype_name != "float16" else np.float32, "cpu")
            got = _run(fn, rounded, dtype, device)
            err = max(_rel(g, r) for g, r in zip(got, ref))
            tol = TOL[dtype_name]
            results.append({"check": f"{name} {dtype_name}", "max_rel_err": err, "tol": tol, "ok": err <= tol,
                            "s": round(time.perf_counter() - t0, 2)})
            _write(results)
            print(f"{results[-1]['check']:40s} err {err:.2e} (tol {tol:g}) {'ok' if err <= tol else 'FAIL'}", flush=True)
    return results


def resnet_step(device, dtype, amp=False, batch=32):
    mr.manual_seed(0)
    model = models.resnet20(num_classes=10).to(dtype=dtype).to(device)
    rng = np.random.default_rng(0)
    x = mr.tensor(rng.standard_normal((batch, 3, 32, 32)), dtype=dtype, device=device)
    y = mr.tensor(rng.integers(0, 10, batch), device=device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with mr.amp.autocast(enabled=amp):
        loss = F.cross_entropy(model(x), y)
    (loss * (1024.0 if amp else 1.0)).backward()
    return loss.item(), {n: p.grad.numpy() / (1024.0 if amp else 1.0) for n, p in model.named_parameters()}


def check_steps(device: str, size: str, results: list) -> list:
    batch = 32 if size == "large" else 4
    for mode, dtype, amp in (("float64", np.float64, False), ("float32", np.float32, False), ("amp", np.float32, True)):
        loss_c, g_c = resnet_step("cpu", dtype, amp, batch)
        loss_g, g_g = resnet_step(device, dtype, amp, batch)
        err = max(_rel(g_g[n], g_c[n]) for n in g_c)
        tol = TOL[mode]
        ok = tol is None or err <= tol
        results.append({"check": f"resnet20 step {mode}", "loss_cpu": loss_c, "loss_gpu": loss_g,
                        "max_rel_grad_err": err, "tol": tol, "ok": ok})
        _write(results)
        print(f"resnet20 step {mode:8s} loss {loss_g:.6f} vs {loss_c:.6f}, worst gradient err {err:.2e} "
              f"(tol {tol})", flush=True)
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--size", choices=("large", "small"), default="large")
    p.add_argument("--device", default="cuda")
    args = p.parse_args(argv)
    global _OUT
    _OUT = args.out
    os.makedirs(args.out, exist_ok=True)
    results = []
    check_ops(args.device, args.size, results)
    check_steps(args.device, args.size, results)
    ok = all(r["ok"] for r in results)
    print(f"smoke: {sum(r['ok'] for r in results)}/{len(results)} checks within tolerance")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
