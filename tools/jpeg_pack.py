"""Pack an image-folder CIFAR-10 (train|test/<class>/*.jpg) into one file, and unpack it byte-identical.

    python tools/jpeg_pack.py pack ../shared/data/cifar10-jpeg .gpu-data/cifar10-jpeg.pack
    python tools/jpeg_pack.py unpack .gpu-data/cifar10-jpeg.pack /tmp/cifar10-jpeg
    python tools/jpeg_pack.py verify .gpu-data/cifar10-jpeg.pack
    python tools/jpeg_pack.py pack SRC small.pack --per-class 30      # the first 30 files of each class

Why: a lent GPU machine reaches no network and takes at most 64 MiB of files along
(/work/.library/device/README.md). The 60,000 JPEGs hold about 54 MiB of bytes but take 236 MB on disk
(a block per file); packed, they travel as one file of about 55 MiB, and `unpack` there recreates the
folder that `minires train --data DIR` reads.

The format (version 1), all integers little-endian:
    8 bytes   magic b"MRJPACK1"
    8 bytes   header length H (uint64)
    32 bytes  SHA-256 of the header
    H bytes   header: UTF-8 JSON {"format": "minires-jpeg-pack/1", "images": N, "payload_bytes": P,
              "payload_sha256": hex, "groups": [{"split", "class", "names", "offsets", "lengths"}, ...]}
              (one group per split and class; offsets are into the payload, one per image)
    P bytes   payload: the image files' bytes, concatenated
`pack` writes the file atomically (a temp file beside it, then a rename). `unpack` checks the magic,
both digests, the sizes and every name before it writes anything; it writes into a temp folder beside
OUTDIR and renames that into place, so OUTDIR is either absent/empty or complete. It refuses an OUTDIR
that holds anything but exactly this pack's files (and leaves one that does as it is).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's minires first
from minires.io import atomic_write_bytes  # noqa: E402

MAGIC = b"MRJPACK1"
FORMAT = "minires-jpeg-pack/1"
SPLITS = ("train", "test")
EXTENSIONS = (".jpg", ".jpeg", ".png")  # what minires.data's image-folder reader takes (any case)
_PREFIX = struct.Struct("<8sQ32s")  # magic, header length, header SHA-256


class PackError(ValueError):
    """A pack that cannot be read (corrupted, truncated, not a pack) or an OUTDIR that must not be written."""


def _safe_name(name) -> bool:
    """A plain, visible file or folder name: no path separators, no '..', no leading dot, no NUL."""
    return (isinstance(name, str) and name not in ("", ".", "..") and not name.startswith(".")
            and not any(c in name for c in "/\\\0"))


def _images(folder, per_class=None):
    """Sorted image file names in `folder` (visible, with an image extension), the first per_class of them."""
    names = sorted(n for n in os.listdir(folder)
                   if not n.startswith(".") and n.lower().endswith(EXTENSIONS) and os.path.isfile(os.path.join(folder, n)))
    return names if per_class is None else names[:per_class]


def build_pack(src, per_class=None) -> bytes:
    """The pack of SRC/train|test/<class>/<image> as bytes (in sorted order: splits, classes, names)."""
    src = os.fspath(src)
    if per_class is not None and per_class < 1:
        raise PackError(f"--per-class must be >= 1, got {per_class}")
    groups, chunks, offset = [], [], 0
    for split in SPLITS:
        split_dir = os.path.join(src, split)
        if not os.path.isdir(split_dir):
            continue
        classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
        for cls in classes:
            names = _images(os.path.join(split_dir, cls), per_class)
            if not _safe_name(cls) or not all(_safe_name(n) for n in names):
                raise PackError(f"cannot pack {split_dir}/{cls}: a folder or file name that unpack would refuse")
            offsets, lengths = [], []
            for name in names:
                with open(os.path.join(split_dir, cls, name), "rb") as f:
                    data = f.read()
                offsets.append(offset)
                lengths.append(len(data))
                chunks.append(data)
                offset += len(data)
            if names:
                groups.append({"split": split, "class": cls, "names": names, "offsets": offsets, "lengths": lengths})
    if not groups:
        raise PackError(f"no images under {src}/train|test/<class>/ (extensions {', '.join(EXTENSIONS)})")
    payload = b"".join(chunks)
    header = json.dumps({"format": FORMAT, "images": sum(len(g["names"]) for g in groups),
                         "payload_bytes": len(payload), "payload_sha256": hashlib.sha256(payload).hexdigest(),
                         "groups": groups}, separators=(",", ":")).encode("utf-8")
    return _PREFIX.pack(MAGIC, len(header), hashlib.sha256(header).digest()) + header + payload


def pack(src, dest, per_class=None) -> dict:
    """Write the pack of SRC to DEST atomically; return its header."""
    blob = build_pack(src, per_class)
    atomic_write_bytes(dest, blob)
    return read_header(blob)


def read_header(blob) -> dict:
    """The header of a pack held in `blob` (bytes), after checking the prefix, the header digest and every
    entry; the payload is checked by read_pack."""
    if len(blob) < _PREFIX.size:
        raise PackError(f"not a minires JPEG pack: {len(blob)} bytes, shorter than its {_PREFIX.size}-byte prefix")
    magic, size, digest = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise PackError(f"not a minires JPEG pack: it starts with {magic!r}, not {MAGIC!r}")
    if _PREFIX.size + size > len(blob):
        raise PackError(f"truncated pack: its header needs {size} bytes, the file has {len(blob) - _PREFIX.size} "
                        f"after the prefix")
    raw = bytes(blob[_PREFIX.size:_PREFIX.size + size])
    if hashlib.sha256(raw).digest() != digest:
        raise PackError("corrupted pack: the header's SHA-256 does not match")
    try:
        header = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise PackError(f"corrupted pack: the header is not JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        got = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise PackError(f"unsupported pack format {got!r} (this reader knows {FORMAT!r})")
    _check_entries(header)
    return header


def _check_entries(header) -> None:
    payload = header.get("payload_bytes")
    if not isinstance(payload, int) or payload < 0 or not isinstance(header.get("payload_sha256"), str):
        raise PackError("corrupted pack: the header lacks payload_bytes / payload_sha256")
    seen, count = set(), 0
    for g in header.get("groups") or []:
        split, cls = g.get("split"), g.get("class")
        names, offsets, lengths = g.get("names"), g.get("offsets"), g.get("lengths")
        if split not in SPLITS or not _safe_name(cls) or not isinstance(names, list) \
                or not isinstance(offsets, list) or not isinstance(lengths, list) \
                or not len(names) == len(offsets) == len(lengths):
            raise PackError(f"corrupted pack: a malformed group ({split!r}, {cls!r})")
        for name, off, n in zip(names, offsets, lengths):
            if not _safe_name(name) or (split, cls, name) in seen:
                raise PackError(f"corrupted pack: a bad or repeated file name {split}/{cls}/{name!r}")
            if not (isinstance(off, int) and isinstance(n, int) and 0 <= off and 0 <= n and off + n <= payload):
                raise PackError(f"corrupted pack: {split}/{cls}/{name} lies outside the {payload}-byte payload")
            seen.add((split, cls, name))
        count += len(names)
    if count == 0 or count != header.get("images"):
        raise PackError(f"corrupted pack: {count} entries, the header says {header.get('images')} images")


def read_pack(path):
    """(header, payload memoryview) of the pack at `path`, with every check done (digests, sizes, names)."""
    with open(path, "rb") as f:
        blob = f.read()
    header = read_header(blob)
    start = _PREFIX.size + _PREFIX.unpack_from(blob)[1]
    payload = memoryview(blob)[start:]
    if len(payload) != header["payload_bytes"]:
        kind = "truncated" if len(payload) < header["payload_bytes"] else "corrupted"
        raise PackError(f"{kind} pack {path}: {len(payload)} payload bytes, the header says {header['payload_bytes']}")
    if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
        raise PackError(f"corrupted pack {path}: the payload's SHA-256 does not match its header")
    return header, payload


def entries(header):
    """(relative path, offset, length) of each image, in pack order."""
    for g in header["groups"]:
        for name, off, n in zip(g["names"], g["offsets"], g["lengths"]):
            yield os.path.join(g["split"], g["class"], name), off, n


def _holds_exactly(outdir, header, payload) -> str:
    """'' if outdir holds exactly the pack's files (same names, same bytes, nothing else), else why not."""
    want = {rel: (off, n) for rel, off, n in entries(header)}
    dirs = {os.path.dirname(rel) for rel in want} | {os.path.dirname(os.path.dirname(rel)) for rel in want}
    for base, subdirs, files in os.walk(outdir):
        rel_base = os.path.relpath(base, outdir)
        for d in subdirs:
            rel = os.path.normpath(os.path.join(rel_base, d))
            if rel not in dirs:
                return f"it holds a folder {rel} that the pack has not"
        for name in files:
            rel = os.path.normpath(os.path.join(rel_base, name))
            if rel not in want:
                return f"it holds a file {rel} that the pack has not"
            off, n = want.pop(rel)
            with open(os.path.join(outdir, rel), "rb") as f:
                if f.read() != payload[off:off + n]:
                    return f"its {rel} differs from the pack's"
    if want:
        return f"it lacks {len(want)} of the pack's files (e.g. {next(iter(want))})"
    return ""


