"""ONNX export, as torch.onnx: `minires.onnx.export(model, dummy_input, "model.onnx")`.

The model runs once in eval mode under no_grad while minires records every op it applies
(recorder.py); the ops the outputs need become an ONNX graph (exporter.py, with the op table in
nn_ops.py and tensor_ops.py), checked by onnx.checker and strict shape inference, then written
atomically. Parameters and buffers are initializers under their state_dict names; batch norm in
eval mode is a BatchNormalization node (not folded into the conv). Needs `pip install 'minires[onnx]'`.
"""
from __future__ import annotations

import enum
import os

from ..io import atomic_write_bytes
from .exporter import (DEFAULT_OPSET, MIN_OPSET, TABLE, UnsupportedOperatorError, build_graph, check_output_path,
                       record, split_args)
from .graph import onnx_module
from .recorder import TracerWarning, is_recording


class TrainingMode(enum.IntEnum):
    """torch.onnx.TrainingMode: minires exports EVAL (the default) or PRESERVE (the model's own mode)."""
    EVAL = 0
    PRESERVE = 1
    TRAINING = 2


# torch.onnx.export arguments that change nothing here: accepted so that PyTorch calls run unchanged
_IGNORED = {"operator_export_type", "custom_opsets", "export_modules_as_functions", "autograd_inlining",
            "external_data", "report", "optimize", "verify", "profile", "dump_exported_program", "artifacts_dir",
            "fallback", "strict", "keep_initializers_as_inputs"}


def is_in_onnx_export() -> bool:
    """True while minires.onnx.export is recording a forward pass (torch.onnx.is_in_onnx_export)."""
    return is_recording()


def _opset(opset_version) -> int:
    newest = onnx_module().defs.onnx_opset_version()
    opset = DEFAULT_OPSET if opset_version is None else opset_version
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"export: opset_version must be an int from {MIN_OPSET} to {newest} (the installed onnx's "
                         f"newest), got {opset_version!r}")
    return opset


def export(model, args=(), f=None, export_params=True, verbose=False, training=TrainingMode.EVAL,
           input_names=None, output_names=None, operator_export_type=None, opset_version=None,
           do_constant_folding=True, dynamic_axes=None, keep_initializers_as_inputs=None, custom_opsets=None,
           export_modules_as_functions=False, *, kwargs=None, dynamo=False, dynamic_shapes=None, **options):
    """Record one forward pass of `model` on `args` (a Tensor or a tuple) and write it to `f` (a path or a binary
    file) as an ONNX model, as torch.onnx.export; opset 17 by default. Returns None."""
    unknown = sorted(set(options) - _IGNORED)
    if unknown:
        raise TypeError(f"export: unexpected keyword arguments {unknown}")
    if f is None:
        raise TypeError("export: f (the output path or a binary file object) is required")
    if dynamic_shapes is not None:
        raise NotImplementedError("export: dynamic_shapes (the dynamo exporter's form) is not supported; "
                                  "name the dynamic axes with dynamic_axes={'input': {0: 'batch'}}")
    if training not in (TrainingMode.EVAL, TrainingMode.PRESERVE, None, False):
        raise ValueError(f"export: training={training!r}: minires exports eval-mode graphs only "
                         f"(TrainingMode.EVAL or PRESERVE)")
    opset = _opset(opset_version)
    check_output_path(f)
    args, kw = split_args(args, kwargs)
    rec, inputs, outputs = record(model, args, kw, training_mode=training == TrainingMode.PRESERVE)
    proto = build_graph(rec, inputs, outputs, model, opset, input_names, output_names, dynamic_axes,
                        export_params=export_params, do_constant_folding=do_constant_folding)
    if keep_initializers_as_inputs:
        proto.graph.input.extend(onnx_module().helper.make_tensor_value_info(
            i.name, i.data_type, list(i.dims)) for i in proto.graph.initializer)
    if verbose:
        print(onnx_module().helper.printable_graph(proto.graph))
    try:
        blob = proto.SerializeToString()
    except ValueError as exc:  # protobuf's 2 GiB limit
        raise ValueError(f"export: the model is too large for one ONNX file ({exc}); external data is not "
                         f"supported") from None
    if hasattr(f, "write"):
        f.write(blob)
        return None
    try:
        atomic_write_bytes(f, blob)
    except OSError as exc:
        raise type(exc)(f"export: cannot write {os.fspath(f)!r}: {exc.strerror or exc}") from None
    return None


__all__ = ["export", "is_in_onnx_export", "TracerWarning", "TrainingMode", "UnsupportedOperatorError", "TABLE"]
