"""Lower precision on this CPU, measured before anything is built (issue 24, item 5).

    /tmp/torchvenv/bin/python benchmarks/bench_bf16.py                                   # no MKL: NumPy, PyTorch
    /tmp/torchvenv/bin/python benchmarks/bench_bf16.py --mkl /tmp/h1mkl/lib/libmkl_rt.so.3   # MKL from `pip install mkl`
    /tmp/torchvenv/bin/python benchmarks/bench_bf16.py --m 230400 --rounds 3             # the issue's full shape

A conv-shaped GEMM, (M x K) columns times (K x N) weights (airbench94's 256-channel 3x3 conv at batch
512 is M = 230400 x K = 576 x N = 256; --m scales M down to fit the time), timed as:
- float32 in NumPy (its BLAS, OpenBLAS here) and in PyTorch (torch.matmul, MKL inside);
- float32 and bf16 (cblas_sgemm, cblas_gemm_bf16bf16f32: bf16 inputs, float32 output) in MKL's
  libmkl_rt through ctypes, where --mkl names it (or it is found beside this Python);
- bf16 in PyTorch (torch.matmul on bfloat16 tensors, bfloat16 output);
and the float32 -> bf16 conversion of the columns (M*K values) in NumPy, which a bf16 GEMM fed from
minires's float32 im2col would pay on every call:
- naive: round to nearest even in one expression, ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(uint16),
  four full-size temporaries;
- chunked: the same arithmetic in place on a cache-sized uint32 buffer (out= everywhere), the high
  halves taken as a strided uint16 view instead of a shift and a cast;
- truncation (not round to nearest: the lower bound of any NumPy conversion, one strided copy);
- PyTorch's own tensor.to(torch.bfloat16), for scale.
The chunked conversion is checked bit for bit against PyTorch's where PyTorch is importable.

Each thread count (--threads, e.g. 1,2) and each library runs in its own fresh process (the BLAS
thread variables set before it starts; MKL apart from PyTorch, which carries its own MKL and OpenMP),
the processes in turns over --rounds; inside a process the figures are timed in turns (interleaved_ms),
each the median of --repeats calls; the tables give the median over rounds and (in brackets) the range.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import glob
import json
import os
import statistics
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's minires first
from minires.bench.common import (cpu_flags, cpu_steal, has_bf16, header, interleaved_ms, markdown_table,  # noqa: E402
                                  steal_percent, torch_or_none, write_json)

BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
BF16_ROWS_DIV = 16  # PyTorch's bf16 matmul is timed on M / 16 rows (it is that slow without bf16 units)
CHUNK = 1 << 16  # values per chunk of the chunked conversion: 256 KiB of uint32, in L2


# ---- float32 -> bf16 in NumPy -------------------------------------------------------------------------

def bf16_naive(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bits (uint16), round to nearest even, in one NumPy expression."""
    u = x.view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)


def bf16_chunked(x: np.ndarray, out: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """float32 -> bf16 bits into `out` (uint16, x's shape), round to nearest even, chunk by chunk in place.

    NOTE: NaNs whose payload sits in the low 16 bits only may round to infinity here, as in the naive
    form; activations and weights carry no NaNs, and a production path would mask them.
    """
    u = x.reshape(-1).view(np.uint32)
    dst = out.reshape(-1)
    t = np.empty(min(chunk, u.size), np.uint32)
    for i in range(0, u.size, chunk):
        n = min(chunk, u.size - i)
        src, tt = u[i:i + n], t[:n]
        np.right_shift(src, 16, out=tt)
        np.bitwise_and(tt, 1, out=tt)
        tt += np.uint32(0x7FFF)
        tt += src  # the rounding bias added: the high 16 bits are the rounded bf16
        dst[i:i + n] = tt.view(np.uint16)[1::2]  # little-endian: the high half of each uint32
    return out


def bf16_truncate(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bits by dropping the low 16 bits (rounds toward zero; the cheapest conversion)."""
    np.copyto(out.reshape(-1), x.reshape(-1).view(np.uint16)[1::2])
    return out


# ---- MKL through ctypes -------------------------------------------------------------------------------

def find_mkl(given=None):
    """The path of libmkl_rt: --mkl, else $MKL_RT, else beside this Python (pip install mkl), else the loader's."""
    if given:
        return given
    if os.environ.get("MKL_RT"):
        return os.environ["MKL_RT"]
    found = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))
    return found[0] if found else ctypes.util.find_library("mkl_rt")


