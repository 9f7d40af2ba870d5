"""CIFAR-10 readers: python batches (restricted unpickler), binary batches, image folders, and the decode cache."""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from minires.data import CIFAR10, CLASSES, UnsafePickleError, image_folder, safe_pickle
from tiny_cifar import make_arrays, write_binary_batches, write_image_folder, write_python_batches

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10-jpeg"


def by_class(x, y):
    """Reorder to the image-folder order: by class, then by original index."""
    order = np.argsort(y, kind="stable")
    return x[order], y[order]


@pytest.fixture
def arrays():
    return make_arrays()


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    """Send fallback caches to a temporary MINIRES_DATA, never to ~/.cache."""
    home = tmp_path / "minires-home"
    monkeypatch.setenv("MINIRES_DATA", str(home))
    return home


# ---- python batches --------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_python_batches_match_the_arrays(tmp_path, arrays, protocol):
    write_python_batches(tmp_path / "cifar-10-batches-py", arrays, protocol)
    for split in ("train", "test"):
        ds = CIFAR10(tmp_path, train=split == "train")
        x, y = arrays[split]
        assert ds.layout == "py" and ds.classes == list(CLASSES)
        assert ds.data.dtype == np.uint8 and ds.data.shape == x.shape and ds.data.flags.c_contiguous
        assert ds.targets.dtype == np.int64
        np.testing.assert_array_equal(ds.data, x)
        np.testing.assert_array_equal(ds.targets, y)
        img, label = ds[3]
        np.testing.assert_array_equal(img, x[3])
        assert label == y[3] and isinstance(label, int) and len(ds) == len(x)


def test_root_may_be_the_batches_folder_itself(tmp_path, arrays):
    folder = write_python_batches(tmp_path / "cifar-10-batches-py", arrays)
    np.testing.assert_array_equal(CIFAR10(folder, train=False).data, arrays["test"][0])


def test_binary_batches_match_the_arrays(tmp_path, arrays):
    write_binary_batches(tmp_path / "cifar-10-batches-bin", arrays)
    for split in ("train", "test"):
        ds = CIFAR10(tmp_path, train=split == "train")
        assert ds.layout == "bin" and ds.classes == list(CLASSES)
        np.testing.assert_array_equal(ds.data, arrays[split][0])
        np.testing.assert_array_equal(ds.targets, arrays[split][1])


def test_image_folder_matches_the_other_formats(tmp_path, arrays):
    pytest.importorskip("PIL")
    write_image_folder(tmp_path / "images", arrays)
    write_python_batches(tmp_path / "py" / "cifar-10-batches-py", arrays)
    write_binary_batches(tmp_path / "bin" / "cifar-10-batches-bin", arrays)
    for train in (True, False):
        folder = CIFAR10(tmp_path / "images", train=train)
        py, bn = CIFAR10(tmp_path / "py", train=train), CIFAR10(tmp_path / "bin", train=train)
        assert folder.layout == "folder" and folder.classes == sorted(CLASSES)
        np.testing.assert_array_equal(py.data, bn.data)
        np.testing.assert_array_equal(py.targets, bn.targets)
        # PNG is lossless: the folder holds the same images, grouped by class
        x, y = by_class(py.data, py.targets)
        np.testing.assert_array_equal(folder.data, x)
        np.testing.assert_array_equal(folder.targets, y)


def test_layout_is_found_in_the_official_archive_folder_but_not_in_other_subfolders(tmp_path, arrays):
    write_binary_batches(tmp_path / "cifar-10-batches-bin", arrays)
    assert CIFAR10(tmp_path, train=False).layout == "bin"
    write_binary_batches(tmp_path / "other" / "downloads" / "cifar-10-batches-bin", arrays)
    with pytest.raises(FileNotFoundError, match="no CIFAR-10 data: .*subfolders are not searched: .*downloads holds"):
        CIFAR10(tmp_path / "other", train=False)


