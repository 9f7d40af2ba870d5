"""The ONNX graph under construction: value names, initializers, constants and nodes, opset-aware helpers.

Only this module and minires/onnx/exporter.py touch the `onnx` package; the op table (ops_*.py) builds
nodes through `Graph.node` and the helpers here, so an opset difference (axes as an attribute or
as an input) is handled in one place.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..tensor import Tensor

INT64_MAX = np.iinfo(np.int64).max


def _c_order(array: np.ndarray) -> np.ndarray:
    # NOTE: not np.ascontiguousarray, which turns a 0-d array into shape (1,)
    return array if array.flags.c_contiguous else np.array(array, order="C")


class Unsupported(Exception):
    """An op (or one form of it) with no ONNX export; the exporter adds the module path."""


def onnx_module():
    """The onnx package, or an ImportError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ImportError("minires.onnx needs the onnx package: pip install 'minires[onnx]'") from None
    return onnx


class Graph:
    """Nodes, initializers and the name of every value, for one export at one opset."""

    def __init__(self, opset: int, named_arrays: dict, export_params: bool = True):
        self.onnx = onnx_module()
        self.opset = opset
        self.nodes, self.initializers, self.param_inputs = [], [], []
        self.names = {}  # id(Tensor or array) -> ONNX value name
        self.named = named_arrays  # id(parameter/buffer array) -> (state_dict name, array)
        self.export_params = export_params
        self.scope = ""  # module path of the op being built, for node names
        self._count = 0
        self._int_consts = {}

    # ---- names ---------------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        self._count += 1
        scope = "/" + self.scope.replace(".", "/") if self.scope else ""
        return f"{scope}/{hint}_{self._count}"

    def name_of(self, value) -> str:
        """The ONNX name of a recorded tensor, a parameter or buffer (an initializer), or a constant."""
        if isinstance(value, Tensor):
            if id(value) in self.names:
                return self.names[id(value)]
            array = value.array
        else:
            array = value
        if id(array) in self.names:
            return self.names[id(array)]
        if id(array) in self.named:
            name, arr = self.named[id(array)]
            self._add_parameter(name, backend.to_numpy(arr))
        else:
            name = self.constant(np.asarray(backend.to_numpy(array)))
        self.names[id(array)] = name
        return name

    def _add_parameter(self, name: str, array: np.ndarray) -> None:
        helper, numpy_helper = self.onnx.helper, self.onnx.numpy_helper
        if self.export_params:
            self.initializers.append(numpy_helper.from_array(_c_order(array), name))
        else:  # PyTorch's export_params=False: parameters become graph inputs
            dtype = helper.np_dtype_to_tensor_dtype(array.dtype)
            self.param_inputs.append(helper.make_tensor_value_info(name, dtype, list(array.shape)))

    def bind(self, tensor: Tensor, name: str) -> None:
        self.names[id(tensor)] = name

    # ---- nodes ---------------------------------------------------------------------------------
    def node(self, op_type: str, inputs, outputs: int = 1, **attrs):
        """Add a node; returns its output name (or names when outputs > 1). A None input is ONNX's ''."""
        outs = [self.fresh(op_type) for _ in range(outputs)]
        ins = ["" if i is None else i for i in inputs]
        self.nodes.append(self.onnx.helper.make_node(op_type, ins, outs, name=self.fresh(op_type + "_node"),
                                                     **attrs))
        return outs[0] if outputs == 1 else outs

    def constant(self, array: np.ndarray) -> str:
        """A Constant node holding `array`."""
        tensor = self.onnx.numpy_helper.from_array(_c_order(array), self.fresh("const"))
        return self.node("Constant", [], value=tensor)

    def ints(self, values) -> str:
        """An int64 1-D constant (shapes, axes, pads), shared between nodes."""
        key = tuple(int(v) for v in values)
        if key not in self._int_consts:
            self._int_consts[key] = self.constant(np.array(key, dtype=np.int64))
        return self._int_consts[key]

    def scalar(self, value, dtype) -> str:
        """A 0-d constant of `dtype`."""
        return self.constant(np.array(value, dtype=dtype))

    # ---- ops whose form changed between opsets ----------------------------------------------------
    def unsqueeze(self, x: str, axes) -> str:
        if self.opset >= 13:
            return self.node("Unsqueeze", [x, self.ints(axes)])
        return self.node("Unsqueeze", [x], axes=list(axes))

    def squeeze(self, x: str, axes) -> str:
        if self.opset >= 13:
            return self.node("Squeeze", [x, self.ints(axes)])
        return self.node("Squeeze", [x], axes=list(axes))

    def reduce(self, op_type: str, x: str, axes, keepdims: bool) -> str:
        """ReduceSum/Mean/Max/Min/L2 over `axes` (None: all): axes became an input at opset 13 (Sum), 18 (others)."""
        as_input = self.opset >= (13 if op_type == "ReduceSum" else 18)
        keep = int(bool(keepdims))
        if axes is None:
            return self.node(op_type, [x], keepdims=keep)
        if as_input:
            return self.node(op_type, [x, self.ints(axes)], keepdims=keep)
        return self.node(op_type, [x], axes=list(axes), keepdims=keep)