class MKL:
    """The three MKL entry points timed here (row-major, no transposes, LP64 32-bit ints)."""

    ROW_MAJOR, NO_TRANS = 101, 111

    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
        self.lib.cblas_sgemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
        self.lib.cblas_gemm_bf16bf16f32.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
        self.lib.MKL_Set_Num_Threads.argtypes = [i]

    def version(self) -> str:
        buf = ctypes.create_string_buffer(256)
        self.lib.mkl_get_version_string(buf, 256)
        return buf.value.decode(errors="replace").strip()

    def gemm(self, name, a, b, c):
        """c = a @ b with cblas_sgemm (float32 a, b) or cblas_gemm_bf16bf16f32 (uint16 bf16 bits a, b)."""
        (m, k), n = a.shape, b.shape[1]
        getattr(self.lib, name)(self.ROW_MAJOR, self.NO_TRANS, self.NO_TRANS, m, n, k, 1.0, a.ctypes.data, k,
                                b.ctypes.data, n, 0.0, c.ctypes.data, n)


# ---- one process: one library at one thread count -----------------------------------------------------

def _operands(m, k, n):
    rng = np.random.default_rng(0)
    return rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32) * 0.05


def _rel_err(c, a16, b16):
    """c's largest error against the float64 product of the bf16-rounded inputs, relative to that product's scale."""
    widen = lambda h: (h.astype(np.uint32) << 16).view(np.float32).astype(np.float64)  # noqa: E731
    exact = widen(a16[:256]) @ widen(b16)
    return float(np.abs(c[:256] - exact).max() / np.abs(exact).max())


