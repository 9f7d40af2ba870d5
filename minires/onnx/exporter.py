"""Build an ONNX model from one recorded forward pass: prune, fold constants, map each op, check, write.

The recording (recorder.py) runs the model once in eval mode under no_grad; this module keeps the ops
the outputs need, folds those that touch neither the inputs nor a parameter (do_constant_folding),
maps the rest through the op table (nn_ops.py, tensor_ops.py), names the graph's inputs, outputs and
dynamic axes, and checks the result with onnx.checker and strict shape inference before any byte is
written.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from ..nn.module import Module
from ..tensor import Tensor, no_grad
from . import nn_ops, tensor_ops
from .graph import Graph, Unsupported, onnx_module
from .recorder import TracerWarning, recording

DEFAULT_OPSET = 17
MIN_OPSET = 11
TABLE = {**tensor_ops.TABLE, **nn_ops.TABLE}


class UnsupportedOperatorError(RuntimeError):
    """An op the model ran has no ONNX form; the message names the op and the module path (one line)."""


def check_output_path(f) -> None:
    """Refuse, before any work, a path that is a folder, lies under a file, or sits in an unwritable folder."""
    if hasattr(f, "write"):
        return
    if not isinstance(f, (str, os.PathLike)):
        raise TypeError(f"export: f must be a file path or a writable binary file object, got {type(f).__name__}")
    path = os.fspath(f)
    if os.path.isdir(path):
        raise ValueError(f"export: the output path {path!r} is a folder; give a file name such as "
                         f"{os.path.join(path, 'model.onnx')!r}")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):  # atomic_write_bytes creates missing folders: check the first that exists
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"export: cannot write {path!r}: {parent!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"export: cannot write {path!r}: the folder {parent!r} is not writable")


def split_args(args, kwargs):
    """(positional inputs, keyword inputs): args is a Tensor or a tuple, whose last item may be a dict of kwargs."""
    if isinstance(args, Tensor):
        args = (args,)
    elif isinstance(args, list):
        args = tuple(args)
    if not isinstance(args, tuple):
        raise TypeError(f"export: args must be a Tensor or a tuple of inputs, got {type(args).__name__}")
    kw = dict(kwargs or {})
    if args and isinstance(args[-1], dict):  # PyTorch's (x, {"name": value}) form
        kw.update(args[-1])
        args = args[:-1]
    return args, kw


def _flat_tensors(value, what):
    """The Tensors of a nested tuple/list/dict output, in order."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _flat_tensors(v, what)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _flat_tensors(v, what)]
    raise TypeError(f"export: the model's {what} must be Tensors (or tuples, lists or dicts of them), "
                    f"got {type(value).__name__}")


def _names(given, count, stem):
    given = list(given or [])
    if len(given) > count:
        raise ValueError(f"export: {len(given)} {stem} names given for {count} {stem}s: {given}")
    default = [stem] if count == 1 else [f"{stem}_{i}" for i in range(count)]
    return given + default[len(given):]


def _dynamic_dims(dynamic_axes, shapes: dict) -> dict:
    """{value name: {axis: dim_param}} from PyTorch's dynamic_axes ({name: [axes]} or {name: {axis: label}})."""
    dims = {}
    for name, axes in (dynamic_axes or {}).items():
        if name not in shapes:
            warnings.warn(f"export: dynamic_axes names {name!r}, which is not an input or output name "
                          f"({', '.join(shapes)}); ignored", UserWarning, stacklevel=3)
            continue
        pairs = axes.items() if isinstance(axes, dict) else [(a, f"{name}_dynamic_axes_{k + 1}")
                                                              for k, a in enumerate(axes)]
        ndim = len(shapes[name])
        for axis, label in pairs:
            if not isinstance(axis, int) or not -ndim <= axis < ndim:
                raise ValueError(f"export: dynamic_axes[{name!r}] has axis {axis!r}, out of range for shape "
                                 f"{shapes[name]}")
            dims.setdefault(name, {})[axis % ndim] = str(label)
    return dims


def record(model, args, kwargs, training_mode: bool = False):
    """(recorder, input Tensors, output Tensors) of one forward pass in eval mode under no_grad; modes restored."""
    if not isinstance(model, Module):
        raise TypeError(f"export: model must be a minires.nn.Module, got {type(model).__name__}")
    modes = [(m, m.training) for m in model.modules()]
    inputs = [a for a in args if isinstance(a, Tensor)]
    try:
        if not training_mode:
            model.eval()
        with no_grad(), recording(model, inputs) as rec:
            outputs = model(*args, **kwargs)
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    return rec, inputs, _flat_tensors(outputs, "outputs")


def _needed(records, outputs):
    """The records the outputs depend on, in recording order."""
    wanted = {id(t) for t in outputs}
    keep = []
    for rec in reversed(records):
        if id(rec.result) in wanted:
            keep.append(rec)
            wanted.update(id(t) for t in rec.tensors())
    return keep[::-1]


