"""The `cuda` device end to end on the CuPy stand-in (tests/cupy_standin.py): a training step equal
to the CPU's, amp, checkpoints of device tensors, the DataLoader's copies, `minires train` and
`minires bench` with --device cuda, and exactly one device-to-host copy per training step."""
import json

import numpy as np
import pytest

import minires as mr
import minires.functional as F
from minires import backend, dispatch, models, optim

import cupy_standin


# ---- the stand-in behaves as CuPy where minires touches it --------------------------------------
def test_standin_refuses_what_cupy_refuses(standin):
    a = standin.asarray(np.arange(6.0).reshape(2, 3))
    assert not isinstance(a, np.ndarray) and not isinstance(a.data, (np.ndarray, standin.ndarray))
    assert a.device.id == 0
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.zeros((2, 3))[...] = a
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones(3)
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray"):
        a[...] = np.ones((2, 3))
    s = a.sum()  # a 0-d device array, as CuPy's reductions
    assert isinstance(s, standin.ndarray) and s.shape == ()
    standin.transfers.reset()
    assert float(s) == 15.0 and np.array_equal(a.get(), np.arange(6.0).reshape(2, 3))
    assert standin.transfers.d2h == 2


def test_raw_cupy_arrays_dispatch_to_cupy(standin):
    """The bug the stand-in was made to catch: a raw CuPy array's .array is a pointer, not an array."""
    raw = standin.zeros((2, 2))
    assert backend.get_array_module(raw) is standin
    assert backend.get_array_module(mr.Tensor(raw)) is standin
    assert backend.get_array_module(np.zeros(2), raw) is standin
    assert backend.get_array_module(np.zeros(2)) is np


def test_ops_on_two_devices_name_the_op_and_both_devices(standin):
    a = mr.randn(2, 3, 4, 4, device="cuda")
    w = mr.randn(5, 3, 3, 3)
    with pytest.raises(ValueError, match=r"conv2d.*cuda:0.*cpu|conv2d.*cpu.*cuda:0"):
        F.conv2d(a, w)
    with pytest.raises(ValueError, match=r"cuda:0.*cpu|cpu.*cuda:0"):
        a + mr.randn(2, 3, 4, 4)


def test_a_cupy_built_for_a_newer_cuda_than_the_driver_is_one_clear_line(standin, monkeypatch):
    monkeypatch.setattr(standin.cuda.runtime, "driverGetVersion", lambda: 12040)
    backend.use_cupy(standin)  # forget the devices already checked
    with pytest.raises(RuntimeError, match=r"built for CUDA 13\.0 but the driver supports CUDA 12\.4.*gpu-cuda13"):
        mr.zeros(3, device="cuda")


# ---- a ResNet-20 step on "cuda" equals the CPU's -------------------------------------------------
def _step(device, dtype, seed=0, amp=False):
    mr.manual_seed(seed)
    model = models.resnet20(num_classes=10, widths=(4, 8, 8)).to(dtype=dtype).to(device)
    rng = np.random.default_rng(seed)
    x = mr.tensor(rng.standard_normal((6, 3, 16, 16)), dtype=dtype, device=device)
    y = mr.tensor(rng.integers(0, 10, 6), device=device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    scaler = mr.amp.GradScaler(init_scale=2.0 ** 10) if amp else None
    with mr.amp.autocast(enabled=amp):
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
    if amp:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()
    grads = {n: p.grad.numpy() for n, p in model.named_parameters()}
    state = {n: v.numpy() for n, v in model.state_dict().items()}
    return loss.item(), grads, state


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-8), (np.float32, 1e-4)])
def test_resnet20_training_step_on_cuda_equals_the_cpu(standin, dtype, rtol):
    loss_c, grads_c, state_c = _step("cpu", dtype)
    loss_g, grads_g, state_g = _step("cuda", dtype)
    assert loss_g == pytest.approx(loss_c, rel=rtol)
    for n in grads_c:  # the gradient of each tensor relative to its own size
        scale = np.abs(grads_c[n]).max() + 1e-30
        np.testing.assert_allclose(grads_g[n] / scale, grads_c[n] / scale, atol=rtol, err_msg=n)
    for n in state_c:
        np.testing.assert_allclose(state_g[n], state_c[n], rtol=rtol, atol=rtol, err_msg=n)


