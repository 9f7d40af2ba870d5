"""Tensor-level ops: each module holds its Functions and the Tensor methods that call them.

Tensor (minires.tensor) knows nothing of its operators: minires.methods binds them onto it, from
one table, when minires is imported.
"""
from . import arithmetic, convert, inplace, join, misc, rearrange, reduction, shape, sort
from .arithmetic import (Abs, Add, Clamp, Div, Exp, Log, MatMul, Maximum, Minimum, Mul, Neg, Pow, Sqrt, Sub,
                         Where, exp, log, maximum, minimum, where)
from .convert import Cast, Clone, ToDevice
from .join import Cat, cat, stack
from .reduction import Max, Mean, Norm, Std, Sum, ValuesIndices, Var
from .rearrange import Expand, GetItem, Permute, Repeat, expand_shape
from .shape import Reshape, flatten_shape
from .sort import TakeAlong

__all__ = ["Abs", "Add", "Cast", "Cat", "Clamp", "Clone", "Div", "Exp", "Expand", "GetItem", "Log",
           "MatMul", "Max", "Maximum", "Mean", "Minimum", "Mul", "Neg", "Norm", "Permute", "Pow", "Repeat",
           "Reshape", "Sqrt", "Std", "Sub", "Sum", "TakeAlong", "ToDevice", "ValuesIndices", "Var", "Where", "cat", "exp",
           "expand_shape", "flatten_shape", "log", "maximum", "minimum", "stack", "where"]