def _warn_outside_bools(rec, records, inputs, named) -> None:
    """A boolean tensor that no recorded op made (a comparison) is exported as a constant: say so."""
    made = {id(r.result) for r in records} | {id(t) for t in inputs}
    for r in records:
        for t in r.tensors():
            if t.dtype == np.bool_ and id(t) not in made and id(t.array) not in named:
                warnings.warn(f"{rec.label(r.where)}: op '{r.op}' reads a boolean tensor of shape {t.shape} that no "
                              f"recorded op made (a comparison?); it is exported as a constant, the value it had "
                              f"for this input", TracerWarning, stacklevel=4)


def _foldable(records, inputs, named, fold: bool):
    """ids of records whose inputs are all plain constants (neither input-dependent nor a parameter)."""
    anchored = {id(t) for t in inputs}
    folded = set()
    for rec in records:
        if any(id(t) in anchored or id(t.array) in named for t in rec.tensors()) or not fold:
            anchored.add(id(rec.result))
        else:
            folded.add(id(rec))
    return folded


def build_graph(rec, inputs, outputs, model, opset, input_names, output_names, dynamic_axes,
                export_params=True, do_constant_folding=True):
    """The checked onnx.ModelProto of a recording."""
    onnx = onnx_module()
    helper = onnx.helper
    named = {}
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        named.setdefault(id(t.array), (name, t.array))
    g = Graph(opset, named, export_params)
    in_names, out_names = _names(input_names, len(inputs), "input"), _names(output_names, len(outputs), "output")
    for t, name in zip(inputs, in_names):
        g.bind(t, name)
    records = _needed(rec.records, outputs)
    _warn_outside_bools(rec, records, inputs, named)
    folded = _foldable(records, inputs, named, do_constant_folding)
    for r in records:
        if id(r) in folded:
            continue  # its result is a constant: name_of makes it one when a live op reads it
        emit = TABLE.get(r.op)
        where = rec.label(r.where)
        if emit is None:
            raise UnsupportedOperatorError(f"{where}: op '{r.op}' has no ONNX export")
        g.scope = r.where
        try:
            g.bind(r.result, emit(g, r))
        except Unsupported as exc:
            raise UnsupportedOperatorError(f"{where}: op '{r.op}' has no ONNX export {exc}") from None
    g.scope = ""
    _name_outputs(g, outputs, out_names, set(in_names))

    shapes = {**{n: t.shape for t, n in zip(inputs, in_names)}, **{n: t.shape for t, n in zip(outputs, out_names)}}
    dims = _dynamic_dims(dynamic_axes, shapes)
    batch = next((d[0] for n in in_names for d in [dims.get(n, {})] if 0 in d), None)
    in_rows = [_value_info(helper, n, t, dims.get(n, {})) for t, n in zip(inputs, in_names)]
    out_rows = []
    for t, n in zip(outputs, out_names):
        own = dims.get(n, {})
        if n not in dims and batch is not None and t.ndim and inputs and t.shape[0] == inputs[0].shape[0]:
            own = {0: batch}  # the batch dim follows the input's when the output keeps it
        out_rows.append(_value_info(helper, n, t, own))
    # NOTE: onnx.checker and shape inference serialise the model they get: they check a copy whose
    # initializers are typed graph inputs without data (resnet50's 100 MB would be copied twice more);
    # the initializers themselves come from numpy_helper.from_array.
    typed = [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in g.initializers]
    opsets = [helper.make_opsetid("", opset)]

    def model_of(graph):
        return helper.make_model(graph, opset_imports=opsets, producer_name="minires",
                                 ir_version=helper.find_min_ir_version_for(opsets))
    light = model_of(helper.make_graph(g.nodes, type(model).__name__, in_rows + g.param_inputs + typed, out_rows))
    onnx.checker.check_model(light)
    inferred = onnx.shape_inference.infer_shapes(light, check_type=True, strict_mode=True)
    return model_of(helper.make_graph(g.nodes, type(model).__name__, in_rows + g.param_inputs, out_rows,
                                      initializer=g.initializers, value_info=inferred.graph.value_info))


def _value_info(helper, name, t, dynamic):
    shape = [dynamic.get(i, s) for i, s in enumerate(t.shape)]
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype)), shape)


def _name_outputs(g, outputs, out_names, input_names):
    """Give each output value its name: rename the node output that made it, or add an Identity."""
    produced = {o: node for node in g.nodes for o in node.output}
    taken = set(input_names) | {init.name for init in g.initializers}
    for t, name in zip(outputs, out_names):
        src = g.name_of(t)
        if src in produced and src not in taken and produced[src].op_type != "Constant":
            for node in g.nodes:
                node.input[:] = [name if i == src else i for i in node.input]
                node.output[:] = [name if o == src else o for o in node.output]
            g.names = {k: (name if v == src else v) for k, v in g.names.items()}
            taken.add(name)
        else:
            g.nodes.append(g.onnx.helper.make_node("Identity", [src], [name], name=g.fresh("Identity_node")))
        taken.add(src)
