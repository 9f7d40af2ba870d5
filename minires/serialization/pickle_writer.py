"""The data.pkl that torch.save would write, produced opcode by opcode (pickle protocol 2) without PyTorch.

Python's own Pickler cannot name `torch._utils._rebuild_tensor_v2` without importing torch, and writing
the opcodes here keeps the file to the globals `torch.load(weights_only=True)` admits: the tensor and
parameter rebuild functions, storage types, `collections.OrderedDict` and `_codecs.encode` (bytes).
"""
from __future__ import annotations

import collections
import struct

import numpy as np

from .. import backend
from ..nn.parameter import Parameter
from ..tensor import Tensor

# NumPy dtype -> torch's storage type (the legacy typed-storage names torch.load expects in persistent ids)
STORAGE_TYPES = {
    "float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage", "uint8": "ByteStorage",
    "int8": "CharStorage", "int16": "ShortStorage", "int32": "IntStorage", "int64": "LongStorage",
    "bool": "BoolStorage", "complex64": "ComplexFloatStorage", "complex128": "ComplexDoubleStorage",
}
_MARK, _STOP, _TUPLE, _REDUCE, _SETITEMS, _APPENDS = b"(", b".", b"t", b"R", b"u", b"e"
_TUPLE_N = {0: b")", 1: b"\x85", 2: b"\x86", 3: b"\x87"}


