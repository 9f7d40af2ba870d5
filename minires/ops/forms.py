"""PyTorch's top-level function forms of the Tensor methods: mr.max(t, 1), mr.sum(t), mr.flatten(t, 1), ...

Each checks that its input is a Tensor (naming the function) and calls the method, so the two forms
cannot drift apart. NOTE: this module's max/min/sum/abs shadow Python's builtins here; it uses none.
"""
from __future__ import annotations

from ..tensor import Tensor
from .._validate import any_tensor, exact_ndim
from .arithmetic import maximum, minimum


def max(input, dim=None, keepdim=False):  # noqa: A001 - PyTorch's name
    """The largest value; with dim the named pair (values, indices); with a tensor the elementwise maximum."""
    x = any_tensor("max", "input", input)
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    return x.max() if dim is None else x.max(dim, keepdim)


def min(input, dim=None, keepdim=False):  # noqa: A001 - PyTorch's name
    """The smallest value; with dim the named pair (values, indices); with a tensor the elementwise minimum."""
    x = any_tensor("min", "input", input)
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    return x.min() if dim is None else x.min(dim, keepdim)


def sum(input, dim=None, keepdim=False, *, dtype=None):  # noqa: A001 - PyTorch's name
    """The sum over dim (every element by default), in dtype if given."""
    x = any_tensor("sum", "input", input)
    return (x if dtype is None else x.to(dtype=dtype)).sum(dim, keepdim)


def mean(input, dim=None, keepdim=False, *, dtype=None):
    """The mean over dim (every element by default), in dtype if given."""
    x = any_tensor("mean", "input", input)
    return (x if dtype is None else x.to(dtype=dtype)).mean(dim, keepdim)


def argmax(input, dim=None, keepdim=False):
    """Indices of the maxima (of the flattened tensor, or along dim)."""
    return any_tensor("argmax", "input", input).argmax(dim, keepdim)


def argmin(input, dim=None, keepdim=False):
    """Indices of the minima (of the flattened tensor, or along dim)."""
    return any_tensor("argmin", "input", input).argmin(dim, keepdim)


def amax(input, dim=None, keepdim=False):
    """The largest values over one or several dims (ties share the gradient)."""
    return any_tensor("amax", "input", input).amax(dim, keepdim)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over dim (all by default), unbiased unless unbiased=False or correction=0."""
    return any_tensor("var", "input", input).var(dim, unbiased, keepdim, correction=correction)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation over dim, with var's correction rules."""
    return any_tensor("std", "input", input).std(dim, unbiased, keepdim, correction=correction)


def norm(input, p=2, dim=None, keepdim=False):
    """The vector p-norm over dim (every element by default)."""
    return any_tensor("norm", "input", input).norm(p, dim, keepdim)


def topk(input, k, dim=-1, largest=True, sorted=True):
    """The named pair (values, indices) of the k largest (or smallest) values along dim."""
    return any_tensor("topk", "input", input).topk(k, dim, largest, sorted)


def sort(input, dim=-1, descending=False, stable=False):
    """The named pair (values, indices) of the values sorted along dim."""
    return any_tensor("sort", "input", input).sort(dim, descending, stable)


def argsort(input, dim=-1, descending=False, stable=False):
    """The indices that sort the values along dim."""
    return any_tensor("argsort", "input", input).argsort(dim, descending, stable)


def flatten(input, start_dim=0, end_dim=-1):
    """Dims start_dim..end_dim merged into one (all of them by default, unlike nn.Flatten's start_dim=1)."""
    return any_tensor("flatten", "input", input).flatten(start_dim, end_dim)


def reshape(input, shape):
    """The values in a new shape (one size may be -1)."""
    return any_tensor("reshape", "input", input).reshape(shape)


def transpose(input, dim0, dim1):
    """dim0 and dim1 swapped."""
    return any_tensor("transpose", "input", input).transpose(dim0, dim1)