@dispatch.use_impl("fast")  # it asserts that the CUDA kernels ran
def test_amp_step_on_cuda_runs_float16_kernels_and_stays_near_float32(standin):
    """Under autocast the conv kernels run in float16 and batch norm (widened by the policy, before the
    implementation is chosen), ReLU and the residual add in float32; the step's gradients, as one
    vector, stay as close to the float32 step's as the CPU's float16 step does (this tiny net with
    batch 6 puts both about 10% away: BatchNorm over few values amplifies float16 rounding)."""
    launched = []
    original = standin.RawModule.get_function
    standin.RawModule.get_function = lambda self, name: launched.append(
        (name, "MINIRES_HALF" in self.defines)) or original(self, name)
    try:
        loss_g, grads_g, _ = _step("cuda", np.float32, amp=True)
    finally:
        standin.RawModule.get_function = original
    loss_c, grads_c, _ = _step("cpu", np.float32, amp=True)
    loss_32, grads_32, _ = _step("cpu", np.float32)
    half = {name for name, is_half in launched if is_half}
    full = {name for name, is_half in launched if not is_half}
    assert {"im2col", "col2im"} <= half  # the conv GEMMs' columns in float16
    bn_chain = {"bn_partial_stats", "bn_apply", "bn_backward_apply", "add_relu_forward", "mask_grad"}
    assert bn_chain <= full and not bn_chain & half  # the CUDA batch-norm kernels ran, on float32
    assert ("softmax_xent_forward", False) in launched  # the loss in float32
    flat = lambda g: np.concatenate([g[n].ravel() for n in sorted(g)])  # noqa: E731
    err = lambda g: np.linalg.norm(flat(g) - flat(grads_32)) / np.linalg.norm(flat(grads_32))  # noqa: E731
    assert loss_g == pytest.approx(loss_32, rel=2e-3)
    assert err(grads_g) < 0.2 and err(grads_g) <= 1.5 * err(grads_c)


# ---- checkpoints and the DataLoader --------------------------------------------------------------
def test_checkpoint_of_device_tensors_round_trips(standin, tmp_path):
    pytest.importorskip("safetensors")
    from minires.checkpoint import load_checkpoint, save_checkpoint
    mr.manual_seed(1)
    model = models.resnet20(num_classes=10, widths=(4, 8, 8)).to("cuda")
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = mr.randn(4, 3, 8, 8, device="cuda")
    F.cross_entropy(model(x), mr.tensor([1, 2, 3, 4], device="cuda")).backward()
    opt.step()
    save_checkpoint(tmp_path / "c.safetensors", model, opt, epoch=3)
    fresh = models.resnet20(num_classes=10, widths=(4, 8, 8)).to("cuda")
    fresh_opt = optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    ck = load_checkpoint(tmp_path / "c.safetensors", fresh, fresh_opt)
    assert ck["epoch"] == 3
    for (n, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert b.device == "cuda:0", n
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=n)
    moments = [v for st in fresh_opt.state.values() for v in st.values() if hasattr(v, "shape")]
    assert moments and all(backend.device_of(v.array if isinstance(v, mr.Tensor) else v) == "cuda:0" for v in moments)


def test_dataloader_copies_uint8_batches_to_the_device(standin):
    from minires.data import DataLoader
    images = np.random.default_rng(0).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(10) % 3
    ds = type("Images", (), {"data": images, "targets": labels, "__len__": lambda self: 10})()
    loader = DataLoader(ds, batch_size=4, shuffle=False, device="cuda")
    batches = list(loader)
    assert [tuple(x.shape) for x, _ in batches] == [(4, 3, 8, 8), (4, 3, 8, 8), (2, 3, 8, 8)]
    assert all(x.device == "cuda:0" and y.device == "cuda:0" for x, y in batches)
    np.testing.assert_allclose(batches[0][0].numpy(), images[:4].transpose(0, 3, 1, 2) / 255, rtol=1e-6)
    assert standin.transfers.h2d >= 6  # images and labels of three batches, copied as they are made


