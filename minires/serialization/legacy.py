"""PyTorch's legacy format (torch.save before 1.6, or `_use_new_zipfile_serialization=False`), read only.

One stream of five pickles, then raw bytes:
1. the magic number 0x1950a86a20f9469cfc6c, 2. the protocol version 1001, 3. a dict of system info
(byte order, type sizes), 4. the object, whose tensors name their storages by persistent ids
('storage', <storage type>, <key>, <location>, <numel>, <view metadata or None>), 5. the list of
storage keys; then for each key in that order an int64 element count and the storage's bytes.
The object comes before the bytes, so it is read twice: once to learn each storage's dtype (tensors
are not built), once with the storages in hand.
"""
from __future__ import annotations

import struct

from .memfile import MemoryFile
from .restricted import Storage, UnpicklingError, no_storages, unpickle_stream
from .storages import make_storage

MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
PROTOCOL_VERSION = 1001
_ITEMSIZE = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "uint8": 1, "int8": 1, "int16": 2,
             "int32": 4, "int64": 8, "bool": 1, "complex64": 8, "complex128": 16}


def first_pickle(data: bytes, source: str):
    """The first pickle of `data` (a legacy file's magic number), read with no global admitted beyond ALLOWED."""
    return unpickle_stream(MemoryFile(data), no_storages, source)


def is_tar(data: bytes) -> bool:
    """PyTorch's format before 0.4 was a tar archive (its 'ustar' magic sits at byte 257)."""
    return data[257:262] == b"ustar"


def _check_pid(pid, source: str) -> tuple:
    if len(pid) != 6 or not isinstance(pid[2], str) or not isinstance(pid[4], int):
        raise UnpicklingError(f"{source}: refusing the storage id {pid!r:.120}")
    view = pid[5]
    if view is not None and not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[1], int)
                                 and isinstance(view[2], int) and 0 <= view[1] and view[1] + view[2] <= pid[4]):
        raise UnpicklingError(f"{source}: refusing the storage view {view!r:.120}")
    return pid


def read_legacy(data: bytes, mapper, source: str, encoding: str = "utf-8"):
    """The object of a legacy PyTorch checkpoint, its tensors rebuilt from the storages that follow it."""
    stream = MemoryFile(data)
    if unpickle_stream(stream, no_storages, source, encoding) != MAGIC_NUMBER:
        raise UnpicklingError(f"{source}: a pickle, not a PyTorch checkpoint (no PyTorch magic number)")
    protocol = unpickle_stream(stream, no_storages, source, encoding)
    if protocol != PROTOCOL_VERSION:
        raise UnpicklingError(f"{source}: PyTorch legacy protocol {protocol!r}, minires reads {PROTOCOL_VERSION}")
    info = unpickle_stream(stream, no_storages, source, encoding)
    if not isinstance(info, dict):
        raise UnpicklingError(f"{source}: corrupted system info {info!r:.80}")
    big_endian = not info.get("little_endian", True)
    start = stream.tell()

    dtypes = {}  # storage key -> its torch dtype name and element count

    def scan(pid):
        _check_pid(pid, source)
        dtypes[pid[2]] = (str(pid[1]), pid[4])
        return Storage(None)

    unpickle_stream(stream, scan, source, encoding)
    keys = unpickle_stream(stream, no_storages, source, encoding)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise UnpicklingError(f"{source}: corrupted storage key list {keys!r:.80}")

    raw, pos, view = {}, stream.tell(), memoryview(data)
    for key in keys:
        if key not in dtypes:
            raise UnpicklingError(f"{source}: the file stores storage {key!r}, which no tensor uses: corrupted")
        dtype, numel = dtypes[key]
        if pos + 8 > len(data):
            raise UnpicklingError(f"{source}: truncated: storage {key!r} is missing (file ends at byte {len(data)})")
        (count,) = struct.unpack(">q" if big_endian else "<q", data[pos:pos + 8])
        if count != numel:
            raise UnpicklingError(f"{source}: storage {key!r} holds {count} elements, its tensors expect {numel}: "
                                  f"corrupted")
        end = pos + 8 + count * _ITEMSIZE[dtype]
        if end > len(data):
            raise UnpicklingError(f"{source}: truncated: storage {key!r} needs bytes up to {end}, the file has "
                                  f"{len(data)}")
        raw[key], pos = view[pos + 8:end], end
    missing = sorted(set(dtypes) - set(raw))
    if missing:
        raise UnpicklingError(f"{source}: truncated or corrupted: storages {missing[:3]} are not in the file")

    state, cache = {}, {}

    def load(pid):
        key, view = _check_pid(pid, source)[2], pid[5]
        if key not in cache:
            cache[key] = make_storage(raw[key], pid[:5], mapper, big_endian, source, state)
        root = cache[key]
        if view is None:
            return root
        # an old storage view: elements [offset, offset + size) of the root storage
        return Storage(root.array[view[1]:view[1] + view[2]], root.device)

    stream.seek(start)
    return unpickle_stream(stream, load, source, encoding)
