"""PyTorch's zip container (torch.save's format since 1.6), read and written without PyTorch.

Layout, every member stored uncompressed under one top folder (`archive/` when minires writes):
- `data.pkl`: the object, pickled (protocol 2); each tensor names its storage by a persistent id
  ('storage', <storage type>, <key>, <location>, <numel>);
- `data/<key>`: the raw little-endian bytes of that storage, starting on a 64-byte boundary;
- `byteorder` ("little"), `version` ("3\\n"), `.format_version` ("1"), `.storage_alignment` ("64").
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib

from .memfile import MemoryFile
from .restricted import UnpicklingError, unpickle
from .storages import make_storage

ALIGNMENT = 64  # storages start on 64-byte boundaries, as PyTorch writes them (so they can be memory-mapped)
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, OSError, EOFError, zlib.error, ValueError,
                NotImplementedError, struct.error)


def is_zip(data: bytes) -> bool:
    """Whether `data` opens like a zip file (local file header or an empty archive's end record)."""
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def read_zip(data, mapper, source: str, encoding: str = "utf-8"):
    """The object of a PyTorch zip checkpoint (bytes, or a bytearray its tensors may view), tensors rebuilt."""
    try:
        zf = zipfile.ZipFile(MemoryFile(data))
        names = zf.namelist()
    except _READ_ERRORS as exc:
        raise UnpicklingError(f"{source}: a damaged or truncated zip file ({exc})") from None
    pickles = [n for n in names if n.count("/") <= 1 and n.rsplit("/", 1)[-1] == "data.pkl"]
    if len(pickles) != 1:
        raise UnpicklingError(f"{source}: a zip file but not a PyTorch checkpoint (no <folder>/data.pkl among "
                              f"{names[:5]})")
    prefix = pickles[0][:-len("data.pkl")]

    view = memoryview(data)

    def member(name: str):
        try:
            info = zf.getinfo(prefix + name)
            if info.compress_type == zipfile.ZIP_DEFLATED:  # deflate expands at most ~1032x: memory stays bounded
                return zf.read(info)
            if info.compress_type != zipfile.ZIP_STORED:
                # NOTE: bzip2/lzma expand a 1 KB member into gigabytes; PyTorch's reader (miniz) takes stored and
                # deflated members only
                raise UnpicklingError(f"{source}: member {prefix + name!r} is compressed by zip method "
                                      f"{info.compress_type}; PyTorch checkpoints store members uncompressed (or "
                                      f"deflated)")
            # NOTE: a stored member is read in place (a view of the file's buffer, no copy), its CRC checked here
            start = info.header_offset + 30 + sum(struct.unpack("<HH", data[info.header_offset + 26:
                                                                           info.header_offset + 30]))
            raw = view[start:start + info.file_size]
            if len(raw) != info.file_size or data[info.header_offset:info.header_offset + 4] != b"PK\x03\x04":
                raise zipfile.BadZipFile("truncated member")
            if zlib.crc32(raw) != info.CRC:
                raise zipfile.BadZipFile("Bad CRC-32")
            return raw
        except _READ_ERRORS as exc:  # a missing member, a bad CRC, a truncated member
            raise UnpicklingError(f"{source}: cannot read member {prefix + name!r} ({exc}): the file is damaged "
                                  f"or truncated") from None

    big_endian = prefix + "byteorder" in names and bytes(member("byteorder")).strip() == b"big"
    state, cache = {}, {}

    def load_storage(pid):
        key = str(pid[2])
        if key not in cache:
            cache[key] = make_storage(member(f"data/{key}"), pid, mapper, big_endian, source, state)
        return cache[key]

    return unpickle(bytes(member("data.pkl")), load_storage, source, encoding)


def _padding_extra(offset: int, name: bytes) -> bytes:
    """A zip 'extra' field that pushes a member's data (after its 30-byte local header) onto ALIGNMENT."""
    start = offset + 30 + len(name) + 4  # 4: the extra field's own id and length
    pad = -start % ALIGNMENT
    return b"FB" + struct.pack("<H", pad) + b"Z" * pad


def write_zip(pickled: bytes, storages: list, archive: str = "archive") -> memoryview:
    """The zip container around a data.pkl and its storages [(key, raw bytes)], in PyTorch's member order."""
    buf = io.BytesIO()
    members = [("data.pkl", pickled), (".format_version", b"1"), (".storage_alignment", str(ALIGNMENT).encode()),
               ("byteorder", b"little")]
    members += [(f"data/{key}", raw) for key, raw in storages]
    members.append(("version", b"3\n"))
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, raw in members:
            info = zipfile.ZipInfo(f"{archive}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.extra = _padding_extra(buf.tell(), info.filename.encode("utf-8"))
            zf.writestr(info, raw)
    return buf.getbuffer()  # a memoryview of the buffer: no copy of the whole file