def test_missing_data_gives_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here' does not exist; or pass download=True"):
        CIFAR10(tmp_path / "nothing-here")
    with pytest.raises(FileNotFoundError, match="holds no CIFAR-10 data: expected .*; or pass download=True"):
        CIFAR10(tmp_path)


# ---- the restricted unpickler ----------------------------------------------------------------------------
class _ShellPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _ExecPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("payload", [_ShellPayload, _ExecPayload])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, arrays, payload):
    folder = write_python_batches(tmp_path / "cifar-10-batches-py", arrays)
    marker = tmp_path / "pwned"
    evil = {b"data": payload(marker), b"labels": [0]}
    (folder / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"data_batch_3.*refusing to unpickle global '(posix|os|builtins|__builtin__)\."):
        CIFAR10(tmp_path, train=True)
    assert not marker.exists()
    # the planted file really is live: the standard unpickler runs it
    pickle.loads((folder / "data_batch_3").read_bytes())
    assert marker.exists()


def test_unpickler_refuses_other_numpy_globals_and_object_arrays(tmp_path):
    raw = pickle.dumps({"f": np.load}, protocol=4)
    with pytest.raises(UnsafePickleError, match="numpy.load"):
        safe_pickle.loads(raw, source="x.pkl")
    with pytest.raises(UnsafePickleError, match="dtype object"):
        safe_pickle.loads(pickle.dumps(np.array([1, "a"], dtype=object), protocol=4), source="x.pkl")
    # _codecs.encode is only a latin1 str -> bytes shim, never a door to other codecs
    with pytest.raises(UnsafePickleError, match="latin1"):
        safe_pickle.loads(b"c_codecs\nencode\n(Vabc\nVzlib\ntR.", source="x.pkl")


def test_unpickler_memo_index_and_build_are_bounded():
    """A 10-byte pickle naming memo slot 2**32 - 16 asks the C unpickler for a 64 GiB memo; BUILD would
    setattr on any object: the reader's unpickler keeps a dict memo and builds only NumPy arrays and dtypes."""
    huge_memo = b"\x80\x02" + b"N" + b"r\xf0\xff\xff\xff" + b"."  # None, LONG_BINPUT 0xfffffff0, STOP
    assert safe_pickle.loads(huge_memo) is None
    assert len(pickle.dumps(None)) < len(huge_memo) < 16
    build_on_dict = b"\x80\x02}q\x00}X\x01\x00\x00\x00aK\x01sb."  # {} BUILD {'a': 1}
    with pytest.raises(UnsafePickleError, match="refusing to set the state of a dict"):
        safe_pickle.loads(build_on_dict)


def test_unpickler_rebuilds_plain_arrays_bitwise(tmp_path):
    x = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    for protocol in (2, 4, 5):
        y = safe_pickle.loads(pickle.dumps({b"a": x, "l": [1, 2.5, "s", b"b"]}, protocol=protocol))
        assert type(y[b"a"]) is np.ndarray and y[b"a"].dtype == np.uint8
        np.testing.assert_array_equal(y[b"a"], x)
        assert y["l"] == [1, 2.5, "s", b"b"]


# ---- corrupted files -------------------------------------------------------------------------------------
def test_truncated_python_batch_names_the_file(tmp_path, arrays):
    folder = write_python_batches(tmp_path / "cifar-10-batches-py", arrays)
    raw = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="test_batch: not a valid pickle"):
        CIFAR10(tmp_path, train=False)