def run_child(lib, args) -> dict:
    m, k, n = args.m, args.k, args.n
    a, b = _operands(m, k, n)
    flops = 2.0 * m * k * n
    gflops = lambda t: flops / (t * 1e-3) / 1e9  # noqa: E731
    r, w = args.repeats, 1
    out = {"lib": lib}
    per_value = lambda ms: ms * 1e6 / a.size  # noqa: E731
    if lib == "numpy":
        c, h = np.empty((m, n), np.float32), np.empty(a.shape, np.uint16)
        ms = interleaved_ms([lambda: np.matmul(a, b, out=c), lambda: bf16_naive(a), lambda: bf16_chunked(a, h),
                             lambda: bf16_truncate(a, h)], r, w)
        out["numpy_f32"] = gflops(ms[0])
        out.update(zip(("conv_naive_ns", "conv_chunked_ns", "conv_truncate_ns"), map(per_value, ms[1:])))
        out["naive_equals_chunked"] = bool(np.array_equal(bf16_naive(a), bf16_chunked(a, h)))
    elif lib == "torch":
        import torch
        torch.set_num_threads(args.threads_child)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        tc = torch.empty((m, n), dtype=torch.float32)
        a16, b16 = ta.to(torch.bfloat16), tb.to(torch.bfloat16)
        rows = a16[:max(1, m // BF16_ROWS_DIV)]  # NOTE: its fallback is ~50x slower than float32 without bf16 units
        ms = interleaved_ms([lambda: torch.matmul(ta, tb, out=tc), lambda: torch.matmul(rows, b16),
                             lambda: ta.to(torch.bfloat16)], r, w)
        out["torch_f32"] = gflops(ms[0])
        out["torch_bf16"] = 2.0 * rows.shape[0] * k * n / (ms[1] * 1e-3) / 1e9
        out["conv_torch_ns"] = per_value(ms[2])
        mine = bf16_chunked(a, np.empty(a.shape, np.uint16))
        out["chunked_equals_torch"] = bool(np.array_equal(mine, a16.view(torch.int16).numpy().view(np.uint16)))
        out["threads"] = torch.get_num_threads()
    elif lib == "mklprobe":  # one small call with MKL_VERBOSE=1: MKL's first line names its code path
        mkl = MKL(args.mkl)
        x = np.ones((64, 64), np.float32)
        mkl.gemm("cblas_gemm_bf16bf16f32", bf16_naive(x), bf16_naive(x), np.empty_like(x))
    elif lib == "mkl":
        mkl = MKL(args.mkl)
        mkl.lib.MKL_Set_Num_Threads(args.threads_child)
        c = np.empty((m, n), np.float32)
        out["mkl_version"] = mkl.version()
        a16, b16 = bf16_naive(a), bf16_naive(b)
        c16 = np.full((m, n), np.nan, np.float32)
        ms = interleaved_ms([lambda: mkl.gemm("cblas_sgemm", a, b, c),
                             lambda: mkl.gemm("cblas_gemm_bf16bf16f32", a16, b16, c16)], r, w)
        out["mkl_f32"], out["mkl_bf16"] = gflops(ms[0]), gflops(ms[1])
        out["mkl_bf16_rel_err"] = _rel_err(c16, a16, b16)
    return out


# ---- the parent: processes in turns, the table --------------------------------------------------------

ROWS = [("numpy_f32", "float32 GEMM, NumPy (OpenBLAS)"), ("torch_f32", "float32 GEMM, PyTorch (torch.matmul)"),
        ("mkl_f32", "float32 GEMM, MKL cblas_sgemm (ctypes)"),
        ("mkl_bf16", "bf16 GEMM, MKL cblas_gemm_bf16bf16f32 (ctypes; bf16 in, float32 out)"),
        ("torch_bf16", f"bf16 GEMM, PyTorch (torch.matmul on bfloat16; on M/{BF16_ROWS_DIV} rows)")]
CONVERSIONS = [("conv_naive_ns", "NumPy, naive (one expression, 4 full-size temporaries)"),
               ("conv_chunked_ns", f"NumPy, chunked in place ({CHUNK} values, out=, strided high halves)"),
               ("conv_truncate_ns", "NumPy, truncation (not round-to-nearest; one strided copy: the floor)"),
               ("conv_torch_ns", "PyTorch tensor.to(torch.bfloat16)")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--m", type=int, default=230400 // 8, help="GEMM rows (the im2col columns' rows)")
    p.add_argument("--k", type=int, default=576)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per figure in a process (median)")
    p.add_argument("--rounds", type=int, default=2, help="fresh processes per library and thread count, in turns")
    p.add_argument("--mkl", default=None, help="path of libmkl_rt.so (pip install mkl puts one in <venv>/lib)")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--child", choices=("numpy", "torch", "mkl", "mklprobe"), help=argparse.SUPPRESS)
    p.add_argument("--threads-child", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.child, args)))
        return
    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        p.error(f"--threads must be comma-separated integers, got {args.threads!r}")
    if min(threads) < 1 or min(args.m, args.k, args.n, args.repeats, args.rounds) < 1:
        p.error("--threads, --m, --k, --n, --repeats and --rounds must be >= 1")
    libs = ["numpy"] + ([] if args.no_torch or torch_or_none() is None else ["torch"])
    mkl_path, mkl_note = find_mkl(args.mkl), ""
    if mkl_path:
        libs.append("mkl")
    else:
        mkl_note = "MKL: no libmkl_rt found (give --mkl PATH; `pip install mkl` puts it in <venv>/lib): not timed"
    if mkl_path:  # the path MKL takes on this CPU, from its verbose mode (a refusal is said as it happened)
        probe = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "mklprobe", "--mkl", mkl_path],
                               capture_output=True, text=True, env=dict(os.environ, MKL_VERBOSE="1", LD_LIBRARY_PATH=(
                                   os.path.dirname(os.path.abspath(mkl_path)) + ":" + os.environ.get("LD_LIBRARY_PATH", ""))))
        lines = [ln for ln in probe.stdout.splitlines() if ln.startswith("MKL_VERBOSE")]
        mkl_note = (" | ".join(ln[:160] for ln in lines[:2]) if probe.returncode == 0 and lines
                    else f"MKL probe failed (exit {probe.returncode}): {probe.stderr.strip()[-500:]}")
    flags = cpu_flags()
    head = header(f"GEMM (M x K) @ (K x N) = {args.m} x {args.k} x {args.n} float32 ({2 * args.m * args.k * args.n / 1e9:.1f} "
                  f"GFLOP), conversions of its {args.m * args.k / 1e6:.1f}M column values; threads {threads}; "
                  f"{args.rounds} round(s) of fresh processes per library and thread count, in turns ({', '.join(libs)}, "
                  f"then reversed), median of {args.repeats} calls per process, median over rounds"
                  + (f"\nMKL: {mkl_path}\n{mkl_note}" if mkl_path else "\n" + mkl_note)
                  + f"\nbf16 hardware: {'yes' if has_bf16(flags) else 'no'}")
    print(head, flush=True)
    since = cpu_steal()
    results = {(lib, t): [] for t in threads for lib in libs}
    for r in range(args.rounds):
        for t in threads:
            for lib in (libs if r % 2 == 0 else libs[::-1]):
                env = dict(os.environ, **{k: str(t) for k in BLAS_ENV})
                if lib == "mkl":
                    env["LD_LIBRARY_PATH"] = os.path.dirname(os.path.abspath(mkl_path)) + ":" + env.get("LD_LIBRARY_PATH", "")
                cmd = [sys.executable, os.path.abspath(__file__), "--child", lib, "--threads-child", str(t),
                       "--m", str(args.m), "--k", str(args.k), "--n", str(args.n), "--repeats", str(args.repeats)]
                cmd += ["--mkl", mkl_path] if lib == "mkl" else []
                res = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if res.returncode != 0:  # MKL may refuse (no such symbol, no bf16 path): say exactly what happened
                    print(f"  {lib} at {t} thread(s) failed (exit {res.returncode}):\n{res.stderr[-1500:]}", flush=True)
                    results[(lib, t)].append({"error": res.stderr.strip().splitlines()[-1:] or [f"exit {res.returncode}"]})
                    continue
                results[(lib, t)].append(json.loads(res.stdout.strip().splitlines()[-1]))
                print(f"  round {r + 1}, {lib}, {t} thread(s): {results[(lib, t)][-1]}", flush=True)

    def vals(key, t):
        return [d[key] for lib in libs for d in results[(lib, t)] if key in d]

    def med(key, t):
        v = vals(key, t)
        return statistics.median(v) if v else None

    def spread(key, t, scale=1.0):
        v = vals(key, t)
        return f"{min(v) * scale:.3g}-{max(v) * scale:.3g}" if len(v) > 1 else ""
    f32_ref = {t: med("numpy_f32", t) for t in threads}
    rows = []
    for key, label in ROWS:
        row = {"what": label}
        for t in threads:
            v = med(key, t)
            row[f"t{t}"] = v
            row[f"q{t}"] = spread(key, t)
            row[f"r{t}"] = v / f32_ref[t] if v and f32_ref[t] else None
        rows.append(row)
    columns = [("what", "GEMM", None)]
    for t in threads:
        columns += [(f"t{t}", f"GFLOP/s, {t} thread(s)", "{:.1f}"), (f"q{t}", "range over rounds", None),
                    (f"r{t}", f"/ NumPy float32, {t}", "{:.2f}x")]
    table = markdown_table(rows, columns)
    crows = []
    for key, label in CONVERSIONS:
        row = {"what": label}
        for t in threads:
            v = med(key, t)
            row[f"t{t}"] = v
            row[f"q{t}"] = spread(key, t)
            row[f"s{t}"] = v * args.m * args.k / 1e6 if v else None  # ns per value -> ms for the columns
        crows.append(row)
    ccols = [("what", "float32 -> bf16 conversion", None)]
    for t in threads:
        ccols += [(f"t{t}", f"ns / value ({t} thr. env)", "{:.2f}"), (f"q{t}", "range", None),
                  (f"s{t}", f"ms for the {args.m * args.k / 1e6:.1f}M columns", "{:.0f}")]
    table += "\n\n" + markdown_table(crows, ccols)
    checks = {k: [d.get(k) for lib in libs for t in threads for d in results[(lib, t)] if k in d]
              for k in ("naive_equals_chunked", "chunked_equals_torch", "mkl_bf16_rel_err", "mkl_version")}
    table += (f"\n\nchecks: naive == chunked bits {set(checks['naive_equals_chunked']) or 'n/a'}; chunked == PyTorch's "
              f"bf16 bits {set(checks['chunked_equals_torch']) or 'n/a'}; MKL bf16 GEMM's largest error against the "
              f"float64 product of the bf16 inputs (relative to its largest value) "
              f"{max(checks['mkl_bf16_rel_err']) if checks['mkl_bf16_rel_err'] else 'n/a'}"
              + (f"; {checks['mkl_version'][0]}" if checks["mkl_version"] else ""))
    errors = {f"{lib} x{t}": d["error"] for (lib, t), ds in results.items() for d in ds if "error" in d}
    if errors:
        table += f"\n\nfailed runs: {errors}"
    table += f"\n\nCPU steal time during the run: {steal_percent(since)}"
    print()
    print(table)
    write_json(os.path.join(args.out, "bench_bf16.json"),
               {"header": head, "rows": rows, "conversions": crows,
                "runs": {f"{lib} x{t}": ds for (lib, t), ds in results.items()}})
    with open(os.path.join(args.out, "bench_bf16.md"), "w") as f:
        f.write("```\n" + head + "\n```\n\n" + table + "\n")


if __name__ == "__main__":
    main()
