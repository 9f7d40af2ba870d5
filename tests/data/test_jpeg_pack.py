"""tools/jpeg_pack.py: one-file packs of an image-folder CIFAR-10, unpacked byte-identical."""
import importlib.util
import io
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data", "cifar10-jpeg")

_spec = importlib.util.spec_from_file_location("jpeg_pack", os.path.join(ROOT, "tools", "jpeg_pack.py"))
jpeg_pack = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(jpeg_pack)


def _jpeg(seed: int) -> bytes:
    """A small JPEG (Pillow) or, without Pillow, arbitrary bytes of varying length."""
    rng = np.random.default_rng(seed)
    try:
        from PIL import Image
    except ImportError:
        return rng.integers(0, 256, 50 + seed, dtype=np.uint8).tobytes()
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _tree(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for base, _, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "src"
    for split, n in (("train", 3), ("test", 2)):
        for c, cls in enumerate(("cat", "dog")):
            d = src / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                (d / f"{i:04d}.jpg").write_bytes(_jpeg(10 * c + i + (100 if split == "test" else 0)))
    (src / "train" / "cat" / "notes.txt").write_text("not an image")  # skipped, as the loader skips it
    return src


def test_roundtrip_is_byte_identical(folder, tmp_path):
    dest = tmp_path / "d.pack"
    header = jpeg_pack.pack(folder, dest)
    assert header["images"] == 10 and [g["split"] for g in header["groups"]] == ["train", "train", "test", "test"]
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]  # the atomic write left no temp file
    out = tmp_path / "out"
    _, written = jpeg_pack.unpack(dest, out)
    want = {k: v for k, v in _tree(folder).items() if k.endswith(".jpg")}
    assert written and _tree(out) == want
    # the same pack again into its own files: accepted, nothing written; the CLI says so
    assert jpeg_pack.unpack(dest, out)[1] is False
    assert jpeg_pack.main(["unpack", str(dest), str(out)]) == 0
    # an existing empty folder is fine
    (tmp_path / "empty").mkdir()
    assert jpeg_pack.unpack(dest, tmp_path / "empty")[1] and _tree(tmp_path / "empty") == want


def test_per_class_keeps_the_first_files(folder, tmp_path):
    header = jpeg_pack.pack(folder, tmp_path / "s.pack", per_class=1)
    assert header["images"] == 4 and all(g["names"] == ["0000.jpg"] for g in header["groups"])


@pytest.mark.parametrize("damage", ["flip_payload", "flip_header", "truncate", "extend", "magic", "empty"])
def test_a_damaged_pack_is_refused(folder, tmp_path, damage, capsys):
    dest = tmp_path / "d.pack"
    jpeg_pack.pack(folder, dest)
    blob = bytearray(dest.read_bytes())
    if damage == "flip_payload":
        blob[-5] ^= 0x40
    elif damage == "flip_header":
        blob[jpeg_pack._PREFIX.size + 20] ^= 0x01
    elif damage == "truncate":
        blob = blob[:-7]
    elif damage == "extend":
        blob += b"\0"
    elif damage == "magic":
        blob[:8] = b"PK\x03\x04xxxx"
    else:
        blob = b""
    dest.write_bytes(bytes(blob))
    with pytest.raises(jpeg_pack.PackError, match="corrupted|truncated|not a minires"):
        jpeg_pack.unpack(dest, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".out.")]  # no temp folder left behind
    assert jpeg_pack.main(["verify", str(dest)]) == 2
    assert "jpeg_pack: error:" in capsys.readouterr().err


def test_a_header_with_an_unsafe_name_is_refused(folder, tmp_path):
    import hashlib
    import json
    blob = jpeg_pack.build_pack(folder)
    header = jpeg_pack.read_header(blob)
    header["groups"][0]["names"][0] = "../../evil.jpg"
    raw = json.dumps(header).encode()
    size = jpeg_pack._PREFIX.size + jpeg_pack._PREFIX.unpack_from(blob)[1]
    forged = jpeg_pack._PREFIX.pack(jpeg_pack.MAGIC, len(raw), hashlib.sha256(raw).digest()) + raw + blob[size:]
    with pytest.raises(jpeg_pack.PackError, match="bad or repeated file name"):
        jpeg_pack.read_header(forged)


def test_an_occupied_outdir_is_refused(folder, tmp_path):
    dest = tmp_path / "d.pack"
    jpeg_pack.pack(folder, dest)
    out = tmp_path / "out"
    jpeg_pack.unpack(dest, out)
    cases = [("extra file", lambda: (out / "train" / "cat" / "extra.jpg").write_bytes(b"x"),
              lambda: (out / "train" / "cat" / "extra.jpg").unlink()),
             ("changed file", lambda: (out / "test" / "dog" / "0001.jpg").write_bytes(b"changed"), None),
             ("missing file", lambda: (out / "test" / "dog" / "0001.jpg").unlink(), None)]
    for what, spoil, undo in cases:
        spoil()
        with pytest.raises(jpeg_pack.PackError, match="refusing to unpack"):
            jpeg_pack.unpack(dest, out)
        if undo:
            undo()
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert jpeg_pack.main(["unpack", str(dest), str(other)]) == 2
    assert os.listdir(other) == ["keep.txt"]
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(jpeg_pack.PackError, match="not a folder"):
        jpeg_pack.unpack(dest, tmp_path / "a_file")


def test_an_empty_source_is_refused(tmp_path):
    (tmp_path / "src" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(jpeg_pack.PackError, match="no images"):
        jpeg_pack.pack(tmp_path / "src", tmp_path / "d.pack")
    assert not (tmp_path / "d.pack").exists()


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="the shared CIFAR-10 JPEG folder is not here")
def test_cifar10_reads_an_unpacked_subset_of_the_shared_data(tmp_path):
    pytest.importorskip("PIL")
    from minires.data import CIFAR10
    jpeg_pack.pack(SHARED, tmp_path / "s.pack", per_class=3)
    jpeg_pack.unpack(tmp_path / "s.pack", tmp_path / "data")
    train, test = CIFAR10(str(tmp_path / "data"), train=True, cache=False), CIFAR10(str(tmp_path / "data"),
                                                                                   train=False, cache=False)
    assert train.data.shape == (30, 32, 32, 3) and test.data.shape == (30, 32, 32, 3)
    assert train.data.dtype == np.uint8 and train.data.std() > 10  # real pixels, not zeros
    assert list(np.bincount(train.targets)) == [3] * 10 and len(train.classes) == 10
    assert train.classes == sorted(os.listdir(os.path.join(SHARED, "train")))