def unpack(path, outdir) -> tuple:
    """Recreate the pack's files under outdir; return (header, written: bool). False: outdir already held them."""
    header, payload = read_pack(path)
    outdir = os.path.abspath(os.fspath(outdir))
    if os.path.exists(outdir):
        if not os.path.isdir(outdir):
            raise PackError(f"{outdir} exists and is not a folder")
        if os.listdir(outdir):
            why = _holds_exactly(outdir, header, payload)
            if why:
                raise PackError(f"refusing to unpack into {outdir}: it is not empty and not this pack's files ({why}); "
                                f"give a new or empty folder")
            return header, False
    parent = os.path.dirname(outdir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(outdir)}.", suffix=".tmp", dir=parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # NOTE: mkdtemp makes it 0700; give it an ordinary folder's mode
        made = set()
        for rel, off, n in entries(header):
            folder = os.path.join(tmp, os.path.dirname(rel))
            if folder not in made:
                os.makedirs(folder, exist_ok=True)
                made.add(folder)
            with open(os.path.join(tmp, rel), "xb") as f:
                f.write(payload[off:off + n])
        if os.path.isdir(outdir):
            os.rmdir(outdir)  # empty (checked above); a file put there meanwhile makes this fail, not vanish
        os.rename(tmp, outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return header, True


def describe(header) -> str:
    counts = {}
    for g in header["groups"]:
        counts[g["split"]] = counts.get(g["split"], 0) + len(g["names"])
    classes = sorted({g["class"] for g in header["groups"]})
    return (f"{header['images']} images ({', '.join(f'{s} {n}' for s, n in counts.items())}), {len(classes)} classes, "
            f"{header['payload_bytes'] / 2**20:.1f} MiB of image bytes, payload sha256 {header['payload_sha256'][:16]}...")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack", help="pack SRC/train|test/<class>/* into DEST")
    a.add_argument("src")
    a.add_argument("dest")
    a.add_argument("--per-class", type=int, default=None, help="only the first N files (sorted) of each class folder")
    a = sub.add_parser("unpack", help="recreate the pack's folder under OUTDIR")
    a.add_argument("pack")
    a.add_argument("outdir")
    a = sub.add_parser("verify", help="check a pack's digests and entries")
    a.add_argument("pack")
    args = p.parse_args(argv)
    try:
        if args.command == "pack":
            header = pack(args.src, args.dest, args.per_class)
            print(f"wrote {args.dest}: {os.path.getsize(args.dest) / 2**20:.1f} MiB; {describe(header)}")
        elif args.command == "unpack":
            header, written = unpack(args.pack, args.outdir)
            print(f"{'unpacked into' if written else 'already unpacked in'} {args.outdir}: {describe(header)}")
        else:
            header, _ = read_pack(args.pack)
            print(f"{args.pack} is intact: {describe(header)}")
    except (PackError, OSError) as exc:
        print(f"jpeg_pack: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
