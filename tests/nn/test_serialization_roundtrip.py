"""minires.save -> minires.load round trips, the zip container minires writes, safetensors names, map_location.

That PyTorch reads what minires writes is checked outside the tests (PyTorch is not imported here):
/tmp/torchvenv/bin/python benchmarks/check_torch_load.py.
"""
from __future__ import annotations

import collections
import io
import json
import os
import pickletools
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minires as mr
from minires import nn
from minires.serialization import UnpicklingError
from minires.serialization import pickle_writer, zip_format

FIXTURES = Path(__file__).parents[1] / "fixtures" / "torch"
DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]


def tensors():
    """Tensors of every dtype minires saves, 0-d to 3-d, possibly empty."""
    def build(args):
        dtype, shape, seed = args
        values = np.random.default_rng(seed).standard_normal(shape) * 50
        return mr.Tensor(values.astype(dtype))
    return st.tuples(st.sampled_from(DTYPES), st.lists(st.integers(0, 3), max_size=3).map(tuple),
                     st.integers(0, 2 ** 16)).map(build)


leaves = (tensors() | st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
          | st.floats(allow_nan=False) | st.text(max_size=8))
structures = st.recursive(leaves, lambda inner: (
    st.lists(inner, max_size=3) | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(st.text(max_size=5) | st.integers(0, 9), inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3).map(collections.OrderedDict)), max_leaves=10)


def same(a, b) -> bool:
    """Equal structure, container types, key order, numbers' types, and tensors' dtype, shape and values."""
    if isinstance(a, mr.Tensor):
        return (type(b) is type(a) and a.dtype == b.dtype and a.shape == b.shape
                and np.array_equal(a.numpy(), b.numpy()))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@settings(deadline=None, max_examples=40)
@given(structures)
def test_save_load_round_trip_of_nested_structures(obj):
    buf = io.BytesIO()
    mr.save(obj, buf)
    buf.seek(0)
    assert same(obj, mr.load(buf))


def test_resnet20_state_dict_round_trip_keeps_0d_num_batches_tracked(tmp_path):
    mr.manual_seed(0)
    model = mr.models.resnet20()
    model(mr.randn(2, 3, 8, 8)).sum().backward()  # training mode: running stats and counters move
    sd = model.state_dict()
    for name in ("m.pt", "m.pth", "m.th", "m.tar", "m", "m.safetensors"):
        mr.save(sd, tmp_path / name)
        back = mr.load(tmp_path / name)
        assert list(back) == list(sd)
        assert back["bn1.num_batches_tracked"].shape == () and back["bn1.num_batches_tracked"].dtype == np.int64
        fresh = mr.models.resnet20()
        fresh.load_state_dict(back)  # strict: every key, every shape
        for k, v in fresh.state_dict().items():
            assert np.array_equal(v.numpy(), sd[k].numpy()), (name, k)
    assert sorted(os.listdir(tmp_path)) == sorted(["m.pt", "m.pth", "m.th", "m.tar", "m", "m.safetensors"])