def test_python_batch_with_wrong_shape_names_the_file(tmp_path, arrays):
    folder = write_python_batches(tmp_path / "cifar-10-batches-py", arrays)
    bad = {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    (folder / "test_batch").write_bytes(pickle.dumps(bad, protocol=4))
    with pytest.raises(ValueError, match=r"test_batch: 'data' must be a uint8 array of shape \(N, 3072\)"):
        CIFAR10(tmp_path, train=False)


def test_truncated_binary_batch_names_the_file(tmp_path, arrays):
    folder = write_binary_batches(tmp_path / "cifar-10-batches-bin", arrays)
    raw = (folder / "data_batch_2.bin").read_bytes()
    (folder / "data_batch_2.bin").write_bytes(raw[:-10])
    with pytest.raises(ValueError, match="data_batch_2.bin is truncated"):
        CIFAR10(tmp_path, train=True)


def test_binary_label_out_of_range(tmp_path, arrays):
    folder = write_binary_batches(tmp_path / "cifar-10-batches-bin", arrays)
    raw = bytearray((folder / "test_batch.bin").read_bytes())
    raw[0] = 200
    (folder / "test_batch.bin").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"test_batch.bin: labels must lie in \[0, 10\)"):
        CIFAR10(tmp_path, train=False)


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_corrupted_image_names_the_file(tmp_path, arrays, ext):
    pytest.importorskip("PIL")
    root = write_image_folder(tmp_path, {"test": arrays["test"]}, ext=ext)
    victim = sorted((root / "test").rglob(f"*.{ext}"))[2]
    victim.write_bytes(victim.read_bytes()[:40])
    with pytest.raises(ValueError, match=f"could not decode image .*{victim.name}"):
        CIFAR10(root, train=False)


