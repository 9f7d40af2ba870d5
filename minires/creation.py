"""Creating tensors, PyTorch's creation functions, and the global random generator they draw from."""
from __future__ import annotations

import numbers

import numpy as np

from . import backend
from .tensor import DEFAULT_DTYPE, Tensor, _as_dtype, float32, int64

_seed = int(np.random.SeedSequence().entropy) % 2**63  # as PyTorch: a fresh seed until manual_seed
_rng = np.random.default_rng(_seed)


def manual_seed(seed: int) -> np.random.Generator:
    """Seed minires' global generator (used by randn/rand, layer initialisation and the transforms)."""
    global _rng, _seed
    _rng = np.random.default_rng(seed)
    _seed = int(seed)
    return _rng


def initial_seed() -> int:
    """The seed of the global generator: the last manual_seed (in a DataLoader worker, base seed + worker id)."""
    return _seed


def default_generator() -> np.random.Generator:
    return _rng


class Generator:
    """PyTorch's torch.Generator: a random stream of its own, for `generator=` of the creation functions,
    samplers, DataLoader and random_split; `manual_seed` returns the generator, as in PyTorch."""

    def __init__(self, device="cpu"):
        self.device = str(device)
        self.seed()

    def manual_seed(self, seed: int) -> "Generator":
        if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer)):
            raise TypeError(f"Generator.manual_seed: seed must be an int, got {seed!r}")
        self._seed = int(seed)
        self.rng = np.random.default_rng(self._seed % 2**64)
        return self

    def seed(self) -> int:
        """Seed from fresh entropy and return that seed."""
        self.manual_seed(int(np.random.SeedSequence().entropy) % 2**63)
        return self._seed

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> "Generator":
        self.rng.bit_generator.state = state
        return self


def numpy_generator(generator=None) -> np.random.Generator:
    """The NumPy generator behind `generator=`: minires' global one for None, a Generator's own stream."""
    if generator is None:
        return _rng
    if isinstance(generator, Generator):
        return generator.rng
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"generator: expected a minires.Generator, got {type(generator).__name__}")


def get_rng_state() -> dict:
    return _rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    _rng.bit_generator.state = state


def _infer_dtype(data):
    """float32 for Python floats and lists of them, as PyTorch's default dtype."""
    arr = np.asarray(data)
    if arr.dtype == np.float64 and not isinstance(data, np.ndarray):
        return float32
    return arr.dtype


def tensor(data, dtype=None, device="cpu", requires_grad: bool = False) -> Tensor:
    """A new leaf tensor copied from `data` (nested lists, scalars, NumPy/CuPy arrays or a Tensor)."""
    if isinstance(data, Tensor):
        data = data.array
    dtype = _as_dtype(dtype)
    xp = backend.get_array_module(data)
    if xp is np:
        try:
            arr = np.array(data, dtype=dtype if dtype is not None else _infer_dtype(data))
        except (ValueError, TypeError) as exc:
            raise TypeError(f"tensor: data must be numeric nested lists of one shape or an array "
                            f"({type(exc).__name__}: {str(exc).split('.')[0]})") from None
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"tensor: data must be numeric (nested lists of numbers or an array), got dtype {arr.dtype}")
    else:
        arr = data.astype(dtype if dtype is not None else data.dtype, copy=True)
    arr = backend.to_device(arr, device)
    return Tensor(arr, requires_grad=requires_grad)


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"shape: dimensions must be non-negative ints, got {shape}")
    return tuple(int(s) for s in shape)


def _create(fill, shape, dtype, device, requires_grad):
    shape = _shape(shape)
    dtype = _as_dtype(dtype) or DEFAULT_DTYPE
    xp = backend.xp_for(device)
    if xp is np:
        arr = fill(shape, dtype)
    else:
        arr = backend.to_device(fill(shape, dtype), device)
    return Tensor(arr, requires_grad=requires_grad)


def zeros(*shape, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    return _create(lambda s, d: np.zeros(s, d), shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    return _create(lambda s, d: np.ones(s, d), shape, dtype, device, requires_grad)


def full(shape, fill_value, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    return _create(lambda s, d: np.full(s, fill_value, d), (shape,), dtype, device, requires_grad)


def randn(*shape, dtype=None, device="cpu", requires_grad=False, generator=None) -> Tensor:
    """Standard normal samples from the seeded generator (drawn on the CPU, then moved)."""
    g = numpy_generator(generator)
    return _create(lambda s, d: g.standard_normal(s, dtype=np.float64).astype(d), shape, dtype, device, requires_grad)


def rand(*shape, dtype=None, device="cpu", requires_grad=False, generator=None) -> Tensor:
    """Uniform [0, 1) samples from the seeded generator."""
    g = numpy_generator(generator)
    return _create(lambda s, d: g.random(s, dtype=np.float64).astype(d), shape, dtype, device, requires_grad)


def empty(*shape, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """A tensor of uninitialised values (whatever the memory held)."""
    return _create(lambda s, d: np.empty(s, d), shape, dtype, device, requires_grad)


def _from_host(arr, device, requires_grad) -> Tensor:
    backend.xp_for(device)  # a clear error for a bad or missing device
    return Tensor(backend.to_device(arr, device), requires_grad=requires_grad)


def _real(op: str, name: str, v):
    if isinstance(v, Tensor):
        v = v.item()
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.integer, np.floating)):
        raise TypeError(f"{op}: argument '{name}' must be a real number, got {v!r}")
    if not np.isfinite(v):
        raise ValueError(f"{op}: argument '{name}' must be finite, got {v}")
    return v


def _count(op: str, name: str, v) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)):
        raise TypeError(f"{op}: argument '{name}' must be an int, got {v!r}")
    if v < 0:
        raise ValueError(f"{op}: argument '{name}' must be non-negative, got {v}")
    return int(v)


