"""ONNX forms of the layer ops: conv, batch norm, pooling, linear, activations, softmax, layer norm, pad.

Each entry of TABLE takes (graph, record) and returns the ONNX name of the record's result; it is
keyed on the op's name (Function.op_name()), so a fast path exports as its reference does. Only the
parameters forward receives are read, never a Function's attributes.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..functional.pooling import adaptive_bins
from .graph import Unsupported


def _pair_pads(padding):
    """ONNX pads [top, left, bottom, right] from a symmetric (PH, PW)."""
    if len(padding) != 2:
        raise Unsupported(f"padding {tuple(padding)}")
    PH, PW = padding
    return [int(PH), int(PW), int(PH), int(PW)]


def conv2d(g, rec):
    x, w, b = (rec.inputs + (None, None))[:3]
    p = rec.params
    KH, KW = w.shape[2:]
    ins = [g.name_of(x), g.name_of(w)] + ([g.name_of(b)] if b is not None else [])
    return g.node("Conv", ins, kernel_shape=[KH, KW], strides=list(p.get("stride", (1, 1))),
                  pads=_pair_pads(p.get("padding", (0, 0))), dilations=list(p.get("dilation", (1, 1))),
                  group=int(p.get("groups", 1)))


def batch_norm(g, rec):
    x, w, b = (rec.inputs + (None, None))[:3]
    p = rec.params
    if p.get("training"):
        raise Unsupported("with batch statistics (training=True); export the model in eval mode")
    C, dtype = x.shape[1], x.dtype
    scale = g.name_of(w) if w is not None else g.constant(np.ones(C, dtype=dtype))
    bias = g.name_of(b) if b is not None else g.constant(np.zeros(C, dtype=dtype))
    return g.node("BatchNormalization", [g.name_of(x), scale, bias, g.name_of(p["running_mean"]),
                                         g.name_of(p["running_var"])], epsilon=float(p.get("eps", 1e-5)))


def _pool(op_type, g, rec, **extra):
    p = rec.params
    return g.node(op_type, [g.name_of(rec.inputs[0])], kernel_shape=list(p.get("kernel_size", (2, 2))),
                  strides=list(p.get("stride", (2, 2))), pads=_pair_pads(p.get("padding", (0, 0))), **extra)


def max_pool2d(g, rec):
    return _pool("MaxPool", g, rec)


def avg_pool2d(g, rec):
    return _pool("AveragePool", g, rec, count_include_pad=1)  # minires and PyTorch count the zero padding


def adaptive_avg_pool2d(g, rec):
    x = rec.inputs[0]
    (H, W), (OH, OW) = x.shape[2:], tuple(rec.params.get("output_size", (1, 1)))
    name = g.name_of(x)
    if (OH, OW) == (1, 1):
        return g.node("GlobalAveragePool", [name])
    if H % OH == 0 and W % OW == 0:  # equal bins: one AveragePool
        k = [H // OH, W // OW]
        return g.node("AveragePool", [name], kernel_shape=k, strides=k)
    # Unequal (possibly overlapping) bins: the mean of each bin's slice, joined back.
    rows = []
    for h0, h1 in adaptive_bins(H, OH):
        band = g.node("Slice", [name, g.ints([h0]), g.ints([h1]), g.ints([2])])
        cells = [g.reduce("ReduceMean", g.node("Slice", [band, g.ints([w0]), g.ints([w1]), g.ints([3])]),
                          [2, 3], True) for w0, w1 in adaptive_bins(W, OW)]
        rows.append(g.node("Concat", cells, axis=3))
    return g.node("Concat", rows, axis=2)


def linear(g, rec):
    x, w, b = (rec.inputs + (None, None))[:3]
    if x.ndim == 2:
        ins = [g.name_of(x), g.name_of(w)] + ([g.name_of(b)] if b is not None else [])
        return g.node("Gemm", ins, transB=1)
    y = g.node("MatMul", [g.name_of(x), g.node("Transpose", [g.name_of(w)], perm=[1, 0])])  # (..., out)
    return y if b is None else g.node("Add", [y, g.name_of(b)])


def relu(g, rec):
    return g.node("Relu", [g.name_of(rec.inputs[0])])


def add_relu(g, rec):
    return g.node("Relu", [g.node("Add", [g.name_of(rec.inputs[0]), g.name_of(rec.inputs[1])])])


def sigmoid(g, rec):
    return g.node("Sigmoid", [g.name_of(rec.inputs[0])])


def tanh(g, rec):
    return g.node("Tanh", [g.name_of(rec.inputs[0])])


def leaky_relu(g, rec):
    return g.node("LeakyRelu", [g.name_of(rec.inputs[0])], alpha=float(rec.params.get("negative_slope", 0.01)))


def gelu(g, rec):
    x, approximate = rec.inputs[0], rec.params.get("approximate", "none")
    name, dtype = g.name_of(x), x.dtype
    if g.opset >= 20:
        return g.node("Gelu", [name], approximate=approximate)
    half = g.node("Mul", [name, g.scalar(0.5, dtype)])  # 0.5 x
    if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.node("Mul", [g.node("Mul", [name, name]), name])
        inner = g.node("Add", [name, g.node("Mul", [cube, g.scalar(0.044715, dtype)])])
        t = g.node("Tanh", [g.node("Mul", [inner, g.scalar(math.sqrt(2 / math.pi), dtype)])])
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        t = g.node("Erf", [g.node("Mul", [name, g.scalar(1 / math.sqrt(2), dtype)])])
    return g.node("Mul", [half, g.node("Add", [t, g.scalar(1.0, dtype)])])


def dropout(g, rec):
    warnings.warn(f"{rec.where}: dropout ran with training=True during the export; it is exported as the "
                  f"identity (eval mode)", UserWarning, stacklevel=2)
    return g.node("Identity", [g.name_of(rec.inputs[0])])


def _softmax(op_type, g, rec):
    x = rec.inputs[0]
    dim = int(rec.params.get("dim", -1)) % max(x.ndim, 1)
    name = g.name_of(x)
    if g.opset >= 13 or dim == x.ndim - 1:
        return g.node(op_type, [name], axis=dim)
    # Before opset 13 softmax flattened the dims from `axis` on: move dim last and back.
    perm = list(range(x.ndim))
    perm[dim], perm[-1] = perm[-1], perm[dim]
    y = g.node(op_type, [g.node("Transpose", [name], perm=perm)], axis=x.ndim - 1)
    return g.node("Transpose", [y], perm=perm)


def softmax(g, rec):
    return _softmax("Softmax", g, rec)


def log_softmax(g, rec):
    return _softmax("LogSoftmax", g, rec)


def layer_norm(g, rec):
    x, w, b = (rec.inputs + (None, None))[:3]
    k, eps = int(rec.params.get("k", 1)), float(rec.params.get("eps", 1e-5))
    name, dtype = g.name_of(x), x.dtype
    if g.opset >= 17:
        scale = g.name_of(w) if w is not None else g.constant(np.ones(x.shape[x.ndim - k:], dtype=dtype))
        ins = [name, scale] + ([g.name_of(b)] if b is not None else [])
        return g.node("LayerNormalization", ins, axis=-k, epsilon=eps)
    axes = list(range(x.ndim - k, x.ndim))
    xc = g.node("Sub", [name, g.reduce("ReduceMean", name, axes, True)])
    var = g.reduce("ReduceMean", g.node("Mul", [xc, xc]), axes, True)
    y = g.node("Div", [xc, g.node("Sqrt", [g.node("Add", [var, g.scalar(eps, dtype)])])])
    if w is not None:
        y = g.node("Mul", [y, g.name_of(w)])
    return y if b is None else g.node("Add", [y, g.name_of(b)])


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(g, rec):
    x, p = rec.inputs[0], rec.params
    mode = p.get("mode", "constant")
    if mode == "circular" and g.opset < 19:
        raise Unsupported(f"with mode 'circular' before opset 19 (got opset {g.opset})")
    begins, ends = [0] * x.ndim, [0] * x.ndim
    for axis, left, right in p.get("pads", ()):
        begins[axis], ends[axis] = int(left), int(right)
    ins = [g.name_of(x), g.ints(begins + ends)]
    if mode == "constant":
        ins.append(g.scalar(p.get("value", 0.0) or 0, x.dtype))
    return g.node("Pad", ins, mode=_PAD_MODES[mode])


def normalize(g, rec):
    x, p = rec.inputs[0], rec.params
    order, dim, eps = p.get("p", 2.0), int(p.get("dim", 1)) % x.ndim, float(p.get("eps", 1e-12))
    if order not in (1, 2):
        raise Unsupported(f"with p={order} (p=1 and p=2 export)")
    name = g.name_of(x)
    norm = g.reduce("ReduceL2" if order == 2 else "ReduceL1", name, [dim], True)
    return g.node("Div", [name, g.node("Max", [norm, g.scalar(eps, x.dtype)])])


TABLE = {
    "conv2d": conv2d, "batch_norm": batch_norm, "max_pool2d": max_pool2d, "avg_pool2d": avg_pool2d,
    "adaptive_avg_pool2d": adaptive_avg_pool2d, "linear": linear, "relu": relu, "add_relu": add_relu,
    "sigmoid": sigmoid, "tanh": tanh, "leaky_relu": leaky_relu, "gelu": gelu, "dropout": dropout,
    "softmax": softmax, "log_softmax": log_softmax, "layer_norm": layer_norm, "pad": pad, "normalize": normalize,
}