# ---- one device-to-host copy per training step ---------------------------------------------------
@pytest.mark.parametrize("amp", [False, True])
def test_a_training_step_makes_exactly_one_device_to_host_copy(standin, tmp_path, amp):
    pytest.importorskip("PIL")
    from minires.train import TrainConfig, Trainer
    from tiny_cifar import make_image_folder
    data = make_image_folder(tmp_path / "d", ["a", "b", "c"], 8, 2)
    cfg = TrainConfig(model="resnet20", model_kwargs={"widths": [4, 8, 8]}, data=data, out=str(tmp_path / "o"),
                      epochs=1, batch_size=8, progress=False, device="cuda", amp=amp)
    trainer = Trainer(cfg, log=lambda *a: None)
    standin.transfers.reset()
    trainer.train_epoch(0)
    assert standin.transfers.d2h == len(trainer.train_loader) == 3


def test_cross_entropy_on_the_device_defers_the_label_check(standin):
    """No sync inside the loss: an out-of-range label gives that row a NaN loss on the device (as
    PyTorch's device-side assert, it is not raised where it happens); the CPU raises at once."""
    logits = mr.randn(3, 4, device="cuda")
    standin.transfers.reset()
    loss = F.cross_entropy(logits, mr.tensor([0, 7, 1], device="cuda"), reduction="none")
    assert standin.transfers.d2h == 0
    assert np.isnan(loss.numpy()[1]) and np.isfinite(loss.numpy()[[0, 2]]).all()
    with pytest.raises(ValueError, match="target 7 is out of bounds for 4 classes"):
        F.cross_entropy(logits.cpu(), mr.tensor([0, 7, 1]))


def test_trainer_names_an_out_of_range_label_on_the_device(standin, tmp_path):
    pytest.importorskip("PIL")
    from minires.train import TrainConfig, Trainer
    from tiny_cifar import make_image_folder
    data = make_image_folder(tmp_path / "d", ["a", "b", "c"], 4, 2)
    cfg = TrainConfig(model="resnet20", model_kwargs={"widths": [4, 8, 8]}, data=data, out=str(tmp_path / "o"),
                      epochs=1, batch_size=6, progress=False, device="cuda")
    trainer = Trainer(cfg, log=lambda *a: None)
    trainer.train_loader.dataset.targets[1] = 5  # corrupt one label: 3 classes
    with pytest.raises(ValueError, match="target 5 is out of bounds for 3 classes"):  # as on the CPU
        trainer.train_epoch(0)


# ---- the CLI with --device cuda ------------------------------------------------------------------
def test_minires_train_and_eval_on_cuda(standin, tmp_path, capsys):
    pytest.importorskip("PIL")
    from minires.cli import main
    from tiny_cifar import make_image_folder
    data = make_image_folder(tmp_path / "d", ["a", "b", "c"], 8, 4)
    out = tmp_path / "run"
    args = ["--data", data, "--limit-train", "24", "--limit-test", "12", "--no-progress", "--device", "cuda"]
    assert main(["train", "--out", str(out), "--epochs", "2", "--batch-size", "8", "--amp", *args]) == 0
    assert "epoch 2/2" in capsys.readouterr().out
    report = json.loads((out / "final_eval.json").read_text())
    assert main(["eval", "--checkpoint", str(out / "last.safetensors"), "--out", str(tmp_path / "ev"),
                 "--data", data, "--limit-test", "12", "--device", "cuda"]) == 0
    assert json.loads((tmp_path / "ev" / "final_eval.json").read_text())["accuracy"] == report["accuracy"]


def test_minires_bench_on_cpu_and_cuda(standin, tmp_path, capsys):
    from minires.cli import main
    assert main(["bench", "--device", "cpu,cuda", "--only", "relu", "--batch", "2", "--repeats", "1",
                 "--warmup", "0", "--no-torch", "--ceiling-scale", "1e-4", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "bench_kernels.json").read_text())["rows"]
    assert rows and all(r["cpu_ms"] > 0 and r["cuda:0_ms"] > 0 for r in rows)
