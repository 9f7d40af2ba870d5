"""minires.load of real PyTorch files (made by PyTorch: tests/fixtures/make_torch_fixtures.py), and refusals.

The expected values come from PyTorch (expected.json / expected.npz, written by the fixture script from
torch's own tensors); minires never computes them. PyTorch is not imported here.
"""
from __future__ import annotations

import collections
import io
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minires as mr
from minires import nn
from minires.checkpoint import CheckpointError
from minires.serialization import UnpicklingError, pickle_writer, restricted, zip_format

FIXTURES = Path(__file__).parents[1] / "fixtures" / "torch"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
ARRAYS = dict(np.load(FIXTURES / "expected.npz"))
NAMES = ["cnn", "kuangliu", "optim", "dtypes"]


def load_quiet(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # bfloat16 -> float32
        return mr.load(path, **kwargs)


def check(obj, desc, storages, where="obj"):
    """obj equals PyTorch's description of it: container types, numbers, strings, tensors' dtypes and values."""
    kind = desc["type"]
    if kind in ("tensor", "parameter"):
        assert isinstance(obj, nn.Parameter if kind == "parameter" else mr.Tensor), where
        want = ARRAYS[desc["key"]]
        dtype = "float32" if desc["dtype"] == "bfloat16" else desc["dtype"]
        assert obj.dtype == np.dtype(dtype) and list(obj.shape) == desc["shape"], where
        assert np.array_equal(obj.numpy(), want), where
        storages.setdefault(desc["storage"], []).append(obj.array)
    elif kind in ("dict", "OrderedDict"):
        assert type(obj) is (dict if kind == "dict" else collections.OrderedDict), where
        keys = [k for k, _ in desc["items"]]
        assert [str(k) for k in obj] == [str(k) for k in keys], where
        for (k, d), v in zip(desc["items"], obj.values()):
            check(v, d, storages, f"{where}[{k!r}]")
    elif kind in ("list", "tuple"):
        assert type(obj) is (list if kind == "list" else tuple) and len(obj) == len(desc["items"]), where
        for i, (v, d) in enumerate(zip(obj, desc["items"])):
            check(v, d, storages, f"{where}[{i}]")
    elif kind == "numpy":
        assert isinstance(obj, np.generic) and obj.dtype == np.dtype(desc["dtype"]) and obj == desc["value"], where
    elif kind == "numpy_dtype":
        assert isinstance(obj, np.dtype) and obj.str == desc["value"], where
    elif kind == "device":
        assert obj == desc["value"], where
    else:
        assert type(obj).__name__ == kind and obj == desc["value"], where


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("name", NAMES)
def test_pytorch_files_load_equal_to_what_pytorch_reads(name, fmt):
    storages = {}
    check(load_quiet(FIXTURES / f"{name}_{fmt}.pt"), EXPECTED[name], storages, name)
    for number, arrays in storages.items():  # views of one storage share one buffer, as in PyTorch
        for a in arrays[1:]:
            assert np.shares_memory(a, arrays[0])
    firsts = [arrays[0] for arrays in storages.values()]
    for i, a in enumerate(firsts):
        assert not any(np.shares_memory(a, b) for b in firsts[i + 1:])


def test_views_keep_pytorch_sizes_strides_and_offsets():
    d = load_quiet(FIXTURES / "dtypes_legacy.pt")
    base = np.arange(24, dtype=np.float32).reshape(4, 6)  # what the fixture script views
    assert np.array_equal(d["transposed"].numpy(), base.T) and d["transposed"].array.strides == (4, 24)
    assert np.array_equal(d["strided"].numpy(), base[1:, ::2]) and d["strided"].array.strides == (24, 8)
    first, rows = d["views"]
    rows.array[0, 0] = -1.0  # writes show through the other view: one buffer
    assert d["transposed"].array[0, 2] == -1.0 and first.array[0] == 0.0


def test_bfloat16_loads_as_float32_with_a_warning():
    with pytest.warns(UserWarning, match="bfloat16 tensors are loaded as float32"):
        d = mr.load(FIXTURES / "dtypes_zip.pt")
    assert d["bfloat16"].dtype == np.float32


def small_cnn():
    """The fixture script's CNN, in minires."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3))


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_pytorch_state_dicts_load_into_a_minires_model_with_batchnorm(fmt):
    model = small_cnn()
    model.load_state_dict(mr.load(FIXTURES / f"cnn_{fmt}.pt"))
    assert model[1].num_batches_tracked.shape == () and int(model[1].num_batches_tracked.item()) == 1
    assert np.array_equal(model[1].running_var.numpy(), ARRAYS["cnn/1.running_var"])
    ckpt = mr.load(FIXTURES / f"kuangliu_{fmt}.pt")
    model2 = small_cnn()
    model2.load_state_dict({k[len("module."):]: v for k, v in ckpt["net"].items()})
    assert np.array_equal(model2[0].weight.numpy(), ARRAYS["kuangliu/net/module.0.weight"])
    assert ckpt["acc"] == 93.2 and ckpt["epoch"] == 5 and type(ckpt["acc_numpy"]) is np.float64


def test_pytorch_optimizer_state_loads_into_minires_optimizers():
    o = mr.load(FIXTURES / "optim_zip.pt")
    params = [nn.Parameter(mr.zeros(3, 2)), nn.Parameter(mr.zeros(2))]
    sgd = mr.optim.SGD(params, lr=0.5, momentum=0.9, weight_decay=5e-4)
    sgd.load_state_dict(o["sgd"])
    assert sgd.param_groups[0]["lr"] == o["sgd"]["param_groups"][0]["lr"]
    assert np.array_equal(mr.tensor(sgd.state[params[0]]["momentum_buffer"]).numpy(),
                          ARRAYS["optim/sgd/state/0/momentum_buffer"])
    adam = mr.optim.Adam(params, lr=1.0)
    adam.load_state_dict(o["adam"])
    assert adam.state[params[1]]["step"] == float(ARRAYS["optim/adam/state/1/step"])
    assert np.array_equal(mr.tensor(adam.state[params[1]]["exp_avg_sq"]).numpy(),
                          ARRAYS["optim/adam/state/1/exp_avg_sq"])


# ---- nothing in a file runs --------------------------------------------------------------------

@pytest.mark.parametrize("weights_only", [None, True, False])
@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_planted_payload_is_refused_naming_the_global_and_nothing_runs(fmt, weights_only, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the payload would `touch` a marker in the working folder
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    with pytest.raises(UnpicklingError, match=f"'{EXPECTED['planted_global']}'.*never runs code") as err:
        mr.load(FIXTURES / f"planted_{fmt}.pt", weights_only=weights_only)
    assert isinstance(err.value, (ValueError, pickle.UnpicklingError)) and "\n" not in str(err.value)
    assert calls == [] and not (tmp_path / EXPECTED["marker"]).exists() and os.listdir(tmp_path) == []


@pytest.mark.parametrize("global_name", ["builtins eval", "os system", "subprocess Popen", "numpy load",
                                         "torch load", "torch._utils _rebuild_device_tensor_from_numpy_x",
                                         "collections defaultdict", "builtins getattr"])
def test_every_other_global_is_refused_by_name(global_name, tmp_path):
    module, name = global_name.split()
    # a plain pickle that calls module.name('x'): the refusal comes before anything is called
    blob = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X\x01\x00\x00\x00x\x85R."
    p = tmp_path / "evil.pt"
    p.write_bytes(blob)
    with pytest.raises(UnpicklingError, match=f"refusing to unpickle global '{module}.{name}'"):
        mr.load(p)
    legacy = b"".join(pickle.dumps(x, protocol=2) for x in (0x1950a86a20f9469cfc6c, 1001, {})) + blob
    p.write_bytes(legacy)
    with pytest.raises(UnpicklingError, match=f"'{module}.{name}'"):
        mr.load(p)


def test_numpy_dtype_with_a_crafted_state_is_refused(tmp_path):
    # numpy.dtype('f8') then BUILD with a state that asks for fields: refused before NumPy sees it
    blob = (b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R(K\x03X\x01\x00\x00\x00<N}N"
            b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.")
    p = tmp_path / "dtype.pt"
    p.write_bytes(b"".join(pickle.dumps(x, protocol=2) for x in (0x1950a86a20f9469cfc6c, 1001, {})) + blob)
    with pytest.raises(UnpicklingError, match="numpy.dtype: refusing the dtype state"):
        mr.load(p)


# ---- bad input: one clear line each -------------------------------------------------------------

def one_line_error(path, match):
    with pytest.raises(ValueError, match=match) as err:
        load_quiet(path)
    assert isinstance(err.value, UnpicklingError) and "\n" not in str(err.value), str(err.value)
    return err.value


def test_empty_folder_text_and_plain_pickle_files(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    err = one_line_error(tmp_path / "empty.pt", "is empty")
    assert isinstance(err, CheckpointError)
    one_line_error(tmp_path, "is a folder, not a checkpoint file")
    (tmp_path / "data.csv").write_text("epoch,acc\n1,93.2\n")
    one_line_error(tmp_path / "data.csv", r"is a CSV file \(it starts with 'epoch,acc'\), not a PyTorch checkpoint")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"acc": 93.2}, protocol=2))
    one_line_error(tmp_path / "plain.pkl", "a plain pickle, not a PyTorch checkpoint")
    (tmp_path / "old.tar").write_bytes(b"\0" * 257 + b"ustar" + b"\0" * 250)
    one_line_error(tmp_path / "old.tar", "tar format")
    with pytest.raises(FileNotFoundError, match="load: .*missing.pt.* does not exist"):
        mr.load(tmp_path / "missing.pt")


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_truncated_files_give_one_clear_line_at_every_cut(fmt, tmp_path):
    data = (FIXTURES / f"cnn_{fmt}.pt").read_bytes()
    p = tmp_path / "cut.pt"
    for cut in list(range(1, 64, 7)) + list(range(64, len(data), max(1, len(data) // 60))):
        p.write_bytes(data[:cut])
        one_line_error(p, ".")


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_corrupted_bytes_fail_cleanly_or_load(fmt, tmp_path):
    data = bytearray((FIXTURES / f"cnn_{fmt}.pt").read_bytes())
    rng = np.random.default_rng(0)
    p = tmp_path / "bad.pt"
    failures = 0
    for pos in rng.integers(0, len(data), 120):
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        p.write_bytes(bytes(bad))
        try:
            load_quiet(p)
        except UnpicklingError as exc:  # any other exception type fails the test
            assert "\n" not in str(exc)
            failures += 1
    assert failures > 0
    if fmt == "zip":  # every storage byte is under a CRC-32: a flipped weight is caught
        weights = zipfile.ZipFile(io.BytesIO(bytes(data))).read(f"cnn_{fmt}/data/0")
        bad = bytearray(data)
        bad[bytes(data).index(weights) + 5] ^= 1
        p.write_bytes(bytes(bad))
        one_line_error(p, "Bad CRC-32|damaged")


# ---- files that would change minires or its memory: refused or harmless -----------------------

def test_build_on_an_admitted_function_is_refused_and_changes_nothing(tmp_path):
    # torch.Size (minires's _torch_size) then BUILD (None, {'__defaults__': (7,)}): a setattr on the function
    before = restricted._torch_size.__defaults__
    pkl = b"\x80\x02ctorch\nSize\nN}X\x0c\x00\x00\x00__defaults__K\x07\x85s\x86b0}."
    p = tmp_path / "build.pt"
    p.write_bytes(bytes(zip_format.write_zip(pkl, [])))
    one_line_error(p, "refusing to set the state of function")
    assert restricted._torch_size.__defaults__ == before == ((),)


def test_a_huge_memo_index_allocates_nothing(tmp_path):
    # LONG_BINPUT 0xfffffff0: Python's C unpickler would grow its memo list to 2**33 entries (64 GiB)
    pkl = b"\x80\x02}r\xf0\xff\xff\xffj\xf0\xff\xff\xff\x86."
    p = tmp_path / "memo.pt"
    p.write_bytes(bytes(zip_format.write_zip(pkl, [])))
    out = mr.load(p)
    assert out == ({}, {}) and out[0] is out[1]


def test_members_compressed_by_bzip2_are_refused_deflated_ones_load(tmp_path):
    # a bzip2 member of 1 GB of zeros is under 1 KB: refused before it is expanded
    src = mr.Tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    mr.save({"w": src}, tmp_path / "plain.pt")
    for method, name in ((zipfile.ZIP_BZIP2, "bz2.pt"), (zipfile.ZIP_DEFLATED, "deflated.pt")):
        with zipfile.ZipFile(tmp_path / "plain.pt") as zin, zipfile.ZipFile(tmp_path / name, "w") as zout:
            for info in zin.infolist():
                zout.writestr(info.filename, zin.read(info), compress_type=method)
    one_line_error(tmp_path / "bz2.pt", "compressed by zip method 12")
    np.testing.assert_array_equal(mr.load(tmp_path / "deflated.pt")["w"].numpy(), src.numpy())


@pytest.mark.parametrize("header", [b'{"a": 1}', b'{"a": {"dtype": "F32"}}', b'{"a": {"data_offsets": 3}}'])
def test_safetensors_header_without_offsets_is_one_line(header, tmp_path):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(len(header).to_bytes(8, "little") + header)
    one_line_error(p, "corrupted header")


def test_safetensors_with_damaged_minires_metadata_is_one_line(tmp_path):
    import safetensors.numpy as stn  # the test extra: installed wherever the tests run
    arrays = {"w": np.ones(2, np.float32)}
    p = tmp_path / "meta.safetensors"
    p.write_bytes(stn.save(arrays, metadata={"minires": json.dumps({"format": "minires.checkpoint/1"})}))
    one_line_error(p, "corrupted minires metadata")
    with pytest.raises(CheckpointError, match="corrupted minires metadata"):
        mr.checkpoint.load_checkpoint(p)
    meta = {"format": "minires.checkpoint/1", "model_keys": ["w"], "crc32": mr.checkpoint._crc(arrays), "epoch": 0,
            "optimizer": 5, "scheduler": None, "rng_state": None, "extra": {}}
    p.write_bytes(stn.save(arrays, metadata={"minires": json.dumps(meta)}))
    with pytest.raises(CheckpointError, match="corrupted optimizer metadata"):
        mr.checkpoint.load_checkpoint(p)
    header = b'{"a":' + b"[" * 100000  # nested past json's recursion limit
    p.write_bytes(len(header).to_bytes(8, "little") + header)
    one_line_error(p, "corrupted header")


@pytest.mark.parametrize("call", ["builtins set", "builtins frozenset", "builtins bytearray",
                                  "collections OrderedDict"])
def test_admitted_constructors_do_not_iterate_a_huge_tensor_view(call, tmp_path):
    # a stride-0 view of 10**12 elements on a one-element storage (legal, as in PyTorch), handed to set(...):
    # iterating it would take hours; refused at once
    w = pickle_writer._Writer()
    module, name = call.split()
    w.global_(module, name)
    w.global_("torch._utils", "_rebuild_tensor_v2")
    w.out.append(b"((")
    for part in ("storage", None, "0", "cpu"):
        w.global_("torch", "LongStorage") if part is None else w.str_(part)
    w.int_(1)
    w.out.append(b"tQ")
    w.int_(0)
    w.tuple_([10 ** 12, 2] if name == "OrderedDict" else [10 ** 12], "size")
    w.tuple_([0, 0] if name == "OrderedDict" else [0], "stride")
    w.out.append(b"\x89")
    w.empty_ordered_dict()
    w.out.append(b"tR\x85R.")  # the tensor, then call(tensor)
    p = tmp_path / "iter.pt"
    p.write_bytes(bytes(zip_format.write_zip(b"".join(w.out), [("0", np.ones(1, np.int64).tobytes())])))
    one_line_error(p, f"{name}: refusing to build from a Tensor")


@pytest.mark.parametrize("ops", [b"K\x00K\x07s", b"(K\x00K\x07u", b"K\x07a", b"(K\x07e", b"(K\x07\x90"])
def test_items_are_added_to_the_pickles_own_containers_only(ops, tmp_path):
    # SETITEM(S) / APPEND(S) / ADDITEMS aimed at a loaded tensor: t[0] = 7 would write into (or Tensor.add read)
    # its storage; refused by name
    mr.save(mr.zeros(3, dtype=mr.int64), tmp_path / "t.pt")
    with zipfile.ZipFile(tmp_path / "t.pt") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    pkl = members["archive/data.pkl"]
    members["archive/data.pkl"] = pkl[:-1] + ops + b"."
    with zipfile.ZipFile(tmp_path / "bad.pt", "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    err = one_line_error(tmp_path / "bad.pt", "refusing (SETITEMS?|APPENDS?|ADDITEMS) on a Tensor")
    assert "Tensor" in str(err)
    assert np.array_equal(mr.load(tmp_path / "t.pt").numpy(), np.zeros(3))


def test_a_location_minires_lacks_and_a_tensor_quoted_in_an_error_stay_one_line(tmp_path):
    mr.save({"w": mr.ones(2)}, tmp_path / "w.pt")
    with zipfile.ZipFile(tmp_path / "w.pt") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    pkl = members["archive/data.pkl"]
    for old, new in ((b"X\x03\x00\x00\x00cpu", b"X\x03\x00\x00\x00c&u"),  # the storage's saved location
                     (b"X\x07\x00\x00\x00storage", b"X\x07\x00\x00\x00STORAGE")):  # a persistent id refused
        members["archive/data.pkl"] = pkl.replace(old, new)
        with zipfile.ZipFile(tmp_path / "bad.pt", "w") as zf:
            for name, raw in members.items():
                zf.writestr(name, raw)
        one_line_error(tmp_path / "bad.pt", "saved on 'c&u', which minires does not have.*map_location='cpu'"
                       if b"c&u" in new else "refusing the persistent id")
    # a persistent id that quotes a tensor (whose repr spans lines): still one line
    w = pickle_writer._Writer()
    w.out.append(b"(")
    w.tensor_(np.arange(64.0).reshape(8, 8), False)
    w.out.append(b"tQ.")
    (tmp_path / "pid.pt").write_bytes(bytes(zip_format.write_zip(b"".join(w.out), w.storages)))
    one_line_error(tmp_path / "pid.pt", "refusing the persistent id")