def arange(start, end=None, step=1, *, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """start, start + step, ... up to but excluding end (arange(n): 0..n-1); int64 unless an argument is a float."""
    if end is None:
        start, end = 0, start
    start, end, step = (_real("arange", n, v) for n, v in (("start", start), ("end", end), ("step", step)))
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise ValueError(f"arange: the sign of step={step} does not lead from start={start} to end={end}")
    integral = all(isinstance(v, (numbers.Integral, np.integer)) for v in (start, end, step))
    dtype = _as_dtype(dtype) or (int64 if integral else DEFAULT_DTYPE)
    arr = np.arange(start, end, step, dtype=np.int64 if integral else np.float64).astype(dtype)
    return _from_host(arr, device, requires_grad)


def linspace(start, end, steps, *, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """`steps` evenly spaced values from start to end, both included."""
    start, end = _real("linspace", "start", start), _real("linspace", "end", end)
    steps = _count("linspace", "steps", steps)
    arr = np.linspace(start, end, steps, dtype=np.float64).astype(_as_dtype(dtype) or DEFAULT_DTYPE)
    return _from_host(arr, device, requires_grad)


def eye(n, m=None, *, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """An n x m (default n x n) matrix with ones on the diagonal."""
    n = _count("eye", "n", n)
    m = n if m is None else _count("eye", "m", m)
    return _from_host(np.eye(n, m, dtype=_as_dtype(dtype) or DEFAULT_DTYPE), device, requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Uniform integers in [low, high) (low defaults to 0: randint(high, size)), int64 by default."""
    if size is None:
        low, high, size = 0, low, high
    if size is None:
        raise TypeError("randint: missing argument 'size' (a tuple of ints)")
    if isinstance(size, (numbers.Integral, np.integer)):
        raise TypeError(f"randint: size must be a tuple of ints, got {size!r}")
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)):
            raise TypeError(f"randint: argument '{name}' must be an int, got {v!r}")
    if low >= high:
        raise ValueError(f"randint: low ({low}) must be less than high ({high})")
    g = numpy_generator(generator)
    return _create(lambda s, d: g.integers(low, high, s, dtype=np.int64).astype(d),
                   (tuple(size),), dtype or int64, device, requires_grad)


def randperm(n, *, generator=None, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """A random permutation of 0..n-1 (int64 by default), from the seeded generator."""
    n = _count("randperm", "n", n)
    arr = numpy_generator(generator).permutation(n).astype(_as_dtype(dtype) or int64)
    return _from_host(arr, device, requires_grad)


def from_numpy(array) -> Tensor:
    """A CPU tensor sharing memory with a NumPy array: writes to either show in both."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    if array.dtype.kind not in "biufc":
        raise TypeError(f"from_numpy: unsupported dtype {array.dtype} (numbers and bools only)")
    return Tensor(array)


def _like(op: str, input, dtype, device):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: argument 'input' must be a Tensor, got {type(input).__name__}")
    return input.shape, _as_dtype(dtype) or input.dtype, input.device if device is None else device


def zeros_like(input: Tensor, dtype=None, *, device=None, requires_grad=False) -> Tensor:
    shape, dtype, device = _like("zeros_like", input, dtype, device)
    return zeros(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(input: Tensor, dtype=None, *, device=None, requires_grad=False) -> Tensor:
    shape, dtype, device = _like("ones_like", input, dtype, device)
    return ones(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(input: Tensor, fill_value, dtype=None, *, device=None, requires_grad=False) -> Tensor:
    shape, dtype, device = _like("full_like", input, dtype, device)
    return full(shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(input: Tensor, dtype=None, *, device=None, requires_grad=False) -> Tensor:
    shape, dtype, device = _like("empty_like", input, dtype, device)
    return empty(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def _random_like(op, draw, input, dtype, device, requires_grad, generator):
    shape, dtype, device = _like(op, input, dtype, device)
    if dtype.kind != "f":
        raise TypeError(f"{op}: needs a floating-point dtype, got {dtype}")
    return draw(shape, dtype=dtype, device=device, requires_grad=requires_grad, generator=generator)


def rand_like(input: Tensor, dtype=None, *, device=None, requires_grad=False, generator=None) -> Tensor:
    return _random_like("rand_like", rand, input, dtype, device, requires_grad, generator)


def randn_like(input: Tensor, dtype=None, *, device=None, requires_grad=False, generator=None) -> Tensor:
    return _random_like("randn_like", randn, input, dtype, device, requires_grad, generator)


# ---- save / load ----------------------------------------------------------------------------------