def test_checkpoint_dict_with_optimizer_and_scheduler_round_trips(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    opt = mr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = mr.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    model(mr.randn(5, 3)).sum().backward()
    opt.step()
    sched.step()
    ckpt = {"net": model.state_dict(), "acc": np.float64(93.2), "epoch": 5, "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict()}
    mr.save(ckpt, tmp_path / "ckpt.pth")
    back = mr.load(tmp_path / "ckpt.pth", map_location="cpu", weights_only=True)
    assert back["acc"] == 93.2 and type(back["acc"]) is float and back["epoch"] == 5  # NumPy scalars -> numbers
    assert back["scheduler"] == json.loads(json.dumps(sched.state_dict()))
    opt2 = mr.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)
    opt2.load_state_dict(back["optimizer"])
    for p in model.parameters():
        assert np.array_equal(opt2.state[p]["momentum_buffer"], opt.state[p]["momentum_buffer"])
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_parameters_and_tied_tensors(tmp_path):
    w = nn.Parameter(mr.ones(2, 3))
    mr.save({"a": w, "b": w, "c": w.detach()}, tmp_path / "p.pt")
    back = mr.load(tmp_path / "p.pt")
    assert isinstance(back["a"], nn.Parameter) and back["a"].requires_grad and not back["c"].requires_grad
    assert np.shares_memory(back["a"].array, back["b"].array)  # one storage, as PyTorch's tied weights
    with zipfile.ZipFile(tmp_path / "p.pt") as zf:
        assert [n for n in zf.namelist() if "/data/" in n] == ["archive/data/0"]


def test_non_contiguous_tensors_are_written_in_c_order(tmp_path):
    base = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    views = {"t": base.transpose(2, 0, 1), "s": base[:, ::2, 1:], "r": base[::-1, :, ::-3],
             "be": np.arange(5, dtype=">i4")}
    mr.save({k: mr.Tensor(v) for k, v in views.items()}, tmp_path / "v.pt")
    back = mr.load(tmp_path / "v.pt")
    with zipfile.ZipFile(tmp_path / "v.pt") as zf:
        for i, (k, v) in enumerate(views.items()):
            assert back[k].shape == v.shape and np.array_equal(back[k].numpy(), v), k
            raw = zf.read(f"archive/data/{i}")  # the storage: the values in C order, little-endian
            assert raw == np.array([v[idx] for idx in np.ndindex(v.shape)], dtype=v.dtype.newbyteorder("<")).tobytes()


def test_zip_written_by_minires_has_pytorchs_layout_and_only_allowed_globals(tmp_path):
    obj = {"net": mr.models.resnet20().state_dict(), "w": nn.Parameter(mr.zeros(2)), "b": b"raw", "acc": 93.2,
           "nested": [(1, None), {"x": mr.tensor([True])}]}
    mr.save(obj, tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    with zipfile.ZipFile(tmp_path / "m.pt") as zf, zipfile.ZipFile(FIXTURES / "cnn_zip.pt") as torch_zf:
        ours = zf.namelist()
        theirs = ["archive/" + n.split("/", 1)[1] for n in torch_zf.namelist()]  # torch names the folder after the file
        n_storages = sum("/data/" in n for n in ours)
        assert ours == (["archive/data.pkl", "archive/.format_version", "archive/.storage_alignment",
                         "archive/byteorder"] + [f"archive/data/{i}" for i in range(n_storages)] + ["archive/version"])
        assert set(theirs) - set(ours) <= {"archive/.data/serialization_id"} | {n for n in theirs if "/data/" in n}
        for name in ("version", "byteorder", ".format_version", ".storage_alignment"):
            assert zf.read(f"archive/{name}") == torch_zf.read(f"cnn_zip/{name}")
        for info in zf.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            start = info.header_offset + 30 + len(info.filename) + int.from_bytes(
                data[info.header_offset + 28:info.header_offset + 30], "little")
            assert start % 64 == 0 and data[start:start + info.file_size] == zf.read(info)  # aligned storages
        pkl = zf.read("archive/data.pkl")
    globals_ = {arg for op, arg, _ in pickletools.genops(pkl) if op.name == "GLOBAL"}
    torch_globals = set()
    for fixture in FIXTURES.glob("*_zip.pt"):  # the globals PyTorch itself writes for such objects
        if not fixture.name.startswith("planted"):
            with zipfile.ZipFile(fixture) as zf:
                torch_globals |= {arg for op, arg, _ in pickletools.genops(zf.read(f"{fixture.stem}/data.pkl"))
                                  if op.name == "GLOBAL"}
    assert globals_ <= torch_globals, globals_ - torch_globals
    assert globals_ >= {"collections OrderedDict", "torch._utils _rebuild_tensor_v2", "torch._utils _rebuild_parameter",
                        "torch FloatStorage", "torch LongStorage", "torch BoolStorage", "_codecs encode"}


def test_safetensors_names_stay_safetensors(tmp_path):
    sd = {"w": mr.ones(2, 2), "n": mr.tensor(3)}
    mr.save(sd, tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    assert data[8:9] == b"{" and b'"w"' in data
    back = mr.load(tmp_path / "w.safetensors")
    assert list(back) == ["w", "n"] and back["n"].shape == () and back["n"].dtype == np.int64
    with pytest.raises(TypeError, match=r"save: a .safetensors file holds a Tensor or a flat dict.*under a .pt name"):
        mr.save({"net": sd, "epoch": 5}, tmp_path / "ckpt.safetensors")
    assert not (tmp_path / "ckpt.safetensors").exists()


def test_load_reads_a_trainer_checkpoint_as_its_weights(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    opt = mr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    mr.checkpoint.save_checkpoint(tmp_path / "last.safetensors", model, opt, epoch=2)
    weights = mr.load(tmp_path / "last.safetensors")
    assert list(weights) == list(model.state_dict())
    nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).load_state_dict(weights)


def test_map_location_forms(tmp_path):
    mr.save({"w": mr.arange(4.0)}, tmp_path / "w.pt")
    seen = []
    for ml in (None, "cpu", {"cpu": "cpu"}, lambda storage, loc: seen.append(loc) or storage,
               lambda storage, loc: None):
        back = mr.load(tmp_path / "w.pt", map_location=ml)
        assert back["w"].device == "cpu" and np.array_equal(back["w"].numpy(), np.arange(4.0))
    assert seen == ["cpu"]
    with pytest.raises(ValueError, match="device: .*got 'tpu'"):
        mr.load(tmp_path / "w.pt", map_location="tpu")
    with pytest.raises(TypeError, match="load: map_location must be None, a device string"):
        mr.load(tmp_path / "w.pt", map_location=3)
    with pytest.raises(TypeError, match="load: unexpected keyword arguments \\['foo'\\]"):
        mr.load(tmp_path / "w.pt", foo=1)
    assert mr.load(tmp_path / "w.pt", encoding="latin1", mmap=False)["w"].shape == (4,)


def test_map_location_to_cuda(standin, tmp_path):
    mr.save({"w": mr.arange(4.0, device="cuda"), "v": (mr.ones(2),)}, tmp_path / "w.pt")  # CuPy tensors -> host
    for ml in ("cuda", "cuda:0", {"cpu": "cuda:0"}, lambda storage, loc: storage.to("cuda")):
        back = mr.load(tmp_path / "w.pt", map_location=ml)
        assert back["w"].device == "cuda:0" and np.array_equal(back["w"].numpy(), np.arange(4.0))
    assert mr.load(tmp_path / "w.pt")["w"].device == "cpu"


def test_save_errors_are_clear_and_write_nothing(tmp_path):
    with pytest.raises(TypeError, match=r"save: cannot write obj\['f'\] of type builtin_function_or_method"):
        mr.save({"f": len}, tmp_path / "x.pt")
    with pytest.raises(TypeError, match=r"save: cannot write obj\['model'\], a Linear: save its state_dict\(\)"):
        mr.save({"model": nn.Linear(2, 2)}, tmp_path / "x.pt")
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        mr.save(loop, tmp_path / "x.pt")
    with pytest.raises(TypeError, match="PyTorch has no storage type for dtype uint32"):
        mr.save(mr.Tensor(np.zeros(2, np.uint32)), tmp_path / "x.pt")
    with pytest.raises(ValueError, match="legacy format is read, not written"):
        mr.save({}, tmp_path / "x.pt", _use_new_zipfile_serialization=False)
    assert os.listdir(tmp_path) == []


def _one_tensor_pickle(storage_module: str, location: str, numel: int, offset: int, size: int) -> bytes:
    """A hand-made data.pkl of one 1-D float32 tensor (stride 1) on storage "0" of `numel` elements at `location`."""
    w = pickle_writer._Writer()
    w.global_("torch._utils", "_rebuild_tensor_v2")
    w.out.append(b"((")
    w.str_("storage")
    w.global_(storage_module, "FloatStorage")
    w.str_("0")
    w.str_(location)
    w.int_(numel)
    w.out.append(b"tQ")
    w.int_(offset)
    w.tuple_([size], "size")
    w.tuple_([1], "stride")
    w.out.append(b"\x89")
    w.empty_ordered_dict()
    w.out.append(b"tR.")
    return b"".join(w.out)


def test_out_of_bounds_views_are_refused(tmp_path):
    # a hand-made data.pkl whose tensor reaches past its storage: refused before any memory is read
    pkl = _one_tensor_pickle("torch", "cpu", numel=4, offset=2, size=3)  # 2 + (3 - 1) * 1 = element 4 of 4
    (tmp_path / "oob.pt").write_bytes(zip_format.write_zip(pkl, [("0", np.zeros(4, np.float32).tobytes())]))
    with pytest.raises(UnpicklingError, match="reach element 4 of a storage of 4"):
        mr.load(tmp_path / "oob.pt")
    (tmp_path / "short.pt").write_bytes(zip_format.write_zip(pkl, [("0", b"\0" * 8)]))
    with pytest.raises(UnpicklingError, match="needs 16 bytes, the file holds 8"):
        mr.load(tmp_path / "short.pt")


def test_map_location_errors_are_the_callers_or_name_the_device(tmp_path):
    mr.save({"w": mr.ones(2)}, tmp_path / "w.pt")

    def refuse(storage, location):
        raise KeyError(f"no room for {location}")
    with pytest.raises(KeyError, match="no room for cpu"):  # the callable's own error, as it raised it
        mr.load(tmp_path / "w.pt", map_location=refuse)
    # a file saved on a GPU this machine does not have (CuPy absent, or fewer devices): the fix is named
    pkl = _one_tensor_pickle("torch.cuda", "cuda:7", numel=2, offset=0, size=2)
    (tmp_path / "gpu.pt").write_bytes(zip_format.write_zip(pkl, [("0", np.ones(2, np.float32).tobytes())]))
    with pytest.raises(RuntimeError, match="holds tensors for 'cuda:7'.*pass map_location='cpu'"):
        mr.load(tmp_path / "gpu.pt")
    assert np.array_equal(mr.load(tmp_path / "gpu.pt", map_location="cpu").numpy(), np.ones(2, np.float32))
    assert mr.load(tmp_path / "gpu.pt", map_location={"cuda:7": "cpu"}).device == "cpu"


def test_shared_containers_are_written_once_and_load_shared(tmp_path):
    x = [mr.ones(2)]
    for _ in range(40):  # written without a memo, this would be 3**40 lists
        x = [x, (x,), {"k": x}]
    mr.save(x, tmp_path / "dag.pt")
    back = mr.load(tmp_path / "dag.pt")
    assert back[0] is back[1][0] is back[2]["k"]
    assert (tmp_path / "dag.pt").stat().st_size < 20000
    lists = [[i] for i in range(600)]  # past 256 memo entries: LONG_BINPUT / LONG_BINGET
    mr.save({"a": lists, "b": lists[::-1]}, tmp_path / "many.pt")
    back = mr.load(tmp_path / "many.pt")
    assert all(back["a"][i] == [i] and back["a"][i] is back["b"][599 - i] for i in range(600))
