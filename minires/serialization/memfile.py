"""A read-only binary file over a buffer without copying it (io.BytesIO copies a bytearray it is given)."""
from __future__ import annotations

import io


class MemoryFile(io.RawIOBase):
    """read/readinto/readline/seek/tell over a bytes-like object; reads return bytes."""

    def __init__(self, data):
        super().__init__()
        self.view, self.pos = memoryview(data).cast("B"), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: len(self.view)}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self.pos = base + offset
        return self.pos

    def read(self, size: int = -1) -> bytes:
        end = len(self.view) if size is None or size < 0 else min(len(self.view), self.pos + size)
        out = bytes(self.view[self.pos:end]) if end > self.pos else b""
        self.pos = max(self.pos, end)
        return out

    def readinto(self, buffer) -> int:
        out = self.read(len(memoryview(buffer).cast("B")))
        memoryview(buffer).cast("B")[:len(out)] = out
        return len(out)

    def readline(self, size: int = -1) -> bytes:
        end = len(self.view) if size is None or size < 0 else min(len(self.view), self.pos + size)
        nl = bytes(self.view[self.pos:end]).find(b"\n") if end > self.pos else -1
        return self.read((nl + 1 if nl >= 0 else end - self.pos))
