"""PyTorch's top-level function forms of the Tensor methods: mr.max(t, 1), mr.sum(t), mr.flatten(t, 1), ...

Each checks that its input is a Tensor (naming the function) and calls the method, so the two forms
cannot drift apart. NOTE: this module's max/min/sum/abs shadow Python's builtins here; it uses none.
"""
from __future__ import annotations

from ..tensor import Tensor
from .arithmetic import maximum, minimum, tensor_arg


def max(input, dim=None, keepdim=False):  # noqa: A001 - PyTorch's name
    """The largest value; with dim the named pair (values, indices); with a tensor the elementwise maximum."""
    x = tensor_arg("max", "input", input)
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    return x.max() if dim is None else x.max(dim, keepdim)


def min(input, dim=None, keepdim=False):  # noqa: A001 - PyTorch's name
    """The smallest value; with dim the named pair (values, indices); with a tensor the elementwise minimum."""
    x = tensor_arg("min", "input", input)
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    return x.min() if dim is None else x.min(dim, keepdim)


def sum(input, dim=None, keepdim=False, *, dtype=None):  # noqa: A001 - PyTorch's name
    """The sum over dim (every element by default), in dtype if given."""
    x = tensor_arg("sum", "input", input)
    return (x if dtype is None else x.to(dtype=dtype)).sum(dim, keepdim)


def mean(input, dim=None, keepdim=False, *, dtype=None):
    """The mean over dim (every element by default), in dtype if given."""
    x = tensor_arg("mean", "input", input)
    return (x if dtype is None else x.to(dtype=dtype)).mean(dim, keepdim)


def argmax(input, dim=None, keepdim=False):
    """Indices of the maxima (of the flattened tensor, or along dim)."""
    return tensor_arg("argmax", "input", input).argmax(dim, keepdim)


def argmin(input, dim=None, keepdim=False):
    """Indices of the minima (of the flattened tensor, or along dim)."""
    return tensor_arg("argmin", "input", input).argmin(dim, keepdim)


def amax(input, dim=None, keepdim=False):
    """The largest values over one or several dims (ties share the gradient)."""
    return tensor_arg("amax", "input", input).amax(dim, keepdim)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over dim (all by default), unbiased unless unbiased=False or correction=0."""
    return tensor_arg("var", "input", input).var(dim, unbiased, keepdim, correction=correction)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation over dim, with var's correction rules."""
    return tensor_arg("std", "input", input).std(dim, unbiased, keepdim, correction=correction)


def norm(input, p=2, dim=None, keepdim=False):
    """The vector p-norm over dim (every element by default)."""
    return tensor_arg("norm", "input", input).norm(p, dim, keepdim)


def topk(input, k, dim=-1, largest=True, sorted=True):
    """The named pair (values, indices) of the k largest (or smallest) values along dim."""
    return tensor_arg("topk", "input", input).topk(k, dim, largest, sorted)


def sort(input, dim=-1, descending=False, stable=False):
    """The named pair (values, indices) of the values sorted along dim."""
    return tensor_arg("sort", "input", input).sort(dim, descending, stable)


def argsort(input, dim=-1, descending=False, stable=False):
    """The indices that sort the values along dim."""
    return tensor_arg("argsort", "input", input).argsort(dim, descending, stable)


def flatten(input, start_dim=0, end_dim=-1):
    """Dims start_dim..end_dim merged into one (all of them by default, unlike nn.Flatten's start_dim=1)."""
    return tensor_arg("flatten", "input", input).flatten(start_dim, end_dim)


def reshape(input, shape):
    """The values in a new shape (one size may be -1)."""
    return tensor_arg("reshape", "input", input).reshape(shape)


def transpose(input, dim0, dim1):
    """dim0 and dim1 swapped."""
    return tensor_arg("transpose", "input", input).transpose(dim0, dim1)


def t(input):
    """The transpose of a tensor of at most 2 dims."""
    return tensor_arg("t", "input", input).t()


def permute(input, dims):
    """The dims in the order `dims`."""
    return tensor_arg("permute", "input", input).permute(dims)