def t(input):
    """The transpose of a tensor of at most 2 dims."""
    return any_tensor("t", "input", input).t()


def permute(input, dims):
    """The dims in the order `dims`."""
    return any_tensor("permute", "input", input).permute(dims)


def squeeze(input, dim=None):
    """Size-1 dims removed (all, or dim only)."""
    return any_tensor("squeeze", "input", input).squeeze(dim)


def unsqueeze(input, dim):
    """A size-1 dim inserted at dim."""
    return any_tensor("unsqueeze", "input", input).unsqueeze(dim)


def chunk(input, chunks, dim=0):
    """`chunks` nearly equal pieces along dim."""
    return any_tensor("chunk", "input", input).chunk(chunks, dim)


def split(tensor, split_size_or_sections, dim=0):
    """Pieces of split_size_or_sections along dim."""
    return any_tensor("split", "tensor", tensor).split(split_size_or_sections, dim)


def abs(input):  # noqa: A001 - PyTorch's name
    """Elementwise absolute value."""
    return any_tensor("abs", "input", input).abs()


def clamp(input, min=None, max=None):  # noqa: A002 - PyTorch's argument names
    """The values limited to [min, max] (either may be None)."""
    return any_tensor("clamp", "input", input).clamp(min, max)


def matmul(input, other):
    """The matrix product, broadcast over leading dims, as torch.matmul."""
    return any_tensor("matmul", "input", input) @ any_tensor("matmul", "other", other)


def mm(input, mat2):
    """The product of two matrices (2-D only, as torch.mm)."""
    exact_ndim("mm", 2, input=input, mat2=mat2)
    return input @ mat2


def bmm(input, mat2):
    """Batched matrix product of (B, N, M) and (B, M, P) tensors, as torch.bmm."""
    exact_ndim("bmm", 3, input=input, mat2=mat2)
    if input.shape[0] != mat2.shape[0]:
        raise ValueError(f"bmm: batch sizes differ: input {input.shape}, mat2 {mat2.shape}")
    return input @ mat2


def add(input, other, *, alpha=1):
    """input + alpha * other."""
    x = any_tensor("add", "input", input)
    return x + (other if alpha == 1 else other * alpha)


def sub(input, other, *, alpha=1):
    """input - alpha * other."""
    x = any_tensor("sub", "input", input)
    return x - (other if alpha == 1 else other * alpha)


def mul(input, other):
    """Elementwise product (broadcast)."""
    return any_tensor("mul", "input", input) * other


def div(input, other):
    """Elementwise quotient (broadcast)."""
    return any_tensor("div", "input", input) / other


def eq(input, other):
    """input == other, elementwise (a bool tensor)."""
    return any_tensor("eq", "input", input).eq(other)


def ne(input, other):
    """input != other, elementwise (a bool tensor)."""
    return any_tensor("ne", "input", input).ne(other)


def lt(input, other):
    """input < other, elementwise (a bool tensor)."""
    return any_tensor("lt", "input", input).lt(other)


def le(input, other):
    """input <= other, elementwise (a bool tensor)."""
    return any_tensor("le", "input", input).le(other)


def gt(input, other):
    """input > other, elementwise (a bool tensor)."""
    return any_tensor("gt", "input", input).gt(other)


def ge(input, other):
    """input >= other, elementwise (a bool tensor)."""
    return any_tensor("ge", "input", input).ge(other)


def equal(input, other) -> bool:
    """True if both tensors have the same shape and values."""
    return any_tensor("equal", "input", input).equal(other)


def numel(input) -> int:
    """The number of elements."""
    return any_tensor("numel", "input", input).numel()


def is_tensor(obj) -> bool:
    """Whether obj is a minires Tensor (torch.is_tensor)."""
    return isinstance(obj, Tensor)


def is_floating_point(input) -> bool:
    """Whether the dtype is a floating-point one."""
    return any_tensor("is_floating_point", "input", input).is_floating_point()
