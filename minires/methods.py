"""The one place that binds Tensor's operators and methods: `t + u`, `t.sum()`, `t.reshape(...)`, `t.relu()`.

Tensor (minires.tensor) defines only its data, graph link and backward; every method that runs an op
is a function beside that op's Function (minires.ops, minires.functional), bound here from the table
below when minires is imported.
"""
from . import functional
from .ops import arithmetic, convert, inplace, join, misc, rearrange, reduction, shape, sort
from .ops import Add, Div, MatMul, Mul, Pow, Sub, exp, log
from .tensor import Tensor


def _softmax(self, dim, dtype=None):
    return functional.softmax(self, dim, dtype)


def _log_softmax(self, dim, dtype=None):
    return functional.log_softmax(self, dim, dtype)


_add, _radd = arithmetic.binary_methods(Add)
_sub, _rsub = arithmetic.binary_methods(Sub)
_mul, _rmul = arithmetic.binary_methods(Mul)
_div, _rdiv = arithmetic.binary_methods(Div, "truediv")
_pow, _rpow = arithmetic.binary_methods(Pow)
_matmul, _rmatmul = arithmetic.binary_methods(MatMul)

METHODS = {
    # arithmetic and comparisons (arithmetic.py)
    "__add__": _add, "__radd__": _radd, "__sub__": _sub, "__rsub__": _rsub, "__mul__": _mul, "__rmul__": _rmul,
    "__truediv__": _div, "__rtruediv__": _rdiv, "__pow__": _pow, "__rpow__": _rpow,
    "__matmul__": _matmul, "__rmatmul__": _rmatmul, "matmul": _matmul, "__neg__": arithmetic.neg,
    **arithmetic.COMPARISONS, **{op: arithmetic.COMPARISONS[f"__{op}__"] for op in ("eq", "ne", "lt", "le", "gt", "ge")},
    "__abs__": arithmetic.absolute, "equal": arithmetic.equal,
    "exp": exp, "log": log, "sqrt": arithmetic.sqrt, "abs": arithmetic.absolute, "clamp": arithmetic.clamp,
    "clip": arithmetic.clamp,
    # reductions (reduction.py)
    "sum": reduction.sum_, "mean": reduction.mean, "max": reduction.max_, "min": reduction.min_,
    "amax": reduction.amax, "argmax": reduction.argmax, "argmin": reduction.argmin,
    "var": reduction.var, "std": reduction.std, "norm": reduction.norm,
    "sort": sort.sort, "argsort": sort.argsort, "topk": sort.topk,
    # shapes and indexing (shape.py, rearrange.py, join.py)
    "__getitem__": rearrange.getitem, "reshape": shape.reshape, "view": shape.reshape, "permute": rearrange.permute,
    "transpose": rearrange.transpose, "T": property(rearrange.reversed_dims), "flatten": shape.flatten,
    "unsqueeze": shape.unsqueeze, "squeeze": shape.squeeze, "expand": rearrange.expand,
    "expand_as": rearrange.expand_as, "repeat": rearrange.repeat, "split": join.split, "chunk": join.chunk,
    "t": rearrange.t, "view_as": shape.view_as,
    "reshape_as": shape.view_as,
    # casts, devices and copies (convert.py)
    "to": convert.to, "cpu": convert.cpu, "cuda": convert.cuda, "float": convert.float_, "double": convert.double,
    "half": convert.half, "long": convert.long, "int": convert.int_, "bool": convert.bool_method,
    "clone": convert.clone, "contiguous": convert.contiguous, "is_contiguous": convert.is_contiguous,
    "type": convert.type_, "type_as": convert.type_as, "is_cuda": property(convert.is_cuda),
    "is_floating_point": convert.is_floating_point,
    # Python and NumPy conversions: int(t), float(t), classes[t], np.asarray(t) (convert.py)
    "__int__": convert.int_dunder, "__float__": convert.float_dunder, "__index__": convert.index_dunder,
    "__array__": convert.array_dunder,
    # small methods (misc.py)
    "new_zeros": misc.new_zeros, "new_ones": misc.new_ones, "new_empty": misc.new_empty, "new_full": misc.new_full,
    "new_tensor": misc.new_tensor, "any": misc.any_, "all": misc.all_, "nonzero": misc.nonzero,
    "nelement": misc.nelement, "element_size": misc.element_size, "stride": misc.stride,
    "pin_memory": misc.pin_memory,
    # in-place writes, outside the graph (inplace.py)
    "zero_": inplace.zero_, "fill_": inplace.fill_, "copy_": inplace.copy_, "add_": inplace.add_,
    "sub_": inplace.sub_, "mul_": inplace.mul_, "div_": inplace.div_, "clamp_": inplace.clamp_,
    "__setitem__": inplace.setitem,
    "__iadd__": inplace.augmented(_add), "__isub__": inplace.augmented(_sub), "__imul__": inplace.augmented(_mul),
    "__itruediv__": inplace.augmented(_div),
    # activations and softmax (minires.functional)
    "relu": functional.relu, "sigmoid": functional.sigmoid, "tanh": functional.tanh,
    "softmax": _softmax, "log_softmax": _log_softmax,
}

for _name, _method in METHODS.items():
    setattr(Tensor, _name, _method)

__all__ = ["METHODS"]
