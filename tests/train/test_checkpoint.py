"""Checkpoints: bitwise round trip of weights/optimizer/scheduler/RNG, atomic writes, corruption errors."""
import json
import os
import struct

import numpy as np
import pytest

pytest.importorskip("safetensors")

import minires as mr
from minires import models, optim
from minires.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minires.io import atomic_write_bytes, atomic_write_text


def _trained_state(seed=0, steps=2):
    """A tiny ResNet-20 with SGD momentum buffers and a OneCycle schedule a few steps in."""
    mr.manual_seed(seed)
    model = models.get("resnet20", widths=(4, 8, 8))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    for _ in range(steps):
        for p in model.parameters():
            p.grad = mr.randn(*p.shape)
        opt.step()
        sched.step()
    model.bn1.running_mean.array[:] = np.arange(4, dtype=np.float32)  # buffers must round-trip too
    model.bn1.num_batches_tracked.array[...] = 7
    return model, opt, sched


def test_round_trip_is_bitwise(tmp_path):
    model, opt, sched = _trained_state()
    mr.manual_seed(123)
    mr.randn(3)  # advance the generator: the saved state must be the current one, not the seed
    rng_before = mr.get_rng_state()
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, model, opt, sched, epoch=4, extra={"best_acc": 0.5, "history": [{"epoch": 1}]})
    expected_next = mr.randn(5).numpy()

    model2, opt2, sched2 = _trained_state(seed=99, steps=1)  # different weights, buffers, lr, step count
    ck = load_checkpoint(path, model2, opt2, sched2)
    assert ck["epoch"] == 4 and ck["extra"] == {"best_acc": 0.5, "history": [{"epoch": 1}]}
    assert list(ck["model"]) == list(model.state_dict())  # torchvision names, state_dict order
    for (k, a), (k2, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert k == k2 and a.dtype == b.dtype and np.array_equal(a.numpy(), b.numpy()), k
    assert model2.bn1.num_batches_tracked.dtype == np.int64 and int(model2.bn1.num_batches_tracked.item()) == 7
    for p, p2 in zip(model.parameters(), model2.parameters()):
        assert np.array_equal(opt.state[p]["momentum_buffer"], opt2.state[p2]["momentum_buffer"])
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in opt2.param_groups]
    assert [g["momentum"] for g in opt.param_groups] == [g["momentum"] for g in opt2.param_groups]
    assert sched2.last_epoch == sched.last_epoch and sched2.get_last_lr() == sched.get_last_lr()
    assert ck["rng_state"] == rng_before
    mr.set_rng_state(ck["rng_state"])
    assert np.array_equal(mr.randn(5).numpy(), expected_next)

    # the restored pair keeps stepping exactly as the original
    for p, p2 in zip(model.parameters(), model2.parameters()):
        p.grad = p2.grad = mr.tensor(np.full(p.shape, 0.01, np.float32))
    opt.step(); sched.step(); opt2.step(); sched2.step()
    for p, p2 in zip(model.parameters(), model2.parameters()):
        assert np.array_equal(p.numpy(), p2.numpy())


def test_adam_state_and_weights_only(tmp_path):
    model, _, _ = _trained_state(steps=0)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = mr.ones(*p.shape)
    opt.step()
    save_checkpoint(tmp_path / "a.safetensors", model, opt)
    ck = load_checkpoint(tmp_path / "a.safetensors")
    assert ck["optimizer"]["state"][0]["step"] == 1
    first = next(iter(model.parameters()))
    assert np.array_equal(ck["optimizer"]["state"][0]["exp_avg_sq"], opt.state[first]["exp_avg_sq"])
    save_checkpoint(tmp_path / "w.safetensors", model)  # weights only
    ck = load_checkpoint(tmp_path / "w.safetensors")
    assert ck["optimizer"] is None and ck["scheduler"] is None
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(tmp_path / "w.safetensors", optimizer=opt)


def test_weights_readable_by_plain_safetensors(tmp_path):
    from safetensors.numpy import load_file
    model, opt, sched = _trained_state()
    save_checkpoint(tmp_path / "ck.safetensors", model, opt, sched)
    arrays = load_file(str(tmp_path / "ck.safetensors"))
    for k, v in model.state_dict().items():
        assert np.array_equal(arrays[k], v.numpy())
    extra = set(arrays) - set(model.state_dict())
    assert extra and all(k.startswith("optimizer/state/") for k in extra)


def test_no_pickle_in_file(tmp_path):
    model, opt, sched = _trained_state()
    save_checkpoint(tmp_path / "ck.safetensors", model, opt, sched)
    blob = (tmp_path / "ck.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])  # the whole header is JSON
    assert json.loads(header["__metadata__"]["minires"])["epoch"] == 0
    assert b"\x80\x04\x95" not in blob and b"\x80\x02" not in blob[:8 + n]  # pickle protocol markers


def test_failed_write_keeps_old_checkpoint(tmp_path, monkeypatch):
    model, opt, sched = _trained_state()
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, model, opt, sched, epoch=1)
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    for p in model.parameters():
        p.array[...] = 0
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, opt, sched, epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["last.safetensors"]  # the temp file was removed


def test_atomic_write_text_replaces(tmp_path):
    path = tmp_path / "sub" / "m.csv"
    atomic_write_text(path, "a\n")
    atomic_write_bytes(path, b"b\n")
    assert path.read_bytes() == b"b\n" and os.listdir(path.parent) == ["m.csv"]


@pytest.mark.parametrize("damage", ["truncate_data", "truncate_header", "empty", "flip_byte", "garbage"])
def test_corrupted_checkpoint_names_the_file(tmp_path, damage):
    model, opt, sched = _trained_state()
    path = tmp_path / "bad.safetensors"
    save_checkpoint(path, model, opt, sched)
    blob = bytearray(path.read_bytes())
    if damage == "truncate_data":
        blob = blob[:len(blob) - 1000]
    elif damage == "truncate_header":
        blob = blob[:40]
    elif damage == "empty":
        blob = b""
    elif damage == "flip_byte":
        blob[-5] ^= 0xFF  # inside the last array's data: only the checksum can tell
    else:
        blob = b"not a checkpoint at all, just some text"
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_checkpoint(path, model)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_a_text_file_given_to_load_or_load_checkpoint_is_named_as_what_it_is(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,lr,train_loss\n1,0.1,2.3\n")
    for load in (mr.load, load_checkpoint):
        with pytest.raises(CheckpointError, match=r"is a CSV file \(it starts with 'epoch,lr,train_loss'\), not a"):
            load(str(csv))


def test_an_onnx_file_given_as_a_checkpoint_is_named_as_one(tmp_path):
    pytest.importorskip("onnx")
    import minires.onnx
    from minires.checkpoint import CheckpointError, load_checkpoint
    path = tmp_path / "m.onnx"
    minires.onnx.export(mr.nn.Linear(3, 2), mr.randn(1, 3), str(path))
    with pytest.raises(CheckpointError, match=r"is an ONNX model .*not a safetensors checkpoint"):
        load_checkpoint(str(path))