class _Writer:
    """Collects opcodes for one object and the storages its tensors use."""

    def __init__(self):
        self.out = [b"\x80\x02"]  # PROTO 2, torch.save's default
        self.storages = []  # [(key, raw little-endian bytes, as a memoryview)]
        self.keys = {}  # id(array) -> (key, array): a tensor saved twice (tied weights) has one storage
        self.active = set()  # ids of the containers being written: a cycle is refused
        self.memo = {}  # id(container) -> memo index: a container met again is a GET (shared, as pickle writes it)

    def global_(self, module: str, name: str) -> None:
        self.out.append(f"c{module}\n{name}\n".encode("ascii"))

    def int_(self, x: int) -> None:
        if 0 <= x < 256:
            self.out.append(b"K" + bytes([x]))
        elif 0 <= x < 65536:
            self.out.append(b"M" + struct.pack("<H", x))
        elif -2 ** 31 <= x < 2 ** 31:
            self.out.append(b"J" + struct.pack("<i", x))
        else:
            raw = x.to_bytes(x.bit_length() // 8 + 1, "little", signed=True)
            self.out.append(b"\x8a" + bytes([len(raw)]) + raw if len(raw) < 256 else
                            b"\x8b" + struct.pack("<i", len(raw)) + raw)

    def str_(self, s: str) -> None:
        raw = s.encode("utf-8", "surrogatepass")
        self.out.append(b"X" + struct.pack("<I", len(raw)) + raw)

    def tuple_(self, items, where: str) -> None:
        if len(items) <= 3:
            for i, v in enumerate(items):
                self.save(v, f"{where}[{i}]")
            self.out.append(_TUPLE_N[len(items)])
            return
        self.out.append(_MARK)
        for i, v in enumerate(items):
            self.save(v, f"{where}[{i}]")
        self.out.append(_TUPLE)

    def items_(self, obj: dict, where: str) -> None:
        if obj:
            self.out.append(_MARK)
            for k, v in obj.items():
                self.save(k, f"{where} key {k!r:.40}")
                self.save(v, f"{where}[{k!r:.40}]")
            self.out.append(_SETITEMS)

    def put_(self, obj) -> None:
        """Memoize the container just built (BINPUT / LONG_BINPUT), so that a second reference to it is a GET."""
        index = self.memo[id(obj)] = len(self.memo)
        self.out.append(b"q" + bytes([index]) if index < 256 else b"r" + struct.pack("<I", index))

    def empty_ordered_dict(self) -> None:
        self.global_("collections", "OrderedDict")
        self.out.append(_TUPLE_N[0] + _REDUCE)

    def storage_key(self, array) -> tuple:
        """(key, host array) of an array's storage, written once per array object."""
        found = self.keys.get(id(array))
        if found is None:
            host = backend.to_numpy(array)
            if host.dtype.name not in STORAGE_TYPES:
                raise TypeError(f"save: PyTorch has no storage type for dtype {host.dtype}")
            flat = np.ascontiguousarray(host.reshape(-1)).astype(host.dtype.newbyteorder("<"), copy=False)
            raw = memoryview(flat.view(np.uint8))  # no copy on little-endian machines: zipfile reads the buffer
            found = (str(len(self.storages)), host)
            self.storages.append((found[0], raw))
            self.keys[id(array)] = (found[0], host, array)  # keep `array` alive so its id stays unique
        return found[:2]

    def tensor_(self, array, requires_grad: bool) -> None:
        key, host = self.storage_key(array)
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.out.append(_MARK)
        # persistent id ('storage', storage type, key, location, numel): the storage is written as data/<key>
        self.out.append(_MARK)
        self.str_("storage")
        self.global_("torch", STORAGE_TYPES[host.dtype.name])
        self.str_(key)
        self.str_("cpu")
        self.int_(host.size)
        self.out.append(_TUPLE + b"Q")  # BINPERSID
        self.int_(0)  # storage offset
        contiguous = [1] * host.ndim  # C-order strides in elements of the copy written above
        for d in range(host.ndim - 2, -1, -1):
            contiguous[d] = contiguous[d + 1] * host.shape[d + 1]
        self.tuple_([int(n) for n in host.shape], "size")
        self.tuple_(contiguous, "stride")
        self.out.append(b"\x88" if requires_grad else b"\x89")
        self.empty_ordered_dict()  # backward hooks
        self.out.append(_TUPLE + _REDUCE)

    def save(self, obj, where: str = "obj") -> None:
        if obj is None:
            self.out.append(b"N")
        elif isinstance(obj, (bool, np.bool_)):
            self.out.append(b"\x88" if obj else b"\x89")
        elif isinstance(obj, (int, np.integer)):
            self.int_(int(obj))
        elif isinstance(obj, (float, np.floating)):
            self.out.append(b"G" + struct.pack(">d", float(obj)))
        elif isinstance(obj, str):
            self.str_(str(obj))
        elif isinstance(obj, (bytes, bytearray)):
            self.global_("_codecs", "encode")  # how protocol 2 spells bytes for Python 3
            self.str_(bytes(obj).decode("latin1"))
            self.str_("latin1")
            self.out.append(_TUPLE_N[2] + _REDUCE)
        elif isinstance(obj, Parameter):
            self.global_("torch._utils", "_rebuild_parameter")
            self.out.append(_MARK)
            self.tensor_(obj.array, False)
            self.out.append(b"\x88" if obj.requires_grad else b"\x89")
            self.empty_ordered_dict()
            self.out.append(_TUPLE + _REDUCE)
        elif isinstance(obj, Tensor):
            self.tensor_(obj.array, obj.requires_grad)
        elif isinstance(obj, np.ndarray) or backend.get_array_module(obj) is not np:
            self.tensor_(obj, False)  # optimizer states hold NumPy copies: written as tensors
        elif isinstance(obj, (dict, list, tuple)):
            if id(obj) in self.active:
                raise ValueError(f"save: {where} contains itself; a recursive structure cannot be saved")
            if id(obj) in self.memo:  # NOTE: without it, x = [x, x] forty times over would write 2**40 items
                index = self.memo[id(obj)]
                self.out.append(b"h" + bytes([index]) if index < 256 else b"j" + struct.pack("<I", index))
                return
            self.active.add(id(obj))
            if isinstance(obj, tuple):
                self.tuple_(obj, where)
                self.put_(obj)
            elif isinstance(obj, list):
                self.out.append(b"]")
                self.put_(obj)
                if obj:
                    self.out.append(_MARK)
                    for i, v in enumerate(obj):
                        self.save(v, f"{where}[{i}]")
                    self.out.append(_APPENDS)
            elif isinstance(obj, collections.OrderedDict):
                self.empty_ordered_dict()
                self.put_(obj)
                self.items_(obj, where)
            else:
                self.out.append(b"}")
                self.put_(obj)
                self.items_(obj, where)
            self.active.discard(id(obj))
        elif hasattr(obj, "state_dict"):  # torch.save(model) pickles the class; minires writes data only
            raise TypeError(f"save: cannot write {where}, a {type(obj).__name__}: save its state_dict() instead "
                            f"(minires writes data, never classes or code)")
        else:
            raise TypeError(f"save: cannot write {where} of type {type(obj).__name__}: minires.save writes "
                            f"Tensors, NumPy arrays, dicts, OrderedDicts, lists, tuples, str, bytes, int, float, "
                            f"bool and None (what torch.load(weights_only=True) reads back)")


def dumps(obj) -> tuple:
    """(data.pkl bytes, [(storage key, raw bytes)]) of `obj`."""
    writer = _Writer()
    writer.save(obj)
    writer.out.append(_STOP)
    return b"".join(writer.out), writer.storages