def test_wrong_image_size_names_the_file(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    (tmp_path / "test" / "cat").mkdir(parents=True)
    Image.new("RGB", (31, 32)).save(tmp_path / "test" / "cat" / "odd.png")
    with pytest.raises(ValueError, match="odd.png.*expected a 32x32 image, got 31x32"):
        CIFAR10(tmp_path, train=False)


# ---- the decode cache ------------------------------------------------------------------------------------
def _count_decodes(monkeypatch):
    calls = []
    real = image_folder.decode_images

    def counting(files, *args, **kwargs):
        calls.append(len(files))
        return real(files, *args, **kwargs)
    monkeypatch.setattr(image_folder, "decode_images", counting)
    return calls


def test_threaded_decode_matches_serial(tmp_path, arrays):
    pytest.importorskip("PIL")
    root = write_image_folder(tmp_path, arrays)
    _, files, _ = image_folder.list_image_folder(root / "train")
    serial = image_folder.decode_images(files)
    np.testing.assert_array_equal(image_folder.decode_images(files, workers=3, chunk=3), serial)
    np.testing.assert_array_equal(serial, by_class(*arrays["train"])[0])


def _listing(root):
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_cache_hit_returns_the_same_data_and_the_data_folder_is_untouched(tmp_path, arrays, monkeypatch, data_home):
    pytest.importorskip("PIL")
    root = write_image_folder(tmp_path / "data", arrays)
    before = _listing(root)
    calls = _count_decodes(monkeypatch)
    first = CIFAR10(root, train=True)
    assert calls == [len(first)] and len(list((data_home / "cache").glob("cifar10-train-*.npz"))) == 1
    assert _listing(root) == before  # nothing written into the user's data folder
    second = CIFAR10(root, train=True)
    assert calls == [len(first)]  # no decode: served from the cache
    np.testing.assert_array_equal(second.data, first.data)
    np.testing.assert_array_equal(second.targets, first.targets)
    assert second.classes == first.classes
    assert not list((data_home / "cache").glob("*.tmp"))  # atomic write left no temp file


def test_changed_source_invalidates_the_cache(tmp_path, arrays, monkeypatch):
    Image = pytest.importorskip("PIL.Image")
    root = write_image_folder(tmp_path, arrays)
    calls = _count_decodes(monkeypatch)
    before = CIFAR10(root, train=False)
    new = np.full((32, 32, 3), 7, np.uint8)
    Image.fromarray(new).save(root / "test" / "truck" / "9999.png")  # a new file
    after = CIFAR10(root, train=False)
    assert len(calls) == 2 and len(after) == len(before) + 1
    np.testing.assert_array_equal(after.data[-1], new)
    # an in-place rewrite of a (sampled) file with different content and size
    first = sorted((root / "test").rglob("*.png"))[0]
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(first)
    os.utime(first, ns=(1, 1))  # a different mtime even on coarse-timestamp file systems
    again = CIFAR10(root, train=False)
    assert len(calls) == 3
    np.testing.assert_array_equal(again.data[0], 0)


def test_corrupt_cache_is_rebuilt(tmp_path, arrays, monkeypatch, data_home):
    pytest.importorskip("PIL")
    root = write_image_folder(tmp_path, arrays)
    good = CIFAR10(root, train=False).data
    (cache,) = (data_home / "cache").glob("cifar10-test-*.npz")
    cache.write_bytes(cache.read_bytes()[:100])
    calls = _count_decodes(monkeypatch)
    np.testing.assert_array_equal(CIFAR10(root, train=False).data, good)
    assert len(calls) == 1


def test_a_cache_beside_the_data_from_older_versions_is_still_read(tmp_path, arrays, monkeypatch, data_home):
    pytest.importorskip("PIL")
    root = write_image_folder(tmp_path / "data", arrays)
    CIFAR10(root, train=False)
    (cache,) = (data_home / "cache").glob("cifar10-test-*.npz")
    cache.rename(root / "minires-cache-test.npz")  # where versions before 0.2 wrote it
    calls = _count_decodes(monkeypatch)
    CIFAR10(root, train=False)
    assert calls == [] and not list((data_home / "cache").glob("cifar10-test-*.npz"))


def test_no_cache_decodes_every_time_and_writes_nothing(tmp_path, arrays, monkeypatch, data_home):
    pytest.importorskip("PIL")
    root = write_image_folder(tmp_path / "data", arrays)
    calls = _count_decodes(monkeypatch)
    a, b = CIFAR10(root, train=False, cache=False), CIFAR10(root, train=False, cache=False)
    assert len(calls) == 2 and not data_home.exists()
    np.testing.assert_array_equal(a.data, b.data)


def test_an_unwritable_cache_folder_only_costs_a_decode(tmp_path, arrays, monkeypatch, data_home):
    pytest.importorskip("PIL")
    root = write_image_folder(tmp_path / "data", arrays)
    data_home.parent.mkdir(parents=True, exist_ok=True)
    data_home.write_text("a file where the cache folder would go")
    calls = _count_decodes(monkeypatch)
    first, second = CIFAR10(root, train=False), CIFAR10(root, train=False)
    assert len(calls) == 2 and sorted(p.name for p in root.iterdir()) == ["test", "train"]
    np.testing.assert_array_equal(first.data, second.data)


def test_read_only_folder_is_never_written(tmp_path, arrays, data_home):
    pytest.importorskip("PIL")
    root = write_image_folder(tmp_path / "ro", arrays)
    root.chmod(0o555)  # root bypasses permission bits; the reader must still respect them
    try:
        CIFAR10(root, train=False)
        assert sorted(p.name for p in root.iterdir()) == ["test", "train"]
        assert len(list((data_home / "cache").glob("cifar10-test-*.npz"))) == 1
    finally:
        root.chmod(0o755)


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared CIFAR-10 JPEG folder is not on this machine")
def test_real_jpeg_test_split(tmp_path):
    pytest.importorskip("PIL")
    ds = CIFAR10(SHARED, train=False)  # read-only folder: the cache goes to MINIRES_DATA
    assert ds.data.shape == (10000, 32, 32, 3) and ds.classes == list(CLASSES)
    np.testing.assert_array_equal(np.bincount(ds.targets), np.full(10, 1000))
    mean = ds.data.reshape(-1, 3).mean(0) / 255
    np.testing.assert_allclose(mean, (0.4913, 0.4821, 0.4465), atol=0.01)  # README's train stats; test is close
    again = CIFAR10(SHARED, train=False)
    np.testing.assert_array_equal(again.data, ds.data)
    assert sorted(p.name for p in SHARED.iterdir()) == ["test", "train"]  # nothing written into the shared data
