"""`minires export --checkpoint RUN_OR_FILE --format onnx --out model.onnx [--batch N] [--dynamic-batch]`.

Rebuilds the model a training run saved (its config names the model), exports it, and reports the
opset, the input and output shapes, the file size and, with ONNX Runtime installed, the largest
difference between its outputs and minires's on a random batch.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from .. import models
from ..checkpoint import CheckpointError, load_weights
from ..tensor import Tensor, no_grad
from . import UnsupportedOperatorError, export
from .graph import onnx_module

IMAGE_SHAPE = (3, 32, 32)  # the CIFAR-10 images minires's runs train on
TOLERANCE = 1e-4  # relative (max abs diff / max abs value) above which the check fails


def add_parser(subparsers):
    """The `export` subcommand, on an argparse subparsers object (minires/cli.py's)."""
    p = subparsers.add_parser("export", help="export a trained model to ONNX",
                              description="Export the model of a run folder or checkpoint to an ONNX file, then "
                                          "compare ONNX Runtime's outputs with minires's (when installed).")
    p.add_argument("--checkpoint", required=True, metavar="RUN_OR_FILE",
                   help="a run folder (its best.safetensors, else last.safetensors) or a checkpoint file")
    p.add_argument("--format", default="onnx", choices=("onnx",), help="the output format")
    p.add_argument("--out", required=True, metavar="PATH", help="the file to write, e.g. model.onnx")
    p.add_argument("--batch", type=int, default=1, metavar="N", help="the batch size of the exported input")
    p.add_argument("--dynamic-batch", action="store_true", help="make the batch axis dynamic (any batch size)")
    p.add_argument("--opset", type=int, default=None, metavar="N", help="the ONNX opset (default 17)")
    p.set_defaults(handler=run, subparser=p)
    return p


def checkpoint_file(path: str) -> str:
    """The checkpoint of a run folder (best.safetensors, else last.safetensors), or the file itself."""
    if os.path.isdir(path):
        for name in ("best.safetensors", "last.safetensors"):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        raise FileNotFoundError(f"run folder {path!r} holds no best.safetensors or last.safetensors")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    return path


def load_model(path: str):
    """(model in eval mode, its name, the checkpoint file) of a run folder or checkpoint."""
    file = checkpoint_file(path)
    weights, meta = load_weights(file)
    extra = (meta or {}).get("extra") or {}
    config = extra.get("config") or {}
    name = config.get("model") or extra.get("model")
    if name is None:
        raise ValueError(f"checkpoint {file!r} does not say which model it holds (no training config); "
                         f"export it from Python: minires.onnx.export(model, dummy_input, 'model.onnx')")
    classes = extra.get("classes")
    model = models.get(name, num_classes=len(classes) if classes else 10, **config.get("model_kwargs", {}))
    model.load_state_dict(weights)
    return model.eval(), name, file


def _shape(shape, dynamic: bool) -> str:
    dims = ["N" if dynamic and i == 0 else str(s) for i, s in enumerate(shape)]
    return "(" + ", ".join(dims) + ")"


def compare(blob: bytes, model, batch: int, seed: int = 0):
    """(max abs difference, max abs minires value) of ONNX Runtime against minires on a random batch."""
    import onnxruntime as ort  # optional: the caller checks it is installed
    x = np.random.default_rng(seed).standard_normal((batch,) + IMAGE_SHAPE).astype(np.float32)
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    with no_grad():
        want = model(Tensor(x)).numpy()
    return float(np.abs(got - want).max()), float(np.abs(want).max())


def run(args, parser) -> int:
    """The handler of `minires export`; returns the exit code."""
    if args.batch < 1:
        parser.error(f"--batch must be at least 1, got {args.batch}")
    try:
        onnx = onnx_module()
        model, name, file = load_model(args.checkpoint)
        if os.path.isfile(args.out) and (os.path.samefile(args.out, file) or not args.out.endswith(".onnx")):
            parser.error(f"--out {args.out!r} is an existing file that is not an .onnx model"
                         f"{' (the checkpoint being exported)' if os.path.samefile(args.out, file) else ''}: "
                         f"give a new file name ending in .onnx")
        x = Tensor(np.zeros((args.batch,) + IMAGE_SHAPE, dtype=np.float32))
        axes = {"input": {0: "batch"}, "output": {0: "batch"}} if args.dynamic_batch else None
        export(model, x, args.out, opset_version=args.opset, dynamic_axes=axes, input_names=["input"],
               output_names=["output"])
    except (CheckpointError, OSError, ValueError, TypeError, ImportError, UnsupportedOperatorError) as exc:
        parser.error(str(exc))
    with open(args.out, "rb") as f:
        blob = f.read()
    proto = onnx.load_from_string(blob)
    out_type = proto.graph.output[0].type.tensor_type
    out_shape = tuple(d.dim_value for d in out_type.shape.dim)
    out_dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(out_type.elem_type)).name
    params = sum(int(np.prod(i.dims)) * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(i.data_type)).itemsize
                 for i in proto.graph.initializer)
    print(f"exported {name} from {file} to {args.out}")
    print(f"opset {proto.opset_import[0].version}; input {_shape(x.shape, args.dynamic_batch)} float32 -> "
          f"output {_shape(out_shape, args.dynamic_batch)} {out_dtype}")
    print(f"file {len(blob):,} bytes ({len(blob) / 2**20:.2f} MiB; initializers {params:,} bytes)")
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed: outputs not compared (pip install onnxruntime)")
        return 0
    worst = 0.0
    for batch in [args.batch] + ([args.batch + 2] if args.dynamic_batch else []):
        diff, scale = compare(blob, model, batch)
        rel = diff / scale if scale else diff
        worst = max(worst, rel)
        print(f"onnxruntime {ort.__version__}: largest difference from minires on a random batch of {batch}: "
              f"{diff:.3g} ({rel:.3g} relative)")
    if worst > TOLERANCE:
        print(f"minires export: outputs differ by more than {TOLERANCE:g} relative", file=sys.stderr)
        return 1
    return 0
