"""ONNX forms of the tensor ops: arithmetic with broadcasting, reductions, shape ops, indexing, cat, casts.

Each entry of TABLE takes (graph, record) and returns the ONNX name of the record's result. Shapes
are the recorded ones, except the leading dim of a reshape (copied or inferred) and the dims an
expand keeps, so that a graph exported with a dynamic batch runs at any batch size.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .graph import INT64_MAX, Unsupported

_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max",
           "minimum": "Min", "matmul": "MatMul"}
_UNARY = {"neg": "Neg", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs", "to": "Identity",
          "clone": "Identity"}


def _as(g, value, dtype) -> str:
    """The name of `value` (a Tensor, array or number) in `dtype`, cast when its own dtype differs."""
    if not isinstance(value, Tensor) and not hasattr(value, "dtype"):
        return g.scalar(value, dtype)
    name = g.name_of(value)
    if np.dtype(value.dtype) == dtype:
        return name
    return g.node("Cast", [name], to=g.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


def binary(g, rec):
    # NOTE: minires follows NumPy (int + float gives float, int / int gives float): inputs are cast
    # to the result's dtype first, where ONNX's Div of two integers would divide integrally.
    dtype = rec.result.dtype
    return g.node(_BINARY[rec.op], [_as(g, t, dtype) for t in rec.inputs[:2]])


def unary(g, rec):
    return g.node(_UNARY[rec.op], [g.name_of(rec.inputs[0])])


def clamp(g, rec):
    x, lo, hi = (rec.inputs + (None, None))[:3]
    dtype = rec.result.dtype
    y = _as(g, x, dtype)
    if lo is not None:
        y = g.node("Max", [y, _as(g, lo, dtype)])
    if hi is not None:  # lo > hi gives hi, as minires and PyTorch
        y = g.node("Min", [y, _as(g, hi, dtype)])
    return y


def where(g, rec):
    cond, a, b = rec.inputs[:3]
    dtype = rec.result.dtype
    return g.node("Where", [g.name_of(cond), _as(g, a, dtype), _as(g, b, dtype)])


def cast(g, rec):
    return g.node("Cast", [g.name_of(rec.inputs[0])], to=g.onnx.helper.np_dtype_to_tensor_dtype(rec.result.dtype))


def _axes(dim, ndim):
    """Reduction axes, non-negative and sorted; None for all axes."""
    if dim is None:
        return None
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    return sorted({int(d) % ndim for d in dims}) if ndim else []


def _reduce(op_type):
    def emit(g, rec):
        x, p = rec.inputs[0], rec.params
        if "indices" in p or "smallest" in p:  # max(dim)/min(dim)'s values
            kind = "ReduceMin" if p.get("smallest") else "ReduceMax"
            return g.reduce(kind, g.name_of(x), _axes(p.get("dim", 0), x.ndim), p.get("keepdim", False))
        return g.reduce(op_type, g.name_of(x), _axes(p.get("dim"), x.ndim), p.get("keepdim", False))
    return emit


def var(g, rec, root=False):
    x, p = rec.inputs[0], rec.params
    axes = _axes(p.get("dim"), x.ndim)
    count = int(np.prod([x.shape[a] for a in (axes if axes is not None else range(x.ndim))]))
    name = g.name_of(x)
    xc = g.node("Sub", [name, g.reduce("ReduceMean", name, axes, True)])
    total = g.reduce("ReduceSum", g.node("Mul", [xc, xc]), axes, p.get("keepdim", False))
    # NOTE: the count is the recorded one: a reduction over the batch axis is fixed to this batch size
    out = g.node("Div", [total, g.scalar(max(count - p.get("correction", 1), 0), x.dtype)])
    return g.node("Sqrt", [out]) if root else out


def std(g, rec):
    return var(g, rec, root=True)


def norm(g, rec):
    x, p = rec.inputs[0], rec.params
    order = p.get("p", 2)
    axes, keep = _axes(p.get("dim"), x.ndim), p.get("keepdim", False)
    name = g.name_of(x)
    if order == 2:
        return g.reduce("ReduceL2", name, axes, keep)
    if order == 1:
        return g.reduce("ReduceL1", name, axes, keep)
    if order in (np.inf, -np.inf):
        return g.reduce("ReduceMax" if order > 0 else "ReduceMin", g.node("Abs", [name]), axes, keep)
    raise Unsupported(f"with p={order!r} (p=1, 2 and inf export)")


def reshape(g, rec):
    x, out = rec.inputs[0], rec.result.shape
    shape = list(out)
    if shape and x.ndim and x.shape[0] == out[0]:
        shape[0] = 0  # 0 copies the input's leading (batch) dim
    elif shape and rec.result.array.size:
        shape[0] = -1  # the leading dim absorbs whatever the others leave: flatten(0), view(-1), ...
    return g.node("Reshape", [g.name_of(x), g.ints(shape)])


def permute(g, rec):
    x = rec.inputs[0]
    return g.node("Transpose", [g.name_of(x)], perm=[int(d) % x.ndim for d in rec.params.get("dims", ())])


def expand(g, rec):
    x, out = rec.inputs[0], rec.result.shape
    lead = len(out) - x.ndim
    # a 1 keeps the input's dim under ONNX's broadcasting: only the dims that grow are fixed
    shape = [1 if i >= lead and x.shape[i - lead] == s else s for i, s in enumerate(out)]
    return g.node("Expand", [g.name_of(x), g.ints(shape)])


def repeat(g, rec):
    x, sizes = rec.inputs[0], [int(s) for s in rec.params.get("sizes", ())]
    name = g.name_of(x)
    extra = len(sizes) - x.ndim
    if extra > 0:  # new leading dims of size 1, then tiled
        name = g.unsqueeze(name, list(range(extra)))
    return g.node("Tile", [name, g.ints(sizes)])


def cat(g, rec):
    xs, dtype = rec.inputs, rec.result.dtype
    return g.node("Concat", [_as(g, t, dtype) for t in xs], axis=int(rec.params.get("dim", 0)) % xs[0].ndim)


def getitem(g, rec):
    """Basic indexing: ints, slices, None and Ellipsis (an integer-array or boolean index is data, not shape)."""
    x, index = rec.inputs[0], rec.params.get("index")
    items = list(index) if isinstance(index, tuple) else [index]
    if not all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items):
        raise Unsupported("with a tensor, list or boolean index (basic indexing exports: ints, slices, None, ...)")
    if items.count(Ellipsis) > 1:
        raise Unsupported("with more than one Ellipsis")
    used = sum(1 for i in items if i is not None and i is not Ellipsis)
    at = items.index(Ellipsis) if Ellipsis in items else len(items)
    items[at:at + 1] = [slice(None)] * (x.ndim - used)  # the dims the index leaves out, whole
    starts, ends, axes, steps, drop, new = [], [], [], [], [], []
    axis = out_axis = 0
    for i in items:
        if i is None:
            new.append(out_axis)
            out_axis += 1
            continue
        if isinstance(i, slice):
            if i != slice(None) and i != slice(None, None, 1):
                step = 1 if i.step is None else int(i.step)
                lo, hi = (0, INT64_MAX) if step > 0 else (-1, -INT64_MAX)
                starts.append(lo if i.start is None else int(i.start))
                ends.append(hi if i.stop is None else int(i.stop))
                axes.append(axis)
                steps.append(step)
            out_axis += 1
        else:  # an int: a slice of one, then the dim dropped
            k = int(i)
            starts.append(k)
            ends.append(k + 1 if k != -1 else INT64_MAX)
            axes.append(axis)
            steps.append(1)
            drop.append(axis)
        axis += 1
    y = g.name_of(x)
    if axes:
        y = g.node("Slice", [y, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps)])
    if drop:
        y = g.squeeze(y, drop)
    if new:
        y = g.unsqueeze(y, new)
    if y == g.name_of(x):
        y = g.node("Identity", [y])
    return y


TABLE = {**{op: binary for op in _BINARY}, **{op: unary for op in _UNARY},
         "clamp": clamp, "where": where, "cast": cast, "sum": _reduce("ReduceSum"), "mean": _reduce("ReduceMean"),
         "max": _reduce("ReduceMax"), "var": var, "std": std, "norm": norm, "reshape": reshape, "permute": permute,
         "expand": expand, "repeat": repeat, "cat": cat, "getitem": getitem}
