"""default_collate and default_convert: samples into a batch, with PyTorch's rules.

default_collate, for a list of samples that share one structure:
- Tensors are stacked along a new first dimension; NumPy arrays (and NumPy scalars) become Tensors first;
- Python ints become an int64 Tensor, floats a float64 Tensor, bools a bool Tensor;
- strings and bytes stay as they come (a list, or a tuple when they are a field of tuple samples, as in PyTorch);
- dicts, namedtuples, tuples and lists are collated field by field (a tuple comes back as a list, as in PyTorch).
Anything else (a PIL image, say) is a TypeError naming the field; unequal shapes are a ValueError.
"""
from __future__ import annotations

import collections.abc
import copy
import re

import numpy as np

from ... import backend
from ...tensor import Tensor

_NON_NUMERIC = re.compile(r"[SaUO]")  # dtype.str of strings, bytes and objects: not convertible to a Tensor
_SUPPORTED = "tensors, numpy arrays, numbers, dicts or lists"


def _where(path: str) -> str:
    return f"field {path} of the samples" if path else "the samples"


def _type_name(x) -> str:
    t = type(x)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _unsupported(path: str, x, i: int) -> TypeError:
    hint = ""
    if type(x).__module__.startswith("PIL."):
        hint = " (add transforms.ToTensor() to the dataset's transform to turn PIL images into Tensors)"
    return TypeError(f"default_collate: {_where(path)} is a {_type_name(x)} (sample {i}); batch must contain "
                     f"{_SUPPORTED}{hint}")


def _stack(path: str, arrays: list) -> Tensor:
    """One Tensor from equal-shaped arrays (NumPy or CuPy), along a new first dimension."""
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape
        odd = next(i for i, a in enumerate(arrays) if a.shape != first)
        raise ValueError(f"default_collate: {_where(path)} have different shapes within a batch: "
                         f"{tuple(first)} in sample 0, {tuple(arrays[odd].shape)} in sample {odd} "
                         f"(all shapes: {sorted(tuple(s) for s in shapes)}); resize or crop them to one shape, "
                         f"or pass a collate_fn")
    xp = backend.get_array_module(arrays[0])
    return Tensor(xp.stack(arrays))


def _arrays(path: str, batch: list) -> list:
    """The raw array of each Tensor / NumPy value in `batch`, refusing anything else and non-numeric dtypes."""
    out = []
    for i, x in enumerate(batch):
        if isinstance(x, Tensor):
            out.append(x.array)
        elif isinstance(x, (np.ndarray, np.generic)) and not isinstance(x, (np.str_, np.bytes_)):
            a = np.asarray(x)
            if _NON_NUMERIC.search(a.dtype.str):
                raise TypeError(f"default_collate: {_where(path)} is a NumPy array of dtype {a.dtype} (sample {i}); "
                                f"batch must contain {_SUPPORTED}")
            out.append(a)
        else:
            raise TypeError(f"default_collate: {_where(path)} mixes types: {_type_name(batch[0])} in sample 0, "
                            f"{_type_name(x)} in sample {i}")
    return out


def _numbers(path: str, batch: list, kind) -> Tensor:
    for i, x in enumerate(batch):
        if isinstance(x, (str, bytes)) or not isinstance(x, (int, float, bool, np.number, np.bool_)):
            raise TypeError(f"default_collate: {_where(path)} mixes types: {_type_name(batch[0])} in sample 0, "
                            f"{_type_name(x)} in sample {i}")
    if kind is float:
        return Tensor(np.array(batch, dtype=np.float64))
    if all(isinstance(x, (bool, np.bool_)) for x in batch):
        return Tensor(np.array(batch, dtype=np.bool_))
    a = np.array(batch)
    # ints give int64; a float among ints gives float32, PyTorch's default dtype, as torch.tensor([1, 2.5])
    return Tensor(a.astype(np.int64) if a.dtype.kind in "iub" else a.astype(np.float32))


def _collate(path: str, batch: list):
    elem = batch[0]
    if isinstance(elem, Tensor) or (isinstance(elem, (np.ndarray, np.generic))
                                    and not isinstance(elem, (np.str_, np.bytes_))):
        return _stack(path, _arrays(path, batch))
    if hasattr(elem, "__cuda_array_interface__") and hasattr(elem, "shape"):  # a CuPy array
        return _stack(path, list(batch))
    if isinstance(elem, float):
        return _numbers(path, batch, float)
    if isinstance(elem, int):  # bool too, as in PyTorch
        return _numbers(path, batch, int)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        for i, d in enumerate(batch):
            if not isinstance(d, collections.abc.Mapping) or d.keys() != elem.keys():
                raise ValueError(f"default_collate: {_where(path)} do not share keys: {list(elem)} in sample 0, "
                                 f"{list(d) if isinstance(d, collections.abc.Mapping) else _type_name(d)} in "
                                 f"sample {i}")
        fields = {key: _collate(f"{path}[{key!r}]", [d[key] for d in batch]) for key in elem}
        if isinstance(elem, collections.abc.MutableMapping):
            out = copy.copy(elem)  # keeps the mapping's type (OrderedDict, defaultdict, ...)
            out.update(fields)
            return out
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple keeps its type
        return type(elem)(*(_collate(f"{path}.{name}", col)
                            for name, col in zip(elem._fields, zip(*_equal_lengths(path, batch)))))
    if isinstance(elem, collections.abc.Sequence):
        columns = [_collate(f"{path}[{j}]", col) for j, col in enumerate(zip(*_equal_lengths(path, batch)))]
        if isinstance(elem, tuple):
            return columns  # a list, as PyTorch's
        try:
            return type(elem)(columns)
        except TypeError:
            return columns
    raise _unsupported(path, elem, 0)


def _equal_lengths(path: str, batch: list) -> list:
    n = len(batch[0])
    for i, s in enumerate(batch):
        if not isinstance(s, collections.abc.Sequence) or isinstance(s, (str, bytes)) or len(s) != n:
            got = len(s) if isinstance(s, collections.abc.Sized) else _type_name(s)
            raise ValueError(f"default_collate: each element in list of batch should be of equal size: "
                             f"{_where(path)} have {n} elements in sample 0, {got} in sample {i}")
    return batch


def default_collate(batch):
    """Samples (a list) into one batch: Tensors stacked, numbers into Tensors, containers field by field."""
    if not isinstance(batch, collections.abc.Sequence) or isinstance(batch, (str, bytes)):
        raise TypeError(f"default_collate: expected a list of samples, got {_type_name(batch)}")
    if len(batch) == 0:
        raise ValueError("default_collate: got an empty batch (no samples)")
    return _collate("", batch)


def default_convert(data):
    """One sample without batching: NumPy arrays and scalars become Tensors, containers are converted inside."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, (np.ndarray, np.generic)) and not isinstance(data, (np.str_, np.bytes_)):
        a = np.asarray(data)
        return data if _NON_NUMERIC.search(a.dtype.str) else Tensor(a)
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, collections.abc.Mapping):
        fields = {key: default_convert(data[key]) for key in data}
        if isinstance(data, collections.abc.MutableMapping):
            out = copy.copy(data)
            out.update(fields)
            return out
        try:
            return type(data)(fields)
        except TypeError:
            return fields
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence):
        try:
            return type(data)([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data