def squeeze(input, dim=None):
    """Size-1 dims removed (all, or dim only)."""
    return tensor_arg("squeeze", "input", input).squeeze(dim)


def unsqueeze(input, dim):
    """A size-1 dim inserted at dim."""
    return tensor_arg("unsqueeze", "input", input).unsqueeze(dim)


def chunk(input, chunks, dim=0):
    """`chunks` nearly equal pieces along dim."""
    return tensor_arg("chunk", "input", input).chunk(chunks, dim)


def split(tensor, split_size_or_sections, dim=0):
    """Pieces of split_size_or_sections along dim."""
    return tensor_arg("split", "tensor", tensor).split(split_size_or_sections, dim)


def abs(input):  # noqa: A001 - PyTorch's name
    """Elementwise absolute value."""
    return tensor_arg("abs", "input", input).abs()


def clamp(input, min=None, max=None):  # noqa: A002 - PyTorch's argument names
    """The values limited to [min, max] (either may be None)."""
    return tensor_arg("clamp", "input", input).clamp(min, max)


def matmul(input, other):
    """The matrix product, broadcast over leading dims, as torch.matmul."""
    return tensor_arg("matmul", "input", input) @ tensor_arg("matmul", "other", other)


def mm(input, mat2):
    """The product of two matrices (2-D only, as torch.mm)."""
    _dims("mm", 2, input=input, mat2=mat2)
    return input @ mat2


def bmm(input, mat2):
    """Batched matrix product of (B, N, M) and (B, M, P) tensors, as torch.bmm."""
    _dims("bmm", 3, input=input, mat2=mat2)
    if input.shape[0] != mat2.shape[0]:
        raise ValueError(f"bmm: batch sizes differ: input {input.shape}, mat2 {mat2.shape}")
    return input @ mat2


def _dims(op: str, ndim: int, **tensors) -> None:
    for name, x in tensors.items():
        if tensor_arg(op, name, x).ndim != ndim:
            raise ValueError(f"{op}: '{name}' must be {ndim}-D, got shape {x.shape}")


def add(input, other, *, alpha=1):
    """input + alpha * other."""
    x = tensor_arg("add", "input", input)
    return x + (other if alpha == 1 else other * alpha)


def sub(input, other, *, alpha=1):
    """input - alpha * other."""
    x = tensor_arg("sub", "input", input)
    return x - (other if alpha == 1 else other * alpha)


def mul(input, other):
    """Elementwise product (broadcast)."""
    return tensor_arg("mul", "input", input) * other


def div(input, other):
    """Elementwise quotient (broadcast)."""
    return tensor_arg("div", "input", input) / other


def eq(input, other):
    """input == other, elementwise (a bool tensor)."""
    return tensor_arg("eq", "input", input).eq(other)


def ne(input, other):
    """input != other, elementwise (a bool tensor)."""
    return tensor_arg("ne", "input", input).ne(other)


def lt(input, other):
    """input < other, elementwise (a bool tensor)."""
    return tensor_arg("lt", "input", input).lt(other)


def le(input, other):
    """input <= other, elementwise (a bool tensor)."""
    return tensor_arg("le", "input", input).le(other)


def gt(input, other):
    """input > other, elementwise (a bool tensor)."""
    return tensor_arg("gt", "input", input).gt(other)


def ge(input, other):
    """input >= other, elementwise (a bool tensor)."""
    return tensor_arg("ge", "input", input).ge(other)


def equal(input, other) -> bool:
    """True if both tensors have the same shape and values."""
    return tensor_arg("equal", "input", input).equal(other)


def numel(input) -> int:
    """The number of elements."""
    return tensor_arg("numel", "input", input).numel()


def is_tensor(obj) -> bool:
    """Whether obj is a minires Tensor (torch.is_tensor)."""
    return isinstance(obj, Tensor)


def is_floating_point(input) -> bool:
    """Whether the dtype is a floating-point one."""
    return tensor_arg("is_floating_point", "input", input).is_floating_point()
